"""The separation decoder's cost: Open-Unmix's ``filtering.wiener`` (MARBLE's decoder, called per stem and per
600-frame window) against benchmark.separation.wiener_estimates (its closed form for one channel), on the
same 30 s four-stem track, in the same process. Prints the ratio and writes results/perf/wiener_mono.json.

    python scripts/bench_wiener.py [--seconds 30] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def _track(seconds: float, sr: int = 24000, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    stems = [0.3 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 0.3 * (k + 1) * t))
             for k, f in enumerate((110.0, 440.0, 880.0))]
    stems.append(0.05 * rng.standard_normal(len(t)))
    return np.stack(stems).astype(np.float32)


def main() -> None:
    from openunmix.filtering import wiener

    from benchmark.separation import WIENER_WINDOW_FRAMES, wiener_estimates

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="results/perf/wiener_mono.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    stems = _track(args.seconds)
    win = torch.hann_window(2048)
    X = torch.stft(torch.from_numpy(stems.sum(0)), 2048, 320, window=win, return_complex=True)
    est = torch.stack([torch.stft(torch.from_numpy(s), 2048, 320, window=win, return_complex=True).abs()
                       for s in stems]) * 1.1
    T = X.shape[1]

    def open_unmix():
        out = torch.zeros(est.shape, dtype=torch.complex128)
        for k in range(len(stems)):
            for a in range(0, T, WIENER_WINDOW_FRAMES):
                b = min(T, a + WIENER_WINDOW_FRAMES)
                mix = torch.view_as_real(X[:, a:b].to(torch.complex128)).permute(1, 0, 2)[:, :, None].clone()
                y = wiener(est[k, :, a:b].double().T[:, :, None, None], mix, 1, softmask=False, residual=True)
                out[k, :, a:b] = torch.view_as_complex(y[:, :, 0, :, 0].contiguous()).T
        return out

    def ours():
        return wiener_estimates(est, X, 1)

    times = {"open_unmix": [], "closed_form": []}
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        for name, fn in (("open_unmix", open_unmix), ("closed_form", ours)):
            t0 = time.perf_counter()
            y = fn()
            times[name].append(time.perf_counter() - t0)
            if name == "open_unmix":
                ref = y
            else:
                err = float((y - ref).abs().max() / ref.abs().max())
    best = {k: min(v) for k, v in times.items()}
    res = {"seconds_of_audio": args.seconds, "stems": len(stems), "frames": T, "iterations": 1, "threads": 1,
           "open_unmix_s": best["open_unmix"], "closed_form_s": best["closed_form"],
           "speedup": best["open_unmix"] / best["closed_form"], "max_relative_difference": err,
           "repeats": args.repeats}
    print(json.dumps(res, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
