"""EnCodec (Meta's neural audio codec, ``encodec`` package, a core dependency) as a representation.

``--model encodec:24khz``: the 24 kHz model's encoder latent, one layer of 128 dimensions at 75 frames/s (one
frame per 320 samples; a clip of ``n`` samples has ``ceil(n / 320)`` frames, as the package's encoder gives).
``encodec:24khz:rvq`` adds the residual vector quantiser's output after each level: layer ``k`` (1..K) is the sum
of the first ``k`` codebook vectors, i.e. the embedding the decoder receives at ``k`` codebooks; layer 0 stays the
latent. ``bw=KBPS`` picks the bandwidth, so K: 1.5, 3, 6 (the default, 8 levels, the codes MERT's EnCodec
teacher uses), 12 or 24 kbps (32 levels).

Weights: ``encodec_24khz-d7cc33bc.th`` in torch hub's cache (``$TORCH_HOME/hub/checkpoints``, where
``EncodecModel.encodec_model_24khz()`` downloads it) or ``weights=PATH``; never downloaded here. ``:random``
builds the same architecture with random weights; the quantiser's codebooks, which the package leaves at zero
until k-means runs on the first training batch, get the package's own uniform init (otherwise every RVQ layer
would be zero).

Clips run grouped by exact length, never padded: the encoder is causal (causal convolutions, a unidirectional
LSTM), but the package completes a clip's last frame by reflecting its end, so zero padding would change the last
frame of a clip whose length is not a multiple of 320. The 48 kHz model is
not offered: it is stereo and normalises each 1 s segment of a 1%-overlapping segmentation, which has no fixed
frame grid. Inputs are not normalised (``audio_normalize=False`` for 24 kHz).
"""
from __future__ import annotations

from benchmark.encoders import EncoderRepresentation, Spec, seeded, torch_hub_file
from benchmark.representations import ModelError

BANDWIDTHS = (1.5, 3.0, 6.0, 12.0, 24.0)
DEFAULT_BANDWIDTH = 6.0
URL = "https://dl.fbaipublicfiles.com/encodec/v0/"


def build(spec: Spec) -> "EncodecRepresentation":
    return EncodecRepresentation(spec)


class EncodecRepresentation(EncoderRepresentation):
    autocast = False      # nearest-codeword search and an LSTM: float32 throughout
    dist = "encodec"

    def __init__(self, spec: Spec):
        super().__init__(spec)
        import torch
        from encodec import EncodecModel

        bw = spec.value("bw")
        try:
            self.bandwidth = float(bw) if bw is not None else DEFAULT_BANDWIDTH
        except ValueError:
            self.bandwidth = -1.0
        if self.bandwidth not in BANDWIDTHS:
            raise ModelError(f"{spec.label}: bw must be one of {', '.join(f'{b:g}' for b in BANDWIDTHS)} (kbps), "
                             f"got {bw!r}")
        if bw is not None and "rvq" not in spec.flags:
            raise ModelError(f"{spec.label}: bw= chooses the RVQ levels; add :rvq (the latent has no bandwidth)")
        if spec.random is not None:
            with seeded(spec):
                model = EncodecModel.encodec_model_24khz(pretrained=False)
                self._init_codebooks(model)
        else:
            path = torch_hub_file(spec, spec.info.weights, URL + spec.info.weights)
            model = EncodecModel.encodec_model_24khz(pretrained=False)
            try:
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except Exception as e:  # torch.load's errors vary (pickle, zip, size mismatch): all mean "not this"
                raise ModelError(f"{spec.label}: cannot load {path} as EnCodec 24 kHz weights: {e}") from None
        model.set_target_bandwidth(self.bandwidth)
        self.model = model.eval()
        self.sample_rate = int(model.sample_rate)
        self.hop = 1
        for r in model.encoder.ratios:
            self.hop *= int(r)
        self.frame_rate = self.sample_rate / self.hop
        self.dim = int(model.quantizer.dimension)
        self.levels = int(model.quantizer.get_num_quantizers_for_bandwidth(model.frame_rate, self.bandwidth))
        self.rvq = "rvq" in spec.flags
        self.num_layers = 1 + (self.levels if self.rvq else 0)

    @staticmethod
    def _init_codebooks(model) -> None:
        import torch
        from encodec.quantization.core_vq import uniform_init

        with torch.no_grad():
            for layer in model.quantizer.vq.layers:
                cb = layer._codebook
                if not bool(cb.inited):
                    cb.embed.copy_(uniform_init(*cb.embed.shape))
                    cb.inited.fill_(1.0)

    def settings(self) -> dict:
        return {"bandwidth": self.bandwidth if self.rvq else None}

    def num_frames(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.hop)

    def forward(self, wav):
        import torch

        z = self.model.encoder(wav[:, None])             # [b, D, T]
        out = [z]
        if self.rvq:
            codes = self.model.quantizer.encode(z, self.model.frame_rate, self.bandwidth)  # [K, b, T]
            q = torch.zeros_like(z)
            for layer, c in zip(self.model.quantizer.vq.layers, codes):
                q = q + layer.decode(c)
                out.append(q)
        return [h.transpose(1, 2) for h in out]
