"""Few-shot mode (``python -m benchmark run --mode fewshot --shots K``, MARBLE v2's few-shot protocol): the
multi-class tasks (types ``multiclass`` and ``key``) classified from K labelled train items per class, with no
training: seconds per task once the features are cached.

    pooled      every evaluation unit's embedding per layer: the mean of its cached rows (benchmark.features, the
                same rows the probes read), pooled per unit as the probe's outputs are (an item; for key a song,
                the clips sharing ``group``; benchmark.heads.KeyHead.units)
    draws       ``fewshot.draws`` support sets (seeds 0 .. draws - 1): per class K train units drawn without
                replacement (numpy's default_rng(seed)); a class with fewer than K train units uses all it has
                (recorded in ``probe.short_classes``), a class with none has no centroid and is never predicted.
                The draw depends on the seed and the train labels only, so every layer sees the same support sets
    classifier  ``centroid`` (default): nearest class centroid by cosine similarity on z-scored embeddings (the
                centroid is the mean of the class's z-scored support embeddings); ``linear``: scikit-learn's
                LogisticRegression fitted on the z-scored support set
    selection   every probed layer (``probe.layers``, default all) scored on valid and test with the same draws;
                the layer with the best mean validation main score over draws is chosen (ties: the lower layer)
                and reported on test as the mean and standard deviation over draws. Test never selects.

Standardisation uses the statistics (per layer and dimension mean and std) of the pooled embeddings of the whole
train split, not of the support set: it reads no label, so only K labels per class are used, and it is the same
for every draw and as stable as the probes' (benchmark.probes.Standardizer, train statistics). A support set of
K x C vectors in hundreds of dimensions gives a degenerate std (K = 1: a class's z-scores would be computed from
the vectors they then classify). Cosine rather than euclidean distance: on z-scored features it is insensitive to
the norm of an embedding (which varies with loudness and layer), leaves each dimension the same weight, and is
what prototype classifiers on frozen embeddings commonly use.

Key: a song's clips are averaged into one embedding (the centroid counterpart of the probes' ``mean_logits``;
``probe.key_ensemble`` is not read) and scored with mir_eval's weighted score.

Results are written under the data source ``<source>-fewshot<K>`` (benchmark.pipeline.plan_task): their own folder
and leaderboard table, never mixed with the frozen-probe rows of the same source, and the shots part of the
result's identity through it.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmark.errors import RunError

MODES = ("freeze", "fewshot")
SUPPORTED_TYPES = ("multiclass", "key")

__all__ = ["MODES", "SUPPORTED_TYPES", "centroid_scores", "check_tasks", "draw_support", "linear_scores",
           "pooled", "run_fewshot", "source_suffix"]


def source_suffix(shots: int) -> str:
    """What a few-shot result adds to its data source's name: its own folder and leaderboard table."""
    return f"-fewshot{int(shots)}"


def check_tasks(specs) -> None:
    """Every task is a multi-class one, else a RunError naming the first other and the supported ones."""
    from tasks import all_tasks

    ok = [s.name for s in all_tasks() if s.type in SUPPORTED_TYPES]
    for spec in specs:
        if spec.type not in SUPPORTED_TYPES:
            raise RunError(f"--mode fewshot: task {spec.name!r} is a {spec.type} task; few-shot supports the "
                           f"multi-class tasks ({', '.join(SUPPORTED_TYPES)} types): {', '.join(ok)}")


def pooled(head, feats, layers: list[int], chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """A split's unit embeddings [U, len(layers), D] (float64, the mean of each unit's rows) and unit targets
    [U]; units as ``head.units`` makes them (items without rows, e.g. skipped as silent, are no unit)."""
    from benchmark.heads import Head
    from benchmark.probes import select_rows

    data = Head.prepare(head, feats)  # the base units: an item, a song for key (whatever probe.key_ensemble is)
    idx = data["unit_idx"].numpy()
    n = int(data["n_units"])
    x = feats.x
    sums = np.zeros((n, len(layers), int(x.shape[2])))
    for i in range(0, len(idx), chunk):
        rows = select_rows(x, np.arange(i, min(len(idx), i + chunk)), layers).astype(np.float64)
        np.add.at(sums, idx[i:i + len(rows)], rows)
    counts = np.bincount(idx, minlength=n).astype(np.float64)
    return sums / np.maximum(counts, 1)[:, None, None], data["unit_targets"].numpy().astype(np.int64)


def draw_support(y: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Indices into ``y`` (train unit classes) of one support set: per class present, ``shots`` units drawn
    without replacement with ``numpy.random.default_rng(seed)`` (all of a class's units when it has fewer),
    classes in index order, sorted indices."""
    rng = np.random.default_rng(int(seed))
    out = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        out.append(members[rng.permutation(len(members))[:shots]])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def centroid_scores(support: np.ndarray, y_support: np.ndarray, query: np.ndarray, n_classes: int) -> np.ndarray:
    """Cosine similarity [Q, C] of each query vector [Q, D] to each class centroid (the mean of the class's
    ``support`` vectors [S, D]); -inf for a class without support vectors (never the argmax)."""
    cent = np.zeros((n_classes, support.shape[1]))
    np.add.at(cent, y_support, support)
    count = np.bincount(y_support, minlength=n_classes)
    sims = _unit(query) @ _unit(cent / np.maximum(count, 1)[:, None]).T
    sims[:, count == 0] = -np.inf
    return sims


def linear_scores(support: np.ndarray, y_support: np.ndarray, query: np.ndarray, n_classes: int,
                  seed: int = 0) -> np.ndarray:
    """Class log-probabilities [Q, C] of a logistic regression (scikit-learn, default L2 penalty C=1, lbfgs)
    fitted on the support set; -inf for a class without support vectors. One class only: it is predicted."""
    out = np.full((len(query), n_classes), -np.inf)
    classes = np.unique(y_support)
    if len(classes) == 1:
        out[:, classes[0]] = 0.0
        return out
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000, random_state=int(seed)).fit(support, y_support)
    out[:, clf.classes_] = clf.predict_log_proba(query)
    return out


def _scores(head, spec, unit_out: np.ndarray, y: np.ndarray) -> dict[str, float]:
    import torch

    s = head.scores(unit_out, {"unit_targets": torch.from_numpy(y)})
    s["main"] = spec.main_score_of(s)
    return s


def run_fewshot(spec, labels, feats, cfg, rep, log) -> dict[str, Any]:
    """The few-shot result fields of a task (the keys ``run_probes`` returns, less the trained probe)."""
    from benchmark.config import parse_layers
    from benchmark.heads import make_head

    check_tasks([spec])
    t0 = time.time()
    fs = cfg.fewshot
    shots, draws, classifier = int(fs.shots), int(fs.draws), str(fs.classifier)
    head = make_head(spec, labels, None)  # no config: key songs are scored by the argmax of their unit scores
    n_classes = head.out_dim()
    layers = parse_layers(cfg.probe.layers, int(rep.num_layers))
    train, valid, test = (pooled(head, feats[s], layers) for s in spec.splits[:3])
    x_tr, y_tr = train
    if not len(y_tr):
        raise RunError(f"[{spec.name}] --mode fewshot: the train split has no items with features")
    mean = x_tr.mean(0)
    std = x_tr.std(0) + 1e-5
    z = {name: (x - mean) / std for name, (x, _) in (("train", train), ("valid", valid), ("test", test))}
    ys = {"valid": valid[1], "test": test[1]}
    score_fn = centroid_scores if classifier == "centroid" else linear_scores
    seeds = list(range(draws))
    supports = [draw_support(y_tr, shots, seed) for seed in seeds]
    per = {(li, split): [] for li in range(len(layers)) for split in ys}
    for seed, sup in zip(seeds, supports):
        for li in range(len(layers)):
            s_x = z["train"][sup, li]
            for split, y in ys.items():
                kw = {"seed": seed} if classifier == "linear" else {}
                out = score_fn(s_x, y_tr[sup], z[split][:, li], n_classes, **kw)
                per[(li, split)].append(_scores(head, spec, out, y))
    rows = []
    for li, layer in enumerate(layers):
        v = [s["main"] for s in per[(li, "valid")]]
        t = per[(li, "test")]
        names = [k for k in t[0] if isinstance(t[0][k], (int, float))]
        rows.append({"layer": str(layer), "lr": None,
                     "valid_main": float(np.mean(v)), "valid_main_std": float(np.std(v)),
                     "test": {k: float(np.mean([x[k] for x in t])) for k in names},
                     "test_std": {k: float(np.std([x[k] for x in t])) for k in names},
                     "test_main_per_draw": [float(x["main"]) for x in t]})
    chosen = max(rows, key=lambda r: r["valid_main"])  # the first (lowest) layer among equals
    counts = np.bincount(y_tr, minlength=n_classes)
    short = {str(head.labels[c]): int(counts[c]) for c in range(n_classes) if counts[c] < shots}
    seconds = time.time() - t0
    log(f"[{spec.name}] few-shot {classifier}, {shots} shots x {draws} draws, {len(layers)} layers: layer "
        f"{chosen['layer']} (valid {chosen['valid_main']:.4f}), test {chosen['test']['main']:.4f} "
        f"+- {chosen['test_std']['main']:.4f} ({seconds:.1f} s)")
    how = "nearest centroid (cosine)" if classifier == "centroid" else "logistic regression on the support set"
    return {
        "scores": {"main": chosen["test"]["main"], "main_std": chosen["test_std"]["main"], "test": chosen["test"],
                   "test_std": chosen["test_std"], "valid_main": chosen["valid_main"]},
        "selection": {"layer": chosen["layer"], "lr": None,
                      "by": f"{how}, layer chosen on validation (mean main score over the draws)"},
        "layers": rows,
        "seeds": seeds,
        "probe": {"mode": "fewshot", "shots": shots, "draws": draws, "classifier": classifier,
                  "distance": "cosine" if classifier == "centroid" else None,
                  "standardize": "train split statistics (pooled embeddings)",
                  "support_sizes": [int(len(s)) for s in supports], "short_classes": short,
                  "seconds": round(seconds, 3)},
    }
