"""python -m mert export CHECKPOINT OUT: a pretraining checkpoint -> a loadable encoder folder.

CHECKPOINT is a ``checkpoint-NNNNNNNN.pt`` written by ``python -m mert pretrain`` or a run folder (its newest
checkpoint that reads is used; a damaged newer one is skipped with a warning). OUT receives the encoder in the
Hugging Face layout (``config.json`` + ``model.safetensors``, what ``mert.load_model(OUT)`` and
``transformers.HubertModel`` read) plus ``pretraining.json`` (update, teacher, the resolved pretraining
config). The pretraining heads are left out. A damaged or foreign file given by name is one ``error:`` line
naming it (exit 2); a path with no checkpoint, exit 1.
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


def read_training_checkpoint(path: Path) -> tuple[Path, dict]:
    """(checkpoint file, its contents) for a checkpoint file or a run folder. In a folder the newest checkpoint
    that reads is used (a damaged newer one is skipped with a warning naming both, as resuming does); a
    damaged file given by name is a CheckpointError naming it."""
    from mert.pretrain import newest_readable_checkpoint, read_checkpoint

    path = Path(path)
    if path.is_dir():
        for folder in (path / "checkpoints", path):
            found = newest_readable_checkpoint(folder, "exporting")
            if found is not None:
                return found
        raise FileNotFoundError(f"{path}: no checkpoint-*.pt in this folder or its checkpoints/ folder")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return path, read_checkpoint(path)


def find_checkpoint(path: Path) -> Path:
    """The checkpoint file that ``path`` (a file or a run folder) stands for: see read_training_checkpoint."""
    return read_training_checkpoint(path)[0]


def _encoder(path: Path):
    from mert.config import MertConfig
    from mert.model import MertModel

    used, state = read_training_checkpoint(path)
    cfg = MertConfig.from_dict(state["encoder_config"], source=f"{used} [encoder_config]")
    model = MertModel(cfg)
    enc = {k[len("encoder."):]: v for k, v in state["model"].items() if k.startswith("encoder.")}
    model.load_state_dict(enc)
    return model.eval(), state, used


def encoder_from_checkpoint(path: Path):
    """(MertModel with the trained weights, checkpoint dict)."""
    model, state, _ = _encoder(path)
    return model, state


def export(checkpoint: Path, out: Path) -> Path:
    from mert.checkpoints import save_model
    from mert.teachers.storage import atomic_write_json

    model, state, used = _encoder(checkpoint)
    save_model(model, out)
    atomic_write_json(Path(out) / "pretraining.json", {
        "source": str(used), "update": state["step"], "labels": state.get("labels"),
        "pretrain_config": state.get("config"),
    })
    return Path(out)


def run(args) -> int:
    import sys

    from mert.checkpoints import CheckpointError
    from mert.config import ConfigError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        out = export(args.checkpoint, args.out)
    except (CheckpointError, ConfigError) as e:  # damaged, or not a pretraining checkpoint
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:  # nothing to export at that path
        print(f"error: {e}", file=sys.stderr)
        return 2
    source = json.loads((out / "pretraining.json").read_text())["source"]
    print(f"exported {source} -> {out} (load with mert.load_model({str(out)!r}))")
    return 0
