"""The embedded beat material v2 (tasks.embedded.songs.BeatTask): exact beat / downbeat / tempo targets, every
kind of piece in a fixed-seed sample of descriptors (drawn without composing or rendering), determinism."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.base import get_task
from tasks.embedded import songs as S
from tasks.embedded.common import SR, Job

DUR = 12.0  # the standard item length


def _job(i: int, split: str = "train", duration: float = DUR) -> Job:
    return Job("beat", split, i, (("duration", duration),))


@pytest.fixture(scope="module")
def descriptors() -> list[dict]:
    return [S.BeatTask.describe(_job(i)) for i in range(300)]


def test_version_is_2():
    assert S.BeatTask.version == 2 and get_task("beat").version == 2


def test_targets_are_the_exact_grid(descriptors):
    for d in descriptors:
        b = np.array(d["beats"])
        assert len(b) >= 8 and b[0] >= 0.0 and b[-1] < DUR and np.all(np.diff(b) > 0), d["kind"]
        # the targets are the composed grid (song time) seen from the item's start, to 0.1 ms
        g = np.asarray(d["grid"]) - d["lead_in"]
        assert np.allclose(b, g[(g >= 0) & (g < DUR - 0.05)], atol=6e-5)
        # downbeats: a subset of the beats, one per bar of ``meter`` beats
        downs = d["downbeats"]
        assert downs and set(downs) <= set(d["beats"])
        idx = [d["beats"].index(t) for t in downs]
        assert np.all(np.diff(idx) == d["meter"]) and idx[0] < d["meter"]
        # tempo: the mean over the item, and every local tempo in 60-200 BPM
        assert d["tempo"] == pytest.approx(60.0 * (len(b) - 1) / (b[-1] - b[0]))
        assert 60.0 <= d["tempo"] <= 200.0
        local = 60.0 / np.diff(b)
        assert local.min() > 59.9 and local.max() < 200.2


def test_every_kind_of_piece_occurs(descriptors):
    def seen(key):
        return {d[key] for d in descriptors}

    assert seen("kind") == set(S.BEAT_KINDS)
    assert seen("tempo_kind") == set(S.BEAT_TEMPO_KINDS)
    assert seen("meter") == {3, 4}
    assert seen("dynamics") == {"flat", "crescendo", "decrescendo", "soft"}
    assert seen("texture") == {"pads", "piano", None}
    assert seen("break") == {"drop", "stop", None}
    grooves = seen("groove")
    assert {"halftime", "double", "backbeat", "four", "swing", None} <= grooves and len(grooves) >= 10
    assert seen("hats") >= {"flat", "sixteenths", "quarters", "none", None}
    assert any(d["swing"] >= 0.2 for d in descriptors) and any(d["swing"] == 0 for d in descriptors)
    assert seen("switch") == {"halftime", "double", None}
    assert any(d["halved"] for d in descriptors) and all(d["kind"] == "halftime" for d in descriptors if d["halved"])
    for key in ("fill_p", "push_p", "timing_ms", "room", "drums_enter"):
        assert any(d[key] for d in descriptors) and not all(d[key] for d in descriptors), key
    # pieces without drums (bands, sparse pieces) are a good part of the material
    no_drums = np.mean([d["groove"] is None for d in descriptors])
    assert 0.3 < no_drums < 0.6
    # the whole tempo range, octave-ambiguous feels at the tempi where the other octave is plausible
    tempi = [d["tempo"] for d in descriptors]
    assert min(tempi) < 66 and max(tempi) > 185
    assert all(d["tempo0"] >= 110 for d in descriptors if d["kind"] == "halftime")
    assert all(d["tempo0"] <= 105 for d in descriptors if d["kind"] == "doubletime")
    # a step changes the tempo by at least 20 % inside the item; a drift or rubato moves it too
    for d in descriptors:
        local = 60.0 / np.diff(d["beats"])
        if d["tempo_kind"] == "step":
            assert local.max() / local.min() > 1.2, d["curve"]
    moving = [np.ptp(60.0 / np.diff(d["beats"])) / d["tempo"] for d in descriptors if d["tempo_kind"] != "constant"]
    assert np.median(moving) > 0.08
    # the item starts inside the piece: not always on a downbeat
    assert any(d["downbeats"][0] != d["beats"][0] for d in descriptors)


def test_items_are_deterministic_and_match_their_descriptors():
    gen = S.BeatTask()
    kinds = {}
    for i in range(40):  # one item with drums and one sparse piece, short (6 s) to keep this fast
        d = gen.describe(_job(i, "test", 6.0))
        if d["groove"] and "drums" not in kinds:
            kinds["drums"] = i
        if d["kind"] == "sparse" and "sparse" not in kinds:
            kinds["sparse"] = i
    assert set(kinds) == {"drums", "sparse"}
    for kind, i in kinds.items():
        job = _job(i, "test", 6.0)
        a, b = gen.make(job)[0], gen.make(job)[0]
        assert a.items == b.items
        assert a.audio.keys() == b.audio.keys() and all(np.array_equal(a.audio[k], b.audio[k]) for k in a.audio)
        it, d = a.items[0], gen.describe(job)
        ex = it["extra"]
        assert it["target"] == d["beats"] and ex["downbeats"] == d["downbeats"]
        assert ex["tempo"] == round(d["tempo"], 2) and ex["kind"] == d["kind"] and ex["meter"] == d["meter"]
        assert ex["drums"] == (kind == "drums")
        y = a.audio[it["audio"]]
        assert y.dtype == np.int16 and len(y) == int(6.0 * SR) and np.abs(y).max() > 300
        assert 0.0 <= ex["onset_beats"] <= 1.0
        if kind == "drums":
            assert ex["onset_beats"] >= 0.7  # a groove strikes (nearly) every beat


def test_compose_takes_a_grid_meter_and_swing():
    from tasks.embedded.compose import compose

    grid = 0.2 + np.cumsum(np.r_[0.0, np.full(24, 0.5)])  # 25 beats: 8 bars of 3
    song = compose(np.random.default_rng(3), "pop", 8.0, meter=3, beats=grid, swing=0.25, drums=True)
    assert song.beats_per_bar == 3 and song.swing == 0.25 and np.array_equal(song.beats, grid)
    assert song.beat_times[0] == 0.2 and song.info["meter"] == 3
    assert max(n[2] for p in song.parts for n in p.notes) < 24
