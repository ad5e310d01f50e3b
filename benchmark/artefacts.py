"""Trained probes as files: the chosen probe of every result, and its per-item test predictions.

Beside a result ``<results>/runs/<source>/<model>@<revision>/<task>@v<version>.json`` a probe sweep
(benchmark.probes) writes, atomically and before the result itself:

- ``<task>@v<version>.probe.pt``: the chosen probe (the (layer, lr) chosen on validation), one per seed, with
  everything needed to apply it without the training data (:class:`TrainedProbe`). A ``torch.save`` of plain
  dicts, lists, strings, numbers and tensors, read back with ``torch.load(weights_only=True)`` (no code runs);
- ``<task>@v<version>.predictions.jsonl``: one JSON line per (test unit, seed), the unit being an item (a song
  for key): ``{"id", "seed", "target", "prediction", ...}`` with the decoded prediction (benchmark.heads
  ``Head.decode``: a label or key and its five most probable classes, every tag's probability, arousal /
  valence, beat times) and, where the metric has one, the unit's ``score`` (``Head.unit_score``: 1 / 0 for a
  right / wrong class, mir_eval's weighted key score, the squared error per dimension, the track's beat F with
  its hits). Lines are ordered by seed, then unit; floats have 7 significant digits.

The result references both under ``"artefacts"`` (file name, bytes, sha256; a reader checks the sha256, so a file
replaced or cut short by another run is an error, not a silent mismatch). The task version is in the file names
and in the probe (``task.key``): a probe is only ever applied to the task version it was trained for.

Probe file format (``format_version`` :data:`PROBE_FORMAT`)::

    format: "mert-bench-probe", format_version: 1, kind: "mlp"   (KINDS; "separation" below)
    task: {name, version, key, type}, labels: [...]               (the label vocabulary, output order)
    representation: {name, identity, revision, num_layers, dim, sample_rate, frame_rate, pooling, frame_offset_s}
    features: {window, window_s, window_hop_s, pooling, sample_rate, frame_rate, dim, config: {features.*}}
    train: {source, source_version, config_hash, result (file name)}
    selection: {layer ("3" or "weighted"), lr}
    layers: [the feature layers the probe reads]; standardizer: {mean, inv} float32 [len(layers), dim]
    head: {config: {the config sections the head reads}, state: {what it learned besides weights}}
    seeds: [{seed, best_epoch, choice, W1 float16 [dim, H], b1 [H], W2 [H, C], b2 [C], mixing float32 [len(layers)]}]

The separation probe (kind ``"separation"``, :class:`SeparationProbe`; benchmark.separation) has the same header
(``labels``: the stems, ``layers`` and ``standardizer``: the probed layers and their train statistics) and::

    head: {config: {separation: {the run's separation section: n_fft, hop, hidden, num_layers, joint,
                                 wiener_iterations, spectral_input, layer, lr, ...}},
           state: {spectral: None, or {mean, inv} float32 [n_fft / 2 + 1] (the spectral input's train statistics)}}
    seeds: [{seed, epochs_run: {network: epochs}, models: [{name ("joint" or the stem), stems: [the stems it
             estimates, in output order], best_valid, state: {the network's state_dict}}]}]

A state's learned parameters are float16, but the layer-mixing logits ``mix`` (float32, as the MLP probe's
``mixing``; so is any tensor float16 cannot hold); its buffers, BatchNorm's running means and variances, stay
float32: in eval mode BatchNorm computes ``(x - mean) / sqrt(var + 1e-5)``, so a float16 mean is off by up to 5e-4
of its own size, which is a large shift of ``x`` wherever the mean is large against the standard deviation, and a
variance below 6e-5 loses digits (below 6e-8 it becomes 0); they are 2 x (2 hidden + stems x bins) values, under 2 %
of the file. With the embedded corpus's network (one joint 2 x 128 LSTM, STFT 2048) the file is about 1.8 MB; with
MARBLE's (a 3 x 512 network per stem) about 62 MB per seed. The predictions are one line per (test track, seed):
``{"id", "seed", "seconds", "sdr": {stem: global SDR in dB, null for a stem silent in the reference}, "score",
"rms": {stem: the estimate's RMS}}`` (benchmark.separation.score_tracks), computed from the stored probe like the
MLP probe's; ``test_main_per_seed`` is their metric (MARBLE's global SDR, mean over tracks and stems).

Applying it (:meth:`TrainedProbe.row_outputs`): feature rows (the probed layers) are z-scored with the train
statistics, mixed over ``layers`` with ``mixing`` (one-hot for a single-layer probe, the learned softmax weights
for the weighted sum), then ``relu(x @ W1 + b1) @ W2 + b2`` in float32 on the CPU (weights upcast), in chunks of
:data:`CHUNK_ROWS` rows, whatever the device the sweep ran on.

**Why the predictions come from the stored probe.** The weights are stored in float16 (half the bytes; the cached
features are float16 too). The test predictions written beside the result are computed by exactly this function
from the stored weights, so a probe reloaded from its file gives bit-identical predictions on the same features
(same machine and thread count). The result's reported scores are those of the sweep (float32 weights, batched
model), as before probes were kept; the stored probe's own test main score per seed is recorded beside them
(``artefacts.probe.test_main_per_seed``) and differs from it by at most a few rounding flips.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import RunError

PROBE_FORMAT = 1
PROBE_MAGIC = "mert-bench-probe"
#: probe kinds this version can apply: "mlp" (the MLP probe of every task type but separation) and "separation"
#: (:class:`SeparationProbe`)
KINDS = ("mlp", "separation")
PROBE_SUFFIX = ".probe.pt"
PREDICTIONS_SUFFIX = ".predictions.jsonl"
#: rows per forward chunk when applying a stored probe (fixed, so that the same rows give the same bits)
CHUNK_ROWS = 4096
#: classes kept per unit in predictions.jsonl (multiclass and key; ``predict`` writes them all)
TOP_CLASSES = 5
#: significant digits of the floats in predictions.jsonl and predict's files
FLOAT_DIGITS = 7
#: what the result says of a separation probe's weights (benchmark.separation.stored_state)
SEPARATION_WEIGHTS = "float16 (layer mixing, BatchNorm running statistics float32)"


class ProbeError(RunError):
    """A stored probe that cannot be used (missing, damaged, of another model or task version): names the file
    and the command that makes a new one."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compact(obj):
    """``obj`` with every float at :data:`FLOAT_DIGITS` significant digits (NaN / inf as None): JSON that is small
    and the same on every run."""
    if isinstance(obj, dict):
        return {k: compact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [compact(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return float(f"{v:.{FLOAT_DIGITS}g}") if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def json_line(obj) -> str:
    return json.dumps(compact(obj), ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------ the probe

@dataclass
class TrainedProbe:
    """One result's chosen probe, every seed of it, and what applying it needs (see the module doc)."""

    task: dict[str, Any]
    labels: list[str]
    representation: dict[str, Any]
    features: dict[str, Any]
    train: dict[str, Any]
    selection: dict[str, Any]
    layers: list[int]
    mean: Any                       # torch float32 [len(layers), dim]
    inv: Any                        # torch float32 [len(layers), dim]
    head: dict[str, Any]            # {"config": ..., "state": ...}
    seeds: list[dict[str, Any]]     # per seed: seed, best_epoch, choice, W1, b1, W2, b2, mixing
    kind: str = "mlp"
    format_version: int = PROBE_FORMAT

    # -- building -------------------------------------------------------------------------------------------
    @classmethod
    def from_sweep(cls, res, chosen: dict, head, spec, rep, cfg, train: dict[str, Any]) -> "TrainedProbe":
        """The chosen member (``chosen``: benchmark.probes.summarize's ``chosen`` row) of a sweep run with
        ``keep_states``, for every seed; ``train``: source, source_version, config_hash and result file name."""
        import torch

        from benchmark.probes import chosen_index

        if not res.states or not res.standardizer:
            raise ValueError("the sweep kept no states: train it with keep_states=True to store its probe")
        mi = chosen_index(res, chosen)
        member = res.members[mi]
        all_layers = list(res.layers)
        pos = list(range(len(all_layers))) if member.layer is None else [all_layers.index(member.layer)]
        seeds = []
        for s, seed in enumerate(res.seeds):
            st = res.states[s]
            choice = res.choices[s][mi] if s < len(res.choices) and res.choices[s] is not None else None
            seeds.append({"seed": int(seed), "best_epoch": int(res.best_epoch[s][mi]), "choice": choice,
                          "W1": st["W1"][mi].clone(), "b1": st["b1"][mi, 0].clone(),
                          "W2": st["W2"][mi].clone(), "b2": st["b2"][mi, 0].clone(),
                          "mixing": st["mixing"][mi, pos].to(torch.float32).clone()})
        fcfg = _plain(cfg.features)
        return cls(task=_task_of(spec), labels=[str(l) for l in head.labels],
                   representation=_representation_of(rep), features=feature_recipe(spec, rep, fcfg),
                   train=dict(train), selection={"layer": chosen["layer"], "lr": float(chosen["lr"])},
                   layers=[all_layers[p] for p in pos], mean=res.standardizer["mean"][pos].clone(),
                   inv=res.standardizer["inv"][pos].clone(),
                   head={"config": head.head_config(), "state": head.head_state()}, seeds=seeds)

    # -- files ----------------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The probe file's content (``torch.save`` of plain containers and tensors)."""
        import torch

        obj = {"format": PROBE_MAGIC, "format_version": int(self.format_version), "kind": self.kind,
               "task": self.task, "labels": list(self.labels), "representation": self.representation,
               "features": self.features, "train": self.train, "selection": self.selection,
               "layers": [int(l) for l in self.layers],
               "standardizer": {"mean": self.mean.contiguous(), "inv": self.inv.contiguous()},
               "head": self.head, "seeds": [{k: (v.contiguous() if hasattr(v, "contiguous") else v)
                                             for k, v in s.items()} for s in self.seeds]}
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "probe") -> "TrainedProbe":
        """A probe from its file's content; anything that is not a probe of a known format and kind is a
        ProbeError naming ``where``."""
        import torch

        try:
            obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except Exception as e:  # noqa: BLE001 - whatever a damaged zip / pickle raises
            why = " ".join(str(e).split())[:200]
            raise ProbeError(f"{where}: not a readable probe file ({type(e).__name__}: {why})") from None
        if not isinstance(obj, dict) or obj.get("format") != PROBE_MAGIC:
            raise ProbeError(f"{where}: not a mert-bench probe file")
        if int(obj.get("format_version", 0)) > PROBE_FORMAT:
            raise ProbeError(f"{where}: probe format {obj.get('format_version')} is newer than this mert-bench reads "
                             f"({PROBE_FORMAT}); update mert-bench")
        if obj.get("kind") not in KINDS:
            raise ProbeError(f"{where}: a probe of kind {obj.get('kind')!r}, which this version cannot apply "
                             f"(it applies {', '.join(KINDS)})")
        klass = SeparationProbe if obj.get("kind") == "separation" else TrainedProbe
        try:
            probe = klass(task=obj["task"], labels=list(obj["labels"]), representation=obj["representation"],
                        features=obj["features"], train=obj["train"], selection=obj["selection"],
                        layers=[int(l) for l in obj["layers"]], mean=obj["standardizer"]["mean"],
                        inv=obj["standardizer"]["inv"], head=obj["head"], seeds=list(obj["seeds"]),
                        kind=obj["kind"], format_version=int(obj["format_version"]))
            probe._check()
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ProbeError(f"{where}: damaged probe file ({type(e).__name__}: {e})") from None
        return probe

    def _check(self) -> None:
        """Shapes agree (a damaged or hand-edited file is refused before any audio is read)."""
        L, D = len(self.layers), int(self.mean.shape[-1])
        if tuple(self.mean.shape) != (L, D) or tuple(self.inv.shape) != (L, D) or not self.seeds:
            raise ValueError(f"standardizer of shape {tuple(self.mean.shape)} for {L} layers, {len(self.seeds)} seeds")
        for s in self.seeds:
            H, C = int(s["W2"].shape[0]), int(s["W2"].shape[1])
            if tuple(s["W1"].shape) != (D, H) or tuple(s["b1"].shape) != (H,) or tuple(s["b2"].shape) != (C,) \
                    or tuple(s["mixing"].shape) != (L,):
                raise ValueError(f"seed {s.get('seed')}: weights of shapes W1 {tuple(s['W1'].shape)}, "
                                 f"W2 {tuple(s['W2'].shape)} for features of dim {D}")

    @property
    def seed_numbers(self) -> list[int]:
        return [int(s["seed"]) for s in self.seeds]

    @property
    def task_type(self) -> str:
        return str(self.task["type"])

    # -- applying -------------------------------------------------------------------------------------------
    def row_outputs(self, x) -> np.ndarray:
        """Feature rows ``x`` ([R, num_layers, dim]: a numpy array or the cache's ShardedRows) -> the outputs of
        every seed's probe, float32 [S, R, C] (see the module doc for the arithmetic)."""
        import torch

        from benchmark.probes import select_rows

        R = int(x.shape[0])
        if int(x.shape[2]) != int(self.mean.shape[-1]):
            raise ProbeError(f"features of dim {x.shape[2]}, the probe was trained on dim {self.mean.shape[-1]}")
        params = [(s["W1"].float(), s["b1"].float(), s["W2"].float(), s["b2"].float(), s["mixing"].float())
                  for s in self.seeds]
        C = int(params[0][2].shape[1])
        out = np.empty((len(params), R, C), dtype=np.float32)
        mean, inv = self.mean.float(), self.inv.float()
        with torch.no_grad():
            for i in range(0, R, CHUNK_ROWS):
                idx = np.arange(i, min(R, i + CHUNK_ROWS))
                z = (torch.from_numpy(np.ascontiguousarray(select_rows(x, idx, self.layers))).float() - mean) * inv
                for s, (W1, b1, W2, b2, mix) in enumerate(params):
                    xm = z[:, 0] if len(self.layers) == 1 else torch.einsum("bld,l->bd", z, mix)
                    h = torch.relu(torch.addmm(b1, xm, W1))
                    out[s, idx[0]:idx[-1] + 1] = torch.addmm(b2, h, W2).numpy()
        return out

    def make_head(self, spec):
        """The task head this probe decodes with (benchmark.heads), as it was in the sweep."""
        from benchmark.heads import Head

        return Head.from_stored(spec, self.labels, self.head["config"], self.head["state"])

    def feature_config(self, device: str | None = None, **changes):
        """The ``features`` config the probe's features were extracted with (for new audio: the same windows,
        chunks, skip rules and precision), on ``device``; ``changes``: other keys to set (e.g.
        ``max_skip_fraction``)."""
        from omegaconf import OmegaConf

        from benchmark.config import FeatureConfig

        cfg = OmegaConf.structured(FeatureConfig)
        known = set(cfg.keys())
        cfg = OmegaConf.merge(cfg, {k: v for k, v in self.features["config"].items() if k in known})
        if device is not None:
            cfg.device = str(device)
        for k, v in changes.items():
            cfg[k] = v
        return cfg

    def check_representation(self, rep, where: str) -> None:
        """``rep`` computes the features this probe was trained on (same name, weights and pooling), else a
        ProbeError saying what differs."""
        have = _representation_of(rep)
        want = self.representation
        for k in ("identity", "pooling", "num_layers", "dim", "sample_rate"):
            if have.get(k) != want.get(k):
                raise ProbeError(f"{where}: trained on the features of {want['name']} ({k} {want.get(k)!r}); --model "
                                 f"{rep.name} gives {k} {have.get(k)!r} (other weights or settings): train a probe "
                                 f"for it with `python -m benchmark run --task {self.task['name']} --model "
                                 f"{rep.name}`")

    def check_task(self, spec, where: str) -> None:
        if self.task.get("key") != spec.key:
            raise ProbeError(f"{where}: a probe for task {self.task.get('key')}, the registry's is {spec.key} (the "
                             f"task changed version since): train a new one with `python -m benchmark run --task "
                             f"{spec.name} --overwrite always`")


@dataclass
class SeparationProbe(TrainedProbe):
    """The separation probe of a result (kind "separation"; benchmark.separation, the module doc's format): per
    seed, the Open-Unmix networks and the stems each estimates, rebuilt with :meth:`stem_models`."""

    kind: str = "separation"

    @classmethod
    def from_parts(cls, parts: dict[str, Any], spec, rep, cfg, train: dict[str, Any]) -> "SeparationProbe":
        """The probe of :func:`benchmark.separation.run_separation`'s ``_trained`` parts (the stored states, the
        standardisation, the separation config), with the header of ``spec``, ``rep`` and ``cfg``."""
        return cls(task=_task_of(spec), labels=list(parts["stems"]), representation=_representation_of(rep),
                   features=feature_recipe(spec, rep, _plain(cfg.features)), train=dict(train),
                   selection=dict(parts["selection"]), layers=list(parts["layers"]), mean=parts["mean"],
                   inv=parts["inv"], head={"config": {"separation": dict(parts["config"])},
                                           "state": {"spectral": parts["spectral"]}}, seeds=list(parts["seeds"]))

    @property
    def separation_config(self) -> dict[str, Any]:
        """The ``separation`` config section the probe was trained with (the network, the STFT, the decoding)."""
        return self.head["config"]["separation"]

    def net_shape(self) -> dict[str, int]:
        from benchmark.separation import net_shape

        return net_shape(int(self.mean.shape[-1]), self.separation_config, len(self.layers))

    def stem_models(self, s: int) -> list:
        """Seed number ``s``'s networks (benchmark.separation._StemModel: the stems each estimates, the network in
        eval mode with its stored weights upcast to float32)."""
        from benchmark.separation import stored_models

        return stored_models(self.net_shape(), self.seeds[s]["models"], self.labels)

    def _check(self) -> None:
        """The config, the standardiser, the spectral statistics and every network fit together; each seed estimates
        every stem once."""
        L, D = len(self.layers), int(self.mean.shape[-1])
        if tuple(self.mean.shape) != (L, D) or tuple(self.inv.shape) != (L, D) or not self.seeds or not self.labels:
            raise ValueError(f"standardizer of shape {tuple(self.mean.shape)} for {L} layers, {len(self.seeds)} seeds")
        sc = self.separation_config
        for k in ("n_fft", "hop", "hidden", "num_layers", "wiener_iterations", "spectral_input"):
            if k not in sc:
                raise KeyError(f"separation config without {k!r}")
        shape = self.net_shape()
        spectral = self.head["state"].get("spectral")
        bins = (shape["n_freq"],)
        if bool(sc["spectral_input"]) != (spectral is not None) or spectral is not None and (
                tuple(spectral["mean"].shape) != bins or tuple(spectral["inv"].shape) != bins):
            raise ValueError(f"spectral input statistics do not fit spectral_input={sc['spectral_input']} with "
                             f"{shape['n_freq']} bins")
        for s, seed in enumerate(self.seeds):
            stems = [x for m in seed["models"] for x in m["stems"]]
            if sorted(stems) != sorted(self.labels):
                raise ValueError(f"seed {seed.get('seed')}: its networks estimate {stems}, not every stem of "
                                 f"{list(self.labels)} once")
            self.stem_models(s)

    def row_outputs(self, x):
        raise ProbeError("a separation probe is applied by benchmark.separation (evaluate_stored, separate_stored)")

    def make_head(self, spec):
        raise ProbeError("a separation probe has no benchmark.heads head (benchmark.separation applies it)")


def _plain(section) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(section, resolve=True) if OmegaConf.is_config(section) else dict(section)


def _task_of(spec) -> dict[str, Any]:
    return {"name": spec.name, "version": int(spec.version), "key": spec.key, "type": spec.type}


def _representation_of(rep) -> dict[str, Any]:
    return {"name": str(rep.name), "identity": str(rep.identity()), "revision": str(rep.identity())[:8],
            "num_layers": int(rep.num_layers), "dim": int(rep.dim), "sample_rate": int(rep.sample_rate),
            "frame_rate": float(rep.frame_rate), "pooling": getattr(rep, "pooling", "mean"),
            "frame_offset_s": float(getattr(rep, "frame_offset_s", 0.0) or 0.0)}


def feature_recipe(spec, rep, fcfg: dict[str, Any]) -> dict[str, Any]:
    """How a probe's input rows are made from audio: the task's window policy, the representation's pooling,
    sample and frame rate, and the run's ``features`` section (chunks, window tail, skip rules, precision)."""
    frames = spec.window == "frames"
    pooling = None if frames else getattr(rep, "pooling", "mean")
    return {"window": spec.window, "window_s": spec.window_s, "window_hop_s": spec.window_hop_s,
            "pooling": pooling, "sample_rate": int(rep.sample_rate), "frame_rate": float(rep.frame_rate),
            "dim": int(rep.dim) * (2 if pooling == "mean_std" else 1), "config": dict(fcfg)}


# ----------------------------------------------------------------------------------- scores and predictions

def seed_scores(head, probe: TrainedProbe, rows: np.ndarray, data, spec) -> list[dict[str, float]]:
    """Every metric of each seed's probe from its row outputs (``rows`` [S, R, C]) on a labelled split, with
    ``main``: what the sweep computes for a member, with the probe's own validation choices."""
    out = []
    for s, seed in enumerate(probe.seeds):
        u = head.unit_outputs(rows[s:s + 1], data)[0]
        sc = head.scores_with(u, data, seed.get("choice"))
        sc["main"] = spec.main_score_of(sc)
        out.append(sc)
    return out


def prediction_lines(head, probe: TrainedProbe, rows: np.ndarray, data) -> list[dict[str, Any]]:
    """predictions.jsonl's records (see the module doc) for a labelled split: per seed, per unit."""
    ids = head.unit_ids(data)
    targets = list(data["unit_targets"])
    lines = []
    for s, seed in enumerate(probe.seeds):
        preds = head.decode(rows[s:s + 1], data, [seed.get("choice")], top=TOP_CLASSES)
        for uid, pred, target in zip(ids, preds, targets):
            lines.append({"id": uid, "seed": int(seed["seed"]), "target": head.target_json(target), **pred,
                          **head.unit_score(pred, target)})
    return lines


def predictions_text(lines: list[dict]) -> str:
    return "".join(json_line(line) + "\n" for line in lines)


# ------------------------------------------------------------------------------ files written with a result

@dataclass
class ArtefactFiles:
    """Files written beside a result (by the suffix that follows the result's stem) and what the result says of
    each under ``"artefacts"`` besides its file name, bytes and sha256. Travels in the record under the private
    key ``_artefacts`` (never written to its JSON) until benchmark.pipeline.save_result writes it."""

    files: dict[str, bytes] = field(default_factory=dict)   # "probe" / "predictions" -> content
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    suffixes: dict[str, str] = field(default_factory=lambda: {"probe": PROBE_SUFFIX,
                                                              "predictions": PREDICTIONS_SUFFIX})

    def name(self, what: str, result_path) -> str:
        return Path(result_path).stem + self.suffixes[what]

    def section(self, result_path) -> dict[str, Any]:
        """The result's ``"artefacts"``: per file, its name (beside the result), bytes, sha256 and info."""
        return {what: {"file": self.name(what, result_path), "bytes": len(data), "sha256": sha256(data),
                       **self.info.get(what, {})} for what, data in self.files.items()}

    def write(self, result_path, written: list | None = None) -> list[Path]:
        """Write every file atomically beside ``result_path``; the paths written (appended to ``written`` as they
        are, so that a caller whose later write fails knows them even when this one raises)."""
        from tasks.format import atomic_write_bytes

        out = [] if written is None else written
        for what, data in self.files.items():
            p = Path(result_path).with_name(self.name(what, result_path))
            atomic_write_bytes(p, data)
            out.append(p)
        return out


def sweep_artefacts(trained: dict[str, Any], spec, rep, cfg, train: dict[str, Any]) -> ArtefactFiles:
    """The probe file and the test predictions of a finished sweep (``trained``: head, res, chosen, test from
    benchmark.pipeline.run_probes). The predictions, and the stored probe's test scores, come from the stored
    (float16) probe, as a reload gives them (module doc)."""
    if trained.get("kind") == "separation":
        return separation_artefacts(trained, spec, rep, cfg, train)
    head, res, chosen, test = trained["head"], trained["res"], trained["chosen"], trained["test"]
    probe = TrainedProbe.from_sweep(res, chosen, head, spec, rep, cfg, train)
    files = ArtefactFiles()
    files.files["probe"] = probe.to_bytes()
    info: dict[str, Any] = {"format_version": PROBE_FORMAT, "kind": probe.kind, "weights": "float16",
                            "seeds": probe.seed_numbers, "layer": probe.selection["layer"],
                            "lr": probe.selection["lr"]}
    if test is not None:
        rows = probe.row_outputs(test["feats"].x)
        lines = prediction_lines(head, probe, rows, test)
        files.files["predictions"] = predictions_text(lines).encode("utf-8")
        files.info["predictions"] = {"split": "test", "lines": len(lines), "units": len(lines) // len(probe.seeds)}
        info["test_main_per_seed"] = [float(s["main"]) for s in seed_scores(head, probe, rows, test, spec)]
    files.info["probe"] = info
    return files


def separation_artefacts(parts: dict[str, Any], spec, rep, cfg, train: dict[str, Any]) -> ArtefactFiles:
    """The probe file and the test predictions of a separation run (``parts``: run_separation's ``_trained``, whose
    predictions and per-seed scores it computed from the stored probe, as a reload computes them)."""
    probe = SeparationProbe.from_parts(parts, spec, rep, cfg, train)
    files = ArtefactFiles()
    files.files["probe"] = probe.to_bytes()
    lines = parts["lines"]
    files.files["predictions"] = predictions_text(lines).encode("utf-8")
    files.info["predictions"] = {"split": "test", "lines": len(lines), "units": len(lines) // len(probe.seeds)}
    files.info["probe"] = {"format_version": PROBE_FORMAT, "kind": probe.kind, "weights": SEPARATION_WEIGHTS,
                           "seeds": probe.seed_numbers, "layer": probe.selection["layer"],
                           "lr": probe.selection["lr"],
                           "models": "joint" if bool(probe.separation_config.get("joint")) else "one per stem",
                           "test_main_per_seed": [float(m) for m in parts["test_main_per_seed"]]}
    return files
