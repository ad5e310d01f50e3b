"""Pretraining: the debug config learns with every teacher, configs, parameter counts, non-finite handling,
export. (DDP equality: test_pretrain_ddp.py; SIGKILL + resume: test_pretrain_resume.py.)

Audio: the tiny embedded pretraining collection (tasks.embedded.prepare_pretraining("tiny"), rendered music),
the first 4 s of 6 of its files for EnCodec (slower to label on the CPU). EnCodec labels come from the real EnCodec
architecture with self-initialised codebooks (no pretrained weights in tests; see test_teachers.py).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_audio import make_audio_folder, self_initialised_encodec  # noqa: E402


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """The tiny embedded pretraining collection (12 rendered 15 s pieces), or synthetic music without it."""
    try:
        from tasks.embedded import prepare_pretraining
    except ImportError:  # pragma: no cover - the embedded corpus is part of the repo
        return make_audio_folder(tmp_path_factory.mktemp("pt") / "audio", 8, (1.5, 3.0), seed=1)
    return prepare_pretraining("tiny", home=tmp_path_factory.mktemp("home"), progress=False)


def subset(folder: Path, out: Path, n: int, seconds: float = 4.0) -> Path:
    """The first ``seconds`` of the first n files of ``folder``, for the slower EnCodec teacher on the CPU."""
    from mert.audio import read_audio, write_audio

    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(folder.glob("*.flac"))[:n]:
        write_audio(out / f.name, read_audio(f, 24000, end=seconds), 24000)
    return out


def make_labels(audio, out, teacher, clusters=16):
    from mert.teachers.command import make_labels as mk

    args = argparse.Namespace(teacher=teacher, audio=audio, out=out, shard_size=8, weights=None, device="cpu",
                              clusters=clusters, fit_files=100, fit_frames=20000, seed=0)
    mk(args, encodec_model=self_initialised_encodec() if teacher == "encodec" else None)
    return out


def train(labels, out, *overrides):
    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config

    cfg = load_config("debug", [f"data.labels={labels}", f"train.out_dir={out}", *overrides])
    return Trainer(cfg).run()


@pytest.mark.parametrize("teacher", ["kmeans-mfcc", "kmeans-logmel-chroma", "kmeans-mfcc+logmel-chroma", "encodec"])
def test_debug_config_learns_with_each_teacher(audio, tmp_path, teacher):
    src = subset(audio, tmp_path / "subset", 6) if teacher == "encodec" else audio
    labels = make_labels(src, tmp_path / "labels", teacher)
    res = train(labels, tmp_path / "run", "train.save_every=1000")
    h = res["history"]
    assert len(h) == 30 and res["skipped"] == 0
    loss = np.array([r["loss"] for r in h])
    ce = np.array([r["ce"] for r in h])
    first, last = loss[:5].mean(), loss[-5:].mean()
    print(f"{teacher}: loss {first:.3f} -> {last:.3f}, ce {ce[:5].mean():.3f} -> {ce[-5:].mean():.3f}")
    assert last < first - 0.25 and ce[-5:].mean() < ce[:5].mean() - 0.1
    k = {"encodec": 8, "kmeans-mfcc+logmel-chroma": 2}.get(teacher, 1)
    assert all(f"ce_{i}" in h[0] and f"acc_{i}" in h[0] for i in range(k))
    for r in h:  # logged quantities are sane
        assert 0 <= r["acc"] <= 1 and r["cqt"] > 0 and r["feat_pen"] > 0 and math.isfinite(r["grad_norm"])
        assert r["audio_s_per_s"] > 0 and 0 < r["mfu"] < 1
        assert abs(r["loss"] - (r["ce"] + r["cqt"] + 10 * r["feat_pen"])) < 1e-4 * max(1, r["loss"])
    import csv

    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    assert float(rows[-1]["loss"]) == pytest.approx(loss[-1], rel=1e-6)


def test_configs_and_unknown_keys(tmp_path):
    from mert.pretrain_config import ConfigError, load_config

    c95 = load_config("mert-v1-95m", ["data.labels=x"])
    assert (c95.optim.lr, c95.optim.clip_norm, c95.heads.final_dim, c95.noise.max_seconds) == (5e-4, 10.0, 64, 1.0)
    assert (c95.mask.prob, c95.mask.span, c95.heads.temperature, c95.heads.cqt_bins) == (0.8, 5, 0.1, 336)
    assert (c95.heads.cqt_bins_per_octave, c95.heads.cqt_fmin, c95.heads.feature_penalty) == (48, 32.7, 10.0)
    assert tuple(c95.optim.betas) == (0.9, 0.98) and c95.optim.eps == 1e-6 and c95.optim.weight_decay == 0.01
    assert (c95.optim.warmup_updates, c95.optim.max_updates, c95.data.crop_seconds) == (32000, 400000, 5.0)
    c330 = load_config("mert-v1-330m", ["data.labels=x"])
    assert (c330.optim.lr, c330.optim.clip_norm, c330.heads.final_dim, c330.noise.max_seconds) == (1.5e-3, 1.0, 128, 1.5)
    from mert.config import get_preset

    p = get_preset(c330.model.preset)
    assert p.layer_norm_first and p.attention_relax == 32 and p.hidden_dropout == 0 and p.num_hidden_layers == 24
    p = get_preset(c95.model.preset)
    assert not p.layer_norm_first and p.hidden_dropout == 0.1 and p.layerdrop == 0.05
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config("debug", ["data.labels=x", "optim.lrr=1"])
    with pytest.raises(ConfigError, match="model.overrides.dropout"):
        load_config("debug", ["data.labels=x", "model.overrides.dropout=0.1"])
    with pytest.raises(ConfigError, match="data.labels"):
        load_config("debug", [])
    with pytest.raises(ConfigError, match="mini"):
        load_config("nope", ["data.labels=x"])
    from mert.__main__ import main

    assert main(["pretrain", "--config", "debug", "data.labels=x", "optim.lrr=1"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  sede: 3\n")
    with pytest.raises(ConfigError, match="train.sede"):
        load_config(str(bad), ["data.labels=x"])


def test_stability_options_train(audio, tmp_path):
    """pre-LN + attention relaxation (MERT-v1-330M), DeepNorm, bf16 autocast and fp16 with a grad scaler."""
    import torch as _torch

    labels = make_labels(audio, tmp_path / "labels", "kmeans-mfcc")
    variants = {
        "preln-relax": ["model.overrides.layer_norm_first=true", "model.overrides.attention_relax=32.0"],
        "deepnorm": ["model.overrides.deepnorm=true"],
        "bf16": ["train.precision=bf16"],
        "fp16": ["train.precision=fp16"],
    }
    for name, ov in variants.items():
        res = train(labels, tmp_path / name, "optim.max_updates=4", "train.save_every=4", *ov)
        losses = [r["loss"] for r in res["history"]]
        assert len(losses) == 4 and all(math.isfinite(x) for x in losses), (name, losses)
        ck = _torch.load(tmp_path / name / "checkpoints" / "checkpoint-00000004.pt", weights_only=False)
        if name == "preln-relax":
            assert ck["encoder_config"]["layer_norm_first"] and ck["encoder_config"]["attention_relax"] == 32.0
        if name == "deepnorm":
            assert ck["encoder_config"]["deepnorm"]
        if name == "fp16":  # the scaler's state is checkpointed; overflowing steps are skipped and counted
            assert ck["scaler"]["scale"] > 0 and res["skipped"] < 4


def test_lr_schedule_warmup_then_polynomial_decay():
    from mert.pretrain import lr_lambda

    f = lr_lambda(warmup=10, total=110, power=1.0, end_ratio=0.0)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == 0.0
    g = lr_lambda(warmup=0, total=100, power=2.0, end_ratio=0.1)
    assert g(50) == pytest.approx(0.1 + 0.9 * 0.25)


def test_nonfinite_losses_are_skipped_then_the_run_stops(audio, tmp_path):
    from mert.pretrain import NonFiniteLossError, Trainer
    from mert.pretrain_config import load_config

    labels = make_labels(audio, tmp_path / "labels", "kmeans-mfcc")
    # a diverged model: every loss is NaN -> skipped, counted, and the run stops after 3 in a row
    cfg = load_config("debug", [f"data.labels={labels}", f"train.out_dir={tmp_path / 'run'}",
                                "train.max_consecutive_nonfinite=3", "train.save_every=1000"])
    t = Trainer(cfg)
    before = {k: v.clone() for k, v in t.module.encoder.state_dict().items()}
    with torch.no_grad():
        t.module.heads.final_proj.bias.fill_(float("nan"))  # a diverged head: every loss is NaN
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
        t.run()
    assert t.skipped == 3 and t.step == 3
    for k, v in t.module.encoder.state_dict().items():  # skipped steps leave the weights alone
        assert torch.equal(v, before[k]), k
    # a single bad batch is skipped and training goes on
    t2 = Trainer(load_config("debug", [f"data.labels={labels}", f"train.out_dir={tmp_path / 'run2'}",
                                       "optim.max_updates=4", "train.save_every=1000"]))
    real = t2.update
    calls = {"n": 0}

    def flaky(micro):
        calls["n"] += 1
        if calls["n"] == 2:  # a corrupted target in one batch
            micro[0]["cqt"] = torch.full_like(micro[0]["cqt"], float("inf"))
        return real(micro)

    t2.update = flaky
    res = t2.run()
    assert res["skipped"] == 1 and res["step"] == 4 and math.isfinite(res["history"][-1]["loss"])


def test_export_gives_the_trained_encoder(audio, tmp_path):
    from mert import load_model
    from mert.__main__ import main
    from mert.commands.export import encoder_from_checkpoint

    labels = make_labels(audio, tmp_path / "labels", "kmeans-mfcc")
    train(labels, tmp_path / "run", "optim.max_updates=3", "train.save_every=3", "log.wandb=true")
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*")), "W&B logs offline without a login"
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "config.json").exists() and (tmp_path / "exported" / "pretraining.json").exists()
    trained, state = encoder_from_checkpoint(tmp_path / "run")
    assert state["step"] == 3
    loaded = load_model(tmp_path / "exported").eval()
    wav = torch.randn(2, 24000)
    with torch.no_grad():
        a, b = trained(wav).hidden_states, loaded(wav).hidden_states
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "o")]) == 2


PAPER_PARAMS = {"mert-v1-95m": 94.4e6, "mert-v1-330m": 315e6}  # shared/protocol.md section 1 (encoder)


def head_params(dim: int, final_dim: int, k: int = 8, v: int = 1024, cqt_bins: int = 336) -> int:
    """final_proj (dim -> final_dim * k) + code embeddings (k x v x final_dim) + CQT head (dim -> bins)."""
    return dim * final_dim * k + final_dim * k + k * v * final_dim + dim * cqt_bins + cqt_bins


@pytest.mark.parametrize("name", ["mert-v1-95m", "mert-v1-330m"])
def test_paper_configs_parameter_counts(name):
    """Encoder parameters match the protocol within 1 % (counted on the meta device: no memory, instant);
    the pretraining heads are counted apart (they are not part of the released encoder)."""
    from mert.config import get_preset
    from mert.heads import PretrainHeads
    from mert.model import MertModel
    from mert.pretrain_config import load_config

    cfg = load_config(name, ["data.labels=x"])
    with torch.device("meta"):
        enc = MertModel(get_preset(cfg.model.preset))
        heads = PretrainHeads(enc.dim, 8, 1024, cfg.heads.final_dim, cfg.heads.temperature, cfg.heads.cqt_bins)
    n_enc = sum(p.numel() for p in enc.parameters())
    n_heads = sum(p.numel() for p in heads.parameters())
    assert abs(n_enc - PAPER_PARAMS[name]) / PAPER_PARAMS[name] < 0.01, n_enc
    assert n_heads == head_params(enc.dim, cfg.heads.final_dim)
    print(f"{name}: encoder {n_enc / 1e6:.2f}M, heads {n_heads / 1e6:.2f}M, total {(n_enc + n_heads) / 1e6:.2f}M")


@pytest.mark.parametrize("name", ["mert-v1-95m", pytest.param("mert-v1-330m", marks=pytest.mark.slow)])
def test_paper_configs_one_training_step_on_cpu(name):
    """One forward + backward of the full pretraining model (encoder + 8 x 1024 heads + CQT head) on a 1 s
    batch of 2 clips, on the CPU."""
    from mert.heads import PretrainHeads, PretrainModel, total_loss
    from mert.masking import compute_mask
    from mert.model import build_model
    from mert.pretrain_config import load_config
    from mert.teachers.cqt import CQTTeacher

    cfg = load_config(name, ["data.labels=x"])
    enc = build_model(cfg.model.preset, seed=0, layerdrop=0.0)  # every layer gets a gradient
    heads = PretrainHeads(enc.dim, 8, 1024, cfg.heads.final_dim, cfg.heads.temperature, cfg.heads.cqt_bins)
    model = PretrainModel(enc, heads).train()
    wav = torch.randn(2, 24000)
    t = enc.num_frames(24000)
    mask = compute_mask(torch.tensor([t, t]), t, [1, 2])
    labels = torch.randint(0, 1024, (2, t, 8))
    cqt = CQTTeacher()(wav)
    s = model(wav, torch.tensor([24000, 24000]), mask, labels, cqt)
    loss = total_loss(s, s.masked, s.valid)
    loss.backward()
    # untrained: the cross-entropy sum over 8 codebooks is near 8 ln(1024)
    assert math.isfinite(loss.item()) and loss.item() > 8 * math.log(1024) * 0.5
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.endswith("masked_spec_embed"))


def test_keep_every_spares_checkpoints_from_pruning(audio, tmp_path):
    """train.keep_checkpoints prunes to the newest N; train.keep_every also keeps every multiple of it (for a
    score-vs-updates curve after the run), and resuming still starts from the newest."""
    from mert.pretrain import CKPT_RE

    labels = make_labels(audio, tmp_path / "labels", "kmeans-mfcc")

    def kept(run):
        return sorted(int(m.group(1)) for p in (run / "checkpoints").iterdir() if (m := CKPT_RE.match(p.name)))

    train(labels, tmp_path / "plain", "optim.max_updates=6", "train.save_every=1")
    assert kept(tmp_path / "plain") == [5, 6]
    train(labels, tmp_path / "every", "optim.max_updates=6", "train.save_every=1", "train.keep_every=3")
    assert kept(tmp_path / "every") == [3, 5, 6]  # the newest 2, and the multiples of 3
    res = train(labels, tmp_path / "every", "optim.max_updates=7", "train.save_every=1", "train.keep_every=3")
    assert [r["step"] for r in res["history"]] == [7] and kept(tmp_path / "every") == [3, 6, 7]
