"""The embedded music corpus: rendered, exactly labelled data for all 14 tasks plus a pretraining collection.

    from tasks.embedded import prepare, prepare_pretraining
    folder = prepare("key", size="tiny")          # builds on first use, then returns the cached folder

See docs/embedded.md for how it is made, per-task descriptions and the difficulty calibration.
"""
from tasks.embedded.build import (
    GENERATOR_VERSIONS,
    TASK_NAMES,
    data_root,
    prepare,
    prepare_all,
    prepare_pretraining,
    task_dir,
)

__all__ = ["GENERATOR_VERSIONS", "TASK_NAMES", "data_root", "prepare", "prepare_all", "prepare_pretraining", "task_dir"]
