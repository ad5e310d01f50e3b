"""Feature cache faults (issue 17): a damaged shard (empty, half-truncated, bytes overwritten) or a foreign one
(copied from another split or another shard index) is named in a warning and extracted again, with the features
of the undamaged cache byte for byte; under ``cached_only`` (``probe``) it is a clear error naming it; a legacy
shard (no record) is extracted again once; two extractions sharing a cache compute each shard once (per-shard
lock), and a killed lock holder leaves the cache usable.

Tiny embedded genre corpus (10 items a split) with the MFCC baseline, 4 items a shard (shards of 4, 4, 2 items).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.config import resolve_config
from benchmark.features import ExtractionError, extract_split, split_cache
from benchmark.representations import MFCC
from tasks import get_task

REPO = Path(__file__).resolve().parents[1]
SPEC = get_task("genre")


class CountingMFCC(MFCC):
    """MFCC (same name and identity, so the same cache entry) that counts its model calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, wav, lengths):
        self.calls += 1
        return super().__call__(wav, lengths)


def _fcfg(*overrides):
    return resolve_config(SPEC, overrides=["features.shard_items=4", *overrides]).features


def _extract(data, cache, split="train", rep=None, cached_only=False):
    """(features, model calls, log lines) of one extraction."""
    rep = rep or CountingMFCC()
    logs: list[str] = []
    f = extract_split(rep, SPEC, data, split, _fcfg(), cache, progress=False, log=logs.append,
                      cached_only=cached_only)
    assert f.model_calls == rep.calls
    return f, rep.calls, logs


def _folder(data, cache, split="train") -> Path:
    return split_cache(MFCC(), SPEC, data, split, _fcfg(), cache).folder


def _same(a, b):
    assert a.x.dtype == b.x.dtype == np.float16 and a.x.shape == b.x.shape
    assert a.x.tobytes() == b.x.tobytes() and a.owner.tolist() == b.owner.tolist() and a.skipped == b.skipped


@pytest.fixture(scope="module")
def genre(tiny_home):
    import tasks.embedded as emb

    return emb.prepare("genre", "tiny", home=tiny_home, progress=False)


@pytest.fixture(scope="module")
def reference(genre, tmp_path_factory):
    """The undamaged cache: every split's features and the bytes of every train shard."""
    cache = tmp_path_factory.mktemp("ref-cache")
    feats = {s: _extract(genre, cache, s)[0] for s in ("train", "valid", "test")}
    shards = {p.name: p.read_bytes() for p in sorted(_folder(genre, cache).glob("shard-*.npz"))}
    assert len(shards) == 3 and len(feats["train"].items) == len(feats["valid"].items) == 10
    return {"cache": cache, "feats": feats, "shards": shards}


def _copy_cache(reference, dest: Path) -> Path:
    import shutil

    shutil.copytree(reference["cache"], dest)
    return dest


def _empty(p: Path) -> None:
    p.write_bytes(b"")  # truncate -s 0


def _half(p: Path) -> None:
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])


def _overwritten(p: Path) -> None:
    b = bytearray(p.read_bytes())
    mid = len(b) // 2
    b[mid:mid + 64] = bytes(v ^ 0xFF for v in b[mid:mid + 64])  # 64 flipped bytes in the middle, same size
    p.write_bytes(bytes(b))


DAMAGE = {"empty": _empty, "half-truncated": _half, "bytes-overwritten": _overwritten}


@pytest.mark.parametrize("part", ["index", "rows"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_shard_is_named_and_extracted_again(genre, reference, tmp_path, damage, part):
    """Either file of a shard damaged: its index (``.npz``) or its rows (``.x.npy``, memory-mapped when read)."""
    cache = _copy_cache(reference, tmp_path / "c")
    shard = _folder(genre, cache) / "shard-00001.npz"
    target = shard if part == "index" else shard.with_suffix(".x.npy")
    before = target.read_bytes()
    DAMAGE[damage](target)
    assert target.read_bytes() != before
    f, calls, logs = _extract(genre, cache)
    warned = [m for m in logs if str(shard) in m and "warning" in m and "damaged" in m]
    assert len(warned) == 1, logs
    assert calls == 1  # only that shard (4 items, one batch) went through the model again
    _same(f, reference["feats"]["train"])
    assert shard.read_bytes() == reference["shards"][shard.name]  # rewritten as the undamaged shard
    assert target.read_bytes() == before
    again, calls, logs = _extract(genre, cache)  # healed for good: no model work, nothing to say
    assert calls == 0 and not any("warning" in m for m in logs)
    _same(again, reference["feats"]["train"])


@pytest.mark.parametrize("source", ["another split", "another shard index"])
def test_a_foreign_shard_is_detected_and_extracted_again(genre, reference, tmp_path, source):
    cache = _copy_cache(reference, tmp_path / "c")
    train = _folder(genre, cache)
    if source == "another split":  # valid shard 0 holds 4 items too, of the same representation
        target = train / "shard-00000.npz"
        target.write_bytes((_folder(genre, cache, "valid") / "shard-00000.npz").read_bytes())
    else:  # train shard 0 (4 items) in the place of shard 1 (4 items)
        target = train / "shard-00001.npz"
        target.write_bytes((train / "shard-00000.npz").read_bytes())
    f, calls, logs = _extract(genre, cache)
    assert any(str(target) in m and "warning" in m for m in logs), logs
    assert calls == 1
    _same(f, reference["feats"]["train"])
    assert target.read_bytes() == reference["shards"][target.name]


def test_shards_record_what_they_hold(genre, reference):
    folder = _folder(genre, reference["cache"])
    items = reference["feats"]["train"].items
    key = folder.name.rsplit("-", 1)[1]
    for s, (name, blob) in enumerate(reference["shards"].items()):
        with np.load(io.BytesIO(blob)) as z:
            rec = json.loads(str(z["record"]))
        lo, hi = 4 * s, min(10, 4 * s + 4)
        rows = rec.pop("rows")
        assert rec == {"format": 3, "recipe": key, "shard": s, "range": [lo, hi],
                       "ids": [it.id for it in items[lo:hi]]}
        assert rows["shape"] == [hi - lo, 1, 120] and rows["dtype"] == "<f2" and isinstance(rows["crc32"], int)


def test_under_cached_only_a_damaged_shard_is_an_error_naming_it(genre, reference, tmp_path):
    cache = _copy_cache(reference, tmp_path / "c")
    shard = _folder(genre, cache) / "shard-00002.npz"
    _half(shard)
    rep = CountingMFCC()
    with pytest.raises(ExtractionError, match="python -m benchmark extract") as e:
        extract_split(rep, SPEC, genre, "train", _fcfg(), cache, progress=False, log=lambda m: None,
                      cached_only=True)
    assert str(shard) in str(e.value) and "damaged" in str(e.value) and rep.calls == 0
    assert "\n" not in str(e.value)


def _record(results: Path) -> dict:
    (path,) = results.glob("runs/*/mfcc@*/genre@v1.json")
    return json.loads(path.read_text())


def test_cli_probe_refuses_a_damaged_cache_and_run_heals_it_with_the_same_scores(genre, tiny_home, tmp_path,
                                                                                 capsys):
    from benchmark.__main__ import main

    cache, results = tmp_path / "cache", tmp_path / "results"
    base = ["--task", "genre", "--model", "mfcc", "--size", "tiny", "--grid", "fast", "--seeds", "1", "--no-progress",
            "--data-dir", str(tiny_home), "--cache-dir", str(cache), "--results-dir", str(results),
            "features.shard_items=4", "probe.max_epochs=3"]
    assert main(["run", *base]) == 0
    before = _record(results)
    damaged = _folder(genre, cache, "train") / "shard-00001.npz"
    _overwritten(damaged)
    foreign = _folder(genre, cache, "valid") / "shard-00000.npz"
    foreign.write_bytes((_folder(genre, cache, "test") / "shard-00000.npz").read_bytes())
    capsys.readouterr()

    assert main(["probe", *base, "--overwrite", "always"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert str(damaged) in errors[0] and "python -m benchmark extract" in errors[0]

    assert main(["run", *base, "--overwrite", "always"]) == 0
    err = capsys.readouterr().err
    assert any(str(damaged) in line and "warning" in line for line in err.splitlines()), err
    assert any(str(foreign) in line and "warning" in line for line in err.splitlines()), err
    after = _record(results)
    for k in ("scores", "selection", "layers", "data"):
        assert after[k] == before[k], k
    assert after["timings"]["model_calls"] == 2  # the two bad shards, one batch each
    assert main(["probe", *base, "--overwrite", "always"]) == 0  # healed: the cache alone suffices again


def _legacy(path: Path, record: bool = False) -> None:
    """Rewrite a shard as shard format 1 wrote it (rows inside the .npz, no record), or format 2 (``record``:
    rows inside, with a record)."""
    rows = path.with_suffix(".x.npy")
    with np.load(path) as z:
        arrays = {k: z[k] for k in ("owner", "times", "skipped")}
        order, rec = z["order"], json.loads(str(z["record"]))
    arrays["x"] = np.load(rows)[order]
    if record:
        rec.pop("rows")
        arrays["record"] = np.array(json.dumps({**rec, "format": 2}, sort_keys=True))
    rows.unlink()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("fmt", [1, 2])
def test_legacy_shards_are_extracted_again_once_with_one_warning(genre, reference, tmp_path, fmt):
    cache = _copy_cache(reference, tmp_path / "c")
    folder = _folder(genre, cache)
    for p in folder.glob("shard-*.npz"):
        _legacy(p, record=fmt == 2)
    why = "cannot be verified" if fmt == 1 else "shard format 2"
    with pytest.raises(ExtractionError, match=why + r"[\s\S]*python -m benchmark extract"):
        _extract(genre, cache, cached_only=True)
    f, calls, logs = _extract(genre, cache)
    warned = [m for m in logs if "warning" in m]
    assert len(warned) == 1 and str(folder) in warned[0] and "3 shards" in warned[0], logs
    assert calls == 3  # every shard once
    _same(f, reference["feats"]["train"])
    assert {p.name: p.read_bytes() for p in folder.glob("shard-*.npz")} == reference["shards"]
    assert _extract(genre, cache, cached_only=True)[1] == 0


CONCURRENT = '''
import hashlib
import json
import sys
import time
from pathlib import Path

from benchmark.config import resolve_config
from benchmark.features import extract_split
from benchmark.representations import MFCC
from tasks import get_task


class SlowMFCC(MFCC):
    """MFCC (same cache entry) that takes its time, so the two processes overlap."""

    def __call__(self, wav, lengths):
        time.sleep(0.25)
        return super().__call__(wav, lengths)


data, cache, out, go = sys.argv[1:5]
spec = get_task("genre")
fcfg = resolve_config(spec, overrides=["features.shard_items=2", "features.batch_seconds=0.5"]).features
logs = []
Path(out + ".ready").touch()
while not Path(go).exists():
    time.sleep(0.005)
f = extract_split(SlowMFCC(), spec, data, "train", fcfg, cache, progress=False, log=logs.append)
Path(out).write_text(json.dumps({"calls": f.model_calls, "logs": logs, "owner": f.owner.tolist(),
                                 "x": hashlib.sha256(f.x.tobytes()).hexdigest()}))
'''


def test_two_concurrent_extractions_compute_each_shard_once(genre, tmp_path):
    # one run alone: batch_seconds under one item, so one model call per item
    alone = CountingMFCC()
    fcfg = resolve_config(SPEC, overrides=["features.shard_items=2", "features.batch_seconds=0.5"]).features
    extract_split(alone, SPEC, genre, "train", fcfg, tmp_path / "alone", progress=False, log=lambda m: None)
    assert alone.calls == 10

    script = tmp_path / "extract_train.py"
    script.write_text(CONCURRENT)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    go, outs = tmp_path / "go", [tmp_path / "out-a.json", tmp_path / "out-b.json"]
    procs = [subprocess.Popen([sys.executable, str(script), str(genre), str(tmp_path / "shared"),
                               str(out), str(go)], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
             for out in outs]
    try:
        deadline = time.time() + 120
        while not all(Path(f"{o}.ready").exists() for o in outs):  # both imported and ready: start together
            assert time.time() < deadline and all(p.poll() is None for p in procs), [p.stderr.read() for p in procs]
            time.sleep(0.01)
        go.touch()
        for p in procs:
            assert p.wait(timeout=120) == 0, p.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    a, b = (json.loads(o.read_text()) for o in outs)
    assert a["calls"] + b["calls"] == alone.calls  # every shard computed once, over both processes
    assert any("waiting" in m for m in a["logs"] + b["logs"])  # they did overlap: one waited for the other
    assert a["x"] == b["x"] and a["owner"] == b["owner"] == list(range(10))
    assert not list((tmp_path / "shared").rglob("*.lock"))  # no lock file stays behind


HOLD_LOCK = '''
import sys
import time

from benchmark.config import resolve_config
from benchmark.features import shard_lock, split_cache
from benchmark.representations import MFCC
from tasks import get_task

spec = get_task("genre")
fcfg = resolve_config(spec, overrides=["features.shard_items=4"]).features
sc = split_cache(MFCC(), spec, sys.argv[1], "train", fcfg, sys.argv[2])
with shard_lock(sc, 1):
    print("locked", flush=True)
    time.sleep(120)
'''


def test_a_lock_holder_killed_with_sigkill_leaves_the_cache_usable(genre, reference, tmp_path):
    from filelock import FileLock

    cache = tmp_path / "c"
    (tmp_path / "hold.py").write_text(HOLD_LOCK)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    p = subprocess.Popen([sys.executable, str(tmp_path / "hold.py"), str(genre), str(cache)], env=env,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
    finally:
        p.kill()  # SIGKILL: no cleanup
        p.wait(timeout=30)
    sc = split_cache(MFCC(), SPEC, genre, "train", _fcfg(), cache)
    assert sc.lock_path(1).exists()  # the file stays; the lock died with its holder
    FileLock(str(sc.lock_path(1))).acquire(timeout=10).lock.release()
    f, calls, _ = _extract(genre, cache)
    assert calls == 3
    _same(f, reference["feats"]["train"])
