"""Beat tracking on GTZAN-Rhythm (MARBLE ``GTZANBeatTracking``)."""
from tasks.base import TaskSpec, register

SPEC = register(TaskSpec(
    name="beat",
    version=1,
    dataset="GTZAN-Rhythm",
    type="beat",
    labels=("beat",),
    metrics=("beat_f",),
    main_score="beat_f",
    window="frames",
    description="beat tracking from frame activations, mir_eval F-measure (0.07 s), pooled over tracks",
    order=40,
    generator="songs:BeatTask",
    reader="gtzan",
))
