"""GTZAN genre classification, fault-filtered split (MARBLE ``GTZANGenre``)."""
from tasks.base import TaskSpec, register

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

SPEC = register(TaskSpec(
    name="genre",
    version=1,
    dataset="GTZAN",
    type="multiclass",
    labels=GTZAN_GENRES,
    metrics=("accuracy",),
    main_score="accuracy",
    window="clip",
    description="GTZAN 10-genre classification, accuracy",
    order=30,
    generator="songs:GenreTask",
    reader="gtzan",
))
