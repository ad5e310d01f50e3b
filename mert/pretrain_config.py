"""The pretraining configuration: omegaconf structured config (unknown keys are rejected, naming the key).

Named configs live in ``mert/configs/pretrain/<name>.yaml``; ``load_config(name_or_path, overrides)`` merges
one onto these defaults and then the ``KEY=VALUE`` overrides of the command line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

CONFIG_DIR = Path(__file__).parent / "configs" / "pretrain"


@dataclass
class ModelSection:
    preset: str = "mert-v1-95m"  # a mert.config preset
    overrides: dict[str, Any] = field(default_factory=dict)  # MertConfig fields (dropout, layer_norm_first, ...)


@dataclass
class HeadsSection:
    final_dim: int = 64  # 64 for 95M, 128 for 330M
    temperature: float = 0.1
    cqt: bool = True
    cqt_bins: int = 336
    cqt_bins_per_octave: int = 48
    cqt_fmin: float = 32.7
    cqt_weight: float = 1.0
    feature_penalty: float = 10.0
    cosine: bool = True  # cosine logits / temperature (HuBERT, MERT); false = dot product, free length
    prior_bias: bool = False  # add the log label frequencies to the codebook logits (see heads.set_prior)
    unmasked_weight: float = 0.0  # fairseq pred_nomask_weight: codebook CE on unmasked frames too (0 = MERT)
    cqt_unmasked_weight: float = 0.0  # the CQT reconstruction on the unmasked frames too (0 = MERT)
    cqt_log_gain: float = 0.0  # CQT target log(1 + gain * magnitude); 0 = MERT's linear magnitude


@dataclass
class MaskSection:
    prob: float = 0.8
    span: int = 5
    min_spans: int = 2


@dataclass
class NoiseSection:
    prob: float = 0.5
    min_segments: int = 1
    max_segments: int = 3
    min_seconds: float = 0.5
    max_seconds: float = 1.0  # 1.5 for 330M
    gain: float = 1.0


@dataclass
class DataSection:
    labels: str = "???"  # labels folder made by `python -m mert labels`
    audio: Optional[str] = None  # audio root when it moved since labelling
    crop_seconds: float = 5.0
    min_crop_seconds: float = 3.0
    max_batch_seconds: float = 80.0  # padded audio per rank and micro-batch
    max_clips_per_rank: Optional[int] = None
    num_workers: int = 0


@dataclass
class OptimSection:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    warmup_updates: int = 32000
    max_updates: int = 400000
    power: float = 1.0  # polynomial decay power (1 = linear, fairseq's default)
    end_lr: float = 0.0
    clip_norm: float = 10.0  # 0 = no clipping
    update_freq: int = 1  # micro-batches accumulated per update
    head_lr_scale: float = 1.0  # the heads (projection, code embeddings, CQT regressor) train at lr x this


@dataclass
class TrainSection:
    out_dir: str = "runs/pretrain"
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on a GPU that has it, else fp32) | fp32 | bf16 | fp16 (GradScaler)
    save_every: int = 1000
    keep_checkpoints: int = 2
    keep_every: Optional[int] = None  # also keep every checkpoint whose update is a multiple of this (never pruned)
    log_every: int = 10
    max_consecutive_nonfinite: int = 20  # stop the run after this many non-finite losses in a row
    stop_after: Optional[int] = None  # stop this invocation after this update (the schedule still uses max_updates)
    peak_tflops: Optional[float] = None  # per device, for MFU; None = looked up (GPU) or measured (CPU)
    threads: Optional[int] = None  # torch CPU threads per process


@dataclass
class DistSection:
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | nccl | gloo
    fsdp: bool = False  # shard parameters/gradients/optimiser state (FSDP2), e.g. for the 330M
    find_unused_parameters: Optional[bool] = None  # None = True when layerdrop > 0


@dataclass
class LogSection:
    csv: str = "log.csv"  # in out_dir
    wandb: bool = False
    wandb_project: str = "mert-pretrain"
    run_name: Optional[str] = None


@dataclass
class PretrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    heads: HeadsSection = field(default_factory=HeadsSection)
    mask: MaskSection = field(default_factory=MaskSection)
    noise: NoiseSection = field(default_factory=NoiseSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    dist: DistSection = field(default_factory=DistSection)
    log: LogSection = field(default_factory=LogSection)


class ConfigError(ValueError):
    pass


def config_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        return p
    q = CONFIG_DIR / f"{name_or_path}.yaml"
    if not q.is_file():
        names = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown pretraining config {name_or_path!r}; named configs: {', '.join(names)} "
                          f"(or give a .yaml path)")
    return q


def load_config(name_or_path: str | None = None, overrides: list[str] | None = None):
    """Defaults <- the yaml <- ``KEY=VALUE`` overrides; returns an omegaconf DictConfig (structured)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    from mert.config import MertConfig

    cfg = OmegaConf.structured(PretrainConfig)
    try:
        if name_or_path:
            path = config_path(name_or_path)
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"overrides must be KEY=VALUE, got {bad}")
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except ConfigKeyError as e:
        key = getattr(e, "full_key", None) or str(e).splitlines()[0]
        raise ConfigError(f"unknown config key {key!r} ({str(e).splitlines()[0]}); see mert/pretrain_config.py "
                          f"for the known keys") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"invalid config value: {str(e).splitlines()[0]} (key {getattr(e, 'full_key', '?')})") from None
    known = {f for f in MertConfig.__dataclass_fields__}
    unknown = sorted(set(cfg.model.overrides) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s) model.overrides.{unknown[0]} ({unknown}); model.overrides takes "
                          f"MertConfig fields: {', '.join(sorted(known))}")
    if cfg.train.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"train.precision must be auto, fp32, bf16 or fp16, got {cfg.train.precision!r}")
    if OmegaConf.is_missing(cfg.data, "labels"):
        raise ConfigError("data.labels is required: a labels folder made by `python -m mert labels` "
                          "(pass data.labels=DIR)")
    return cfg
