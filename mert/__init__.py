"""MERT music encoders: configs, the model, checkpoint loading/saving, and pretraining.

    from mert import load_model
    model = load_model("m-a-p/MERT-v1-95M")
    out = model(wav, lengths)        # out.hidden_states: num_layers + 1 tensors [B, T', D]

Names are imported lazily so that ``import mert.audio`` (used by the benchmark) stays light.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "MertConfig": "mert.config",
    "get_preset": "mert.config",
    "list_presets": "mert.config",
    "MertModel": "mert.model",
    "build_model": "mert.model",
    "load_model": "mert.checkpoints",
    "save_model": "mert.checkpoints",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mert' has no attribute {name!r}")
