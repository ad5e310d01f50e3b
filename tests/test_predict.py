"""``python -m benchmark predict``: a stored probe applied to new audio gives the label it was trained to give (a
rendered C-major cadence -> "C major", a click track at 120 bpm -> its clicks), whatever the file's length; bad
inputs are named and skipped, the others predicted."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.__main__ import main
from fixtures_probes import SR, cadence, click_track
from mert.audio import write_audio


def _predict(stored_probes, task: str, inputs, out, *extra) -> int:
    model, source = ("chroma", stored_probes["key_source"]) if task == "key" else ("mfcc", stored_probes["beat_source"])
    return main(["predict", "--task", task, "--model", model, "--train-source", source, "--results-dir",
                 str(stored_probes["results"]), "--out", str(out), "--quiet", *extra, *map(str, inputs)])


def test_a_c_major_cadence_is_predicted_c_major(stored_probes, tmp_path, capsys):
    rng = np.random.default_rng(123)  # another rendering than any of the training folder's
    write_audio(tmp_path / "c_major.wav", cadence("C major", 2.0, rng), SR)
    write_audio(tmp_path / "a_minor.flac", cadence("A minor", 2.0, rng), SR)
    assert _predict(stored_probes, "key", [tmp_path / "c_major.wav", tmp_path / "a_minor.flac"], tmp_path / "out") == 0
    table = capsys.readouterr().out
    assert "C major (" in table and "A minor (" in table
    out = json.loads((tmp_path / "out" / "c_major.key.json").read_text())
    assert out["prediction"] == "C major" and out["task"] == "key@1" and out["model"] == "chroma"
    assert out["train_source"] == stored_probes["key_source"] and out["seeds"] == [0]
    assert len(out["probabilities"]) == 24 and next(iter(out["probabilities"])) == "C major"
    assert abs(sum(out["probabilities"].values()) - 1) < 1e-4 and out["seconds"] == 2.0
    assert json.loads((tmp_path / "out" / "a_minor.key.json").read_text())["prediction"] == "A minor"


def test_long_audio_is_windowed_as_the_task_says(stored_probes, tmp_path):
    """Key cuts 30 s windows and averages their logits: a 70 s file (two windows and a tail) is one prediction."""
    rng = np.random.default_rng(7)
    write_audio(tmp_path / "long.wav", np.concatenate([cadence("G major", 2.0, rng) for _ in range(35)]), SR)
    assert _predict(stored_probes, "key", [tmp_path], tmp_path / "out") == 0  # a folder: its audio files
    out = json.loads((tmp_path / "out" / "long.key.json").read_text())
    assert out["prediction"] == "G major" and out["seconds"] == 70.0


def test_a_click_track_at_120_bpm_gives_its_clicks(stored_probes, tmp_path):
    from benchmark.metrics import beat_scores

    wav, clicks = click_track(120.0, 10.0, 0.5, np.random.default_rng(99))
    write_audio(tmp_path / "clicks.wav", wav, SR)
    assert _predict(stored_probes, "beat", [tmp_path / "clicks.wav"], tmp_path / "out") == 0
    out = json.loads((tmp_path / "out" / "clicks.beat.json").read_text())
    beats = [float(b) for b in (tmp_path / "out" / "clicks.beat.beats").read_text().split()]
    assert np.allclose(beats, out["prediction"], atol=5e-4)
    assert beat_scores([clicks], [beats])["beat_f"] >= 0.9
    assert abs(out["tempo_bpm"] - 120.0) <= 0.04 * 120.0


def test_jams_beats_when_jams_is_installed(stored_probes, tmp_path):
    jams = pytest.importorskip("jams")
    wav, _ = click_track(100.0, 6.0, 0.3, np.random.default_rng(5))
    write_audio(tmp_path / "c.wav", wav, SR)
    assert _predict(stored_probes, "beat", [tmp_path / "c.wav"], tmp_path / "out") == 0
    jam = jams.load(str(tmp_path / "out" / "c.beat.jams"))
    (ann,) = jam.search(namespace="beat")
    assert len(ann.data) == len((tmp_path / "out" / "c.beat.beats").read_text().split())


def test_bad_inputs_are_named_and_the_others_predicted(stored_probes, tmp_path, capsys):
    rng = np.random.default_rng(1)
    good = tmp_path / "in" / "good.wav"
    good.parent.mkdir()
    write_audio(good, cadence("F major", 2.0, rng), SR)
    (tmp_path / "in" / "corrupt.wav").write_bytes(b"RIFF" + bytes(rng.integers(0, 255, 400, dtype=np.uint8)))
    (tmp_path / "in" / "empty.flac").write_bytes(b"")
    write_audio(tmp_path / "in" / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    (tmp_path / "in" / "sub").mkdir()
    write_audio(tmp_path / "in" / "sub" / "good.wav", cadence("E minor", 2.0, rng), SR)  # same stem: good-2
    missing = tmp_path / "nowhere.wav"
    assert _predict(stored_probes, "key", [tmp_path / "in", missing], tmp_path / "out") == 1
    err = capsys.readouterr().err
    for bad in ("corrupt.wav", "empty.flac", "silent.wav"):
        assert any(bad in line and "not predicted" in line for line in err.splitlines()), (bad, err)
    assert f"{missing}: no such file or folder" in err
    assert "4 input(s) not predicted" in err
    assert json.loads((tmp_path / "out" / "good.key.json").read_text())["prediction"] == "F major"
    assert json.loads((tmp_path / "out" / "good-2.key.json").read_text())["prediction"] == "E minor"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good-2.key.json", "good.key.json"]


def test_nothing_usable_is_one_error_line(stored_probes, tmp_path, capsys):
    (tmp_path / "empty.wav").write_bytes(b"")
    assert _predict(stored_probes, "key", [tmp_path / "empty.wav"], tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "no input could be used" in err and "empty.wav" in err


def test_separation_without_a_stored_probe_names_the_run_that_makes_one(stored_probes, tmp_path, capsys):
    # separation's predict itself: tests/test_separation_artefacts.py
    write_audio(tmp_path / "mix.wav", cadence("C major", 1.0), SR)
    assert main(["predict", "--task", "separation", "--model", "chroma", "--results-dir",
                 str(stored_probes["results"]), str(tmp_path / "mix.wav")]) == 2
    assert "no trained probe for chroma on task separation@2" in capsys.readouterr().err
