"""Feature rows on disk (benchmark/rows.py): streamed writes, lazy memory-mapped reads, float16 range."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.config import resolve_config
from benchmark.features import extract_split
from benchmark.representations import MFCC
from benchmark.rows import F16_MAX, RowWriter, ShardedRows, check_rows
from benchmark.synthetic import make_prepared
from tasks import get_task


def _write(path, *chunks):
    w = RowWriter(path, chunks[0].shape[1])
    for c in chunks:
        w.append(c)
    return w.close()


def test_rows_are_a_numpy_file_mapped_lazily_in_item_order(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 3, 4)).astype(np.float32), rng.standard_normal((4, 3, 4)).astype(np.float32)
    ma, mb = _write(tmp_path / "a.npy", a[:2], a[2:]), _write(tmp_path / "b.npy", b)
    xa = np.load(tmp_path / "a.npy", mmap_mode="r")  # a plain .npy: numpy maps it
    assert isinstance(xa, np.memmap) and xa.dtype == np.float16 and np.array_equal(xa, a.astype(np.float16))
    order_a = np.array([4, 3, 2, 1, 0])  # file rows in batch order, reversed into item order
    x = ShardedRows([(check_rows(tmp_path / "a.npy", ma), order_a), (check_rows(tmp_path / "b.npy", mb),
                                                                      np.arange(4))], 3, 4)
    full = np.concatenate([a[::-1], b]).astype(np.float16)
    assert x.shape == (9, 3, 4) and len(x) == 9 and np.array_equal(np.asarray(x), full)
    idx = np.array([8, 0, 5, 5, 2])  # any order, repeats
    assert np.array_equal(x[idx], full[idx]) and np.array_equal(x[3:7], full[3:7]) and np.array_equal(x[-1], full[-1])
    assert np.array_equal(x.take(idx, [0, 2]), full[idx][:, [0, 2]])  # only those layers read


def test_a_value_beyond_float16_widens_the_file_to_float32(tmp_path):
    small = np.ones((3, 2, 2), np.float32)
    big = np.full((2, 2, 2), 3 * F16_MAX, np.float32)  # a pre-LN residual stream can exceed 65504
    meta = _write(tmp_path / "r.npy", small, big)
    x = check_rows(tmp_path / "r.npy", meta)
    assert meta["dtype"] == "<f4" and x.dtype == np.float32
    assert np.array_equal(x, np.concatenate([small, big]))  # nothing clipped to inf, the earlier rows exact
    with pytest.raises(FloatingPointError):
        RowWriter(tmp_path / "n.npy", 2).append(np.full((1, 2, 2), np.nan, np.float32))


def test_check_rows_names_what_is_wrong(tmp_path):
    meta = _write(tmp_path / "r.npy", np.ones((4, 2, 3), np.float32))
    p = tmp_path / "r.npy"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC-32"):
        check_rows(p, meta)
    p.write_bytes(bytes(data[:-6]))
    with pytest.raises(ValueError, match="bytes, expected"):
        check_rows(p, meta)


class Loud(MFCC):
    """MFCC scaled past float16's range: what a model whose activations exceed 65504 stores."""

    name = "loud-mfcc"

    def __call__(self, wav, lengths):
        layers, flen = super().__call__(wav, lengths)
        return [h * 1e6 for h in layers], flen


def test_a_model_whose_activations_exceed_float16_is_cached_in_float32(tmp_path):
    data = make_prepared(get_task("genre"), tmp_path / "genre", n={"train": 6, "valid": 2, "test": 2}, seconds=1.0)
    fcfg = resolve_config(get_task("genre"), overrides=["features.shard_items=3"]).features
    plain = extract_split(MFCC(), get_task("genre"), data, "train", fcfg, tmp_path / "c", progress=False,
                          log=lambda m: None)
    loud = extract_split(Loud(), get_task("genre"), data, "train", fcfg, tmp_path / "c", progress=False,
                         log=lambda m: None)
    x = np.asarray(loud.x)
    assert loud.x.dtype == np.float32 and np.isfinite(x).all() and np.abs(x).max() > F16_MAX
    # the same features, scaled: float32 kept what float16 would have turned into inf
    np.testing.assert_allclose(x / 1e6, np.asarray(plain.x).astype(np.float32), rtol=2e-3, atol=1e-3)


def test_extract_dry_run_says_what_the_cache_will_hold(tiny_home, tmp_path, capsys, monkeypatch):
    """The estimate (from headers, no model run) is within 1 % of the rows a real extraction writes."""
    import json

    from benchmark.__main__ import main

    monkeypatch.setenv("MERT_BENCH_HOME", str(tiny_home))
    args = ["--task", "beat,key,genre", "--model", "mfcc", "--size", "tiny", "--cache-dir", str(tmp_path / "c"),
            "--no-progress", "--quiet"]
    assert main(["extract", "--dry-run", *args]) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()[2:-1]]
    estimate = {(t, s): int(rows) for t, s, _, _, rows, _ in table}
    assert not (tmp_path / "c").exists()  # nothing extracted
    assert main(["extract", *args]) == 0
    for line in capsys.readouterr().out.splitlines():
        r = json.loads(line)
        for split, rows in r["rows"].items():
            assert abs(estimate[(r["task"], split)] - rows) <= 0.01 * rows, (r["task"], split)
