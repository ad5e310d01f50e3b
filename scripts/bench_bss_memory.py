"""Peak memory and time of the track-level BSS-eval SDR: fast_bss_eval on the whole track (the old
``benchmark.metrics.sdr_per_track``) vs the block-wise statistics of the current one.

    python scripts/bench_bss_memory.py [--seconds 240] [--sr 24000] [--stems 4] [--block N]

Each variant runs in a fresh process (``--run old|new``), which builds the same signals (seeded: random float64
references [stems, seconds * sr], estimate = reference + 0.3 * noise), reads ``ru_maxrss`` before and after the
SDR call and times it. The parent prints both, the ratio new / old of the peak RSS and of the growth over the
data (after - before), and the largest |SDR difference| in dB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _signals(stems: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((stems, n))
    est = ref + 0.3 * rng.standard_normal((stems, n))
    return ref, est


def _old_sdr_per_track(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """What ``benchmark.metrics.sdr_per_track`` computed before: fast_bss_eval on the whole track."""
    import fast_bss_eval

    return np.asarray(fast_bss_eval.bss_eval_sources(np.ascontiguousarray(ref), np.ascontiguousarray(est),
                                                     filter_length=512, compute_permutation=False,
                                                     use_cg_iter=30)[0], dtype=np.float64)


def _child(args) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmark import metrics as M

    if args.block:
        M.SDR_BLOCK = int(args.block)
    fn = _old_sdr_per_track if args.run == "old" else M.sdr_per_track
    import fast_bss_eval  # noqa: F401  (imports outside the measured call)
    import scipy.fft  # noqa: F401

    ref, est = _signals(args.stems, int(round(args.seconds * args.sr)))
    before = _maxrss_mb()
    t0 = time.perf_counter()
    sdr = fn(ref, est)
    secs = time.perf_counter() - t0
    after = _maxrss_mb()
    np.save(args.out, sdr)
    print(json.dumps({"run": args.run, "before_mb": before, "after_mb": after, "seconds": secs,
                      "block": M.SDR_BLOCK if args.run == "new" else None}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--sr", type=int, default=24000)
    ap.add_argument("--stems", type=int, default=4)
    ap.add_argument("--block", type=int, default=0, help="SDR_BLOCK for the new path (0: the module default)")
    ap.add_argument("--run", choices=("old", "new"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        _child(args)
        return
    res, sdr = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in ("old", "new"):
            out = os.path.join(tmp, f"{run}.npy")
            cmd = [sys.executable, __file__, "--run", run, "--out", out, "--seconds", str(args.seconds),
                   "--sr", str(args.sr), "--stems", str(args.stems), "--block", str(args.block)]
            p = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res[run] = json.loads(p.stdout.strip().splitlines()[-1])
            sdr[run] = np.load(out)
    for run in ("old", "new"):
        r = res[run]
        print(f"{run}: ru_maxrss {r['before_mb']:.0f} MB -> {r['after_mb']:.0f} MB "
              f"(+{r['after_mb'] - r['before_mb']:.0f} MB), {r['seconds']:.2f} s"
              + (f", block {r['block']}" if r["block"] else ""))
    o, n = res["old"], res["new"]
    print(f"ratio new/old peak RSS: {n['after_mb'] / o['after_mb']:.3f}")
    grow_o, grow_n = o["after_mb"] - o["before_mb"], n["after_mb"] - n["before_mb"]
    print(f"ratio new/old RSS growth over the data: {grow_n / max(grow_o, 1e-9):.4f}")
    print(f"ratio new/old seconds: {n['seconds'] / o['seconds']:.3f}")
    print(f"SDR old {np.round(sdr['old'], 4).tolist()} new {np.round(sdr['new'], 4).tolist()}")
    print(f"max |SDR new - old|: {np.abs(sdr['new'] - sdr['old']).max():.3e} dB")


if __name__ == "__main__":
    main()
