"""Successive halving of the probe sweep (probe.prune=halving) and the unchanged default (probe.prune=none)."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from benchmark.config import config_hash, resolve_config, to_dict
from benchmark.features import SplitFeatures
from benchmark.heads import make_head
from benchmark.probes import halving_keep, make_members, prune_settings, summarize, train_sweep
from tasks import get_task
from tasks.format import Item


def _split(name, n, rng, informative_layer=1):
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 3, 8)).astype(np.float32)
    x[np.arange(n), informative_layer, y] += 3.0  # only layer 1 knows the class
    items = [Item(id=f"{name}{i}", audio="x.flac", target=f"c{y[i]}") for i in range(n)]
    return SplitFeatures(split=name, x=x.astype(np.float16), owner=np.arange(n), times=None, items=items)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    spec = get_task("genre")
    head = make_head(spec, ["c0", "c1", "c2"], resolve_config(spec))
    data = {s: head.prepare(_split(s, n, rng)) for s, n in (("train", 192), ("valid", 60), ("test", 60))}
    return spec, head, data


def _sweep(problem, overrides, seeds=(0,), callback=None):
    spec, head, data = problem
    cfg = resolve_config(spec, overrides=["probe.lrs=[1e-4,1e-3,1e-2]"] + overrides)
    res = train_sweep(head, data["train"], data["valid"], data["test"], cfg.probe, [0, 1, 2], list(seeds),
                      epoch_callback=callback)
    return res, summarize(res, spec)


def test_halving_keep_ranks_and_protects():
    best = np.array([0.9, 0.1, 0.5, 0.2, 0.8, 0.3, 0.7, 0.4])
    active = np.array([True] * 7 + [False])
    groups = ["a", "a", "b", "b", "c", "c", "d", "d"]
    # plain halving: the best ceil(7 / 2) = 4 of the active members; the inactive one never comes back
    keep = halving_keep(best, active, groups, 2.0, 0)
    assert keep.tolist() == [True, False, True, False, True, False, True, False]
    # eta 4: ceil(7 / 4) = 2 -> the best two only ...
    assert np.nonzero(halving_keep(best, active, groups, 4.0, 0))[0].tolist() == [0, 4]
    # ... unless every group keeps its best member (group d's best active member is 6)
    assert np.nonzero(halving_keep(best, active, groups, 4.0, 1))[0].tolist() == [0, 2, 4, 6]
    # the current best always survives, however few are kept; ties go to the lower member index
    assert np.nonzero(halving_keep(np.array([0.5, 0.5, 0.1]), np.ones(3, bool), ["x"] * 3, 10.0, 0))[0].tolist() == [0]
    # failed scores (-inf) rank last
    assert np.nonzero(halving_keep(np.array([-np.inf, 0.2, 0.1]), np.ones(3, bool), ["x", "y", "z"], 3.0, 0))[0].tolist() == [1]


def test_prune_settings_validate_with_the_key_named():
    spec = get_task("genre")
    assert prune_settings(resolve_config(spec).probe) is None
    h = prune_settings(resolve_config(spec, overrides=["probe.prune=halving", "probe.prune_rungs=[8,2]"]).probe)
    assert h.rungs == [2, 8] and h.eta == 2.0 and h.keep_per_layer == 1
    for bad, key in ((["probe.prune=fast"], "probe.prune="), (["probe.prune=halving", "probe.prune_eta=1"], "prune_eta"),
                     (["probe.prune=halving", "probe.prune_rungs=[0]"], "prune_rungs"),
                     (["probe.prune=halving", "probe.prune_keep_per_layer=-1"], "prune_keep_per_layer")):
        with pytest.raises(ValueError, match=key):
            prune_settings(resolve_config(spec, overrides=bad).probe)


def test_halving_drops_members_at_the_rungs_and_keeps_the_best(problem):
    alive_per_epoch, best_at_rung = [], {}

    def cb(seed, epoch, score, members):
        alive_per_epoch.append(int(np.isfinite(score).sum()))
        if epoch + 1 in (2, 4):
            best_at_rung[epoch + 1] = int(np.argmax(score))

    # no early stopping in 6 epochs: only the rungs (after epochs 2 and 4) remove members
    res, summ = _sweep(problem, ["probe.prune=halving", "probe.prune_rungs=[2,4]", "probe.max_epochs=6",
                                 "probe.patience=20"], callback=cb)
    M = len(res.members)
    assert M == 3 * 3 + 3
    groups = len({m.layer_key for m in res.members})  # 3 layers + the weighted sum
    after1 = math.ceil(M / 2)
    after2 = max(math.ceil(after1 / 2), groups)
    assert alive_per_epoch == [M, M, after1, after1, after2, after2]
    assert res.member_epochs == [2 * M + 2 * after1 + 2 * after2]
    pruned = res.pruned_at[0]
    assert sorted(p for p in pruned if p is not None) == [2] * (M - after1) + [4] * (after1 - after2)
    # a rung never prunes the member leading at that rung, and every layer keeps a member to the end
    for rung, i in best_at_rung.items():
        assert pruned[i] is None or pruned[i] > rung
    survivors = {res.members[i].layer_key for i in range(M) if pruned[i] is None}
    assert survivors == {"0", "1", "2", "weighted"}
    # pruned members keep their best-so-far state: scored on validation and test, marked in the grid rows
    for i, row in enumerate(summ["grid"]):
        assert row["pruned_at_epoch"] == [pruned[i]]
        assert 0.0 <= row["test"]["accuracy"] <= 1.0 and np.isfinite(row["valid_main"])
        if pruned[i] is not None:
            assert row["best_epoch"][0] < pruned[i]


def test_halving_selects_what_the_full_sweep_selects(problem):
    _, full = _sweep(problem, ["probe.max_epochs=12", "probe.patience=4"])
    res, half = _sweep(problem, ["probe.max_epochs=12", "probe.patience=4", "probe.prune=halving"])
    assert any(p is not None for seed in res.pruned_at for p in seed)
    assert full["chosen"]["layer"] in ("1", "weighted")
    assert half["chosen"]["layer"] == full["chosen"]["layer"]
    assert half["chosen"]["test"]["main"] > 0.9 and abs(half["chosen"]["test"]["main"] - full["chosen"]["test"]["main"]) < 0.05
    # the chosen member is never one that halving pruned
    assert half["chosen"]["pruned_at_epoch"] == [None]
    # per-layer table: every layer (and the weighted sum) still has its row, scored from a fully trained probe
    by_layer = {r["layer"]: r for r in half["layers"]}
    assert list(by_layer) == ["0", "1", "2", "weighted"]
    assert by_layer["1"]["test"]["accuracy"] > 0.9 and by_layer["0"]["test"]["accuracy"] < 0.6
    # results schema: the same keys as the full sweep's, plus pruned_at_epoch in the per-member rows
    assert set(half) == set(full)
    assert set(half["chosen"]) == set(full["chosen"]) | {"pruned_at_epoch"}
    assert len(half["grid"]) == len(full["grid"])


def test_default_none_is_unchanged(problem):
    """prune=none: no pruning fields, the other prune_* keys do nothing, and the config hash is the one
    computed before the keys existed (existing results are not rerun by --overwrite only-missing)."""
    res, summ = _sweep(problem, ["probe.max_epochs=4"])
    res2, summ2 = _sweep(problem, ["probe.max_epochs=4", "probe.prune_eta=3", "probe.prune_rungs=[1]",
                                   "probe.prune_keep_per_layer=0"])
    assert res.pruned_at == [] and all("pruned_at_epoch" not in r for r in summ["grid"])
    assert json.dumps(summ, sort_keys=True) == json.dumps(summ2, sort_keys=True)
    assert res.member_epochs == [4 * len(res.members)]

    spec = get_task("genre")
    d = to_dict(resolve_config(spec))
    assert d["probe"]["prune"] == "none"
    # the probe section as results written before the prune keys existed hold it (with probe.eval_batch_rows,
    # retired since: benchmark.config.RETIRED)
    later = ("plateau_mode", "plateau_threshold", "weighted_layers", "key_ensemble")  # neutral keys added since
    assert (d["probe"]["plateau_mode"], d["probe"]["weighted_layers"], d["probe"]["key_ensemble"]) == \
        ("halving", "all", "mean_logits")  # at their neutral values here
    old_probe = {**{k: v for k, v in d["probe"].items() if not k.startswith("prune") and k not in later},
                 "eval_batch_rows": 8192}
    old_features = {k: v for k, v in d["features"].items() if not (k == "window_tail" and v == "overlap")}
    old = {"config": {**d, "probe": old_probe, "features": old_features}, "representation": "mfcc"}
    old_hash = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert config_hash({"config": d, "representation": "mfcc"}) == old_hash
    assert config_hash(old) == old_hash
    halving = to_dict(resolve_config(spec, overrides=["probe.prune=halving"]))
    assert config_hash({"config": halving, "representation": "mfcc"}) != old_hash
    h2 = to_dict(resolve_config(spec, overrides=["probe.prune=halving", "probe.prune_eta=3"]))
    assert config_hash({"config": h2, "representation": "mfcc"}) != config_hash({"config": halving,
                                                                                  "representation": "mfcc"})


def test_make_members_grid_size():
    assert len(make_members(list(range(13)), [5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2], True)) == 84
