"""The iterative teacher (``--teacher kmeans-layer``): k-means on one layer of a model, on the 75 Hz label grid.

Tiny models built here, no downloads: a random ``debug`` MERT saved as a folder (the ``mert.load_model`` path) and
a toy ``pkg.module:factory`` representation at 16 kHz / 25 Hz whose layer 1 is the audio's level quantised to
three values, so its k-means clusters (and the resampling to 75 Hz) are known exactly. Also: the extraction is
the benchmark's (its MERT adapter and frame-level chunking, compared number for number), labels are
deterministic, resume, split over jobs, the ``mini-iter2`` config resolves, and a debug pretraining run trains
from these labels.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_audio import SR, make_audio_folder  # noqa: E402

from mert.teachers import num_frames  # noqa: E402

LEVELS = (0.1, 0.4, 0.7)
TOY_HOP_24K = 960  # the toy's hop: 640 samples at 16 kHz = 40 ms = 960 samples at 24 kHz

TOY = textwrap.dedent('''
    import torch

    LEVELS = (0.1, 0.4, 0.7)


    class Toy:
        """16 kHz, 25 Hz (hop 640): layer 0 alternates 0, 1 per frame; layer 1 is the frame's mean sample
        quantised to LEVELS, as (q, -2 q)."""

        name = "toy"
        sample_rate = 16000
        frame_rate = 25.0
        num_layers = 2
        dim = 2
        hop = 640

        def identity(self):
            return "toy-1"

        def __call__(self, wav, lengths):
            n = torch.as_tensor(lengths) // self.hop
            t = int(n.max())
            x = wav[:, : t * self.hop].reshape(len(wav), t, self.hop).mean(-1)
            lv = torch.tensor(LEVELS)
            q = lv[(x[..., None] - lv).abs().argmin(-1)]
            j = torch.arange(t).float()
            layer0 = torch.stack([j % 2, torch.zeros_like(j)], -1).expand(len(wav), t, 2)
            return [layer0, torch.stack([q, -2 * q], -1)], n


    def factory():
        return Toy()
''')


def labels_args(audio, out, teacher="kmeans-layer", **kw):
    d = dict(teacher=teacher, audio=Path(audio), out=Path(out), shard_size=3, weights=None, device="cpu",
             clusters=8, fit_files=100, fit_frames=20000, seed=0, model=None, layer=None, chunk_seconds=30.0,
             batch_seconds=240.0)
    d.update(kw)
    return argparse.Namespace(**d)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A random ``debug`` MERT (2 layers: hidden states 0-2) exported as a folder, and 7 clips of 1-3 s."""
    from mert import build_model
    from mert.checkpoints import save_model

    root = tmp_path_factory.mktemp("kmeans-layer")
    torch.manual_seed(0)
    save_model(build_model("debug"), root / "model")
    return root / "model", make_audio_folder(root / "audio", 7, (1.0, 3.0), seed=3)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ the extraction
def test_extraction_is_the_benchmarks(source):
    """The MERT adapter is the benchmark's (same identity, same hidden states) and a file longer than a chunk
    gives the frames and times of the benchmark's frame-level extraction (chunks, tail merge, batches)."""
    from benchmark.config import FeatureConfig
    from benchmark.features import _Runner, _segments
    from benchmark.representations import MertRepresentation
    from mert import load_model
    from mert.teachers.kmeans_layer import MertSource, chunk_bounds, layer_frames, load_source

    model_dir, _ = source
    ours = load_source(str(model_dir))
    assert isinstance(ours, MertSource) and ours.num_layers == 3
    theirs = MertRepresentation(load_model(model_dir), "x", "x")
    assert ours.identity() == theirs.identity()
    wav = torch.randn(2, 30000) * 0.1
    lengths = torch.tensor([30000, 21000])
    (a, na), (b, nb) = ours(wav, lengths), theirs(wav, lengths)
    assert na.tolist() == nb.tolist() and all(torch.equal(x, y) for x, y in zip(a, b))

    x = (np.random.default_rng(0).standard_normal(int(3.6 * SR)) * 0.1).astype(np.float32)
    fcfg = FeatureConfig(max_chunk_s=1.0, batch_seconds=2.5, precision="fp32")
    spec = argparse.Namespace(window="frames")
    segs = _segments(len(x), SR, spec, fcfg)
    assert chunk_bounds(len(x), SR, 1.0) == segs and len(segs) == 3  # the 0.6 s tail joins the last chunk
    ref = _Runner(theirs, fcfg).run([x[s:e] for s, e in segs])
    frames, times = layer_frames(ours, x, 2, chunk_seconds=1.0, batch_seconds=2.5)
    np.testing.assert_array_equal(frames, np.concatenate([r[:, 2] for r in ref]))
    want = np.concatenate([s / SR + np.arange(len(r)) / 75.0 for (s, _), r in zip(segs, ref)])
    np.testing.assert_allclose(times, want)
    assert len(frames) == num_frames(len(x)) - 2  # each chunk boundary loses one 75 Hz frame ...


def test_nearest_frames_to_the_label_grid():
    from mert.teachers.kmeans_layer import nearest_frames

    t75 = np.arange(10) / 75.0
    np.testing.assert_array_equal(nearest_frames(t75, 10), np.arange(10))  # a 75 Hz source: frame i -> i
    gap = np.delete(t75, 4)  # ... which takes a neighbour (the earlier on a tie)
    np.testing.assert_array_equal(nearest_frames(gap, 10), [0, 1, 2, 3, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(nearest_frames(np.arange(4) / 25.0, 12), [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    np.testing.assert_array_equal(nearest_frames(np.arange(5) / 50.0 + 0.005, 6), [0, 0, 1, 2, 2, 3])


# ------------------------------------------------------------------------------------------------ known clusters
def test_labels_are_the_clusters_of_a_known_layer(tmp_path, monkeypatch, capsys):
    """Toy model, layer 1 = the level of the audio (3 values) at 25 Hz and 16 kHz: through the CLI, with 1 s
    chunks, the labels are exactly the 3 levels (up to a permutation of the ids) at 75 Hz (each toy frame gives
    the label frames nearest to it in time); a corrupt file is skipped and recorded; another layer clusters
    something else."""
    from mert.__main__ import main
    from mert.audio import write_audio
    from mert.teachers.storage import LabelStore

    (tmp_path / "toyrep.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    levels = {}
    for i in range(4):
        lv = []  # one level index per toy frame
        while len(lv) < 60 + 20 * i:
            lv += [int(rng.integers(3))] * int(rng.integers(4, 15))
        levels[f"c{i}.flac"] = np.array(lv)
        wav = np.repeat(np.array(LEVELS, np.float32)[lv], TOY_HOP_24K)
        write_audio(audio / f"c{i}.flac", wav, SR)
    (audio / "corrupt.flac").write_bytes(rng.bytes(2000))
    out = tmp_path / "labels"

    def argv(layer, clusters, out):
        return ["labels", "--teacher", "kmeans-layer", "--model", "toyrep:factory", "--layer", str(layer),
                "--clusters", str(clusters), "--audio", str(audio), "--out", str(out), "--chunk-seconds", "1",
                "--shard-size", "2"]

    assert main(argv(1, 3, out)) == 0
    assert "4 files (1 skipped" in capsys.readouterr().out
    store = LabelStore(out)
    m = store.manifest
    assert m["frame_rate"] == 75.0 and m["teacher"] == "kmeans-layer" and m["codebook_size"] == 3
    assert [s["path"] for s in m["skipped"]] == ["corrupt.flac"]
    s = m["settings"]
    assert (s["model"], s["layer"], s["identity"], s["source_frame_rate"]) == ("toyrep:factory", 1, "toy-1", 25.0)
    assert "nearest source frame" in s["resampling"]
    pairs = set()
    for name, lv in levels.items():
        codes = store.labels(name)[:, 0]
        n = num_frames(len(lv) * TOY_HOP_24K)
        assert len(codes) == n
        want = lv[np.minimum(np.round(np.arange(n) / 3).astype(int), len(lv) - 1)]  # 75 Hz -> 25 Hz frame
        pairs |= set(zip(codes.tolist(), want.tolist()))
    assert len(pairs) == 3 and {c for c, _ in pairs} == {0, 1, 2}, f"labels are not the levels: {pairs}"
    # layer 0 (alternating frames) gives other labels
    assert main(argv(0, 2, tmp_path / "l0")) == 0
    l0 = LabelStore(tmp_path / "l0").labels("c0.flac")[:, 0]
    assert len(set(zip(l0.tolist(), store.labels("c0.flac")[:, 0].tolist()))) > 3


# ------------------------------------------------------------------------------------------------ resumable labels
def test_labels_are_deterministic_and_resume(source, tmp_path):
    """Two runs give byte-identical folders; a run killed in shard 1 resumes without redoing shards 0 and 2 or
    the fit; another layer into the same folder is refused."""
    from mert.teachers.command import make_labels
    from mert.teachers.storage import LabelStore

    model_dir, audio = source
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert make_labels(labels_args(audio, out, model=str(model_dir), layer=1)) == out / "labels.json"
    assert files_of(a) == files_of(b)
    store = LabelStore(a)
    m = store.manifest
    assert m["num_shards"] == 3 and m["settings"]["layer"] == 1 and m["settings"]["source_frame_rate"] == 75.0
    assert json.loads((a / "plan.json").read_text())["identity"] == m["settings"]["identity"]
    for p, f in store.files.items():
        assert f["frames"] == num_frames(f["num_samples"])
    assert len(np.unique(np.concatenate([store.labels(p)[:, 0] for p in store.files]))) >= 6
    assert np.load(a / "shards" / "shard-00000.codes.npy").dtype == np.int16
    del store

    shards = a / "shards"
    before = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    fit = (a / "kmeans.npz").stat().st_mtime_ns
    (shards / "shard-00001.json").unlink()
    (shards / "shard-00001.codes.npy").write_bytes(b"garbage")
    (a / "labels.json").unlink()
    make_labels(labels_args(audio, a, model=str(model_dir), layer=1))
    after = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    for s in ("00000", "00002"):
        for ext in ("codes.npy", "offsets.npy", "json"):
            assert after[f"shard-{s}.{ext}"] == before[f"shard-{s}.{ext}"], "finished shards are not redone"
    assert (a / "kmeans.npz").stat().st_mtime_ns == fit, "the fit is not redone"
    assert files_of(a) == files_of(b)
    with pytest.raises(ValueError, match="different settings.*layer"):
        make_labels(labels_args(audio, a, model=str(model_dir), layer=2))


def test_labels_split_over_jobs(source, tmp_path):
    from mert.teachers.command import make_labels

    model_dir, audio = source
    kw = dict(model=str(model_dir), layer=2, num_jobs=2)
    out = tmp_path / "split"
    with pytest.raises(FileNotFoundError, match="job 0 fits it"):
        make_labels(labels_args(audio, out, job_index=1, **kw))
    assert make_labels(labels_args(audio, out, job_index=0, **kw)) is None
    assert make_labels(labels_args(audio, out, job_index=1, **kw)) == out / "labels.json"
    single = tmp_path / "single"
    make_labels(labels_args(audio, single, model=str(model_dir), layer=2))
    assert files_of(out) == files_of(single)


def test_bad_arguments_are_one_line_errors(source, tmp_path, capsys):
    from mert.__main__ import main

    model_dir, audio = source
    base = ["labels", "--audio", str(audio), "--out", str(tmp_path / "o")]
    cases = [
        (["--teacher", "kmeans-layer", "--layer", "1"], "needs --model SOURCE and --layer L"),
        (["--teacher", "kmeans-mfcc", "--model", str(model_dir), "--layer", "1"], "apply to --teacher kmeans-layer"),
        (["--teacher", "kmeans-layer", "--model", str(model_dir), "--layer", "3"], "has layers 0 .. 2"),
        (["--teacher", "kmeans-layer", "--model", str(model_dir), "--layer", "1", "--chunk-seconds", "0.5"],
         "--chunk-seconds must be >= 1"),
        (["--teacher", "kmeans-layer", "--model", "hf:facebook/hubert-base-ls960", "--layer", "6"], "factory"),
        (["--teacher", "kmeans-layer", "--model", str(tmp_path / "nope"), "--layer", "1"], "cannot load"),
        (["--teacher", "kmeans-layer", "--model", "no_such_module_xyz:f", "--layer", "1"], "cannot import"),
    ]
    for extra, msg in cases:
        assert main(base + extra) == 2, extra
        assert msg in capsys.readouterr().err, extra
    assert not (tmp_path / "o" / "plan.json").exists(), "refused before anything is written"


# ------------------------------------------------------------------------------------------------ pretraining
def test_mini_iter2_config_is_mini_with_its_own_run_folder():
    from omegaconf import OmegaConf

    from mert.pretrain_config import load_config

    mini = OmegaConf.to_container(load_config("mini", ["data.labels=x"]))
    it2 = OmegaConf.to_container(load_config("mini-iter2", ["data.labels=x"]))
    assert it2["train"].pop("out_dir") == "runs/mert-mini-iter2"
    assert mini["train"].pop("out_dir") == "runs/mert-mini"
    assert it2 == mini


def test_debug_pretraining_from_kmeans_layer_labels(source, tmp_path):
    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config
    from mert.teachers.command import make_labels

    model_dir, audio = source
    labels = tmp_path / "labels"
    make_labels(labels_args(audio, labels, model=str(model_dir), layer=1, shard_size=8))
    cfg = load_config("debug", [f"data.labels={labels}", f"train.out_dir={tmp_path / 'run'}", "optim.max_updates=3",
                                "train.save_every=3", "train.log_every=1", "data.max_batch_seconds=2.0"])
    res = Trainer(cfg).run()
    assert res["step"] == 3 and all(np.isfinite(r["loss"]) for r in res["history"])
    assert res["history"][0]["ce"] > 0
    state = torch.load(tmp_path / "run" / "checkpoints" / "checkpoint-00000003.pt", map_location="cpu",
                       weights_only=False)
    assert state["labels"] == {"teacher": "kmeans-layer", "num_codebooks": 1, "codebook_size": 8}
