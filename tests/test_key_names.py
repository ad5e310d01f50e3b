"""Key names in every spelling (tasks.key.normalise_key): sharps, flats, mir_eval's, JAMS' and Harte's forms map to
the task's 24 labels, for every source (the key head and the GiantSteps reader share it)."""
from __future__ import annotations

import pytest

from tasks.key import KEYS, normalise_key


@pytest.mark.parametrize("text, key", [
    ("F# minor", "Gb minor"), ("Gb minor", "Gb minor"), ("f# minor", "Gb minor"), ("F#:minor", "Gb minor"),
    ("F#:min", "Gb minor"), ("F#m", "Gb minor"), ("F\u266f minor", "Gb minor"), ("  gb   MINOR ", "Gb minor"),
    ("C:maj", "C major"), ("c major", "C major"), ("CM", "C major"), ("B# major", "C major"),
    ("Cb major", "B major"), ("Bbm", "Bb minor"), ("A#:major", "Bb major"), ("E\u266d major", "Eb major"),
])
def test_every_spelling_maps_to_the_label(text, key):
    assert normalise_key(text) == key


def test_every_label_is_its_own_spelling_and_mir_eval_agrees():
    import mir_eval

    assert [normalise_key(k) for k in KEYS] == list(KEYS)
    sharp = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    for mode in ("major", "minor"):
        for i, pc in enumerate(sharp):  # mir_eval's sharp spelling is the same key (weighted score 1)
            assert mir_eval.key.weighted_score(f"{pc} {mode}", normalise_key(f"{pc} {mode}")) == 1.0
            assert normalise_key(f"{pc} {mode}") == KEYS[i + 12 * (mode == "minor")]


@pytest.mark.parametrize("text", ["X", "C", "C dorian", "H major", "C majorx", ""])
def test_anything_else_is_an_error_naming_it(text):
    with pytest.raises(ValueError, match="is not one of the 24 keys"):
        normalise_key(text)


def test_the_key_head_accepts_every_spelling_and_giantsteps_shares_the_table():
    from benchmark.config import resolve_config
    from benchmark.heads import make_head
    from tasks import get_task
    from tasks.format import FormatError, Item
    from tasks.real import giantsteps

    spec = get_task("key")
    head = make_head(spec, ["C major", "F# minor", "Gb minor", "a:min"], resolve_config(spec))
    assert head.labels == ["C major", "Gb minor", "A minor"]  # respelled, each once
    items = [Item(id=str(i), audio="x", target=t) for i, t in enumerate(["F# minor", "c:maj", "Am"])]
    assert head.item_targets(items).tolist() == [1, 0, 2]
    with pytest.raises(FormatError, match="item 'bad'"):
        head.item_targets([Item(id="bad", audio="x", target="C lydian")])
    assert giantsteps.normalise_key("d# minor") == "Eb minor" and giantsteps.ENHARMONIC["F#"] == "Gb"
    assert giantsteps.normalise_key("C dorian") == "C dorian"  # left for the reader to report as unlabelled
