"""The beat probe as MARBLE trains and scores it: smoothed train targets, 10 s crops, the DBN decoder,
downbeat and tempo metrics, and the reference trackers' rows (benchmark.heads.BeatHead, benchmark.trackers)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.config import resolve_config
from benchmark.features import SplitFeatures
from benchmark.heads import make_head
from benchmark.metrics import tempo_scores
from tasks import get_task
from tasks.format import Item

FPS = 75.0


def _feats(split: str, tracks: list[tuple[float, list[float], list[float] | None]]) -> SplitFeatures:
    """Rows at 75 frames/s for tracks (seconds, beats, downbeats); features are the row index (1 layer, 1 dim)."""
    items, owner, times = [], [], []
    for i, (sec, beats, downs) in enumerate(tracks):
        extra = {"downbeats": downs} if downs is not None else {}
        items.append(Item(id=f"t{i}", audio=f"t{i}.wav", target=beats, extra=extra))
        n = int(round(sec * FPS))
        owner += [i] * n
        times += list(np.arange(n) / FPS)
    x = np.arange(len(owner), dtype=np.float32)[:, None, None]
    return SplitFeatures(split=split, x=x, owner=np.array(owner), times=np.array(times, dtype=np.float32),
                         items=items)


def _head(*overrides):
    spec = get_task("beat")
    cfg = resolve_config(spec, overrides=list(overrides))
    return make_head(spec, ["beat"], cfg)


def test_train_targets_are_smoothed_like_marble_and_eval_targets_are_not():
    head = _head()
    beats = [1.0, 2.0]
    downs = [1.0]
    tr = head.prepare(_feats("train", [(3.0, beats, downs)]))["y_rows"].numpy()
    k = int(round(1.0 * FPS))
    assert tr[k - 2: k + 3, 0].tolist() == pytest.approx([0.5, 0.95, 1.0, 0.95, 0.5])
    assert tr[k - 3: k + 4, 1].tolist() == pytest.approx([0.25, 0.5, 0.95, 1.0, 0.95, 0.5, 0.25])
    assert tr[:, 2].min() == 1.0  # the track has downbeat annotations: its downbeat rows count
    assert tr[2 * k, 1] == 0.0  # 2.0 s is a beat, not a downbeat
    va = head.prepare(_feats("valid", [(3.0, beats, downs)]))["y_rows"].numpy()
    assert sorted(np.nonzero(va[:, 0])[0].tolist()) == [k, 2 * k] and set(va[:, 0]) == {0.0, 1.0}
    assert head.out_dim() == 2


def test_items_without_downbeats_are_masked_out_of_the_downbeat_loss():
    head = _head()
    data = head.prepare(_feats("train", [(2.0, [0.5, 1.0], None), (2.0, [0.5, 1.0], [0.5])]))
    y = data["y_rows"]
    n = int(2.0 * FPS)
    assert y[:n, 2].sum() == 0 and y[n:, 2].sum() == n
    out = torch.zeros(1, len(y), 2)
    out[0, :n, 1] = 100.0  # a confident wrong downbeat output on the unannotated track costs nothing
    base = head.loss(torch.zeros(1, len(y), 2), y)
    assert head.loss(out, y).item() == pytest.approx(base.item(), rel=1e-6)


def test_a_task_without_downbeats_has_one_output():
    head = _head()
    head.prepare(_feats("train", [(2.0, [0.5, 1.0], None)]))
    assert head.out_dim() == 1


def test_training_crops_are_random_contiguous_and_bounded():
    head = _head("beat.crop_s=2", "beat.crops_per_batch=3")
    feats = _feats("train", [(5.0, [1.0], None), (1.5, [1.0], None), (4.0, [1.0], None), (6.0, [1.0], None)])
    data = head.prepare(feats)
    batches = head.train_batches(np.random.default_rng(0), data, 1024)
    assert [len({int(feats.owner[r]) for r in b}) for b in batches] == [3, 1]  # 3 crops per step, 4 tracks
    seen = set()
    for b in batches:
        for o in {int(feats.owner[r]) for r in b}:
            rows = b[feats.owner[b] == o]
            t = feats.times[rows]
            assert np.allclose(np.diff(t), 1 / FPS, atol=1e-5)  # contiguous
            assert t[-1] - t[0] <= 2.0  # at most crop_s; the 1.5 s track whole
            if o == 1:
                assert len(rows) == int(1.5 * FPS)
            seen.add(o)
    assert seen == {0, 1, 2, 3}
    again = head.train_batches(np.random.default_rng(0), data, 1024)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # the probe seed fixes the crops


def test_crop_s_zero_is_every_row_once_in_frame_batches():
    head = _head("beat.crop_s=0")
    feats = _feats("train", [(2.0, [1.0], None), (2.0, [1.0], None)])
    batches = head.train_batches(np.random.default_rng(0), head.prepare(feats), 64)
    assert all(len(b) <= 64 for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(feats.owner)))


def test_a_chunked_step_has_the_gradient_of_the_whole_batch():
    head = _head()
    feats = _feats("train", [(3.0, [1.0, 2.0], [1.0]), (3.0, [0.5, 1.5], None)])
    y = head.prepare(feats)["y_rows"]
    torch.manual_seed(0)
    w = torch.randn(1, 1, 2, requires_grad=True)
    x = torch.randn(1, len(y), 1)
    head.loss(x * w, y).sum().backward()
    whole = w.grad.clone()
    w.grad = None
    norm = (float(len(y)), float(y[:, 2].sum()))
    for i in range(0, len(y), 100):
        head.loss(x[:, i:i + 100] * w, y[i:i + 100], norm=norm).sum().backward()
    assert torch.allclose(w.grad, whole, atol=1e-6)


def test_tempo_scores_against_hand_computed_values():
    ref = [np.arange(0, 10, 0.5), np.arange(0, 10, 0.6), np.arange(0, 10, 1.0)]   # 120, 100, 60 bpm
    est = [np.arange(0, 10, 0.25), np.arange(0, 10, 0.61), np.arange(0, 10, 0.9)]  # 240, 98.36, 66.67 bpm
    s = tempo_scores(ref, est)
    assert s["tempo_acc1"] == pytest.approx(1 / 3)       # only 98.36 is within 4 % of 100
    assert s["tempo_acc2"] == pytest.approx(2 / 3)       # and 240 = 2 x 120
    assert s["tempo_mae"] == pytest.approx((120 + (100 - 60 / 0.61) + (60 / 0.9 - 60)) / 3)
    assert s["tempo_tracks"] == 3


def test_tempo_of_a_track_without_two_estimated_beats_is_a_miss():
    s = tempo_scores([np.arange(0, 10, 0.5), np.arange(0, 10, 0.5)], [np.arange(0, 10, 0.5), np.array([1.0])])
    assert s["tempo_acc1"] == 0.5 and s["tempo_tracks"] == 2 and s["tempo_undefined"] == 1
    assert s["tempo_mae"] == pytest.approx(0.0)  # over the tracks with a tempo


def test_scores_decode_with_the_dbn_and_report_downbeats_and_tempo():
    head = _head()
    beats = list(np.arange(30, 720, 36) / FPS)  # 125 bpm, on frames
    downs = beats[::4]
    data = head.prepare(_feats("test", [(10.0, beats, downs)]))
    data["frame_rate"] = FPS
    y = data["y_rows"].numpy()
    logits = np.where(y[:, :2] > 0, 6.0, -6.0).astype(np.float32)  # a perfect activation
    s = head.scores(logits, data)
    # (the DBN may add a beat past the last annotation: F 0.97 on this 19-beat track, as madmom's)
    assert s["beat_f"] > 0.95 and s["downbeat_f"] > 0.85
    assert s["tempo_acc1"] == 1.0 and s["tempo_mae"] < 1.0
    # the early-stopping score uses the same decoder by default, peak picking when asked
    assert head.fast_scores(torch.from_numpy(logits)[None], data)[0] == pytest.approx(s["beat_f"])
    peaks = _head("beat.select=peaks")
    peaks.prepare(_feats("test", [(10.0, beats, downs)]))
    assert peaks.fast_scores(torch.from_numpy(logits)[None], data)[0] == pytest.approx(1.0)


def test_the_librosa_tracker_stays_available():
    head = _head("beat.tracker=librosa-dp")
    beats = list(np.arange(0.4, 9.6, 0.5))
    data = head.prepare(_feats("test", [(10.0, beats, None)]))
    data["frame_rate"] = FPS
    y = data["y_rows"].numpy()
    s = head.scores(np.where(y[:, :1] > 0, 6.0, -6.0).astype(np.float32), data)
    assert s["beat_f"] > 0.9 and "downbeat_f" not in s


def test_reference_rows_are_results_beside_the_probed_ones(tmp_path, tiny_home):
    from benchmark.__main__ import main

    out = tmp_path / "results"
    assert main(["reference", "--task", "beat", "--size", "tiny", "--data-dir", str(tiny_home), "--results-dir",
                 str(out), "--tracker", "spectral-flux", "--quiet", "--no-progress"]) == 0
    files = list((out / "runs" / "embedded-tiny").glob("reference_spectral-flux@*/beat@v*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert rec["representation"]["name"] == "reference:spectral-flux"
    assert "reference tracker" in rec["selection"]["by"]
    assert 0.0 <= rec["scores"]["main"] <= 1.0 and "tempo_acc1" in rec["scores"]["test"]
    assert "reference:spectral-flux" in (out / "leaderboard.md").read_text()
    # a rerun keeps the result (nothing to recompute)
    before = files[0].read_text()
    assert main(["reference", "--task", "beat", "--size", "tiny", "--data-dir", str(tiny_home), "--results-dir",
                 str(out), "--tracker", "spectral-flux", "--quiet", "--no-progress"]) == 0
    assert files[0].read_text() == before


def test_reference_trackers_are_for_beat_tasks_only(tmp_path, tiny_home, capsys):
    from benchmark.__main__ import main

    args = ["--size", "tiny", "--data-dir", str(tiny_home), "--results-dir", str(tmp_path), "--quiet", "--no-progress"]
    assert main(["reference", "--task", "genre", *args]) == 2
    assert "beat tasks only" in capsys.readouterr().err
    assert main(["reference", "--task", "beat", "--tracker", "metronome", *args]) == 2
    assert "spectral-flux, madmom-rnn" in capsys.readouterr().err
