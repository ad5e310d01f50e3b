"""MuQ and MuQ-MuLan (Tencent AI Lab, ``muq`` package) as representations.

Install: ``pip install -e '.[muq]'`` (muq 0.1.0 with its dependencies; the extra pins torchvision to the
release that matches the core's torch, which x-clip otherwise pulls at its newest, with a newer torch).

``--model muq:large`` (``OpenMuQ/MuQ-large-msd-iter``): MuQ's self-supervised conformer. 24 kHz in, a
128-band log-mel spectrogram at 100 frames/s (``n_fft`` 2048, hop 240, the last frame dropped as the package
does), normalised with the checkpoint's statistics, two stride-2 conv blocks: 25 frames/s. Layers: the
conformer's hidden states as MuQ returns them (13 x 1024: the input of each of the 12 conformer layers, then the
last layer's output after the encoder's LayerNorm). The waveform is not normalised (MuQ takes it as it is).

``--model muq:mulan`` (``OpenMuQ/MuQ-MuLan-large``): the audio tower of MuQ-MuLan, the music-text joint
embedding: its fine-tuned MuQ backbone, then a projection to 768 and an 8-layer transformer. Layers: the
projection and each transformer layer (9 x 768, 25 frames/s); ``muq:mulan:backbone`` gives the backbone's 13 x
1024 hidden states instead. As MuQ-MuLan does, the tower runs on 10 s clips: longer audio goes through it 10 s at
a time (a tail under 1024 samples joins the clip before it), the frames concatenated. Only the audio tower is
built: the text tower (XLM-RoBERTa) is not needed and not loaded.

Compatibility: muq 0.1.0 reads the conformer's ``hidden_states`` from a transformers 4 encoder output;
transformers 5 returns only the last state, and needs ``_attn_implementation`` on the (EasyDict) config. This
adapter adds the attribute (``eager``) and collects the hidden states with forward pre-hooks on the conformer
layers, which gives what transformers 4 returned (each layer's input, then the normalised output); the package's
own modules do all the computing.

Weights: the Hugging Face cache (``config.json`` and ``model.safetensors`` of the repo; MuQ-MuLan also needs
MuQ-large's ``config.json`` for its backbone's configuration), or ``weights=FOLDER`` holding the repo's files;
with ``HF_HUB_OFFLINE=1`` nothing is downloaded. ``tiny`` is the package's MuQ class with a 2-layer,
32-dimensional conformer, ``tiny-mulan`` the MuLan tower around it (2 transformer layers; random weights only).
``muq:large:random`` and ``muq:mulan:random`` build the released architecture with random weights, which needs
the repos' ``config.json`` in the cache (the backbone's normalisation statistics and conformer settings live
there).
"""
from __future__ import annotations

import json

from benchmark.encoders import EncoderRepresentation, Spec, hub_file, seeded
from benchmark.representations import ModelError

REPOS = {"large": "OpenMuQ/MuQ-large-msd-iter", "mulan": "OpenMuQ/MuQ-MuLan-large"}
MULAN_CLIP_S = 10.0
N_FFT = 2048  # MuQ's mel front end (melspec_2048)


def build(spec: Spec) -> "MuQRepresentation":
    if "backbone" in spec.flags and spec.variant != "mulan":
        raise ModelError(f"{spec.label}: backbone is an option of muq:mulan (the MuQ inside MuQ-MuLan)")
    return MuQRepresentation(spec)


def tiny_config() -> dict:
    """A MuQConfig (as a dict) of the package's architecture at a test size."""
    from transformers import Wav2Vec2ConformerConfig

    w2v = Wav2Vec2ConformerConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64,
                                  conv_depthwise_kernel_size=3, position_embeddings_type="rotary").to_dict()
    w2v = {k: v for k, v in w2v.items() if not isinstance(v, dict)}  # EasyDict cannot hold int-keyed dicts
    return dict(encoder_dim=32, encoder_depth=2, conv_dim=16, codebook_size=16, w2v2_config=w2v,
                stat={"melspec_2048_mean": 0.0, "melspec_2048_std": 20.0})


def tiny_tower() -> dict:
    return dict(dim=32, tf_depth=2, heads=2, dim_head=16)


def _muq(config: dict):
    """The package's MuQ from a config dict, made runnable on transformers 5 (module doc)."""
    from muq import MuQ

    config = dict(config)
    w2v = {k: v for k, v in dict(config.get("w2v2_config") or {}).items() if not isinstance(v, dict)}
    w2v.setdefault("_attn_implementation", "eager")
    config["w2v2_config"] = w2v
    return MuQ(config)


def _tower(muq_model, audio_model: dict, tower: dict):
    """MuQ-MuLan's audio tower (``AudioSpectrogramTransformerPretrained``) around ``muq_model``, without the hub
    download its constructor does for the backbone."""
    from muq.muq_mulan.models.audio import AudioSpectrogramTransformerPretrained

    class Tower(AudioSpectrogramTransformerPretrained):
        def _init_pretrained_model(self, model_name):
            self.model = muq_model

    return Tower(model_name=str(audio_model.get("name") or "muq"), model_dim=int(audio_model.get("model_dim") or
                 muq_model.config.encoder_dim), use_layer_idx=int(audio_model.get("use_layer_idx", -1)),
                 frozen_pretrained=False, **tower)


def _read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def _load_state(spec: Spec, module, path, prefix: str = "") -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as e:
        raise ModelError(f"{spec.label}: cannot read {path}: {e}") from None
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if "quantizer" not in k and "preprocessor" not in k]
    if missing or not state:
        raise ModelError(f"{spec.label}: {path} does not hold this model's weights (missing "
                         f"{', '.join(missing[:3]) or 'everything'}{' ...' if len(missing) > 3 else ''})")


class MuQRepresentation(EncoderRepresentation):
    dist = "muq"

    def __init__(self, spec: Spec):
        super().__init__(spec)
        self.tower = None
        if spec.variant in ("tiny", "tiny-mulan"):
            with seeded(spec):
                muq = _muq(tiny_config())
                if spec.variant == "tiny-mulan":
                    self.tower = _tower(muq, {"name": "muq-tiny"}, tiny_tower())
        elif spec.variant == "large":
            muq = self._released_muq(spec, weights=spec.random is None)
        else:  # mulan: its own config (and weights), the backbone's configuration from MuQ-large's repo
            mcfg = _read_json(hub_file(spec, REPOS["mulan"], "config.json"))
            audio_model = mcfg.get("audio_model", {})
            backbone = Spec(spec.name, "muq", "large")  # the backbone's config: the hub cache, never weights=
            with seeded(spec):
                muq = _muq(_read_json(hub_file(backbone, str(audio_model.get("name") or REPOS["large"]),
                                               "config.json")))
                self.tower = _tower(muq, audio_model, mcfg.get("audio_transformer", {}))
            if spec.random is None:
                _load_state(spec, self.tower, hub_file(spec, REPOS["mulan"], "model.safetensors"), "mulan.audio.")
        self.muq = muq.eval()
        self.model = self.tower.eval() if self.tower is not None else self.muq
        self.backbone_only = self.tower is None or "backbone" in spec.flags
        self.sample_rate = 24000
        mm = self.muq.model
        self.hop = int(mm.hop_length)
        self.frame_rate = self.sample_rate / (self.hop * 4)
        if self.backbone_only:
            self.num_layers, self.dim = len(mm.conformer.layers) + 1, int(self.muq.config.encoder_dim)
        else:
            self.num_layers, self.dim = len(self.tower.transformer.layers) + 1, int(self.tower.dim)
        self.clip = int(MULAN_CLIP_S * self.sample_rate) if self.tower is not None else None

    @staticmethod
    def _released_muq(spec: Spec, weights: bool):
        cfg = _read_json(hub_file(spec, REPOS["large"], "config.json"))
        with seeded(spec):
            muq = _muq(cfg)
        if weights:
            _load_state(spec, muq, hub_file(spec, REPOS["large"], "model.safetensors"))
        return muq

    def settings(self) -> dict:
        return {"backbone": self.backbone_only, "clip_s": MULAN_CLIP_S if self.clip else None,
                "stat": dict(self.muq.config.stat or {})}

    def num_frames(self, num_samples: int) -> int:
        if int(num_samples) <= N_FFT // 2:            # the centred STFT's reflection needs more samples
            return 0
        mel = int(num_samples) // self.hop            # n // hop + 1 frames, the last dropped
        return (mel + 3) // 4                         # two stride-2 convs (kernel 3, padding 1)

    def hidden_states(self, wav):
        """MuQ's hidden states (module doc): each conformer layer's input, then the normalised output."""
        mm = self.muq.model
        x = mm.normalize(mm.preprocessing(wav, features=["melspec_2048"]))["melspec_2048"]
        x = mm.conv(x)
        got: list = []
        hooks = [layer.register_forward_pre_hook(lambda mod, args, kw: got.append(args[0] if args else
                                                                                 kw["hidden_states"]),
                                                 with_kwargs=True) for layer in mm.conformer.layers]
        try:
            out = mm.conformer(x)
        finally:
            for h in hooks:
                h.remove()
        return [*got, out["last_hidden_state"]]

    def forward(self, wav):
        import torch

        if self.tower is None:
            return self.hidden_states(wav)
        n = wav.shape[1]
        bounds = list(range(0, n, self.clip)) + [n]
        if len(bounds) > 2 and n - bounds[-2] <= N_FFT // 2:  # a tail too short for the STFT joins the clip before
            del bounds[-2]
        pieces = []
        for start, end in zip(bounds[:-1], bounds[1:]):
            hs = self.hidden_states(wav[:, start:end])
            if self.backbone_only:
                pieces.append(hs)
                continue
            t = self.tower
            h = t.proj(hs[t.use_layer_idx])
            last, inner = t.transformer(h, return_all_layers=True)
            pieces.append([h, *(list(inner) if inner is not None else []), last])
        return [torch.cat([p[i] for p in pieces], dim=1) for i in range(self.num_layers)]
