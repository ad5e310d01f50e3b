"""Feature extraction: cache hits do no model work, resume after a kill, padding-correct batches, skipped files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.config import resolve_config
from benchmark.features import ExtractionError, _segments, extract_split
from benchmark.representations import MFCC
from benchmark.synthetic import make_prepared
from tasks import get_task


class CountingMFCC(MFCC):
    """MFCC that counts its forward calls and can fail after N calls (to simulate a kill)."""

    def __init__(self, fail_after=None):
        super().__init__()
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, wav, lengths):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        return super().__call__(wav, lengths)


@pytest.fixture(scope="module")
def genre_dir(tmp_path_factory):
    return make_prepared(get_task("genre"), tmp_path_factory.mktemp("d") / "genre",
                         n={"train": 10, "valid": 4, "test": 4}, seconds=1.0)


def _fcfg(**kw):
    cfg = resolve_config(get_task("genre"), overrides=[f"features.{k}={v}" for k, v in kw.items()])
    return cfg.features


def test_cache_hit_does_no_model_work_and_kill_resumes(genre_dir, tmp_path):
    spec = get_task("genre")
    fcfg = _fcfg(shard_items=3, batch_seconds=2.0)
    rep = CountingMFCC(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        extract_split(rep, spec, genre_dir, "train", fcfg, tmp_path, progress=False, log=lambda m: None)
    shards = sorted(tmp_path.glob("genre/*/shard-*.npz"))
    assert len(shards) == 1  # the shard finished before the kill is kept; the interrupted one is not there
    assert not list(tmp_path.glob("genre/*/.*tmp"))
    rep.fail_after = None
    calls_before = rep.calls
    f = extract_split(rep, spec, genre_dir, "train", fcfg, tmp_path, progress=False, log=lambda m: None)
    assert f.x.shape == (10, 1, 120) and f.x.dtype == np.float16
    assert f.owner.tolist() == list(range(10))
    assert f.model_calls == rep.calls - calls_before > 0
    # only the 3 missing shards (items 3-5, 6-8, 9) were extracted: 1 s items, 2 s budget -> 2 per call
    assert f.model_calls == 2 + 2 + 1
    rep2 = CountingMFCC()
    again = extract_split(rep2, spec, genre_dir, "train", fcfg, tmp_path, progress=False, log=lambda m: None)
    assert rep2.calls == 0 and again.model_calls == 0
    np.testing.assert_array_equal(again.x, f.x)
    recipe = json.loads(next(tmp_path.glob("genre/*/recipe.json")).read_text())
    assert recipe["task"] == "genre@1" and recipe["pooling"] == "mean_std" and recipe["identity"] == rep.identity()


def test_batched_features_equal_single_item_features(genre_dir, tmp_path):
    spec = get_task("genre")
    big = extract_split(MFCC(), spec, genre_dir, "valid", _fcfg(batch_seconds=100.0), tmp_path / "a",
                        progress=False, log=lambda m: None)
    one = extract_split(MFCC(), spec, genre_dir, "valid", _fcfg(batch_seconds=0.5), tmp_path / "b",
                        progress=False, log=lambda m: None)
    np.testing.assert_allclose(big.x.astype(np.float32), one.x.astype(np.float32), rtol=1e-3, atol=1e-3)


def test_mert_adapter_padding_correct():
    import torch

    from benchmark.representations import MertRepresentation
    from mert import build_model

    torch.manual_seed(0)
    rep = MertRepresentation(build_model("debug"), "random:debug", "debug")
    assert rep.num_layers == rep.model.num_layers + 1 and len(rep.identity()) == 16
    wav = torch.randn(2, 24000) * 0.1
    layers, n = rep(wav, torch.tensor([24000, 12000]))
    alone, n1 = rep(wav[1:, :12000], torch.tensor([12000]))
    assert int(n[1]) == int(n1[0])
    for a, b in zip(layers, alone):
        torch.testing.assert_close(a[1, : n[1]], b[0], atol=1e-4, rtol=1e-4)


def test_unreadable_and_silent_files_are_skipped_with_reasons(tmp_path):
    from mert.audio import write_audio
    from tasks.format import read_split

    spec = get_task("genre")
    root = make_prepared(spec, tmp_path / "g", n={"train": 40, "valid": 4, "test": 4}, seconds=0.5)
    items = read_split(root, "train")
    (root / items[3].audio).write_bytes(b"not audio")
    write_audio(root / items[7].audio, np.zeros(12000, np.float32), 24000)
    f = extract_split(MFCC(), spec, root, "train", _fcfg(), tmp_path / "c", progress=False, log=lambda m: None)
    reasons = {d["id"]: d["reason"] for d in f.skipped}
    assert set(reasons) == {items[3].id, items[7].id}
    assert reasons[items[3].id].startswith("unreadable") and reasons[items[7].id].startswith("silent")
    assert f.x.shape[0] == 38 and 3 not in f.owner and 7 not in f.owner
    # 2 of 40 = 5% is allowed; a third bad file (7.5%) fails the run, listing the files
    (root / items[9].audio).write_bytes(b"")
    with pytest.raises(ExtractionError, match=r"3 of 40 items skipped[\s\S]*" + items[9].id):
        extract_split(MFCC(), spec, root, "train", _fcfg(), tmp_path / "d", progress=False, log=lambda m: None)


def test_window_segments_policy():
    key = get_task("key")  # 30 s windows
    fcfg = _fcfg()
    sr = 100
    assert _segments(20 * sr, sr, key, fcfg) == [(0, 2000)]             # shorter than a window: one window
    assert _segments(80 * sr, sr, key, fcfg) == [(0, 3000), (3000, 6000), (5000, 8000)]  # tail >= half
    assert _segments(64 * sr, sr, key, fcfg) == [(0, 3000), (3000, 6000)]  # tail < half: dropped
    clip = get_task("genre")
    assert _segments(65 * sr, sr, clip, fcfg) == [(0, 3000), (3000, 6000), (6000, 6500)]
    assert _segments(int(60.5 * sr), sr, clip, fcfg) == [(0, 3000), (3000, 6050)]  # < 1 s tail merged


def test_pooling_suffix_is_its_own_representation(genre_dir, tmp_path):
    """NAME+POOLING: same network, other clip pooling, its own name (so its own cache entry and result row)."""
    from benchmark.registry import load_representation

    def feats(name):
        return extract_split(load_representation(name), get_task("genre"), genre_dir, "valid", _fcfg(), tmp_path,
                             progress=False, log=lambda m: None).x.astype(np.float32)

    mfcc, mfcc_mean = feats("mfcc"), feats("mfcc+mean")  # the baseline's own pooling is mean + std
    assert mfcc.shape == (4, 1, 120) and mfcc_mean.shape == (4, 1, 60)
    np.testing.assert_array_equal(mfcc_mean, mfcc[..., :60])
    rand, rand_ms = feats("random:debug"), feats("random:debug+mean_std")  # MERT's own pooling is the mean
    assert rand_ms.shape == (*rand.shape[:2], 2 * rand.shape[2])
    np.testing.assert_array_equal(rand_ms[..., :rand.shape[2]], rand)
    assert rand_ms[..., rand.shape[2]:].min() >= 0 and rand_ms[..., rand.shape[2]:].max() > 0  # the std half
    recipes = [json.loads(p.read_text()) for p in tmp_path.glob("genre/*/recipe.json")]
    assert sorted((r["representation"], r["pooling"]) for r in recipes) == [
        ("mfcc", "mean_std"), ("mfcc+mean", "mean"), ("random:debug", "mean"), ("random:debug+mean_std", "mean_std")]
