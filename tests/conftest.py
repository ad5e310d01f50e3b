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
