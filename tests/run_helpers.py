"""Shared helpers of the tests that run whole CLI commands on a small prepared folder (tests/test_fewshot.py,
tests/test_finetune.py)."""
from __future__ import annotations

import json


def prepared_args(root, folder, *extra) -> list[str]:
    """The options of a run on the prepared ``folder``, writing results and the cache under ``root``."""
    return ["--data", "prepared", "--data-dir", str(folder), "--results-dir", str(root / "results"),
            "--cache-dir", str(root / "cache"), "--no-progress", "--quiet", *extra]


def result_records(root) -> dict[str, dict]:
    """Every result record under ``root``/results/runs, by its path below runs/."""
    return {p.relative_to(root / "results" / "runs").as_posix(): json.loads(p.read_text())
            for p in sorted((root / "results" / "runs").glob("**/*.json"))}


def genre3_folder(root, n: dict[str, int]):
    """A prepared 3-class genre folder (blues, jazz, rock) of 1 s synthetic clips, ``n`` items per split."""
    from benchmark.synthetic import make_prepared
    from tasks import get_task

    return make_prepared(get_task("genre"), root / "genre3", n=n, seconds=1.0, labels=["blues", "jazz", "rock"])
