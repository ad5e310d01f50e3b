"""Numeric precision of everything that runs on the run's device (``features.precision``), resolved once.

``auto`` runs the representation and the probes under ``torch.autocast(bfloat16)`` on a CUDA device that supports
bf16 and in float32 elsewhere; ``fp32`` / ``bf16`` force one. The pipeline resolves the config's value once
(benchmark.pipeline.resolved_config: "auto" -> "fp32" or "bf16" for the device and representation) and every
later stage receives the resolved value; :func:`resolve_precision` is idempotent on it. Handcrafted baselines
never autocast (their logs of small magnitudes gain nothing from bf16 and lose precision). A leaf module.
"""
from __future__ import annotations

def autocasts(rep) -> bool:
    """Whether ``rep`` may run under bf16 autocast: ``rep.autocast`` when it says so (the handcrafted baselines
    say False, benchmark.representations.Handcrafted); otherwise yes."""
    flag = getattr(rep, "autocast", None)
    return True if flag is None else bool(flag)


def resolve_precision(precision: str | None, device: str = "cpu", rep=None) -> str:
    """``features.precision`` -> "fp32" or "bf16" for a run on ``device`` (idempotent).

    auto: bf16 on a CUDA device that supports bfloat16, fp32 otherwise (the CPU, MPS, older GPUs); bf16: bf16
    where torch can autocast to it (CPU, CUDA with bf16 support, MPS), an error naming the key elsewhere; fp32:
    fp32. A representation that does not autocast (:func:`autocasts`) always resolves to fp32."""
    from benchmark.config import PRECISIONS, ConfigError

    p = "auto" if precision is None else str(precision)
    if p not in PRECISIONS:
        raise ConfigError(f"features.precision={p!r} is not a known precision; use auto (bf16 autocast on a CUDA GPU "
                          "that supports it, fp32 elsewhere), fp32 or bf16")
    if p == "fp32" or (rep is not None and not autocasts(rep)):
        return "fp32"
    import torch

    try:
        dev = torch.device(str(device or "cpu"))
    except RuntimeError as e:
        raise ConfigError(f"features.device={device!r}: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            if p == "auto":
                return "fp32"
            raise ConfigError(f"features.precision=bf16 with features.device={device!r}, but torch sees no CUDA "
                              "device; use --device cpu (bf16 autocast works there too) or features.precision=auto")
        if torch.cuda.is_bf16_supported():
            return "bf16"
        if p == "auto":
            return "fp32"
        try:
            name = torch.cuda.get_device_name(dev)
        except Exception:  # noqa: BLE001 - only for the message
            name = str(dev)
        raise ConfigError(f"features.precision=bf16: the CUDA device {name!r} does not support bfloat16 (needs "
                          "compute capability 8.0+, e.g. A100, H100); use features.precision=fp32 (or auto, which "
                          "picks fp32 there)")
    if p == "auto":
        return "fp32"
    if dev.type == "cpu" or torch.amp.is_autocast_available(dev.type):
        return "bf16"
    raise ConfigError(f"features.precision=bf16: torch cannot autocast on device {device!r}; use "
                      "features.precision=fp32 or auto")


def autocast(precision: str, device: str = "cpu"):
    """The context a model runs in for a resolved precision: bf16 autocast, or nothing for fp32."""
    import contextlib

    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(torch.device(str(device or "cpu")).type, dtype=torch.bfloat16)
