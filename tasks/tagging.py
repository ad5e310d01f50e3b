"""MagnaTagATune top-50 auto-tagging (MARBLE ``MTT``)."""
from tasks.base import TaskSpec, register

# The MTT top-50 vocabulary in the column order of Won et al.'s tags.npy / MARBLE.
MTT_TOP50 = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal",
    "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance",
    "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal",
    "female voice", "choral",
)

SPEC = register(TaskSpec(
    name="tagging",
    version=1,
    dataset="MagnaTagATune",
    type="multilabel",
    labels=MTT_TOP50,
    metrics=("roc_auc", "ap"),
    main_score="mean(roc_auc,ap)",
    window="clip",
    description="MTT top-50 music tagging, macro ROC-AUC and AP",
    order=10,
    generator="songs:TaggingTask",
    reader="mtt",
))
