"""MertConfig: the encoder's shape and training options, named presets, and the mapping to/from HubertConfig.

Field names follow ``transformers.HubertConfig`` (``hidden_size``, ``num_hidden_layers``, ``conv_dim`` ...) so
that a released ``config.json`` reads naturally; the one renamed field is ``layer_norm_first`` (HF
``do_stable_layer_norm``, fairseq ``layer_norm_first``): True = pre-LN (MERT-v1-330M), False = post-LN.

Presets (``list_presets()``):

=============== ====== ====== ===== ====== ======= ============
name            layers dim    heads ffn    sr      layout
=============== ====== ====== ===== ====== ======= ============
mert-v1-95m     12     768    12    3072   24000   post-LN
mert-v1-330m    24     1024   16    4096   24000   pre-LN
mert-v0         12     768    12    3072   16000   post-LN
mert-mini       4      256    4     1024   24000   post-LN
tiny            4      128    4     512    24000   post-LN
debug           2      32     2     64     24000   post-LN
=============== ====== ====== ===== ====== ======= ============

All presets share the conv front end's kernels and strides (total stride 320, receptive field 400 samples), so
24 kHz audio gives 75 frames per second (16 kHz: 50). ``mert-mini``, ``tiny`` and ``debug`` shrink only the channel counts (``mert-mini``: the shipped small
checkpoint's shape, 128-channel conv front end plus an 84-bin CQT input (``cqt_input_bins``), 3.74M parameters;
``random:mert-mini`` in the benchmark).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """An encoder config that cannot be used (unknown keys, invalid values, an unreadable config.json, an
    unknown preset): the message names its source and what is wrong."""


# HubertConfig keys we read and write (HF name -> our field name)
_HF_TO_OURS = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "hidden_act": "hidden_act",
    "hidden_dropout": "hidden_dropout",
    "attention_dropout": "attention_dropout",
    "activation_dropout": "activation_dropout",
    "feat_proj_dropout": "feat_proj_dropout",
    "layerdrop": "layerdrop",
    "layer_norm_eps": "layer_norm_eps",
    "feat_extract_norm": "feat_extract_norm",
    "feat_extract_activation": "feat_extract_activation",
    "feat_proj_layer_norm": "feat_proj_layer_norm",
    "conv_dim": "conv_dim",
    "conv_kernel": "conv_kernel",
    "conv_stride": "conv_stride",
    "conv_bias": "conv_bias",
    "num_conv_pos_embeddings": "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups": "num_conv_pos_embedding_groups",
    "do_stable_layer_norm": "layer_norm_first",
    "initializer_range": "initializer_range",
    # MERT additions to HubertConfig
    "sample_rate": "sample_rate",
    "deepnorm": "deepnorm",
    "attention_relax": "attention_relax",
    "feature_extractor_cqt": "feature_extractor_cqt",
    # ours: the aligned CQT input (see MertConfig.cqt_input_bins); absent from every released config (= off)
    "cqt_input_bins": "cqt_input_bins",
    "cqt_input_bins_per_octave": "cqt_input_bins_per_octave",
    "cqt_input_fmin": "cqt_input_fmin",
    "cqt_input_log_gain": "cqt_input_log_gain",
}
_OURS_TO_HF = {v: k for k, v in _HF_TO_OURS.items()}


@dataclass
class MertConfig:
    """Shape and options of a MERT encoder (a HuBERT-style conv front end + transformer)."""

    sample_rate: int = 24000
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    # conv front end: 7 convs; "group" = GroupNorm on conv 0 only (MERT, HuBERT base), "layer" = LayerNorm on all
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    feat_proj_layer_norm: bool = True
    # weight-normed convolutional positional embedding
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    layer_norm_eps: float = 1e-5
    # layout and stability options (pretraining)
    layer_norm_first: bool = False  # True = pre-LN (HF do_stable_layer_norm)
    deepnorm: bool = False  # post-LN only: residual x * (2N)^0.25, init of v/out/ffn weights / (8N)^0.25
    attention_relax: float = -1.0  # > 0: MERT's attention relaxation (scores / a, minus max, times a)
    feature_extractor_cqt: bool = False  # MERT's CQT-concat front end (never released; rejected at build)
    # A CQT input beside the conv front end: log(1 + gain |CQT|) of the input audio (standardised per item,
    # so the level of a clip does not matter), frame i centred on the
    # centre of conv frame i (hop 320, as mert.teachers.cqt), concatenated to the conv features before the
    # projection's LayerNorm. MERT's code has the idea as ``feature_extractor_cqt`` (its "v3 concat") but
    # computes the CQT at hop sample_rate // 50 = 480 and cuts it to the conv frame count, so its frames
    # drift from the conv frames; no released MERT uses it. 0 bins = off (every released MERT).
    cqt_input_bins: int = 0
    cqt_input_bins_per_octave: int = 12
    cqt_input_fmin: float = 32.7
    cqt_input_log_gain: float = 1.0
    # regularisation (training only)
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    feat_proj_dropout: float = 0.0
    layerdrop: float = 0.0
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        for name in ("conv_dim", "conv_kernel", "conv_stride"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()

    # ---------------------------------------------------------------- derived quantities
    @property
    def total_stride(self) -> int:
        return math.prod(self.conv_stride)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.total_stride

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame of the conv front end (400 for MERT)."""
        rf, jump = 1, 1
        for k, s in zip(self.conv_kernel, self.conv_stride):
            rf += (k - 1) * jump
            jump *= s
        return rf

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv front end gives for ``num_samples`` samples (0 when shorter than the receptive field)."""
        n = int(num_samples)
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1 if n >= k else 0
        return max(n, 0)

    def validate(self) -> None:
        errors = []
        if not (len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride)) or not self.conv_dim:
            errors.append(
                f"conv_dim, conv_kernel and conv_stride must have the same non-zero length "
                f"(got {len(self.conv_dim)}, {len(self.conv_kernel)}, {len(self.conv_stride)})"
            )
        if self.hidden_size % self.num_attention_heads:
            errors.append(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                          f"{self.num_attention_heads}")
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            errors.append(f"hidden_size {self.hidden_size} is not divisible by num_conv_pos_embedding_groups "
                          f"{self.num_conv_pos_embedding_groups}")
        if self.feat_extract_norm not in ("group", "layer"):
            errors.append(f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}")
        if self.deepnorm and self.layer_norm_first:
            errors.append("deepnorm needs the post-LN layout (layer_norm_first=False), as in MERT's code")
        if self.cqt_input_bins < 0 or self.cqt_input_log_gain < 0:
            errors.append("cqt_input_bins and cqt_input_log_gain must be >= 0")
        if self.cqt_input_bins and (self.sample_rate, self.total_stride, self.receptive_field) != (24000, 320, 400):
            errors.append("cqt_input_bins > 0 needs the MERT-v1 front end timing (24 kHz, hop 320, receptive "
                          f"field 400); got {self.sample_rate} Hz, hop {self.total_stride}, field "
                          f"{self.receptive_field}")
        if self.sample_rate <= 0 or self.num_hidden_layers < 1:
            errors.append("sample_rate and num_hidden_layers must be positive")
        if errors:
            raise ConfigError("invalid MertConfig: " + "; ".join(errors))

    # ---------------------------------------------------------------- our own format
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("conv_dim", "conv_kernel", "conv_stride"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "MertConfig":
        """Our own format: every key must be a MertConfig field (unknown keys are an error naming them)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown MertConfig keys {unknown}; known keys are {sorted(known)}")
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        except TypeError as e:  # a value of the wrong type
            raise ConfigError(f"{source}: invalid MertConfig value ({e})") from None

    def replace(self, **changes) -> "MertConfig":
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- HubertConfig json
    def to_hf_dict(self) -> dict:
        """A config.json that ``transformers.HubertConfig`` reads (plus MERT's extra keys)."""
        d = {hf: getattr(self, ours) for hf, ours in _HF_TO_OURS.items()}
        for k in ("conv_dim", "conv_kernel", "conv_stride"):
            d[k] = list(d[k])
        d.update(
            model_type="hubert",
            architectures=["HubertModel"],
            num_feat_extract_layers=len(self.conv_dim),
            # HubertModel only creates masked_spec_embed when a time-mask probability is set
            mask_time_prob=0.05,
            mask_time_length=5,
            apply_spec_augment=True,
            conv_pos_batch_norm=False,
            torch_dtype="float32",
        )
        return d

    @classmethod
    def from_hf_dict(cls, d: dict, source: str = "config.json",
                     preprocessor: tuple[str, int] | None = None) -> "MertConfig":
        """Read a HubertConfig / MERTConfig json dict. HF configs carry many keys we do not need; they are ignored.

        A config without ``sample_rate`` (HF's MERTConfig class declares none, and plain HuBERT configs never
        had one) gets its rate by :func:`infer_sample_rate`, never silently: from the feature extractor config beside
        it (``preprocessor``: its path and ``sampling_rate``; :meth:`from_json` reads it), else 16 kHz for a plain
        HuBERT config, each with a warning naming the file and the rate; a MERT config with neither is an error
        saying what to add.
        """
        kw = {}
        for hf, ours in _HF_TO_OURS.items():
            if hf in d and d[hf] is not None:
                kw[ours] = d[hf]
        if "sample_rate" not in kw:
            kw["sample_rate"] = infer_sample_rate(d, source, preprocessor)
        if d.get("conv_pos_batch_norm"):
            raise ConfigError(f"{source}: conv_pos_batch_norm=true (a BatchNorm positional conv) is not a MERT layout")
        try:
            return cls(**kw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "MertConfig":
        """A json file in either format: HF (has ``model_type`` or ``do_stable_layer_norm``) or ours."""
        with open(path) as f:
            try:
                d = json.load(f)
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
                raise ConfigError(f"{path}: not valid JSON ({e}); a config.json must hold one JSON object") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a JSON object of config keys, got {type(d).__name__}")
        if "model_type" in d or "architectures" in d or "do_stable_layer_norm" in d:
            pre = None if d.get("sample_rate") is not None else preprocessor_rate(Path(path).parent)
            return cls.from_hf_dict(d, source=str(path), preprocessor=pre)
        return cls.from_dict(d, source=str(path))


PREPROCESSOR_FILE = "preprocessor_config.json"  # HF feature extractor config (Wav2Vec2FeatureExtractor)
_MERT_MARKERS = ("feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax")


def preprocessor_rate(folder: str | os.PathLike) -> tuple[str, int] | None:
    """(path, sampling_rate) of ``preprocessor_config.json`` in ``folder``, or None when it is missing, unreadable
    or has no positive integer ``sampling_rate``."""
    p = Path(folder) / PREPROCESSOR_FILE
    try:
        sr = json.loads(p.read_text()).get("sampling_rate")
    except (OSError, ValueError, AttributeError):
        return None
    return (str(p), int(sr)) if isinstance(sr, int) and not isinstance(sr, bool) and sr > 0 else None


def _is_mert_config(d: dict) -> bool:
    """A MERT (not plain HuBERT) config: MERT's model type or class, or one of the keys only MERTConfig has."""
    archs = " ".join(str(a) for a in (d.get("architectures") or []))
    return (str(d.get("model_type", "")).lower().startswith("mert") or "mert" in archs.lower()
            or any(k in d for k in _MERT_MARKERS))


def infer_sample_rate(d: dict, source: str, preprocessor: tuple[str, int] | None = None) -> int:
    """The input sample rate of a HF config dict that has no ``sample_rate``, said loudly (a warning naming the
    file and the rate) or refused.

    The conv strides cannot tell: MERT-v1 (24 kHz) and MERT-v0 / HuBERT (16 kHz) share the total stride 320, so
    the same architecture gives 75 or 50 frames per second depending on the rate. So: the ``sampling_rate`` of the
    feature extractor config beside the file when there is one; else 16 kHz for a plain HuBERT config (HuBERT's
    rate); else (a MERT config) a :class:`ConfigError` asking for ``"sample_rate"`` in the file."""
    stride = math.prod(int(s) for s in (d.get("conv_stride") or MertConfig.conv_stride))
    if preprocessor is not None:
        path, sr = preprocessor
        log.warning("%s has no sample_rate; using %d Hz, the sampling_rate of %s (%.4g frames/s at total conv "
                    "stride %d)", source, sr, path, sr / stride, stride)
        return sr
    if _is_mert_config(d):
        raise ConfigError(
            f"{source}: a MERT config without \"sample_rate\" and no {PREPROCESSOR_FILE} beside it; the rate cannot "
            f"be inferred from the architecture (total conv stride {stride}: 24 kHz gives {24000 / stride:g} "
            f"frames/s as MERT-v1, 16 kHz {16000 / stride:g} as MERT-v0). Add \"sample_rate\": 24000 (MERT-v1) or "
            f"16000 (MERT-v0) to {source}")
    log.warning("%s has no sample_rate and no %s beside it; assuming 16000 Hz, HuBERT's rate (%.4g frames/s at "
                "total conv stride %d). A MERT-v1 checkpoint is 24 kHz: add \"sample_rate\": 24000 to the file",
                source, PREPROCESSOR_FILE, 16000 / stride, stride)
    return 16000


_BASE = dict(hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.0, layerdrop=0.05)

PRESETS: dict[str, dict] = {
    "mert-v1-95m": dict(_BASE),
    "mert-v1-330m": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        layer_norm_first=True, attention_relax=32.0,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
    ),
    "mert-v0": dict(_BASE, sample_rate=16000),
    "mert-mini": dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        conv_dim=(128,) * 7, num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=16, cqt_input_bins=84,
        hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.0, layerdrop=0.0,
    ),
    "tiny": dict(
        hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
        conv_dim=(128,) * 7, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=16, **_BASE,
    ),
    "debug": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
    ),
}


def list_presets() -> list[str]:
    return list(PRESETS)


def get_preset(name: str, **overrides) -> MertConfig:
    """The named preset (case-insensitive; ``m-a-p/MERT-v1-95M``-style names map to their preset)."""
    key = name.lower().split("/")[-1]
    if key not in PRESETS:
        import difflib

        close = difflib.get_close_matches(key, PRESETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown MERT preset {name!r}{hint} (presets: {', '.join(PRESETS)})")
    return MertConfig(**{**PRESETS[key], **overrides})
