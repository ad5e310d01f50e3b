"""What pretraining changed in mert-mini, next to its random-weight twin: information kept, spread, pooling.

    python scripts/analyze_mert_mini.py [--tasks genre,singer,technique,key] [--models mert-mini,random:mert-mini]
                                        [--seconds 10] [--out results/analysis/mert-mini-information]

Per representation and layer, on the first ``--seconds`` of each item of the embedded corpus (standard size):

- **input kept**: R2 of a ridge regression (alpha chosen by leave-one-out, scikit-learn RidgeCV) from the layer's
  frames to (a) the model's own 84-bin log-CQT input frames and (b) a 64-band log-mel of 4-12 kHz (timbre above
  the CQT's top bin, seen only through the conv front end). Fit on the even-numbered test clips of the first
  task, scored on the odd ones.
- **spread**: participation ratio (sum(ev)^2 / sum(ev^2)) of the z-scored frames' covariance: how many
  directions the frames use.
- **pooling x probe**: a linear probe (scikit-learn logistic regression, C chosen on valid) on the clip's mean
  frame and on mean + standard deviation over frames, test accuracy. The leaderboard's probe is MARBLE's MLP on
  mean-pooled frames; this separates what the features hold from what that probe and pooling reach.

Writes OUT.json (every number) and OUT.md (tables).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _frames(rep, items, root, seconds):
    """Per item: (frames of every layer [T', L, D], log-CQT input [T', 84], 4-12 kHz log-mel [T', 64])."""
    import torch
    import torchaudio

    from mert.audio import read_audio, standardise
    from tasks.format import resolve

    mel = torchaudio.transforms.MelSpectrogram(rep.sample_rate, n_fft=1024, hop_length=rep.sample_rate // 75,
                                               n_mels=64, f_min=4000.0, f_max=12000.0)
    out = []
    for it in items:
        start = it.start or 0.0
        end = start + seconds if it.end is None else min(it.end, start + seconds)
        x = torch.from_numpy(read_audio(resolve(root, it.audio), rep.sample_rate, start, end))[None]
        x = standardise(x, torch.tensor([x.shape[1]]))
        hs, _ = rep(x, [x.shape[1]])
        t = hs[0].shape[1]
        with torch.inference_mode():
            cqt = rep.model.cqt_input(x)[0, :t].numpy()
            m = torch.log(mel(x[0]) + 1e-6).T[:t].numpy()
        out.append((torch.stack([h[0] for h in hs], 1).numpy(), cqt, m))
    return out


def _input_kept(frames):
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    tr, te = frames[0::2], frames[1::2]
    rows = []
    for layer in range(frames[0][0].shape[1]):
        x_tr = np.concatenate([f[0][:, layer] for f in tr])
        x_te = np.concatenate([f[0][:, layer] for f in te])
        mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
        row = {"layer": layer}
        for name, k in (("cqt_input_r2", 1), ("logmel_4_12k_r2", 2)):
            y_tr = np.concatenate([f[k] for f in tr])
            y_te = np.concatenate([f[k] for f in te])
            reg = RidgeCV(alphas=[0.1, 1.0, 10.0, 100.0, 1000.0]).fit((x_tr - mu) / sd, y_tr)
            row[name] = float(r2_score(y_te, reg.predict((x_te - mu) / sd)))
        z = (np.concatenate([f[0][:, layer] for f in frames]) - mu) / sd
        ev = np.clip(np.linalg.eigvalsh(np.cov(z.T)), 0, None)
        row["participation_ratio"] = float(ev.sum() ** 2 / (ev ** 2).sum())
        rows.append(row)
    return rows


def _linear_probe(feats, labels):
    """feats: split -> list of per-item frames [T', L, D]; returns per layer {pool: valid and test accuracy}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from benchmark.features import _pool  # the benchmark's own clip pooling

    pooled = {pool: {s: np.stack([_pool(f, pool) for f in feats[s]]) for s in feats} for pool in ("mean", "mean_std")}
    rows = []
    for layer in range(feats["train"][0].shape[1]):
        row = {"layer": layer}
        for pool, by_split in pooled.items():
            sc = StandardScaler().fit(by_split["train"][:, layer])
            x = {s: sc.transform(by_split[s][:, layer]) for s in by_split}
            best = None
            for c in (0.01, 0.1, 1.0, 10.0):
                clf = LogisticRegression(C=c, max_iter=3000).fit(x["train"], labels["train"])
                v = clf.score(x["valid"], labels["valid"])
                if best is None or v > best[0]:
                    best = (v, clf.score(x["test"], labels["test"]), c)
            row[pool] = {"valid": float(best[0]), "test": float(best[1]), "C": best[2]}
        rows.append(row)
    return rows


def _write_md(result: dict, out: Path) -> None:
    tasks, models = result["tasks"], result["models"]
    n_layers = len(result["input_kept"][models[0]])
    md = [f"Generated by `scripts/analyze_mert_mini.py` (first {result['seconds']:g} s of each item; "
          "see its docstring).",
          "", f"### Input kept per layer ({tasks[0]} test clips, R2 on held-out clips) and spread", "",
          "| model | layer | log-CQT input R2 | 4-12 kHz log-mel R2 | participation ratio |", "|---|---|---|---|---|"]
    for name in models:
        for r in result["input_kept"][name]:
            md.append(f"| {name} | {r['layer']} | {r['cqt_input_r2']:.3f} | {r['logmel_4_12k_r2']:.3f} | "
                      f"{r['participation_ratio']:.1f} |")
    md += ["", "### Linear probe, test accuracy (valid) per layer: mean pooling | mean + std pooling", "",
           "| task | model | " + " | ".join(f"layer {i} mean | layer {i} mean+std" for i in range(n_layers)) + " |",
           "|---|---|" + "---|" * (2 * n_layers)]
    for t in tasks:
        for name in models:
            cells = [f"{100 * r['mean']['test']:.1f} ({100 * r['mean']['valid']:.1f}) | "
                     f"{100 * r['mean_std']['test']:.1f} ({100 * r['mean_std']['valid']:.1f})"
                     for r in result["linear_probe"][t][name]]
            md.append(f"| {t} | {name} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="genre,singer,technique,key")
    ap.add_argument("--models", default="mert-mini,random:mert-mini")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "analysis" / "mert-mini-information"))
    ap.add_argument("--render-only", action="store_true", help="rewrite OUT.md from OUT.json, computing nothing")
    a = ap.parse_args(argv)
    if a.render_only:
        _write_md(json.loads(Path(a.out).with_suffix(".json").read_text()), Path(a.out))
        return 0

    import torch

    from benchmark.registry import load_representation
    from tasks import get_task
    from tasks.embedded import prepare
    from tasks.format import read_split

    torch.set_num_threads(a.threads)
    tasks = a.tasks.split(",")
    for t in tasks:
        if get_task(t).type not in ("multiclass", "key"):
            raise SystemExit(f"--tasks {t}: only single-label tasks (multiclass, key) have the linear probe here")
    models = a.models.split(",")
    result = {"seconds": a.seconds, "tasks": tasks, "models": models, "input_kept_task": tasks[0],
              "input_kept": {}, "linear_probe": {}}
    t0 = time.time()
    for name in models:
        rep = load_representation(name)
        if getattr(rep.model, "cqt_input", None) is None:
            raise SystemExit(f"--models {name}: this analysis needs a model with a CQT input (mert-mini presets)")
        result["identity"] = {**result.get("identity", {}), name: rep.identity()}
        for i, t in enumerate(tasks):
            root = prepare(t, "standard", progress=False)
            split = {s: read_split(root, s) for s in ("train", "valid", "test")}
            classes = sorted({str(it.target) for s in split.values() for it in s})
            labels = {s: np.array([classes.index(str(it.target)) for it in split[s]]) for s in split}
            frames = {s: _frames(rep, split[s], root, a.seconds) for s in split}
            if i == 0:
                result["input_kept"][name] = _input_kept(frames["test"])
            result["linear_probe"].setdefault(t, {})[name] = _linear_probe(
                {s: [f[0] for f in frames[s]] for s in frames}, labels)
            print(f"[{time.time() - t0:6.0f}s] {name} {t} done", flush=True)

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from mert.teachers.storage import atomic_write_json

    atomic_write_json(out.with_suffix(".json"), result)
    _write_md(result, out)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
