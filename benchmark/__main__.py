"""python -m benchmark {run, extract, probe, list-tasks, list-models, leaderboard, prepare, validate}."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from benchmark.cli import build_parser
    from benchmark.commands import COMMANDS

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(COMMANDS[args.command](args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished feature shards and results are kept, run again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # user-facing errors: one clear line, no traceback
        from benchmark.config import ConfigError
        from benchmark.features import ExtractionError
        from benchmark.registry import ModelError
        from benchmark.results import ResultError
        from benchmark.errors import RunError
        from tasks.format import FormatError

        if isinstance(e, (ConfigError, ExtractionError, ModelError, RunError, ResultError, FormatError, KeyError,
                          FileNotFoundError)):
            msg = e.args[0] if isinstance(e, KeyError) and e.args else e
            print(f"error: {msg}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
