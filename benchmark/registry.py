"""Representations by name (``--model``), with "did you mean" for typos.

Accepted model names:

- a registered name (``list-models``): the handcrafted baselines, the MERT shortcuts, ``mert-mini``;
- ``random:PRESET[:SEED]``: a randomly initialised MERT encoder of a preset (``random:debug``,
  ``random:mert-v1-95m``), the baseline every SSL paper needs. The init seed is 0 unless ``:SEED`` names
  another (``random:mert-mini:1``): one random network is one draw, and its scores move with the draw;
- ``pkg.module:factory``: a user's model; ``factory()`` returns an object meeting the representation contract
  (benchmark.representations);
- ``hear:MODULE[:MODEL_FILE]``: a module following the HEAR 2021 API, one layer (benchmark.external);
- ``hf:REPO_OR_PATH[@REVISION]``: a transformers audio encoder (wav2vec2, HuBERT, WavLM, data2vec-audio), all
  hidden states (benchmark.external);
- ``FAMILY[:VARIANT][:OPTION...]`` for the music encoders of other packages (``encodec``, ``dac``, ``muq``,
  ``clap``, ``dasheng``: ``encodec:24khz:rvq``, ``dasheng:base:random``), every layer at the encoder's own rates
  (benchmark.encoders; the family names are reserved, so a factory module of that name needs another);
- anything ``mert.load_model`` accepts: a hub id (``m-a-p/MERT-v1-95M``), a folder or a checkpoint file;
- any of these with ``+POOLING`` appended (``mert-mini+mean_std``, ``mfcc+mean``): the same network with its
  clip-level pooling replaced. A representation pools as it declares: MERT and other learned encoders take the
  mean over frames (MARBLE's protocol), the handcrafted baselines the mean and standard deviation. The suffix
  is part of the name, so the results, the feature cache and the leaderboard row are its own.

Tasks are looked up through ``tasks.get_task`` (whose errors also suggest close names).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from benchmark.representations import ModelError
from mert.source import FactoryError, from_factory, is_factory_name
from tasks.base import unknown_name_message

__all__ = ["DEFAULT_MODEL", "ModelEntry", "ModelError", "list_models", "load_representation", "register_model"]

DEFAULT_MODEL = "mert-mini"  # the small MERT pretrained by this project, shipped in mert/weights/mert-mini

RANDOM_SEED = 0

POOLINGS = ("mean", "mean_std")  # benchmark.features._pool


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    source: str
    description: str
    # shape, for list-models: numbers where they are known without loading weights, else a word
    sample_rate: int | str = "model's own"
    frame_rate: float | str = "model's own"
    num_layers: int | str = "model's own"
    dim: int | str = "model's own"
    # the optional extra it needs and whether that is installed ("dac:yes"), "-" when the core has it all
    extra: str = "-"


MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> None:
    if entry.name in MODELS:
        raise ValueError(f"model {entry.name!r} is registered twice")
    MODELS[entry.name] = entry


for _n, _d in (("mfcc", "20 MFCC + deltas, mean/std over frames"),
               ("chroma", "12-bin STFT chroma, mean/std over frames"),
               ("cqt", "84-bin log CQT (nnAudio), mean/std over frames"),
               ("melspec", "128-band log-mel, mean/std over frames")):
    register_model(ModelEntry(_n, "handcrafted", _n, _d, 24000, 75.0, 1,
                              {"mfcc": 60, "chroma": 12, "cqt": 84, "melspec": 128}[_n]))
for _n, _hub, _shape in (("mert-v1-95m", "m-a-p/MERT-v1-95M", (24000, 75.0, 13, 768)),
                         ("mert-v1-330m", "m-a-p/MERT-v1-330M", (24000, 75.0, 25, 1024)),
                         ("mert-v0", "m-a-p/MERT-v0", (16000, 50.0, 13, 768))):
    register_model(ModelEntry(_n, "mert", _hub, f"MERT from the hub ({_hub}; needs network or a local cache)",
                              *_shape))
register_model(ModelEntry("mert-mini", "mert", "mert-mini", "the small MERT pretrained in this project",
                          "see config", "see config", "see config", "see config"))


def _shipped_shape(entry: ModelEntry) -> ModelEntry:
    """A packaged MERT's shape from its shipped config.json (no weights read), or "not shipped"."""
    import dataclasses
    import json

    if entry.kind != "mert" or entry.sample_rate != "see config":
        return entry
    try:
        from mert.checkpoints import PACKAGED

        cfg = json.loads((PACKAGED[entry.source] / "config.json").read_text())
        stride = 1
        for s in cfg.get("conv_stride", (5, 2, 2, 2, 2, 2, 2)):
            stride *= int(s)
        sr = int(cfg.get("sample_rate", 24000))
        return dataclasses.replace(entry, sample_rate=sr, frame_rate=sr / stride,
                                   num_layers=int(cfg["num_hidden_layers"]) + 1, dim=int(cfg["hidden_size"]))
    except (ImportError, KeyError, OSError, ValueError):
        return dataclasses.replace(entry, sample_rate="not shipped", frame_rate="-", num_layers="-", dim="-")


def _random_entries() -> list[ModelEntry]:
    from mert.config import get_preset, list_presets

    out = []
    for p in list_presets():
        c = get_preset(p)
        out.append(ModelEntry(f"random:{p}", "mert", f"build_model({p!r})",
                              "randomly initialised MERT of this preset (init seed 0; random:PRESET:SEED for another)",
                              int(c.sample_rate), float(c.frame_rate), int(c.num_hidden_layers) + 1,
                              int(c.hidden_size)))
    return out


def _encoder_entries() -> list[ModelEntry]:
    from benchmark.encoders import list_entries

    return [ModelEntry(r["name"], r["kind"], r["kind"], r["description"], r["sample_rate"], r["frame_rate"],
                       r["num_layers"], r["dim"], r["installed"]) for r in list_entries()]


def list_models() -> list[ModelEntry]:
    return [_shipped_shape(e) for e in MODELS.values()] + [
        *_random_entries(),
        *_encoder_entries(),
        ModelEntry("hear:MODULE", "hear", "MODULE.load_model()",
                   "a HEAR 2021 module's timestamp embeddings (hear:MODULE:MODEL_FILE passes a weights file)",
                   "model's own", "from timestamps", 1, "model's own"),
        ModelEntry("hf:REPO_OR_PATH", "hf", "transformers.AutoModel",
                   "wav2vec2 / HuBERT / WavLM / data2vec-audio via transformers, every hidden state (@REVISION)",
                   "model's own", "from conv strides", "model's own", "model's own"),
        ModelEntry("pkg.module:factory", "user", "factory()", "your own model meeting the representation contract"),
        ModelEntry("NAME+POOLING", "any", "NAME", "NAME pooled over each clip's frames by POOLING: "
                   f"{' or '.join(POOLINGS)} (its own results and leaderboard row)"),
    ]


def load_representation(name: str):
    """Build the representation named ``name`` (see module doc)."""
    base, plus, pooling = name.rpartition("+")
    if plus and base and not os.path.exists(name) and name not in MODELS:
        if pooling in POOLINGS:
            return _with_pooling(load_representation(base), name, pooling)
        import difflib

        close = difflib.get_close_matches(pooling.lower(), POOLINGS, n=1, cutoff=0.6)
        if close:
            raise ModelError(f"--model {name}: unknown pooling {pooling!r} after '+'; did you mean "
                             f"'{base}+{close[0]}'? (poolings: {', '.join(POOLINGS)})")
    return _load_base(name)


def _with_pooling(rep, name: str, pooling: str):
    """``rep`` renamed to ``name`` and pooled with ``pooling`` over each clip's frames. Its identity (the
    revision in results) stays the network's: the pooling is recorded beside it, in the name and the recipe."""
    identity = rep.identity()
    try:
        rep.name = name
        rep.pooling = pooling
        rep.identity = lambda: identity
    except AttributeError as e:
        raise ModelError(f"--model {name}: cannot set the pooling of this representation ({e}); give its "
                         f"factory a writable 'name' and 'pooling'") from None
    return rep


def _load_base(name: str):
    from benchmark import representations as R

    if name in MODELS:
        entry = MODELS[name]
        if entry.kind == "handcrafted":
            return R.HANDCRAFTED[entry.source]()
        return _load_mert(entry.source, name)
    if name.startswith("random:"):
        preset, seed = _parse_random(name)
        import torch

        from mert import build_model

        torch.manual_seed(seed)
        try:
            model = build_model(preset)
        except (KeyError, ValueError) as e:
            raise ModelError(f"--model {name}: {e}") from None
        return R.MertRepresentation(model, name, name)
    if name.startswith("hear:"):
        from benchmark.external import HearRepresentation

        module, _, model_file = name[len("hear:"):].partition(":")
        if not module or not all(p.isidentifier() for p in module.split(".")):
            raise ModelError(f"--model {name}: expected hear:MODULE or hear:MODULE:MODEL_FILE with an importable "
                             f"module name, got {module!r}")
        return HearRepresentation(module, model_file, name=name)
    from benchmark.encoders import is_encoder_name

    if is_encoder_name(name):
        from benchmark.encoders import load_encoder

        return load_encoder(name)
    if name.startswith("hf:"):
        from benchmark.external import HFRepresentation

        source, revision = name[len("hf:"):], None
        if not os.path.exists(source) and "@" in source:
            source, _, revision = source.rpartition("@")
        if not source:
            raise ModelError(f"--model {name}: expected hf:REPO_OR_PATH (a hub id owner/name or a folder)")
        return HFRepresentation(source, revision or None, name=name)
    if is_factory_name(name):
        try:
            return from_factory(name)
        except FactoryError as e:
            raise ModelError(str(e)) from None
    if os.path.exists(name) or ("/" in name and not name.startswith(".")):
        return _load_mert(name, name)
    raise ModelError(unknown_name_message("model", name, list(MODELS)) +
                     " (or random:PRESET, hear:MODULE, hf:REPO_OR_PATH, FAMILY:VARIANT for encodec / dac / muq / "
                     "clap / dasheng, pkg.module:factory, a hub id, a folder or a checkpoint; NAME+mean_std or "
                     "NAME+mean for another pooling)")


def _parse_random(name: str) -> tuple[str, int]:
    """``random:PRESET[:SEED]`` -> (preset, init seed)."""
    preset, _, seed = name.split(":", 1)[1].partition(":")
    if not seed:
        return preset, RANDOM_SEED
    if not seed.isdigit():
        raise ModelError(f"--model {name}: the init seed after the preset must be a non-negative integer, got "
                         f"{seed!r} (random:PRESET or random:PRESET:SEED, e.g. random:mert-mini:1)")
    return preset, int(seed)


def _load_mert(source: str, name: str):
    from benchmark.representations import MertRepresentation
    from mert import load_model

    try:
        model = load_model(source)
    except (FileNotFoundError, OSError, ValueError, KeyError) as e:
        raise ModelError(f"--model {name}: cannot load {source!r}: {e}") from None
    return MertRepresentation(model, name, source)
