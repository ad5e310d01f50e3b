"""The batched probe sweep: per-member Adam equals torch's Adam, members are independent, selection works."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.config import resolve_config
from benchmark.features import SplitFeatures
from benchmark.heads import make_head
from benchmark.probes import BatchedAdam, BatchedMLP, Member, summarize, train_sweep
from tasks import get_task
from tasks.format import Item


def test_batched_adam_matches_torch_adam_per_member():
    torch.manual_seed(0)
    lrs = [1e-3, 1e-2, 0.0]
    p = {"w": torch.randn(3, 4, 5, requires_grad=True)}
    ref = [torch.nn.Parameter(p["w"][m].detach().clone()) for m in range(3)]
    opt = BatchedAdam(p, lrs)
    ref_opts = [torch.optim.Adam([ref[m]], lr=lrs[m]) for m in range(3)]
    for step in range(5):
        x = torch.randn(4)
        torch.einsum("mij,i->", p["w"] ** 2, x).backward()
        opt.step()
        for m in range(3):
            ref_opts[m].zero_grad()
            torch.einsum("ij,i->", ref[m] ** 2, x).backward()
            ref_opts[m].step()
    for m in range(3):
        torch.testing.assert_close(p["w"][m].detach(), ref[m].detach(), atol=1e-6, rtol=1e-5)
    assert torch.equal(p["w"][2].detach(), ref[2].detach())  # lr 0: frozen


def test_members_do_not_interact():
    """A member's gradient is its own: changing another member's weights leaves it unchanged."""
    torch.manual_seed(0)
    members = [Member(0, 1e-3), Member(1, 1e-3), Member(None, 1e-3)]
    model = BatchedMLP(members, 2, 6, 8, 3, 0.0, {0: 0, 1: 1})
    x = torch.randn(5, 2, 6)
    out = model.forward(x, train=False)
    with torch.no_grad():
        model.params["W1"][1] += 1.0
    out2 = model.forward(x, train=False)
    torch.testing.assert_close(out[0], out2[0])
    assert not torch.allclose(out[1], out2[1])
    # the single-layer member sees only its layer
    ref = torch.relu(x[:, 0] @ model.params["W1"][0] + model.params["b1"][0]) @ model.params["W2"][0] + model.params["b2"][0]
    torch.testing.assert_close(out[0], ref.detach())


def _split(name, n, rng, informative_layer=1):
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 3, 8)).astype(np.float32)
    x[np.arange(n), informative_layer, y] += 3.0  # only layer 1 knows the class
    items = [Item(id=f"{name}{i}", audio="x.flac", target=f"c{y[i]}") for i in range(n)]
    return SplitFeatures(split=name, x=x.astype(np.float16), owner=np.arange(n), times=None, items=items)


def test_sweep_learns_and_selects_the_informative_layer():
    rng = np.random.default_rng(0)
    spec = get_task("genre")
    cfg = resolve_config(spec, overrides=["probe.lrs=[1e-3,1e-2]", "probe.max_epochs=15", "probe.patience=4"])
    head = make_head(spec, ["c0", "c1", "c2"], cfg)
    data = {s: head.prepare(_split(s, n, rng)) for s, n in (("train", 192), ("valid", 60), ("test", 60))}
    res = train_sweep(head, data["train"], data["valid"], data["test"], cfg.probe, [0, 1, 2], [0, 1])
    assert len(res.members) == 3 * 2 + 2 and len(res.valid) == 2
    summ = summarize(res, spec)
    by_layer = {row["layer"]: row for row in summ["layers"]}
    assert by_layer["1"]["test"]["accuracy"] > 0.9
    assert by_layer["0"]["test"]["accuracy"] < 0.6 and by_layer["2"]["test"]["accuracy"] < 0.6
    assert summ["chosen"]["layer"] in ("1", "weighted") and summ["chosen"]["test"]["main"] > 0.9
    # the weighted sum learns to put its weight on layer 1
    assert np.argmax(res.layer_weights[0]) == 1
    # early stopping: the best state is scored, not the last epoch's
    assert all(e <= r for seed_e, r in zip(res.best_epoch, res.epochs_run) for e in seed_e)


def test_regression_head_standardises_targets():
    spec = get_task("emotion")
    cfg = resolve_config(spec)
    head = make_head(spec, ["arousal", "valence"], cfg)
    items = [Item(id=str(i), audio="a", target=[10.0 * i, -i]) for i in range(4)]
    y = head.item_targets(items)
    head.set_train_stats(y)
    feats = SplitFeatures("train", np.zeros((4, 1, 2), np.float16), np.arange(4), None, items)
    rows = head.prepare(feats)["y_rows"]
    assert rows.mean(0).abs().max() < 1e-5 and torch.allclose(rows.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    with pytest.raises(ValueError, match="must be 2 numbers"):
        head.item_targets([Item(id="bad", audio="a", target=[1.0])])


def test_fused_relu_dropout_matches_relu_then_inverted_dropout():
    from benchmark.probes import _relu_dropout

    torch.manual_seed(0)
    z = torch.randn(4, 512, 256, requires_grad=True)
    h = _relu_dropout().apply(z, 0.2)
    kept = h != 0
    # kept units are z / (1 - p); every dropped or negative unit is 0
    assert torch.allclose(h[kept], z.detach()[kept] / 0.8)
    assert not bool(kept[z.detach() <= 0].any())
    # each positive unit survives with probability 1 - p (n ~ 262k: 5 standard deviations is 0.004)
    frac = float(kept[z.detach() > 0].float().mean())
    assert abs(frac - 0.8) < 0.005
    # the backward reuses the forward's mask: d(sum h * g)/dz = g * mask
    g = torch.randn_like(h)
    (h * g).sum().backward()
    mask = kept.float() / 0.8
    assert torch.allclose(z.grad, g * mask)
    # same expectation as F.relu: E[h] = relu(z)
    zs = torch.full((200_000,), 0.7)
    assert abs(float(_relu_dropout().apply(zs, 0.2).mean()) - 0.7) < 0.01
    # eval mode is a plain ReLU, no randomness
    m = BatchedMLP([Member(0, 1e-3)], 1, 8, 16, 2, 0.2, {0: 0})
    x = torch.randn(5, 1, 8)
    assert torch.equal(m.forward(x, train=False), m.forward(x, train=False))
