"""NSynth instrument family classification (MARBLE ``NSynthI``)."""
from tasks.base import TaskSpec, register

NSYNTH_FAMILIES = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal",
)

SPEC = register(TaskSpec(
    name="instrument",
    version=1,
    dataset="NSynth",
    type="multiclass",
    labels=NSYNTH_FAMILIES,
    metrics=("accuracy",),
    main_score="accuracy",
    window="clip",
    description="NSynth 11 instrument families from 4 s notes, accuracy",
    order=60,
    generator="notes:NoteTask",
    reader="nsynth",
))
