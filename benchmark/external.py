"""Representations people already have: HEAR 2021 modules and Hugging Face audio encoders.

``--model hear:MODULE[:MODEL_FILE]``
    Any importable module following the HEAR 2021 API (https://hearbenchmark.com/hear-api.html)::

        model = MODULE.load_model(model_file_path="")          # a torch.nn.Module with the attributes
        model.sample_rate, model.timestamp_embedding_size, model.scene_embedding_size
        emb, ts = MODULE.get_timestamp_embeddings(audio [n, samples], model)   # [n, T, D], [n, T] in ms
        MODULE.get_scene_embeddings(audio, model)                               # [n, D]

    becomes a one-layer representation of its timestamp embeddings, at the module's sample rate (the
    benchmark resamples audio to it, as for every representation) and the frame rate of its timestamps
    (measured once at load time on a 4 s probe clip; ``frame_offset_s`` is the first timestamp). The HEAR API
    takes sounds of one length per call, so clips are grouped by exact length and never padded: a clip's
    embedding is the one the module gives it alone. ``MODEL_FILE`` is passed to ``load_model``.

``--model hf:REPO_OR_PATH[@REVISION]``
    A transformers audio encoder (``Wav2Vec2Model``, ``HubertModel``, ``WavLMModel``, ``Data2VecAudioModel``
    and their relatives, through ``AutoConfig`` / ``AutoModel``); needs ``pip install transformers``. Every hidden
    state is a layer (``num_hidden_layers + 1``: the feature projection output, then each transformer layer, as
    the model's ``output_hidden_states`` gives them). Sample rate and input normalisation come from the
    model's feature extractor config (``preprocessor_config.json``: ``sampling_rate``, ``do_normalize``), or
    16 kHz with normalisation when there is none (the ``Wav2Vec2FeatureExtractor`` defaults); normalisation is
    zero mean, unit variance over each clip's valid samples. Frame rate = sample rate / product of the conv
    strides; frame lengths come from the model's ``_get_feat_extract_output_lengths``. Padding never changes a
    clip's features: models whose outputs are padding-invariant under an attention mask (no GroupNorm in the
    conv front end, one positional conv: wav2vec2 "layer", HuBERT "layer", WavLM, UniSpeech) run padded
    batches with the mask; the others (GroupNorm front ends such as wav2vec2-base and HuBERT base, the stacked
    positional convs of data2vec-audio) run clips grouped by exact length without padding. Hub ids follow the
    usual Hugging Face cache; with ``HF_HUB_OFFLINE=1`` only the local cache is used.

Both hash what determines their outputs into ``identity()`` (weights, configs, versions), so feature caches
and result paths change when the weights do.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
from typing import Any

from benchmark.representations import ModelError

PROBE_SECONDS = 4.0       # length of the clip used to measure a HEAR module's frame rate
HEAR_MAX_BATCH = 64       # clips of one length per get_timestamp_embeddings call
HF_DEFAULT_SAMPLE_RATE = 16000
# model types whose hidden states are padding-invariant with an attention mask (checked by the tests for
# wav2vec2, hubert and wavlm); every other type runs clips grouped by exact length
HF_MASK_SAFE = {"wav2vec2", "hubert", "wavlm", "unispeech", "unispeech-sat"}


def _hash_state(h, module) -> None:
    """Feed a torch module's parameters and buffers (names and bytes) into hash ``h``."""
    import torch

    if not isinstance(module, torch.nn.Module):
        return
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().contiguous()
            if v.dtype == torch.bfloat16:
                v = v.float()
            h.update(str(v.dtype).encode())
            h.update(v.numpy().tobytes())


def _pad_stack(frames: list, dim: int, device=None):
    """list of [T_b, D] tensors -> ([B, max T, D] zero padded, LongTensor[B] lengths)."""
    import torch

    n = torch.tensor([int(f.shape[0]) for f in frames], dtype=torch.long)
    out = torch.zeros(len(frames), max(int(n.max()) if len(n) else 0, 0), dim, device=device)
    for b, f in enumerate(frames):
        if f.shape[0]:
            out[b, : f.shape[0]] = f.to(out.device, out.dtype)
    return out, n


def _groups_by_length(lengths: list[int], max_batch: int) -> list[list[int]]:
    by: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by.setdefault(n, []).append(i)
    return [idx[s:s + max_batch] for n in sorted(by, reverse=True) for idx in [by[n]]
            for s in range(0, len(idx), max_batch)]


# ================================================================================================ HEAR
class HearRepresentation:
    """A HEAR 2021 module's timestamp embeddings as a one-layer representation (see module doc)."""

    pooling = "mean"
    config_overrides: dict[str, Any] = {}
    num_layers = 1

    def __init__(self, module_name: str, model_file: str = "", name: str | None = None):
        self.module_name = module_name
        self.model_file = model_file or ""
        self.name = name or f"hear:{module_name}" + (f":{model_file}" if model_file else "")
        label = f"--model {self.name}"
        try:
            self.module = importlib.import_module(module_name)
        except ImportError as e:
            raise ModelError(f"{label}: cannot import module {module_name!r} ({e}); install the HEAR package "
                             "that provides it or put it on PYTHONPATH") from None
        missing = [f for f in ("load_model", "get_timestamp_embeddings", "get_scene_embeddings")
                   if not callable(getattr(self.module, f, None))]
        if missing:
            raise ModelError(f"{label}: module {module_name!r} does not follow the HEAR API: it lacks "
                             f"{', '.join(missing)} (needs load_model, get_timestamp_embeddings, "
                             "get_scene_embeddings)")
        if self.model_file and not os.path.exists(self.model_file):
            raise ModelError(f"{label}: model file {self.model_file!r} does not exist")
        try:  # as hear-eval-kit calls it: the weights file positionally when there is one
            self.model = self.module.load_model(self.model_file) if self.model_file else self.module.load_model()
        except TypeError as e:
            if self.model_file or "required positional argument" not in str(e):
                raise
            raise ModelError(f"{label}: {module_name}.load_model needs a weights file ({e}); use "
                             f"--model hear:{module_name}:/path/to/weights") from None
        attrs = [a for a in ("sample_rate", "timestamp_embedding_size", "scene_embedding_size")
                 if not hasattr(self.model, a)]
        if attrs:
            raise ModelError(f"{label}: the model from {module_name}.load_model() lacks {', '.join(attrs)} "
                             "(HEAR models carry sample_rate, timestamp_embedding_size, scene_embedding_size)")
        if hasattr(self.model, "eval"):
            self.model.eval()
        self.sample_rate = int(self.model.sample_rate)
        self.dim = int(self.model.timestamp_embedding_size)
        if self.sample_rate < 1 or self.dim < 1:
            raise ModelError(f"{label}: sample_rate ({self.sample_rate}) and timestamp_embedding_size "
                             f"({self.dim}) must be positive")
        self.device = self._model_device()
        self._identity: str | None = None
        self.hop_ms, self.frame_offset_s = self._measure_frames()
        self.frame_rate = 1000.0 / self.hop_ms

    def _model_device(self, default="cpu"):
        for tensors in ("parameters", "buffers"):
            try:
                return next(getattr(self.model, tensors)()).device
            except (AttributeError, StopIteration, TypeError):
                continue
        return default

    def _embed(self, audio):
        """One get_timestamp_embeddings call on sounds of one length -> (emb [n, T, D], ts [n, T] ms) tensors."""
        import torch

        with torch.no_grad():
            emb, ts = self.module.get_timestamp_embeddings(audio, self.model)
        emb = torch.as_tensor(emb).float()
        ts = torch.as_tensor(ts).double()
        n = audio.shape[0]
        if emb.ndim != 3 or emb.shape[0] != n or emb.shape[2] != self.dim:
            raise ModelError(f"{self.name}: get_timestamp_embeddings returned embeddings of shape "
                             f"{tuple(emb.shape)}; expected [{n}, T, {self.dim}] (timestamp_embedding_size)")
        if ts.ndim != 2 or tuple(ts.shape) != tuple(emb.shape[:2]):
            raise ModelError(f"{self.name}: get_timestamp_embeddings returned timestamps of shape "
                             f"{tuple(ts.shape)}; expected [{n}, {emb.shape[1]}] (milliseconds)")
        return emb, ts

    def _measure_frames(self) -> tuple[float, float]:
        import torch

        g = torch.Generator().manual_seed(0)
        for seconds in (PROBE_SECONDS, 4 * PROBE_SECONDS):
            audio = 0.1 * torch.randn(1, int(seconds * self.sample_rate), generator=g)
            _, ts = self._embed(audio.to(self.device))
            t = ts[0].cpu()
            if len(t) >= 2:
                hop = float(torch.diff(t).median())
                if hop <= 0:
                    raise ModelError(f"{self.name}: timestamps are not increasing ({t[:5].tolist()} ms ...)")
                self._check_regular(t, hop)
                return hop, float(t[0]) / 1000.0
        raise ModelError(f"{self.name}: fewer than two timestamps for {4 * PROBE_SECONDS:g} s of audio; "
                         "cannot derive a frame rate")

    def _check_regular(self, t, hop: float) -> None:
        import torch

        if len(t) >= 2:
            d = torch.diff(t)
            if float((d - hop).abs().max()) > max(1e-3 * hop, 1e-3):
                raise ModelError(f"{self.name}: timestamps are not evenly spaced (hops from {float(d.min()):g} to "
                                 f"{float(d.max()):g} ms, expected {hop:g} ms); the benchmark needs a fixed "
                                 "frame rate")

    def identity(self) -> str:
        if self._identity is None:
            h = hashlib.sha256(f"hear:{self.module_name}".encode())
            root = self.module_name.split(".")[0]
            version = getattr(self.module, "__version__", None) or getattr(importlib.import_module(root),
                                                                            "__version__", None)
            if version is None:
                try:
                    from importlib.metadata import version as dist_version

                    version = dist_version(root)
                except Exception:
                    version = None
            h.update(json.dumps([str(version), self.sample_rate, self.dim, self.hop_ms,
                                 self.frame_offset_s]).encode())
            if os.path.isfile(self.model_file):  # the weights file's content, wherever it lies
                with open(self.model_file, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
            elif self.model_file:  # a folder or something the module resolves itself
                h.update(os.path.abspath(self.model_file).encode())
            _hash_state(h, self.model)
            self._identity = h.hexdigest()[:16]
        return self._identity

    def to(self, device):
        if hasattr(self.model, "to"):
            self.model.to(device)
        self.device = self._model_device(default=device)
        return self

    def __call__(self, wav, lengths):
        import torch

        if wav.ndim != 2:
            raise ValueError(f"{self.name}: expected wav [B, T], got {tuple(wav.shape)}")
        lengths = [int(n) for n in torch.as_tensor(lengths, dtype=torch.long)]
        frames: list = [None] * len(lengths)
        for idx in _groups_by_length(lengths, HEAR_MAX_BATCH):
            n = lengths[idx[0]]
            if n == 0:
                for i in idx:
                    frames[i] = torch.zeros(0, self.dim)
                continue
            audio = wav[idx, :n].float().to(self.device)
            emb, ts = self._embed(audio)
            self._check_regular(ts[0].cpu(), self.hop_ms)
            for b, i in enumerate(idx):
                frames[i] = emb[b]
        out, n = _pad_stack(frames, self.dim)
        return [out], n


# ================================================================================================ Hugging Face
def _require_transformers(label: str):
    try:
        import transformers
    except ImportError:
        raise ModelError(f"{label}: Hugging Face models need the transformers package: pip install transformers "
                         "(or pip install -e '.[dev]')") from None
    return transformers


def _local_model_type(source: str) -> str:
    try:
        with open(os.path.join(source, "config.json")) as f:
            return str(json.load(f).get("model_type", "")).lower()
    except (OSError, ValueError, AttributeError):
        return ""


class HFRepresentation:
    """A transformers audio encoder (wav2vec2, HuBERT, WavLM, data2vec-audio ...), all hidden states."""

    pooling = "mean"
    config_overrides: dict[str, Any] = {}

    def __init__(self, source: str, revision: str | None = None, name: str | None = None):
        self.source = source
        self.revision = revision
        self.name = name or f"hf:{source}" + (f"@{revision}" if revision else "")
        label = f"--model {self.name}"
        transformers = _require_transformers(label)
        import torch

        kw = {"revision": revision} if revision else {}
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        where = ("the local folder" if os.path.isdir(source) else
                 "the local Hugging Face cache (HF_HUB_OFFLINE is set)" if offline else "the hub or its cache")
        try:
            config = transformers.AutoConfig.from_pretrained(source, **kw)
        except (OSError, ValueError, KeyError) as e:
            if "mert" in _local_model_type(source) or "mert_model" in str(e):
                raise ModelError(f"{label}: {source} is a MERT checkpoint; use --model {source} (mert.load_model) "
                                 "instead of hf:") from None
            hint = "" if os.path.isdir(source) or "/" in source else " (a folder or a hub id owner/name)"
            raise ModelError(f"{label}: cannot load a config from {where}{hint}: {e}") from None
        mtype = getattr(config, "model_type", "?")
        if "mert" in str(mtype).lower():
            raise ModelError(f"{label}: {source} is a MERT checkpoint (model_type {mtype!r}); use "
                             f"--model {source} (mert.load_model) instead of hf:")
        try:
            # float32 weights whatever the checkpoint's dtype (transformers 5 defaults to dtype="auto"); a GPU run
            # may autocast on top (features.precision). Attention through torch's scaled_dot_product_attention
            # (flash / memory-efficient kernels on a GPU) where transformers has it for the class; the classes
            # without it (WavLM, whose relative position bias needs its own attention) keep their default
            model = self._load_sdpa(transformers, source, dict(kw, dtype=torch.float32))
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"{label}: cannot load the weights from {where}: {e}") from None
        self.attn_implementation = str(getattr(model.config, "_attn_implementation", None) or "eager")
        if not (hasattr(model, "_get_feat_extract_output_lengths") and hasattr(model, "feature_extractor")
                and hasattr(config, "conv_stride")):
            raise ModelError(f"{label}: {type(model).__name__} (model_type {mtype!r}) is not a waveform encoder "
                             "with a conv front end; hf: takes wav2vec2, HuBERT, WavLM, data2vec-audio and "
                             "relatives")
        self.model = model.eval()
        self.config = config
        self.model_type = str(mtype)
        self.sample_rate, self.normalize, self.fe_config = self._feature_extractor(transformers, source, kw)
        stride = 1
        for s in config.conv_stride:
            stride *= int(s)
        if getattr(config, "add_adapter", False):  # wav2vec2's optional adapter strides the frames again
            stride *= int(config.adapter_stride) ** int(config.num_adapter_layers)
        self.total_stride = stride
        self.frame_rate = self.sample_rate / stride
        self.receptive_field = self._receptive_field(config)
        self.num_layers = int(config.num_hidden_layers) + 1
        self.dim = int(config.hidden_size)
        has_group_norm = any(isinstance(m, torch.nn.GroupNorm) for m in model.feature_extractor.modules())
        self.batching = "masked" if (self.model_type in HF_MASK_SAFE and not has_group_norm) else "per-length"
        self.commit = getattr(config, "_commit_hash", None)
        self.device = "cpu"
        self._identity: str | None = None

    @staticmethod
    def _load_sdpa(transformers, source, kw):
        """AutoModel.from_pretrained with attn_implementation="sdpa", or without it where the class has no
        SDPA attention (transformers raises ValueError before loading any weights then)."""
        try:
            return transformers.AutoModel.from_pretrained(source, attn_implementation="sdpa", **kw)
        except ValueError as e:
            if "scaled_dot_product_attention" not in str(e) and "sdpa" not in str(e).lower():
                raise
        return transformers.AutoModel.from_pretrained(source, **kw)

    @staticmethod
    def _feature_extractor(transformers, source, kw) -> tuple[int, bool, dict | None]:
        try:
            fe = transformers.AutoFeatureExtractor.from_pretrained(source, **kw)
        except (OSError, ValueError, KeyError):
            return HF_DEFAULT_SAMPLE_RATE, True, None
        sr = int(getattr(fe, "sampling_rate", None) or HF_DEFAULT_SAMPLE_RATE)
        return sr, bool(getattr(fe, "do_normalize", True)), {"class": type(fe).__name__, "sampling_rate": sr,
                                                              "do_normalize": bool(getattr(fe, "do_normalize", True))}

    @staticmethod
    def _receptive_field(config) -> int:
        rf, jump = 1, 1
        for k, s in zip(config.conv_kernel, config.conv_stride):
            rf += (int(k) - 1) * jump
            jump *= int(s)
        return rf

    def identity(self) -> str:
        if self._identity is None:
            h = hashlib.sha256(f"hf:{type(self.model).__name__}".encode())
            cfg = self.config.to_dict()
            for k in ("_name_or_path", "_commit_hash", "transformers_version", "_attn_implementation_autoset"):
                cfg.pop(k, None)
            h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
            h.update(json.dumps([self.sample_rate, self.normalize]).encode())
            _hash_state(h, self.model)
            self._identity = h.hexdigest()[:16]
        return self._identity

    def to(self, device):
        self.device = str(device)
        self.model.to(device)
        return self

    def num_frames(self, num_samples: int) -> int:
        import torch

        if num_samples < self.receptive_field:
            return 0
        return int(self.model._get_feat_extract_output_lengths(torch.tensor([int(num_samples)]))[0])

    def _normalized(self, wav, lengths):
        import torch

        mask = torch.arange(wav.shape[1], device=wav.device)[None] < lengths[:, None]
        wav = wav * mask
        if self.normalize:  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm over the valid samples
            from mert.audio import standardise

            wav = standardise(wav, lengths)
        return wav, mask

    def _forward(self, wav, mask=None, grad: bool = False):
        import contextlib

        import torch

        with (contextlib.nullcontext() if grad else torch.inference_mode()), warnings.catch_warnings():
            # WavLM passes a float attention bias with a bool padding mask to torch's MHA (harmless)
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            out = self.model(wav, attention_mask=None if mask is None else mask.long(), output_hidden_states=True)
        return out.hidden_states

    #: the encoder's attention projections: the modules ``--mode lora`` adapts by default (benchmark.finetune,
    #: ``finetune.lora.targets=auto``)
    attention_projections = ("q_proj", "k_proj", "v_proj", "out_proj")

    def forward(self, wav, lengths):
        """What ``__call__`` returns, with autograd: the encoder trained with a task head (benchmark.finetune)."""
        return self._layers(wav, lengths, grad=True)

    def __call__(self, wav, lengths):
        return self._layers(wav, lengths, grad=False)

    def _layers(self, wav, lengths, grad: bool):
        import torch

        if wav.ndim != 2:
            raise ValueError(f"{self.name}: expected wav [B, T], got {tuple(wav.shape)}")
        wav = wav.to(self.device).float()
        lengths = torch.as_tensor(lengths, dtype=torch.long).to(wav.device)
        nframes = torch.tensor([self.num_frames(int(n)) for n in lengths.cpu()], dtype=torch.long)
        B, T = len(lengths), int(nframes.max()) if len(nframes) else 0
        layers = [torch.zeros(B, T, self.dim, device=wav.device) for _ in range(self.num_layers)]
        wav, mask = self._normalized(wav, lengths)
        ok = [b for b in range(B) if int(nframes[b]) > 0]
        if self.batching == "masked" and ok:
            longest = int(lengths[ok].max())
            hs = self._forward(wav[ok, :longest], mask[ok, :longest], grad)
            for layer, h in zip(layers, hs):
                layer[ok, : h.shape[1]] = h[:, :T].float()
        else:
            for idx in _groups_by_length([int(lengths[b]) for b in ok], 1 << 30):
                rows = [ok[i] for i in idx]
                hs = self._forward(wav[rows, : int(lengths[rows[0]])], grad=grad)
                for layer, h in zip(layers, hs):
                    layer[rows, : h.shape[1]] = h.float()
        for layer in layers:  # padded frames are zeros, whatever the model put there
            layer.mul_((torch.arange(T, device=layer.device)[None] < nframes.to(layer.device)[:, None])[..., None])
        return layers, nframes
