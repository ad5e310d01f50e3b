"""Music emotion regression, Emomusic (MARBLE ``EMO``)."""
from tasks.base import TaskSpec, register

SPEC = register(TaskSpec(
    name="emotion",
    version=1,
    dataset="Emomusic",
    type="regression",
    labels=("arousal", "valence"),
    metrics=("r2_arousal", "r2_valence"),
    main_score="mean(r2_arousal,r2_valence)",
    window="window",
    window_s=5.0,
    aggregation="mean_logits",
    description="arousal / valence regression, R2 per dimension, 5 s windows averaged",
    order=50,
    generator="songs:EmotionTask",
    reader="emomusic",
))
