"""Teachers and label storage: frame alignment with the encoder, EnCodec codes, k-means, CQT, resumable shards.

No test here has EnCodec's pretrained weights (they cannot be downloaded in tests). The EnCodec tests use the
real 24 kHz EnCodec architecture with random weights and codebooks that the test initialises itself (an
untrained EnCodec's codebooks are all zeros, so every code would be 0): each codebook gets random frames of
the residual it quantises, as EnCodec's k-means initialisation would. The pipeline (bandwidth -> 8
codebooks, chunking, frame counts, storage) is what is tested, not the quality of the codes.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_audio import SR, make_audio_folder, self_initialised_encodec, synth_clip  # noqa: E402

from mert.teachers import HOP, num_frames  # noqa: E402


def labels_args(audio, out, teacher, **kw):
    d = dict(teacher=teacher, audio=Path(audio), out=Path(out), shard_size=3, weights=None, device="cpu",
             clusters=16, fit_files=100, fit_frames=20000, seed=0)
    d.update(kw)
    return argparse.Namespace(**d)


@pytest.fixture(scope="module")
def encodec_model():
    return self_initialised_encodec()


# ------------------------------------------------------------------------------------------------ frames
def test_num_frames_matches_the_encoder():
    from mert import build_model

    m = build_model("debug")
    for n in (400, 719, 720, 721, 24000, 120000, 120399):
        assert num_frames(n) == m.num_frames(n)
    assert num_frames(399) == 0


@pytest.mark.parametrize("feature", ["mfcc", "logmel-chroma"])
def test_kmeans_features_align_with_encoder_frames(feature):
    from mert.teachers.kmeans import FEATURE_FUNCS

    rng = np.random.default_rng(1)
    wav = synth_clip(3.0, rng)
    f = FEATURE_FUNCS[feature]
    full = f(wav)
    assert full.shape[0] == num_frames(len(wav))
    for k in (0, 1, 7, 50):  # crops at multiples of the hop, including inside the first receptive field
        crop = wav[HOP * k: HOP * k + 24000]
        c = f(crop)
        assert c.shape[0] == num_frames(len(crop))
        if feature == "mfcc":  # no padding at all: the 13 static coefficients match exactly
            np.testing.assert_allclose(c[:, :13], full[k:k + len(c), :13], rtol=1e-4, atol=1e-3)
        else:  # the 2048 window is zero-padded at the clip edges: interior frames match
            edge = 3
            np.testing.assert_allclose(c[edge:-edge], full[k + edge:k + len(c) - edge], rtol=1e-4, atol=1e-3)
    # a shift by half a hop does not line up: this is why crops start at multiples of 320
    c = f(wav[160:160 + 24000])
    assert np.abs(c[5:20, :13] - full[5:20, :13]).max() > 1e-2


def test_chroma_finds_the_pitch_class():
    from mert.teachers.kmeans import logmel_chroma_features

    t = np.arange(SR) / SR
    for midi, pc in ((69, 9), (60, 0), (55, 7)):
        f0 = 440 * 2 ** ((midi - 69) / 12)
        feats = logmel_chroma_features(0.5 * np.sin(2 * np.pi * f0 * t).astype(np.float32))
        assert int(np.bincount(feats[:, 128:].argmax(1)).argmax()) == pc


# ------------------------------------------------------------------------------------------------ CQT
def test_cqt_alignment_short_inputs_and_crops():
    from mert.teachers.cqt import CQTTeacher

    cqt = CQTTeacher()  # MERT's: 336 bins, 48/octave, 32.7 Hz, hop 320
    assert cqt.n_bins == 336
    x = torch.zeros(1, 2 * SR)
    p = 30000
    x[0, p] = 1.0
    c = cqt(x)
    assert c.shape == (1, num_frames(2 * SR), 336)
    # a click is centred on the frame whose centre (320 i + 200) is nearest
    assert int(c[0, :, -48:].sum(1).argmax()) == round((p - 200) / 320)
    # shorter than nnAudio's reflection padding (kernel 65536 / 2): padded with zeros, then cut
    for n in (400, 12000):
        y = cqt(torch.randn(2, n))
        assert y.shape == (2, num_frames(n), 336) and torch.isfinite(y).all()
    assert cqt(torch.randn(1, 399)).shape == (1, 0, 336)
    # a crop at 320 k gets the file's frames from k on (high bins: their kernels are short)
    wav = torch.randn(1, int(2.5 * SR))
    k = 37
    full, crop = cqt(wav), cqt(wav[:, HOP * k: HOP * k + SR])
    torch.testing.assert_close(crop[0, 10:-10, 200:], full[0, k + 10:k + crop.shape[1] - 10, 200:],
                               rtol=1e-3, atol=1e-3)
    # octave-cropped kernels give nnAudio's own full-width convolution
    torch.testing.assert_close(cqt(wav[:, :SR]), cqt.reference(wav[:, :SR]), rtol=1e-4, atol=1e-5)
    # linear magnitude: twice the input, twice the CQT
    torch.testing.assert_close(cqt(2 * wav[:, :SR]), 2 * cqt(wav[:, :SR]), rtol=1e-4, atol=1e-4)


def test_cqt_log_compressed_target():
    from mert.pretrain_config import load_config
    from mert.teachers.cqt import CQTTeacher

    wav = torch.randn(2, SR)
    lin = CQTTeacher(84, 12, 32.7)
    log10 = CQTTeacher(84, 12, 32.7, log_gain=10.0)
    torch.testing.assert_close(log10(wav), torch.log1p(10 * lin(wav)))
    assert (log10(wav) >= 0).all()
    with pytest.raises(ValueError, match="cqt_log_gain"):
        CQTTeacher(84, 12, 32.7, log_gain=-1.0)
    # the mini config trains on the compressed target; MERT's recipes keep linear magnitude
    assert load_config("mini", ["data.labels=x"]).heads.cqt_log_gain == 10.0
    assert load_config("mert-v1-95m", ["data.labels=x"]).heads.cqt_log_gain == 0.0


# ------------------------------------------------------------------------------------------------ EnCodec
def test_encodec_missing_weights_error(tmp_path, monkeypatch):
    from mert.teachers.encodec import load_encodec

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(FileNotFoundError) as e:
        load_encodec()
    msg = str(e.value)
    assert "encodec_24khz-d7cc33bc.th" in msg and str(tmp_path / "th" / "hub" / "checkpoints") in msg
    with pytest.raises(FileNotFoundError, match="--weights"):
        load_encodec(tmp_path / "nope.th")


def test_encodec_teacher_codes_with_self_initialised_codebooks(encodec_model):
    """8 codebooks x 1024 codes, ceil(n/320) frames, codes that vary with the music; chunked = whole."""
    from mert.teachers.encodec import EncodecTeacher

    model = encodec_model
    t = EncodecTeacher(model=model)
    assert t.num_codebooks == 8 and t.codebook_size == 1024
    wav = synth_clip(2.5, np.random.default_rng(3))
    codes = t.label(wav)
    assert codes.shape == (math.ceil(len(wav) / HOP), 8)
    assert codes.shape[0] >= num_frames(len(wav))
    assert codes.min() >= 0 and codes.max() < 1024
    assert all(len(np.unique(codes[:, q])) > 5 for q in range(8)), "codes should vary over time"
    # chunked encoding (long files) matches whole-file encoding away from chunk edges
    chunked = EncodecTeacher(model=model, chunk_seconds=0.96, context_seconds=0.64).label(wav)
    assert chunked.shape == codes.shape
    assert (chunked[:, 0] == codes[:, 0]).mean() > 0.9


def test_labels_command_encodec(tmp_path, encodec_model):
    from mert.teachers.command import make_labels
    from mert.teachers.storage import LabelStore

    audio = make_audio_folder(tmp_path / "audio", 4, (1.0, 2.0))
    make_labels(labels_args(audio, tmp_path / "enc", "encodec"), encodec_model=encodec_model)
    store = LabelStore(tmp_path / "enc")
    assert store.info.frame_rate == 75.0 and store.info.num_codebooks == 8 and store.info.codebook_size == 1024
    for p, f in store.files.items():
        assert f["frames"] == math.ceil(f["num_samples"] / HOP)
        assert store.labels(p).shape == (f["frames"], 8)
    codes = np.load(tmp_path / "enc" / "shards" / "shard-00000.codes.npy")
    assert codes.dtype == np.int16


# ------------------------------------------------------------------------------------------------ k-means + storage
@pytest.mark.parametrize("teacher", ["kmeans-mfcc", "kmeans-logmel-chroma"])
def test_labels_command_kmeans_and_resume(tmp_path, teacher):
    from mert.audio import read_audio
    from mert.teachers.command import make_labels
    from mert.teachers.kmeans import KMeansTeacher
    from mert.teachers.storage import LabelStore

    audio = make_audio_folder(tmp_path / "audio", 7, (1.0, 3.0))
    out = tmp_path / "labels"
    make_labels(labels_args(audio, out, teacher))
    store = LabelStore(out)
    m = json.loads((out / "labels.json").read_text())
    assert m["frame_rate"] == 75.0 and m["num_shards"] == 3 and m["codebook_size"] == 16
    assert store.info.num_codebooks == 1
    t = KMeansTeacher(teacher, n_clusters=16)
    t.load(out / "kmeans.npz")
    for p, f in store.files.items():
        wav = read_audio(audio / p, SR)
        assert f["frames"] == num_frames(len(wav))
        np.testing.assert_array_equal(store.labels(p), t.label(wav))
    used = np.unique(np.concatenate([store.labels(p)[:, 0] for p in store.files]))
    assert len(used) >= 8, "the clusters are used"

    # a killed run: shard 1's marker never written, its codes half-written; the manifest not yet final
    expected = {p: store.labels(p).copy() for p in store.files}
    del store  # its memory maps
    shards = out / "shards"
    before = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    (shards / "shard-00001.json").unlink()
    (shards / "shard-00001.codes.npy").write_bytes(b"garbage")
    (out / "labels.json").unlink()
    with pytest.raises(FileNotFoundError, match="mert labels"):
        LabelStore(out)
    make_labels(labels_args(audio, out, teacher))
    after = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    assert after["shard-00000.codes.npy"] == before["shard-00000.codes.npy"], "finished shards are not redone"
    assert after["shard-00002.codes.npy"] == before["shard-00002.codes.npy"]
    store2 = LabelStore(out)
    for p, codes in expected.items():
        np.testing.assert_array_equal(store2.labels(p), codes)
    # other settings into the same folder: a clear error
    with pytest.raises(ValueError, match="different settings"):
        make_labels(labels_args(audio, out, teacher, clusters=32))


def test_two_codebook_kmeans_teacher_equals_its_single_teachers(tmp_path):
    """kmeans-mfcc+logmel-chroma: column 0 is exactly kmeans-mfcc's labels, column 1 kmeans-logmel-chroma's
    (same seed, same clusters); the manifest says two codebooks; a refit of another feature set is refused."""
    from mert.teachers.command import make_labels
    from mert.teachers.kmeans import MultiKMeansTeacher
    from mert.teachers.storage import LabelStore

    audio = make_audio_folder(tmp_path / "audio", 5, (1.0, 2.0))
    make_labels(labels_args(audio, tmp_path / "both", "kmeans-mfcc+logmel-chroma"))
    both = LabelStore(tmp_path / "both")
    assert both.info.num_codebooks == 2 and both.info.codebook_size == 16
    m = json.loads((tmp_path / "both" / "labels.json").read_text())
    assert m["settings"]["feature"] == ["mfcc", "logmel-chroma"]
    singles = []
    for name in ("kmeans-mfcc", "kmeans-logmel-chroma"):
        make_labels(labels_args(audio, tmp_path / name, name))
        singles.append(LabelStore(tmp_path / name))
    for p in both.files:
        codes = both.labels(p)
        assert codes.shape[1] == 2
        np.testing.assert_array_equal(codes[:, :1], singles[0].labels(p))
        np.testing.assert_array_equal(codes[:, 1:], singles[1].labels(p))
    assert both.log_prior().shape == (2, 16) and both.prior_entropy() > singles[0].prior_entropy()
    # the saved model reloads; a single-feature model file is not mistaken for it
    t = MultiKMeansTeacher("kmeans-mfcc+logmel-chroma", n_clusters=16)
    t.load(tmp_path / "both" / "kmeans.npz")
    with pytest.raises(ValueError, match="fitted for mfcc with 16"):
        t.load(tmp_path / "kmeans-mfcc" / "kmeans.npz")
    with pytest.raises(ValueError, match="unknown multi-codebook"):
        MultiKMeansTeacher("kmeans-mfcc")


def test_labels_split_over_jobs(tmp_path):
    from mert.teachers.command import make_labels
    from mert.teachers.storage import LabelStore

    audio = make_audio_folder(tmp_path / "audio", 7, (1.0, 1.5))
    out = tmp_path / "labels"
    with pytest.raises(FileNotFoundError, match="job 0 fits it"):
        make_labels(labels_args(audio, out, "kmeans-mfcc", num_jobs=2, job_index=1))
    assert make_labels(labels_args(audio, out, "kmeans-mfcc", num_jobs=2, job_index=0)) is None  # shard 1 left
    assert not (out / "labels.json").exists()
    assert make_labels(labels_args(audio, out, "kmeans-mfcc", num_jobs=2, job_index=1)) == out / "labels.json"
    single = tmp_path / "single"
    make_labels(labels_args(audio, single, "kmeans-mfcc"))
    a, b = LabelStore(out), LabelStore(single)
    for p in a.files:
        np.testing.assert_array_equal(a.labels(p), b.labels(p))


def test_labels_cli_errors(tmp_path, capsys):
    from mert.__main__ import main

    (tmp_path / "empty").mkdir()
    assert main(["labels", "--teacher", "kmeans-mfcc", "--audio", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit):
        main(["labels", "--teacher", "nope", "--audio", "x", "--out", "y"])
