"""Representations by name (``--model``), with "did you mean" for typos.

Accepted model names:

- a registered name (``list-models``): the handcrafted baselines, the MERT shortcuts, ``mert-mini``;
- ``random:PRESET``: a randomly initialised MERT encoder of a preset (``random:debug``, ``random:mert-v1-95m``)
  with a fixed seed, the baseline every SSL paper needs;
- ``pkg.module:factory``: a user's model; ``factory()`` returns an object meeting the representation contract
  (benchmark.representations);
- anything ``mert.load_model`` accepts: a hub id (``m-a-p/MERT-v1-95M``), a folder or a checkpoint file.

Tasks are looked up through ``tasks.get_task`` (whose errors also suggest close names).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from tasks.base import unknown_name_message

DEFAULT_MODEL = "mfcc"  # becomes "mert-mini" once the pretrained mert-mini ships (issue 7)

RANDOM_SEED = 0


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    source: str
    description: str


MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> None:
    if entry.name in MODELS:
        raise ValueError(f"model {entry.name!r} is registered twice")
    MODELS[entry.name] = entry


for _n, _d in (("mfcc", "20 MFCC + deltas, mean/std over frames"),
               ("chroma", "12-bin STFT chroma, mean/std over frames"),
               ("cqt", "84-bin log CQT (nnAudio), mean/std over frames"),
               ("melspec", "128-band log-mel, mean/std over frames")):
    register_model(ModelEntry(_n, "handcrafted", _n, _d))
for _n, _hub in (("mert-v1-95m", "m-a-p/MERT-v1-95M"), ("mert-v1-330m", "m-a-p/MERT-v1-330M"),
                 ("mert-v0", "m-a-p/MERT-v0")):
    register_model(ModelEntry(_n, "mert", _hub, f"MERT from the hub ({_hub}; needs network or a local cache)"))
register_model(ModelEntry("mert-mini", "mert", "mert-mini", "the small MERT pretrained in this project"))


class ModelError(ValueError):
    pass


def list_models() -> list[ModelEntry]:
    return list(MODELS.values()) + [
        ModelEntry("random:PRESET", "mert", "build_model(PRESET)", "randomly initialised MERT of a preset (seed 0)"),
        ModelEntry("pkg.module:factory", "user", "factory()", "your own model meeting the representation contract"),
    ]


def _looks_like_factory(name: str) -> bool:
    mod, sep, fn = name.partition(":")
    return bool(sep) and bool(fn) and fn.isidentifier() and all(p.isidentifier() for p in mod.split("."))


def load_representation(name: str):
    """Build the representation named ``name`` (see module doc)."""
    from benchmark import representations as R

    if name in MODELS:
        entry = MODELS[name]
        if entry.kind == "handcrafted":
            return R.HANDCRAFTED[entry.source]()
        return _load_mert(entry.source, name)
    if name.startswith("random:"):
        preset = name.split(":", 1)[1]
        import torch

        from mert import build_model

        torch.manual_seed(RANDOM_SEED)
        try:
            model = build_model(preset)
        except (KeyError, ValueError) as e:
            raise ModelError(f"--model {name}: {e}") from None
        return R.MertRepresentation(model, name, name)
    if _looks_like_factory(name) and not os.path.exists(name):
        mod, _, fn = name.partition(":")
        try:
            module = importlib.import_module(mod)
        except ImportError as e:
            raise ModelError(f"--model {name}: cannot import module {mod!r} ({e})") from None
        factory = getattr(module, fn, None)
        if factory is None:
            raise ModelError(f"--model {name}: module {mod!r} has no attribute {fn!r}")
        rep = factory()
        check_contract(rep, name)
        return rep
    if os.path.exists(name) or ("/" in name and not name.startswith(".")):
        return _load_mert(name, name)
    raise ModelError(unknown_name_message("model", name, list(MODELS)) +
                     " (or random:PRESET, pkg.module:factory, a hub id, a folder or a checkpoint)")


def _load_mert(source: str, name: str):
    from benchmark.representations import MertRepresentation
    from mert import load_model

    try:
        model = load_model(source)
    except (FileNotFoundError, OSError, ValueError, KeyError) as e:
        raise ModelError(f"--model {name}: cannot load {source!r}: {e}") from None
    return MertRepresentation(model, name, source)


REQUIRED = ("name", "sample_rate", "frame_rate", "num_layers", "dim", "identity")


def check_contract(rep, name: str) -> None:
    missing = [a for a in REQUIRED if not hasattr(rep, a)]
    if missing or not callable(rep):
        raise ModelError(
            f"--model {name}: the factory's object lacks {missing or ['__call__']}; a representation needs "
            f"{', '.join(REQUIRED)} and __call__(wav, lengths) -> (layers, frame_lengths)"
        )
    if int(rep.num_layers) < 1 or int(rep.dim) < 1 or int(rep.sample_rate) < 1:
        raise ModelError(f"--model {name}: num_layers, dim and sample_rate must be positive")
