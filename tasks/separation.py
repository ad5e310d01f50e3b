"""Music source separation, MUSDB18 (MARBLE ``MUSDB18``)."""
from tasks.base import TaskSpec, register

STEMS = ("vocals", "drums", "bass", "other")

SPEC = register(TaskSpec(
    name="separation",
    version=1,
    dataset="MUSDB18",
    type="separation",
    labels=STEMS,
    metrics=tuple(f"sdr_{s}" for s in STEMS),
    main_score="mean(" + ",".join(f"sdr_{s}" for s in STEMS) + ")",
    window="frames",
    window_s=6.0,
    description="4-stem separation with a mask estimator on frame features, SDR per stem (dB)",
    order=140,
    generator="songs:SeparationTask",
    reader="musdb",
))
