"""Loading and saving MERT encoders, without transformers and without trust_remote_code.

``load_model(source)`` accepts:

- a Hugging Face-layout folder: ``config.json`` + ``model.safetensors`` / ``pytorch_model.bin`` (also sharded
  ``*.index.json``), as released on the hub (``m-a-p/MERT-v1-95M``) or written by :func:`save_model`;
- a hub id such as ``"m-a-p/MERT-v1-95M"`` (fetched with huggingface_hub; ``HF_HUB_OFFLINE=1`` and the local
  cache are honoured); the short names ``mert-v1-95m``, ``mert-v1-330m``, ``mert-v0`` mean those hub ids;
- a fairseq checkpoint (``MERT-v1-95M_fairseq.pt``: a dict with ``model`` and ``cfg``/``args``);
- our own checkpoint file (:func:`save_checkpoint`: a dict with ``config`` and ``model``);
- ``"mert-mini"``: the small checkpoint shipped inside the package (``mert/weights/mert-mini/``).

Both weight-norm key styles (``weight_g``/``weight_v`` and ``parametrizations.weight.original0/1``) and a
plain positional-conv ``weight`` are accepted. Keys outside the encoder (pretraining heads such as
``final_proj``, ``label_embs_concat``, CTC heads) are ignored with a log line; inside the encoder, any
missing, unexpected or mis-shaped key is an error that names the keys.

``save_model(model, folder)`` writes the Hugging Face layout (config.json with HubertConfig keys,
``model_type: hubert``, and model.safetensors with HF names), which ``transformers.HubertModel.from_pretrained``
loads as is.
"""
from __future__ import annotations

import ast
import json
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

HUB_ALIASES = {
    "mert-v1-95m": "m-a-p/MERT-v1-95M",
    "mert-v1-330m": "m-a-p/MERT-v1-330M",
    "mert-v0": "m-a-p/MERT-v0",
    "mert-v0-public": "m-a-p/MERT-v0-public",
}
PACKAGED = {"mert-mini": Path(__file__).resolve().parent / "weights" / "mert-mini"}
FORMAT_TAG = "mert-bench-checkpoint"
_ENCODER_PREFIXES = ("feature_extractor.", "feature_projection.", "encoder.", "masked_spec_embed")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: names the source and the offending keys."""


# ================================================================================================ key mapping
def _fix_pos_conv(sd: dict, source: str) -> dict:
    """Bring the positional conv to the parametrizations.weight.original0/1 style."""
    import torch

    p = "encoder.pos_conv_embed.conv."
    g_old, v_old = p + "weight_g", p + "weight_v"
    g_new, v_new = p + "parametrizations.weight.original0", p + "parametrizations.weight.original1"
    if g_old in sd or v_old in sd:
        if g_old not in sd or v_old not in sd:
            raise CheckpointError(f"{source}: positional conv has only one of {g_old} / {v_old}")
        sd[g_new] = sd.pop(g_old)
        sd[v_new] = sd.pop(v_old)
    elif p + "weight" in sd and g_new not in sd:  # weight norm removed: recover (g, v) with v = w
        w = sd.pop(p + "weight")
        sd[v_new] = w
        sd[g_new] = torch.linalg.vector_norm(w.float(), dim=(0, 1), keepdim=True).to(w.dtype)
    return sd


def hf_to_ours(sd: dict, source: str = "checkpoint") -> dict:
    """HF HubertModel names -> ours (q/k/v fused into qkv_proj). Input keys must already be encoder keys."""
    import torch

    sd = _fix_pos_conv(dict(sd), source)
    out = {}
    qkv: dict[str, dict[str, object]] = {}
    for k, v in sd.items():
        m = re.match(r"(encoder\.layers\.\d+\.attention\.)(q|k|v)_proj\.(weight|bias)$", k)
        if m:
            qkv.setdefault(m.group(1) + "qkv_proj." + m.group(3), {})[m.group(2)] = v
        else:
            out[k] = v
    for k, parts in qkv.items():
        missing = [x for x in "qkv" if x not in parts]
        if missing:
            base = k.replace("qkv_proj", "{}_proj")
            raise CheckpointError(f"{source}: missing keys {[base.format(x) for x in missing]}")
        shapes = {tuple(p.shape) for p in parts.values()}
        if len(shapes) != 1:
            raise CheckpointError(f"{source}: q/k/v projections of {k} have different shapes {sorted(shapes)}")
        out[k] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    return out


def ours_to_hf(sd: dict) -> dict:
    """Our names -> HF HubertModel names (qkv_proj split back into q_proj, k_proj, v_proj)."""
    out = {}
    for k, v in sd.items():
        if ".attention.qkv_proj." in k:
            q, kk, vv = v.chunk(3, dim=0)
            for name, part in zip("qkv", (q, kk, vv)):
                out[k.replace("qkv_proj", f"{name}_proj")] = part.contiguous()
        else:
            out[k] = v
    return out


_FAIRSEQ_RULES = [
    (r"^post_extract_proj\.", "feature_projection.projection."),
    (r"^layer_norm\.", "feature_projection.layer_norm."),
    (r"^mask_emb$", "masked_spec_embed"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),
    (r"^encoder\.layer_norm\.", "encoder.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
]
_FAIRSEQ_ENCODER_PREFIXES = ("post_extract_proj.", "layer_norm.", "mask_emb", "feature_extractor.", "encoder.")


def fairseq_to_hf(sd: dict, source: str = "checkpoint") -> tuple[dict, list[str]]:
    """fairseq wav2vec2/HuBERT/MERT names -> HF names. Returns (mapped, ignored pretraining-only keys).
    Keys under the encoder's prefixes that no rule maps are an error."""
    out, ignored, unmapped = {}, [], []
    for k, v in sd.items():
        if not k.startswith(_FAIRSEQ_ENCODER_PREFIXES):
            ignored.append(k)  # label_embs_concat, final_proj, cqt heads, quantizers ...
            continue
        for pat, rep in _FAIRSEQ_RULES:
            new, n = re.subn(pat, rep, k)
            if n:
                out[new] = v
                break
        else:
            unmapped.append(k)
    if unmapped:
        raise CheckpointError(f"{source}: fairseq keys with no known mapping: {unmapped[:20]}"
                              + (f" (+{len(unmapped) - 20} more)" if len(unmapped) > 20 else ""))
    return out, ignored


# ================================================================================================ configs
def _parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq's conv_feature_layers string, e.g. "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    parsed without eval."""
    layers = []
    for term in spec.split("+"):
        term = term.strip()
        m = re.fullmatch(r"(\[.*\])\s*(?:\*\s*(\d+))?", term, flags=re.S)
        if not m:
            raise CheckpointError(f"cannot parse conv_feature_layers term {term!r} in {spec!r}")
        try:
            part = [tuple(int(v) for v in x) for x in ast.literal_eval(m.group(1))]
        except (ValueError, SyntaxError, TypeError):
            raise CheckpointError(f"cannot parse conv_feature_layers term {term!r} in {spec!r}") from None
        layers.extend(part * int(m.group(2) or 1))
    return layers


def config_from_fairseq(cfg: dict, source: str = "checkpoint"):
    """MertConfig from a fairseq checkpoint's cfg (``cfg['model']``, ``cfg['task']``) or legacy ``args``."""
    from mert.config import MertConfig

    model = dict(cfg.get("model") or {})
    task = dict(cfg.get("task") or {})
    if not model:
        raise CheckpointError(f"{source}: fairseq checkpoint without a model config")
    conv = _parse_conv_layers(model.get("conv_feature_layers", "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"))
    mode = model.get("extractor_mode", "default")
    sr = task.get("sample_rate", model.get("sample_rate"))
    if sr is None:  # fairseq's own default (HuBERT's); a MERT-v1 task config always says 24000
        log.warning("%s: the fairseq task config has no sample_rate; assuming 16000 Hz (fairseq's default). A "
                    "MERT-v1 checkpoint is 24 kHz: its task config should say sample_rate: 24000", source)
        sr = 16000
    kw = dict(
        sample_rate=int(sr),
        hidden_size=int(model.get("encoder_embed_dim", 768)),
        num_hidden_layers=int(model.get("encoder_layers", 12)),
        num_attention_heads=int(model.get("encoder_attention_heads", 12)),
        intermediate_size=int(model.get("encoder_ffn_embed_dim", 3072)),
        hidden_act=str(model.get("activation_fn", "gelu")),
        conv_dim=[c[0] for c in conv], conv_kernel=[c[1] for c in conv], conv_stride=[c[2] for c in conv],
        conv_bias=bool(model.get("conv_bias", False)),
        feat_extract_norm="layer" if mode == "layer_norm" else "group",
        num_conv_pos_embeddings=int(model.get("conv_pos", 128)),
        num_conv_pos_embedding_groups=int(model.get("conv_pos_groups", 16)),
        layer_norm_first=bool(model.get("layer_norm_first", False)),
        deepnorm=bool(model.get("deepnorm", False)),
        attention_relax=float(model.get("attention_relax", -1.0) or -1.0),
        hidden_dropout=float(model.get("dropout", 0.1)),
        attention_dropout=float(model.get("attention_dropout", 0.1)),
        activation_dropout=float(model.get("activation_dropout", 0.0)),
        feat_proj_dropout=float(model.get("dropout_input", 0.0)),
        layerdrop=float(model.get("encoder_layerdrop", 0.0)),
    )
    return MertConfig(**kw)


# ================================================================================================ loading
_EXPECTED = ("expected a .pt file saved by mert.checkpoints.save_checkpoint, a fairseq checkpoint, a .safetensors "
             "file with its mert_config, or a Hugging Face-layout folder (config.json + weights)")


def _file_kind(path: Path) -> tuple[str, str]:
    """(kind, description) from the first bytes: "zip" (torch.save's format), "pickle" (torch's legacy
    format, fairseq), "safetensors", or "other" / "empty" (then the description says what the file looks like)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "empty", "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip", "a zip archive"
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle", "a Python pickle"
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: 8-byte header length, then the JSON header
        return "safetensors", "a safetensors file"
    try:
        text = head.decode("utf-8")
        if all(c.isprintable() or c.isspace() for c in text):
            return "other", "the file holds text"
    except UnicodeDecodeError:
        pass
    return "other", "its first bytes are neither a zip archive nor a pickle, so torch.save did not write it"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _read_state_file(path: Path) -> dict:
    """A weights file of a Hugging Face-layout folder; CheckpointError naming it when it cannot be read."""
    import pickle

    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except PermissionError as e:
            raise CheckpointError(f"{path}: cannot open the weights file ({e})") from None
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path}: damaged weights file, it cannot be read ({_first_line(e)})") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except PermissionError as e:
        raise CheckpointError(f"{path}: cannot open the weights file ({e})") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, KeyError) as e:
        raise CheckpointError(f"{path}: damaged weights file, it cannot be read ({_first_line(e)})") from None


def _read_hf_weights(folder: Path) -> dict:
    for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / name
        if index.exists():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{index}: not a weights index (a JSON object with a weight_map): "
                                      f"{_first_line(e)}") from None
            sd = {}
            for shard in sorted(set(weight_map.values())):
                sd.update(_read_state_file(folder / shard))
            return sd
    for name in _WEIGHT_FILES:
        if (folder / name).exists():
            return _read_state_file(folder / name)
    raise CheckpointError(f"{folder}: no weights found (expected one of {', '.join(_WEIGHT_FILES)} "
                          "or a sharded *.index.json)")


def _split_encoder_keys(sd: dict, source: str) -> tuple[dict, list[str]]:
    """Strip a wrapper prefix (``hubert.``, ``mert_model.``...) and set aside keys outside the encoder."""
    keys = list(sd)
    if keys and not any(k.startswith(_ENCODER_PREFIXES) for k in keys):
        for prefix in sorted({k.split(".", 1)[0] + "." for k in keys if "." in k}):
            if any(k[len(prefix):].startswith(_ENCODER_PREFIXES) for k in keys if k.startswith(prefix)):
                sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)} | {
                    k: v for k, v in sd.items() if not k.startswith(prefix)}
                break
    enc = {k: v for k, v in sd.items() if k.startswith(_ENCODER_PREFIXES)}
    ignored = [k for k in sd if not k.startswith(_ENCODER_PREFIXES)]
    return enc, ignored


def load_state(model, sd: dict, source: str = "checkpoint", names: str = "hf") -> None:
    """Load a state dict (``names``: "hf" = HF HubertModel names, "ours") into ``model``, strictly:
    missing, unexpected or mis-shaped encoder keys raise CheckpointError naming them.
    ``masked_spec_embed`` may be missing (HF omits it when its config has no time masking)."""
    if names == "hf":
        sd = hf_to_ours(sd, source)
    else:
        sd = _fix_pos_conv(dict(sd), source)
    own = model.state_dict()
    missing = [k for k in own if k not in sd and k != "masked_spec_embed"]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if shapes:
        problems.append(f"mis-shaped keys [{'; '.join(shapes)}]")
    if problems:
        raise CheckpointError(f"{source}: does not match the encoder its config describes: " + "; ".join(problems))
    if "masked_spec_embed" not in sd:
        log.debug("%s: no masked_spec_embed (only used in pretraining); keeping a random one", source)
    model.load_state_dict(sd, strict=False)


def _build_and_load(cfg, sd: dict, source: str, names: str = "hf"):
    from mert.model import MertModel

    model = MertModel(cfg)
    load_state(model, sd, source, names=names)
    return model.eval()


def _load_hf_folder(folder: Path):
    from mert.config import MertConfig

    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        hint = ""
        if any(folder.glob("checkpoint-*.pt")) or any(folder.glob("checkpoints/checkpoint-*.pt")):
            hint = (f"; this is a `python -m mert pretrain` run folder: write its encoder with "
                    f"`python -m mert export {folder} OUT` and load OUT")
        raise CheckpointError(f"{folder}: no config.json (a Hugging Face-layout folder needs config.json + "
                              f"{' or '.join(_WEIGHT_FILES)}){hint}")
    cfg = MertConfig.from_json(cfg_path)
    sd, ignored = _split_encoder_keys(_read_hf_weights(folder), str(folder))
    if ignored:
        log.info("%s: ignoring %d keys outside the encoder: %s", folder, len(ignored), ignored[:10])
    return _build_and_load(cfg, sd, str(folder))


def _load_file(path: Path):
    import pickle

    import torch

    from mert.config import MertConfig

    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "mert_config" not in meta:
            raise CheckpointError(f"{path}: a bare .safetensors file has no config; put it in a folder with its "
                                  "config.json (Hugging Face layout)")
        cfg = MertConfig.from_dict(json.loads(meta["mert_config"]), source=str(path))
        return _build_and_load(cfg, _read_state_file(path), str(path), names=meta.get("names", "ours"))
    kind, what = _file_kind(path)
    if kind in ("empty", "other", "safetensors"):
        if kind == "safetensors":
            what = "a safetensors file without the .safetensors extension"
        raise CheckpointError(f"{path}: not a MERT checkpoint ({what}; {_EXPECTED})")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load's errors have no common base; this wraps that one call
        if "Unsupported global" not in str(e):
            if kind == "zip":  # a torch archive that does not read: cut short or corrupt
                raise CheckpointError(f"{path}: damaged checkpoint, it cannot be read (truncated or corrupt: "
                                      f"{_first_line(e)})") from None
            raise CheckpointError(f"{path}: not a MERT checkpoint ({what} that torch cannot load: "
                                  f"{_first_line(e)}; {_EXPECTED})") from None
        # fairseq checkpoints (and pretraining ones) pickle omegaconf / argparse / numpy objects
        log.warning("%s holds pickled Python objects (fairseq config); loading it with full unpickling - "
                    "only load checkpoint files you trust", path)
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
        except (pickle.UnpicklingError, EOFError, RuntimeError, ImportError, AttributeError) as e:
            raise CheckpointError(f"{path}: cannot unpickle the checkpoint ({_first_line(e)}); a fairseq "
                                  "checkpoint may need the package whose objects it pickled") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a MERT checkpoint (it holds a {type(ckpt).__name__}, not a dict; "
                              f"{_EXPECTED})")
    if "encoder_config" in ckpt and "model" in ckpt and "format" not in ckpt:
        raise CheckpointError(f"{path}: a `python -m mert pretrain` checkpoint (update {ckpt.get('step')}); write "
                              f"its encoder with `python -m mert export {path} OUT` and load OUT")
    if ckpt.get("format") == FORMAT_TAG:
        cfg = MertConfig.from_dict(ckpt["config"], source=f"{path} [config]")
        return _build_and_load(cfg, ckpt["model"], str(path), names="ours")
    if "model" in ckpt and ("cfg" in ckpt or "args" in ckpt):
        cfg_obj = ckpt.get("cfg")
        if cfg_obj is None:
            args = vars(ckpt["args"]) if not isinstance(ckpt["args"], dict) else ckpt["args"]
            cfg_dict = {"model": args, "task": args}
        else:
            cfg_dict = _to_plain(cfg_obj)
        cfg = config_from_fairseq(cfg_dict, source=str(path))
        sd, ignored = fairseq_to_hf(ckpt["model"], source=str(path))
        if ignored:
            log.info("%s: ignoring pretraining-only keys %s", path, ignored[:10])
        return _build_and_load(cfg, sd, str(path))
    raise CheckpointError(f"{path}: not a checkpoint we know: expected our format ({{'format': {FORMAT_TAG!r}, "
                          "'config', 'model'}), a fairseq checkpoint ({'model', 'cfg'}), or a Hugging Face folder")


def _to_plain(obj):
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            return OmegaConf.to_container(obj, resolve=False)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return {k: _to_plain(v) for k, v in vars(obj).items()}
    return obj


def _download_hub(repo_id: str, revision: str | None, cache_dir: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    kw = dict(repo_id=repo_id, revision=revision, cache_dir=cache_dir)
    try:
        cfg_file = Path(hf_hub_download(filename="config.json", **kw))
    except LocalEntryNotFoundError:
        how = ("HF_HUB_OFFLINE is set and it is not in the local cache" if offline
               else "it is not in the local cache and the hub cannot be reached")
        raise CheckpointError(f"{repo_id}: cannot load: {how} (cache: {cache_dir or _hub_cache()}). "
                              "Download it once with network access, or pass a local folder.") from None
    except Exception as e:  # RepositoryNotFoundError, HTTP errors
        raise CheckpointError(f"{repo_id}: cannot fetch config.json from the hub ({type(e).__name__}: {e})") from None
    for name in _WEIGHT_FILES:
        try:
            hf_hub_download(filename=name, **kw)
            break
        except (EntryNotFoundError, LocalEntryNotFoundError):
            continue
        except Exception as e:
            if "404" in str(e) or "Entry Not Found" in str(e):
                continue
            raise CheckpointError(f"{repo_id}: cannot fetch {name} ({type(e).__name__}: {e})") from None
    else:
        raise CheckpointError(f"{repo_id}: none of {', '.join(_WEIGHT_FILES)} found "
                              + ("in the local cache (HF_HUB_OFFLINE is set)" if offline else "on the hub"))
    return cfg_file.parent


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants

        return constants.HF_HUB_CACHE
    except Exception:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def resolve_source(source) -> tuple[str, Path | str]:
    """('folder' | 'file' | 'hub', location) for a load_model source."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and os.path.exists(source)):
        p = Path(source)
        if p.is_dir():
            return "folder", p
        if p.is_file():
            return "file", p
    s = str(source)
    if s.lower() in PACKAGED:
        folder = PACKAGED[s.lower()]
        if not (folder / "config.json").exists():
            raise CheckpointError(f"{s}: the shipped checkpoint is not present yet (expected {folder}/config.json "
                                  "+ model.safetensors); it is added by the mert-mini pretraining run")
        return "folder", folder
    if s.lower() in HUB_ALIASES:
        return "hub", HUB_ALIASES[s.lower()]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", s) and not s.startswith((".", "/")):
        if os.path.isdir(s.split("/")[0]):  # "runs/model" with a local runs/ folder: a local path, mistyped
            raise CheckpointError(f"{s}: no such file or folder (in the local folder {s.split('/')[0]}/)")
        return "hub", s
    raise CheckpointError(f"{s}: no such file or folder, and not a hub id (owner/name), a short name "
                          f"({', '.join(HUB_ALIASES)}) or a packaged model ({', '.join(PACKAGED)})")


def load_model(source, revision: str | None = None, cache_dir: str | None = None, device=None):
    """Load a MERT encoder (in eval mode) from a folder, a file, a hub id or "mert-mini" (see module doc)."""
    kind, where = resolve_source(source)
    if kind == "hub":
        try:
            where = _download_hub(str(where), revision, cache_dir)
        except CheckpointError as e:
            if str(source).lower() in HUB_ALIASES:
                raise
            # "runs/model" is a hub id by its form, but may well be a mistyped local path
            raise CheckpointError(f"{e} (and there is no local file or folder {str(source)!r})") from None
        kind = "folder"
    model = _load_hf_folder(Path(where)) if kind == "folder" else _load_file(Path(where))
    model.source = str(source)
    return model.to(device) if device is not None else model


# ================================================================================================ saving
def _atomic_replace(tmp: Path, final: Path) -> None:
    """The written ``tmp`` -> ``final``: the umask's permissions, flushed to disk, renamed (mert.fsutil)."""
    from mert.fsutil import finish_atomic_write

    finish_atomic_write(tmp, final)


def _write_atomically(final: Path, write) -> None:
    """``write(tmp_path)`` then :func:`_atomic_replace`; the temporary file goes away if writing fails."""
    from mert.fsutil import temporary_path

    tmp = temporary_path(final)
    try:
        write(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _atomic_replace(tmp, final)


def save_model(model, folder, safe_serialization: bool = True) -> Path:
    """Write ``model`` in the Hugging Face layout: ``folder/config.json`` + ``folder/model.safetensors``.

    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    ``transformers.HubertModel.from_pretrained(folder)`` loads the result (a deepnorm model's residual scaling
    is recorded in config.json but HubertModel does not apply it).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    if cfg.deepnorm:
        log.warning("saving a deepnorm model: transformers.HubertModel ignores 'deepnorm' and will not reproduce "
                    "its outputs; mert.load_model will")
    sd = {k: v.detach().to("cpu").contiguous() for k, v in ours_to_hf(model.state_dict()).items()}
    hf_cfg = cfg.to_hf_dict()
    _write_atomically(folder / "model.safetensors", lambda tmp: save_file(sd, str(tmp), metadata={"format": "pt"}))
    _write_atomically(folder / "config.json",
                      lambda tmp: tmp.write_text(json.dumps(hf_cfg, indent=2, sort_keys=True) + "\n"))
    return folder


def save_checkpoint(model, path, **extra) -> Path:
    """Our own single-file format: torch dict {'format', 'config' (MertConfig fields), 'model' (our names),
    **extra}. ``load_model(path)`` reads it back."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {"format": FORMAT_TAG, "config": model.config.to_dict(),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **extra}
    _write_atomically(path, lambda tmp: torch.save(ckpt, str(tmp)))
    return path
