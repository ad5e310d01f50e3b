"""Task metrics: thin wrappers over mir_eval, scikit-learn and fast_bss_eval with input validation.

Every function takes plain arrays / lists, checks shapes and values, and raises a ValueError that says
what is wrong. Scores are returned on the scale the leaderboards use: fractions in [0, 1] for
classification / tagging / key / beat / R2 (R2 may be negative), dB for SDR.

Definitions that the literature leaves open, fixed here:

- ``roc_auc`` / ``ap``: macro averages over tags (scikit-learn ``average="macro"``). Tags with no positive or
  no negative example in the evaluated split have no defined ROC-AUC; they are left out of both averages
  (their number is returned by :func:`tagging_scores` as ``tags_skipped``). With no scorable tag at all
  the function raises.
- ``weighted_key``: the MIREX weighted score of ``mir_eval.key.weighted_score`` (1 same key, 0.5 fifth,
  0.3 relative, 0.2 parallel) averaged over songs.
- ``beat_f``: beat F-measure with a +-0.07 s window, **pooled over tracks**: every track's estimated beats
  are matched to its reference beats one-to-one (``mir_eval.util.match_events``, the matching inside
  ``mir_eval.beat.f_measure``); precision = all hits / all estimated beats, recall = all hits / all
  reference beats, F = 2PR / (P + R). Long tracks weigh by their beat count, and a track with no estimated
  beats counts its misses instead of producing an undefined per-track F. No beats are trimmed at the start
  (``mir_eval.beat.trim_beats`` drops the first 5 s, most of a short embedded clip).
  ``beat_f_mean`` (the mean of per-track ``mir_eval.beat.f_measure``) is also reported.
- ``sdr_<stem>``: BSS-eval SDR (``fast_bss_eval.bss_eval_sources``, BSS-eval v3 with a 512-tap distortion
  filter, no permutation; equal to ``mir_eval.separation.bss_eval_sources``) of each stem over the whole track, then the **median over tracks** (SiSEC convention). Tracks
  where the reference stem is silent are left out for that stem.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

BEAT_WINDOW_S = 0.07


def _as_array(x, name: str, ndim: int | None = None, dtype=None) -> np.ndarray:
    a = np.asarray(x, dtype=dtype)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Fraction of exact matches (scikit-learn ``accuracy_score``)."""
    from sklearn.metrics import accuracy_score

    t = _as_array(y_true, "y_true", 1)
    p = _as_array(y_pred, "y_pred", 1)
    if t.shape != p.shape:
        raise ValueError(f"accuracy: y_true has {t.shape[0]} items, y_pred {p.shape[0]}")
    return float(accuracy_score(t, p))


def _tag_inputs(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = _as_array(y_true, "y_true", 2)
    s = _as_array(scores, "scores", 2, dtype=np.float64)
    if t.shape != s.shape:
        raise ValueError(f"tagging metrics: y_true shape {t.shape} != scores shape {s.shape}")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("tagging metrics: y_true must be a 0/1 matrix [items, tags]")
    t = t.astype(np.int64)
    pos = t.sum(0)
    ok = (pos > 0) & (pos < t.shape[0])
    if not ok.any():
        raise ValueError(
            "tagging metrics: no tag has both positive and negative examples; ROC-AUC is undefined "
            "(is the evaluated split too small?)"
        )
    return t[:, ok], s[:, ok], ok


def roc_auc_macro(y_true, scores) -> float:
    """Macro ROC-AUC over the tags that have positives and negatives."""
    from sklearn.metrics import roc_auc_score

    t, s, _ = _tag_inputs(y_true, scores)
    return float(roc_auc_score(t, s, average="macro"))


def ap_macro(y_true, scores) -> float:
    """Macro average precision over the tags that have positives and negatives."""
    from sklearn.metrics import average_precision_score

    t, s, _ = _tag_inputs(y_true, scores)
    return float(average_precision_score(t, s, average="macro"))


def tagging_scores(y_true, scores) -> dict[str, float]:
    t, s, ok = _tag_inputs(y_true, scores)
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(t, s, average="macro")),
        "ap": float(average_precision_score(t, s, average="macro")),
        "tags_skipped": int((~ok).sum()),
    }


def r2_per_dimension(y_true, y_pred, names: Sequence[str]) -> dict[str, float]:
    """``{"r2_<name>": R2}`` per regression dimension (scikit-learn ``r2_score``, raw values)."""
    from sklearn.metrics import r2_score

    t = _as_array(y_true, "y_true", 2, dtype=np.float64)
    p = _as_array(y_pred, "y_pred", 2, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"r2: y_true shape {t.shape} != y_pred shape {p.shape}")
    if t.shape[1] != len(names):
        raise ValueError(f"r2: {t.shape[1]} dimensions but {len(names)} names {list(names)}")
    if t.shape[0] < 2:
        raise ValueError("r2: needs at least 2 items")
    r = r2_score(t, p, multioutput="raw_values")
    return {f"r2_{n}": float(v) for n, v in zip(names, r)}


def weighted_key(reference: Sequence[str], estimated: Sequence[str]) -> float:
    """Mean MIREX weighted key score (mir_eval) over songs; keys spelled like ``"A minor"``."""
    import mir_eval

    if len(reference) != len(estimated):
        raise ValueError(f"weighted_key: {len(reference)} reference keys but {len(estimated)} estimates")
    if not len(reference):
        raise ValueError("weighted_key: no songs")
    total = 0.0
    for r, e in zip(reference, estimated):
        for k, name in ((r, "reference"), (e, "estimated")):
            try:
                mir_eval.key.validate_key(k)
            except ValueError as err:
                raise ValueError(f"weighted_key: bad {name} key {k!r}: {err}") from None
        total += mir_eval.key.weighted_score(r, e)
    return float(total / len(reference))


def _beats(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size and (not np.isfinite(a).all() or (a < 0).any()):
        raise ValueError(f"{name}: beat times must be finite and >= 0")
    if a.size > 1 and (np.diff(a) <= 0).any():
        raise ValueError(f"{name}: beat times must be strictly increasing")
    return a


def beat_scores(reference: Sequence, estimated: Sequence, window: float = BEAT_WINDOW_S) -> dict[str, float]:
    """``beat_f`` (pooled over tracks, see module doc) and ``beat_f_mean`` (mean per-track F)."""
    import mir_eval

    if len(reference) != len(estimated):
        raise ValueError(f"beat: {len(reference)} reference tracks but {len(estimated)} estimates")
    if not len(reference):
        raise ValueError("beat: no tracks")
    hits = n_ref = n_est = 0
    per_track = []
    for i, (r, e) in enumerate(zip(reference, estimated)):
        r = _beats(r, f"reference track {i}")
        e = _beats(e, f"estimated track {i}")
        m = len(mir_eval.util.match_events(r, e, window)) if len(r) and len(e) else 0
        hits += m
        n_ref += len(r)
        n_est += len(e)
        per_track.append(mir_eval.beat.f_measure(r, e, window) if len(r) and len(e) else 0.0)
    if n_ref == 0:
        raise ValueError("beat: no reference beats in any track")
    p = hits / n_est if n_est else 0.0
    rec = hits / n_ref
    f = 2 * p * rec / (p + rec) if p + rec > 0 else 0.0
    return {"beat_f": float(f), "beat_f_mean": float(np.mean(per_track)), "beat_precision": float(p),
            "beat_recall": float(rec)}


def sdr_per_track(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """SDR in dB of each source: ``reference`` / ``estimate`` [sources, samples] -> [sources]."""
    import fast_bss_eval

    r = _as_array(reference, "reference", 2, dtype=np.float64)
    e = _as_array(estimate, "estimate", 2, dtype=np.float64)
    if r.shape != e.shape:
        raise ValueError(f"sdr: reference shape {r.shape} != estimate shape {e.shape}")
    if r.shape[1] < 1024:
        raise ValueError(f"sdr: {r.shape[1]} samples is too short for BSS-eval (>= 1024)")
    # numpy backend with conjugate-gradient solves: its direct solver fails under numpy 2 and the torch
    # backend's float64 solve hits MKL errors on some builds; 30 CG iterations agree with mir_eval's
    # bss_eval_sources to ~1e-3 dB (tests/test_metrics.py)
    sdr = fast_bss_eval.bss_eval_sources(np.ascontiguousarray(r), np.ascontiguousarray(e), filter_length=512,
                                         compute_permutation=False, use_cg_iter=30)[0]
    return np.asarray(sdr, dtype=np.float64)


class SeparationScores:
    """Per-track BSS-eval SDRs accumulated track by track (so no split's estimates are held at once):
    :meth:`add` each (reference [S, N], estimate [S, N]); :meth:`result` is :func:`separation_scores`'s."""

    def __init__(self, stems: Sequence[str], silence_rms: float = 1e-4):
        self.stems, self.silence_rms = list(stems), float(silence_rms)
        self.per: dict[str, list[float]] = {s: [] for s in self.stems}
        self.n = 0

    def add(self, reference: np.ndarray, estimate: np.ndarray) -> None:
        r = np.asarray(reference, dtype=np.float64)
        if r.shape[0] != len(self.stems):
            raise ValueError(f"separation: reference has {r.shape[0]} stems, expected {len(self.stems)} {self.stems}")
        self.n += 1
        active = np.sqrt((r ** 2).mean(1)) > self.silence_rms
        if not active.any():
            return
        sdr = sdr_per_track(r[active], np.asarray(estimate, dtype=np.float64)[active])
        for s, v in zip(np.asarray(self.stems)[active], sdr):
            self.per[s].append(v)

    def result(self) -> dict[str, float]:
        """``{"sdr_<stem>": median over tracks}``; tracks whose reference stem is silent are left out."""
        if not self.n:
            raise ValueError("separation: no tracks scored")
        out = {}
        for s in self.stems:
            v = [x for x in self.per[s] if np.isfinite(x)]
            out[f"sdr_{s}"] = float(np.median(v)) if v else float("nan")
        return out


def separation_scores(references: Sequence[np.ndarray], estimates: Sequence[np.ndarray], stems: Sequence[str],
                      silence_rms: float = 1e-4) -> dict[str, float]:
    """``{"sdr_<stem>": median over tracks}``; tracks whose reference stem is silent are left out."""
    if len(references) != len(estimates) or not len(references):
        raise ValueError(f"separation: {len(references)} references, {len(estimates)} estimates")
    acc = SeparationScores(stems, silence_rms)
    for r, e in zip(references, estimates):
        acc.add(r, e)
    return acc.result()
