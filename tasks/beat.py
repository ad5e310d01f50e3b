"""Beat tracking on GTZAN-Rhythm (MARBLE ``GTZANBeatTracking``)."""
from tasks.base import TaskSpec, register

SPEC = register(TaskSpec(
    name="beat",
    version=2,  # 2: the embedded beat material v2 (songs.BeatTask version 2); v1 results are not mixed in
    dataset="GTZAN-Rhythm",
    type="beat",
    labels=("beat",),
    metrics=("beat_f", "downbeat_f", "tempo_acc1", "tempo_acc2", "tempo_mae"),
    main_score="beat_f",
    window="frames",
    description="beat (and downbeat) tracking from frame activations decoded by madmom's DBN, mir_eval F-measure "
                "(0.07 s) pooled over tracks; tempo of the decoded beats",
    order=40,
    generator="songs:BeatTask",
    reader="gtzan",
))
