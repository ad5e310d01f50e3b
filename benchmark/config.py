"""Run configuration: omegaconf structured configs, merged in one documented order.

    defaults (the dataclasses below)
      <- task        (benchmark defaults per task type, then TaskSpec.probe of the task)
      <- data        (defaults per data source kind, ``DATA_DEFAULTS``: the embedded corpus's own sizes, MARBLE's
                      lr rule, weighted sum and fp32 on real data; then per kind and task type,
                      ``DATA_TYPE_DEFAULTS``: 3 probe seeds on embedded clip tasks; per kind and task name,
                      ``DATA_TASK_DEFAULTS``: MARBLE's per-task schedule on real data; per kind and corpus size,
                      ``DATA_SIZE_DEFAULTS``: the tiny corpus's small separation budget. docs/protocol.md)
      <- model       (the representation's ``config_overrides``, e.g. a smaller extraction batch)
      <- grid        (``--grid full|fast``)
      <- --config FILE (yaml with the same sections)
      <- command-line ``KEY=VALUE`` overrides (``probe.max_epochs=5``)

Every layer is merged into a struct config: a key that does not exist is an error naming the key and the
valid ones. There is one config per run, never a file per model x task.

Values are checked against the ranges declared on the fields (``check=`` in the field metadata, see :class:`Check`)
once the merge is done and before any work starts: a value out of range is a :class:`ConfigError` naming the
key, the value and the range, so a run that could not be valid never writes (or replaces) a result.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from tasks.base import TASK_TYPES

FULL_LRS = [5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2]
PRECISIONS = ("auto", "fp32", "bf16")
PRUNE = ("none", "halving")
PLATEAU_MODES = ("halving", "torch")
WEIGHTED_LAYERS = ("all", "transformer")
KEY_ENSEMBLES = ("mean_logits", "select", "vote", "max", "gmean", "mean")
BEAT_TRACKERS = ("dbn", "librosa-dp")
BEAT_SELECT = ("dbn", "peaks")
WINDOW_TAILS = ("overlap", "keep")
FEWSHOT_CLASSIFIERS = ("centroid", "linear")
LORA_AUTO = "auto"  # finetune.lora.targets: the representation's attention projections (benchmark.finetune)


@dataclass(frozen=True)
class Check:
    """The valid values of a config field: a numeric range (``lo``/``hi``, either end open or closed) or a set
    of ``choices``; for a list field, every element (and ``nonempty``). Declared on the field with
    :func:`checked` and enforced by :func:`check_values`."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    nonempty: bool = False

    def describe(self) -> str:
        if self.choices:
            names = [str(c) for c in self.choices]
            return "one of " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0])
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"

    def problem(self, value) -> str | None:
        """None when ``value`` is valid, else what is wrong with it."""
        if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(value, str):
            values = list(value)
            if self.nonempty and not values:
                return "must not be empty"
            for v in values:
                p = self.problem(v)
                if p:
                    return f"element {v!r} {p}"
            return None
        if self.choices:
            return None if value in self.choices else f"must be {self.describe()}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return f"must be a number {self.describe()}"
        bad = ((self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo))
               or (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)))
        return f"must be {self.describe()}" if bad else None


def checked(default=None, check: Check | None = None, *, factory=None, neutral=None, neutral_with: str | None = None):
    """A dataclass field with a declared :class:`Check` (``factory`` for mutable defaults).

    Hash neutrality (for keys added after results were written, so that those results keep their config hash
    and are not rerun): ``neutral`` is the value under which the key changes nothing, and it is then left out
    of the config hash; ``neutral_with="KEY"`` leaves this key out whenever the key KEY of its section is left
    out (the settings of a feature that is off)."""
    meta: dict[str, Any] = {"check": check} if check is not None else {}
    if neutral is not None:
        meta["neutral"] = neutral
    if neutral_with is not None:
        meta["neutral_with"] = neutral_with
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


AT_LEAST_1 = Check(lo=1)
NON_NEGATIVE = Check(lo=0)
POSITIVE = Check(lo=0, lo_open=True)
FRACTION = Check(lo=0, hi=1)


@dataclass
class ProbeConfig:
    hidden: int = checked(512, AT_LEAST_1)                   # MLP D -> hidden -> ReLU -> Dropout -> C
    dropout: float = checked(0.2, Check(lo=0, hi=1, hi_open=True))
    batch_size: int = checked(64, AT_LEAST_1)                # rows per Adam step (clips / windows)
    frame_batch_size: int = checked(1024, AT_LEAST_1)        # rows per step for frame-level tasks (beat)
    lrs: list[float] = checked(check=Check(lo=0, lo_open=True, nonempty=True), factory=lambda: list(FULL_LRS))
    max_epochs: int = checked(100, AT_LEAST_1)
    min_epochs: int = checked(1, AT_LEAST_1)
    patience: int = checked(10, AT_LEAST_1)                  # early stopping: epochs without a better valid score
    plateau_patience: int = checked(3, AT_LEAST_1)           # lr halved after this many epochs without improvement
    plateau_factor: float = checked(0.5, Check(lo=0, hi=1, lo_open=True))
    # the plateau rule (benchmark.probes._halve_lr_on_plateau; docs/protocol.md): "halving" (ours) multiplies the lr
    # by plateau_factor every plateau_patience epochs without a better validation score; "torch" is
    # torch.optim.lr_scheduler.ReduceLROnPlateau(mode="max", factor=plateau_factor, patience=plateau_patience,
    # threshold=plateau_threshold, threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8), MARBLE's scheduler
    # (benchmark/models/probers.py: configure_optimizers), its own best and bad-epoch count per member
    plateau_mode: str = checked("halving", Check(choices=PLATEAU_MODES), neutral="halving")  # halving | torch
    plateau_threshold: float = checked(1e-4, NON_NEGATIVE, neutral_with="plateau_mode")  # torch: relative threshold
    weight_decay: float = checked(0.0, NON_NEGATIVE)
    layers: str = "all"               # "all" or a comma list of layer indices ("6,7"), checked against the model
    weighted_sum: bool = True         # also train a softmax-weighted sum of all layers
    # which probed layers the weighted sum mixes: "all" (ours: 0..L, the CNN / embedding output too) or
    # "transformer" (MARBLE's layer=all: 1..L, the transformer layers; layer 0 left out when the model has more
    # than one layer)
    weighted_layers: str = checked("all", Check(choices=WEIGHTED_LAYERS), neutral="all")  # all | transformer
    # key (benchmark.heads.KeyHead): how a song's 30 s clip logits become one prediction. "mean_logits" (ours: the
    # mean of the logits); "select" (MARBLE, benchmark/tasks/GS/utils.py: each of vote / max / gmean / mean is
    # scored, the best on validation is monitored and chosen, and scored on test); or one of those four fixed
    key_ensemble: str = checked("mean_logits", Check(choices=KEY_ENSEMBLES), neutral="mean_logits")
    seeds: int = checked(1, AT_LEAST_1)
    standardize: bool = True          # z-score features with train statistics (per layer and dimension)
    # successive halving of the sweep (benchmark/probes.py): "none" trains every member until it stops early;
    # "halving" drops, after each rung (epochs completed), the worse members of those still training
    prune: str = checked("none", Check(choices=PRUNE), neutral="none")  # none | halving
    prune_rungs: list[int] = checked(check=AT_LEAST_1, factory=lambda: [2, 4, 8, 16, 32], neutral_with="prune")
    prune_eta: float = checked(2.0, Check(lo=1, lo_open=True), neutral_with="prune")  # a rung keeps the best
    prune_keep_per_layer: int = checked(1, NON_NEGATIVE, neutral_with="prune")  # ceil(n / eta) of the n still
    # training, and always the best prune_keep_per_layer of every layer (and of the weighted sum)


@dataclass
class FeatureConfig:
    batch_seconds: float = checked(240.0, POSITIVE)          # audio seconds per model batch (padding included)
    max_chunk_s: float = checked(30.0, Check(lo=1))          # longer audio is cut into chunks of at most this
    shard_items: int = checked(64, AT_LEAST_1)               # items per cache shard (the unit of resume)
    device: str = "cpu"               # cpu, cuda, cuda:1, mps (checked against what torch sees: check_device)
    min_seconds: float = checked(0.1, NON_NEGATIVE)          # shorter items are skipped ("too short")
    silence_peak: float = checked(1e-4, NON_NEGATIVE)        # items whose peak is below this are skipped ("silent")
    max_skip_fraction: float = checked(0.05, FRACTION)       # more skipped items than this in a split fails the run
    # the tail of a windowed item after its last full window (TaskSpec.window == "window"): "overlap" (ours) adds a
    # window ending at the item's end when the tail is at least half a window, else drops it; "keep" (MARBLE,
    # benchmark/models/musichubert_hf/extract_bert_features.py) keeps the tail as a shorter last window when it is
    # at least 1 s. Hash- and cache-neutral at "overlap"; the real default for the MTG tasks (docs/protocol.md)
    window_tail: str = checked("overlap", Check(choices=WINDOW_TAILS), neutral="overlap")
    # numeric precision of everything that runs on ``device`` (the representation's forward and the probe
    # training): "auto" = bf16 autocast on a CUDA device that supports bfloat16, fp32 everywhere else (so the
    # CPU default is plain float32); "fp32"; "bf16" = torch.autocast(bfloat16) (CPU, CUDA with bf16 support,
    # MPS). Parameters stay float32 and cached features float16 either way. Resolved once per run
    # (benchmark.precision.resolve_precision); the result's config records the resolved value, and a bf16 run
    # gets its own feature cache entry and config hash. Handcrafted baselines always compute in fp32.
    # The runner records the resolved value ("fp32" or "bf16", never "auto"): fp32 is hash-neutral, so only bf16
    # runs hash differently from the results written before the key existed.
    precision: str = checked("auto", Check(choices=PRECISIONS), neutral="fp32")  # auto | fp32 | bf16


@dataclass
class BeatConfig:
    """The beat probe (benchmark.heads.BeatHead). MARBLE's protocol by default: a per-frame MLP with two
    outputs (beat, downbeat) trained with binary cross-entropy on random ``crop_s`` crops of the train tracks,
    ``crops_per_batch`` crops per Adam step, targets 1 at the frame of an annotation and ``neighbours`` /
    ``downbeat_neighbours`` at +-1, +-2, ... frames (train only); valid and test tracks whole; activations
    decoded by madmom's DBN beat tracker (benchmark.beat_tracking.dbn_beats: ``min_bpm`` .. ``max_bpm``, the
    downbeat activation by the same tracker at ``downbeat_min_bpm`` .. ``downbeat_max_bpm``)."""
    tracker: str = checked("dbn", Check(choices=BEAT_TRACKERS))  # dbn | librosa-dp (librosa's DP tracker)
    select: str = checked("dbn", Check(choices=BEAT_SELECT))  # the per-epoch validation decoder: dbn | peaks
    neighbours: list[float] = checked(check=FRACTION, factory=lambda: [0.95, 0.5])
    downbeat_neighbours: list[float] = checked(check=FRACTION, factory=lambda: [0.95, 0.5, 0.25])
    crop_s: float = checked(10.0, NON_NEGATIVE)            # 0: every train frame, probe.frame_batch_size per step
    crops_per_batch: int = checked(64, AT_LEAST_1)
    min_bpm: float = checked(55.0, POSITIVE)
    max_bpm: float = checked(215.0, POSITIVE)
    transition_lambda: float = checked(100.0, POSITIVE)
    threshold: float = checked(0.0, FRACTION)
    downbeat_min_bpm: float = checked(18.0, POSITIVE)
    downbeat_max_bpm: float = checked(72.0, POSITIVE)
    tightness: float = checked(100.0, POSITIVE)              # librosa-dp only
    start_bpm: float = checked(120.0, POSITIVE)              # librosa-dp only
    peak_threshold: float = checked(0.5, FRACTION)           # select=peaks: local maxima above this


@dataclass
class SeparationConfig:
    """The separation probe (benchmark/separation.py); the defaults are MARBLE v1's (MUSDB18_prober.py and
    MUSDB18_dataset.py of a43992899/MARBLE-Benchmark; docs/protocol.md, "Separation")."""
    hidden: int = checked(512, AT_LEAST_1)                   # LSTM units (MARBLE: 3 x 512, unidirectional)
    num_layers: int = checked(3, AT_LEAST_1)
    n_fft: int = checked(2048, Check(lo=16))                 # MARBLE: 2048 / 320 at 24 kHz
    hop: int = checked(320, AT_LEAST_1)
    segment_s: float = checked(6.0, POSITIVE)                # training segments
    lr: float = checked(1e-3, POSITIVE)
    batch_size: int = checked(64, AT_LEAST_1)
    max_epochs: int = checked(100, AT_LEAST_1)
    patience: int = checked(10, AT_LEAST_1)                  # early stopping on the validation global SDR
    plateau_patience: int = checked(3, AT_LEAST_1)           # lr x plateau_factor after this many epochs without gain
    plateau_factor: float = checked(0.5, Check(lo=0, hi=1, lo_open=True))
    samples_per_track: int = checked(64, AT_LEAST_1)         # an epoch: every train track this many times
    steps_per_epoch: int = checked(0, NON_NEGATIVE)          # > 0: an epoch is this many batches of random tracks
    joint: bool = False                                      # one network for every stem (MARBLE: one per stem)
    wiener_iterations: int = checked(1, NON_NEGATIVE)        # EM iterations of the Wiener filter (0: mixture phase)
    spectral_input: bool = False                             # also feed the z-scored log magnitude (MARBLE: no)
    layer: str = "weighted"           # "weighted" (softmax sum of layers) or a layer index (checked on the model)


@dataclass
class FewshotConfig:
    """``run --mode fewshot`` (benchmark/fewshot.py): ``shots`` labelled train items per class (``--shots``),
    ``draws`` support sets (seeds 0 .. draws - 1), classified by the nearest class centroid (cosine, on z-scored
    pooled embeddings) or, with ``classifier=linear``, a logistic regression fitted on the support set. Every key
    is hash-neutral at its default and the section is left out of a recorded config while it holds only defaults
    (:data:`OPTIONAL_SECTIONS`), so the frozen-probe results keep their config hashes."""
    shots: int = checked(5, AT_LEAST_1, neutral=5)
    draws: int = checked(10, AT_LEAST_1, neutral=10)
    classifier: str = checked("centroid", Check(choices=FEWSHOT_CLASSIFIERS), neutral="centroid")  # centroid | linear


@dataclass
class LoraSettings:
    """``finetune.lora``: the LoRA adapters of ``--mode lora`` (peft's LoraConfig: ``r``, ``lora_alpha``,
    ``lora_dropout``, ``target_modules``). ``targets``: ``auto`` (the representation's attention projections: MERT's
    fused ``qkv_proj`` and ``out_proj``; a transformers encoder's ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``)
    or a comma list of module names (a module is adapted when its name is one of them or ends with ``.NAME``);
    ``lr``: the learning rate of the LoRA matrices."""
    r: int = checked(8, AT_LEAST_1)
    alpha: float = checked(16.0, POSITIVE)
    dropout: float = checked(0.05, Check(lo=0, hi=1, hi_open=True))
    targets: str = LORA_AUTO
    lr: float = checked(1e-3, POSITIVE)


@dataclass
class FinetuneConfig:
    """``run --mode lora|full`` (benchmark/finetune.py): the encoder trained with the task head on raw audio.
    One epoch is one random ``crop_s`` crop of every train item (a shorter item whole; a window task's crop at most
    its window), in ``batch_size`` crops per AdamW step; the epoch with the best validation main score is kept
    (early stopping after ``patience`` epochs without a better one, at most ``epochs``) and scored on test.
    ``lr``: the encoder's weights under ``full``; ``lora.lr``: the LoRA matrices under ``lora``; ``head_lr``: the
    head and its layer weights (the probes' MLP, benchmark.probes; ``probe.hidden`` / ``probe.dropout`` /
    ``probe.weighted_layers`` / ``probe.layers`` / ``probe.weight_decay`` shape it as they shape the probes).
    ``weight_decay``: AdamW's, on the encoder's trainable weights. ``grad_clip``: the gradient norm clip (0: off).
    ``precision``: as ``features.precision`` (auto: bf16 autocast on a CUDA GPU that supports it, fp32 elsewhere;
    resolved once, the result records fp32 or bf16). ``grad_checkpointing``: recompute each transformer layer in
    the backward pass (less memory, about a third more compute). Read only by those modes: the section is left out
    of every other mode's recorded and hashed config (:data:`MODE_SECTIONS`)."""
    seeds: int = checked(1, AT_LEAST_1)                      # --seeds under --mode lora|full
    lr: float = checked(5e-5, POSITIVE)
    head_lr: float = checked(1e-3, POSITIVE)
    weight_decay: float = checked(0.01, NON_NEGATIVE)
    epochs: int = checked(20, AT_LEAST_1)
    min_epochs: int = checked(1, AT_LEAST_1)
    patience: int = checked(5, AT_LEAST_1)
    batch_size: int = checked(8, AT_LEAST_1)
    crop_s: float = checked(5.0, Check(lo=0.5))
    grad_clip: float = checked(1.0, NON_NEGATIVE)
    grad_checkpointing: bool = False
    precision: str = checked("auto", Check(choices=PRECISIONS))  # auto | fp32 | bf16
    lora: LoraSettings = field(default_factory=LoraSettings)


@dataclass
class BenchConfig:
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    beat: BeatConfig = field(default_factory=BeatConfig)
    separation: SeparationConfig = field(default_factory=SeparationConfig)
    fewshot: FewshotConfig = field(default_factory=FewshotConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


# sections added after results were written whose every key is hash-neutral: :func:`to_dict` leaves one out while
# it holds only neutral values (unless asked to keep it), and the hash view drops it once its neutral keys are
# dropped, so a config that never set them records and hashes as before the section existed
OPTIONAL_SECTIONS = ("fewshot",)

# sections only one mode reads (``finetune``: --mode lora|full): :func:`to_dict` leaves one out unless asked to keep
# it, whatever it holds, so the other modes' recorded configs and hashes never see it
MODE_SECTIONS = ("finetune",)


# probe grids (--grid)
GRIDS: dict[str, dict[str, Any]] = {
    "full": {},
    "fast": {"probe": {"lrs": [1e-3, 5e-3], "max_epochs": 30, "patience": 5, "plateau_patience": 2},
             "separation": {"max_epochs": 10, "patience": 3, "steps_per_epoch": 20, "hidden": 128,
                            "num_layers": 2, "joint": True}},
}

# benchmark defaults per task type (applied before the TaskSpec's own probe overrides)
TASK_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "beat": {"probe": {"max_epochs": 60}},
}


# defaults per data source kind (``--data``), after the task layer. The embedded beat items are 10-15 s, so a
# crop is a whole track and MARBLE's 64 crops per step would make 3 steps of the 150 train tracks per epoch: 16 per
# step instead; and its early stopping scores validation by peak picking (``beat.select=peaks``), because the DBN
# for every member every epoch costs a third of a frame-level sweep on 2 cores (the reported scores use the DBN).
# The embedded corpus's separation task has 30 training tracks of 20 s (10 minutes of audio, vs ~6 h in
# MUSDB18's 86 tracks): it gets one 2 x 128 network for the four stems (MARBLE trains a 3 x 512 one per stem) and
# at most 20 epochs of 25 steps of 8 segments (patience 5, lr plateau 3; 40 passes over the training audio)
# instead of up to 100 epochs of every track 64 times in batches of 64, so that the probe costs about 20 minutes,
# not hours, per representation on one CPU core (a step of the 2 x 128 network on 2048-point STFTs costs ~2.5 s
# there, most of it in the 4 x 1025 outputs). Every representation gets the same probe; real data keeps MARBLE's.
#
# Real data gets MARBLE v1's protocol where ours differs (docs/protocol.md has the audited table, each row with the
# MARBLE file it comes from): the lr schedule of torch's ReduceLROnPlateau (factor 0.5, relative threshold 1e-4), the
# weighted sum over the transformer layers only, and fp32 everywhere (MARBLE extracts in fp32; "auto" would run
# bf16 on a CUDA GPU). The embedded corpus keeps ours; every key above has a hash-neutral default, so the committed
# embedded results keep their config hashes.
DATA_DEFAULTS: dict[str, dict[str, Any]] = {
    "embedded": {"separation": {"hidden": 128, "num_layers": 2, "max_epochs": 20, "patience": 5, "joint": True,
                                "batch_size": 8, "steps_per_epoch": 25},
                 "beat": {"crops_per_batch": 16, "select": "peaks"}},
    "real": {"features": {"precision": "fp32"},
             "probe": {"plateau_mode": "torch", "weighted_layers": "transformer"}},
}

# defaults per (data source kind, task type), after ``DATA_DEFAULTS``. The embedded test sets are small (key and
# singer 120 items, technique and emotion 200): with one probe seed a test cell moves by up to 10 points between
# seeds (results/analysis/mert-mini-vs-random-seeds.md), and the same seed on another machine load by 5 (float
# reductions change the early-stopping epoch). So every clip-level embedded task trains 3 seeds per (layer, lr),
# selects on the mean validation score and reports the mean +- std. Beat (a frame-level probe, the slowest of
# the suite) and separation keep one seed. ``--seeds N`` still overrides.
ONE_SEED_TYPES = ("beat", "separation")
DATA_KINDS = ("embedded", "real")  # the data defaults a prepared folder may declare (meta.json "defaults")
DATA_TYPE_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "embedded": {t: {"probe": {"seeds": 3}} for t in TASK_TYPES if t not in ONE_SEED_TYPES},
}


def _marble_schedule(earlystop: int, lr_patience: int, max_epochs: int = 100) -> dict[str, Any]:
    return {"probe": {"patience": earlystop, "plateau_patience": lr_patience, "max_epochs": max_epochs}}


# defaults per (data source kind, task name), after ``DATA_TYPE_DEFAULTS``: MARBLE v1's per-task schedule on real
# data, from benchmark/tasks/<TASK>/<TASK>_base_config.yaml of a43992899/MARBLE-Benchmark (``scheduler:
# earlystop_patience``, ``lr_scheduler_patience``; ``trainer: max_epochs``), and the key clip ensembling chosen on
# validation (benchmark/tasks/GS/GS_prober.py). Separation has its own probe (separation.*), untouched here.
DATA_TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "real": {
        "tagging": _marble_schedule(10, 3),                                    # MTT
        "key": {"probe": {**_marble_schedule(20, 5)["probe"], "key_ensemble": "select"}},  # GS
        "genre": _marble_schedule(20, 6),                                      # GTZAN
        "beat": _marble_schedule(20, 6),                                       # GTZANBT
        "emotion": _marble_schedule(20, 5),                                    # EMO
        "instrument": _marble_schedule(10, 3, 50),                             # NSynthI
        "pitch": _marble_schedule(10, 3, 50),                                  # NSynthP
        "singer": _marble_schedule(20, 5),                                     # VocalSetS
        "technique": _marble_schedule(10, 5),                                  # VocalSetT
        # MTG: MARBLE keeps a track's last shorter window when it is at least 1 s (extract_bert_features.py)
        **{t: {**_marble_schedule(10, 3), "features": {"window_tail": "keep"}}
           for t in ("mtg-instrument", "mtg-mood", "mtg-genre", "mtg-top50")},
    },
}

# defaults per (data source kind, embedded corpus size), last of the data layers: ``--size tiny`` is a smoke
# corpus (the whole suite in minutes on 2 cores). Its separation task has 3 training tracks of 5 s, and the probe's
# budget is counted in steps (separation.steps_per_epoch), not in data, so without this layer tiny separation
# costs what standard does (20 epochs x 50 steps). The probe is smaller too: a tiny score measures nothing.
DATA_SIZE_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "embedded": {"tiny": {"separation": {"hidden": 64, "num_layers": 1, "batch_size": 4, "max_epochs": 3,
                                         "patience": 2, "steps_per_epoch": 5}}},
}


class ConfigError(ValueError):
    pass


def _valid_keys(node, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig

    out = []
    for k in node.keys():
        v = node[k]
        if isinstance(v, DictConfig):
            out += _valid_keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


def _merge(cfg, update, source: str):
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    try:
        return OmegaConf.merge(cfg, update)
    except (ConfigKeyError, ConfigAttributeError) as e:
        key = getattr(e, "full_key", None) or str(e)
        raise ConfigError(
            f"unknown config key {key!r} (from {source}). Valid keys: {', '.join(_valid_keys(cfg))}"
        ) from None
    except ValidationError as e:
        raise ConfigError(f"bad config value from {source}: {e}") from None


def task_overrides(spec) -> dict[str, Any]:
    """The task layer: type defaults, then TaskSpec.probe (flat probe keys, or dotted 'section.key')."""
    out: dict[str, Any] = json.loads(json.dumps(TASK_TYPE_DEFAULTS.get(spec.type, {})))
    for k, v in (spec.probe or {}).items():
        section, _, key = k.rpartition(".")
        out.setdefault(section or "probe", {})[key] = v
    return out


def resolve_config(spec=None, model_overrides: dict | None = None, grid: str = "full",
                   config_file: str | None = None, overrides: list[str] | None = None, data: str | None = None,
                   size: str | None = None):
    """The merged, validated config (a struct DictConfig) for one (task, model) run; ``data`` is the data
    source kind (``--data``: embedded, real, prepared), whose ``DATA_DEFAULTS``, ``DATA_TYPE_DEFAULTS`` and
    ``DATA_TASK_DEFAULTS`` follow the task layer; ``size`` the embedded corpus size (``--size``), whose
    ``DATA_SIZE_DEFAULTS`` come last of the data layers."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(BenchConfig)
    OmegaConf.set_struct(cfg, True)
    if spec is not None:
        cfg = _merge(cfg, task_overrides(spec), f"task {spec.name!r}")
    if data in DATA_DEFAULTS:
        cfg = _merge(cfg, DATA_DEFAULTS[data], f"the {data} data defaults")
    if spec is not None and spec.type in DATA_TYPE_DEFAULTS.get(data, {}):
        cfg = _merge(cfg, DATA_TYPE_DEFAULTS[data][spec.type], f"the {data} data defaults for {spec.type} tasks")
    if spec is not None and spec.name in DATA_TASK_DEFAULTS.get(data, {}):
        cfg = _merge(cfg, DATA_TASK_DEFAULTS[data][spec.name], f"the {data} data defaults for task {spec.name!r}")
    if size is not None and size in DATA_SIZE_DEFAULTS.get(data, {}):
        cfg = _merge(cfg, DATA_SIZE_DEFAULTS[data][size], f"the {data} data defaults for size {size!r}")
    if model_overrides:
        cfg = _merge(cfg, model_overrides, "the model's config_overrides")
    if grid not in GRIDS:
        raise ConfigError(f"unknown grid {grid!r}; valid: {', '.join(GRIDS)}")
    cfg = _merge(cfg, GRIDS[grid], f"--grid {grid}")
    if config_file:
        import yaml
        from omegaconf import DictConfig

        try:
            file_cfg = OmegaConf.load(config_file)
        except FileNotFoundError:
            raise ConfigError(f"--config {config_file}: file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"--config {config_file}: a folder, not a yaml file") from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            where = getattr(e, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            what = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"--config {config_file}: not valid YAML{at} ({what}); it should map sections to "
                              "keys, e.g. 'probe: {max_epochs: 50}'") from None
        if not isinstance(file_cfg, DictConfig):
            raise ConfigError(f"--config {config_file}: the file holds a {type(file_cfg).__name__}, not a mapping "
                              "of sections (probe, features, beat, separation) to keys")
        cfg = _merge(cfg, file_cfg, f"--config {config_file}")
    if overrides:
        for o in overrides:
            if "=" not in o:
                raise ConfigError(f"override {o!r} is not KEY=VALUE (e.g. probe.max_epochs=5)")
        cfg = _merge(cfg, OmegaConf.from_dotlist(list(overrides)), "the command line")
    check_values(cfg)
    return cfg


_SECTIONS = {f.name: f.default_factory for f in fields(BenchConfig)}


def check_values(cfg) -> None:
    """Every field with a declared :class:`Check` holds a valid value, else a ConfigError naming the key (nested
    sections such as ``finetune.lora`` included)."""
    for section, factory in _SECTIONS.items():
        _check_section(cfg[section], factory, section)


def _check_section(node, factory, prefix: str) -> None:
    from dataclasses import is_dataclass

    for f in fields(factory):
        value = node[f.name]
        if f.default_factory is not MISSING and is_dataclass(f.default_factory):
            _check_section(value, f.default_factory, f"{prefix}.{f.name}")
            continue
        check = f.metadata.get("check")
        if check is None:
            continue
        problem = check.problem(list(value) if hasattr(value, "__len__") and not isinstance(value, str) else value)
        if problem:
            raise ConfigError(f"{prefix}.{f.name}={_show(value)}: {problem}")


def _show(value) -> str:
    from omegaconf import ListConfig, OmegaConf

    return str(OmegaConf.to_container(value)) if isinstance(value, ListConfig) else repr(value)


def check_device(device: str | None) -> None:
    """``features.device`` (``--device``) names a device torch can use here, else a ConfigError saying why and
    what to use; checked before any work (not after the extraction, where torch would first fail)."""
    import torch

    name = str(device or "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r} (features.device) is not a device name; use cpu, cuda, cuda:N or "
                          "mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("no NVIDIA GPU or driver is visible" if torch.version.cuda else
                   f"torch {torch.__version__} is a CPU-only build")
            raise ConfigError(f"--device {name} (features.device): torch sees no CUDA device ({why}); use --device "
                              "cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"--device {name} (features.device): torch sees {n} CUDA device(s), cuda:0"
                              f"{f'..cuda:{n - 1}' if n > 1 else ''}")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {name} (features.device): the MPS backend is not available here; use "
                              "--device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {name} (features.device): the benchmark runs on cpu, cuda[:N] or mps")


def to_dict(cfg, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config as plain values; an optional section (:data:`OPTIONAL_SECTIONS`) not named in ``keep`` is left
    out while every key of it holds its hash-neutral value, a mode's section (:data:`MODE_SECTIONS`) not named in
    ``keep`` always."""
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(cfg, resolve=True)
    for section in MODE_SECTIONS:
        if section not in keep:
            d.pop(section, None)
    neutral = _neutral_fields()
    for section in OPTIONAL_SECTIONS:
        sec = d.get(section)
        if section in keep or not isinstance(sec, dict):
            continue
        if all(sec.get(k, v) == v for k, v, _ in neutral.get(section, []) if v is not None):
            del d[section]
    return d


def config_hash(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_hash_view(d), sort_keys=True).encode()).hexdigest()[:16]


# config sections a task type never reads: a result is not stale when only these changed (an embedded default
# of the separation probe must not send every beat result back for 40 minutes of probing)
_UNUSED_SECTIONS = {"separation": ("beat",), "beat": ("separation",)}
_UNUSED_DEFAULT = ("beat", "separation")


def task_config_hash(record: dict[str, Any], task_type: str) -> str:
    """The hash of ``{"config": ..., **identity}`` over the config sections the task type reads."""
    unused = _UNUSED_SECTIONS.get(task_type, _UNUSED_DEFAULT)
    return config_hash({**record, "config": {k: v for k, v in record["config"].items() if k not in unused}})


# Retired keys, the config's one declared migration: a key removed from the dataclasses, with the one value it
# held in every result written while it existed. The hash view puts it back at that value where a config lacks
# it, so every result written before the removal keeps its config hash (tests/test_results.py recomputes the
# committed ones). probe.eval_batch_rows: never read by the probes (evaluation is sized by benchmark.probes'
# element budget), removed.
RETIRED: dict[str, dict[str, Any]] = {"probe": {"eval_batch_rows": 8192}}


def _neutral_fields() -> dict[str, list[tuple[str, Any, str | None]]]:
    """section -> [(key, neutral value or None, neutral_with or None)] of the fields that declare either."""
    out: dict[str, list] = {}
    for section, factory in _SECTIONS.items():
        for f in fields(factory):
            if "neutral" in f.metadata or "neutral_with" in f.metadata:
                out.setdefault(section, []).append((f.name, f.metadata.get("neutral"), f.metadata.get("neutral_with")))
    return out


def _hash_view(d: dict[str, Any]) -> dict[str, Any]:
    """The config as hashed: retired keys at their retired value, hash-neutral keys (and the keys declared
    ``neutral_with`` them) left out while they hold their neutral value."""
    nested = isinstance(d.get("config"), dict)
    cfg = dict(d["config"] if nested else d)
    for section, retired in RETIRED.items():
        if isinstance(cfg.get(section), dict):
            cfg[section] = {**retired, **cfg[section]}
    for section, keys in _neutral_fields().items():
        sec = cfg.get(section)
        if not isinstance(sec, dict):
            continue
        dropped = {k for k, neutral, _ in keys if neutral is not None and sec.get(k, neutral) == neutral}
        dropped |= {k for k, _, base in keys if base is not None and base in dropped}
        cfg[section] = {k: v for k, v in sec.items() if k not in dropped}
        if section in OPTIONAL_SECTIONS and not cfg[section]:
            del cfg[section]
    return {**d, "config": cfg} if nested else cfg


def parse_layers(text: str, num_layers: int) -> list[int]:
    """'all' -> every layer; '6,7' -> [6, 7]; '-1' counts from the end."""
    if text in ("all", "", None):
        return list(range(num_layers))
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            i = int(part)
        except ValueError:
            raise ConfigError(f"--layers: {part!r} is not a layer index (use 'all' or e.g. '6,7')") from None
        if i < 0:
            i += num_layers
        if not 0 <= i < num_layers:
            raise ConfigError(f"--layers: layer {part} does not exist (the model has layers 0..{num_layers - 1})")
        out.append(i)
    return sorted(set(out))
