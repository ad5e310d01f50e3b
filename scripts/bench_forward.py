"""Benchmark the MERT encoder's forward on the CPU (not a test).

Speed (default): our 95M forward against transformers.HubertModel with the same config and the same weights
(ours saved with mert.save_model, loaded with HubertModel.from_pretrained, SDPA attention), the same batch, in
one process, torch.inference_mode, interleaved repeats; prints the median times and the ratio
hf_time / our_time (goal >= 1.0) and writes results/perf/forward_95m_vs_hf.json.

    python scripts/bench_forward.py                      # 2 x 5 s, 7 repeats
    python scripts/bench_forward.py --batch 4 --seconds 10

Long audio (--long-audio): a 10-minute track through the 95M preset with mert.extract.extract_windows
(5 s windows), each configuration in a fresh subprocess so that its peak resident memory (ru_maxrss) is its
own; writes results/perf/forward_95m_vs_hf.long_audio.json. Goal: under 3 GB.

    python scripts/bench_forward.py --long-audio
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "perf"


def _env() -> dict:
    import torch

    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "machine": platform.machine(), "cpu_count": os.cpu_count()}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def bench_speed(args) -> dict:
    import torch
    from transformers import HubertModel

    from mert import build_model, save_model

    load0 = os.getloadavg()
    torch.manual_seed(0)
    ours = build_model(args.preset, seed=0).eval()
    with tempfile.TemporaryDirectory() as d:
        save_model(ours, d)
        hf = HubertModel.from_pretrained(d, attn_implementation="sdpa").eval()
    n = int(args.seconds * ours.sample_rate)
    wav = torch.randn(args.batch, n, generator=torch.Generator().manual_seed(1)) * 0.1

    def run_ours():
        return ours(wav).hidden_states

    def run_hf():
        return hf(wav, output_hidden_states=True).hidden_states

    times = {"ours": [], "hf": []}
    cpu = {"ours": [], "hf": []}
    with torch.inference_mode():
        a, b = run_ours(), run_hf()  # warm-up (and a correctness check on the same input)
        diff = max((x - y).abs().max().item() for x, y in zip(a, b))
        del a, b
        for r in range(args.repeats):
            order = [("ours", run_ours), ("hf", run_hf)] if r % 2 == 0 else [("hf", run_hf), ("ours", run_ours)]
            for name, fn in order:
                c0, t0 = time.process_time(), time.perf_counter()
                out = fn()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                del out
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    best = {k: min(v) for k, v in times.items()}
    res = {
        "what": f"{args.preset} forward (all hidden states), ours vs transformers.HubertModel (sdpa), same weights",
        "batch": args.batch, "seconds_per_item": args.seconds, "repeats": args.repeats,
        "median_s": med, "min_s": best, "median_cpu_s": med_cpu, "all_s": times, "all_cpu_s": cpu,
        "ratio_hf_over_ours": med["hf"] / med["ours"],
        "ratio_min": best["hf"] / best["ours"], "ratio_cpu_time": med_cpu["hf"] / med_cpu["ours"],
        "load_average_before_after": [load0, os.getloadavg()],
        "max_abs_diff_hidden_states": diff, "env": _env(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"ours {med['ours']:.3f} s  hf {med['hf']:.3f} s  ratio hf/ours = {res['ratio_hf_over_ours']:.3f}  "
          f"(median of {args.repeats}, batch {args.batch} x {args.seconds} s, {res['env']['threads']} threads; "
          f"max |diff| {diff:.2e})")
    print(f"ratio of minimum times {res['ratio_min']:.3f}, of median CPU times {res['ratio_cpu_time']:.3f}; "
          f"load average before/after {load0[0]:.1f}/{os.getloadavg()[0]:.1f}")
    return res


def _long_child(args) -> None:
    import resource

    import torch

    from mert import build_model
    from mert.extract import extract_windows

    torch.manual_seed(0)
    model = build_model(args.preset, seed=0).eval()
    n = int(args.minutes * 60 * model.sample_rate)
    wav = torch.randn(n, generator=torch.Generator().manual_seed(2)) * 0.1
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[args.dtype]
    res = extract_windows(model, wav, window_s=5.0, batch_size=args.window_batch, frames=args.mode == "frames",
                          dtype=dtype)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    shape = list(res.frames.shape) if res.frames is not None else None
    print(json.dumps({"mode": args.mode, "dtype": args.dtype, "minutes": args.minutes, "windows": len(res.window_starts),
                      "frames_shape": shape, "seconds": round(dt, 1), "peak_rss_mib": round(peak),
                      "rss_before_extract_mib": round(rss0), "window_batch": args.window_batch}))


def bench_long(args) -> dict:
    runs = []
    configs = [("frames", "fp32"), ("frames", "fp16"), ("means", "fp32")]
    if args.configs:
        configs = [tuple(c.split(":")) for c in args.configs.split(",")]
    for mode, dtype in configs:
        cmd = [sys.executable, __file__, "--_long-child", "--preset", args.preset, "--minutes", str(args.minutes),
               "--mode", mode, "--dtype", dtype, "--window-batch", str(args.window_batch)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        runs.append(r)
        print(f"{args.minutes:g} min, {mode:6s} {dtype}: peak RSS {r['peak_rss_mib']} MiB "
              f"(model + input before extraction {r['rss_before_extract_mib']} MiB), {r['seconds']} s, "
              f"{r['windows']} windows")
    return {"what": f"{args.minutes:g}-minute track through {args.preset} on the CPU, extract_windows(5 s windows), "
                    "peak resident memory per configuration (fresh process each)", "goal_peak_rss_mib": 3072,
            "runs": runs, "env": _env(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="mert-v1-95m")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--long-audio", action="store_true")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--window-batch", type=int, default=1)
    p.add_argument("--configs", default="", help="long audio: comma list of mode:dtype (frames:fp32,frames:fp16,"
                                                 "means:fp32; default all three)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--tag", default="", help="suffix for the output file name (e.g. 1thread)")
    p.add_argument("--_long-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="frames", help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args._long_child:
        _long_child(args)
        return 0
    res = bench_long(args) if args.long_audio else bench_speed(args)
    if not args.no_write:
        OUT.mkdir(parents=True, exist_ok=True)
        name = "forward_95m_vs_hf" + (".long_audio" if args.long_audio else "") + (f".{args.tag}" if args.tag else "")
        name += ".json"
        (OUT / name).write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
