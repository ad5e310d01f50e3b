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
- ``sdr_<stem>``: MARBLE's global SDR, ``10 log10((|s|^2 + 1e-7) / (|s - s_hat|^2 + 1e-7))`` over the whole track
  (``GlobalSDR`` of MARBLE's ``tasks/MUSDB18/MUSDB18_metrics.py``, no filter), then the **mean over tracks**.
- ``bss_sdr_<stem>``: BSS-eval SDR (``fast_bss_eval.bss_eval_sources``, BSS-eval v3 with a 512-tap distortion
  filter, no permutation; equal to ``mir_eval.separation.bss_eval_sources``) of each stem over the whole track, then
  the **median over tracks** (SiSEC convention). The correlations it needs are summed block by block
  (:func:`sdr_per_track`), so memory does not grow with the track length.
- For both, tracks where the reference stem is silent (RMS at most 1e-4) are left out for that stem: BSS-eval is
  undefined there, and the global SDR of a silent reference is about -70 dB whatever the estimate.
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


#: samples per block of the chunked BSS-eval statistics (:func:`sdr_per_track`). Working memory is about
#: ``(3 * S**2 + 5 * S) * SDR_BLOCK * 8`` bytes (the [S, S, SDR_BLOCK / 2] complex cross-spectra summed over blocks,
#: one product, the block's samples and spectra) whatever the track length: ~35 MB for 4 stems
SDR_BLOCK = 2 ** 16
SDR_FILTER_LENGTH = 512  # BSS-eval v3 distortion filter taps
SDR_CG_ITER = 30  # conjugate-gradient iterations of fast_bss_eval's Toeplitz solves


def _signal_2d(x, name: str) -> np.ndarray:
    """A 2-d [sources, samples] array for block-wise reading: an ndarray (np.memmap included) is kept as it is,
    in its own dtype (blocks are converted to float64 as they are read); anything else goes through
    ``np.asarray(x, dtype=float64)``. Finiteness is checked block by block by the reader."""
    a = x if isinstance(x, np.ndarray) and x.dtype.kind in "biuf" else np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty")
    return a


def _read_block(a: np.ndarray, rows, start: int, stop: int, name: str) -> np.ndarray:
    """Rows ``rows`` (None: all) of samples ``[start, stop)`` of ``a`` in float64 (a copy of that block only)."""
    blk = a[:, start:stop] if rows is None else a[rows, start:stop]
    blk = np.asarray(blk, dtype=np.float64)
    if not np.isfinite(blk).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return blk


def _bss_correlations(ref: np.ndarray, est: np.ndarray, filter_length: int = SDR_FILTER_LENGTH,
                      block: int = SDR_BLOCK, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """The statistics of ``fast_bss_eval.numpy.compute_stats_2`` on the unit-norm signals, accumulated block by
    block: ``acf`` [2L, S, S] (lags 0..L-1 of ``sum_n r_c[n + m] r_d[n]``, then lags -L..-1) and ``xcorr``
    [L, S, S] (``sum_n r_c[n] e_d[n + l]``, lags 0..L-1), ``L = filter_length``; ``r`` = ``ref[rows]`` / its
    norm over time, ``e`` likewise (norms clamped at 1e-6 as ``fast_bss_eval``'s ``_normalize`` does).

    Each block of ``block`` samples is correlated with itself extended by ``L`` samples of what follows, through
    real FFTs of a fixed small size; the cross-spectra are summed over blocks (correlation is linear, so the sum
    of the blocks' spectra is the spectrum of the whole correlation at lags 0..L) and transformed back once.
    Peak memory: O(S * block + S**2 * block), independent of the number of samples."""
    from scipy import fft as sfft

    n = ref.shape[1]
    n_src = ref.shape[0] if rows is None else len(rows)
    L = int(filter_length)
    b = max(1, min(int(block), n))
    n_fft = sfft.next_fast_len(b + L, real=True)  # lags 0..L of a block of b samples do not wrap around
    n_freq = n_fft // 2 + 1
    spec_acf = np.zeros((n_src, n_src, n_freq), dtype=np.complex128)  # [c, d]: R_c-extended x conj(R_d-block)
    spec_xc = np.zeros((n_src, n_src, n_freq), dtype=np.complex128)  # [c, d]: conj(R_c-block) x E_d-extended
    sq_ref = np.zeros(n_src)
    sq_est = np.zeros(n_src)
    for s in range(0, n, b):
        stop = min(s + b, n)
        stop_ext = min(stop + L, n)
        r_ext = _read_block(ref, rows, s, stop_ext, "reference")
        e_ext = _read_block(est, rows, s, stop_ext, "estimate")
        r_blk = r_ext[:, : stop - s]
        sq_ref += np.einsum("cn,cn->c", r_blk, r_blk)
        e_blk = e_ext[:, : stop - s]
        sq_est += np.einsum("cn,cn->c", e_blk, e_blk)
        R_ext = sfft.rfft(r_ext, n=n_fft, axis=-1)
        R_blk_conj = sfft.rfft(r_blk, n=n_fft, axis=-1).conj()
        E_ext = sfft.rfft(e_ext, n=n_fft, axis=-1)
        spec_acf += R_ext[:, None, :] * R_blk_conj[None, :, :]
        spec_xc += R_blk_conj[:, None, :] * E_ext[None, :, :]
        del r_ext, e_ext, r_blk, e_blk, R_ext, R_blk_conj, E_ext
    lags_acf = sfft.irfft(spec_acf, n=n_fft, axis=-1)[..., : L + 1]  # [c, d, m], m = 0..L
    del spec_acf
    lags_xc = sfft.irfft(spec_xc, n=n_fft, axis=-1)[..., :L]  # [c, d, l], l = 0..L-1
    del spec_xc
    norm_ref = np.maximum(np.sqrt(sq_ref), 1e-6)
    norm_est = np.maximum(np.sqrt(sq_est), 1e-6)
    pos = np.moveaxis(lags_acf, -1, 0) / (norm_ref[:, None] * norm_ref[None, :])  # [m, c, d], lags 0..L
    # lag -m of (c, d) is lag m of (d, c): rows L..2L-1 hold lags -L..-1
    acf = np.concatenate([pos[:L], pos[L:0:-1].transpose(0, 2, 1)], axis=0)
    xcorr = np.moveaxis(lags_xc, -1, 0) / (norm_ref[:, None] * norm_est[None, :])
    return np.ascontiguousarray(acf), np.ascontiguousarray(xcorr)


def _square_cosines_chunked(ref: np.ndarray, est: np.ndarray, filter_length: int = SDR_FILTER_LENGTH,
                            use_cg_iter: int = SDR_CG_ITER, block: int = SDR_BLOCK,
                            rows=None, sar: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``fast_bss_eval.numpy.square_cosine_metrics(ref, est, filter_length, use_cg_iter, pairwise=False)``
    (``coh_sdr``, ``coh_sar``, each [S]; ``coh_sar`` None without ``sar``) from the block-wise statistics of
    :func:`_bss_correlations`, solved with fast_bss_eval's own preconditioned conjugate-gradient Toeplitz /
    block-Toeplitz solvers."""
    acf, xcorr = _bss_correlations(ref, est, filter_length, block, rows)
    return _square_cosines_from_stats(acf, xcorr, filter_length, use_cg_iter, sar)


def _square_cosines_from_stats(acf: np.ndarray, xcorr: np.ndarray, filter_length: int = SDR_FILTER_LENGTH,
                               use_cg_iter: int = SDR_CG_ITER,
                               sar: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The solve stage of ``square_cosine_metrics(..., pairwise=False)`` on given ``acf`` [2L, S, S] / ``xcorr``
    [L, S, S]: SDR coherence from each reference's own Toeplitz system, SAR coherence from the block-Toeplitz
    system of all references (30 CG iterations each, fast_bss_eval's solvers); the SAR solve only with ``sar``
    (the SDR does not need it)."""
    from fast_bss_eval.numpy.cgd import block_toeplitz_conjugate_gradient, toeplitz_conjugate_gradient

    L = filter_length
    diag = np.arange(acf.shape[-1])
    acf_sdr = acf[:, diag, diag].T[:, :L]  # [S, L]: each reference's own autocorrelation, lags 0..L-1
    xcorr_sdr = xcorr[:, diag, diag].T  # [S, L]: reference c with estimate c
    sol = toeplitz_conjugate_gradient(acf_sdr, xcorr_sdr, n_iter=use_cg_iter)
    coh_sdr = np.einsum("cl,cl->c", xcorr_sdr, sol)
    if not sar:
        return coh_sdr, None
    xcorr_flat = xcorr.reshape(-1, xcorr.shape[-1])  # [L * S, S], row l * S + c
    sol = block_toeplitz_conjugate_gradient(acf, xcorr_flat, n_iter=use_cg_iter)
    coh_sar = np.einsum("lc,lc->c", xcorr_flat, sol)
    return coh_sdr, coh_sar


def _sdr_chunked(reference, estimate, rows=None, block: int | None = None) -> np.ndarray:
    """:func:`sdr_per_track` of ``reference[rows]`` / ``estimate[rows]`` (None: all rows) without copying them:
    inputs are validated and read block by block (``block`` samples, default :data:`SDR_BLOCK`)."""
    from fast_bss_eval.numpy.helpers import _coherence_to_neg_sdr

    r = _signal_2d(reference, "reference")
    e = _signal_2d(estimate, "estimate")
    if r.shape != e.shape:
        raise ValueError(f"sdr: reference shape {r.shape} != estimate shape {e.shape}")
    if r.shape[1] < 1024:
        raise ValueError(f"sdr: {r.shape[1]} samples is too short for BSS-eval (>= 1024)")
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if not rows.size:
            raise ValueError("sdr: no sources selected")
    coh_sdr, _ = _square_cosines_chunked(r, e, SDR_FILTER_LENGTH, SDR_CG_ITER,
                                         SDR_BLOCK if block is None else int(block), rows, sar=False)
    # bss_eval_sources(clamp_db=None): SDR = -10 log10((1 - coh) / coh), coh clamped to [0, 1]
    return -np.asarray(_coherence_to_neg_sdr(coh_sdr, clamp_db=None), dtype=np.float64)


def sdr_per_track(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """SDR in dB of each source: ``reference`` / ``estimate`` [sources, samples] -> [sources].

    The number ``fast_bss_eval.bss_eval_sources(reference, estimate, filter_length=512,
    compute_permutation=False, use_cg_iter=30)[0]`` gives (numpy backend, conjugate-gradient solves: its direct
    solver fails under numpy 2 and the torch backend's float64 solve hits MKL errors on some builds; 30 CG
    iterations agree with mir_eval's ``bss_eval_sources`` to ~1e-3 dB, tests/test_metrics.py), computed with
    bounded memory: fast_bss_eval FFTs the whole track at twice its length and forms [n_fft, S, S] cross-spectra
    (~9 GB for 4 stems x 4 minutes at 24 kHz); here the correlations the solves need (lags -511..511 of the
    references with each other, 0..511 of references with estimates) are summed block by block
    (:data:`SDR_BLOCK` samples) and handed to fast_bss_eval's own solvers. The sums equal fast_bss_eval's to
    float64 rounding (~1e-15) and so do the SDRs (~1e-12 dB) where the 30-iteration CG solve is well
    conditioned; on strongly tonal references that solve amplifies rounding, and fast_bss_eval's own SDR moves
    by up to ~0.1 dB when only its FFT size changes (trailing zeros): this one lies within that spread
    (tests/test_metrics_bss.py). Inputs may be np.memmap (of any float dtype): they are read block by block in
    float64, never converted whole."""
    return _sdr_chunked(reference, estimate)


#: MARBLE's regulariser of the global SDR (``delta`` in ``GlobalSDR``)
GLOBAL_SDR_DELTA = 1e-7


def global_sdr(reference: np.ndarray, estimate: np.ndarray, rows=None) -> np.ndarray:
    """MARBLE's global SDR of each row (stem) of [S, N] signals: ``10 log10((sum s^2 + 1e-7) / (sum (s - s_hat)^2 +
    1e-7))``. Arrays (np.memmap included) are read block by block in float64."""
    r = _signal_2d(reference, "reference")
    e = _signal_2d(estimate, "estimate")
    if e.shape != r.shape:
        raise ValueError(f"sdr: reference shape {r.shape} != estimate shape {e.shape}")
    k = r.shape[0] if rows is None else len(rows)
    num, den = np.zeros(k), np.zeros(k)
    for s in range(0, r.shape[1], SDR_BLOCK):
        rb = _read_block(r, rows, s, min(s + SDR_BLOCK, r.shape[1]), "reference")
        eb = _read_block(e, rows, s, min(s + SDR_BLOCK, r.shape[1]), "estimate")
        num += np.einsum("cn,cn->c", rb, rb)
        d = rb - eb
        den += np.einsum("cn,cn->c", d, d)
    return 10 * np.log10((num + GLOBAL_SDR_DELTA) / (den + GLOBAL_SDR_DELTA))


class SeparationScores:
    """Per-track SDRs accumulated track by track (so no split's estimates are held at once): :meth:`add` each
    (reference [S, N], estimate [S, N]); :meth:`result` gives ``sdr_<stem>`` (global SDR, mean over tracks) and,
    with ``bss``, ``bss_sdr_<stem>`` (BSS-eval v3, median over tracks): the module doc."""

    def __init__(self, stems: Sequence[str], silence_rms: float = 1e-4, bss: bool = True):
        self.stems, self.silence_rms, self.bss = list(stems), float(silence_rms), bool(bss)
        self.per: dict[str, list[float]] = {s: [] for s in self.stems}
        self.per_global: dict[str, list[float]] = {s: [] for s in self.stems}
        self.n = 0

    def add(self, reference: np.ndarray, estimate: np.ndarray) -> None:
        """Score one track. Arrays (np.memmap included) are read block by block; only the active stems (reference
        RMS > ``silence_rms``) are scored, selected by index, without copying the track."""
        r = _signal_2d(reference, "reference")
        if r.shape[0] != len(self.stems):
            raise ValueError(f"separation: reference has {r.shape[0]} stems, expected {len(self.stems)} {self.stems}")
        e = _signal_2d(estimate, "estimate")
        if e.shape != r.shape:
            raise ValueError(f"sdr: reference shape {r.shape} != estimate shape {e.shape}")
        self.n += 1
        n = r.shape[1]
        sq = np.zeros(r.shape[0])
        for s in range(0, n, SDR_BLOCK):
            blk = _read_block(r, None, s, min(s + SDR_BLOCK, n), "reference")
            sq += np.einsum("cn,cn->c", blk, blk)
        active = np.sqrt(sq / n) > self.silence_rms
        if not active.any():
            return
        rows = None if active.all() else np.flatnonzero(active)
        names = np.asarray(self.stems)[active]
        for s, v in zip(names, global_sdr(r, e, rows)):
            self.per_global[s].append(float(v))
        if self.bss:
            for s, v in zip(names, _sdr_chunked(r, e, rows=rows)):
                self.per[s].append(v)

    def result(self) -> dict[str, float]:
        """``{"sdr_<stem>": mean over tracks}`` (and ``{"bss_sdr_<stem>": median over tracks}`` with ``bss``); tracks
        whose reference stem is silent are left out (nan for a stem silent in every track)."""
        if not self.n:
            raise ValueError("separation: no tracks scored")
        out = {}
        for s in self.stems:
            g = self.per_global[s]
            out[f"sdr_{s}"] = float(np.mean(g)) if g else float("nan")
        if self.bss:
            for s in self.stems:
                v = [x for x in self.per[s] if np.isfinite(x)]
                out[f"bss_sdr_{s}"] = float(np.median(v)) if v else float("nan")
        return out


def separation_scores(references: Sequence[np.ndarray], estimates: Sequence[np.ndarray], stems: Sequence[str],
                      silence_rms: float = 1e-4, bss: bool = True) -> dict[str, float]:
    """:class:`SeparationScores` of every (reference, estimate) track pair."""
    if len(references) != len(estimates) or not len(references):
        raise ValueError(f"separation: {len(references)} references, {len(estimates)} estimates")
    acc = SeparationScores(stems, silence_rms, bss)
    for r, e in zip(references, estimates):
        acc.add(r, e)
    return acc.result()


#: tempo accuracy tolerance (MIREX / v2: an estimate within 4 % of the reference tempo)
TEMPO_TOLERANCE = 0.04


def tempo_of(beats) -> float:
    """A track's tempo in bpm from its beat times: 60 / the median inter-beat interval (nan with < 2 beats)."""
    b = np.sort(np.asarray(beats, dtype=np.float64).ravel())
    if len(b) < 2:
        return float("nan")
    ibi = float(np.median(np.diff(b)))
    return 60.0 / ibi if ibi > 0 else float("nan")


def tempo_scores(reference: Sequence, estimated: Sequence, tolerance: float = TEMPO_TOLERANCE) -> dict[str, float]:
    """Tempo of the decoded beats against the annotated beats' (:func:`tempo_of` of each), per track:

    - ``tempo_acc1``: the fraction of tracks whose estimate is within ``tolerance`` (4 %) of the reference;
    - ``tempo_acc2``: the same, also accepting 2x, 3x, 1/2 and 1/3 of the reference (octave errors);
    - ``tempo_mae``: the mean absolute error in bpm over the tracks with an estimate (``tempo_undefined``
      tracks have fewer than two decoded beats: they count as misses in both accuracies).

    Tracks whose reference has fewer than two beats are left out (``tempo_tracks`` are the ones scored)."""
    if len(reference) != len(estimated):
        raise ValueError(f"tempo: {len(reference)} reference tracks but {len(estimated)} estimates")
    acc1, acc2, err, undefined = [], [], [], 0
    for r, e in zip(reference, estimated):
        tr, te = tempo_of(r), tempo_of(e)
        if not np.isfinite(tr):
            continue
        if not np.isfinite(te):
            undefined += 1
            acc1.append(0.0)
            acc2.append(0.0)
            continue
        acc1.append(float(abs(te - tr) <= tolerance * tr))
        acc2.append(float(any(abs(te - m * tr) <= tolerance * m * tr for m in (1, 2, 3, 1 / 2, 1 / 3))))
        err.append(abs(te - tr))
    if not acc1:
        raise ValueError("tempo: no reference track has two beats")
    return {"tempo_acc1": float(np.mean(acc1)), "tempo_acc2": float(np.mean(acc2)),
            "tempo_mae": float(np.mean(err)) if err else float("nan"), "tempo_tracks": float(len(acc1)),
            "tempo_undefined": float(undefined)}
