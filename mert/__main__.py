"""python -m mert {info, labels, pretrain, export}: argument parsing only; each command lives in its module.

Each command catches the errors that mean bad input (mert.checkpoints.CheckpointError, mert.config.ConfigError,
missing files ...) and prints them as one ``error: ...`` line naming the file or key; nothing here catches
more, so any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> module providing add_arguments(parser) and run(args) -> int
COMMANDS = {
    "info": ("mert.commands.info", "print a checkpoint's config, parameter count, frame rate and layers"),
    "labels": ("mert.teachers.command", "prepare pseudo-labels (encodec / k-means) for pretraining"),
    "pretrain": ("mert.pretrain", "pretrain MERT from an omegaconf config (torchrun for several processes)"),
    "export": ("mert.commands.export", "write a training checkpoint as a loadable encoder (+ HF layout)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints usage / the error
        return 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    cmd = argparse.ArgumentParser(prog=f"python -m mert {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd)
    return int(module.run(cmd.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
