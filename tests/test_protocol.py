"""MARBLE v1's protocol as the real-data default (docs/protocol.md): the lr plateau rule equals torch's
ReduceLROnPlateau, the weighted sum over the transformer layers, the key clip ensembling chosen on validation,
the real readers' excerpts, MARBLE's per-task schedule; the embedded defaults hash as before; a checkpoint
config without a sample rate is never read silently; the tiny corpus gets a small separation budget."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.config import (DATA_TASK_DEFAULTS, config_hash, resolve_config, to_dict)
from benchmark.features import SplitFeatures
from benchmark.heads import KeyHead, make_head
from benchmark.probes import (summarize, torch_plateau_step, train_sweep, weighted_positions,
                              _halve_lr_on_plateau)
from tasks import all_tasks, get_task
from tasks.format import Item


# ------------------------------------------------------------------------------------------ lr plateau
def _fake_sweep(n: int, patience: int, factor: float = 0.5, mode: str = "torch", threshold: float = 1e-4):
    pcfg = SimpleNamespace(plateau_mode=mode, plateau_patience=patience, plateau_factor=factor,
                           plateau_threshold=threshold)
    sweep = SimpleNamespace(pcfg=pcfg, device="cpu", members=list(range(n)))
    return sweep


def _fake_run(lrs):
    n = len(lrs)
    return SimpleNamespace(active=np.ones(n, dtype=bool), alive=np.arange(n), since=np.zeros(n, dtype=int),
                           opt=SimpleNamespace(lr=torch.tensor(lrs, dtype=torch.float32)),
                           plateau_best=None, plateau_bad=None)


# per member: a scripted validation score per epoch. Plateaus, improvements inside and outside the relative
# threshold 1e-4, negative scores (R2), a failed score (NaN, ours -inf), and a plateau long enough for the lr to
# shrink below torch's eps (no further reduction)
SEQUENCES = [
    [0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.21, 0.21, 0.21, 0.21, 0.21, 0.3, 0.3],
    [0.5, 0.50001, 0.50002, 0.50003, 0.50004, 0.50004, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7],
    [-0.5, -0.50004, -0.50004, -0.6, -0.7, -0.8, -0.2, -0.2, -0.2, -0.2, -0.2, -0.1, -0.1, -0.1],
    [0.3, float("nan"), 0.3, 0.29, 0.31, 0.31, 0.31, float("nan"), 0.31, 0.31, 0.31, 0.31, 0.31, 0.31],
    [0.9] * 14,
]


@pytest.mark.parametrize("patience", [0, 1, 3, 5])
def test_torch_plateau_step_matches_reduce_lr_on_plateau(patience):
    lrs = [1e-3, 5e-3, 1e-2, 1e-4, 3e-8]  # the last one: reductions of at most eps (1e-8) are not applied
    sweep, run = _fake_sweep(len(lrs), patience), _fake_run(lrs)
    refs = []
    for lr in lrs:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
        refs.append((opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                                     patience=patience)))
    for epoch in range(len(SEQUENCES[0])):
        raw = np.array([seq[epoch] for seq in SEQUENCES])
        score = np.where(np.isfinite(raw), raw, -np.inf)  # benchmark.probes scores a failed member -inf
        _halve_lr_on_plateau(sweep, run, score)
        for (opt, sched), s in zip(refs, raw):
            sched.step(float(s))
        want = [opt.param_groups[0]["lr"] for opt, _ in refs]
        np.testing.assert_allclose(run.opt.lr.numpy(), want, rtol=1e-6, err_msg=f"epoch {epoch}")
    assert (run.opt.lr.numpy() < np.array(lrs, dtype=np.float32)).sum() >= 2  # the sequences do reduce


def test_halving_mode_is_ours_unchanged():
    """plateau_mode=halving: the lr is halved every plateau_patience epochs of the early-stopping count."""
    sweep, run = _fake_sweep(2, 3, mode="halving"), _fake_run([1e-3, 1e-3])
    lrs = []
    for since in range(1, 8):
        run.since[:] = [since, 0]
        _halve_lr_on_plateau(sweep, run, np.zeros(2))
        lrs.append(float(run.opt.lr[0]))
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 2.5e-4, 2.5e-4], rtol=1e-6)
    assert float(run.opt.lr[1]) == pytest.approx(1e-3)


def test_torch_plateau_only_touches_active_members_and_survives_compaction():
    sweep, run = _fake_sweep(3, 0), _fake_run([1e-3, 1e-3, 1e-3])
    run.active[1] = False
    _halve_lr_on_plateau(sweep, run, np.array([0.5, 0.5, 0.5]))
    _halve_lr_on_plateau(sweep, run, np.array([0.5, 0.5, 0.5]))  # a bad epoch each: patience 0 -> reduce
    np.testing.assert_allclose(run.opt.lr.numpy(), [5e-4, 1e-3, 5e-4], rtol=1e-6)
    # member 1 dropped from the batched model: the optimiser holds members 0 and 2 only
    run.alive = np.array([0, 2])
    run.opt.lr = run.opt.lr[[0, 2]].clone()
    _halve_lr_on_plateau(sweep, run, np.array([0.5, -np.inf, 0.6]))
    np.testing.assert_allclose(run.opt.lr.numpy(), [2.5e-4, 5e-4], rtol=1e-6)


# ----------------------------------------------------------------------------------------- config layers
MARBLE_SCHEDULE = {  # task -> (earlystop_patience, lr_scheduler_patience, max_epochs), *_base_config.yaml
    "tagging": (10, 3, 100), "key": (20, 5, 100), "genre": (20, 6, 100), "emotion": (20, 5, 100),
    "instrument": (10, 3, 50), "pitch": (10, 3, 50), "singer": (20, 5, 100), "technique": (10, 5, 100),
    "mtg-instrument": (10, 3, 100), "mtg-mood": (10, 3, 100), "mtg-genre": (10, 3, 100), "mtg-top50": (10, 3, 100),
}


def test_real_defaults_are_marbles_per_task_schedule():
    for task, (early, lr_pat, epochs) in MARBLE_SCHEDULE.items():
        p = resolve_config(get_task(task), data="real").probe
        assert (p.patience, p.plateau_patience, p.max_epochs) == (early, lr_pat, epochs), task
        assert (p.plateau_mode, p.plateau_factor, p.plateau_threshold) == ("torch", 0.5, 1e-4)
        assert p.weighted_layers == "transformer"
        assert p.key_ensemble == ("select" if task == "key" else "mean_logits")
    beat = resolve_config(get_task("beat"), data="real").probe
    assert (beat.patience, beat.plateau_patience) == (20, 6)
    assert set(DATA_TASK_DEFAULTS["real"]) == {s.name for s in all_tasks()} - {"separation"}
    for t in ("genre", "key", "separation"):
        assert resolve_config(get_task(t), data="real").features.precision == "fp32"  # never bf16 by default


def test_embedded_defaults_keep_their_config_hash():
    """The new keys are hash-neutral at the embedded defaults: a config without them hashes the same, and the
    embedded probe section is what it was."""
    for spec in all_tasks():
        cfg = to_dict(resolve_config(spec, data="embedded"))
        p = cfg["probe"]
        assert (p["plateau_mode"], p["weighted_layers"], p["key_ensemble"]) == ("halving", "all", "mean_logits")
        assert (p["patience"], p["plateau_patience"], p["plateau_factor"]) == (10, 3, 0.5)
        old = json.loads(json.dumps(cfg))
        for k in ("plateau_mode", "plateau_threshold", "weighted_layers", "key_ensemble"):
            del old["probe"][k]
        ident = {"representation": "x", "task": spec.key}
        assert config_hash({"config": cfg, **ident}) == config_hash({"config": old, **ident})
    # a non-default value is part of the hash
    real = to_dict(resolve_config(get_task("genre"), data="embedded", overrides=["probe.plateau_mode=torch"]))
    assert config_hash({"config": real}) != config_hash({"config": to_dict(resolve_config(get_task("genre"),
                                                                                             data="embedded"))})


def test_real_separation_probe_is_marbles():
    """MUSDB18_prober.py / MUSDB18_dataset.py / MUSDB18_base_config.yaml of MARBLE v1: a 3 x 512 unidirectional
    LSTM per stem on the features alone, STFT 2048 / 320, 6 s segments, every track 64 times an epoch in batches
    of 64, Adam 1e-3, lr halved after 3 epochs without gain, early stopping after 10, at most 100 epochs, one EM
    iteration of the residual Wiener filter."""
    sc = resolve_config(get_task("separation"), data="real").separation
    assert (sc.hidden, sc.num_layers, sc.n_fft, sc.hop, sc.segment_s) == (512, 3, 2048, 320, 6.0)
    assert (sc.samples_per_track, sc.steps_per_epoch, sc.batch_size, sc.lr) == (64, 0, 64, 1e-3)
    assert (sc.plateau_patience, sc.plateau_factor, sc.patience, sc.max_epochs) == (3, 0.5, 10, 100)
    assert (sc.joint, sc.wiener_iterations, sc.spectral_input, sc.layer) == (False, 1, False, "weighted")


def test_tiny_corpus_gets_a_small_separation_budget():
    sep = get_task("separation")
    tiny = resolve_config(sep, data="embedded", size="tiny").separation
    std = resolve_config(sep, data="embedded", size="standard").separation
    assert tiny.max_epochs * tiny.steps_per_epoch <= 20 < std.max_epochs * std.steps_per_epoch
    assert (std.hidden, std.num_layers, std.max_epochs, std.steps_per_epoch, std.joint) == (128, 2, 20, 25, True)
    # only the separation section: every other task's config is the standard one
    for spec in all_tasks():
        if spec.name != "separation":
            a = to_dict(resolve_config(spec, data="embedded", size="tiny"))
            b = to_dict(resolve_config(spec, data="embedded"))
            assert {k: v for k, v in a.items() if k != "separation"} == {k: v for k, v in b.items()
                                                                          if k != "separation"}


# ------------------------------------------------------------------------------------------ weighted sum
def _split(name, n, rng, informative=(1,), layers=3):
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, layers, 8)).astype(np.float32)
    for l in informative:
        x[np.arange(n), l, y] += 3.0
    items = [Item(id=f"{name}{i}", audio="x.flac", target=f"c{y[i]}") for i in range(n)]
    return SplitFeatures(split=name, x=x.astype(np.float16), owner=np.arange(n), times=None, items=items)


def test_weighted_positions():
    assert weighted_positions([0, 1, 2], "all") is None
    assert weighted_positions([0, 1, 2], "transformer") == [False, True, True]
    assert weighted_positions([3, 5], "transformer") == [True, True]
    with pytest.raises(ValueError, match="weighted_layers"):
        weighted_positions([0, 1], "cnn")


def test_transformer_weighted_sum_leaves_layer_0_out():
    """Layer 0 alone carries the class: the transformer-only weighted sum cannot use it (weight exactly 0), the
    all-layer one puts its weight there."""
    rng = np.random.default_rng(0)
    spec = get_task("genre")
    data = {s: _split(s, n, rng, informative=(0,)) for s, n in (("train", 192), ("valid", 60), ("test", 60))}
    out = {}
    for mode in ("all", "transformer"):
        cfg = resolve_config(spec, overrides=["probe.lrs=[1e-2]", "probe.max_epochs=12", "probe.patience=4",
                                              f"probe.weighted_layers={mode}"])
        head = make_head(spec, ["c0", "c1", "c2"], cfg)
        d = {s: head.prepare(f) for s, f in data.items()}
        res = train_sweep(head, d["train"], d["valid"], d["test"], cfg.probe, [0, 1, 2], [0])
        out[mode] = (res, {r["layer"]: r for r in summarize(res, spec)["layers"]})
    w_all, w_tr = out["all"][0].layer_weights[0], out["transformer"][0].layer_weights[0]
    assert np.argmax(w_all) == 0 and w_tr[0] == 0.0 and sum(w_tr) == pytest.approx(1.0)
    acc = {m: out[m][1]["weighted"]["test"]["accuracy"] for m in out}
    assert acc["transformer"] < 0.5 < acc["all"], acc  # chance is 1/3
    # with two probed layers and layer 0 among them, the transformer sum would be one layer: no weighted member
    cfg = resolve_config(spec, overrides=["probe.lrs=[1e-2]", "probe.max_epochs=1", "probe.weighted_layers=transformer"])
    head = make_head(spec, ["c0", "c1", "c2"], cfg)
    d = {s: head.prepare(f) for s, f in data.items()}
    res = train_sweep(head, d["train"], d["valid"], d["test"], cfg.probe, [0, 1], [0])
    assert all(m.layer is not None for m in res.members)


def test_torch_plateau_mode_trains_a_sweep():
    rng = np.random.default_rng(1)
    spec = get_task("genre")
    cfg = resolve_config(spec, data="real", overrides=["probe.lrs=[1e-3,1e-2]", "probe.max_epochs=8"])
    head = make_head(spec, ["c0", "c1", "c2"], cfg)
    d = {s: head.prepare(_split(s, n, rng)) for s, n in (("train", 128), ("valid", 48), ("test", 48))}
    res = train_sweep(head, d["train"], d["valid"], d["test"], cfg.probe, [0, 1, 2], [0])
    summ = summarize(res, spec)
    assert summ["chosen"]["test"]["main"] > 0.8 and res.layer_weights[0][0] == 0.0


# ----------------------------------------------------------------------------------------------- key
KEYS = get_task("key").labels


def _marble_song_preds(clip_logits: np.ndarray, song: np.ndarray) -> dict[str, list[int]]:
    """MARBLE's predict_result_ensemble (benchmark/tasks/GS/utils.py), restated with numpy: per song, vote =
    the mode of the clip argmaxes (ties: the smallest key, as scipy's mode), max = argmax of the per-key max
    logit, gmean = argmax of the mean logit, mean = argmax of the mean softmax."""
    e = np.exp(clip_logits - clip_logits.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    out = {k: [] for k in ("vote", "max", "gmean", "mean")}
    for s in range(song.max() + 1):
        rows = np.nonzero(song == s)[0]
        counts = np.bincount(clip_logits[rows].argmax(1), minlength=clip_logits.shape[1])
        out["vote"].append(int(np.flatnonzero(counts == counts.max())[0]))
        out["max"].append(int(clip_logits[rows].max(0).argmax()))
        out["gmean"].append(int(clip_logits[rows].mean(0).argmax()))
        out["mean"].append(int(probs[rows].mean(0).argmax()))
    return out


def _key_split(name, songs, clips, rng, key_of=None):
    items, owner = [], []
    for s in range(songs):
        key = KEYS[(key_of or (lambda i: i))(s) % 24]
        items.append(Item(id=f"{name}{s}", audio="x.flac", target=key, group=f"{name}{s}"))
        owner += [s] * clips
    x = rng.standard_normal((len(owner), 2, 8)).astype(np.float16)
    return SplitFeatures(split=name, x=x, owner=np.array(owner), times=None, items=items)


def test_key_strategies_match_marbles_ensembling():
    rng = np.random.default_rng(3)
    spec = get_task("key")
    cfg = resolve_config(spec, data="real")
    head = make_head(spec, KEYS, cfg)
    assert isinstance(head, KeyHead) and head.ensemble == "select"
    data = head.prepare(_key_split("valid", 7, 4, rng))
    R = len(data["song_of_row"])
    assert data["n_units"] == R and data["unit_targets"].shape == (7,)
    logits = rng.standard_normal((3, R, 24)).astype(np.float32)
    logits[0, :, 5] += 2.0  # member 0: many vote ties broken towards key 5
    preds = head.song_predictions(torch.from_numpy(logits), data["song_of_row"], 7)
    for m in range(3):
        ref = _marble_song_preds(logits[m], data["song_of_row"].numpy())
        for k in KeyHead.STRATEGIES:
            assert preds[k][m].tolist() == ref[k], (m, k)
    # the per-epoch validation score is the best strategy's
    fast = head.fast_scores(torch.from_numpy(logits), data)
    w = head.weights
    per = [[float(w[data["unit_targets"], preds[k][m]].mean()) for k in KeyHead.STRATEGIES] for m in range(3)]
    np.testing.assert_allclose(fast, np.max(per, 1), rtol=1e-6)


def test_key_select_uses_the_strategy_chosen_on_validation_for_test():
    rng = np.random.default_rng(4)
    spec = get_task("key")
    head = make_head(spec, KEYS, resolve_config(spec, data="real"))
    valid = head.prepare(_key_split("valid", 6, 3, rng))
    test = head.prepare(_key_split("test", 6, 3, rng))
    # member 0 on valid: song s has clips (argmax) [s, s, s+1] but one huge logit for s+2: vote and the means say s
    # (right), max says s+2 (wrong): vote wins (the first best); on test the same member is scored with vote even
    # where max would be right
    def member(song_keys, big):
        rows = np.full((18, 24), -5.0, dtype=np.float32)
        for s, k in enumerate(song_keys):
            for c, kk in enumerate((k, k, k + 1)):
                rows[3 * s + c, kk % 24] = 1.0
            rows[3 * s + 2, big(k) % 24] = 9.0
        return rows

    v = member(range(6), lambda k: k + 2)
    sv = head.scores(v, valid)
    assert sv["weighted_key"] == sv["weighted_key_vote"] == 1.0 and sv["weighted_key_max"] < 1.0
    choice = head.choose(v, valid)
    assert choice == {"key_strategy": "vote"}
    t = member([(k + 23) % 24 for k in range(6)], lambda k: k + 1)  # vote/means say k-1, max says k (right)
    st = head.scores_with(t, test, choice)
    assert st["weighted_key_max"] == 1.0 and st["weighted_key"] == st["weighted_key_vote"] < 1.0
    # another member: its own choice, whatever was scored before (the head keeps no state between calls)
    v2 = member(range(6), lambda k: k)  # max, vote, means all right: vote (the first best) chosen
    assert head.choose(v2, valid) == {"key_strategy": "vote"}
    v3 = member([(k + 23) % 24 for k in range(6)], lambda k: k + 1)  # on "valid" now: only max is right
    assert head.choose(v3, valid) == {"key_strategy": "max"}
    assert head.scores_with(t, test, head.choose(v3, valid))["weighted_key"] == 1.0
    assert head.scores_with(t, test, choice)["weighted_key"] == st["weighted_key"]  # the same as before


def test_key_mean_logits_is_the_embedded_default_and_unchanged():
    rng = np.random.default_rng(5)
    spec = get_task("key")
    head = make_head(spec, KEYS, resolve_config(spec, data="embedded"))
    assert head.ensemble == "mean_logits"
    data = head.prepare(_key_split("valid", 5, 3, rng))
    assert "song_of_row" not in data and data["n_units"] == 5  # units are songs, as before
    units = torch.randn(2, 5, 24)
    pred = units.argmax(-1)
    np.testing.assert_allclose(head.fast_scores(units, data),
                               head.weights[data["unit_targets"][None].expand_as(pred), pred].mean(1).numpy())
    assert set(head.scores(units[0].numpy(), data)) == {"weighted_key", "accuracy"}


def test_key_select_end_to_end_sweep():
    rng = np.random.default_rng(6)
    spec = get_task("key")
    cfg = resolve_config(spec, data="real", overrides=["probe.lrs=[1e-2]", "probe.max_epochs=3"])
    head = make_head(spec, KEYS, cfg)

    def split(name, songs):
        f = _key_split(name, songs, 3, rng, key_of=lambda i: i % 3)
        y = np.array([KEYS.index(it.target) for it in f.items])[f.owner]
        f.x[np.arange(len(y)), 1, y % 8] += 4.0
        return head.prepare(f)

    d = {s: split(s, n) for s, n in (("train", 60), ("valid", 18), ("test", 18))}
    res = train_sweep(head, d["train"], d["valid"], d["test"], cfg.probe, [0, 1], [0])
    assert all("weighted_key_gmean" in t for t in res.test[0])
    assert summarize(res, spec)["chosen"]["test"]["main"] > 0.5


# --------------------------------------------------------------------------------------------- readers
def test_giantsteps_tail_drop_ends_songs_at_the_last_full_clip(tmp_path):
    import tasks.real as real
    from tasks.format import read_split
    from tasks.real import giantsteps as gs

    from fixtures_real import make_giantsteps

    assert [gs.full_clips_end(s) for s in (29.9, 30.0, 59.99, 119.7, 120.0, 135.0)] == [0, 30, 30, 90, 120, 120]
    root = tmp_path / "GiantSteps"
    make_giantsteps(root)  # previews of 31-40 s: one full clip each
    out = real.prepare("key", root, tmp_path / "key")
    items = [it for s in ("train", "valid", "test") for it in read_split(out, s)]
    assert items and all(it.start is None and it.end == 30.0 and it.group == it.id for it in items)
    whole = real.prepare("key", root, tmp_path / "key-window", options={"tail": "window"})
    assert all(it.end is None for it in read_split(whole, "test"))
    assert real.resolve_options("key", None) == {"tail": "drop"}


def test_emomusic_takes_the_first_30_s_by_default(tmp_path):
    import tasks.real as real
    from tasks.format import read_split

    from fixtures_real import make_emomusic

    root = tmp_path / "Emomusic"
    make_emomusic(root)
    out = real.prepare("emotion", root, tmp_path / "emo")
    items = read_split(out, "test")
    assert all(it.start is None and it.end == 30.0 for it in items)
    whole = real.prepare("emotion", root, tmp_path / "emo-whole", options={"excerpt": "whole"})
    assert all(it.end is None for it in read_split(whole, "test"))
    # 6 windows of 5 s per song (MARBLE), 9 for the whole 45 s clip (the task's window policy)
    from benchmark.features import _segments

    spec, sr = get_task("emotion"), 100
    assert len(_segments(30 * sr, sr, spec, None)) == 6 and len(_segments(45 * sr, sr, spec, None)) == 9


# ------------------------------------------------------------------------------ checkpoint sample rate
def _hf_config(**extra):
    from mert.config import get_preset

    d = get_preset("mert-v1-95m").to_hf_dict()
    del d["sample_rate"]
    d.update(extra)
    return d


def test_missing_sample_rate_comes_from_the_preprocessor_config_loudly(tmp_path, caplog):
    from mert.config import MertConfig

    (tmp_path / "config.json").write_text(json.dumps(_hf_config()))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 24000, "do_normalize": False}))
    with caplog.at_level(logging.WARNING, logger="mert.config"):
        cfg = MertConfig.from_json(tmp_path / "config.json")
    assert cfg.sample_rate == 24000 and cfg.frame_rate == 75.0
    assert "config.json has no sample_rate" in caplog.text and "preprocessor_config.json" in caplog.text
    assert "24000" in caplog.text


def test_missing_sample_rate_of_a_mert_config_is_an_error_saying_what_to_add(tmp_path):
    from mert.config import ConfigError, MertConfig

    (tmp_path / "config.json").write_text(json.dumps(_hf_config(model_type="mert_model")))
    with pytest.raises(ConfigError, match=r'config.json.*Add "sample_rate": 24000 \(MERT-v1\) or 16000'):
        MertConfig.from_json(tmp_path / "config.json")


def test_missing_sample_rate_of_a_plain_hubert_config_warns_16k(tmp_path, caplog):
    from mert.config import MertConfig

    d = {k: v for k, v in _hf_config().items() if k not in ("deepnorm", "attention_relax", "feature_extractor_cqt")}
    (tmp_path / "config.json").write_text(json.dumps(d))
    with caplog.at_level(logging.WARNING, logger="mert.config"):
        cfg = MertConfig.from_json(tmp_path / "config.json")
    assert cfg.sample_rate == 16000 and cfg.frame_rate == 50.0
    assert str(tmp_path / "config.json") in caplog.text and "assuming 16000 Hz" in caplog.text
    # a config that says its rate is read silently
    caplog.clear()
    (tmp_path / "config.json").write_text(json.dumps({**d, "sample_rate": 24000}))
    with caplog.at_level(logging.WARNING, logger="mert.config"):
        assert MertConfig.from_json(tmp_path / "config.json").sample_rate == 24000
    assert "sample_rate" not in caplog.text


def test_mtg_windows_keep_a_short_tail_on_real_data_as_marble():
    """features.window_tail: ``keep`` (MARBLE, the real default for MTG) makes the rest after the last full
    window a shorter window when it is at least 1 s; ``overlap`` (ours) is a full window ending at the end when
    the tail is at least half a window. Only ``keep`` enters the cache recipe."""
    from types import SimpleNamespace

    from benchmark.config import resolve_config
    from benchmark.features import _segments
    from tasks import get_task

    spec = get_task("mtg-genre")
    sr = 100
    real = resolve_config(spec, data="real").features
    emb = resolve_config(spec, data="embedded").features
    assert real.window_tail == "keep" and emb.window_tail == "overlap"
    win = int(spec.window_s * sr)
    n = 2 * win + 20 * sr  # two windows and a 20 s tail
    assert _segments(n, sr, spec, real) == [(0, win), (win, 2 * win), (2 * win, n)]
    assert _segments(n, sr, spec, emb) == [(0, win), (win, 2 * win), (n - win, n)]
    short = 2 * win + sr // 2  # a tail under 1 s: dropped by both
    assert _segments(short, sr, spec, real) == _segments(short, sr, spec, emb) == [(0, win), (win, 2 * win)]
    assert _segments(2 * win + 5 * sr, sr, spec, real)[-1] == (2 * win, 2 * win + 5 * sr)  # 5 s: kept by MARBLE
    assert len(_segments(2 * win + 5 * sr, sr, spec, emb)) == 2  # under half a window: dropped by ours

    from benchmark.features import recipe

    rep = SimpleNamespace(name="x", identity=lambda: "i", pooling="mean", sample_rate=sr)
    meta = {"source": "s", "source_version": "v"}
    assert "window_tail" not in recipe(rep, spec, meta, "test", [], emb)
    assert recipe(rep, spec, meta, "test", [], real)["window_tail"] == "keep"


def test_a_fairseq_config_without_a_sample_rate_is_read_as_16_khz_loudly(caplog):
    from mert.checkpoints import config_from_fairseq

    with caplog.at_level("WARNING", logger="mert.checkpoints"):
        cfg = config_from_fairseq({"model": {"encoder_layers": 2}, "task": {}}, source="ckpt.pt")
    assert cfg.sample_rate == 16000
    assert "ckpt.pt" in caplog.text and "sample_rate" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mert.checkpoints"):
        cfg = config_from_fairseq({"model": {"encoder_layers": 2}, "task": {"sample_rate": 24000}}, source="x")
    assert cfg.sample_rate == 24000
    assert "sample_rate" not in caplog.text
