"""python -m benchmark {run, extract, probe, predict, evaluate, list-tasks, list-models, leaderboard, prepare, validate,
mock-run, reference}."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from benchmark.cli import build_parser
    from benchmark.commands import COMMANDS

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(COMMANDS[args.command](args) or 0)
    except BrokenPipeError:  # the reader went away (``| head``): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("interrupted; finished feature shards and results are kept, run again to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, user_errors()):  # bad input: one clear line, no traceback
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise  # anything else is a bug: its traceback is what a report needs


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input (a file, key, option or name the user gave), each raised with
    a message that names it and says what to do."""
    from benchmark.config import ConfigError
    from benchmark.errors import RunError
    from benchmark.features import ExtractionError
    from benchmark.representations import ModelError
    from benchmark.results import ResultError
    from tasks.base import UnknownNameError
    from tasks.format import FormatError
    from tasks.real.folders import MetadataError

    return (ConfigError, ExtractionError, ModelError, RunError, ResultError, FormatError, UnknownNameError,
            MetadataError, FileNotFoundError)

if __name__ == "__main__":
    sys.exit(main())
