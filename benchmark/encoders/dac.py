"""DAC, the Descript Audio Codec (``descript-audio-codec`` package) as a representation.

Install: ``pip install -e '.[dac]'`` (the real dependencies), then ``pip install --no-deps
descript-audio-codec==1.0.0 descript-audiotools==0.7.2``: descript-audiotools declares ``protobuf<3.20``, which
conflicts with wandb and tensorboard's protobuf and is not needed to encode audio.

``--model dac:44khz`` (or ``24khz``, ``16khz``): the encoder latent, one layer of 1024 dimensions at the codec's
frame rate (44100 / 512 = 86.13, 24000 / 320 = 75, 16000 / 320 = 50 frames/s). ``dac:VARIANT:rvq`` adds the
residual vector quantiser's output after each level, in the latent space (layer ``k`` = the sum of the first
``k`` quantisers' outputs, what the decoder receives from ``k`` codebooks; the last equals ``DAC.encode``'s
``z``): 9, 32 or 12 levels for the 44, 24 and 16 kHz models. As the package's ``preprocess``, a clip is zero
padded on the right to whole hops: ``ceil(n / hop)`` frames. The input is not normalised (``DAC.encode`` does
not; ``compress`` normalises loudness for storage, not for the features).

Weights: the package's own cache, ``~/.cache/descript/dac/weights_{44khz,24khz,16khz}_8kbps_{tag}.pth`` (what
``dac.utils.download`` writes, with the package's latest tag), or ``weights=PATH``; read with ``DAC.load``, never
downloaded here. ``tiny`` is the package's ``DAC`` class at a test size (16 kHz rates, a 32-dimensional latent, 3
codebooks of 64; random weights only).
"""
from __future__ import annotations

from pathlib import Path

from benchmark.encoders import EncoderRepresentation, Spec, seeded
from benchmark.representations import ModelError

TINY = dict(encoder_dim=8, encoder_rates=[2, 4, 5, 8], latent_dim=32, decoder_dim=16, decoder_rates=[8, 5, 4, 2],
            n_codebooks=3, codebook_size=64, codebook_dim=4, sample_rate=16000)
# the released models' architectures (dac.utils.download's files carry them as metadata; random builds use these)
RELEASED = {"44khz": dict(encoder_rates=[2, 4, 8, 8], decoder_rates=[8, 8, 4, 2], n_codebooks=9, sample_rate=44100),
            "24khz": dict(encoder_rates=[2, 4, 5, 8], decoder_rates=[8, 5, 4, 2], n_codebooks=32,
                          sample_rate=24000),
            "16khz": dict(encoder_rates=[2, 4, 5, 8], decoder_rates=[8, 5, 4, 2], n_codebooks=12,
                          sample_rate=16000)}
BITRATE = "8kbps"


def build(spec: Spec) -> "DACRepresentation":
    return DACRepresentation(spec)


def weights_file(variant: str) -> tuple[Path, str]:
    """The package's cache path of a released model and its URL (dac.utils' own tables)."""
    import dac.utils as U

    tag = U.__MODEL_LATEST_TAGS__[(variant, BITRATE)]
    url = U.__MODEL_URLS__[(variant, tag, BITRATE)]
    return Path.home() / ".cache" / "descript" / "dac" / f"weights_{variant}_{BITRATE}_{tag}.pth", url


class DACRepresentation(EncoderRepresentation):
    autocast = False
    dist = "descript-audio-codec"

    def __init__(self, spec: Spec):
        super().__init__(spec)
        from dac.model.dac import DAC

        if spec.random is not None:
            with seeded(spec):
                model = DAC(**(TINY if spec.variant == "tiny" else RELEASED[spec.variant]))
        else:
            if spec.weights:
                path = Path(spec.weights).expanduser()
                if not path.is_file():
                    raise ModelError(f"{spec.label}: weights file {spec.weights!r} does not exist")
            else:
                path, url = weights_file(spec.variant)
                if not path.is_file():
                    raise ModelError(
                        f"{spec.label}: checkpoint {path.name} not found at {path} (the package's cache). Download "
                        f"{url} and save it there (or run `python -m dac download --model_type {spec.variant}` where "
                        f"the network is reachable), pass {spec.name}:weights=/path/to/weights.pth, or use "
                        f"dac:{spec.variant}:random for random weights")
            try:
                model = DAC.load(str(path))
            except Exception as e:  # audiotools' loader: torch.load and the metadata's kwargs
                raise ModelError(f"{spec.label}: cannot load {path} with DAC.load: {e}") from None
        self.model = model.eval()
        self.sample_rate = int(model.sample_rate)
        if spec.variant != "tiny" and self.sample_rate != spec.info.sample_rate:
            raise ModelError(f"{spec.label}: {path} is a {self.sample_rate} Hz DAC, not {spec.variant}")
        self.hop = int(model.hop_length)
        self.frame_rate = self.sample_rate / self.hop
        self.dim = int(model.latent_dim)
        self.levels = int(model.n_codebooks)
        self.rvq = "rvq" in spec.flags
        self.num_layers = 1 + (self.levels if self.rvq else 0)

    def settings(self) -> dict:
        return {"hop": self.hop, "levels": self.levels}

    def num_frames(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.hop)

    def forward(self, wav):
        m = self.model
        z = m.encoder(m.preprocess(wav[:, None], self.sample_rate))     # [b, D, T]
        out = [z]
        if self.rvq:  # ResidualVectorQuantize.forward, level by level (eval: every quantiser, no dropout)
            q, residual = 0, z
            for quantizer in m.quantizer.quantizers:
                z_q_i = quantizer(residual)[0]
                q = q + z_q_i
                residual = residual - z_q_i
                out.append(q)
        return [h.transpose(1, 2) for h in out]
