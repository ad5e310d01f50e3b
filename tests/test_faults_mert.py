"""Faults and bad input in the mert package (issue 17): each one is a clear error or a correct recovery.

* ``mert labels``: unreadable files are skipped (and recorded) by the k-means fit as by the labelling loop; a
  rerun after a failure continues in the same --out.
* pretraining: a damaged newest checkpoint is skipped on resume (and by ``mert export RUN``), with a warning
  naming it and the one used; a damaged checkpoint given by name is an ``error:`` line naming the file.
* ``mert info`` on something that is not a checkpoint: one ``error:`` line naming the path, exit 2.
* audio: a missing file says so; silent audio read through the Python API warns, naming the file.
* atomic writers create files and folders with the umask's permissions.

Everything runs on the CPU on a few seconds of generated audio.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_audio import SR, make_audio_folder, synth_clip  # noqa: E402


def labels_args(audio, out, teacher="kmeans-mfcc", **kw):
    d = dict(teacher=teacher, audio=Path(audio), out=Path(out), shard_size=3, weights=None, device="cpu",
             clusters=16, fit_files=100, fit_frames=20000, seed=0)
    d.update(kw)
    return argparse.Namespace(**d)


def add_bad_files(folder: Path) -> dict[str, str]:
    """A WAV with a header and no samples, and a .flac of random bytes; -> {name: expected reason}."""
    sf.write(folder / "header_only.wav", np.zeros(0, np.float32), SR)
    (folder / "corrupt.flac").write_bytes(np.random.default_rng(0).bytes(3000))
    return {"header_only.wav": "no audio samples", "corrupt.flac": "cannot decode audio"}


def warnings_of(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]


# ------------------------------------------------------------------------------------------------ 1. labels
def test_labels_skip_unreadable_files_in_the_fit_as_in_the_loop(tmp_path, caplog, capsys):
    """Both k-means fits (two codebooks: each member samples the files) and the labelling loop skip the bad
    files with the same reason, logged once per file, and labels.json / the shard markers record them."""
    from mert.__main__ import main
    from mert.teachers.command import make_labels
    from mert.teachers.storage import LabelStore

    audio = make_audio_folder(tmp_path / "audio", 4, (1.0, 2.0))
    bad = add_bad_files(audio)
    out = tmp_path / "labels"
    with caplog.at_level(logging.INFO):
        make_labels(labels_args(audio, out, "kmeans-mfcc+logmel-chroma"))
    store = LabelStore(out)
    assert sorted(store.files) == [f"clip{i:03d}.flac" for i in range(4)]
    m = json.loads((out / "labels.json").read_text())
    skipped = {s["path"]: s["reason"] for s in m["skipped"]}
    assert set(skipped) == set(bad)
    for name, why in bad.items():
        assert name in skipped[name] and why in skipped[name]
    logged = warnings_of(caplog, "mert.labels")
    for reason in skipped.values():  # the same string, once: the fit and the loop share the reader
        assert logged.count(f"skipping {reason}") == 1, logged
    shard_skips = [s for p in sorted((out / "shards").glob("shard-*.json"))
                   for s in json.loads(p.read_text()).get("skipped", [])]
    assert {s["path"] for s in shard_skips} == set(bad)
    # the command line: the same folder through `python -m mert labels` finishes (exit 0) and reports them
    assert main(["labels", "--teacher", "kmeans-mfcc", "--audio", str(audio), "--out", str(tmp_path / "cli"),
                 "--clusters", "16", "--shard-size", "3"]) == 0
    assert "2 skipped" in capsys.readouterr().out


def test_labels_kmeans_fit_skips_files_when_called_directly(tmp_path, caplog):
    """KMeansTeacher.fit with plain read_audio (the Python API) skips AudioError files too."""
    from mert.audio import read_audio
    from mert.teachers.kmeans import KMeansTeacher

    audio = make_audio_folder(tmp_path / "audio", 3, (1.0, 2.0))
    add_bad_files(audio)
    t = KMeansTeacher("kmeans-mfcc", n_clusters=8)
    with caplog.at_level(logging.WARNING):
        t.fit(sorted(audio.iterdir()), lambda f: read_audio(f, SR))
    assert t.centers is not None and t.centers.shape[0] == 8
    assert any("header_only.wav: no audio samples" in m for m in warnings_of(caplog, "mert.teachers.kmeans"))
    # a sample in which no file reads is a clear error, not numpy's "need at least one array"
    t2 = KMeansTeacher("kmeans-mfcc", n_clusters=8)
    with pytest.raises(ValueError, match="none of the 2 files sampled"):
        t2.fit([audio / "header_only.wav", audio / "corrupt.flac"], lambda f: read_audio(f, SR))


def test_labels_rerun_after_a_failure_continues_in_the_same_out(tmp_path, monkeypatch):
    """The fit fails (simulated); the user fixes the folder (removes a file) and reruns into the same --out:
    it runs, since nothing was finished with the old settings. Once work is finished, other settings are
    refused as before."""
    from mert.teachers import command
    from mert.teachers.kmeans import KMeansTeacher
    from mert.teachers.storage import LabelStore

    audio = make_audio_folder(tmp_path / "audio", 4, (1.0, 2.0))
    add_bad_files(audio)
    out = tmp_path / "labels"

    def failing_fit(self, files, read):
        raise RuntimeError("simulated failure in the k-means fit")

    monkeypatch.setattr(KMeansTeacher, "fit", failing_fit)
    with pytest.raises(RuntimeError, match="simulated"):
        command.make_labels(labels_args(audio, out))
    assert (out / "plan.json").exists() and not (out / "kmeans.npz").exists()
    monkeypatch.undo()
    # same settings: continues
    (audio / "corrupt.flac").unlink()  # ... and a changed file list: nothing was finished, so it continues too
    assert command.make_labels(labels_args(audio, out)) == out / "labels.json"
    assert len(LabelStore(out)) == 4
    assert json.loads((out / "plan.json").read_text())["files"] == sorted(p.name for p in audio.iterdir())
    # a failure in the labelling loop after shard 0: the rerun keeps shard 0 and finishes
    out2 = tmp_path / "labels2"
    real_write = command.write_shard

    def write_then_fail(o, s, *a, **k):
        if s == 1:
            raise RuntimeError("simulated failure in shard 1")
        return real_write(o, s, *a, **k)

    monkeypatch.setattr(command, "write_shard", write_then_fail)
    with pytest.raises(RuntimeError, match="shard 1"):
        command.make_labels(labels_args(audio, out2))
    monkeypatch.undo()
    t0 = (out2 / "shards" / "shard-00000.codes.npy").stat().st_mtime_ns
    assert command.make_labels(labels_args(audio, out2)) == out2 / "labels.json"
    assert (out2 / "shards" / "shard-00000.codes.npy").stat().st_mtime_ns == t0
    # finished work is protected: other settings into a folder with done shards are refused
    with pytest.raises(ValueError, match="different settings"):
        command.make_labels(labels_args(audio, out2, clusters=8))


# ------------------------------------------------------------------------------------------------ 2. checkpoints
UPDATES = ["optim.max_updates=6", "train.save_every=1", "train.log_every=1", "data.max_batch_seconds=2.0"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A debug run of 6 updates saving every update (checkpoints 5 and 6 kept); its labels include a silent
    file, and pretraining must not warn about silent crops (mert.data reads with warn_silent=False)."""
    from mert.audio import SilentAudioWarning, write_audio
    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config
    from mert.teachers.command import make_labels

    root = tmp_path_factory.mktemp("faults-run")
    audio = make_audio_folder(root / "audio", 4, (1.5, 2.5), seed=5)
    write_audio(audio / "silent.flac", np.zeros(int(1.5 * SR), np.float32), SR)
    labels = root / "labels"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SilentAudioWarning)  # the labels command warns about it, once
        make_labels(labels_args(audio, labels, shard_size=8))
    run = root / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error", SilentAudioWarning)
        res = Trainer(load_config("debug", [f"data.labels={labels}", f"train.out_dir={run}", *UPDATES])).run()
    assert res["step"] == 6
    return labels, run


def ckpt(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"checkpoint-{step:08d}.pt"


def truncate(path: Path, keep: int | None = None) -> None:
    """Cut a file short: to half its size, or to its first ``keep`` bytes (torch fails differently on each:
    "failed reading zip archive" or "[Errno 22] Invalid argument")."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


def test_resume_skips_a_truncated_newest_checkpoint(trained_run, tmp_path, caplog):
    """The newest checkpoint is cut in half: resume continues from the previous one (warning naming both)
    and reaches the uninterrupted run's update 6 exactly (loss and weights)."""
    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config

    labels, src = trained_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    ref_state = torch.load(ckpt(run, 6), map_location="cpu", weights_only=False)
    ref_rows = list(csv.DictReader(open(run / "log.csv")))
    truncate(ckpt(run, 6))
    cfg = load_config("debug", [f"data.labels={labels}", f"train.out_dir={run}", *UPDATES])
    with caplog.at_level(logging.INFO, logger="mert.pretrain"):
        res = Trainer(cfg).run()
    assert [r["step"] for r in res["history"]] == [6], "resumed from update 5"
    msgs = warnings_of(caplog, "mert.pretrain")
    assert any(str(ckpt(run, 6)) in m and str(ckpt(run, 5)) in m for m in msgs), msgs
    assert any(f"resumed from {ckpt(run, 5)}" in r.getMessage() for r in caplog.records)
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert float(rows[-1]["loss"]) == pytest.approx(float(ref_rows[-1]["loss"]), rel=1e-6, abs=1e-7)
    new_state = torch.load(ckpt(run, 6), map_location="cpu", weights_only=False)  # rewritten, intact
    assert new_state["step"] == 6
    for k, v in ref_state["model"].items():
        torch.testing.assert_close(new_state["model"][k], v, rtol=1e-6, atol=1e-7, msg=k)


def test_resume_with_every_checkpoint_damaged_is_an_error(trained_run, tmp_path):
    """No checkpoint reads: an error naming them, not a silent restart from update 0 over the old run."""
    from mert.checkpoints import CheckpointError
    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config

    labels, src = trained_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    truncate(ckpt(run, 6))
    ckpt(run, 5).write_bytes(b"")
    rows_before = (run / "log.csv").read_text()
    cfg = load_config("debug", [f"data.labels={labels}", f"train.out_dir={run}", *UPDATES])
    with pytest.raises(CheckpointError) as e:
        Trainer(cfg).run()
    assert str(ckpt(run, 6)) in str(e.value) and str(ckpt(run, 5)) in str(e.value)
    assert (run / "log.csv").read_text() == rows_before, "the old run's log is left alone"
    assert ckpt(run, 5).exists() and ckpt(run, 6).exists()


def test_export_damaged_checkpoint_error_and_folder_fallback(trained_run, tmp_path, capsys, caplog):
    from mert import load_model
    from mert.__main__ import main

    _, src = trained_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    truncate(ckpt(run, 6), keep=10_000)
    # the damaged file by name: one error line naming it, exit 2
    assert main(["export", str(ckpt(run, 6)), str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {ckpt(run, 6)}:"), err
    assert not (tmp_path / "o1" / "config.json").exists()
    # the run folder: the newest checkpoint that reads, with a warning naming both
    with caplog.at_level(logging.WARNING, logger="mert.pretrain"):
        assert main(["export", str(run), str(tmp_path / "o2")]) == 0
    assert any(str(ckpt(run, 6)) in m and str(ckpt(run, 5)) in m for m in warnings_of(caplog, "mert.pretrain"))
    prov = json.loads((tmp_path / "o2" / "pretraining.json").read_text())
    assert prov["update"] == 5 and prov["source"] == str(ckpt(run, 5))
    assert str(ckpt(run, 5)) in capsys.readouterr().out
    load_model(tmp_path / "o2")
    # not a pretraining checkpoint at all
    (tmp_path / "junk.pt").write_bytes(b"hello\n")
    assert main(["export", str(tmp_path / "junk.pt"), str(tmp_path / "o3")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'junk.pt'}:")


# ------------------------------------------------------------------------------------------------ 3. mert info
def _info_error(capsys, source) -> str:
    from mert.__main__ import main

    assert main(["info", str(source)]) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    return lines[0]


def test_info_on_files_that_are_not_checkpoints(tmp_path, capsys):
    from mert import build_model
    from mert.checkpoints import save_checkpoint

    cases = {"random.pt": np.random.default_rng(0).bytes(4096), "notes.txt": b"some text, not a checkpoint\n",
             "empty.pt": b"", "model.bin": b"\x80\x04junk that is no pickle"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        line = _info_error(capsys, tmp_path / name)
        assert line.startswith(f"error: {tmp_path / name}: not a MERT checkpoint ("), line
        assert "expected" in line
    assert "empty" in _info_error(capsys, tmp_path / "empty.pt")
    # a real checkpoint cut short: named, said to be damaged
    for keep in (None, 10_000):
        save_checkpoint(build_model("debug", seed=0), tmp_path / "enc.pt")
        truncate(tmp_path / "enc.pt", keep)
        line = _info_error(capsys, tmp_path / "enc.pt")
        assert line.startswith(f"error: {tmp_path / 'enc.pt'}: damaged checkpoint"), line


def test_info_on_missing_paths_and_folders_without_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "no such file" in _info_error(capsys, tmp_path / "nothing.pt")
    line = _info_error(capsys, "runs/nothing")  # looks like a hub id; offline: says there is no local path either
    assert "runs/nothing" in line and "no local file or folder" in line, line
    (tmp_path / "runs").mkdir()  # with a local runs/ folder it is a mistyped local path: no hub lookup
    assert _info_error(capsys, "runs/nothing").startswith("error: runs/nothing: no such file or folder")
    (tmp_path / "folder").mkdir()
    assert "config.json" in _info_error(capsys, tmp_path / "folder")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "checkpoint-00000001.pt").write_bytes(b"")
    assert "mert export" in _info_error(capsys, tmp_path / "run")  # a pretraining run folder: the hint
    (tmp_path / "bad_json").mkdir()
    (tmp_path / "bad_json" / "config.json").write_text("{not json")
    assert "bad_json/config.json" in _info_error(capsys, tmp_path / "bad_json")


def test_info_keeps_the_traceback_of_a_real_bug(tmp_path, monkeypatch):
    """Only input errors become one line: an unexpected exception inside loading propagates."""
    import mert.checkpoints as ck
    from mert.__main__ import main

    def boom(*a, **k):
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr(ck, "load_model", boom)
    with pytest.raises(ValueError, match="a bug"):
        main(["info", str(tmp_path)])


# ------------------------------------------------------------------------------------------------ 4. audio
def test_missing_audio_file_says_so(tmp_path):
    from mert.audio import AudioError, audio_info, read_audio

    p = tmp_path / "gone.wav"
    for fn in (read_audio, audio_info):
        with pytest.raises(AudioError) as e:
            fn(p)
        assert str(e.value) == f"{p}: file does not exist"
        assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)  # every caller skips it


def test_silent_audio_warns_naming_the_file(tmp_path):
    from mert import build_model
    from mert.audio import SilentAudioWarning, read_audio, write_audio

    write_audio(tmp_path / "zeros.wav", np.zeros(SR), SR)
    write_audio(tmp_path / "hiss.wav", np.full(SR, 5e-5, np.float32), SR, subtype="FLOAT")
    write_audio(tmp_path / "quiet.wav", np.full(SR, 1e-3, np.float32), SR, subtype="FLOAT")
    for name in ("zeros.wav", "hiss.wav"):
        with pytest.warns(SilentAudioWarning, match=f"{tmp_path / name}: silent"):
            read_audio(tmp_path / name)
    assert issubclass(SilentAudioWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_audio(tmp_path / "quiet.wav")  # quiet but not silent
        read_audio(tmp_path / "zeros.wav", warn_silent=False)  # callers with their own rule opt out
    wav = np.stack([synth_clip(1.0, np.random.default_rng(0)), np.zeros(SR, np.float32)])
    sf.write(tmp_path / "late.wav", np.concatenate([wav[0], wav[1]]), SR)
    with pytest.warns(SilentAudioWarning, match=r"late.wav: silent .* in \[1.0, 2.0\] s"):
        read_audio(tmp_path / "late.wav", start=1.0, end=2.0)  # the excerpt is what counts
    # the model's input helper: silent items are named
    model = build_model("debug")
    with pytest.warns(SilentAudioWarning, match=r"input: item\(s\) \[1\] silent"):
        model.prepare_input(torch.from_numpy(wav[:, None, :]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.prepare_input(torch.from_numpy(wav[0]))


# ------------------------------------------------------------------------------------------------ 5. permissions
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_atomic_writers_use_the_umask(tmp_path, umask):
    from mert import build_model
    from mert.checkpoints import save_checkpoint, save_model
    from mert.pretrain import atomic_torch_save
    from mert.teachers.storage import atomic_save_npy, atomic_write_json

    old = os.umask(umask)
    try:
        file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
        atomic_write_json(tmp_path / "a" / "b" / "x.json", {"k": 1})
        atomic_save_npy(tmp_path / "a" / "y.npy", np.zeros(3))
        (tmp_path / "ck").mkdir()
        atomic_torch_save({"k": 1}, tmp_path / "ck" / "z.pt")
        model = build_model("debug")
        save_model(model, tmp_path / "exported" / "m")
        save_checkpoint(model, tmp_path / "own" / "enc.pt")
        files = [tmp_path / "a" / "b" / "x.json", tmp_path / "a" / "y.npy", tmp_path / "ck" / "z.pt",
                 tmp_path / "exported" / "m" / "config.json", tmp_path / "exported" / "m" / "model.safetensors",
                 tmp_path / "own" / "enc.pt"]
        folders = [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "exported", tmp_path / "exported" / "m",
                   tmp_path / "own"]
        for f in files:
            assert oct(f.stat().st_mode & 0o777) == oct(file_mode), f
        for d in folders:
            assert oct(d.stat().st_mode & 0o777) == oct(dir_mode), d
        # a checkpoint into a folder that does not exist yet: created, with the umask's permissions too
        atomic_torch_save({"k": 1}, tmp_path / "new" / "deeper" / "z.pt")
        assert oct((tmp_path / "new" / "deeper" / "z.pt").stat().st_mode & 0o777) == oct(file_mode)
        for d in (tmp_path / "new", tmp_path / "new" / "deeper"):
            assert oct(d.stat().st_mode & 0o777) == oct(dir_mode), d
        assert os.umask(umask) == umask, "the process umask is left as it was"
    finally:
        os.umask(old)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers
