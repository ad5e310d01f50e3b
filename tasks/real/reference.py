"""Published MARBLE v1 scores (results/reference/marble_v1.csv) for leaderboards to show beside ours.

    reference_rows() -> [{"task", "metric", "model", "score", "unit", "source", "published": True}, ...]
    main_scores()    -> {model: {task: main score}}   (percent; SDR in dB), combined as our TaskSpecs combine
                                                      metrics; tasks with a metric missing for a model are left out
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

CSV = Path(__file__).resolve().parents[2] / "results" / "reference" / "marble_v1.csv"


def reference_rows(path: str | Path | None = None) -> list[dict[str, Any]]:
    p = Path(path) if path else CSV
    if not p.exists():
        raise FileNotFoundError(f"{p}: published reference table missing (it ships in results/reference/)")
    with open(p, encoding="utf-8", newline="") as f:
        rows = []
        for n, r in enumerate(csv.DictReader(f), 2):
            try:
                r["score"] = float(r["score"])
            except (KeyError, ValueError):
                raise ValueError(f"{p}:{n}: score {r.get('score')!r} is not a number") from None
            r["published"] = True
            rows.append(r)
    return rows


def main_scores(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    from tasks.base import get_task

    by: dict[str, dict[str, dict[str, float]]] = {}
    for r in reference_rows(path):
        by.setdefault(r["model"], {}).setdefault(r["task"], {})[r["metric"]] = r["score"]
    out: dict[str, dict[str, float]] = {}
    for model, tasks in by.items():
        for task, scores in tasks.items():
            if task == "suite":
                out.setdefault(model, {})["suite"] = scores["average"]
                continue
            spec = get_task(task)
            if all(m in scores for m in spec.main_score_metrics):
                out.setdefault(model, {})[task] = round(spec.main_score_of(scores), 4)
    return out
