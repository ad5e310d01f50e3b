"""LAION-CLAP's audio branch (``laion-clap`` package, HTSAT) as a representation.

Install: ``pip install -e '.[clap]'`` (the dependencies the audio branch imports), then ``pip install --no-deps
laion-clap==1.1.7``: laion-clap declares ``numpy<2``, which would take numpy back a major version (it runs on
numpy 2).

``--model clap:music`` (``music_audioset_epoch_15_esc_90.14.pt``, HTSAT-base, LAION's checkpoint for music),
``clap:music-speech`` (``music_speech_audioset_epoch_15_esc_89.98.pt``, HTSAT-base) and ``clap:general``
(``630k-audioset-best.pt``, HTSAT-tiny): the HTSAT audio encoder of the CLAP model, without the text branch.

HTSAT is a Swin transformer over a 10 s, 64-band log-mel image (48 kHz, hop 480; 1024 frames folded into a
256 x 256 image, 4 time chunks stacked along frequency). Its stages halve the token grid and double the width,
so only the last resolution (an 8 x 8 grid, 1024 dimensions for base, 768 for tiny) has layers of one width. The
layers are those: the third stage's output (after its patch merging), each block of the last stage, and the
final LayerNorm (what CLAP pools and projects): 4 layers for the released models. Each is unfolded as HTSAT does
for its own ``fine_grained_embedding``: the grid back to 2 frequency bins x 32 time steps per 10 s, averaged over
frequency: 32 frames per 10 s, 3.2 frames/s (a frame = 15000 samples). The mean of the last layer's frames over
a 10 s window is the package's clip ``embedding`` (before CLAP's projection).

Windows: as CLAP embeds audio (``get_audio_features`` without fusion: ``repeatpad``), a clip shorter than 10 s
is repeated to fill 10 s and zero padded; longer audio goes through in consecutive 10 s windows (the last one
repeat-padded the same way), frames concatenated; a clip of ``n`` samples keeps its ``ceil(n / 15000)`` frames.
The waveform is not normalised (CLAP takes it as it is).

Weights: the checkpoint file from the Hugging Face repo ``lukewys/laion_clap`` (cache first; with
``HF_HUB_OFFLINE=1`` only the cache), the folder laion-clap downloads to (the package's own folder), or
``weights=PATH``. Only ``audio_branch.*`` is read. ``tiny`` is the package's HTSAT class at a test size (8 to 32
dimensions, one block per stage; random weights only).

Import: ``import laion_clap`` loads three tokenizers from the hub at import time (its training data module);
this adapter imports ``laion_clap.clap_module.htsat`` under a bare parent package so that nothing touches the
network.
"""
from __future__ import annotations

from benchmark.encoders import EncoderRepresentation, Spec, hub_file, offline, seeded
from benchmark.representations import ModelError

REPO = "lukewys/laion_clap"
MODEL = {"music": "base", "music-speech": "base", "general": "tiny"}
CLIP = 480000                 # 10 s at 48 kHz, CLAP's clip_samples
TIME_STEPS = 32               # frames per 10 s window at the last resolution
AUDIO_CFG = dict(audio_length=1024, clip_samples=CLIP, mel_bins=64, sample_rate=48000, window_size=1024,
                 hop_size=480, fmin=50, fmax=14000, class_num=527, model_type="HTSAT")
TINY = dict(embed_dim=4, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 2])


def build(spec: Spec) -> "ClapRepresentation":
    return ClapRepresentation(spec)


def htsat_module():
    """``laion_clap.clap_module.htsat`` without running ``laion_clap/__init__`` (module doc)."""
    import importlib
    import importlib.util
    import sys
    import types

    name = "laion_clap.clap_module.htsat"
    if name in sys.modules or "laion_clap" in sys.modules:
        return importlib.import_module(name)
    found = importlib.util.find_spec("laion_clap")
    if found is None or not found.submodule_search_locations:
        raise ImportError("no module named 'laion_clap'")
    pkg = types.ModuleType("laion_clap")
    pkg.__path__ = list(found.submodule_search_locations)
    pkg.__spec__ = found
    pkg.__file__ = found.origin
    sys.modules["laion_clap"] = pkg
    try:
        return importlib.import_module(name)
    finally:
        if sys.modules.get("laion_clap") is pkg:
            del sys.modules["laion_clap"]


def _checkpoint(spec: Spec):
    """The checkpoint file: weights=PATH, the hub cache (or hub), else the package's own download folder."""
    from pathlib import Path

    name = spec.info.weights
    if spec.weights:
        return hub_file(spec, REPO, name)
    try:
        return hub_file(spec, REPO, name)
    except ModelError as e:
        import importlib.util

        found = importlib.util.find_spec("laion_clap")
        for folder in (found.submodule_search_locations or []) if found else []:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
        hint = "" if offline() else f" or https://huggingface.co/{REPO}/resolve/main/{name}"
        raise ModelError(f"{e}{hint}") from None


def _audio_branch_state(spec: Spec, path):
    import torch

    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            # laion-clap's own loader (factory.load_state_dict) unpickles the whole file; its released
            # checkpoints hold more than tensors
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelError(f"{spec.label}: cannot read {path}: {e}") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else {}
    out = {}
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.startswith("audio_branch."):
            out[k[len("audio_branch."):]] = v
    if not out:
        raise ModelError(f"{spec.label}: {path} has no audio_branch.* weights (not a LAION-CLAP checkpoint)")
    return out


class ClapRepresentation(EncoderRepresentation):
    dist = "laion-clap"

    def __init__(self, spec: Spec):
        super().__init__(spec)
        from types import SimpleNamespace

        htsat = htsat_module()
        cfg = SimpleNamespace(**AUDIO_CFG, model_name=MODEL.get(spec.variant, "tiny"))
        if spec.variant == "tiny":
            with seeded(spec):
                model = htsat.HTSAT_Swin_Transformer(spec_size=256, patch_size=4, patch_stride=(4, 4),
                                                     num_classes=527, window_size=8, config=cfg, **TINY)
        else:
            with seeded(spec):
                model = htsat.create_htsat_model(cfg, enable_fusion=False, fusion_type="None")
            if spec.random is None:
                path = _checkpoint(spec)
                missing, unexpected = model.load_state_dict(_audio_branch_state(spec, path), strict=False)
                if missing:
                    raise ModelError(f"{spec.label}: {path} does not fit HTSAT-{cfg.model_name} (missing "
                                     f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); the "
                                     f"{spec.variant} variant needs {spec.info.weights}")
        self.model = model.eval()
        self.sample_rate = int(AUDIO_CFG["sample_rate"])
        self.frame = CLIP // TIME_STEPS
        self.frame_rate = self.sample_rate / self.frame
        self.dim = int(model.num_features)
        last = model.layers[-1]
        self.taps = [model.layers[-2], *last.blocks, model.norm]
        self.num_layers = len(self.taps)

    def settings(self) -> dict:
        return {"clip": CLIP, "filling": "repeatpad", "windows": "consecutive"}

    def num_frames(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.frame)

    def _unfold(self, x):
        """[B, 64, C] tokens of the 8 x 8 grid -> [B, 32, C] frames, as HTSAT.forward_features unfolds them."""
        m = self.model
        B, N, C = x.shape
        side = int(round(N ** 0.5))
        x = x.permute(0, 2, 1).reshape(B, C, side, side)
        c_freq_bin = side // m.freq_ratio
        x = x.reshape(B, C, side // c_freq_bin, c_freq_bin, side)
        x = x.permute(0, 1, 3, 2, 4).reshape(B, C, c_freq_bin, -1)
        return x.mean(dim=2).transpose(1, 2)

    def windows(self, wav):
        """[b, n] -> [b * w, CLIP]: consecutive 10 s windows, each repeat-padded as CLAP fills a short clip."""
        import torch

        b, n = wav.shape
        out = []
        for start in range(0, n, CLIP):
            piece = wav[:, start:start + CLIP]
            k = piece.shape[1]
            if k < CLIP:
                piece = piece.repeat(1, CLIP // k)
                piece = torch.nn.functional.pad(piece, (0, CLIP - piece.shape[1]))
            out.append(piece)
        return torch.stack(out, dim=1).reshape(-1, CLIP), len(out)

    def forward(self, wav):
        import torch

        b = wav.shape[0]
        x, w = self.windows(wav)
        got: list = [None] * len(self.taps)

        def keep(i):
            def hook(mod, inp, out):
                got[i] = out[0] if isinstance(out, tuple) else out
            return hook

        hooks = [t.register_forward_hook(keep(i)) for i, t in enumerate(self.taps)]
        try:
            self.model({"waveform": x}, device=x.device)
        finally:
            for h in hooks:
                h.remove()
        return [self._unfold(g).reshape(b, w * TIME_STEPS, -1) for g in got]

    def embedding(self, wav):
        """The package's clip embedding of each 10 s window (``[b * w, C]``; tests)."""
        import torch

        x, _ = self.windows(wav)
        with torch.inference_mode():
            return self.model({"waveform": x}, device=x.device)
