"""VocalSet singer identification (MARBLE ``VocalSetS``)."""
from tasks.base import TaskSpec, register

SINGERS = tuple(f"f{i}" for i in range(1, 10)) + tuple(f"m{i}" for i in range(1, 12))

SPEC = register(TaskSpec(
    name="singer",
    version=1,
    dataset="VocalSet",
    type="multiclass",
    labels=SINGERS,
    metrics=("accuracy",),
    main_score="accuracy",
    window="clip",
    description="VocalSet 20-singer identification from 3 s chunks, accuracy",
    order=80,
    generator="vocalset:SingerTask",
    reader="vocalset",
))
