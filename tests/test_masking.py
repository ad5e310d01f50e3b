"""Span masking and the in-batch noise mixture: fractions, padding, minimum spans, determinism per clip."""
from __future__ import annotations

import math

import torch

from mert.masking import clip_seed, compute_mask, span_mask
from mert.noise import mix_in_batch


def test_mask_fraction_matches_fairseq_expectation():
    # prob 0.8, span 5 on 375 frames: 60 distinct starts out of 371 (without replacement, as fairseq); an
    # interior frame stays unmasked when none of its 5 possible starts is drawn: (1 - 60/371)^5 -> 0.587
    fr = []
    for s in range(200):
        m = span_mask(375, 0.8, 5, 2, torch.Generator().manual_seed(s))
        fr.append(m.float().mean().item())
    mean = sum(fr) / len(fr)
    expected = 1 - math.prod(1 - 60 / (371 - j) for j in range(5))
    assert abs(mean - expected) < 0.015, (mean, expected)


def test_mask_respects_padding_and_min_spans():
    lengths = torch.tensor([375, 100, 12, 5])
    m = compute_mask(lengths, 375, [clip_seed(0, 0, i) for i in range(4)], prob=0.8, span=5, min_spans=2)
    assert m.shape == (4, 375)
    for i, n in enumerate(lengths.tolist()):
        assert not m[i, n:].any(), "padding frames must never be masked"
        assert m[i, :n].sum() >= min(n, 5), "at least one full span"
    # low probability: still at least 2 spans (>= 6 frames unless both spans coincide... they are distinct starts)
    m = compute_mask(torch.tensor([300]), 300, [7], prob=0.001, span=5, min_spans=2)
    starts = (m[0].int().diff() == 1).sum() + int(m[0, 0])
    assert m.sum() >= 6 and starts >= 1
    # a clip shorter than the span is masked entirely rather than failing
    m = compute_mask(torch.tensor([3]), 10, [1], prob=0.8, span=5, min_spans=2)
    assert m[0, :3].all() and not m[0, 3:].any()


def test_mask_is_a_function_of_the_clip_seed_only():
    a = compute_mask(torch.tensor([200, 150]), 200, [11, 22])
    b = compute_mask(torch.tensor([150, 200, 90]), 200, [22, 11, 33])
    assert torch.equal(a[0], b[1]) and torch.equal(a[1], b[0])


def test_noise_mixture_adds_segments_of_other_clips():
    torch.manual_seed(0)
    b, t, sr = 4, 24000 * 3, 24000
    wav = torch.zeros(b, t)
    for i in range(b):
        wav[i] = float(i + 1)  # constant level per clip: what was added tells where it came from
    lengths = torch.tensor([t, t, t, 2 * sr])
    wav[3, 2 * sr:] = 0
    seeds = [clip_seed(5, 0, i) for i in range(b)]
    noisy, added = mix_in_batch(wav, lengths, seeds, prob=1.0, seconds=(0.5, 1.0), sample_rate=sr)
    assert all(1 <= a <= 3 for a in added)
    assert torch.equal(wav[0], torch.ones(t)), "the clean batch is left untouched (targets come from it)"
    for i in range(b):
        extra = noisy[i] - wav[i]
        vals = set(torch.unique(extra).tolist()) - {0.0}
        assert vals and all(v != i + 1 for v in vals if v in (1.0, 2.0, 3.0, 4.0)), (i, vals)
        n_changed = int((extra != 0).sum())
        assert 0.5 * sr <= n_changed <= 3 * 1.0 * sr + 1
        assert not extra[int(lengths[i]):].any(), "nothing is added in the padding"
    # prob 0: identical; prob 0.5: about half the clips
    same, added0 = mix_in_batch(wav, lengths, seeds, prob=0.0)
    assert torch.equal(same, wav) and added0 == [0] * b
    many = [mix_in_batch(wav[:2, :sr], torch.tensor([sr, sr]), [clip_seed(9, s, 0), clip_seed(9, s, 1)],
                         prob=0.5, seconds=(0.1, 0.2))[1] for s in range(200)]
    frac = sum(1 for a in many for x in a if x) / 400
    assert 0.4 < frac < 0.6


def test_noise_segment_lengths_follow_the_config():
    sr = 1000
    wav = torch.stack([torch.zeros(10 * sr), torch.ones(10 * sr)])
    lens = torch.tensor([10 * sr, 10 * sr])
    for s in range(30):
        noisy, added = mix_in_batch(wav, lens, [clip_seed(s, 0), clip_seed(s, 1)], prob=1.0, min_segments=1,
                                    max_segments=1, seconds=(0.5, 1.5), sample_rate=sr)
        n = int((noisy[0] != 0).sum())
        assert added[0] == 1 and 500 <= n <= 1500
