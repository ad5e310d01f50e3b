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
- beat: per-frame binary cross-entropy against targets 1 at the frame nearest each beat and 0.5 at
  +-``beat.widen`` frames; activations decoded to beat times by librosa's dynamic-programming beat tracker
  (``librosa.beat.beat_track(onset_envelope=...)``) for every reported score, and by peak picking
  (local maxima above ``beat.peak_threshold``, or half the track's maximum activation when that is lower) for the per-epoch early-stopping score, where running the
  tracker for every probe every epoch would cost more than the training.
"""
from __future__ import annotations

from typing import Any

import numpy as np


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


class MulticlassHead(Head):
    type = "multiclass"

    def item_targets(self, items):
        index = {l: i for i, l in enumerate(self.labels)}
        out = []
        for it in items:
            if str(it.target) not in index:
                raise ValueError(f"item {it.id!r}: label {it.target!r} is not in the task labels "
                                 f"({len(self.labels)} labels, e.g. {self.labels[:5]})")
            out.append(index[str(it.target)])
        return np.array(out, dtype=np.int64)

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
    type = "key"

    def __init__(self, spec, labels, cfg):
        super().__init__(spec, labels, cfg)
        import mir_eval
        import torch

        self.weights = torch.tensor([[mir_eval.key.weighted_score(r, e) for e in self.labels] for r in self.labels])

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

    def fast_scores(self, unit_out, data):
        pred = unit_out.argmax(-1)  # [M, U]
        return self.weights[data["unit_targets"][None].expand_as(pred), pred].mean(1).numpy()

    def scores(self, unit_out, data):
        from benchmark.metrics import accuracy, weighted_key

        ref = data["unit_targets"].numpy()
        est = unit_out.argmax(-1)
        return {"weighted_key": weighted_key([self.labels[i] for i in ref], [self.labels[i] for i in est]),
                "accuracy": accuracy(ref, est)}


class MultilabelHead(Head):
    type = "multilabel"

    def item_targets(self, items):
        index = {l: i for i, l in enumerate(self.labels)}
        y = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        for n, it in enumerate(items):
            tags = it.target if isinstance(it.target, (list, tuple)) else [it.target]
            for t in tags:
                if t not in index:
                    raise ValueError(f"item {it.id!r}: tag {t!r} is not in the task labels")
                y[n, index[t]] = 1.0
        return y

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
    type = "beat"

    def out_dim(self) -> int:
        return 1

    def item_targets(self, items):
        out = []
        for it in items:
            t = it.target
            if not isinstance(t, (list, tuple)):
                raise ValueError(f"item {it.id!r}: beat target must be a list of beat times in seconds")
            out.append(np.asarray(t, dtype=np.float64))
        return out

    def row_targets(self, y_items, feats):
        import torch

        y = np.zeros(len(feats.owner), dtype=np.float32)
        w = int(self.cfg.beat.widen)
        for gi, rows in _rows_by_item(feats.owner).items():
            t = feats.times[rows]
            for b in y_items[gi]:
                k = int(np.argmin(np.abs(t - b)))
                if abs(t[k] - b) > 1.0 / max(len(t), 1) + 0.1:
                    continue
                for d in range(-w, w + 1):
                    if 0 <= k + d < len(rows):
                        y[rows[k + d]] = max(y[rows[k + d]], 1.0 if d == 0 else 0.5)
        return torch.from_numpy(y)[:, None]

    def unit_targets(self, y_items, unit_items):
        return [y_items[u[0]] for u in unit_items]

    def loss(self, out, y):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(out, y[None].expand_as(out), reduction="none").mean((1, 2))

    # beat evaluation works on per-track activations, not aggregated units
    def activations(self, row_out: np.ndarray, data) -> list[tuple[np.ndarray, np.ndarray]]:
        feats = data["feats"]
        acts = []
        for u in data["unit_items"]:
            rows = np.nonzero(feats.owner == u[0])[0]
            acts.append((feats.times[rows], 1 / (1 + np.exp(-row_out[rows, 0]))))
        return acts

    def fast_scores(self, row_out, data):
        from benchmark.metrics import beat_scores

        out = []
        for m in range(row_out.shape[0]):
            est = [self.peaks(t, a) for t, a in self.activations(row_out[m].numpy(), data)]
            out.append(beat_scores(data["unit_targets"], est)["beat_f"])
        return np.array(out)

    def peaks(self, t, a):
        # the threshold adapts to weak activations (half the track's maximum when that is below it), so the
        # early-stopping score is informative before the probe reaches confident outputs
        thr = min(float(self.cfg.beat.peak_threshold), 0.5 * float(a.max()) if len(a) else 0.0)
        left = np.r_[-np.inf, a[:-1]]
        right = np.r_[a[1:], -np.inf]
        keep = (a >= thr) & (a >= left) & (a > right)
        return t[keep]

    def track(self, t, a, frame_rate: float):
        """Beat times from an activation with the tracker ``beat.tracker`` names (:data:`BEAT_TRACKERS`)."""
        if len(a) < 4 or float(a.max()) <= 0:
            return np.zeros(0)
        frames = BEAT_TRACKERS[str(self.cfg.beat.tracker)](a, frame_rate, self.cfg.beat)
        return np.unique(t[np.asarray(frames, dtype=int)])

    def scores(self, row_out, data):
        from benchmark.metrics import beat_scores

        fr = data["frame_rate"]
        est = [self.track(t, a, fr) for t, a in self.activations(row_out, data)]
        return beat_scores(data["unit_targets"], est)


def librosa_dp_beats(a: np.ndarray, frame_rate: float, bcfg) -> np.ndarray:
    """``beat.tracker=librosa-dp``: frames of the beats librosa's dynamic-programming tracker finds in an
    activation (``beat.start_bpm``, ``beat.tightness``)."""
    import librosa

    hop = 512
    _, beats = librosa.beat.beat_track(onset_envelope=a.astype(np.float32), sr=int(round(frame_rate * hop)),
                                       hop_length=hop, start_bpm=float(bcfg.start_bpm),
                                       tightness=float(bcfg.tightness), trim=False, units="frames")
    return np.asarray(beats, dtype=int)


#: activation [frames], frame rate, the ``beat`` config -> beat frames; ``beat.tracker`` picks one (the choices
#: of benchmark.config.BEAT_TRACKERS)
BEAT_TRACKERS = {"librosa-dp": librosa_dp_beats}


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
