"""Music encoders from other packages as representations: ``--model FAMILY[:VARIANT][:OPTION...]``.

Each family wraps the encoder its own package builds (no vendored model code) and returns every layer's frames at
the encoder's own sample rate and frame rate through the representation contract (benchmark.representations):
the framework windows long audio, pools and mixes layers as for every model. The families, their variants and
shapes are in :data:`FAMILIES` (``python -m benchmark list-models`` prints them with whether the extra is
installed); docs/encoders.md is the user's page.

=========  ======================================  ============================  =================================
family     package (extra)                         variants                      layers
=========  ======================================  ============================  =================================
encodec    ``encodec`` (core)                      ``24khz``                     the latent; ``rvq``: + RVQ levels
dac        ``descript-audio-codec`` (``.[dac]``)   ``44khz``, ``24khz``,         the latent; ``rvq``: + RVQ levels
                                                   ``16khz``
muq        ``muq`` (``.[muq]``)                    ``large``, ``mulan``          conformer / tower layers
clap       ``laion-clap`` (``.[clap]``)            ``music``, ``music-speech``,  HTSAT's last-resolution layers
                                                   ``general``                   (audio branch only)
dasheng    ``dasheng`` (``.[dasheng]``)            ``base``, ``0.6b``, ``1.2b``  transformer blocks
=========  ======================================  ============================  =================================

Every family but EnCodec (small already) also has a ``tiny`` variant: the same architecture class at a test
size, random weights only, so tests and smoke runs need no checkpoint. MusicFM and CLaMP3 have no maintained
package and are not offered (docs/encoders.md).

Options, after the variant (any order, ``:``-separated):

- ``random`` / ``random=SEED``: the variant's architecture, built by its package with random weights (init seed
  0 unless given), no checkpoint read. The baseline every SSL paper needs, and how tests run without the hub.
- ``weights=PATH``: a local checkpoint (a file; for muq a hub snapshot folder) instead of the default location.
  Always the last option (the path may contain ``:``).
- family flags: ``rvq`` (encodec, dac: the quantised embeddings too), ``bw=KBPS`` (encodec's bandwidth for
  ``rvq``: 1.5, 3, 6, 12 or 24; 6 by default), ``backbone`` (``muq:mulan``: its MuQ backbone's layers instead
  of the MuLan audio tower's).

Weights are looked up offline first, each family where its own package caches them (torch hub's cache for
EnCodec and Dasheng, ``~/.cache/descript/dac`` for DAC, the Hugging Face cache for MuQ and CLAP); a missing
checkpoint is a :class:`ModelError` naming the file, where to get it and where to put it (or ``weights=PATH``).
With ``HF_HUB_OFFLINE=1`` nothing is downloaded. A family whose package is missing is a ModelError naming the
extra to install. Nothing here is imported by the core: the registry imports this module (stdlib only at
module level) and the family module only when its name is asked for.

Batching: clips are grouped by exact length and never padded (every family here has a front end, a reflection or
attention that padding would reach), so a clip's frames are those its package's forward gives it alone
(tests/test_encoders.py checks this for each family). ``padding_safe`` lets a future family run padded batches.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from typing import Any

from benchmark.representations import ModelError

__all__ = ["FAMILIES", "EncoderRepresentation", "Family", "Spec", "Variant", "is_encoder_name", "list_entries",
           "load_encoder", "parse_spec"]


@dataclass(frozen=True)
class Variant:
    """A released model of a family: its shape (for list-models) and where its weights come from."""

    sample_rate: int
    frame_rate: float
    num_layers: int
    dim: int
    description: str
    weights: str = ""          # the checkpoint: a file name, a URL or a hub id (the family module reads it)
    random_only: bool = False  # ``tiny``: a test-size architecture, no released weights


@dataclass(frozen=True)
class Family:
    module: str                 # benchmark.encoders.<module>
    imports: tuple[str, ...]    # the packages it imports (checked before loading; list-models' "installed")
    extra: str                  # pip install -e '.[extra]'; "" for a core dependency
    install: str                # how to install it when pip install -e '.[extra]' is not all
    variants: dict[str, Variant]
    default: str
    flags: tuple[str, ...] = ()           # options without a value
    values: tuple[str, ...] = ()          # options KEY=VALUE
    rvq_layers: dict[str, int] = field(default_factory=dict)  # variant -> layers with ``rvq`` (list-models)


_NO_DEPS = "pip install --no-deps {pkgs}  (its declared dependencies pin {why}; the extra installs the real ones)"

FAMILIES: dict[str, Family] = {
    "encodec": Family(
        "encodec", ("encodec",), "", "pip install encodec (a core dependency)",
        {"24khz": Variant(24000, 75.0, 1, 128, "EnCodec 24 kHz encoder latent (Meta, music + speech codec)",
                          "encodec_24khz-d7cc33bc.th")},
        "24khz", flags=("rvq",), values=("bw",), rvq_layers={"24khz": 9}),
    "dac": Family(
        "dac", ("dac", "audiotools"), "dac",
        _NO_DEPS.format(pkgs="descript-audio-codec==1.0.0 descript-audiotools==0.7.2", why="protobuf<3.20"),
        {"44khz": Variant(44100, 44100 / 512, 1, 1024, "Descript Audio Codec 44.1 kHz (8 kbps, 9 codebooks)",
                          "44khz"),
         "24khz": Variant(24000, 75.0, 1, 1024, "Descript Audio Codec 24 kHz (32 codebooks)", "24khz"),
         "16khz": Variant(16000, 50.0, 1, 1024, "Descript Audio Codec 16 kHz (12 codebooks)", "16khz"),
         "tiny": Variant(16000, 50.0, 1, 32, "DAC architecture at a test size, random weights (tests)",
                         random_only=True)},
        "44khz", flags=("rvq",), rvq_layers={"44khz": 10, "24khz": 33, "16khz": 13, "tiny": 4}),
    "muq": Family(
        "muq", ("muq", "transformers"), "muq",
        _NO_DEPS.format(pkgs="muq==0.1.0 x-clip==0.14.4", why="an unpinned torchvision that pulls another torch"),
        {"large": Variant(24000, 25.0, 13, 1024, "MuQ large (OpenMuQ/MuQ-large-msd-iter): Mel-RVQ SSL conformer",
                          "OpenMuQ/MuQ-large-msd-iter"),
         "mulan": Variant(24000, 25.0, 9, 768, "MuQ-MuLan large (OpenMuQ/MuQ-MuLan-large): music-text audio tower",
                          "OpenMuQ/MuQ-MuLan-large"),
         "tiny": Variant(24000, 25.0, 3, 32, "MuQ architecture at a test size, random weights (tests)",
                         random_only=True),
         "tiny-mulan": Variant(24000, 25.0, 3, 32, "the MuLan audio tower around tiny MuQ, random weights (tests)",
                               random_only=True)},
        "large", flags=("backbone",)),
    "clap": Family(
        "clap", ("laion_clap", "torchlibrosa", "torchvision"), "clap",
        _NO_DEPS.format(pkgs="laion-clap==1.1.7", why="numpy<2"),
        {"music": Variant(48000, 3.2, 4, 1024, "LAION-CLAP HTSAT-base, music checkpoint (music_audioset_epoch_15)",
                          "music_audioset_epoch_15_esc_90.14.pt"),
         "music-speech": Variant(48000, 3.2, 4, 1024, "LAION-CLAP HTSAT-base, music + speech checkpoint",
                                 "music_speech_audioset_epoch_15_esc_89.98.pt"),
         "general": Variant(48000, 3.2, 4, 768, "LAION-CLAP HTSAT-tiny, LAION-Audio-630K + AudioSet checkpoint",
                            "630k-audioset-best.pt"),
         "tiny": Variant(48000, 3.2, 3, 32, "HTSAT architecture at a test size, random weights (tests)",
                         random_only=True)},
        "music"),
    "dasheng": Family(
        "dasheng", ("dasheng",), "dasheng", "pip install dasheng",
        {"base": Variant(16000, 25.0, 13, 768, "Dasheng base (86M): audio MAE transformer", "dasheng_base"),
         "0.6b": Variant(16000, 25.0, 33, 1280, "Dasheng 0.6B", "dasheng_06B"),
         "1.2b": Variant(16000, 25.0, 41, 1536, "Dasheng 1.2B", "dasheng_12B"),
         "tiny": Variant(16000, 25.0, 3, 32, "Dasheng architecture at a test size, random weights (tests)",
                         random_only=True)},
        "base"),
}


def is_encoder_name(name: str) -> bool:
    """Whether ``name`` asks for one of :data:`FAMILIES` (``FAMILY`` or ``FAMILY:...``)."""
    return name.partition(":")[0] in FAMILIES


@dataclass(frozen=True)
class Spec:
    """A parsed ``--model FAMILY[:VARIANT][:OPTION...]``."""

    name: str
    family: str
    variant: str
    flags: frozenset = frozenset()
    values: tuple = ()           # sorted (key, value) pairs
    random: int | None = None    # init seed for random weights, None for a checkpoint
    weights: str | None = None   # weights=PATH

    @property
    def info(self) -> Variant:
        return FAMILIES[self.family].variants[self.variant]

    def value(self, key: str, default: str | None = None) -> str | None:
        return dict(self.values).get(key, default)

    @property
    def label(self) -> str:
        return f"--model {self.name}"


def parse_spec(name: str) -> Spec:
    """``FAMILY[:VARIANT][:OPTION...]`` -> :class:`Spec`; a :class:`ModelError` naming what is wrong."""
    head, sep, weights = name.partition(":weights=")
    parts = head.split(":")
    family = parts[0]
    fam = FAMILIES[family]
    rest = parts[1:]
    variant = fam.default
    if rest and rest[0] in fam.variants:
        variant = rest.pop(0)
    flags: set[str] = set()
    values: dict[str, str] = {}
    seed: int | None = None
    for opt in rest:
        key, eq, val = opt.partition("=")
        if key == "random":
            if eq and not val.isdigit():
                raise ModelError(f"--model {name}: random=SEED takes a non-negative integer, got {val!r}")
            seed = int(val) if eq else 0
        elif not eq and key in fam.flags:
            flags.add(key)
        elif eq and key in fam.values and val:
            values[key] = val
        else:
            import difflib

            known = [*fam.variants, "random", "random=SEED", "weights=PATH", *fam.flags, *(f"{v}=..." for v in
                                                                                          fam.values)]
            close = difflib.get_close_matches(opt, known, n=1, cutoff=0.5)
            raise ModelError(f"--model {name}: unknown variant or option {opt!r}"
                             + (f"; did you mean {close[0]!r}?" if close else "")
                             + f" ({family} variants: {', '.join(fam.variants)}; options: "
                             + ", ".join(known[len(fam.variants):]) + ")")
    if sep and not weights:
        raise ModelError(f"--model {name}: weights= needs a path")
    if sep and seed is not None:
        raise ModelError(f"--model {name}: random and weights= exclude each other")
    info = fam.variants[variant]
    if info.random_only and seed is None:
        raise ModelError(f"--model {name}: {family}:{variant} is a test-size architecture with no released "
                         f"weights; use {family}:{variant}:random (or a released variant: "
                         + ", ".join(v for v, i in fam.variants.items() if not i.random_only) + ")")
    return Spec(name, family, variant, frozenset(flags), tuple(sorted(values.items())), seed, weights or None)


def installed(family: str) -> bool:
    """Whether every package the family imports is installed (found, not imported)."""
    for mod in FAMILIES[family].imports:
        try:
            if importlib.util.find_spec(mod) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def require(spec: Spec) -> None:
    """A :class:`ModelError` naming the extra when the family's packages are not importable."""
    fam = FAMILIES[spec.family]
    for mod in fam.imports:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            extra = f"pip install -e '.[{fam.extra}]'" if fam.extra else "pip install -e ."
            raise ModelError(f"{spec.label}: {spec.family} needs the {mod!r} module ({e}); install it with "
                             f"{extra}, then {fam.install}") from None


def load_encoder(name: str):
    """The representation ``name`` asks for (module doc)."""
    spec = parse_spec(name)
    require(spec)
    module = importlib.import_module(f"benchmark.encoders.{FAMILIES[spec.family].module}")
    rep = module.build(spec)
    from benchmark.representations import check_contract

    check_contract(rep, name)
    return rep


def list_entries() -> list[dict[str, Any]]:
    """One row per variant (and per ``rvq`` form) for list-models, with whether the family is installed."""
    rows = []
    for fname, fam in FAMILIES.items():
        ok = installed(fname)
        where = (f"{fam.extra}:" if fam.extra else "core:") + ("yes" if ok else "no")
        for vname, v in fam.variants.items():
            name = f"{fname}:{vname}" + (":random" if v.random_only else "")
            rows.append(dict(name=name, kind=fname, sample_rate=v.sample_rate, frame_rate=v.frame_rate,
                             num_layers=v.num_layers, dim=v.dim, description=v.description, installed=where))
            if vname in fam.rvq_layers:
                rows.append(dict(name=name.replace(f":{vname}", f":{vname}:rvq"), kind=fname,
                                 sample_rate=v.sample_rate, frame_rate=v.frame_rate,
                                 num_layers=fam.rvq_layers[vname], dim=v.dim, installed=where,
                                 description="the latent, then the quantised embedding after each RVQ level"))
    return rows


# ================================================================================================ shared helpers
def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def torch_hub_file(spec: Spec, filename: str, url: str):
    """A checkpoint in torch hub's cache (``$TORCH_HOME/hub/checkpoints``), or ``weights=PATH``; never a
    download: a ModelError naming the URL and the place to put the file."""
    from pathlib import Path

    import torch

    if spec.weights:
        path = Path(spec.weights).expanduser()
        if not path.is_file():
            raise ModelError(f"{spec.label}: weights file {spec.weights!r} does not exist")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise ModelError(f"{spec.label}: checkpoint {filename} not found at {path}. Download {url} and put it "
                         f"there (torch hub's cache; $TORCH_HOME moves it), pass "
                         f"{spec.name}:weights=/path/to/{filename}, or use {spec.family}:{spec.variant}:random for "
                         "random weights")
    return path


def hub_file(spec: Spec, repo: str, filename: str):
    """A file of a Hugging Face hub repo: the local cache first, the hub unless ``HF_HUB_OFFLINE`` is set; a
    ModelError naming the repo, the file and the download command when neither has it."""
    from pathlib import Path

    if spec.weights:
        path = Path(spec.weights).expanduser()
        if path.is_dir():
            path = path / filename
        if not path.is_file():
            raise ModelError(f"{spec.label}: weights {spec.weights!r}: no file {path}")
        return path
    from huggingface_hub import hf_hub_download

    last: Exception | None = None
    for local_only in ((True,) if offline() else (True, False)):
        try:
            return Path(hf_hub_download(repo, filename, local_files_only=local_only))
        except Exception as e:  # huggingface_hub's errors differ between versions; all mean "not there"
            last = e
    where = "the local Hugging Face cache (HF_HUB_OFFLINE is set)" if offline() else "the hub or its cache"
    raise ModelError(f"{spec.label}: cannot find {filename} of {repo} in {where} ({type(last).__name__}). "
                     f"Download it with `huggingface-cli download {repo} {filename}` where the hub is reachable "
                     f"(HF_HOME moves the cache), pass {spec.name}:weights=PATH, or use "
                     f"{spec.family}:{spec.variant}:random for random weights") from None


def seeded(spec: Spec):
    """A context that seeds torch's global generator for a random build (and restores it after)."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def ctx():
        state = torch.random.get_rng_state()
        torch.manual_seed(spec.random or 0)
        try:
            yield
        finally:
            torch.random.set_rng_state(state)

    return ctx()


def package_version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "?"


class EncoderRepresentation:
    """The shared half of every family's adapter: batching, frame counts, padding, identity, device.

    A family sets ``model`` (a torch module holding every weight that matters), ``sample_rate``,
    ``frame_rate``, ``num_layers``, ``dim``, and implements ``num_frames(n)`` (valid frames of a clip of ``n``
    samples) and ``forward(wav [b, n])`` (a list of ``num_layers`` tensors ``[b, T', D]`` with ``T' >=
    num_frames(n)``, for clips of one length ``n``). ``settings()`` adds what else decides the outputs to the
    identity.
    """

    pooling = "mean"
    config_overrides: dict[str, Any] = {}
    autocast = True
    padding_safe = False   # True: run padded batches (the valid frames never see the padding)
    dist = ""              # the distribution whose version goes into the identity

    def __init__(self, spec: Spec):
        self.spec = spec
        self.name = spec.name
        self.family = spec.family
        self.variant = spec.variant
        self.device = "cpu"
        self._identity: str | None = None

    @property
    def batching(self) -> str:
        return "padded" if self.padding_safe else "per-length"

    def settings(self) -> dict:
        return {}

    def identity(self) -> str:
        if self._identity is None:
            from benchmark.external import _hash_state

            h = hashlib.sha256(f"encoder:{self.family}:{self.variant}".encode())
            h.update(json.dumps([package_version(self.dist), self.sample_rate, float(self.frame_rate),
                                 self.num_layers, self.dim, sorted(self.spec.flags), list(self.spec.values),
                                 self.settings()], default=str).encode())
            _hash_state(h, self.model)
            self._identity = h.hexdigest()[:16]
        return self._identity

    def to(self, device):
        self.device = str(device)
        self.model.to(device)
        return self

    def __call__(self, wav, lengths):
        import torch

        from benchmark.external import _groups_by_length

        if wav.ndim != 2:
            raise ValueError(f"{self.name}: expected wav [B, T], got {tuple(wav.shape)}")
        wav = wav.to(self.device).float()
        lengths = [int(n) for n in torch.as_tensor(lengths, dtype=torch.long)]
        nframes = torch.tensor([self.num_frames(n) for n in lengths], dtype=torch.long)
        B, T = len(lengths), int(nframes.max()) if lengths else 0
        layers = [torch.zeros(B, T, self.dim, device=wav.device) for _ in range(self.num_layers)]
        ok = [b for b in range(B) if int(nframes[b]) > 0]
        if self.padding_safe and ok:
            groups = [ok]
            valid = torch.tensor(lengths, device=wav.device)[:, None]
            wav = wav * (torch.arange(wav.shape[1], device=wav.device)[None] < valid)
        else:
            groups = [[ok[i] for i in idx] for idx in _groups_by_length([lengths[b] for b in ok], 1 << 30)]
        for rows in groups:
            n = max(lengths[b] for b in rows)
            with torch.inference_mode():
                hs = self.forward(wav[rows, :n])
            if len(hs) != self.num_layers:
                raise RuntimeError(f"{self.name}: the model gave {len(hs)} layers, expected {self.num_layers}")
            for layer, h in zip(layers, hs):
                k = min(T, h.shape[1])
                layer[rows, :k] = h[:, :k].float()
        for layer in layers:  # frames past a clip's own are zeros, whatever the model put there
            layer.mul_((torch.arange(T, device=layer.device)[None] < nframes.to(layer.device)[:, None])[..., None])
        return layers, nframes
