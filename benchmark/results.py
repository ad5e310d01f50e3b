"""Result records and the leaderboards generated from them.

Results are the source of truth: one JSON per (representation + revision, task + version, data source)
under ``<results>/runs/<source>/<representation>@<revision>/<task>@v<version>.json``. Everything else is
generated from them, never edited by hand:

- ``<results>/leaderboard.csv`` and ``leaderboard.md``: one row per (data source, representation + revision),
  one column per task (``task@vN``: a task version change never mixes with older numbers) holding the main
  test score, and the suite average. The markdown has one table per data source, so embedded and real
  numbers never share a table; in the CSV the ``data`` column keeps them apart and averages are taken within
  a row only. Scores are shown as in MARBLE: percentages for fractions, dB for SDR. The suite average is the
  mean of those displayed numbers over the tasks present in the row (``n_tasks`` says how many).
- ``<results>/layers/<source>/<task>@vN.csv``: every representation's per-layer validation and test scores;
  ``<task>@vN.png``: test main score by layer, one line per representation.

Concurrent writers (two runs finishing at once) take a file lock and regenerate from all result files, then
replace each output atomically, so the leaderboard always holds every finished run.

A result that cannot be written (disk full, folder turned read-only) is not lost: :func:`save_unsaved` keeps it
under ``$MERT_BENCH_HOME/unsaved-results/`` (or the system's temporary folder, or as JSON on stderr), and
:func:`adopt_unsaved` puts it in place on the next run of the same task and config instead of computing it
again. A damaged result file (not JSON, not a record) is a :class:`ResultError` naming it.

Trained probes and per-item test predictions are files beside a result (benchmark.artefacts), referenced from its
``artefacts`` section; a stored probe scored on another source's test split (``python -m benchmark evaluate``) is a
result of its own under the source ``train=<train source>+test=<test source>`` (its own folder and leaderboard
table), with an ``evaluation`` section saying which probe it scored. Both sections are optional: results written
before them load and hash as they did.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

RESULT_SCHEMA = 1


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class ResultRecord:
    """One result file: what ran (representation, task, data, resolved config and its hash, environment), what
    it scored (scores of the chosen probe, the selection, every (layer, lr) row, seeds) and what it cost.

    The file's JSON is :meth:`to_dict` (top-level keys = these fields; an optional field that is None is left
    out); :data:`REQUIRED_KEYS` and :func:`json_schema` are derived from the fields, and :func:`result_path` says
    where it lives. ``grid`` .. ``probe`` are what the probe sweep (benchmark.probes) or the separation probe
    adds beside the scores."""

    representation: dict[str, Any]   # name, identity, revision, num_layers, dim, sample_rate, frame_rate, pooling
    task: dict[str, Any]             # name, version, key, type, dataset, metrics, main_score
    data: dict[str, Any]             # source, source_version, folder, limit, counts, rows (+ items_digest, defaults)
    config: dict[str, Any]           # the resolved run config (benchmark.config)
    config_hash: str
    environment: dict[str, Any]      # python, platform, packages, git_commit
    scores: dict[str, Any]           # main, main_std, test, test_std, valid_main
    selection: dict[str, Any]        # layer, lr, by
    layers: list[dict[str, Any]]     # the best lr of every layer (and the weighted sum)
    seeds: list[int]
    timings: dict[str, Any]
    skipped: list[dict[str, Any]]    # files lost while preparing and extracting, with reasons
    grid: list[dict[str, Any]] | None = None        # every (layer, lr)
    epochs_run: list[int] | None = None
    layer_weights: list[list[float]] | None = None  # the weighted-sum member's softmax weights per seed
    probe: dict[str, Any] | None = None             # members, seconds
    artefacts: dict[str, Any] | None = None         # files beside the result: probe, predictions (benchmark.artefacts)
    evaluation: dict[str, Any] | None = None        # a stored probe scored on another source: which one (evaluate)
    created: str = field(default_factory=_now)
    schema: int = RESULT_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResultRecord":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def identity_of(record: dict[str, Any]) -> dict[str, Any]:
    """What, besides the config, a result's ``config_hash`` covers, rebuilt from its record (the inverse of
    benchmark.pipeline.plan_task's identity): representation and weights, task and version, data source, its
    version, ``--limit`` and (for data other than the embedded corpus) the digest of its items."""
    rep, data = record["representation"], record["data"]
    out = {"representation": rep["name"], "identity": rep["identity"], "task": record["task"]["key"],
           "source": data["source"], "source_version": data.get("source_version"), "limit": data.get("limit"),
           **({"items": data["items_digest"]} if data.get("items_digest") else {})}
    if data.get("train_source"):  # an evaluation of a stored probe: which probe, trained on which source
        out.update(evaluation_identity(data["train_source"], record["evaluation"]["probe_sha256"]))
    return out


def evaluation_identity(train_source: str, probe_sha256: str) -> dict[str, Any]:
    """What an evaluation's identity adds to a run's: the probe's data source and the probe file's sha256 (a
    probe trained again is another probe, scored again)."""
    return {"train_source": train_source, "probe": probe_sha256}


def representation_section(rep) -> dict[str, Any]:
    return {"name": rep.name, "identity": rep.identity(), "revision": rep.identity()[:8],
            "num_layers": int(rep.num_layers), "dim": int(rep.dim), "sample_rate": int(rep.sample_rate),
            "frame_rate": float(rep.frame_rate), "pooling": getattr(rep, "pooling", "mean")}


def task_section(spec) -> dict[str, Any]:
    return {"name": spec.name, "version": spec.version, "key": spec.key, "type": spec.type, "dataset": spec.dataset,
            "metrics": list(spec.metrics), "main_score": spec.main_score}


#: the keys every result file has: ``schema`` and the fields without a default
REQUIRED_KEYS = ("schema", *(f.name for f in fields(ResultRecord)
                             if f.default is MISSING and f.default_factory is MISSING))

_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "integer", float: "number"}


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of a result file, derived from :class:`ResultRecord`."""
    import typing

    hints = typing.get_type_hints(ResultRecord)
    props = {}
    for f in fields(ResultRecord):
        t = hints[f.name]
        args = [a for a in typing.get_args(t) if a is not type(None)] if typing.get_origin(t) is typing.Union \
            or type(t).__name__ == "UnionType" else [t]
        base = typing.get_origin(args[0]) or args[0]
        props[f.name] = {"type": _JSON_TYPES[base]}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "mert-bench result",
            "type": "object", "properties": props, "required": list(REQUIRED_KEYS)}


def result_path(results_dir, source: str, rep_slug: str, spec) -> Path:
    """``<results>/runs/<source>/<representation>@<revision>/<task>@v<version>.json``."""
    return Path(results_dir) / "runs" / source / rep_slug / f"{spec.name}@v{spec.version}.json"


def write_result(path, record: "dict | ResultRecord") -> None:
    from tasks.format import atomic_write_text

    if isinstance(record, ResultRecord):
        record = record.to_dict()
    # keys starting with "_" live in memory only (the leaderboard's "_path", the artefacts on their way to disk)
    record = {k: v for k, v in record.items() if not k.startswith("_")}
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"result record lacks {missing}")
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


class ResultError(ValueError):
    """A result file that is not a result record (truncated, not JSON, other content): names the file."""


def read_result(path) -> dict:
    """One result record; a damaged file is a ResultError naming it and saying what to do."""
    p = Path(path)
    try:
        r = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultError(f"{p}: not valid JSON ({e}), e.g. a write cut short; delete it, or run its task again "
                          "(only-missing replaces it)") from None
    if not isinstance(r, dict) or not all(k in r for k in ("representation", "task", "data", "scores")):
        raise ResultError(f"{p}: not a result record (no representation / task / data / scores); delete it or "
                          "move it out of runs/")
    return r


def load_results(results_dir) -> list[dict]:
    out = []
    for p in sorted((Path(results_dir) / "runs").glob("**/*.json")):
        r = read_result(p)
        r["_path"] = str(p)
        out.append(r)
    return out


def writable_problem(folder) -> str | None:
    """None when files can be created in ``folder`` (made if missing), else why not (the OS's words)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        try:
            os.write(fd, b"0")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as e:
        return f"cannot write there ({e.strerror or e})"
    return None


def _unsaved_paths(path, results_dir) -> list[Path]:
    """Where a result that could not be written at ``path`` is kept, in order of preference."""
    from benchmark.paths import home

    root = Path(results_dir).resolve()
    try:
        rel = Path(path).resolve().relative_to(root)
    except ValueError:
        rel = Path(Path(path).name)
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return [home() / "unsaved-results" / key / rel,
            Path(tempfile.gettempdir()) / "mert-bench-unsaved-results" / key / rel]


def save_unsaved(path, results_dir, record: dict, files=None) -> Path | None:
    """Keep a record whose write to ``path`` failed: the first of :func:`_unsaved_paths` that takes it (with its
    artefact ``files``, benchmark.artefacts.ArtefactFiles, beside it), else the JSON on stderr (None; without the
    artefacts, which cannot be kept there)."""
    for cand in _unsaved_paths(path, results_dir):
        try:
            if files is not None:
                files.write(cand)
            write_result(cand, record)
            return cand
        except OSError:
            continue
    record = {k: v for k, v in record.items() if k != "artefacts" and not k.startswith("_")}
    print(json.dumps(record, sort_keys=True, default=_jsonable), file=sys.stderr)
    return None


def _move_artefacts(rec: dict, kept: Path, path: Path) -> list[Path]:
    """Copy the artefact files ``rec`` references from beside ``kept`` to beside ``path`` (atomically); the kept
    copies, to remove once the record is in place. A kept file missing or not matching its sha256 is dropped from
    the record's references (with a warning): the record stays usable, the probe must be trained again."""
    import hashlib

    from tasks.format import atomic_write_bytes

    moved = []
    for what, info in list((rec.get("artefacts") or {}).items()):
        src = kept.with_name(info["file"])
        try:
            data = src.read_bytes()
        except OSError:
            data = None
        if data is None or hashlib.sha256(data).hexdigest() != info.get("sha256"):
            print(f"warning: {src}: the kept {what} file is missing or damaged; {path} is put in place without it "
                  "(run the task with --overwrite always to make it again)", file=sys.stderr)
            del rec["artefacts"][what]
            continue
        atomic_write_bytes(path.with_name(info["file"]), data)
        moved.append(src)
    if rec.get("artefacts") == {}:
        del rec["artefacts"]
    return moved


def adopt_unsaved(path, results_dir, config_hash: str) -> dict | None:
    """A record kept by :func:`save_unsaved` for ``path`` with this ``config_hash``: written into place (and its
    kept copy removed) and returned; None when there is none."""
    for cand in _unsaved_paths(path, results_dir):
        if not cand.exists():
            continue
        try:
            rec = read_result(cand)
        except ResultError:
            continue
        if rec.get("config_hash") != config_hash:
            continue
        try:
            moved = _move_artefacts(rec, cand, Path(path))
            write_result(path, rec)
        except OSError as e:
            print(f"warning: {path}: still cannot write it ({e.strerror or e}); using the record kept in {cand}",
                  file=sys.stderr)
            return rec
        for m in moved:
            m.unlink()
        cand.unlink()
        print(f"warning: {path}: put in place from {cand}, where a run whose write failed had kept it",
              file=sys.stderr)
        return rec
    return None


def display(value: float, task_type: str) -> float:
    """MARBLE-style number: dB for separation, percent otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return float("nan")
    return float(value) if task_type == "separation" else 100.0 * float(value)


def _task_order():
    from tasks.base import task_order

    return {n: i for i, n in enumerate(task_order())}


def leaderboard_rows(results: list[dict]) -> tuple[list[str], list[dict[str, Any]]]:
    order = _task_order()
    cols = sorted({(r["task"]["name"], r["task"]["version"]) for r in results},
                  key=lambda t: (order.get(t[0], 99), t[0], t[1]))
    col_names = [f"{n}@v{v}" for n, v in cols]
    rows: dict[tuple, dict[str, Any]] = {}
    for r in results:
        key = (r["data"]["source"], r["representation"]["name"], r["representation"]["revision"])
        row = rows.setdefault(key, {"data": key[0], "representation": key[1], "revision": key[2]})
        col = f"{r['task']['name']}@v{r['task']['version']}"
        row[col] = display(r["scores"]["main"], r["task"]["type"])
        if len(r.get("seeds") or ()) > 1:  # the spread over probe seeds, shown in the markdown table
            row.setdefault("_spread", {})[col] = (display(r["scores"].get("main_std", 0.0), r["task"]["type"]),
                                                  len(r["seeds"]))
        row.setdefault("_seeds", {})[col] = (display(r["scores"]["main"], r["task"]["type"]),
                                             display(r["scores"].get("main_std", 0.0), r["task"]["type"]),
                                             len(r.get("seeds") or ()) or 1)
    for drawn in random_draw_rows(list(rows.values())):
        rows[(drawn["data"], drawn["representation"], drawn["revision"])] = drawn
    # the average counts each task at its newest version only: a row whose task has a newer version elsewhere
    # keeps the old cell on display but is averaged over fewer tasks (``n_tasks`` says how many)
    newest = {}
    for n, v in cols:
        newest[n] = max(newest.get(n, v), v)
    current = [f"{n}@v{v}" for n, v in cols if v == newest[n]]
    for row in rows.values():
        vals = [row[c] for c in current if c in row and not math.isnan(row[c])]
        row["n_tasks"] = len(vals)
        row["average"] = sum(vals) / len(vals) if vals else float("nan")
    # reference rows (benchmark.trackers: no probe, one task) after the probed ones
    ordered = sorted(rows.values(), key=lambda r: (r["data"], str(r["representation"]).startswith("reference:"),
                                                    -r["average"] if not math.isnan(r["average"]) else 0,
                                                    r["representation"]))
    return col_names, ordered


def random_draw(name: str) -> tuple[str, int] | None:
    """``random:PRESET[:SEED][+POOLING]`` -> (``random:PRESET[+POOLING]``, the init seed; 0 when none is named),
    the group a draw belongs to; None for any other name (benchmark.registry: one random network is one draw)."""
    base, plus, pooling = str(name).partition("+")
    parts = base.split(":")
    if parts[0] != "random" or len(parts) not in (2, 3) or not parts[1]:
        return None
    if len(parts) == 3 and not parts[2].isdigit():
        return None
    return f"random:{parts[1]}{plus}{pooling}", int(parts[2]) if len(parts) == 3 else 0


def _seed_list(seeds: list[int]) -> str:
    """[0, 1, 2] -> "0-2"; [0, 2, 5] -> "0,2,5"."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


def random_draw_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per data source and random preset with results from two or more init draws
    (``random:mert-mini``, ``random:mert-mini:1``, ``:2``): ``random:mert-mini:0-2``, whose cell per task is the
    mean over the draws of each draw's mean over probe seeds, shown with the standard deviation over every (draw,
    probe seed) score (``a ± s (draws x seeds)``), only where every draw has the task. "Beats random" is then
    measured against the distribution of random networks, not against one draw. The draws keep their own rows."""
    groups: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for row in rows:
        drawn = random_draw(row["representation"])
        if drawn is not None:
            groups.setdefault((row["data"], drawn[0]), []).append((drawn[1], row))
    out = []
    for (source, name), members in sorted(groups.items()):
        seeds = sorted({s for s, _ in members})
        if len(seeds) < 2 or len(seeds) != len(members):  # one draw, or two revisions of one draw: no mean
            continue
        base, plus, pooling = name.partition("+")
        row: dict[str, Any] = {"data": source, "representation": f"{base}:{_seed_list(seeds)}{plus}{pooling}",
                               "revision": f"{len(seeds)} draws", "_draws": [r["representation"] for _, r in members]}
        cols = set.intersection(*(set(r.get("_seeds", {})) for _, r in members))
        for col in sorted(cols):
            stats = [r["_seeds"][col] for _, r in members]  # per draw: (mean, population std, n) over probe seeds
            mean = sum(m for m, _, _ in stats) / len(stats)
            total = sum(k for _, _, k in stats)
            # every (draw, seed) score about that mean: a draw's seeds add n (sd^2 + (m - mean)^2)
            var = sum(k * (sd ** 2 + (m - mean) ** 2) for m, sd, k in stats) / total
            counts = {k for _, _, k in stats}
            row[col] = mean
            row.setdefault("_spread", {})[col] = (math.sqrt(var), f"{len(stats)}x{stats[0][2]}" if len(counts) == 1
                                                  else str(total))
        out.append(row)
    return out


def leaderboard_csv(col_names, rows) -> str:
    buf = io.StringIO()
    fields = ["data", "representation", "revision", *col_names, "average", "n_tasks"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "")) for k in fields})
    return buf.getvalue()


def _cell(row: dict[str, Any], col: str) -> str:
    if col not in row or math.isnan(row[col]):
        return ""
    if col in row.get("_spread", {}):
        std, n = row["_spread"][col]
        return f"{row[col]:.1f} ± {std:.1f} ({n})"
    return f"{row[col]:.1f}"


#: what a table of each mode's data source holds (``<source>-fewshot<K>``, ``<source>-lora``, ``<source>-full``:
#: benchmark.fewshot / benchmark.finetune ``source_suffix``), said under its heading; frozen probes need no note
MODE_NOTES = (
    (re.compile(r"-fewshot(\d+)$"), "Few-shot (`--mode fewshot`): no training; each test item gets the class of the "
     "nearest class centroid of {0} labelled train items per class (cosine, on the frozen features), mean "
     "`± s (n)` over n draws of those items (benchmark/fewshot.py)."),
    (re.compile(r"-lora$"), "LoRA fine-tuning (`--mode lora`): LoRA adapters (peft) on the encoder's attention "
     "projections trained with the probe's head on raw audio crops; the base weights stay frozen. Scores of the "
     "epoch chosen on validation, `± s (n)` over n training seeds (benchmark/finetune.py)."),
    (re.compile(r"-full$"), "Full fine-tuning (`--mode full`): every encoder weight trained with the probe's head "
     "on raw audio crops. Scores of the epoch chosen on validation, `± s (n)` over n training seeds "
     "(benchmark/finetune.py)."),
)


def mode_note(source: str) -> str | None:
    """The note under a table's heading saying what its mode is, or None (frozen probes)."""
    for pattern, text in MODE_NOTES:
        m = pattern.search(str(source))
        if m:
            return text.format(*m.groups())
    return None


def leaderboard_md(col_names, rows) -> str:
    out = ["# Leaderboard", "",
           "Generated by `python -m benchmark leaderboard` from results/runs; do not edit. Main test score per task "
           "(percent; separation in dB SDR) of the layer and lr chosen on validation; the results' JSON files say "
           "which. `a ± s (n)`: mean and standard deviation over n probe seeds. Embedded and real data are "
           "separate tables.", ""]
    for source in sorted({r["data"] for r in rows}):
        sub = [r for r in rows if r["data"] == source]
        cols = [c for c in col_names if any(c in r for r in sub)]
        note = mode_note(source)
        out += [f"## {source}", "", *([note, ""] if note else []),
                "| representation | " + " | ".join(cols) + " | average | tasks |", "|---|" + "---|" * (len(cols) + 2)]
        for r in sub:
            cells = [_cell(r, c) for c in cols]
            out.append(f"| {r['representation']} ({r['revision']}) | " + " | ".join(cells) +
                       f" | {r['average']:.1f} | {r['n_tasks']} |")
        out.append("")
    return "\n".join(out)


def layer_tables(results: list[dict]) -> dict[tuple[str, str], str]:
    tables: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        key = (r["data"]["source"], f"{r['task']['name']}@v{r['task']['version']}")
        for row in r.get("layers", []):
            tables.setdefault(key, []).append({
                "representation": r["representation"]["name"], "revision": r["representation"]["revision"],
                "layer": row["layer"], "lr": row["lr"], "valid_main": row["valid_main"],
                "test_main": row["test"]["main"], "test_main_std": row["test_std"].get("main", 0.0),
                "chosen": row["layer"] == r["selection"]["layer"] and row["lr"] == r["selection"]["lr"],
            })
    out = {}
    for key, rows in tables.items():
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        out[key] = buf.getvalue()
    return out


def plot_layers(results: list[dict], source: str, task_key: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in results:
        if r["data"]["source"] != source or f"{r['task']['name']}@v{r['task']['version']}" != task_key:
            continue
        rows = [x for x in r.get("layers", []) if x["layer"] != "weighted"]
        label = f"{r['representation']['name']} ({r['representation']['revision']})"
        ys = [display(x["test"]["main"], r["task"]["type"]) for x in rows]
        if len(rows) > 1:
            ax.plot([int(x["layer"]) for x in rows], ys, marker="o", label=label)
        elif rows:
            ax.scatter([0], ys, label=label)
        w = [x for x in r.get("layers", []) if x["layer"] == "weighted"]
        if w:
            ax.axhline(display(w[0]["test"]["main"], r["task"]["type"]), ls="--", lw=0.8)
    ax.set_xlabel("layer")
    ax.set_ylabel("test main score")
    ax.set_title(f"{task_key} ({source}); dashed: weighted sum")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    from tasks.format import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())


def write_leaderboards(results_dir, plots: bool = True) -> Path:
    """Regenerate every leaderboard file from the result records, under a lock."""
    from filelock import FileLock

    from tasks.format import atomic_write_text

    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(results_dir / ".leaderboard.lock"), timeout=600):
        results = load_results(results_dir)
        cols, rows = leaderboard_rows(results)
        atomic_write_text(results_dir / "leaderboard.csv", leaderboard_csv(cols, rows))
        atomic_write_text(results_dir / "leaderboard.md", leaderboard_md(cols, rows))
        for (source, task_key), text in layer_tables(results).items():
            atomic_write_text(results_dir / "layers" / source / f"{task_key}.csv", text)
            if plots:
                plot_layers(results, source, task_key, results_dir / "layers" / source / f"{task_key}.png")
    return results_dir / "leaderboard.csv"
