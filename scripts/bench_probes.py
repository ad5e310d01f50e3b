"""Cost of the batched probe sweep against one probe trained the plain way, on the same cached features, with
and without successive halving (``probe.prune``), and how often halving picks what the full sweep picks.

    python scripts/bench_probes.py [--device cuda] [--rows 1000] [--dim 768] [--layers 13] [--epochs 16]
                                   [--prune none,halving,halving-k0] [--agreement 6]
                                   [--cached-task tagging --cached-model random:mert-mini]

1. Cost (always). Every variant trains for the same number of epochs (early stopping off) on the same float16
   feature matrix [rows, layers, dim] (a 10-class problem whose signal sits in one layer): the reference is
   one nn.Sequential MLP (D -> 512 -> C) on one layer at one lr with torch.optim.Adam, batch 64, validated
   every epoch (timed 3 times, the median is used); the sweep is every layer x the 6 learning rates of the
   full grid + the weighted sum of layers (84 probes for 13 layers) in one batched model, validated every
   epoch, best states scored at the end. ``--prune`` lists the sweep variants: ``none`` (every member trains
   every epoch), ``halving`` (probe.prune=halving with the default rungs 2,4,8,16,32, eta 2, the best lr of
   every layer kept) and ``halving-k0`` (the same with probe.prune_keep_per_layer=0). Prints times, the
   ratio to the plain probe (goal: <= 3) and the member-epochs trained (a load-independent cost measure).
2. Agreement (``--agreement N``): N synthetic problems that mimic a 13-layer model (class information that
   rises and falls over depth, neighbouring layers alike, noise shared across layers), each swept with the
   protocol's early stopping by ``none`` and by each halving variant from the same seed: how often the
   chosen (layer, lr) and the chosen layer agree, the test main score of halving's choice minus none's,
   and the per-layer test curve difference.
3. A cached task (``--cached-task``): the same comparison on features already in the feature cache
   (``python -m benchmark probe`` semantics: the model is never run; a missing cache is an error).

Writes results/perf/probe_sweep.json (one entry per device and thread count; other entries kept) and
results/perf/probe_sweep.md (generated from the JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {
    "none": [],
    "halving": ["probe.prune=halving"],
    "halving-k0": ["probe.prune=halving", "probe.prune_keep_per_layer=0"],
}


def make_features(rows, layers, dim, classes, seed=0):
    """The cost benchmark's features: the class is one +2 coordinate of the middle layer, the rest is noise."""
    from benchmark.features import SplitFeatures
    from tasks.format import Item

    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    x = rng.standard_normal((rows, layers, dim)).astype(np.float32)
    x[np.arange(rows), layers // 2, y] += 2.0
    items = [Item(id=str(i), audio="-", target=str(int(c))) for i, c in enumerate(y)]
    return SplitFeatures(split="x", x=x.astype(np.float16), owner=np.arange(rows), times=None, items=items)


def make_layered_features(rows, layers, dim, classes, problem_seed, split_seed, peak_strength=0.22):
    """Features that mimic a deep model's layers: class means that drift from layer to layer (a random walk,
    so neighbouring layers are alike), class information that rises to a peak at a random middle layer and
    falls again, and noise shared across layers (a residual stream) plus noise of each layer."""
    from benchmark.features import SplitFeatures
    from tasks.format import Item

    prob = np.random.default_rng(problem_seed)
    peak = prob.uniform(layers * 0.35, layers * 0.75)
    width = prob.uniform(layers * 0.2, layers * 0.4)
    strength = peak_strength * np.exp(-0.5 * ((np.arange(layers) - peak) / width) ** 2)
    mu = np.empty((layers, classes, dim))
    mu[0] = prob.standard_normal((classes, dim))
    for l in range(1, layers):
        mu[l] = np.sqrt(0.8) * mu[l - 1] + np.sqrt(0.2) * prob.standard_normal((classes, dim))
    rng = np.random.default_rng(split_seed)
    y = rng.integers(0, classes, rows)
    shared = rng.standard_normal((rows, 1, dim))
    x = np.sqrt(0.5) * shared + np.sqrt(0.5) * rng.standard_normal((rows, layers, dim))
    x += strength[None, :, None] * mu[:, y].transpose(1, 0, 2)
    items = [Item(id=str(i), audio="-", target=str(int(c))) for i, c in enumerate(y)]
    return SplitFeatures(split="x", x=x.astype(np.float16), owner=np.arange(rows), times=None, items=items)


def loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def train_plain_probe(x_train: np.ndarray, y_train, x_valid: np.ndarray, head, valid: dict, layer: int, lr: float,
                      epochs: int, pcfg, seed: int = 0):
    """One probe trained the ordinary way (nn.Sequential + torch.optim.Adam) for a fixed number of epochs:
    the reference this script compares the batched sweep against."""
    import torch

    from benchmark.probes import Standardizer, unit_outputs

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    std = Standardizer(x_train, [layer], bool(pcfg.standardize))
    D = x_train.shape[2]
    net = torch.nn.Sequential(torch.nn.Linear(D, int(pcfg.hidden)), torch.nn.ReLU(),
                              torch.nn.Dropout(float(pcfg.dropout)), torch.nn.Linear(int(pcfg.hidden), head.out_dim()))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    bs = int(pcfg.batch_size)
    for _ in range(epochs):
        net.train()
        perm = rng.permutation(len(x_train))
        for i in range(0, len(perm), bs):
            idx = np.sort(perm[i:i + bs])
            out = net(std(x_train[idx], "cpu")[:, 0])
            loss = head.loss(out[None], y_train[idx]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            rows = net(std(x_valid, "cpu")[:, 0])[None]
        head.fast_scores(unit_outputs(head, rows, valid), valid)
    return net


def measure_cost(args, torch, spec, variants) -> dict:
    from benchmark.config import FULL_LRS, resolve_config
    from benchmark.heads import make_head
    from benchmark.probes import train_sweep

    labels = [str(i) for i in range(args.classes)]
    base = [f"probe.max_epochs={args.epochs}", f"probe.min_epochs={args.epochs}", f"probe.patience={args.epochs + 1}"]
    cfg = resolve_config(spec, overrides=base)
    head = make_head(spec, labels, cfg)
    train = head.prepare(make_features(args.rows, args.layers, args.dim, args.classes, 0))
    valid = head.prepare(make_features(args.valid_rows, args.layers, args.dim, args.classes, 1))

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    # warm-up (allocator, kernels) for both paths
    wvalid = head.prepare(make_features(64, args.layers, args.dim, args.classes, 1))
    train_plain_probe(train["feats"].x[:256], train["y_rows"][:256], wvalid["feats"].x, head, wvalid, 0, 1e-3, 1,
                      cfg.probe)
    wcfg = resolve_config(spec, overrides=["probe.max_epochs=1"])
    train_sweep(head, head.prepare(make_features(128, args.layers, args.dim, args.classes, 2)),
                head.prepare(make_features(64, args.layers, args.dim, args.classes, 3)), None, wcfg.probe,
                list(range(args.layers)), [0], device=args.device)
    plain = []
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        if args.device == "cpu":
            train_plain_probe(train["feats"].x, train["y_rows"], valid["feats"].x, head, valid, args.layers // 2,
                              1e-3, args.epochs, cfg.probe)
        else:
            _plain_on_device(train, valid, head, args, cfg, torch)
        sync()
        plain.append(time.perf_counter() - t0)
    plain_s = statistics.median(plain)
    out = {"rows": args.rows, "valid_rows": args.valid_rows, "dim": args.dim, "layers": args.layers,
           "lrs": FULL_LRS, "epochs": args.epochs, "plain_probe_s": round(plain_s, 3),
           "plain_probe_s_runs": [round(p, 3) for p in plain], "loadavg_before": loadavg(), "sweeps": {}}
    for name in variants:
        vcfg = resolve_config(spec, overrides=base + VARIANTS[name])
        sync()
        t0 = time.perf_counter()
        res = train_sweep(head, train, valid, None, vcfg.probe, list(range(args.layers)), [0], device=args.device)
        sync()
        sweep_s = time.perf_counter() - t0
        n = len(res.members)
        row = {"members": n, "sweep_s": round(sweep_s, 3), "ratio": round(sweep_s / plain_s, 3),
               "per_probe_ratio": round(sweep_s / plain_s / n, 4), "member_epochs": res.member_epochs[0],
               "member_epoch_ratio": round(res.member_epochs[0] / args.epochs, 2),
               "best_valid_accuracy": round(max(v["main"] for v in res.valid[0]), 4)}
        out["sweeps"][name] = row
        print(f"  {name}: {sweep_s:.2f} s, ratio {row['ratio']:.2f} to the plain probe ({plain_s:.2f} s), "
              f"{row['member_epochs']} member-epochs ({row['member_epoch_ratio']}x the plain probe's)", flush=True)
    out["loadavg_after"] = loadavg()
    return out


def compare(head, spec, train, valid, test, layers, overrides, variants, seed, resolve) -> dict:
    """One problem swept by every variant from the same seed: chosen config, test score, per-layer curve."""
    from benchmark.probes import summarize, train_sweep

    runs = {}
    for name in variants:
        cfg = resolve(overrides + VARIANTS[name])
        t0 = time.perf_counter()
        res = train_sweep(head, train, valid, test, cfg.probe, layers, [seed])
        s = summarize(res, spec)
        runs[name] = {
            "seconds": round(time.perf_counter() - t0, 2), "member_epochs": res.member_epochs[0],
            "epochs_run": res.epochs_run[0], "chosen": [s["chosen"]["layer"], s["chosen"]["lr"]],
            "valid_main": round(s["chosen"]["valid_main"], 4), "test_main": round(s["chosen"]["test"]["main"], 4),
            "layer_test": {r["layer"]: round(r["test"]["main"], 4) for r in s["layers"]},
            "pruned_members": sum(p is not None for p in (res.pruned_at[0] if res.pruned_at else [])),
        }
    ref = runs["none"]
    for name, r in runs.items():
        if name == "none":
            continue
        r["same_choice"] = r["chosen"] == ref["chosen"]
        r["same_layer"] = r["chosen"][0] == ref["chosen"][0]
        r["test_main_diff"] = round(r["test_main"] - ref["test_main"], 4)
        diffs = [r["layer_test"][k] - ref["layer_test"][k] for k in ref["layer_test"]]
        r["layer_curve_max_abs_diff"] = round(max(abs(d) for d in diffs), 4)
        r["layer_curve_mean_diff"] = round(float(np.mean(diffs)), 4)
        r["member_epoch_fraction"] = round(r["member_epochs"] / ref["member_epochs"], 3)
        r["time_fraction"] = round(r["seconds"] / ref["seconds"], 3)
    return runs


def aggregate(trials: list[dict], variants) -> dict:
    out = {}
    for name in variants:
        if name == "none":
            continue
        rs = [t[name] for t in trials]
        d = [r["test_main_diff"] for r in rs]
        out[name] = {
            "trials": len(rs), "same_choice": sum(r["same_choice"] for r in rs),
            "same_layer": sum(r["same_layer"] for r in rs),
            "test_main_diff_mean": round(float(np.mean(d)), 4), "test_main_diff_min": round(min(d), 4),
            "test_main_diff_max": round(max(d), 4),
            "layer_curve_max_abs_diff": round(max(r["layer_curve_max_abs_diff"] for r in rs), 4),
            "member_epoch_fraction_mean": round(float(np.mean([r["member_epoch_fraction"] for r in rs])), 3),
            "time_fraction_mean": round(float(np.mean([r["time_fraction"] for r in rs])), 3),
        }
    return out


def measure_agreement(args, spec, variants, save=None) -> dict:
    from benchmark.config import resolve_config
    from benchmark.heads import make_head

    labels = [str(i) for i in range(args.classes)]
    proto = [f"probe.max_epochs={args.agree_max_epochs}"]
    head = make_head(spec, labels, resolve_config(spec))
    trials = []
    setup = {"problems": args.agreement, "layers": args.layers, "dim": args.agree_dim, "classes": args.classes,
             "rows": {"train": args.agree_rows, "valid": args.agree_rows // 3, "test": args.agree_rows // 3},
             "probe": f"full lr grid + weighted sum, early stopping (patience 10, plateau 3), "
                      f"max_epochs {args.agree_max_epochs}"}
    for t in range(args.agreement):
        data = {s: head.prepare(make_layered_features(n, args.layers, args.agree_dim, args.classes, 100 + t, k))
                for k, (s, n) in enumerate((("train", args.agree_rows), ("valid", args.agree_rows // 3),
                                            ("test", args.agree_rows // 3)))}
        runs = compare(head, spec, data["train"], data["valid"], data["test"], list(range(args.layers)), proto,
                       variants, t, lambda ov: resolve_config(spec, overrides=ov))
        trials.append(runs)
        print(f"  trial {t}: " + "; ".join(
            f"{n} {r['chosen']} test {r['test_main']:.3f} ({r['member_epochs']} member-epochs, {r['seconds']:.0f} s)"
            for n, r in runs.items()), flush=True)
        if save is not None:  # written after every problem: a killed run keeps the finished ones
            save({"setup": dict(setup, problems=len(trials)), "summary": aggregate(trials, variants),
                  "trials": trials})
    return {"setup": dict(setup, problems=len(trials)), "summary": aggregate(trials, variants), "trials": trials}


def measure_cached(args, variants) -> dict:
    """The comparison on a task's cached features (the model is not run)."""
    from benchmark.config import resolve_config
    from benchmark.features import extract_split
    from benchmark.registry import load_representation
    from benchmark.pipeline import RunOptions, plan_task, probe_inputs
    from tasks import get_task

    spec = get_task(args.cached_task)
    rep = load_representation(args.cached_model)
    opts = RunOptions(model=args.cached_model, tasks=[spec.name], cached_only=True, progress=False,
                      leaderboard=False)
    plan = plan_task(spec, rep, opts)
    feats = {s: extract_split(rep, spec, plan.folder, s, plan.cfg.features, None, None, False, lambda *a: None,
                              cached_only=True) for s in spec.splits[:3]}
    labels = list(plan.meta.get("labels") or spec.labels)
    head, (train, valid, test), layers = probe_inputs(spec, labels, feats, plan.cfg, rep)
    runs = compare(head, spec, train, valid, test, layers, [], variants, 0,
                   lambda ov: resolve_config(spec, getattr(rep, "config_overrides", None) or None, "full", None, ov))
    for n, r in runs.items():
        print(f"  {spec.name}/{args.cached_model} {n}: {r['chosen']} test {r['test_main']:.4f} "
              f"({r['member_epochs']} member-epochs, {r['seconds']:.0f} s)", flush=True)
    return {"task": spec.name, "model": args.cached_model, "rows": {s: int(f.x.shape[0]) for s, f in feats.items()},
            "layers": len(layers), "dim": int(rep.dim), "probe": "the task's resolved full-grid config",
            "runs": runs}


def write_md(path: Path, data: dict) -> None:
    lines = ["# Probe sweep cost and successive halving", "",
             "Generated by `scripts/bench_probes.py` from probe_sweep.json. *ratio*: wall time of the whole "
             "sweep / one plain (layer, lr) probe trained the same number of epochs on the same features (goal "
             "<= 3); *member-epochs*: epochs trained summed over the sweep's probes (the plain probe: its epochs), "
             "a cost measure that does not depend on the machine's load.", ""]
    for key, e in sorted(data.items()):
        if not any(k in e for k in ("cost", "agreement", "cached")):
            lines += [f"## {key}" + ("" if "before halving" in key else ": before halving existed"), "",
                      f"{e.get('members')} probes, {e.get('rows')} rows, dim {e.get('dim')}, {e.get('epochs')} epochs: "
                      f"plain {e.get('plain_probe_s')} s, sweep {e.get('sweep_s')} s, ratio {e.get('ratio')}.", ""]
            continue
        lines += [f"## {key}", "", f"torch {e['torch']}, {e['threads']} torch thread(s)."
                  + (f" Source: {e['source']}" if e.get("source") else ""), ""]
        c = e.get("cost")
        if c:
            lines += [f"### Cost: {c['layers']} layers x {len(c['lrs'])} lrs + weighted sum", "",
                      f"{c['rows']} train rows, dim {c['dim']}, {c['epochs']} epochs (early stopping off). Plain probe: "
                      f"{c['plain_probe_s']} s (median of {c['plain_probe_s_runs']}). Load average (1, 5, 15 min) "
                      f"before {c['loadavg_before']}, after {c['loadavg_after']}.", "",
                      "| sweep | probes | seconds | ratio | per probe | member-epochs (x plain) |",
                      "|---|---|---|---|---|---|"]
            for n, r in c["sweeps"].items():
                lines.append(f"| {n} | {r['members']} | {r['sweep_s']} | {r['ratio']} | {r['per_probe_ratio']} | "
                             f"{r['member_epochs']} ({r['member_epoch_ratio']}x) |")
            lines.append("")
        c = e
        ag = c.get("agreement")
        if ag:
            s = ag["setup"]
            lines += [f"### Agreement with the full sweep: {s['problems']} synthetic problems", "",
                      f"{s['layers']} layers, dim {s['dim']}, {s['classes']} classes, rows {s['rows']}; {s['probe']}.",
                      "", "| variant | same (layer, lr) | same layer | test main diff mean [min, max] | "
                      "per-layer curve max abs diff | member-epochs vs none | time vs none |",
                      "|---|---|---|---|---|---|---|"]
            for n, r in ag["summary"].items():
                lines.append(f"| {n} | {r['same_choice']}/{r['trials']} | {r['same_layer']}/{r['trials']} | "
                             f"{r['test_main_diff_mean']:+.4f} [{r['test_main_diff_min']:+.4f}, "
                             f"{r['test_main_diff_max']:+.4f}] | {r['layer_curve_max_abs_diff']} | "
                             f"{r['member_epoch_fraction_mean']} | {r['time_fraction_mean']} |")
            lines.append("")
        ca = c.get("cached")
        if ca:
            lines += [f"### Cached task: {ca['task']} / {ca['model']}", "",
                      f"{ca['layers']} layers, dim {ca['dim']}, rows {ca['rows']}; {ca['probe']}.", "",
                      "| variant | chosen (layer, lr) | test main | diff | per-layer curve max abs diff | "
                      "member-epochs | seconds |", "|---|---|---|---|---|---|---|"]
            for n, r in ca["runs"].items():
                lines.append(f"| {n} | {r['chosen'][0]}, {r['chosen'][1]:g} | {r['test_main']} | "
                             f"{r.get('test_main_diff', 0):+.4f} | {r.get('layer_curve_max_abs_diff', 0)} | "
                             f"{r['member_epochs']} | {r['seconds']} |")
            lines.append("")
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--valid-rows", type=int, default=500)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--prune", default="none,halving,halving-k0",
                    help="comma list of sweep variants: " + ", ".join(VARIANTS) + " (none is always measured)")
    ap.add_argument("--agreement", type=int, default=0, help="synthetic problems for the agreement check (0: skip)")
    ap.add_argument("--agree-dim", type=int, default=128)
    ap.add_argument("--agree-rows", type=int, default=900)
    ap.add_argument("--agree-max-epochs", type=int, default=60)
    ap.add_argument("--cached-task", default=None, help="also compare on this task's cached features")
    ap.add_argument("--cached-model", default="random:mert-mini")
    ap.add_argument("--stages", default="cost,agreement,cached",
                    help="what to measure, in this order (each stage's result is saved as soon as it is done; "
                         "stages not run keep their earlier result in the file)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "results" / "perf" / "probe_sweep.json"))
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tasks import get_task

    variants = ["none"] + [v for v in args.prune.split(",") if v and v != "none"]
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"--prune: unknown variant {v!r}; valid: {', '.join(VARIANTS)}")
    stages = [s for s in args.stages.split(",") if s]
    for s in stages:
        if s not in ("cost", "agreement", "cached"):
            ap.error(f"--stages: unknown stage {s!r}; valid: cost, agreement, cached")
    spec = get_task("genre")
    device = args.device if args.device == "cpu" else torch.cuda.get_device_name(0)
    key = device + f" ({torch.get_num_threads()} threads)" if args.device == "cpu" else device
    path = Path(args.out)
    env = {"device": device, "threads": torch.get_num_threads(), "goal": "ratio <= 3",
           "python": platform.python_version(), "torch": torch.__version__}

    def save(part: str, value) -> None:
        """Merge one stage's result into this device's entry (other entries and stages kept) and rewrite the
        JSON and the markdown atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = json.loads(path.read_text()) if path.exists() else {}
        entry = existing.get(key, {})
        if entry and not any(k in entry for k in ("cost", "agreement", "cached")):
            existing[key + ", before halving existed"] = existing.pop(key)  # the old one-sweep format: kept
            entry = {}
        entry = dict(entry, **env)
        entry[part] = value
        existing[key] = entry
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(existing, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
        md = path.with_suffix(".md")
        write_md(md.with_suffix(".md.tmp"), existing)
        md.with_suffix(".md.tmp").replace(md)

    for stage in stages:
        print(f"{stage}:", flush=True)
        if stage == "cost":
            out = measure_cost(args, torch, spec, variants)
            print(json.dumps(out, indent=1))
            save("cost", out)
        elif stage == "agreement" and args.agreement:
            save("agreement", measure_agreement(args, spec, variants, lambda v: save("agreement", v)))
        elif stage == "cached" and args.cached_task:
            save("cached", measure_cached(args, variants))
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
