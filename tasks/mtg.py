"""The four MTG-Jamendo auto-tagging tasks on split-0 (MARBLE ``MTGInstrument/Mood/Genre/Top50``).

Their tag vocabularies come from the split files (40 / 56 / 87 / 50 tags); the prepared data's meta.json
holds the tags actually used.
"""
from tasks.base import TaskSpec, register

# task -> (split-file subset, number of tags, position in the MARBLE table)
MTG_SUBSETS = {
    "mtg-instrument": ("instrument", 40, 100),
    "mtg-mood": ("moodtheme", 56, 110),
    "mtg-genre": ("genre", 87, 120),
    "mtg-top50": ("top50tags", 50, 130),
}

SPECS = {
    name: register(TaskSpec(
        name=name,
        version=1,
        dataset="MTG-Jamendo",
        type="multilabel",
        metrics=("roc_auc", "ap"),
        main_score="mean(roc_auc,ap)",
        window="window",
        window_s=30.0,
        aggregation="mean_logits",
        description=f"MTG-Jamendo split-0 {subset} tags ({n}), macro ROC-AUC and AP, 30 s windows averaged",
        order=order,
        generator="songs:MTGView",  # a tag-set view of the shared MTG corpus
        reader="mtg_jamendo",
    ))
    for name, (subset, n, order) in MTG_SUBSETS.items()
}
