"""Music source separation, MUSDB18 (MARBLE ``MUSDB18``)."""
from tasks.base import TaskSpec, register

STEMS = ("vocals", "drums", "bass", "other")

SPEC = register(TaskSpec(
    name="separation",
    # v2: MARBLE's probe (features only, Open-Unmix head, Wiener filter) and its global SDR as the main score
    version=2,
    dataset="MUSDB18",
    type="separation",
    labels=STEMS,
    metrics=tuple(f"sdr_{s}" for s in STEMS) + tuple(f"bss_sdr_{s}" for s in STEMS),
    main_score="mean(" + ",".join(f"sdr_{s}" for s in STEMS) + ")",
    window="frames",
    window_s=6.0,
    description="4-stem separation with MARBLE's LSTM probe on frame features, global SDR per stem (dB)",
    order=140,
    generator="songs:SeparationTask",
    reader="musdb",
))
