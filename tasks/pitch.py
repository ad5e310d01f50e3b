"""NSynth pitch classification over the 128 MIDI numbers (MARBLE ``NSynthP``)."""
from tasks.base import TaskSpec, register

SPEC = register(TaskSpec(
    name="pitch",
    version=1,
    dataset="NSynth",
    type="multiclass",
    labels=tuple(str(i) for i in range(128)),
    metrics=("accuracy",),
    main_score="accuracy",
    window="clip",
    description="NSynth 128-way MIDI pitch from 4 s notes, accuracy",
    order=70,
    generator="notes:NoteTask",
    reader="nsynth",
))
