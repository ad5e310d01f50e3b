"""The MERT encoder as a representation (the benchmark's contract: name, sample and frame rate, layers, dim,
identity, ``__call__(wav, lengths) -> (hidden states, frame lengths)``), shared by the benchmark
(benchmark.representations.MertRepresentation) and the k-means-layer teacher (mert.teachers.kmeans_layer).
Imports nothing heavy at module level, so that the benchmark's CLI help stays free of torch."""
from __future__ import annotations


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
