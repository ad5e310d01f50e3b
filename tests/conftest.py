"""Test-wide settings: no network, a private data home, deterministic and thread-bounded torch."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory):
    """A data home with the tiny embedded corpus of all 14 tasks built (tasks.embedded, size "tiny").

    Use ``tasks.embedded.prepare(name, "tiny", home=tiny_home)`` to get a task's prepared folder (instant).
    """
    from tasks.embedded import prepare_all

    home = tmp_path_factory.mktemp("mert-bench-home")
    prepare_all("tiny", home=home, progress=False)
    return home


@pytest.fixture(scope="session")
def stored_probes(tmp_path_factory):
    """Two trained runs whose stored probes (benchmark.artefacts) the predict / evaluate / artefact tests apply: key
    on rendered cadences with ``chroma`` and beat on click tracks with ``mfcc`` (tests/fixtures_probes.py), one
    seed each, results and cache in a temporary folder. Tests may add results there (evaluate) but must not replace
    these two. Returns a dict: root, results, cache, key_data, beat_data, key_source, beat_source."""
    from fixtures_probes import KEYS6, make_beat_folder, make_key_folder

    from benchmark.__main__ import main

    root = tmp_path_factory.mktemp("stored-probes")
    key_data = make_key_folder(root / "keys", KEYS6, {"train": 4, "valid": 1, "test": 1}, seed=0, seconds=2.0)
    beat_data = make_beat_folder(root / "clicks", {"train": 12, "valid": 3, "test": 3}, seed=0, seconds=6.0)
    common = ["--data", "prepared", "--results-dir", str(root / "results"), "--cache-dir", str(root / "cache"),
              "--grid", "fast", "--seeds", "1", "--no-progress", "--quiet", "--no-leaderboard"]
    assert main(["run", "--task", "key", "--model", "chroma", "--data-dir", str(key_data), *common]) == 0
    assert main(["run", "--task", "beat", "--model", "mfcc", "--data-dir", str(beat_data), *common,
                 "probe.max_epochs=15", "beat.crops_per_batch=2"]) == 0  # 6 steps per epoch of the 12 tracks
    sources = {p.parent.parent.name.split("-")[1]: p.parent.parent.name
               for p in (root / "results" / "runs").glob("*/*/*.json")}
    return {"root": root, "results": root / "results", "cache": root / "cache", "key_data": key_data,
            "beat_data": beat_data, "key_source": sources["keys"], "beat_source": sources["clicks"]}
