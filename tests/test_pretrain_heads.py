"""The short-run options of the pretraining heads (used by the mini config): the label prior as a logit bias,
dot-product (free-length) logits, the unmasked-frame loss, the heads' own learning rate, and the label prior
entropy the training log compares the CE against."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F


def test_prior_bias_with_a_silent_projection_gives_the_prior_cross_entropy():
    from mert.heads import PretrainHeads

    torch.manual_seed(0)
    counts = torch.tensor([50.0, 30.0, 15.0, 5.0])
    prior = (counts / counts.sum()).log()
    h = PretrainHeads(dim=8, num_codebooks=1, codebook_size=4, final_dim=6, cosine=False)
    h.set_prior(prior[None])
    with torch.no_grad():
        h.final_proj.weight.zero_()
        h.final_proj.bias.zero_()
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 15 + [3] * 5)
    lg = h.logits(torch.randn(len(y), 8))[:, 0]
    ce = F.cross_entropy(lg, y).item()
    p = counts / counts.sum()
    assert ce == pytest.approx(float(-(p * p.log()).sum()), abs=1e-6)  # exactly the prior's entropy
    # the cosine head cannot be silent: a zero projection is normalised to nothing, every code scores 0
    c = PretrainHeads(dim=8, num_codebooks=1, codebook_size=4, final_dim=6, cosine=True)
    with torch.no_grad():
        c.final_proj.weight.normal_()
    lc = c.logits(torch.randn(7, 8))
    assert lc.abs().max() <= 1 / c.temperature + 1e-5  # |cos| / 0.1 <= 10
    # the prior is a buffer (saved with the heads), not a parameter (never trained)
    assert "log_prior" in dict(h.named_buffers()) and "log_prior" not in dict(h.named_parameters())


def test_dot_product_logits_scale_with_the_projection():
    from mert.heads import PretrainHeads

    torch.manual_seed(1)
    h = PretrainHeads(dim=8, num_codebooks=2, codebook_size=5, final_dim=4, cosine=False)
    x = torch.randn(3, 8)
    a = h.logits(x)
    with torch.no_grad():
        h.final_proj.weight.mul_(2)
        h.final_proj.bias.mul_(2)
    assert torch.allclose(h.logits(x), 2 * a, atol=1e-6)
    assert a.shape == (3, 2, 5)


def _model(cosine=True):
    from mert.heads import PretrainHeads, PretrainModel
    from mert.model import build_model

    torch.manual_seed(0)
    enc = build_model("debug").train()
    return PretrainModel(enc, PretrainHeads(enc.dim, 1, 7, 8, cosine=cosine))


def test_unmasked_frames_scored_with_their_own_count():
    from mert.heads import total_loss

    m = _model().eval()
    wav = torch.randn(2, 24000)
    lengths = torch.tensor([24000, 16000])
    t = m.encoder.num_frames(24000)
    mask = torch.zeros(2, t, dtype=torch.bool)
    mask[:, 10:30] = True
    labels = torch.randint(0, 7, (2, t, 1))
    with torch.no_grad():
        s = m(wav, lengths, mask, labels, None, unmasked=True)
        out = m.encoder(wav, lengths, mask=mask)
        valid = torch.arange(t)[None] < out.lengths[:, None]
        u = ~mask & valid
        ce_u = F.cross_entropy(m.heads.logits(out.last_hidden_state[u])[:, 0], labels[u][:, 0], reduction="sum")
    assert float(s.unmasked) == float(u.sum())
    assert float(s.ce_unmasked.sum()) == pytest.approx(float(ce_u), rel=1e-5)
    base = total_loss(s, s.masked, s.valid, 1.0, 10.0)
    both = total_loss(s, s.masked, s.valid, 1.0, 10.0, 0.5, s.valid - s.masked)
    assert float(both - base) == pytest.approx(0.5 * float(ce_u) / float(u.sum()), rel=1e-5)
    # without the flag nothing is computed and the loss is MERT's
    with torch.no_grad():
        s0 = m(wav, lengths, mask, labels, None)
    assert s0.ce_unmasked is None
    assert float(total_loss(s0, s0.masked, s0.valid, 1.0, 10.0, 0.5, s0.valid - s0.masked)) == \
        pytest.approx(float(base), rel=1e-6)


def _labels_folder(tmp_path, codes: np.ndarray, codebook_size: int):
    """A minimal finished labels folder in the storage format (one shard, one file)."""
    from mert.teachers import storage

    (tmp_path / "shards").mkdir(parents=True)
    np.save(tmp_path / "shards" / f"{storage.shard_name(0)}.codes.npy", codes.astype(np.int16))
    manifest = {"format_version": 1, "teacher": "kmeans-mfcc", "settings": {}, "sample_rate": 24000, "hop": 320,
                "frame_rate": 75.0, "frame_convention": "", "num_codebooks": codes.shape[1],
                "codebook_size": codebook_size, "dtype": "int16", "audio_root": str(tmp_path), "num_shards": 1,
                "files": [{"path": "a.flac", "num_samples": 320 * len(codes), "frames": len(codes), "shard": 0,
                           "row": 0}], "total_frames": len(codes), "complete": True}
    (tmp_path / storage.MANIFEST).write_text(json.dumps(manifest))
    return tmp_path


def test_label_store_prior(tmp_path):
    from mert.teachers.storage import LabelStore

    codes = np.array([[0], [0], [1], [2], [0], [1]])
    st = LabelStore(_labels_folder(tmp_path, codes, 4))
    assert st.label_counts().tolist() == [[3, 2, 1, 0]]
    p = np.array([3, 2, 1]) / 6
    assert st.prior_entropy() == pytest.approx(float(-(p * np.log(p)).sum()))
    lp = st.log_prior(smoothing=1.0)
    assert np.allclose(np.exp(lp).sum(1), 1.0) and np.isfinite(lp).all()  # unseen code 3 stays finite
    assert lp[0, 0] == pytest.approx(math.log(4 / 10))


def test_heads_train_at_their_own_learning_rate(tmp_path):
    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config

    from mert.audio import write_audio

    rng = np.random.default_rng(0)
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(2):
        write_audio(audio / f"{i}.flac", (0.1 * rng.standard_normal(24000 * 4)).astype(np.float32), 24000)
    from mert.teachers.command import make_labels
    import argparse

    make_labels(argparse.Namespace(teacher="kmeans-mfcc", audio=audio, out=tmp_path / "labels", shard_size=8,
                                   weights=None, device="cpu", clusters=4, fit_files=10, fit_frames=2000, seed=0))
    cfg = load_config("debug", [f"data.labels={tmp_path / 'labels'}", f"train.out_dir={tmp_path / 'run'}",
                                "optim.lr=1e-3", "optim.head_lr_scale=10", "heads.prior_bias=true",
                                "heads.cosine=false", "heads.unmasked_weight=0.5", "optim.warmup_updates=1",
                                "optim.max_updates=2"])
    tr = Trainer(cfg)
    groups = tr.optimizer.param_groups
    assert len(groups) == 2
    head_ids = {id(p) for p in tr.module.heads.parameters()}
    assert all(id(p) in head_ids for p in groups[1]["params"])
    assert not any(id(p) in head_ids for p in groups[0]["params"])
    assert groups[1]["initial_lr"] == pytest.approx(10 * groups[0]["initial_lr"])
    assert tr.module.heads.log_prior is not None
    hist = tr.run()["history"]
    assert len(hist) == 2 and all(math.isfinite(r["loss"]) and math.isfinite(r["ce_unmasked"]) for r in hist)
    assert hist[0]["ce_prior"] == pytest.approx(tr.dataset.store.prior_entropy())


def test_cqt_on_unmasked_frames():
    from mert.heads import PretrainHeads, PretrainModel, total_loss
    from mert.model import build_model

    torch.manual_seed(0)
    enc = build_model("debug").eval()
    m = PretrainModel(enc, PretrainHeads(enc.dim, 1, 7, 8, cqt_bins=5))
    wav = torch.randn(2, 24000)
    lengths = torch.tensor([24000, 16000])
    t = enc.num_frames(24000)
    mask = torch.zeros(2, t, dtype=torch.bool)
    mask[:, 5:20] = True
    labels = torch.randint(0, 7, (2, t, 1))
    cqt = torch.randn(2, t, 5)
    with torch.no_grad():
        s = m(wav, lengths, mask, labels, cqt, unmasked=True)
        out = enc(wav, lengths, mask=mask)
        u = ~mask & (torch.arange(t)[None] < out.lengths[:, None])
        want = (m.heads.cqt_proj(out.last_hidden_state[u]) - cqt[u]).pow(2).mean(-1).sum()
    assert float(s.cqt_unmasked) == pytest.approx(float(want), rel=1e-5)
    base = total_loss(s, s.masked, s.valid)
    with_u = total_loss(s, s.masked, s.valid, cqt_unmasked_weight=2.0, unmasked_total=s.valid - s.masked)
    assert float(with_u - base) == pytest.approx(2.0 * float(want) / float(u.sum()), rel=1e-5)
