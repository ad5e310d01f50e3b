"""VocalSet singing technique classification (MARBLE ``VocalSetT``)."""
from tasks.base import TaskSpec, register

TECHNIQUES = (
    "belt", "breathy", "inhaled", "lip_trill", "spoken", "straight", "trill", "trillo", "vibrato", "vocal_fry",
)
# VocalSet's technique task holds these singers out for test.
TEST_SINGERS = ("f2", "f8", "m3", "m5", "m10")

SPEC = register(TaskSpec(
    name="technique",
    version=1,
    dataset="VocalSet",
    type="multiclass",
    labels=TECHNIQUES,
    metrics=("accuracy",),
    main_score="accuracy",
    window="clip",
    description="VocalSet 10 singing techniques from 3 s chunks, test singers held out, accuracy",
    order=90,
    generator="vocalset:TechniqueTask",
    reader="vocalset",
))
