"""Pretraining data: crops at multiples of the hop keep label frames on encoder frames; duration batches."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_audio import SR, make_audio_folder, synth_clip  # noqa: E402

from mert.teachers import HOP, num_frames  # noqa: E402


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    from mert.audio import write_audio
    from mert.teachers.command import make_labels

    root = tmp_path_factory.mktemp("data")
    audio = make_audio_folder(root / "audio", 6, (2.2, 4.0), seed=4)
    rng = np.random.default_rng(9)
    write_audio(audio / "short.flac", synth_clip(0.8, rng), SR)  # below min_crop: left out
    write_audio(audio / "exact.flac", np.concatenate([synth_clip(2.0, rng), np.zeros(HOP, np.float32)]), SR)
    write_audio(audio / "hifi.flac", synth_clip(3.0, rng, sr=44100), 44100)  # resampled to 24 kHz
    args = argparse.Namespace(teacher="kmeans-mfcc", audio=audio, out=root / "labels", shard_size=4, weights=None,
                              device="cpu", clusters=16, fit_files=100, fit_frames=20000, seed=0)
    make_labels(args)
    return audio, root / "labels"


def test_conv_frames_of_a_crop_are_the_files_frames():
    """Why crops start at multiples of 320: encoder frame j of a crop starting at 320 k is the file's frame
    k + j exactly (per-frame LayerNorm front end, so clip-wide normalisation does not blur the comparison)."""
    from mert import build_model

    model = build_model("debug", feat_extract_norm="layer", seed=0).eval()
    wav = torch.from_numpy(synth_clip(1.5, np.random.default_rng(0)))[None]
    with torch.no_grad():
        full = model(wav, output_conv_features=True).conv_features[0]
        for k in (0, 1, 2, 37):  # 1 and 2: the crop starts inside the first frame's receptive field (400)
            crop = wav[:, HOP * k: HOP * k + SR]
            c = model(crop, output_conv_features=True).conv_features[0]
            assert c.shape[0] == num_frames(SR) == model.num_frames(SR)
            torch.testing.assert_close(c, full[k:k + c.shape[0]], rtol=1e-4, atol=1e-4)
        c = model(wav[:, 160:160 + SR], output_conv_features=True).conv_features[0]
        assert (c - full[: c.shape[0]]).abs().max() > 1e-2  # half a hop: between two label frames


def test_crops_and_labels(labelled):
    from mert.audio import read_audio
    from mert.data import PretrainDataset
    from mert.teachers.kmeans import KMeansTeacher

    audio, labels = labelled
    ds = PretrainDataset(labels, crop_seconds=2.0, min_crop_seconds=1.0, seed=3)
    names = [c.path for c in ds.clips]
    assert "short.flac" not in names and "exact.flac" in names and len(ds) == 8
    teacher = KMeansTeacher("kmeans-mfcc", n_clusters=16)
    teacher.load(labels / "kmeans.npz")
    offsets_exact = set()
    for epoch in range(6):
        for i, c in enumerate(ds.clips):
            item = ds[(epoch, i)]
            off = item["offset"]
            assert off % HOP == 0 and 0 <= off and off + c.crop_samples <= c.num_samples
            assert len(item["wav"]) == c.crop_samples == min(2 * SR, c.num_samples)
            assert item["labels"].shape == (num_frames(c.crop_samples), 1)
            np.testing.assert_array_equal(item["labels"], ds.store.labels(c.path, off // HOP, len(item["labels"])))
            if c.path == "exact.flac":
                offsets_exact.add(off)
            if epoch < 2:
                whole = read_audio(audio / c.path, SR)  # what the labels were computed on
                # a 44.1 kHz file: the resampled crop is the crop of the resampled file (margin decoded)
                np.testing.assert_allclose(item["wav"], whole[off:off + c.crop_samples], atol=1e-4)
                # the crop's own labels equal the stored labels (deltas differ only at the 2 edge frames)
                own = teacher.label(item["wav"])
                if c.path == "hifi.flac":  # resampling noise (~1e-5) may flip a frame on a cluster boundary
                    assert (own[2:-2] == item["labels"][2:-2]).mean() > 0.97
                else:
                    np.testing.assert_array_equal(own[2:-2], item["labels"][2:-2])
    assert offsets_exact == {0, HOP}, "a file one hop longer than the crop: offsets 0 and 320 (first receptive field)"
    assert ds.crop_offset(1, 0) == ds.crop_offset(1, 0), "deterministic"


def test_duration_batches_cover_ranks(labelled):
    from mert.data import EpochBatches, PretrainDataset, collate, global_batches

    _, labels = labelled
    ds = PretrainDataset(labels, crop_seconds=2.0, min_crop_seconds=1.0, seed=3)
    lengths = [c.crop_samples for c in ds.clips]
    for world in (1, 2):
        gb = global_batches(lengths, epoch=0, seed=3, max_samples_per_rank=int(4.5 * SR), world_size=world)
        seen = [i for b in gb for i in b]
        assert len(seen) == len(set(seen)), "each clip at most once per epoch"
        for b in gb:
            assert len(b) % world == 0
            assert len(b) * max(lengths[i] for i in b) <= 4.5 * SR * world
        assert gb == global_batches(lengths, 0, 3, int(4.5 * SR), world)
        assert gb != global_batches(lengths, 1, 3, int(4.5 * SR), world)
    # a budget below one clip still gives every rank one clip per batch
    gb = global_batches(lengths, 0, 3, 100, world_size=2)
    assert all(len(b) == 2 for b in gb) and len(gb) == len(lengths) // 2
    # two ranks see exactly the single-process batches, split; and a sampler resumes mid-epoch
    single = list(EpochBatches(ds, 0, 9.0, 0, 1))
    r0, r1 = list(EpochBatches(ds, 0, 4.5, 0, 2)), list(EpochBatches(ds, 0, 4.5, 1, 2))
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(s) for s in single]
    assert list(EpochBatches(ds, 0, 9.0, 0, 1, start=1)) == single[1:]
    batch = collate([ds[k] for k in single[0]])
    assert batch["wav"].shape[0] == len(single[0])
    assert batch["labels"].shape[1] == num_frames(batch["wav"].shape[1])
    assert (batch["label_frames"] == torch.tensor([num_frames(int(n)) for n in batch["lengths"]])).all()


def test_missing_labels_and_audio_errors(tmp_path, labelled):
    from mert.data import PretrainDataset

    with pytest.raises(FileNotFoundError, match="mert labels"):
        PretrainDataset(tmp_path)
    _, labels = labelled
    with pytest.raises(FileNotFoundError, match="data.audio"):
        PretrainDataset(labels, audio_root=tmp_path / "moved")
    with pytest.raises(ValueError, match="min_crop_seconds"):
        PretrainDataset(labels, min_crop_seconds=60.0)
