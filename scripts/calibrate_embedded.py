"""Difficulty calibration of the embedded corpus: build it, then score chance and two handcrafted baselines.

    python scripts/calibrate_embedded.py [--size standard] [--home DIR] [--fresh] [--tasks key,genre]
    python scripts/calibrate_embedded.py --tasks beat        # one task: builds and scores only it, updates its entries

For every task: chance level, an MFCC baseline and a chroma baseline (mean+std pooled features per item,
standardised, scikit-learn logistic regression / one-vs-rest / ridge with C or alpha chosen on valid), scored
on test with the task's metric (mir_eval weighted key score, accuracy, macro ROC-AUC/AP, R2). Beat: a
metronome at the median train tempo (chance) and an onset-envelope + dynamic-programming tracker (Ellis 2007),
plus the reference: the untrained spectral-flux activation + DBN beat tracker (benchmark.beat_tracking), with its
downbeat F (the same DBN at the downbeat tempo range) and tempo accuracy; beat F pooled over tracks as the
benchmark's beat_f. Separation: the mixture as the estimate of every stem (chance) and a harmonic/percussive
median-filter + band-split baseline, SDR from fast_bss_eval. Writes results/embedded_calibration.json and the
table between the calibration markers of docs/embedded.md; also reports build time and size per task.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SR = 24000


def load(folder, item):
    from mert.audio import read_audio
    from tasks.format import resolve

    return read_audio(resolve(folder, item.audio), SR, item.start, item.end)


def mfcc_feat(y):
    import torch
    import torchaudio

    m = torchaudio.transforms.MFCC(sample_rate=SR, n_mfcc=20,
                                   melkwargs=dict(n_fft=1024, hop_length=480, n_mels=64))(torch.from_numpy(y))
    m = m.numpy()
    return np.concatenate([m.mean(1), m.std(1)])


def chroma_feat(y):
    n, hop = 4096, 2048
    if len(y) < n:
        y = np.pad(y, (0, n - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop] * np.hanning(n)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    f = np.fft.rfftfreq(n, 1 / SR)
    ok = (f > 55) & (f < 4000)
    pcs = np.round(12 * np.log2(f[ok] / 440) + 69).astype(int) % 12
    c = np.zeros((mag.shape[0], 12))
    for k in range(12):
        c[:, k] = mag[:, ok][:, pcs == k].sum(1)
    c = c / (c.sum(1, keepdims=True) + 1e-9)
    return np.concatenate([c.mean(0), c.std(0)])


FEATURES = {"mfcc": mfcc_feat, "chroma": chroma_feat}


def features(folder, items, fn):
    return np.stack([fn(load(folder, it)) for it in items])


def fit_predict(kind, Xtr, ytr, Xva, yva, Xte, score_fn):
    """Choose C / alpha on valid by ``score_fn``; return test predictions (probabilities or values)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(Xtr)
    Xtr, Xva, Xte = sc.transform(Xtr), sc.transform(Xva), sc.transform(Xte)
    best = None
    for c in (0.01, 0.1, 1.0, 10.0):
        if kind == "regression":
            model = Ridge(alpha=1.0 / c).fit(Xtr, ytr)
            pv = model.predict(Xva)
        elif kind == "multilabel":
            model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000)).fit(Xtr, ytr)
            pv = model.predict_proba(Xva)
        else:
            model = LogisticRegression(C=c, max_iter=3000).fit(Xtr, ytr)
            pv = model.predict_proba(Xva)
        s = score_fn(yva, pv, model)
        if best is None or s > best[0]:
            best = (s, model)
    model = best[1]
    if kind == "regression":
        return model.predict(Xte), model
    return model.predict_proba(Xte), model


def score_task(name, folder):
    from sklearn.metrics import average_precision_score, r2_score, roc_auc_score

    from tasks import format as F
    from tasks.base import get_task

    spec = get_task(name)
    meta = F.read_meta(folder)
    labels = meta["labels"]
    sp = {s: F.read_split(folder, s) for s in ("train", "valid", "test")}
    out = {"task": name, "metric": spec.main_score, "n": {s: len(v) for s, v in sp.items()}}

    if spec.type == "beat":
        return {**out, **beat_scores(folder, sp)}
    if spec.type == "separation":
        return {**out, **separation_scores(folder, sp)}

    if spec.type == "multilabel":
        Y = {s: np.array([[t in it.target for t in labels] for it in v], dtype=int) for s, v in sp.items()}

        def metric(y, p):
            cols = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
            auc = roc_auc_score(y[:, cols], p[:, cols], average="macro")
            ap = average_precision_score(y[:, cols], p[:, cols], average="macro")
            return {"roc_auc": float(auc), "ap": float(ap), "score": float((auc + ap) / 2)}

        prior = Y["train"].mean(0)
        chance = metric(Y["test"], np.tile(prior, (len(Y["test"]), 1)) + 1e-6 * np.random.default_rng(0).random(Y["test"].shape))
        chance = {"roc_auc": 0.5, "ap": float(np.mean([Y["test"][:, j].mean() for j in range(Y["test"].shape[1])
                                                         if 0 < Y["test"][:, j].sum()])), }
        chance["score"] = (chance["roc_auc"] + chance["ap"]) / 2
        kind = "multilabel"
    elif spec.type == "regression":
        Y = {s: np.array([it.target for it in v], dtype=float) for s, v in sp.items()}

        def metric(y, p):
            r = [float(r2_score(y[:, j], p[:, j])) for j in range(y.shape[1])]
            return {**{f"r2_{labels[j]}": r[j] for j in range(len(r))}, "score": float(np.mean(r))}

        chance = metric(Y["test"], np.tile(Y["train"].mean(0), (len(Y["test"]), 1)))
        kind = "regression"
    else:
        Y = {s: np.array([labels.index(it.target) for it in v]) for s, v in sp.items()}
        if spec.type == "key":
            import mir_eval

            def metric(y, p):
                pred = p.argmax(1) if p.ndim == 2 else p
                w = [mir_eval.key.weighted_score(labels[a], labels[b]) for a, b in zip(y, pred)]
                return {"weighted_key": float(np.mean(w)), "accuracy": float(np.mean(np.array(pred) == y)),
                        "score": float(np.mean(w))}

            # chance: expected weighted score of a uniform random key
            cw = np.mean([[mir_eval.key.weighted_score(a, b) for b in labels] for a in labels])
            chance = {"weighted_key": float(cw), "accuracy": 1 / 24, "score": float(cw)}
        else:
            def metric(y, p):
                pred = p.argmax(1) if p.ndim == 2 else p
                acc = float(np.mean(np.array(pred) == y))
                return {"accuracy": acc, "score": acc}

            counts = np.bincount(Y["train"], minlength=len(labels))
            chance = {"accuracy": float(np.mean(Y["test"] == counts.argmax())), "score": None}
            chance["score"] = max(chance["accuracy"], 1.0 / len(np.unique(Y["train"])))
        kind = "multiclass"
    out["chance"] = chance
    for fname, fn in FEATURES.items():
        X = {s: features(folder, v, fn) for s, v in sp.items()}
        if kind == "multiclass":
            def sel(y, p, model):
                full = np.zeros((len(p), len(labels)))
                full[:, model.classes_] = p
                return metric(y, full)["score"]
            p, model = fit_predict(kind, X["train"], Y["train"], X["valid"], Y["valid"], X["test"], sel)
            full = np.zeros((len(p), len(labels)))
            full[:, model.classes_] = p
            out[fname] = metric(Y["test"], full)
        else:
            p, _ = fit_predict(kind, X["train"], Y["train"], X["valid"], Y["valid"], X["test"],
                               lambda y, pv, m: metric(y, pv)["score"])
            out[fname] = metric(Y["test"], p)
    return out


# ---------------------------------------------------------------------------------------------- beat
def onset_env(y, hop=240):
    n = 1024
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (n // 2, n // 2)), n)[::hop] * np.hanning(n)
    s = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    env = np.maximum(np.diff(s, axis=0, prepend=s[:1]), 0).sum(1)
    env = env - np.convolve(env, np.ones(31) / 31, mode="same")
    return np.maximum(env, 0) / (env.std() + 1e-9)


def dp_beats(env, fps=100.0, tightness=100.0):
    """Ellis (2007) dynamic-programming beat tracker with a global tempo from the envelope autocorrelation."""
    ac = np.correlate(env, env, "full")[len(env) - 1:]
    lags = np.arange(len(ac))
    bpm = 60 * fps / np.maximum(lags, 1)
    weight = np.exp(-0.5 * (np.log2(bpm / 120) / 1.0) ** 2)
    valid = (bpm > 40) & (bpm < 240)
    period = int(lags[valid][np.argmax((ac * weight)[valid])])
    score = env.copy()
    back = -np.ones(len(env), dtype=int)
    for t in range(len(env)):
        lo, hi = t - 2 * period, t - period // 2
        if hi <= 0:
            continue
        prev = np.arange(max(lo, 0), hi)
        pen = -tightness * np.log((t - prev) / period) ** 2
        k = np.argmax(score[prev] + pen)
        score[t] += score[prev[k]] + pen[k]
        back[t] = prev[k]
    t = int(np.argmax(score[-period:]) + len(env) - period)
    beats = []
    while t >= 0:
        beats.append(t)
        t = back[t]
    return np.array(beats[::-1]) / fps


def beat_scores(folder, sp):
    """Chance (a metronome at the median train tempo), onset+DP (spectral flux + Ellis DP) and the reference
    flux+DBN (benchmark.beat_tracking.spectral_flux_beats at the beat config's DBN settings; downbeats by the
    same DBN at the downbeat tempo range on the same activation, a crude reference) on test. Beat F is the
    benchmark's ``beat_f`` (pooled over tracks, no trimming; ``beat_f_mean`` the mean per-track F), tempo
    accuracy ``tempo_acc1`` / ``tempo_acc2`` (within 4 %, benchmark.metrics.tempo_scores)."""
    from benchmark.beat_tracking import spectral_flux_activation, dbn_beats
    from benchmark.config import BeatConfig
    from benchmark.metrics import beat_scores as pooled, tempo_scores

    cfg = BeatConfig()
    dbn = dict(transition_lambda=float(cfg.transition_lambda), threshold=float(cfg.threshold))
    test = sp["test"]
    tempi = [60 / np.median(np.diff(it.target)) for it in sp["train"]]
    bpm = float(np.median(tempi))
    refs, est = [], {"chance": [], "onset_dp": [], "flux_dbn": []}
    d_refs, d_est = [], []
    for it in test:
        y = load(folder, it)
        refs.append(np.array(it.target))
        est["chance"].append(np.arange(0, len(y) / SR, 60 / bpm))
        est["onset_dp"].append(dp_beats(onset_env(y)))
        act = spectral_flux_activation(y, SR, 100.0)
        est["flux_dbn"].append(dbn_beats(act, 100.0, min_bpm=float(cfg.min_bpm), max_bpm=float(cfg.max_bpm), **dbn))
        downs = (it.extra or {}).get("downbeats")
        if downs:
            d_refs.append(np.array(downs))
            d_est.append(dbn_beats(act, 100.0, min_bpm=float(cfg.downbeat_min_bpm),
                                   max_bpm=float(cfg.downbeat_max_bpm), **dbn))
    what = {"chance": f"metronome at the median train tempo ({bpm:.0f} BPM)",
            "onset_dp": "spectral-flux onset envelope + Ellis DP tracker",
            "flux_dbn": "reference: spectral-flux activation + DBN beat tracker (untrained; "
                        "benchmark.beat_tracking.spectral_flux_beats)"}
    out = {}
    for name, e in est.items():
        b = pooled(refs, e)
        t = tempo_scores(refs, e)
        out[name] = {"beat_f": b["beat_f"], "beat_f_mean": b["beat_f_mean"], "tempo_acc1": t["tempo_acc1"],
                     "tempo_acc2": t["tempo_acc2"], "score": b["beat_f"], "what": what[name]}
    if d_refs:
        d = pooled(d_refs, d_est)
        out["flux_dbn"]["downbeat_f"] = d["beat_f"]
        out["flux_dbn"]["downbeat_what"] = (f"the same DBN at {cfg.downbeat_min_bpm:g}-{cfg.downbeat_max_bpm:g} BPM "
                                            "on the same activation, scored against the downbeats")
    return out


# ---------------------------------------------------------------------------------------------- separation
def hpss_split(mix):
    import torch
    from scipy.ndimage import median_filter

    x = torch.from_numpy(mix)
    win = torch.hann_window(2048)
    X = torch.stft(x, 2048, 512, window=win, return_complex=True).numpy()
    mag = np.abs(X)
    harm = median_filter(mag, size=(1, 17))
    perc = median_filter(mag, size=(17, 1))
    mh = harm ** 2 / (harm ** 2 + perc ** 2 + 1e-9)
    mp = 1 - mh
    f = np.fft.rfftfreq(2048, 1 / SR)[:, None]
    low = (f < 180).astype(float)
    voc = ((f >= 180) & (f < 5000)).astype(float) * 0.5
    masks = {"drums": mp, "bass": mh * low, "vocals": mh * voc, "other": mh * (1 - low - voc)}
    out = {}
    for k, m in masks.items():
        out[k] = torch.istft(torch.from_numpy(X * m), 2048, 512, window=win, length=len(mix)).numpy()
    return out


def separation_scores(folder, sp):
    """Chance and HPSS + bands, scored as the benchmark scores the task (benchmark.metrics.SeparationScores):
    ``sdr_<stem>`` MARBLE's global SDR, mean over test tracks (``score``: their mean, the task's main score), and
    ``bss_sdr_<stem>`` BSS-eval v3, median over tracks."""
    from benchmark.metrics import SeparationScores

    stems = ("vocals", "drums", "bass", "other")
    acc = {"chance": SeparationScores(stems), "hpss_bands": SeparationScores(stems)}
    for it in sp["test"]:
        mix = load(folder, it)
        refs = np.stack([load(folder, type(it)(id=it.id, audio=it.target[s], target=None)) for s in stems])
        est = hpss_split(mix)
        acc["chance"].add(refs, np.stack([mix] * 4))
        acc["hpss_bands"].add(refs, np.stack([est[s] for s in stems]))
    out = {}
    for name, a in acc.items():
        vals = a.result()
        out[name] = {**vals, "score": float(np.mean([vals[f"sdr_{s}"] for s in stems]))}
    out["chance"]["what"] = "the mixture as the estimate of every stem (global SDR, mean over test tracks)"
    out["hpss_bands"]["what"] = "median-filter HPSS: percussive -> drums; harmonic split by band into bass/vocals/other"
    return out


# ---------------------------------------------------------------------------------------------- main
def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def table(results) -> str:
    rows = ["| task | metric | test items | chance | MFCC | chroma / other baseline |", "|---|---|---|---|---|---|"]
    for r in results:
        if "onset_dp" in r:
            base = ("-", f"{r['onset_dp']['score']:.3f} (onset+DP)"
                    + (f", {r['flux_dbn']['score']:.3f} (flux+DBN)" if "flux_dbn" in r else ""))
        elif "hpss_bands" in r:
            base = ("-", f"{r['hpss_bands']['score']:.2f} dB (HPSS+bands)")
        else:
            base = (f"{r['mfcc']['score']:.3f}", f"{r['chroma']['score']:.3f}")
        ch = r["chance"]["score"]
        ch = f"{ch:.2f} dB" if "hpss_bands" in r else f"{ch:.3f}"
        rows.append(f"| {r['task']} | {r['metric']} | {r['n']['test']} | {ch} | {base[0]} | {base[1]} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="standard", choices=["tiny", "standard"])
    ap.add_argument("--home", default=None, help="data home (default $MERT_BENCH_HOME or ~/.cache/mert-bench)")
    ap.add_argument("--fresh", action="store_true", help="delete this size's embedded folders first (to time the build)")
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--no-pretraining", action="store_true")
    ap.add_argument("--build-only", action="store_true", help="build and report time and size, score nothing")
    ap.add_argument("--out", default=str(ROOT / "results" / "embedded_calibration.json"))
    args = ap.parse_args()

    from tasks.embedded import data_root, prepare, prepare_pretraining, task_names

    all_names = task_names()
    names = list(all_names) if args.tasks == "all" else args.tasks.split(",")
    # the pretraining collection comes with a full run, or when --tasks names it
    with_pre = (args.tasks == "all" and not args.no_pretraining) or "pretraining" in names
    names = [n for n in names if n != "pretraining"]
    emb = data_root(args.home) / "embedded"
    if args.fresh and emb.exists():
        from tasks.embedded import task_dir

        doomed = [task_dir(n, args.size, args.home) for n in names]
        if args.tasks == "all":
            doomed += list(emb.glob(f"_mtg-audio-*-{args.size}"))
        if with_pre:
            doomed += list(emb.glob(f"pretraining-*-{args.size}"))
        for p in doomed:
            if p.exists():
                shutil.rmtree(p)
    build = {}
    t_all = time.time()
    ru_self, ru_kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = ru_self.ru_utime + ru_self.ru_stime + ru_kids.ru_utime + ru_kids.ru_stime
    def cpu_now():
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    from tasks.embedded import task_dir

    reused = set()  # folders already built: their stored build time stays (prepare only checks them)
    for n in names + (["pretraining"] if with_pre else []):
        t0, c0 = time.time(), cpu_now()
        if n != "pretraining" and task_dir(n, args.size, args.home).exists():
            reused.add(n)
        if n == "pretraining":
            folder = prepare_pretraining(args.size, home=args.home)
        else:
            folder = prepare(n, args.size, home=args.home, progress=sys.stderr.isatty())
        build[n] = {"seconds": round(time.time() - t0, 1), "cpu_seconds": round(cpu_now() - c0, 1),
                    "bytes": du(folder)}
        print(f"built {n}: {build[n]}", flush=True)
    total_build = time.time() - t_all
    seen, total_bytes = set(), 0
    for p in emb.rglob("*"):
        top = p.relative_to(emb).parts[0]
        if p.is_file() and top.endswith(f"-{args.size}"):
            st = p.stat()
            if (st.st_dev, st.st_ino) not in seen:  # MTG audio is hard-linked into four folders
                seen.add((st.st_dev, st.st_ino))
                total_bytes += st.st_size
    ru_self, ru_kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru_self.ru_utime + ru_self.ru_stime + ru_kids.ru_utime + ru_kids.ru_stime - cpu0
    print(f"build total {total_build:.0f} s wall, {cpu:.0f} s CPU (= {cpu / 2:.0f} s on 2 idle cores), "
          f"{total_bytes / 1e9:.2f} GB (load avg {os.getloadavg()})", flush=True)

    results = []
    if args.build_only:
        names_to_score = []
    else:
        names_to_score = names
    for n in names_to_score:
        t0 = time.time()
        r = score_task(n, prepare(n, args.size, home=args.home, progress=False))
        r["seconds"] = round(time.time() - t0, 1)
        results.append(r)
        print(json.dumps(r), flush=True)
    from tasks.embedded import generator_versions

    report = {"size": args.size, "cpu_count": os.cpu_count(), "results": [], "build": {}}
    out_path = Path(args.out)
    if args.tasks != "all" and out_path.exists():  # a partial run updates the stored report (of its size)
        stored = json.loads(out_path.read_text())
        if stored.get("size") == args.size:
            report = stored
    by_task = {r["task"]: r for r in report["results"]}
    by_task.update({r["task"]: r for r in results})
    report["results"] = [by_task[n] for n in all_names if n in by_task]
    report["build"].update({n: b for n, b in build.items() if n not in reused or n not in report["build"]})
    if args.tasks == "all":  # a partial run (--tasks beat) touches only its tasks' entries
        report["build_runs"] = report.get("build_runs", []) + [{
            "tasks": names, "wall_seconds": round(total_build, 1), "cpu_seconds": round(cpu, 1),
            "bytes_on_disk_for_size": total_bytes, "load_average_at_end": os.getloadavg()}]
        report["bytes_total"] = total_bytes
    report["generator_versions"] = generator_versions()
    report["table"] = table(report["results"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    print(report["table"])
    doc = ROOT / "docs" / "embedded.md"
    if doc.exists() and args.size == "standard" and len(report["results"]) == len(all_names):
        text = doc.read_text()
        a, b = "<!-- calibration:start -->", "<!-- calibration:end -->"
        if a in text and b in text:
            text = text.split(a)[0] + a + "\n" + report["table"] + "\n" + b + text.split(b)[1]
            doc.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
