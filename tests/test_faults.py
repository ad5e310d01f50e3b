"""Faults and bad input of the benchmark's run path (issue 17): each one is a one-line ``error:`` (exit 2, no
traceback, naming the key or file, before any work where that can be known) or a correct recovery, and no
finished result is ever replaced by a run that could not be valid.

Numbers refer to the issue's list; the feature cache's cases (1, 2, 11) are in test_faults_cache.py and the
``mert`` package's (4: ``mert info``, 6, 7, 9: audio) in test_faults_mert.py.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from benchmark.__main__ import main
from benchmark.config import BenchConfig, ConfigError, resolve_config
from tasks import get_task
from tasks.format import FormatError, Item, atomic_dir, atomic_write_text, read_split, write_meta


@pytest.fixture()
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("MERT_BENCH_HOME", str(h))
    return h


def _genre(root: Path, seed: int = 0) -> Path:
    from benchmark.synthetic import make_prepared

    return make_prepared(get_task("genre"), root, n={"train": 10, "valid": 4, "test": 4}, seconds=1.0, seed=seed)


def _args(data: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--task", "genre", "--model", "chroma", "--data", "prepared", "--data-dir", str(data),
            "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--grid", "fast",
            "--no-progress", "--quiet", "probe.max_epochs=2", *extra]


def _results(tmp_path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((tmp_path / "r" / "runs").glob("**/*.json"))}


def _one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture()
def finished(tmp_path, home, capsys):
    """A finished genre run (its result file) that the bad runs below must leave byte-identical."""
    data = _genre(tmp_path / "genre")
    assert main(_args(data, tmp_path)) == 0
    capsys.readouterr()
    before = _results(tmp_path)
    assert len(before) == 1
    return data, before


# ---------------------------------------------------------------------------------------------- 3, 4: settings

@pytest.mark.parametrize("bad, needle", [
    (["probe.max_epochs=-5"], "probe.max_epochs=-5: must be >= 1"),
    (["probe.batch_size=-3"], "probe.batch_size=-3"),
    (["probe.batch_size=0"], "probe.batch_size=0"),
    (["probe.dropout=1.5"], "probe.dropout=1.5: must be in [0, 1)"),
    (["probe.lrs=[0.001,-0.1]"], "probe.lrs="),
    (["probe.lrs=[]"], "must not be empty"),
    (["--limit", "0"], "--limit 0"),
    (["--seeds", "0"], "--seeds 0"),
    (["--device", "gpu0"], "'gpu0'"),
    (["--layers", "7"], "layer 7 does not exist"),
    (["features.shard_items=0"], "features.shard_items=0"),
])
def test_a_setting_out_of_range_is_one_error_line_and_keeps_the_result(finished, tmp_path, capsys, bad, needle):
    data, before = finished
    assert main(_args(data, tmp_path, *bad)) == 2
    _one_error_line(capsys, needle)
    assert _results(tmp_path) == before  # byte-identical: the bad run never replaced the good one


def test_cuda_without_a_gpu_is_refused_before_any_work(finished, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    data, before = finished
    shutil.rmtree(tmp_path / "c")
    assert main(_args(data, tmp_path, "--device", "cuda", "--overwrite", "always")) == 2
    _one_error_line(capsys, "--device cuda", "no CUDA device")
    assert _results(tmp_path) == before
    assert not list((tmp_path / "c").glob("**/*.npz"))  # refused before the extraction, not after it


def test_every_numeric_setting_declares_its_range():
    """The ranges are declared on the fields (benchmark.config.Check), not a list of ifs: every number and list
    of numbers has one, and its default satisfies it."""
    for section in fields(BenchConfig):
        for f in fields(section.default_factory):
            default = f.default_factory() if callable(f.default_factory) else f.default
            numeric = isinstance(default, (int, float, list)) and not isinstance(default, bool)
            check = f.metadata.get("check")
            if numeric:
                assert check is not None, f"{section.name}.{f.name} declares no range"
            if check is not None:
                assert check.problem(default) is None, (section.name, f.name)


@pytest.mark.parametrize("override", ["probe.patience=0", "probe.plateau_factor=0", "probe.weight_decay=-1",
                                      "probe.prune_eta=1", "features.batch_seconds=0", "features.max_skip_fraction=2",
                                      "separation.lr=0", "separation.hop=0", "beat.crop_s=-1", "probe.dropout=nan"])
def test_ranges_are_checked_at_config_resolution(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        resolve_config(get_task("genre"), overrides=[override])


def test_malformed_config_yaml_is_one_line(finished, tmp_path, capsys):
    data, before = finished
    bad = tmp_path / "bad.yaml"
    bad.write_text("probe:\n  max_epochs: [1\n")
    assert main(_args(data, tmp_path, "--config", str(bad))) == 2
    _one_error_line(capsys, str(bad), "not valid YAML", "line")
    bad.write_text("- 1\n- 2\n")
    assert main(_args(data, tmp_path, "--config", str(bad))) == 2
    _one_error_line(capsys, "not a mapping")
    assert _results(tmp_path) == before


def test_malformed_meta_json_names_the_file(tmp_path, home, capsys):
    data = _genre(tmp_path / "genre")
    (data / "meta.json").write_text('{"task": "genre", ')
    assert main(_args(data, tmp_path)) == 2
    _one_error_line(capsys, str(data / "meta.json"), "not valid JSON")


def test_a_truncated_result_is_replaced_under_run_and_one_line_under_leaderboard(finished, tmp_path, capsys):
    data, before = finished
    (path,) = before
    path.write_bytes(before[path][:100])  # a write cut short
    assert main(["leaderboard", "--results-dir", str(tmp_path / "r"), "--no-plots"]) == 2
    _one_error_line(capsys, str(path), "not valid JSON")
    assert main(_args(data, tmp_path, "--overwrite", "never")) == 2  # cannot be kept as it is
    _one_error_line(capsys, str(path), "--overwrite never")
    assert main(_args(data, tmp_path)) == 0  # only-missing: run again and replace it, saying so
    assert f"warning: {path}: not valid JSON" in capsys.readouterr().err
    new = json.loads(path.read_text())
    assert new["scores"] == json.loads(before[path])["scores"]


# ---------------------------------------------------------------------------------------------- 5: disk full

def test_an_unwritable_results_folder_is_refused_before_any_work(tmp_path, home, capsys):
    data = _genre(tmp_path / "genre")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    args = _args(data, tmp_path)
    args[args.index("--results-dir") + 1] = str(blocker / "results")
    assert main(args) == 2
    _one_error_line(capsys, "--results-dir", str(blocker / "results"), "cannot write there")
    assert not (tmp_path / "c").exists()  # no feature was extracted
    args = _args(data, tmp_path)
    args[args.index("--cache-dir") + 1] = str(blocker / "cache")
    assert main(args) == 2
    _one_error_line(capsys, "--cache-dir", "cannot write there")


def _fail_writes_under(monkeypatch, folder: Path, err: int) -> list[Path]:
    """Writes below ``folder`` fail with ``err`` (ENOSPC: a full disk; EROFS: read-only), others go through."""
    import tasks.format as fmt

    real, refused = fmt.atomic_write_text, []

    def write(path, text):
        if Path(path).resolve().is_relative_to(folder.resolve()):
            refused.append(Path(path))
            raise OSError(err, os.strerror(err), str(path))
        real(path, text)

    monkeypatch.setattr(fmt, "atomic_write_text", write)
    return refused


def test_disk_full_at_the_result_write_keeps_the_record_and_the_next_run_uses_it(tmp_path, home, capsys,
                                                                                  monkeypatch):
    data = _genre(tmp_path / "genre")
    refused = _fail_writes_under(monkeypatch, tmp_path / "r" / "runs", errno.ENOSPC)
    assert main(_args(data, tmp_path)) == 2
    line = _one_error_line(capsys, "No space left on device", "the record was saved to")
    assert refused and not _results(tmp_path)
    (kept,) = (home / "unsaved-results").glob("**/genre@v1.json")
    assert str(kept) in line
    record = json.loads(kept.read_text())
    monkeypatch.undo()  # space freed
    monkeypatch.setenv("MERT_BENCH_HOME", str(home))
    import benchmark.pipeline as pipeline

    def no_probe(*a, **k):
        raise AssertionError("the kept record should have been used, not a new probe")

    monkeypatch.setattr(pipeline, "run_probes", no_probe)
    assert main(_args(data, tmp_path)) == 0
    (path,) = _results(tmp_path)
    assert json.loads(path.read_text()) == record and not kept.exists()


def test_leaderboard_on_a_read_only_folder_is_one_line(finished, tmp_path, capsys, monkeypatch):
    _fail_writes_under(monkeypatch, tmp_path / "r", errno.EROFS)
    assert main(["leaderboard", "--results-dir", str(tmp_path / "r"), "--no-plots"]) == 2
    _one_error_line(capsys, "cannot write the leaderboards", "Read-only file system")


# ---------------------------------------------------------------------------------------------- 8: permissions

@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "folder") as d:
            (d / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "folder").stat().st_mode & 0o777 == dir_mode


def test_a_run_writes_results_a_colleague_can_read(tmp_path, home):
    data = _genre(tmp_path / "genre")
    old = os.umask(0o022)
    try:
        assert main(_args(data, tmp_path)) == 0
    finally:
        os.umask(old)
    for p in [*_results(tmp_path), tmp_path / "r" / "leaderboard.csv", *(tmp_path / "c").glob("**/*.npz")]:
        assert p.stat().st_mode & 0o044 == 0o044, p


# ---------------------------------------------------------------------------------------------- 9: smaller

def test_duplicate_item_ids_in_a_prepared_split_are_refused(tmp_path, home, capsys):
    data = _genre(tmp_path / "genre")
    lines = (data / "test.jsonl").read_text().splitlines()
    (data / "test.jsonl").write_text("\n".join([*lines, lines[0]]) + "\n")
    with pytest.raises(FormatError, match=rf"test.jsonl:{len(lines) + 1}: item id .* already on line 1"):
        read_split(data, "test")
    assert main(_args(data, tmp_path)) == 2
    _one_error_line(capsys, "test.jsonl", "already on line 1")


def test_validate_deep_says_which_files_are_nan_inf_or_silent(tmp_path, capsys):
    import soundfile as sf

    from fixtures_real import GTZAN_SPLITS, make_gtzan

    root = tmp_path / "GTZAN"
    make_gtzan(root)
    bad = {}
    for (stem, kind), fill in zip([(GTZAN_SPLITS["train"][0], "NaN"), (GTZAN_SPLITS["valid"][0], "infinite"),
                                   (GTZAN_SPLITS["test"][0], "silent")], (np.nan, np.inf, 0.0)):
        path = root / "Data" / "genres_original" / stem.split(".")[0] / f"{stem}.wav"
        x, sr = sf.read(path, dtype="float32")
        x[: len(x) // 2 if kind != "silent" else len(x)] = fill
        sf.write(path, x, sr, subtype="FLOAT")
        bad[f"{stem}.wav"] = kind
    assert main(["validate", "--task", "genre", "--data-dir", str(root)]) == 0  # headers are fine
    out = capsys.readouterr().out
    assert not any(name in out for name in bad)
    main(["validate", "--task", "genre", "--data-dir", str(root), "--deep"])
    out = capsys.readouterr().out
    assert "bad audio (decoded): 3" in out
    for name, kind in bad.items():
        (line,) = [line for line in out.splitlines() if name in line]
        assert kind in line, line


# ---------------------------------------------------------------------------------------------- 10: prepared data

def test_a_prepared_folders_result_is_never_reused_for_another_folder(tmp_path, home, capsys):
    a, b = _genre(tmp_path / "a" / "genre", seed=0), _genre(tmp_path / "b" / "genre", seed=1)
    assert main(_args(a, tmp_path)) == 0
    assert main(_args(b, tmp_path)) == 0  # same folder name, other items: its own result, not "result exists"
    runs = {json.loads(p.read_text())["data"]["folder"]: json.loads(p.read_text()) for p in _results(tmp_path)}
    assert sorted(runs) == [str(a), str(b)]
    ra, rb = runs[str(a)], runs[str(b)]
    assert ra["data"]["source"].startswith("prepared-genre-") and ra["data"]["source"] != rb["data"]["source"]
    assert ra["data"]["items_digest"] != rb["data"]["items_digest"]
    # the same folder with another test split is another source too
    items = read_split(a, "test")
    (a / "test.jsonl").write_text("".join(Item(**{**it.__dict__, "target": "rock"}).to_json() + "\n"
                                          for it in items))
    capsys.readouterr()
    assert main(_args(a, tmp_path)) == 0
    assert "result exists" not in capsys.readouterr().err
    assert len(_results(tmp_path)) == 3


def test_a_prepared_folder_states_and_may_declare_its_data_defaults(tmp_path, home):
    data = _genre(tmp_path / "genre")
    meta = json.loads((data / "meta.json").read_text())
    args = [a for a in _args(data, tmp_path) if a != "--quiet"]

    def record():
        (p,) = [p for p in _results(tmp_path) if json.loads(p.read_text())["data"]["folder"] == str(data)]
        return json.loads(p.read_text())

    assert main(args) == 0
    r = record()
    assert r["data"]["defaults"] == "real" and r["config"]["probe"]["seeds"] == 1
    write_meta(data, {**meta, "source": "embedded"})  # a copy of an embedded task: the embedded protocol
    assert main(args) == 0
    r = record()
    assert r["data"]["defaults"] == "embedded" and r["config"]["probe"]["seeds"] == 3
    assert not r["data"]["source"].startswith("embedded")  # filed as prepared, whatever meta.json says
    write_meta(data, {**meta, "source": "embedded", "defaults": "real"})  # declared by the folder
    assert main(args) == 0
    assert record()["config"]["probe"]["seeds"] == 1


def test_the_feature_cache_never_serves_another_folders_audio(tmp_path):
    """Two prepared folders with the same listing (ids, relative paths, targets, meta) but other audio, and a
    file replaced in place: each gets its own features, never the cache entry of the other audio."""
    import soundfile as sf

    from benchmark.features import extract_split
    from benchmark.representations import MFCC

    a, b = _genre(tmp_path / "a" / "genre", seed=0), _genre(tmp_path / "b" / "genre", seed=1)
    assert (a / "train.jsonl").read_bytes() == (b / "train.jsonl").read_bytes()
    cfg = resolve_config(get_task("genre"), overrides=["features.shard_items=4"])
    spec, rep, cache = get_task("genre"), MFCC(), tmp_path / "cache"

    def feats(folder):
        return extract_split(rep, spec, folder, "train", cfg.features, cache, progress=False, log=lambda m: None)

    fa, fb = feats(a), feats(b)
    assert fa.model_calls and fb.model_calls and not np.array_equal(fa.x, fb.x)
    assert feats(a).model_calls == 0  # a's own cache entry is still there
    first = a / read_split(a, "train")[0].audio
    x, sr = sf.read(first, dtype="float32")
    sf.write(first, x[::-1].copy(), sr)  # audio replaced in place
    again = feats(a)
    assert again.model_calls and not np.array_equal(again.x[0], fa.x[0])


def test_a_real_bug_keeps_its_traceback(monkeypatch):
    """Only the user-facing error types become one line; a KeyError from a bug is raised as it is."""
    import benchmark.commands as commands

    def broken(args):
        return {}["missing"]

    monkeypatch.setitem(commands.COMMANDS, "list-tasks", broken)
    with pytest.raises(KeyError, match="missing"):
        main(["list-tasks"])
