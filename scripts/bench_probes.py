"""Cost of the batched probe sweep against one probe trained the plain way, on the same cached features.

    python scripts/bench_probes.py [--device cuda] [--rows 2000] [--dim 768] [--layers 13] [--epochs 10]

Both train for the same number of epochs (early stopping off) on the same float16 feature matrix
[rows, layers, dim] (a 10-class problem whose signal sits in one layer): the reference is one
nn.Sequential MLP (D -> 512 -> C) on one layer at one lr with torch.optim.Adam, batch 64, validated every
epoch; the sweep is every layer x the 6 learning rates of the full grid + the weighted sum of layers
(84 probes for 13 layers) in one batched model, validated every epoch, best states scored at the end.
Prints both times and their ratio (goal: <= 3) and writes results/perf/probe_sweep.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_features(rows, layers, dim, classes, seed=0):
    from benchmark.features import SplitFeatures
    from tasks.format import Item

    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    x = rng.standard_normal((rows, layers, dim)).astype(np.float32)
    x[np.arange(rows), layers // 2, y] += 2.0
    items = [Item(id=str(i), audio="-", target=str(int(c))) for i, c in enumerate(y)]
    return SplitFeatures(split="x", x=x.astype(np.float16), owner=np.arange(rows), times=None, items=items)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--valid-rows", type=int, default=500)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "results" / "perf" / "probe_sweep.json"))
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from benchmark.config import FULL_LRS, resolve_config
    from benchmark.heads import make_head
    from benchmark.probes import train_plain_probe, train_sweep
    from tasks import get_task

    spec = get_task("genre")
    labels = [str(i) for i in range(args.classes)]
    cfg = resolve_config(spec, overrides=[f"probe.max_epochs={args.epochs}", f"probe.min_epochs={args.epochs}",
                                          f"probe.patience={args.epochs + 1}"])
    head = make_head(spec, labels, cfg)
    train = head.prepare(make_features(args.rows, args.layers, args.dim, args.classes, 0))
    valid = head.prepare(make_features(args.valid_rows, args.layers, args.dim, args.classes, 1))

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    # warm-up (allocator, kernels) for both paths
    train_plain_probe(train["feats"].x[:256], train["y_rows"][:256], valid["feats"].x[:64], head,
                      head.prepare(make_features(64, args.layers, args.dim, args.classes, 1)), 0, 1e-3, 1, cfg.probe)

    sync()
    t0 = time.perf_counter()
    if args.device == "cpu":
        train_plain_probe(train["feats"].x, train["y_rows"], valid["feats"].x, head, valid, args.layers // 2, 1e-3,
                          args.epochs, cfg.probe)
    else:
        _plain_on_device(train, valid, head, args, cfg, torch)
    sync()
    plain_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = train_sweep(head, train, valid, None, cfg.probe, list(range(args.layers)), [0], device=args.device)
    sync()
    sweep_s = time.perf_counter() - t0
    ratio = sweep_s / plain_s
    n = len(res.members)
    best = max(v["main"] for v in res.valid[0])
    out = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(0),
        "threads": torch.get_num_threads(), "rows": args.rows, "valid_rows": args.valid_rows, "dim": args.dim,
        "layers": args.layers, "lrs": FULL_LRS, "members": n, "epochs": args.epochs, "plain_probe_s": round(plain_s, 3),
        "sweep_s": round(sweep_s, 3), "ratio": round(ratio, 3), "per_probe_ratio": round(ratio / n, 4),
        "sweep_best_valid_accuracy": round(best, 4), "goal": "ratio <= 3", "python": platform.python_version(),
        "torch": torch.__version__,
    }
    print(json.dumps(out, indent=1))
    print(f"plain probe (1 layer x 1 lr): {plain_s:.2f} s; sweep ({args.layers} layers x {len(FULL_LRS)} lrs + "
          f"weighted = {n} probes): {sweep_s:.2f} s; ratio {ratio:.2f} ({ratio / n:.3f} per probe)")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing[out["device"] + f" ({out['threads']} threads)" if args.device == "cpu" else out["device"]] = out
    path.write_text(json.dumps(existing, indent=1, sort_keys=True) + "\n")
    return 0


def _plain_on_device(train, valid, head, args, cfg, torch):
    """The plain reference on a GPU: nn.Sequential + torch.optim.Adam, features moved per batch as the sweep."""
    from benchmark.probes import Standardizer, unit_outputs

    dev = args.device
    layer = args.layers // 2
    std = Standardizer(train["feats"].x, [layer])
    net = torch.nn.Sequential(torch.nn.Linear(args.dim, 512), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(512, head.out_dim())).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x, y = train["feats"].x, train["y_rows"]
    for _ in range(args.epochs):
        net.train()
        perm = rng.permutation(len(x))
        for i in range(0, len(perm), 64):
            idx = np.sort(perm[i:i + 64])
            loss = head.loss(net(std(x[idx], dev)[:, 0])[None], y[idx].to(dev)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            rows = net(std(valid["feats"].x, dev)[:, 0])[None].cpu()
        head.fast_scores(unit_outputs(head, rows, valid), valid)


if __name__ == "__main__":
    sys.exit(main())
