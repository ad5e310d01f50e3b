"""EnCodec teacher: residual-VQ codes of the 24 kHz EnCodec model at 6 kbps (8 codebooks x 1024, 75 Hz).

Codes are computed from clean audio. EnCodec's total stride is 320 samples at 24 kHz, the same as the
encoder's, so code frame ``i`` is used as the target of encoder frame ``i`` (as in MERT); a file of ``n``
samples gives ``ceil(n / 320)`` code frames, at least the encoder's ``num_frames(n)``.

Weights are read offline: ``--weights PATH`` or ``$TORCH_HOME/hub/checkpoints/encodec_24khz-d7cc33bc.th``
(torch hub's cache; ``~/.cache/torch/hub/checkpoints`` by default). Long files are encoded in chunks with
context on both sides (the encoder has an LSTM, so codes near chunk edges can differ slightly from
whole-file encoding; the context keeps this negligible).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from . import HOP, SAMPLE_RATE

CHECKPOINT_NAME = "encodec_24khz-d7cc33bc.th"
BANDWIDTH = 6.0  # kbps -> 8 codebooks


def default_weights_path() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / CHECKPOINT_NAME


def load_encodec(weights: str | os.PathLike | None = None):
    """The pretrained 24 kHz EnCodec model from a local file; a clear error when the file is absent."""
    import torch
    from encodec import EncodecModel

    path = Path(weights) if weights else default_weights_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"EnCodec weights not found at {path}. Download {CHECKPOINT_NAME} from "
            f"https://dl.fbaipublicfiles.com/encodec/v0/{CHECKPOINT_NAME} and put it at {default_weights_path()} "
            f"(the torch hub cache; set $TORCH_HOME to move it) or pass --weights PATH.")
    model = EncodecModel.encodec_model_24khz(pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


class EncodecTeacher:
    """``label(wav_24k)`` -> int64 [ceil(n / 320), 8] codes."""

    name = "encodec"
    codebook_size = 1024

    def __init__(self, model=None, weights: str | os.PathLike | None = None, device: str = "cpu",
                 bandwidth: float = BANDWIDTH, chunk_seconds: float = 60.0, context_seconds: float = 2.0):
        model = model if model is not None else load_encodec(weights)
        model.set_target_bandwidth(bandwidth)
        self.model = model.eval().to(device)
        self.device = device
        self.bandwidth = bandwidth
        self.num_codebooks = int(model.quantizer.get_num_quantizers_for_bandwidth(model.frame_rate, bandwidth))
        self.chunk = int(chunk_seconds * SAMPLE_RATE) // HOP * HOP
        self.context = int(context_seconds * SAMPLE_RATE) // HOP * HOP

    def settings(self) -> dict:
        return {"bandwidth": self.bandwidth, "num_codebooks": self.num_codebooks}

    def _encode(self, x):
        import torch

        with torch.no_grad():
            emb = self.model.encoder(x[None, None].to(self.device))
            codes = self.model.quantizer.encode(emb, self.model.frame_rate, self.bandwidth)  # [K, 1, F]
        return codes[:, 0].T.cpu()

    def label(self, wav: np.ndarray) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
        n = x.numel()
        total = math.ceil(n / HOP)
        if n <= self.chunk + 2 * self.context:
            out = self._encode(x)
        else:
            parts = []
            for s in range(0, n, self.chunk):
                a = max(0, s - self.context)
                b = min(n, s + self.chunk + self.context)
                codes = self._encode(x[a:b])
                first = (s - a) // HOP
                parts.append(codes[first:first + self.chunk // HOP])
            out = torch.cat(parts, 0)
        return out[:total].numpy().astype(np.int64)
