"""The MERT encoder as a representation (the benchmark's contract: name, sample and frame rate, layers, dim,
identity, ``__call__(wav, lengths) -> (hidden states, frame lengths)``), shared by the benchmark
(benchmark.representations.MertRepresentation) and the k-means-layer teacher (mert.teachers.kmeans_layer).
Imports nothing heavy at module level, so that the benchmark's CLI help stays free of torch."""
from __future__ import annotations

import importlib
import os

#: what every representation has besides ``__call__(wav, lengths)`` (the benchmark's contract)
REQUIRED = ("name", "sample_rate", "frame_rate", "num_layers", "dim", "identity")


class FactoryError(ValueError):
    """A ``pkg.module:factory`` representation that cannot be loaded or does not meet the contract (one line
    naming ``--model``); an error the factory itself raises is not one."""


def looks_like_factory(name: str) -> bool:
    """``pkg.module:factory``: a dotted module path, a colon, an identifier."""
    mod, sep, fn = str(name).partition(":")
    return bool(sep) and bool(fn) and fn.isidentifier() and all(p.isidentifier() for p in mod.split("."))


def check_contract(rep, name: str) -> None:
    """``rep`` has the :data:`REQUIRED` attributes, is callable, and declares positive sizes; else a
    :class:`FactoryError` (one line, naming ``--model name``)."""
    missing = [a for a in REQUIRED if not hasattr(rep, a)]
    if missing or not callable(rep):
        raise FactoryError(
            f"--model {name}: the factory's object lacks {missing or ['__call__']}; a representation needs "
            f"{', '.join(REQUIRED)} and __call__(wav, lengths) -> (layers, frame_lengths)"
        )
    if int(rep.num_layers) < 1 or int(rep.dim) < 1 or int(rep.sample_rate) < 1:
        raise FactoryError(f"--model {name}: num_layers, dim and sample_rate must be positive")


def from_factory(name: str):
    """The representation ``pkg.module:factory`` returns (``factory()``), checked against the contract; a
    :class:`FactoryError` (one line) when the module cannot be imported, has no such attribute, or the object
    falls short.
    Used by the benchmark (benchmark.registry) and the k-means-layer teacher (mert.teachers.kmeans_layer)."""
    mod, _, fn = str(name).partition(":")
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise FactoryError(f"--model {name}: cannot import module {mod!r} ({e})") from None
    factory = getattr(module, fn, None)
    if factory is None:
        raise FactoryError(f"--model {name}: module {mod!r} has no attribute {fn!r}")
    rep = factory()
    check_contract(rep, name)
    return rep


def is_factory_name(name: str) -> bool:
    """A ``pkg.module:factory`` name that is not also a path on disk."""
    return looks_like_factory(name) and not os.path.exists(name)


class MertSource:
    """A MERT encoder as the benchmark runs it (benchmark.representations.MertRepresentation is this class with
    its source): all ``num_layers + 1`` hidden states, waveforms standardised per item over their valid samples
    unless the model's config says it does not normalise; its identity is :func:`mert.model.weights_identity`.
    The k-means-layer teacher (mert.teachers.kmeans_layer) runs it too."""

    pooling = "mean"

    def __init__(self, model, name: str):
        self.model = model.eval()
        self.name = name
        self.sample_rate = int(model.sample_rate)
        self.frame_rate = float(model.frame_rate)
        self.num_layers = int(model.num_layers) + 1
        self.dim = int(model.dim)
        self.normalize = bool(getattr(model.config, "do_normalize", getattr(model.config, "normalize", True)))
        self.device = "cpu"
        self._identity: str | None = None

    def identity(self) -> str:
        if self._identity is None:
            from mert.model import weights_identity

            self._identity = weights_identity(self.model, self.normalize)
        return self._identity

    def num_frames(self, num_samples: int) -> int:
        return int(self.model.num_frames(num_samples))

    def to(self, device):
        self.device = str(device)
        self.model.to(device)
        return self

    #: the encoder's attention projections (MERT's fused q/k/v and its output projection): the modules
    #: ``--mode lora`` adapts by default (benchmark.finetune, ``finetune.lora.targets=auto``)
    attention_projections = ("qkv_proj", "out_proj")

    def __call__(self, wav, lengths):
        import torch

        with torch.inference_mode():
            return self.forward(wav, lengths)

    def forward(self, wav, lengths):
        """What ``__call__`` returns, with autograd: the encoder trained with a task head (benchmark.finetune)."""
        import torch

        wav = wav.to(self.device).float()
        lengths = torch.as_tensor(lengths, dtype=torch.long, device=wav.device)
        if self.normalize:
            from mert.audio import standardise

            wav = standardise(wav, lengths)
        out = self.model(wav, lengths=lengths)
        return list(out.hidden_states), out.lengths.cpu()
