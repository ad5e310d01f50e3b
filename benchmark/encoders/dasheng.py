"""Dasheng (``dasheng`` package, ``pip install -e '.[dasheng]'``) as a representation.

Dasheng ("Deep Audio-Signal Holistic Embeddings", Xiaomi, Interspeech 2024) is a masked-autoencoder ViT trained
on 272k hours of general audio (music included): 16 kHz in, a 64-band log-mel spectrogram at 100 frames/s,
patches of 4 frames x all 64 bands, so one token per 40 ms: 25 frames/s. The package's forward runs the
transformer on independent splits of 252 tokens (10.08 s) and concatenates them; so does this adapter (it calls
that forward). A clip of ``n`` samples has ``(n // 160 + 1 - 4) // 4 + 1`` frames (none under 480 samples).

Layers (``depth + 1``): the patch embeddings with positions (the transformer's input), the output of each
block, the last one after the final LayerNorm (what ``Dasheng.forward`` returns): 13 x 768 for ``base``, 33 x
1280 for ``0.6b``, 41 x 1536 for ``1.2b``. ``tiny`` is the package's ``Dasheng`` class with 32 dimensions and 2
blocks (random weights only).

Weights: the package downloads them from Zenodo with torch hub (``dasheng_base.pt``, ``dasheng_06b.pt``,
``dasheng_12b.pt`` in ``$TORCH_HOME/hub/checkpoints``); they are read from there or ``weights=PATH``, never
downloaded here. Audio is not normalised (the package takes the waveform as it is).
"""
from __future__ import annotations

from benchmark.encoders import EncoderRepresentation, Spec, seeded, torch_hub_file
from benchmark.representations import ModelError

ZENODO = "https://zenodo.org/records/11511780/files/"
FILES = {"base": "dasheng_base.pt", "0.6b": "dasheng_06b.pt", "1.2b": "dasheng_12b.pt"}
SIZES = {"base": (768, 12, 12), "0.6b": (1280, 32, 16), "1.2b": (1536, 40, 24), "tiny": (32, 2, 2)}
HOP = 160
PATCH = 4


def build(spec: Spec) -> "DashengRepresentation":
    return DashengRepresentation(spec)


class DashengRepresentation(EncoderRepresentation):
    dist = "dasheng"

    def __init__(self, spec: Spec):
        super().__init__(spec)
        from dasheng.pretrained.pretrained import Dasheng

        dim, depth, heads = SIZES[spec.variant]
        if spec.random is not None:
            with seeded(spec):
                model = Dasheng(embed_dim=dim, depth=depth, num_heads=heads)
        else:
            name = FILES[spec.variant]
            path = torch_hub_file(spec, name, f"{ZENODO}{name}?download=1")
            try:
                model = Dasheng.from_pretrained(str(path), embed_dim=dim, depth=depth, num_heads=heads)
            except Exception as e:  # torch.load / load_state_dict: a file that is not this model's checkpoint
                raise ModelError(f"{spec.label}: cannot load {path} as Dasheng {spec.variant} weights: {e}") from None
        self.model = model.eval()
        self.sample_rate = 16000
        self.hop = int(model.hop_size)
        self.patch = int(model.patch_stride[-1])
        self.frame_rate = self.sample_rate / (self.hop * self.patch)
        self.dim = int(model.embed_dim)
        self.num_layers = len(model.blocks) + 1

    def num_frames(self, num_samples: int) -> int:
        mel = int(num_samples) // self.hop + 1
        return 0 if mel < self.patch else (mel - self.patch) // self.patch + 1

    def forward(self, wav):
        import torch

        m = self.model
        taps = [m.pos_drop, *list(m.blocks)[:-1], m.norm]
        got: list[list] = [[] for _ in taps]
        hooks = [t.register_forward_hook(lambda mod, inp, out, i=i: got[i].append(out)) for i, t in enumerate(taps)]
        try:
            out = m(wav)
        finally:
            for h in hooks:
                h.remove()
        layers = [torch.cat(g, dim=1) for g in got]  # each split's tokens, in order
        assert layers[-1].shape == out.shape
        return layers
