"""torchrun scale-out of `python -m benchmark extract|run` (benchmark/distributed.py) with 2 gloo CPU ranks.

The merged cache must equal the single-process cache file by file, byte for byte, and the probe scores must be
identical; a rank killed mid-extraction keeps its finished shards and a rerun extracts only the missing ones.
Runs on the tiny embedded corpus (key and genre) with the MFCC baseline and 4 items per cache shard.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.distributed import assign, launched

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--size", "tiny", "--no-progress", "features.shard_items=4"]
RUN = ["run", "--task", "key,genre", "--model", "mfcc", "--grid", "fast", *COMMON, "probe.max_epochs=3"]

COUNTING = '''
import os
from pathlib import Path

from benchmark.representations import MFCC


class CountingMFCC(MFCC):
    """MFCC (same name and identity, so the same cache key) that logs each model call per rank and can die."""

    def __call__(self, wav, lengths):
        rank = os.environ.get("RANK", "single")
        log = Path(os.environ["CALLS_DIR"]) / f"calls-{rank}"
        done = len(log.read_text().splitlines()) if log.exists() else 0
        if os.environ.get("FAIL_RANK") == rank and done >= int(os.environ["FAIL_AFTER"]):
            os._exit(3)  # killed: no cleanup, no exception handling
        with open(log, "a") as f:
            f.write("call\\n")
        return super().__call__(wav, lengths)


def factory():
    return CountingMFCC()
'''


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import tasks.embedded as emb

    home = tmp_path_factory.mktemp("dist-home")
    for t in ("key", "genre"):
        emb.prepare(t, "tiny", home=home, progress=False)
    return home


PER_RANK_CACHE = """
import os
import sys

from benchmark.commands import driver, print_table
from benchmark.pipeline import RunOptions

# every rank has its own cache folder, as machines without a shared file system would
rank = int(os.environ["RANK"])
home, cache, results = sys.argv[1:4]
out = driver()(RunOptions(model="mfcc", tasks=["key"], size="tiny", data_dir=home, cache_dir=f"{cache}/rank{rank}",
                     results_dir=results, grid="fast", progress=False,
                     overrides=["features.shard_items=4", "probe.max_epochs=3"]))
assert (out != []) == (rank == 0), out
print_table(out)
"""


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """The single-process run of key and genre: its cache and results."""
    tmp = tmp_path_factory.mktemp("reference")
    p = _bench(tmp, [*RUN, "--data-dir", str(corpus), "--cache-dir", str(tmp / "cache"),
                     "--results-dir", str(tmp / "results")])
    assert p.returncode == 0, p.stderr[-3000:]
    return tmp


def _env(tmp: Path, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp)]), OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", MERT_BENCH_HOME=str(tmp / "home"))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _bench(tmp: Path, args: list[str], nproc: int = 0, **env) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] \
        if nproc else [sys.executable]
    return subprocess.run([*launcher, "-m", "benchmark", *args], cwd=tmp, env=_env(tmp, **env),
                          capture_output=True, text=True, timeout=300)


def _files(root: Path) -> dict[str, bytes]:
    # (a rank killed in the middle of an atomic write may leave its hidden temporary file; it is never read)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not (p.name.startswith(".") and p.name.endswith(".tmp"))}


def _same_tree(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    assert any(k.endswith(".npz") for k in fa)
    for k in fa:
        assert fa[k] == fb[k], f"{k} differs"


def test_assignment_is_balanced_deterministic_and_breaks_ties_by_index():
    # longest first onto the least-loaded rank: 8 -> r0, 7 -> r1, 6 -> r1 (7 < 8), 2 -> r0, 1 -> r0
    assert assign([1, 8, 7, 6, 2], 2) == [0, 0, 1, 1, 0]
    assert assign([5, 5, 5, 5], 2) == [0, 1, 0, 1]         # ties: lower index first, onto the lower rank
    assert assign([3.0], 4) == [0] and assign([], 3) == []
    costs = [float((i * 37) % 11 + 1) for i in range(40)]
    owners = assign(costs, 3)
    loads = [sum(c for c, o in zip(costs, owners) if o == r) for r in range(3)]
    assert max(loads) - min(loads) <= max(costs)            # the greedy bound
    assert owners == assign(list(costs), 3)
    with pytest.raises(ValueError):
        assign([1.0], 0)


def test_shards_of_another_shard_size_are_refused(tmp_path):
    from benchmark.config import resolve_config
    from benchmark.features import ExtractionError, extract_split
    from benchmark.representations import MFCC
    from benchmark.synthetic import make_prepared
    from tasks import get_task

    spec = get_task("genre")
    data = make_prepared(spec, tmp_path / "genre", n={"train": 10, "valid": 2, "test": 2}, seconds=0.5)

    def fcfg(k):
        return resolve_config(spec, overrides=[f"features.shard_items={k}"]).features

    ref = extract_split(MFCC(), spec, data, "train", fcfg(4), tmp_path / "c", progress=False, log=lambda m: None)
    assert ref.owner.tolist() == list(range(10))
    for k in (2, 64):  # more shards expected than written / fewer: both cover the items wrongly
        with pytest.raises(ExtractionError, match="another features.shard_items"):
            extract_split(MFCC(), spec, data, "train", fcfg(k), tmp_path / "c", progress=False, log=lambda m: None,
                          cached_only=k == 64)


def test_launched_needs_all_three_torchrun_variables(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert not launched()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not launched()
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launched()


def test_two_gloo_ranks_merge_the_single_process_cache_and_score_identically(corpus, reference, tmp_path):
    args = [*RUN, "--data-dir", str(corpus), "--cache-dir", str(tmp_path / "c2"), "--results-dir", str(tmp_path / "r2")]
    two = _bench(tmp_path, args, nproc=2)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-4000:]
    _same_tree(reference / "cache", tmp_path / "c2")
    # both ranks extracted (20 shards of 4 items spread by duration), and the two tasks were probed on
    # different ranks; rank 0 printed the table once
    assert "rank 1/2: 10 shards" in two.stderr and "\n[" in two.stderr
    assert "probes: key on rank 0, genre on rank 1" in two.stderr, two.stderr[-3000:]
    assert two.stdout.count("embedded-tiny  mfcc") == 2
    for task in ("key", "genre"):
        a = json.loads(next((reference / "results").glob(f"runs/*/*/{task}@v1.json")).read_text())
        b = json.loads(next((tmp_path / "r2").glob(f"runs/*/*/{task}@v1.json")).read_text())
        for k in ("scores", "selection", "layers", "grid", "epochs_run", "config", "config_hash", "data",
                  "representation", "skipped"):
            assert a[k] == b[k], (task, k)
        assert b["timings"]["world_size"] == 2 and "world_size" not in a["timings"]
        assert a["timings"]["model_calls"] == b["timings"]["model_calls"] > 0
    lb1 = (reference / "results" / "leaderboard.csv").read_text()
    assert lb1 == (tmp_path / "r2" / "leaderboard.csv").read_text()
    # a rerun under torchrun finds every result: no extraction, no probes, exit 0
    again = _bench(tmp_path, args, nproc=2)
    assert again.returncode == 0 and "extracting" not in again.stderr and "result exists" in again.stderr


def test_killed_rank_keeps_its_shards_and_the_rerun_extracts_only_the_missing(corpus, tmp_path):
    (tmp_path / "counting_model.py").write_text(COUNTING)
    calls = tmp_path / "calls"
    calls.mkdir()
    # batch_seconds below one item: one model call per item, so calls count items
    args = ["extract", "--task", "key", "--model", "counting_model:factory", "--data-dir", str(corpus), *COMMON,
            "features.batch_seconds=1"]
    ref = _bench(tmp_path, [*args, "--cache-dir", str(tmp_path / "ref")], CALLS_DIR=calls)
    assert ref.returncode == 0, ref.stderr[-3000:]
    rows = json.loads(ref.stdout.strip().splitlines()[-1])["rows"]
    n_items = len((calls / "calls-single").read_text().splitlines())
    assert n_items == 24 + 6 + 12 and rows == {"train": 24, "valid": 6, "test": 12}

    cache = tmp_path / "dist"
    killed = _bench(tmp_path, [*args, "--cache-dir", str(cache)], nproc=2, CALLS_DIR=calls, FAIL_RANK=1,
                    FAIL_AFTER=9)
    assert killed.returncode != 0
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("shard-*.npz")}
    calls_killed = {r: len((calls / f"calls-{r}").read_text().splitlines()) for r in (0, 1)}
    assert calls_killed[1] == 9                          # rank 1 died at its 10th item (two shards done)
    assert 2 <= len(kept) < 11
    for p in kept:                                       # the kept shards are final (the reference's bytes)
        assert p.read_bytes() == (tmp_path / "ref" / p.relative_to(cache)).read_bytes()
    items_kept = sum(len(np.load(p)["owner"]) for p in kept)  # one row per key item (none is skipped)

    for r in (0, 1):
        (calls / f"calls-{r}").unlink(missing_ok=True)
    rerun = _bench(tmp_path, [*args, "--cache-dir", str(cache)], nproc=2, CALLS_DIR=calls)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-4000:]
    redone = sum(len(p.read_text().splitlines()) for p in calls.glob("calls-[01]"))
    assert redone == n_items - items_kept                # only the items of the missing shards went through the model
    assert f"extracting {11 - len(kept)} missing shards" in rerun.stderr
    for p, stamp in kept.items():                        # finished shards were not rewritten
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp
    _same_tree(tmp_path / "ref", cache)
    assert [json.loads(line)["rows"] for line in rerun.stdout.strip().splitlines()] == [rows]


def test_without_a_shared_file_system_rank_0_collects_the_shards(corpus, reference, tmp_path):
    (tmp_path / "per_rank.py").write_text(PER_RANK_CACHE)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "per_rank.py", str(corpus), str(tmp_path / "cache"), str(tmp_path / "results")],
                       cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    # rank 1 wrote its shards into its own folder; rank 0 received them and holds the whole cache
    assert "collected" in p.stderr and list((tmp_path / "cache" / "rank1" / "key").rglob("shard-*.npz"))
    _same_tree(reference / "cache" / "key", tmp_path / "cache" / "rank0" / "key")
    # one task: rank 0 probed it (the same scores) and printed the table
    a = json.loads(next((reference / "results").glob("runs/*/*/key@v1.json")).read_text())
    b = json.loads(next((tmp_path / "results").glob("runs/*/*/key@v1.json")).read_text())
    assert a["scores"] == b["scores"] and a["layers"] == b["layers"] and b["timings"]["world_size"] == 2
    assert p.stdout.count("embedded-tiny  mfcc") == 1
