"""The embedded music corpus: rendered, exactly labelled data for all 14 tasks plus a pretraining collection.

    from tasks.embedded import prepare, prepare_pretraining
    folder = prepare("key", size="tiny")          # builds on first use, then returns the cached folder

Which tasks have embedded data, and which generator makes each, is said by the tasks' specs
(``TaskSpec.generator``): :func:`task_names` and :func:`generator_versions` are derived from them.
See docs/embedded.md for how it is made, per-task descriptions and the difficulty calibration.
"""
from typing import Any

from tasks.embedded.build import (
    data_root,
    generator,
    generator_versions,
    prepare,
    prepare_all,
    prepare_pretraining,
    task_dir,
    task_names,
)

__all__ = ["GENERATOR_VERSIONS", "TASK_NAMES", "data_root", "generator", "generator_versions", "prepare",
           "prepare_all", "prepare_pretraining", "task_dir", "task_names"]


def __getattr__(name: str) -> Any:
    # derived on every access, so a task registered later is included (scripts/calibrate_embedded.py, tests)
    if name == "TASK_NAMES":
        return task_names()
    if name == "GENERATOR_VERSIONS":
        return generator_versions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
