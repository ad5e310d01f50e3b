"""python -m mert info SOURCE: a checkpoint's (or preset's) config, parameter count, frame rate and layers.

A SOURCE that is not a checkpoint, is damaged or has a bad config is one ``error:`` line naming it (exit 2).
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a checkpoint: HF-layout folder, fairseq .pt, our .pt, hub id "
                                       "(m-a-p/MERT-v1-95M), mert-mini; or preset:NAME for a random-init preset")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def describe(model) -> dict:
    cfg = model.config
    return {
        "source": getattr(model, "source", None),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sample_rate": model.sample_rate,
        "frame_rate": model.frame_rate,
        "num_layers": model.num_layers,
        "hidden_states": model.num_layers + 1,
        "dim": model.dim,
        "layout": "pre-LN" if cfg.layer_norm_first else "post-LN",
        "receptive_field": model.receptive_field,
        "config": cfg.to_dict(),
    }


def run(args: argparse.Namespace) -> int:
    import sys

    from mert.checkpoints import CheckpointError, load_model
    from mert.config import ConfigError

    # input errors (not a checkpoint, damaged, a bad config, a file that cannot be opened) are one line; any
    # other exception is a bug and keeps its traceback
    if args.source.startswith("preset:"):
        import torch

        from mert.config import get_preset
        from mert.model import MertModel

        try:
            with torch.device("meta"):  # shapes only: no memory, no init time
                model = MertModel(get_preset(args.source[len("preset:"):]))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        model.source = args.source
    else:
        try:
            model = load_model(args.source)
        except (CheckpointError, ConfigError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except OSError as e:  # e.g. permission denied: the message names the file
            print(f"error: {args.source}: cannot read it ({e})", file=sys.stderr)
            return 2
    info = describe(model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"source:          {info['source']}")
    print(f"parameters:      {info['parameters']:,} ({info['parameters'] / 1e6:.1f}M)")
    print(f"sample rate:     {info['sample_rate']} Hz")
    print(f"frame rate:      {info['frame_rate']:g} Hz")
    print(f"layers:          {info['num_layers']} ({info['hidden_states']} hidden states, dim {info['dim']}, "
          f"{info['layout']})")
    print(f"receptive field: {info['receptive_field']} samples")
    print("config:")
    for k, v in info["config"].items():
        print(f"  {k}: {v}")
    return 0
