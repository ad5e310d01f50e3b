"""python -m mert export CHECKPOINT OUT: a pretraining checkpoint -> a loadable encoder folder.

CHECKPOINT is a ``checkpoint-NNNNNNNN.pt`` written by ``python -m mert pretrain`` or a run folder (its newest
checkpoint is used). OUT receives the encoder in the Hugging Face layout (``config.json`` +
``model.safetensors``, what ``mert.load_model(OUT)`` and ``transformers.HubertModel`` read) plus
``pretraining.json`` (update, teacher, the resolved pretraining config). The pretraining heads are left out.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("mert.export")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a pretraining checkpoint file or run folder")
    p.add_argument("out", type=Path, help="output folder (Hugging Face layout)")


def find_checkpoint(path: Path) -> Path:
    from mert.pretrain import latest_checkpoint

    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no checkpoint-*.pt in this folder or its checkpoints/ folder")
        return found
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return path


def encoder_from_checkpoint(path: Path):
    """(MertModel with the trained weights, checkpoint dict)."""
    import torch

    from mert.config import MertConfig
    from mert.model import MertModel

    state = torch.load(find_checkpoint(path), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "encoder_config" not in state or "model" not in state:
        raise ValueError(f"{path}: not a `python -m mert pretrain` checkpoint (no encoder_config/model); "
                         "released or exported encoders load directly with mert.load_model")
    cfg = MertConfig.from_dict(state["encoder_config"], source=f"{path} [encoder_config]")
    model = MertModel(cfg)
    enc = {k[len("encoder."):]: v for k, v in state["model"].items() if k.startswith("encoder.")}
    model.load_state_dict(enc)
    return model.eval(), state


def export(checkpoint: Path, out: Path) -> Path:
    from mert.checkpoints import save_model
    from mert.teachers.storage import atomic_write_json

    model, state = encoder_from_checkpoint(checkpoint)
    save_model(model, out)
    atomic_write_json(Path(out) / "pretraining.json", {
        "source": str(find_checkpoint(checkpoint)), "update": state["step"], "labels": state.get("labels"),
        "pretrain_config": state.get("config"),
    })
    return Path(out)


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        out = export(args.checkpoint, args.out)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    print(f"exported {find_checkpoint(args.checkpoint)} -> {out} (load with mert.load_model({str(out)!r}))")
    return 0
