"""Global key detection, GiantSteps (MARBLE ``GS``)."""
from tasks.base import TaskSpec, register

PITCH_CLASSES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# 24 keys in mir_eval spelling: "C major", ..., "B minor" (flat spelling, as the GiantSteps annotations).
KEYS = tuple(f"{pc} {mode}" for mode in ("major", "minor") for pc in PITCH_CLASSES)

SPEC = register(TaskSpec(
    name="key",
    version=1,
    dataset="GiantSteps",
    type="key",
    labels=KEYS,
    metrics=("weighted_key", "accuracy"),
    main_score="weighted_key",
    window="window",
    window_s=30.0,
    aggregation="mean_logits",
    description="24-way global key, mir_eval weighted score, 30 s clips combined per song",
    order=20,
    generator="songs:KeyTask",
    reader="giantsteps",
))
