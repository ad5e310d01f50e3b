"""Where the benchmark keeps things on disk, and how names become file names. A leaf module.

``$MERT_BENCH_HOME`` (default ``~/.cache/mert-bench``) holds the embedded corpus, prepared real data, the feature
cache (``features/``, or ``--cache-dir``) and results whose write failed (``unsaved-results/``).
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("MERT_BENCH_HOME") or Path.home() / ".cache" / "mert-bench")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir) if cache_dir else home() / "features"


def slug(name: str) -> str:
    """A file-name-safe form of a model or folder name (at most 60 characters)."""
    keep = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)
    return keep[:60] or "model"
