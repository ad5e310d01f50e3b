"""Task metadata records and the task registry.

A task is a frozen :class:`TaskSpec` (what the task is, how it is scored, how its audio is windowed, where it
sits in the MARBLE table, which embedded generator and which real-data reader produce its data). The spec is
the one place a task is registered: the task modules of this package are discovered (every ``tasks/<name>.py``
that is not infrastructure), and every list of task names elsewhere (:func:`task_order`,
``tasks.embedded.task_names()``, ``tasks.real.dataset_dirs()``, ...) is derived from the registered specs.
The benchmark runner reads tasks only through :func:`get_task` / :func:`all_tasks`.

Changing anything that alters scores bumps ``version``.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_GENERATOR_RE = re.compile(_MODULE_RE.pattern + r":[A-Za-z_]\w*")

TASK_TYPES = ("multiclass", "multilabel", "regression", "key", "beat", "separation")
WINDOW_POLICIES = ("clip", "window", "frames")
AGGREGATIONS = ("none", "mean_logits")


@dataclass(frozen=True)
class TaskSpec:
    """Everything the runner needs to know about a task, independent of where its data comes from.

    name:         registry name used on the command line (``--task key``).
    version:      bumped when anything that changes scores changes (labels, splits, generator, metric).
    dataset:      the real dataset the task mirrors (``GiantSteps``).
    type:         one of TASK_TYPES; selects the probe head and loss.
    labels:       the label vocabulary of the real task (class names, tag names, regression dimensions,
                  stems). Empty when the vocabulary is read from the data (MTG tag sets); the prepared
                  data's ``meta.json`` always holds the labels actually used.
    metrics:      metric names computed on test (see benchmark.metrics).
    main_score:   how the metrics combine into the task's single leaderboard number: a metric name, or
                  ``mean(a,b)`` for two-metric tasks as MARBLE does.
    splits:       split names, train first.
    window:       ``clip`` (the whole item, mean-pooled), ``window`` (fixed windows of ``window_s`` seconds,
                  mean-pooled per window, predictions aggregated per item), or ``frames`` (frame-level).
    window_s:     window length in seconds for ``window`` policy; hop is ``window_hop_s`` (default = length).
    aggregation:  how window / clip predictions combine per item or song (``mean_logits``).
    probe:        per-task overrides of the probe defaults (epochs, patience, ...).
    description:  one line for ``list-tasks``.
    order:        the task's position in the MARBLE table (:func:`all_tasks` sorts by it; tasks without one
                  come last, by name). Two tasks cannot share a position.
    generator:    the embedded-corpus generator, ``module:Factory`` where ``module`` is below
                  ``tasks.embedded`` (``songs:KeyTask``) or a full import path; ``Factory(task_name)`` returns
                  the generator (see ``tasks.embedded.build``). Empty: the task has no embedded data.
    reader:       the real-data reader, a module below ``tasks.real`` (``giantsteps``) or a full import path.
                  Empty: the task has no real-data reader.

    ``order``, ``generator`` and ``reader`` say where things are; they are not part of the task's identity
    (:attr:`key`) and changing them changes no score.
    """

    name: str
    version: int
    dataset: str
    type: str
    metrics: tuple[str, ...]
    main_score: str
    labels: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train", "valid", "test")
    window: str = "clip"
    window_s: float | None = None
    window_hop_s: float | None = None
    aggregation: str = "none"
    probe: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    order: int | None = None
    generator: str = ""
    reader: str = ""

    def __post_init__(self) -> None:
        if self.type not in TASK_TYPES:
            raise ValueError(f"task {self.name!r}: type {self.type!r} is not one of {TASK_TYPES}")
        if self.window not in WINDOW_POLICIES:
            raise ValueError(f"task {self.name!r}: window {self.window!r} is not one of {WINDOW_POLICIES}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"task {self.name!r}: aggregation {self.aggregation!r} is not one of {AGGREGATIONS}"
            )
        if self.window == "window" and not self.window_s:
            raise ValueError(f"task {self.name!r}: window policy 'window' needs window_s")
        if not self.metrics:
            raise ValueError(f"task {self.name!r}: no metrics")
        for m in self.main_score_metrics:
            if m not in self.metrics:
                raise ValueError(f"task {self.name!r}: main score uses {m!r}, not among metrics {self.metrics}")
        if self.version < 1:
            raise ValueError(f"task {self.name!r}: version must be >= 1")
        if self.generator and not _GENERATOR_RE.fullmatch(self.generator):
            raise ValueError(f"task {self.name!r}: generator {self.generator!r} is not 'module:Factory' "
                             "(e.g. 'songs:KeyTask')")
        if self.reader and not _MODULE_RE.fullmatch(self.reader):
            raise ValueError(f"task {self.name!r}: reader {self.reader!r} is not a module name (e.g. 'gtzan')")

    @property
    def main_score_metrics(self) -> tuple[str, ...]:
        """The metric names the main score averages (one for single-metric tasks)."""
        s = self.main_score.strip()
        if s.startswith("mean(") and s.endswith(")"):
            return tuple(p.strip() for p in s[5:-1].split(",") if p.strip())
        return (s,)

    def main_score_of(self, scores: dict[str, float]) -> float:
        """Combine a dict of metric values into the main score."""
        names = self.main_score_metrics
        missing = [n for n in names if n not in scores]
        if missing:
            raise KeyError(f"task {self.name!r}: scores lack {missing} (have {sorted(scores)})")
        return float(sum(scores[n] for n in names) / len(names))

    @property
    def key(self) -> str:
        """``name@version``, the identity used in caches and results."""
        return f"{self.name}@{self.version}"


_REGISTRY: dict[str, TaskSpec] = {}

#: modules of the ``tasks`` package that hold no task (infrastructure and data folders)
NOT_TASK_MODULES = frozenset({"base", "format", "embedded", "real", "splits"})


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry; a second task with the same name or table position is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"task {spec.name!r} is registered twice")
    if spec.order is not None:
        for other in _REGISTRY.values():
            if other.order == spec.order:
                raise ValueError(f"task {spec.name!r}: table position order={spec.order} is taken by "
                                 f"task {other.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a task from the registry (tests that register a temporary task)."""
    _REGISTRY.pop(name, None)


class UnknownNameError(KeyError):
    """A name the user gave (a task, a dataset option) that is not registered; its message suggests close names.
    ``str()`` is the message itself (a plain KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """'unknown task 'kye'; did you mean 'key'? Known tasks: ...'."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} Known {kind}s: {', '.join(sorted(known))}"


def get_task(name: str) -> TaskSpec:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(unknown_name_message("task", name, list(_REGISTRY))) from None


def all_tasks() -> list[TaskSpec]:
    """Every registered task, in the MARBLE table order (``TaskSpec.order``; tasks without one last, by name)."""
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda s: (s.order is None, s.order or 0, s.name))


def task_order() -> tuple[str, ...]:
    """The names of every registered task, in the MARBLE table order."""
    return tuple(s.name for s in all_tasks())


def task_modules() -> tuple[str, ...]:
    """The modules of the ``tasks`` package that register tasks (discovered, not listed)."""
    package_dir = str(Path(__file__).resolve().parent)
    return tuple(sorted(m.name for m in pkgutil.iter_modules([package_dir])
                        if m.name not in NOT_TASK_MODULES and not m.name.startswith("_")))


_LOADED = False


def _load_all() -> None:
    """Import every task module once (each registers its specs on import)."""
    global _LOADED
    if _LOADED:
        return
    for mod in task_modules():
        importlib.import_module(f"tasks.{mod}")
    _LOADED = True

