"""benchmark.metrics against hand-computed values and the libraries' own numbers."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark import metrics as M


def test_accuracy_hand_computed():
    assert M.accuracy([0, 1, 2, 2], [0, 2, 2, 2]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="y_true has 2 items, y_pred 3"):
        M.accuracy([0, 1], [0, 1, 1])


def test_roc_auc_and_ap_hand_computed():
    # tag 0: positives score 0.9, 0.4; negatives 0.5, 0.1 -> pairs won: (0.9>0.5, 0.9>0.1, 0.4>0.1) = 3/4
    # tag 1: perfect ranking -> 1.0; AP tag 0: ranks 0.9(+) 0.5(-) 0.4(+) 0.1(-) -> (1/1 + 2/3) / 2 = 5/6
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.array([[0.9, 0.1], [0.5, 0.8], [0.4, 0.7], [0.1, 0.2]])
    assert M.roc_auc_macro(y, s) == pytest.approx((0.75 + 1.0) / 2)
    assert M.ap_macro(y, s) == pytest.approx((5 / 6 + 1.0) / 2)


def test_tagging_skips_tags_without_both_classes():
    y = np.array([[1, 1], [0, 1], [1, 1]])  # tag 1 has no negative
    s = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.5]])
    out = M.tagging_scores(y, s)
    assert out["roc_auc"] == pytest.approx(1.0) and out["tags_skipped"] == 1
    with pytest.raises(ValueError, match="no tag has both"):
        M.roc_auc_macro(np.ones((3, 2)), s)
    with pytest.raises(ValueError, match="0/1"):
        M.ap_macro(np.full((3, 2), 0.5), s)


def test_r2_per_dimension_hand_computed():
    t = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    p = np.array([[1.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    # dim a: SSE 1, SST 2 -> 0.5 ; dim v: SSE 2, SST 2 -> 0
    assert M.r2_per_dimension(t, p, ["a", "v"]) == {"r2_a": pytest.approx(0.5), "r2_v": pytest.approx(0.0)}
    with pytest.raises(ValueError, match="2 dimensions but 1 names"):
        M.r2_per_dimension(t, p, ["a"])


def test_weighted_key_mirex_weights():
    ref = ["C major", "C major", "C major", "C major", "C major"]
    est = ["C major", "G major", "A minor", "C minor", "F# major"]
    # 1 same + 0.5 fifth + 0.3 relative + 0.2 parallel + 0 other
    assert M.weighted_key(ref, est) == pytest.approx((1 + 0.5 + 0.3 + 0.2 + 0) / 5)
    with pytest.raises(ValueError, match="bad estimated key 'H major'"):
        M.weighted_key(["C major"], ["H major"])


def test_beat_f_pooled_over_tracks_hand_computed():
    import mir_eval

    ref = [np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0])]
    est = [np.array([1.05, 2.1, 3.0]), np.array([])]
    out = M.beat_scores(ref, est)
    # hits: 1.05 and 3.0 (2.1 is outside 0.07 s); P = 2/3, R = 2/5, F = 2PR/(P+R) = 0.5
    assert out["beat_f"] == pytest.approx(0.5)
    assert out["beat_precision"] == pytest.approx(2 / 3) and out["beat_recall"] == pytest.approx(0.4)
    per_track0 = mir_eval.beat.f_measure(ref[0], est[0], 0.07)
    assert out["beat_f_mean"] == pytest.approx(per_track0 / 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        M.beat_scores([np.array([2.0, 1.0])], [np.array([1.0])])


def test_sdr_matches_definition_for_scaled_noise():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 8000))
    noise = rng.standard_normal((2, 8000))
    noise -= (noise * ref).sum(1, keepdims=True) / (ref * ref).sum(1, keepdims=True) * ref  # orthogonal to ref
    est = ref + 0.1 * noise
    sdr = M.sdr_per_track(ref, est)
    expected = 10 * np.log10((ref ** 2).sum(1) / ((0.1 * noise) ** 2).sum(1))
    assert np.allclose(sdr, expected, atol=0.5)  # the 512-tap filter absorbs a little of the noise
    import warnings

    import mir_eval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref_sdr = mir_eval.separation.bss_eval_sources(ref, est, compute_permutation=False)[0]
    assert np.allclose(sdr, ref_sdr, atol=1e-2)
    out = M.separation_scores([ref, ref], [est, est], ["a", "b"])
    assert out["bss_sdr_a"] == pytest.approx(sdr[0])
    assert out["sdr_a"] == pytest.approx(M.global_sdr(ref, est)[0])
    silent = ref.copy()
    silent[1] = 0
    out = M.separation_scores([silent], [est], ["a", "b"])
    assert np.isnan(out["bss_sdr_b"]) and np.isnan(out["sdr_b"])
    assert set(M.separation_scores([ref], [est], ["a", "b"], bss=False)) == {"sdr_a", "sdr_b"}


def test_global_sdr_is_marbles_formula():
    """MARBLE's GlobalSDR: 10 log10((|s|^2 + 1e-7) / (|s - s_hat|^2 + 1e-7)), no filter, no scale invariance;
    the split score is the mean over tracks (not the median)."""
    n = 4000
    ref = np.stack([np.ones(n), np.tile([1.0, -1.0], n // 2)])
    est = np.stack([0.5 * np.ones(n), np.zeros(n)])
    want = [10 * np.log10((n + 1e-7) / (0.25 * n + 1e-7)), 10 * np.log10((n + 1e-7) / (n + 1e-7))]
    np.testing.assert_allclose(M.global_sdr(ref, est), want, rtol=0, atol=1e-12)
    assert want[0] == pytest.approx(6.0206, abs=1e-4) and want[1] == 0.0
    perfect = M.global_sdr(ref, ref)
    assert perfect[0] == pytest.approx(10 * np.log10((n + 1e-7) / 1e-7))  # the delta bounds a perfect estimate
    est2 = np.stack([0.9 * np.ones(n), 0.5 * ref[1]])
    out = M.separation_scores([ref, ref], [est, est2], ["a", "b"], bss=False)
    assert out["sdr_a"] == pytest.approx(np.mean([M.global_sdr(ref, est)[0], M.global_sdr(ref, est2)[0]]))
    assert out["sdr_b"] == pytest.approx(np.mean([0.0, 10 * np.log10(n / (0.25 * n))]))
