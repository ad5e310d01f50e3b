"""Task heads: targets, losses, aggregation and scores for each task type.

A head turns a split's cached rows into training targets, defines the per-member loss of the batched
probe (benchmark.probes), aggregates row outputs into evaluation units (items, or songs for key), and
scores them: a fast vectorised validation score per member for early stopping (the same definition as the
reported metric wherever it can be vectorised), and the reported metrics through benchmark.metrics.

- multiclass / key: cross-entropy; key logits of a song's clips are averaged before the argmax (the
  ``group`` of the items), then scored with mir_eval's weighted score.
- multilabel: binary cross-entropy; window logits averaged per item; macro ROC-AUC and AP.
- regression: MSE on targets standardised with the train mean and std; predictions de-standardised; R2
  per dimension.
- beat: MARBLE's protocol (benchmark.config.BeatConfig). A per-frame MLP with a beat output (and a downbeat
  output when the items carry downbeat annotations), binary cross-entropy on random 10 s crops of the train
  tracks, 64 crops per step, targets 1 at the frame of an annotation and 0.95 / 0.5 (beats) or 0.95 / 0.5 / 0.25
  (downbeats) at +-1, +-2(, +-3) frames on train only; valid and test tracks whole. Activations are decoded
  by madmom's DBN beat tracker (benchmark.beat_tracking.dbn_beats; ``beat.tracker=librosa-dp`` for librosa's
  dynamic-programming tracker) for every reported score and, by default, for the per-epoch early-stopping
  score too (MARBLE monitors the DBN's valid F; ``beat.select=peaks`` picks local maxima instead, cheaper).
  Reported beside beat F: downbeat F (the same DBN in the 18-72 bpm range on the downbeat activation) and the
  tempo of the decoded beats (benchmark.metrics.tempo_scores).

Decoding (trained probes applied outside the sweep, benchmark.artefacts): :meth:`Head.decode` turns the row
outputs of one or more probes (the seeds of a stored probe) into each unit's prediction, the task's natural output
(a label or key with its probabilities, tag scores, arousal / valence values, beat times), and
:meth:`Head.unit_score` gives the per-unit term of the metric where it has one. :meth:`Head.head_config` /
:meth:`Head.head_state` are what a stored probe needs besides its weights to be decoded as in the sweep (the key
ensemble, the beat tracker's settings, the regression targets' train statistics).
"""
from __future__ import annotations

from typing import Any

import numpy as np

def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _vote(pred: np.ndarray, mean_p: np.ndarray) -> np.ndarray:
    """Per unit the class most probes predict (``pred`` [S, U]); ties: the highest mean probability (``mean_p``
    [U, C]). With one probe, its prediction."""
    S, U = pred.shape
    counts = np.zeros_like(mean_p)
    for s in range(S):
        counts[np.arange(U), pred[s]] += 1
    return np.where(counts == counts.max(1, keepdims=True), mean_p, -np.inf).argmax(1)


def _ranked(labels: list, p: np.ndarray, top: int | None) -> dict[str, float]:
    """{label: probability} from the most probable down (the ``top`` first, all when None)."""
    order = np.argsort(-p, kind="stable")[: top or len(p)]
    return {str(labels[i]): float(p[i]) for i in order}


class Head:
    type = ""
    loss_name = ""

    def __init__(self, spec, labels: list, cfg):
        self.spec = spec
        self.labels = list(labels)
        self.cfg = cfg

    # -- data ---------------------------------------------------------------------------------------------
    def out_dim(self) -> int:
        return len(self.labels)

    def item_targets(self, items: list) -> Any:
        raise NotImplementedError

    def prepare(self, feats, train_stats: dict | None = None) -> dict[str, Any]:
        """Row targets, units and unit targets of a split (torch tensors)."""
        import torch

        y_items = self.item_targets(feats.items)
        owner = torch.from_numpy(feats.owner)
        unit_of_item, unit_items = self.units(feats.items)
        unit_idx = torch.as_tensor(unit_of_item)[owner]
        kept_units = torch.unique(unit_idx)
        remap = torch.full((len(unit_items),), -1, dtype=torch.long)
        remap[kept_units] = torch.arange(len(kept_units))
        unit_targets = self.unit_targets(y_items, [unit_items[u] for u in kept_units.tolist()])
        return {"y_rows": self.row_targets(y_items, feats), "unit_idx": remap[unit_idx], "n_units": len(kept_units),
                "unit_targets": unit_targets, "feats": feats,
                "unit_items": [unit_items[u] for u in kept_units.tolist()]}

    def units(self, items: list) -> tuple[list[int], list[list[int]]]:
        """Evaluation units: one per item by default."""
        return list(range(len(items))), [[i] for i in range(len(items))]

    def row_targets(self, y_items, feats):
        import torch

        return torch.as_tensor(y_items)[torch.from_numpy(feats.owner)]

    def unit_targets(self, y_items, unit_items: list[list[int]]):
        import torch

        return torch.as_tensor(y_items)[[u[0] for u in unit_items]]

    # -- training -----------------------------------------------------------------------------------------
    def loss(self, out, y):
        """out [M, B, C], y rows -> per-member mean loss [M]."""
        raise NotImplementedError

    # -- evaluation ---------------------------------------------------------------------------------------
    def fast_scores(self, unit_out, data) -> np.ndarray:
        """unit outputs [M, U, C] -> validation main score per member (higher is better)."""
        raise NotImplementedError

    def scores(self, unit_out: np.ndarray, data) -> dict[str, float]:
        """One member's unit outputs [U, C] -> every metric of the task (benchmark.metrics)."""
        raise NotImplementedError

    # -- stored probes (benchmark.artefacts) ----------------------------------------------------------------
    def head_config(self) -> dict[str, Any]:
        """The config sections (a subset of benchmark.config's) this head reads, as plain values: a stored probe
        rebuilds its head from them (:meth:`from_stored`)."""
        return {}

    def head_state(self) -> dict[str, Any]:
        """What the head learned from the train split besides the probe's weights (plain values)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Take back :meth:`head_state`."""

    def choose(self, unit_out, data) -> dict[str, Any] | None:
        """What the head chooses on a validation split for one member's outputs ``unit_out`` (the key ensemble
        under ``select``), to score every other split with (:meth:`scores_with`); None when it chooses nothing."""
        return None

    def scores_with(self, unit_out, data, choice: dict[str, Any] | None) -> dict[str, float]:
        """:meth:`scores` under a validation ``choice`` (:meth:`choose`; None: none made)."""
        return self.scores(unit_out, data)

    def prepare_unlabelled(self, feats) -> dict[str, Any]:
        """The units of a split whose items have no targets (``python -m benchmark predict``): every item is its
        own unit (a file's windows or frames are its rows); the same keys as :meth:`prepare` less the targets."""
        import torch

        owner = torch.from_numpy(feats.owner)
        kept = torch.unique(owner)
        remap = torch.full((len(feats.items),), -1, dtype=torch.long)
        remap[kept] = torch.arange(len(kept))
        return {"unit_idx": remap[owner], "n_units": len(kept), "feats": feats,
                "unit_items": [[i] for i in kept.tolist()]}

    def unit_ids(self, data) -> list[str]:
        """The id of every unit: its item's id (a song's group for key)."""
        items = data["feats"].items
        return [str(items[u[0]].id) for u in data["unit_items"]]

    def unit_outputs(self, rows: np.ndarray, data) -> np.ndarray:
        """Row outputs [S, R, C] -> unit outputs [S, U, C] (benchmark.probes.unit_outputs)."""
        import torch

        from benchmark.probes import unit_outputs

        return unit_outputs(self, torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)), data).numpy()

    def decode(self, rows: np.ndarray, data, choices: list[dict] | None = None, top: int | None = None) -> list[dict]:
        """Row outputs of S probes [S, R, C] (one stored probe's seeds; S = 1 for one of them) -> per unit the
        prediction, the task's natural output: ``{"prediction": ..., ...}`` (see each head). With several probes,
        their ensemble (each head says how). ``choices``: per probe, what was chosen on validation for it
        (:meth:`choose`); ``top``: keep only the most probable classes."""
        raise NotImplementedError

    def unit_score(self, pred: dict, target) -> dict[str, Any]:
        """The per-unit term of the metric for one decoded prediction and its unit target (``{"score": ...}``),
        or {} where the metric has none (ROC-AUC ranks the items against each other)."""
        return {}

    def target_json(self, target) -> Any:
        """A unit target (an item of ``data["unit_targets"]``) as JSON."""
        return target

    @classmethod
    def from_stored(cls, spec, labels, config: dict[str, Any], state: dict[str, Any]) -> "Head":
        """The head of a stored probe: built from its :meth:`head_config` and :meth:`head_state`."""
        from omegaconf import OmegaConf

        head = make_head(spec, labels, OmegaConf.create(config))
        head.load_state(state)
        return head


class MulticlassHead(Head):
    type = "multiclass"

    def item_targets(self, items):
        from tasks.format import FormatError

        index = {l: i for i, l in enumerate(self.labels)}
        out = []
        for it in items:
            label = self.label_of(it)
            if label not in index:
                raise FormatError(f"item {it.id!r}: label {it.target!r} is not in the task labels "
                                  f"({len(self.labels)} labels, e.g. {self.labels[:5]})")
            out.append(index[label])
        return np.array(out, dtype=np.int64)

    def label_of(self, item) -> str:
        """An item's target as a label name."""
        return str(item.target)

    def decode(self, rows, data, choices=None, top=None):
        """``{"prediction": label, "probabilities": {label: p}}`` per unit: the label of the mean logit of the
        unit's rows (windows); several probes: the label most of them give (ties: the highest mean probability),
        the probabilities averaged."""
        u = self.unit_outputs(rows, data)          # [S, U, C]
        p = _softmax(u.astype(np.float64))
        mean_p = p.mean(0)
        pred = _vote(u.argmax(-1), mean_p)
        return [{"prediction": self.labels[k], "probabilities": _ranked(self.labels, mean_p[i], top)}
                for i, k in enumerate(pred)]

    def unit_score(self, pred, target):
        """1 for the right label, 0 otherwise (accuracy's term)."""
        return {"score": float(pred["prediction"] == self.labels[int(target)])}

    def target_json(self, target):
        return self.labels[int(target)]

    def loss(self, out, y):
        import torch.nn.functional as F

        M, B, C = out.shape
        return F.cross_entropy(out.reshape(M * B, C), y.repeat(M), reduction="none").view(M, B).mean(1)

    def fast_scores(self, unit_out, data):
        return (unit_out.argmax(-1) == data["unit_targets"][None]).float().mean(1).numpy()

    def scores(self, unit_out, data):
        from benchmark.metrics import accuracy

        return {"accuracy": accuracy(data["unit_targets"].numpy(), unit_out.argmax(-1))}


class KeyHead(MulticlassHead):
    """Global key. Clips (items sharing ``group``, and the 30 s windows of each item) are combined per song by
    ``probe.key_ensemble``:

    - ``mean_logits`` (ours, the default): the mean of the clip logits, argmax (row outputs averaged per song by
      benchmark.probes.unit_outputs);
    - ``vote`` / ``max`` / ``gmean`` / ``mean``: MARBLE's strategies (benchmark/tasks/GS/utils.py of
      MARBLE-Benchmark): the most frequent clip argmax (ties: the lowest key index, as scipy's mode), the argmax of
      the per-key maximum clip logit, of the mean logit (= ``mean_logits``), of the mean softmax probability;
    - ``select`` (MARBLE's GSProber, the real-data default): every strategy is scored; the validation score that
      early stopping and selection see is the best strategy's (MARBLE monitors ``valid_best_ensemble_score``), and a
      member's test score uses the strategy that was best on validation for its best-validation state (ties: the
      first in vote, max, gmean, mean order). The scores also hold ``weighted_key_<strategy>`` for each.

    Outside ``mean_logits`` every row is its own unit (``prepare``), so the head sees each clip's logits and
    combines them per song itself (``song_of_row``)."""

    type = "key"
    STRATEGIES = ("vote", "max", "gmean", "mean")

    def __init__(self, spec, labels, cfg):
        from tasks.key import normalise_key

        # every source's spelling (sharps, flats, mir_eval's and JAMS' forms) -> the task's labels, in order, once
        labels = list(dict.fromkeys(normalise_key(l) for l in labels))
        super().__init__(spec, labels, cfg)
        import mir_eval
        import torch

        self.weights = torch.tensor([[mir_eval.key.weighted_score(r, e) for e in self.labels] for r in self.labels])
        probe = getattr(cfg, "probe", None) if cfg is not None else None
        self.ensemble = str(getattr(probe, "key_ensemble", "mean_logits") if probe is not None else "mean_logits")
        if self.ensemble != "mean_logits" and self.ensemble != "select" and self.ensemble not in self.STRATEGIES:
            raise ValueError(f"probe.key_ensemble={self.ensemble!r}: use mean_logits, select or one of "
                             f"{', '.join(self.STRATEGIES)}")

    def label_of(self, item) -> str:
        """The item's key in the task's spelling (tasks.key.normalise_key); a text that is no key is an error
        naming the item."""
        from tasks.format import FormatError
        from tasks.key import normalise_key

        try:
            return normalise_key(item.target)
        except ValueError as e:
            raise FormatError(f"item {item.id!r}: {e}") from None

    def units(self, items):
        """Songs: items sharing ``group`` (clips of one song) are scored once, logits averaged."""
        keys: dict[str, int] = {}
        unit_of_item, unit_items = [], []
        for i, it in enumerate(items):
            g = it.group if it.group is not None else f"item:{it.id}"
            if g not in keys:
                keys[g] = len(unit_items)
                unit_items.append([])
            unit_of_item.append(keys[g])
            unit_items[keys[g]].append(i)
        return unit_of_item, unit_items

    def prepare(self, feats, train_stats=None):
        import torch

        data = super().prepare(feats, train_stats)
        if self.ensemble == "mean_logits":
            return data
        data["song_of_row"] = data["unit_idx"]
        data["unit_idx"] = torch.arange(len(data["song_of_row"]))
        data["n_units"] = len(data["song_of_row"])
        return data

    def song_predictions(self, rows, song_of_row, n_songs: int) -> dict:
        """Clip logits [M, R, C] (or [R, C]) -> {strategy: predicted key per song [M, S] (or [S])}."""
        import torch

        x = torch.as_tensor(rows, dtype=torch.float32)
        single = x.dim() == 2
        if single:
            x = x[None]
        M, R, C = x.shape
        idx = torch.as_tensor(song_of_row, dtype=torch.long)
        cnt = torch.zeros(n_songs).index_add_(0, idx, torch.ones(R)).clamp_min(1)[None, :, None]

        def per_song(v):
            return torch.zeros(M, n_songs, C).index_add_(1, idx, v)

        votes = per_song(torch.nn.functional.one_hot(x.argmax(-1), C).float())
        mx = torch.full((M, n_songs, C), float("-inf")).scatter_reduce_(
            1, idx[None, :, None].expand(M, R, C), x, reduce="amax", include_self=True)
        out = {"vote": votes.argmax(-1), "max": mx.argmax(-1), "gmean": (per_song(x) / cnt).argmax(-1),
               "mean": (per_song(torch.softmax(x, -1)) / cnt).argmax(-1)}
        return {k: (v[0] if single else v) for k, v in out.items()}

    def _weighted(self, ref, pred):
        return self.weights[ref[None].expand_as(pred), pred].mean(1)

    def fast_scores(self, unit_out, data):
        if self.ensemble == "mean_logits":
            pred = unit_out.argmax(-1)  # [M, U]
            return self.weights[data["unit_targets"][None].expand_as(pred), pred].mean(1).numpy()
        import torch

        ref = data["unit_targets"]
        preds = self.song_predictions(unit_out, data["song_of_row"], len(ref))
        if self.ensemble != "select":
            return self._weighted(ref, preds[self.ensemble]).numpy()
        return torch.stack([self._weighted(ref, preds[k]) for k in self.STRATEGIES]).max(0).values.numpy()

    def _per_strategy(self, unit_out, data) -> tuple[dict, dict[str, float]]:
        """Each strategy's song predictions and weighted key score (outside ``mean_logits``)."""
        from benchmark.metrics import weighted_key

        ref = data["unit_targets"].numpy()
        names = [self.labels[i] for i in ref]
        preds = {k: v.numpy() for k, v in self.song_predictions(unit_out, data["song_of_row"], len(ref)).items()}
        return preds, {k: weighted_key(names, [self.labels[i] for i in p]) for k, p in preds.items()}

    def choose(self, unit_out, data):
        """Under ``select``: ``{"key_strategy": k}``, the strategy with the best weighted score on this (validation)
        split (the first best in vote, max, gmean, mean order), as MARBLE chooses; None otherwise."""
        if self.ensemble != "select":
            return None
        return {"key_strategy": self._best(self._per_strategy(unit_out, data)[1])}

    def _best(self, per: dict[str, float]) -> str:
        """The strategy of the highest score in ``per`` (ties: the first in :data:`STRATEGIES` order)."""
        return max(self.STRATEGIES, key=lambda k: (per[k], -self.STRATEGIES.index(k)))

    def scores_with(self, unit_out, data, choice):
        return self.scores(unit_out, data, strategy=self.strategy(choice) if self.ensemble == "select" else None)

    def scores(self, unit_out, data, strategy: str | None = None):
        """The key metrics of one member; ``strategy``: the ensemble strategy to score with (a stored probe's,
        chosen on validation when it was trained) instead of choosing one here (``select``)."""
        from benchmark.metrics import accuracy, weighted_key

        ref = data["unit_targets"].numpy()
        names = [self.labels[i] for i in ref]
        if self.ensemble == "mean_logits":
            est = unit_out.argmax(-1)
            return {"weighted_key": weighted_key(names, [self.labels[i] for i in est]),
                    "accuracy": accuracy(ref, est)}
        preds, per = self._per_strategy(unit_out, data)
        if strategy is not None:
            k = strategy
        else:  # select: the best on this split (validation; other splits are scored through scores_with)
            k = self._best(per) if self.ensemble == "select" else self.ensemble
        out = {"weighted_key": per[k], "accuracy": accuracy(ref, preds[k])}
        if self.ensemble == "select":
            out.update({f"weighted_key_{s}": per[s] for s in self.STRATEGIES})
        return out

    def head_config(self):
        return {"probe": {"key_ensemble": self.ensemble}}

    def strategy(self, choice: dict | None) -> str:
        """The strategy a stored probe decodes with: its own choice under ``select`` (``gmean`` = mean logits
        when none was recorded), else ``probe.key_ensemble``."""
        if self.ensemble == "select":
            return str((choice or {}).get("key_strategy", "gmean"))
        return self.ensemble

    def unit_ids(self, data):
        items = data["feats"].items
        return [str(items[u[0]].group if items[u[0]].group is not None else items[u[0]].id)
                for u in data["unit_items"]]

    def decode(self, rows, data, choices=None, top=None):
        """``{"prediction": key, "probabilities": {key: p}}`` per song (unit): the key of the song's clips
        combined by the ensemble strategy (``mean_logits``: the mean logit; a stored ``select`` probe: the strategy
        chosen on validation); probabilities: the mean over clips of their softmax (and over probes). Several
        probes: the key most of them give (ties: the highest mean probability)."""
        rows = np.asarray(rows, dtype=np.float32)
        if self.ensemble == "mean_logits":
            u = self.unit_outputs(rows, data)
            pred = u.argmax(-1)
            p = _softmax(u.astype(np.float64))
        else:
            songs, n = data["song_of_row"].numpy(), len(data["unit_items"])
            choices = choices or [None] * len(rows)
            pred = np.stack([self.song_predictions(rows[s], songs, n)[self.strategy(choices[s])].numpy()
                             for s in range(len(rows))])
            p = np.zeros((len(rows), n, rows.shape[2]))
            np.add.at(p, (slice(None), songs), _softmax(rows.astype(np.float64)))
            p /= np.maximum(np.bincount(songs, minlength=n), 1)[None, :, None]
        mean_p = p.mean(0)
        pred = _vote(pred, mean_p)
        return [{"prediction": self.labels[k], "probabilities": _ranked(self.labels, mean_p[i], top)}
                for i, k in enumerate(pred)]

    def unit_score(self, pred, target):
        """mir_eval's weighted score of the predicted key against the song's (1, 0.5 fifth, 0.3 relative, 0.2
        parallel, 0): ``weighted_key``'s term."""
        return {"score": float(self.weights[int(target), self.labels.index(pred["prediction"])])}

    def prepare_unlabelled(self, feats):
        """Each item (a file) is a song; outside ``mean_logits`` its clips are its rows, as :meth:`prepare`."""
        import torch

        data = super().prepare_unlabelled(feats)
        if self.ensemble != "mean_logits":
            data["song_of_row"] = data["unit_idx"]
            data["unit_idx"] = torch.arange(len(data["song_of_row"]))
            data["n_units"] = len(data["song_of_row"])
        return data


class MultilabelHead(Head):
    type = "multilabel"

    def item_targets(self, items):
        from tasks.format import FormatError

        index = {l: i for i, l in enumerate(self.labels)}
        y = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        for n, it in enumerate(items):
            tags = it.target if isinstance(it.target, (list, tuple)) else [it.target]
            for t in tags:
                if t not in index:
                    raise FormatError(f"item {it.id!r}: tag {t!r} is not in the task labels "
                                      f"({len(self.labels)} tags, e.g. {self.labels[:5]})")
                y[n, index[t]] = 1.0
        return y

    #: a tag is predicted when its probability is at least this
    TAG_THRESHOLD = 0.5

    def decode(self, rows, data, choices=None, top=None):
        """``{"prediction": [tags with probability >= 0.5, most probable first], "scores": {tag: probability}}``
        per item (the mean logit of its windows through a sigmoid; several probes: the probabilities averaged).
        ``scores`` holds every tag: the metrics (ROC-AUC, AP) rank the items by them."""
        p = _sigmoid(self.unit_outputs(rows, data).astype(np.float64)).mean(0)
        out = []
        for i in range(p.shape[0]):
            order = np.argsort(-p[i], kind="stable")
            out.append({"prediction": [self.labels[j] for j in order if p[i, j] >= self.TAG_THRESHOLD],
                        "scores": {self.labels[j]: float(p[i, j]) for j in order}})
        return out

    def target_json(self, target):
        return [self.labels[j] for j in np.nonzero(np.asarray(target))[0]]

    def loss(self, out, y):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(out, y[None].expand_as(out), reduction="none").mean((1, 2))

    def fast_scores(self, unit_out, data):
        """Macro ROC-AUC (rank formula, ties broken by order) + macro AP, averaged: the main score."""
        import torch

        y = data["unit_targets"]  # [U, C]
        pos = y.sum(0)
        ok = (pos > 0) & (pos < y.shape[0])
        if not ok.any():
            return np.zeros(unit_out.shape[0])
        y = y[:, ok]
        s = unit_out[:, :, ok]  # [M, U, C']
        order = s.argsort(dim=1)
        ranks = torch.empty_like(s)
        ranks.scatter_(1, order, torch.arange(1, s.shape[1] + 1, dtype=s.dtype)[None, :, None].expand_as(s))
        P = y.sum(0)
        N = y.shape[0] - P
        auc = ((ranks * y[None]).sum(1) - P * (P + 1) / 2) / (P * N)
        desc = s.argsort(dim=1, descending=True)
        ys = torch.gather(y[None].expand_as(s), 1, desc)
        prec = ys.cumsum(1) / torch.arange(1, s.shape[1] + 1, dtype=s.dtype)[None, :, None]
        ap = (prec * ys).sum(1) / P
        return ((auc.mean(1) + ap.mean(1)) / 2).numpy()

    def scores(self, unit_out, data):
        from benchmark.metrics import tagging_scores

        return tagging_scores(data["unit_targets"].numpy(), unit_out)


class RegressionHead(Head):
    type = "regression"

    def item_targets(self, items):
        y = []
        for it in items:
            t = it.target
            if not isinstance(t, (list, tuple)) or len(t) != len(self.labels):
                raise ValueError(f"item {it.id!r}: regression target {t!r} must be {len(self.labels)} numbers "
                                 f"({self.labels})")
            y.append([float(v) for v in t])
        return np.array(y, dtype=np.float32)

    def set_train_stats(self, y_items: np.ndarray):
        self.mean = y_items.mean(0)
        self.std = y_items.std(0) + 1e-8

    def head_state(self):
        """The train targets' mean and std (the probe predicts standardised targets)."""
        return {"target_mean": [float(v) for v in self.mean], "target_std": [float(v) for v in self.std]}

    def load_state(self, state):
        self.mean = np.asarray(state["target_mean"], dtype=np.float32)
        self.std = np.asarray(state["target_std"], dtype=np.float32)

    def decode(self, rows, data, choices=None, top=None):
        """``{"prediction": {dimension: value}}`` per item (e.g. arousal and valence): the mean output of its
        windows, de-standardised with the train targets' statistics (several probes: averaged)."""
        v = (self.unit_outputs(rows, data) * self.std + self.mean).mean(0)
        return [{"prediction": {self.labels[j]: float(v[i, j]) for j in range(len(self.labels))}}
                for i in range(v.shape[0])]

    def unit_score(self, pred, target):
        """The squared error per dimension (the terms of R2's residual sum of squares)."""
        t = np.asarray(target, dtype=np.float64)
        return {"score": {l: float((pred["prediction"][l] - t[j]) ** 2) for j, l in enumerate(self.labels)}}

    def target_json(self, target):
        return {l: float(v) for l, v in zip(self.labels, np.asarray(target).tolist())}

    def row_targets(self, y_items, feats):
        import torch

        z = (y_items - self.mean) / self.std
        return torch.as_tensor(z, dtype=torch.float32)[torch.from_numpy(feats.owner)]

    def loss(self, out, y):
        return ((out - y[None]) ** 2).mean((1, 2))

    def fast_scores(self, unit_out, data):
        import torch

        z = (data["unit_targets"] - torch.as_tensor(self.mean)) / torch.as_tensor(self.std)
        sse = ((unit_out - z[None]) ** 2).sum(1)
        sst = ((z - z.mean(0)) ** 2).sum(0).clamp_min(1e-12)
        return (1 - sse / sst).mean(1).numpy()

    def scores(self, unit_out, data):
        from benchmark.metrics import r2_per_dimension

        pred = unit_out * self.std + self.mean
        return r2_per_dimension(data["unit_targets"].numpy(), pred, self.labels)


class BeatHead(Head):
    """Beat (and downbeat, when the items carry ``extra["downbeats"]``) activations per frame; see the module
    doc and :class:`benchmark.config.BeatConfig`. Row targets are [R, 3]: beat target, downbeat target, and
    whether the row's item has downbeat annotations (the downbeat loss is masked to those)."""
    type = "beat"

    def __init__(self, spec, labels, cfg):
        super().__init__(spec, labels, cfg)
        self.with_downbeats = False  # set by item_targets when any item has downbeat annotations

    def out_dim(self) -> int:
        return 2 if self.with_downbeats else 1

    def item_targets(self, items):
        out = []
        for it in items:
            t = it.target
            if not isinstance(t, (list, tuple)):
                raise ValueError(f"item {it.id!r}: beat target must be a list of beat times in seconds")
            downs = (it.extra or {}).get("downbeats")
            if downs is not None and not isinstance(downs, (list, tuple)):
                raise ValueError(f"item {it.id!r}: extra['downbeats'] must be a list of downbeat times in seconds")
            downs = np.asarray(downs, dtype=np.float64) if downs else None
            self.with_downbeats = self.with_downbeats or downs is not None
            out.append({"beats": np.asarray(t, dtype=np.float64), "downbeats": downs})
        return out

    def row_targets(self, y_items, feats):
        """[R, 3] float32: beat target, downbeat target, downbeat mask. 1 at the row nearest an annotation
        (when within a frame of it); on the train split also ``beat.neighbours`` / ``beat.downbeat_neighbours``
        at +-1, +-2, ... rows (MARBLE smooths the train labels only)."""
        import torch

        y = np.zeros((len(feats.owner), 3), dtype=np.float32)
        bcfg = self.cfg.beat
        train = feats.split == "train"
        near = [list(bcfg.neighbours), list(bcfg.downbeat_neighbours)] if train else [[], []]
        for gi, rows in _rows_by_item(feats.owner).items():
            t = feats.times[rows]
            step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
            for c, key in enumerate(("beats", "downbeats")):
                times = y_items[gi][key]
                if times is None:
                    continue
                if c == 1:
                    y[rows, 2] = 1.0
                for b in times:
                    k = int(np.argmin(np.abs(t - b)))
                    if abs(t[k] - b) > step:
                        continue
                    for d, v in [(0, 1.0)] + [(s * (j + 1), w) for j, w in enumerate(near[c]) for s in (-1, 1)]:
                        if 0 <= k + d < len(rows):
                            y[rows[k + d], c] = max(y[rows[k + d], c], v)
        return torch.from_numpy(y)

    def unit_targets(self, y_items, unit_items):
        return [y_items[u[0]] for u in unit_items]

    def loss(self, out, y, norm: tuple[float, float] | None = None):
        """Per-member BCE [M]: the beat output's mean over rows, plus (with a downbeat output) the downbeat
        output's mean over the rows of items with downbeats. ``norm`` (beat rows, downbeat rows) divides the
        sums instead of this batch's counts, for a batch evaluated in chunks."""
        import torch.nn.functional as F

        bce = F.binary_cross_entropy_with_logits(out, y[None, :, :out.shape[2]].expand_as(out), reduction="none")
        nb, nd = norm if norm is not None else self.loss_norm(y)
        loss = bce[:, :, 0].sum(1) / max(nb, 1.0)
        if out.shape[2] > 1:
            loss = loss + (bce[:, :, 1] * y[None, :, 2]).sum(1) / max(nd, 1.0)
        return loss

    def loss_norm(self, y) -> tuple[float, float]:
        """What :meth:`loss` divides by for the rows ``y``: their count and the count of those with downbeats."""
        return float(y.shape[0]), float(y[:, 2].sum())

    def train_batches(self, rng, data, default_size: int):
        """One epoch's Adam steps as lists of train row indices: with ``beat.crop_s`` > 0, the train tracks in
        a random order, ``beat.crops_per_batch`` per step, each as a random ``crop_s`` crop of its rows (a
        shorter track whole), MARBLE's training; with 0, every row once in a random order in steps of
        ``default_size`` (``probe.frame_batch_size``)."""
        bcfg = self.cfg.beat
        feats = data["feats"]
        if float(bcfg.crop_s) <= 0:
            perm = rng.permutation(len(feats.owner))
            return [perm[i:i + default_size] for i in range(0, len(perm), default_size)]
        by_item = _time_ordered_rows(data)
        tracks = [by_item[k] for k in sorted(by_item)]
        order = rng.permutation(len(tracks))
        n = int(bcfg.crops_per_batch)
        out = []
        for i in range(0, len(order), n):
            parts = []
            for k in order[i:i + n]:
                rows = tracks[k]
                t = feats.times[rows]
                span = t[-1] - t[0] if len(t) > 1 else 0.0
                if span <= float(bcfg.crop_s):
                    parts.append(rows)
                    continue
                a = float(rng.uniform(t[0], t[-1] - float(bcfg.crop_s)))
                parts.append(rows[(t >= a) & (t < a + float(bcfg.crop_s))])
            out.append(np.concatenate(parts))
        return out

    # beat evaluation works on per-track activations, not aggregated units
    def activations(self, row_out: np.ndarray, data, channel: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        feats = data["feats"]
        by_item = _time_ordered_rows(data)
        acts = []
        for u in data["unit_items"]:
            rows = by_item[u[0]]
            acts.append((feats.times[rows], 1 / (1 + np.exp(-row_out[rows, channel]))))
        return acts

    def fast_scores(self, row_out, data):
        """The per-epoch validation beat F of every member: decoded as ``beat.select`` says (``dbn``: the
        reported decoder, MARBLE's monitor; ``peaks``: local maxima, cheaper)."""
        from benchmark.metrics import beat_scores

        fr = data["frame_rate"]
        refs = [t["beats"] for t in data["unit_targets"]]
        decode = self.peaks if str(self.cfg.beat.select) == "peaks" else \
            (lambda t, a: self.track(t, a, fr))
        out = []
        for m in range(row_out.shape[0]):
            est = [decode(t, a) for t, a in self.activations(row_out[m].numpy(), data)]
            out.append(beat_scores(refs, est)["beat_f"])
        return np.array(out)

    def peaks(self, t, a):
        # the threshold adapts to weak activations (half the track's maximum when that is below it), so the
        # early-stopping score is informative before the probe reaches confident outputs
        thr = min(float(self.cfg.beat.peak_threshold), 0.5 * float(a.max()) if len(a) else 0.0)
        left = np.r_[-np.inf, a[:-1]]
        right = np.r_[a[1:], -np.inf]
        keep = (a >= thr) & (a >= left) & (a > right)
        return t[keep]

    def track(self, t, a, frame_rate: float, downbeat: bool = False):
        """Beat (or, with ``downbeat``, downbeat) times from an activation, with the tracker ``beat.tracker``
        names (:data:`BEAT_TRACKERS`); times are those of the rows (``t[0]`` is the first row's time)."""
        if len(a) < 4 or float(a.max()) <= 0:
            return np.zeros(0)
        frames = BEAT_TRACKERS[str(self.cfg.beat.tracker)](a, frame_rate, self.cfg.beat, downbeat)
        frames = np.asarray(frames, dtype=float)
        return np.unique(np.interp(frames, np.arange(len(t)), t)) if len(frames) else np.zeros(0)

    def head_config(self):
        from omegaconf import OmegaConf

        beat = self.cfg.beat
        return {"beat": OmegaConf.to_container(beat, resolve=True) if OmegaConf.is_config(beat) else dict(beat)}

    def head_state(self):
        return {"with_downbeats": bool(self.with_downbeats)}

    def load_state(self, state):
        self.with_downbeats = bool(state.get("with_downbeats", False))

    def decode(self, rows, data, choices=None, top=None):
        """``{"prediction": [beat times, s], "downbeats": [times] (with a downbeat output), "tempo_bpm": bpm}`` per
        track: the activation (several probes: their mean activation; one: exactly :meth:`activations`') decoded by
        ``beat.tracker``; times in seconds from the track's start."""
        from benchmark.metrics import tempo_of

        rows = np.asarray(rows, dtype=np.float32)
        fr = data["frame_rate"]
        out = []
        by_item = _time_ordered_rows(data)
        times = data["feats"].times
        for u in data["unit_items"]:
            r = by_item[u[0]]
            t = times[r]
            act = np.mean([1 / (1 + np.exp(-rows[s][r])) for s in range(len(rows))], axis=0)  # [rows, channels]
            beats = self.track(t, act[:, 0], fr)
            pred = {"prediction": [float(b) for b in beats]}
            if rows.shape[2] > 1:
                pred["downbeats"] = [float(b) for b in self.track(t, act[:, 1], fr, downbeat=True)]
            tempo = tempo_of(beats)
            pred["tempo_bpm"] = tempo if tempo == tempo else None
            out.append(pred)
        return out

    def unit_score(self, pred, target):
        """The track's beat F-measure (``mir_eval.beat.f_measure``, 0.07 s), and its hits, estimated and reference
        beats: what beat F, pooled over tracks, sums."""
        import mir_eval

        from benchmark.metrics import BEAT_WINDOW_S

        ref = np.asarray(target["beats"], dtype=np.float64)
        est = np.asarray(pred["prediction"], dtype=np.float64)
        ok = len(ref) and len(est)
        hits = len(mir_eval.util.match_events(ref, est, BEAT_WINDOW_S)) if ok else 0
        f = float(mir_eval.beat.f_measure(ref, est, BEAT_WINDOW_S)) if ok else 0.0
        return {"score": f, "hits": int(hits), "estimated": int(len(est)), "reference": int(len(ref))}

    def target_json(self, target):
        out = {"beats": [float(b) for b in target["beats"]]}
        if target.get("downbeats") is not None:
            out["downbeats"] = [float(b) for b in target["downbeats"]]
        return out

    def scores(self, row_out, data):
        """beat F (main) and the other beat metrics; with a downbeat output, downbeat F; tempo from the decoded
        beats (benchmark.metrics.tempo_scores)."""
        from benchmark.metrics import beat_scores, tempo_scores

        fr = data["frame_rate"]
        refs = data["unit_targets"]
        est = [self.track(t, a, fr) for t, a in self.activations(row_out, data)]
        out = beat_scores([r["beats"] for r in refs], est)
        out.update(tempo_scores([r["beats"] for r in refs], est))
        if row_out.shape[1] > 1:
            have = [i for i, r in enumerate(refs) if r["downbeats"] is not None]
            if have:
                acts = self.activations(row_out, data, channel=1)
                down = [self.track(*acts[i], fr, downbeat=True) for i in have]
                d = beat_scores([refs[i]["downbeats"] for i in have], down)
                out.update({"downbeat_f": d["beat_f"], "downbeat_precision": d["beat_precision"],
                            "downbeat_recall": d["beat_recall"]})
        return out


def dbn_frames(a: np.ndarray, frame_rate: float, bcfg, downbeat: bool = False) -> np.ndarray:
    """``beat.tracker=dbn``: frames (fractional) of the beats madmom's DBN beat tracker finds in an activation
    (benchmark.beat_tracking.dbn_beats with ``fps`` = the frame rate and the ``beat`` config's settings; MARBLE's
    decoder). With ``downbeat``: the same tracker between ``downbeat_min_bpm`` and ``downbeat_max_bpm``."""
    from benchmark.beat_tracking import dbn_beats

    lo, hi = (bcfg.downbeat_min_bpm, bcfg.downbeat_max_bpm) if downbeat else (bcfg.min_bpm, bcfg.max_bpm)
    beats = dbn_beats(np.asarray(a, dtype=np.float32), frame_rate, min_bpm=float(lo), max_bpm=float(hi),
                      transition_lambda=float(bcfg.transition_lambda), threshold=float(bcfg.threshold))
    return np.asarray(beats, dtype=float) * frame_rate


def librosa_dp_beats(a: np.ndarray, frame_rate: float, bcfg, downbeat: bool = False) -> np.ndarray:
    """``beat.tracker=librosa-dp``: frames of the beats librosa's dynamic-programming tracker finds in an
    activation (``beat.start_bpm``, ``beat.tightness``; a quarter of the start tempo for downbeats)."""
    import librosa

    hop = 512
    start = float(bcfg.start_bpm) / (4.0 if downbeat else 1.0)
    _, beats = librosa.beat.beat_track(onset_envelope=a.astype(np.float32), sr=int(round(frame_rate * hop)),
                                       hop_length=hop, start_bpm=start,
                                       tightness=float(bcfg.tightness), trim=False, units="frames")
    return np.asarray(beats, dtype=int)


#: activation [frames], frame rate, the ``beat`` config, downbeat? -> beat frames; ``beat.tracker`` picks one
#: (the choices of benchmark.config.BEAT_TRACKERS)
BEAT_TRACKERS = {"dbn": dbn_frames, "librosa-dp": librosa_dp_beats}


def _time_ordered_rows(data) -> dict[int, np.ndarray]:
    """item index -> its rows in time order, for a prepared split (derived once, kept in ``data``: the beat head
    reads it for every member at every validation pass)."""
    if "_rows_in_time" not in data:
        feats = data["feats"]
        data["_rows_in_time"] = {gi: rows[np.argsort(feats.times[rows], kind="stable")]
                                 for gi, rows in _rows_by_item(feats.owner).items()}
    return data["_rows_in_time"]


def _rows_by_item(owner: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(owner, kind="stable")
    uniq, starts = np.unique(owner[order], return_index=True)
    ends = list(starts[1:]) + [len(order)]
    return {int(u): order[s:e] for u, s, e in zip(uniq, starts, ends)}


HEADS = {"multiclass": MulticlassHead, "key": KeyHead, "multilabel": MultilabelHead,
         "regression": RegressionHead, "beat": BeatHead}


def make_head(spec, labels, cfg) -> Head:
    if spec.type not in HEADS:
        raise ValueError(f"task {spec.name!r}: type {spec.type!r} has no MLP head (separation uses "
                         f"benchmark.separation)")
    return HEADS[spec.type](spec, labels, cfg)
