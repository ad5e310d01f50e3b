"""Extraction throughput and MFU of a MERT preset, float32 against bf16 autocast, in one process (not a test).

    python scripts/bench_extract_gpu.py                                   # the GPU if there is one, else the CPU
    python scripts/bench_extract_gpu.py --device cuda --seconds 30 --batch 8 --repeats 10
    OMP_NUM_THREADS=1 python scripts/bench_extract_gpu.py --device cpu --seconds 2 --batch 2 --repeats 2

What is measured, for each precision (``features.precision`` = fp32 / bf16, resolved as the benchmark resolves
it; interleaved repeats, the median is used):

- ``extract``: the benchmark's own extraction step (benchmark.features._Runner.run on ``batch`` clips of
  ``seconds`` each, one model call): input normalisation, the forward under the precision's autocast, every
  layer's frames cast to float32 and copied to the host, as the feature cache receives them;
- ``model``: the forward alone (the same call, the outputs left on the device).

Throughput = audio seconds per wall second. Model FLOPs are counted once by torch.utils.flop_counter
(FlopCounterMode) on a float32 forward of the same batch (MERT's CPU FFT positional-conv shortcut off, so the
count is the convolution's, whatever the device), given per audio second. MFU = FLOPs per audio second x
throughput / the device's peak: dense bf16 tensor-core peak for bf16, the plain (non-tensor-core) fp32 peak for
fp32, from a small table of known cards (H100 SXM / H200 989 and 67 TFLOP/s, H100 PCIe 756 and 51, H100 NVL
835 and 60, A100 312 and 19.5); any other device (a CPU included) has no peak here and no MFU, only the achieved
TFLOP/s. Host CPU time of the process is recorded too (on a CPU shared with other jobs, wall clock measures
the load; CPU seconds the work). Note that PyTorch lets cuDNN convolutions use TF32 in "fp32" by default
(recorded in the output), so the fp32 MFU of a GPU can include tensor-core work.

Weights are random (``build_model(preset)``): throughput does not depend on their values. Writes
``results/perf/extract_gpu.json`` (one entry per device and setting; other entries kept) and
``results/perf/extract_gpu.md`` (generated from the JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "results" / "perf"

# (substring of torch.cuda.get_device_name, dense bf16 TFLOP/s, fp32 TFLOP/s without tensor cores); first match wins
PEAK_TFLOPS = [
    ("H100 PCIe", 756.0, 51.0),
    ("H100 NVL", 835.0, 60.0),
    ("H100", 989.0, 67.0),      # SXM
    ("H200", 989.0, 67.0),      # the H100 chip with more memory
    ("A100", 312.0, 19.5),
]
GPU_COMMAND = ("python scripts/bench_extract_gpu.py --device cuda --preset mert-v1-95m --seconds 30 --batch 8 "
               "--repeats 10")


def device_name(device: str) -> str:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_flags() -> list[str]:
    """The CPU's bf16 instructions (amx_bf16, avx512_bf16) from /proc/cpuinfo: where CPU bf16 autocast is fast."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted({f for f in line.split(":", 1)[1].split() if f in ("amx_bf16", "avx512_bf16")})
    except OSError:
        pass
    return []


def peak_flops(name: str, device: str) -> dict[str, float] | None:
    if not device.startswith("cuda"):
        return None
    for key, bf16, fp32 in PEAK_TFLOPS:
        if key in name:
            return {"bf16": bf16 * 1e12, "fp32": fp32 * 1e12, "matched": key}
    return None


def count_flops(model, wav, lengths) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    fast = [m for m in model.modules() if hasattr(m, "fast_path")]
    for m in fast:
        m.fast_path = False  # count the positional convolution as a convolution (as it runs on a GPU)
    try:
        counter = FlopCounterMode(display=False)
        # no_grad, not inference_mode: under FlopCounterMode + inference_mode the weight-norm parametrization of the
        # positional conv fails ("ParametrizedConv1d has no attribute weight", torch 2.11)
        with torch.no_grad(), counter:
            model(wav, lengths=lengths)
    finally:
        for m in fast:
            m.fast_path = True
    return int(counter.get_total_flops())


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(args) -> dict:
    import numpy as np
    import torch

    from benchmark.config import resolve_config
    from benchmark.features import _Runner
    from benchmark.precision import autocast, resolve_precision
    from benchmark.representations import MertRepresentation
    from mert import build_model

    device = args.device
    torch.manual_seed(0)
    model = build_model(args.preset)
    rep = MertRepresentation(model, f"random:{args.preset}", "bench").to(device)
    sr = rep.sample_rate
    n = int(args.seconds * sr)
    rng = np.random.default_rng(0)
    segs = [(0.1 * rng.standard_normal(n)).astype(np.float32) for _ in range(args.batch)]
    audio_s = args.batch * args.seconds
    wav = torch.from_numpy(np.stack(segs)).to(device)
    lengths = torch.full((args.batch,), n, dtype=torch.long)

    flops = count_flops(rep.model, wav, lengths.to(device))
    flops_per_audio_s = flops / audio_s
    name = device_name(device)
    peaks = peak_flops(name, device)

    runners, precisions = {}, []
    for p in args.precisions.split(","):
        fcfg = resolve_config(None, overrides=[f"features.device={device}", f"features.precision={p}",
                                               f"features.batch_seconds={audio_s + 1}"]).features
        resolved = resolve_precision(fcfg.precision, device, rep)
        fcfg.precision = resolved
        runners[p] = _Runner(rep, fcfg)
        precisions.append(p)

    def extract(p):
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        out = runners[p].run(segs)
        sync(device)
        assert len(out) == args.batch
        return time.perf_counter() - t, time.process_time() - c

    def forward(p):
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        with autocast(runners[p].precision, device):
            layers, _ = rep(wav, lengths)
        sync(device)
        del layers
        return time.perf_counter() - t, time.process_time() - c

    for _ in range(args.warmup):
        for p in precisions:
            extract(p)
            forward(p)
    times: dict[str, dict[str, list[tuple[float, float]]]] = {p: {"extract": [], "model": []} for p in precisions}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.repeats):
        for p in precisions:  # interleaved, so drifting load hits both alike
            times[p]["extract"].append(extract(p))
            times[p]["model"].append(forward(p))

    res: dict = {}
    for p in precisions:
        r = {"resolved_precision": runners[p].precision}
        for what in ("extract", "model"):
            med = statistics.median(t for t, _ in times[p][what])
            cpu = statistics.median(c for _, c in times[p][what])
            tput = audio_s / med
            achieved = flops_per_audio_s * tput
            r[what] = {"median_s": round(med, 4), "times_s": [round(t, 4) for t, _ in times[p][what]],
                       "audio_s_per_s": round(tput, 3), "achieved_tflops": round(achieved / 1e12, 4),
                       # host CPU seconds of this process (all its threads): on a CPU shared with other jobs the
                       # load-independent cost; on a GPU the host's share
                       "cpu_time_s": round(cpu, 4), "audio_s_per_cpu_s": round(audio_s / max(cpu, 1e-9), 3)}
            peak = peaks.get(runners[p].precision) if peaks else None
            r[what]["mfu"] = round(achieved / peak, 4) if peak else None
        res[p] = r
    ratio = None
    if "fp32" in res and "bf16" in res:
        ratio = {w: round(res["bf16"][w]["audio_s_per_s"] / res["fp32"][w]["audio_s_per_s"], 3)
                 for w in ("extract", "model")}
        ratio.update({f"{w}_cpu_time": round(res["bf16"][w]["audio_s_per_cpu_s"] / res["fp32"][w]["audio_s_per_cpu_s"],
                                             3) for w in ("extract", "model")})
    env = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count()}
    if not device.startswith("cuda"):
        env["cpu_bf16_flags"] = cpu_bf16_flags()
    if device.startswith("cuda"):
        env["cuda"] = torch.version.cuda
        env["cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
        env["matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
        env["max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    return {
        "device": device, "device_name": name, "kind": "gpu" if device.startswith("cuda") else "cpu",
        "preset": args.preset, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "batch": args.batch, "seconds": args.seconds, "audio_s_per_call": audio_s,
        "repeats": args.repeats, "warmup": args.warmup,
        "flops_per_call": flops, "gflops_per_audio_s": round(flops_per_audio_s / 1e9, 3),
        "peak_tflops": None if peaks is None else {"bf16": peaks["bf16"] / 1e12, "fp32": peaks["fp32"] / 1e12,
                                                   "matched": peaks["matched"]},
        "results": res, "ratio_bf16_over_fp32": ratio, "environment": env,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_md(entries: list[dict], path: Path) -> None:
    lines = ["# Extraction throughput and MFU: float32 vs bf16 autocast", "",
             "Generated by `scripts/bench_extract_gpu.py` from `extract_gpu.json`. `extract` is the benchmark's "
             "extraction step (benchmark.features._Runner: forward under the precision's autocast + every layer's "
             "frames to the host as float32); `model` is the forward alone. Throughput in audio seconds per second; "
             "MFU against the card's dense peak (bf16 tensor cores for bf16, plain fp32 for fp32); no MFU where the "
             "peak is unknown (CPUs).", ""]
    if not any(e["kind"] == "gpu" for e in entries):
        lines += ["**Only CPU numbers so far. The GPU measurement is still to be made**; on a CUDA machine run:", "",
                  f"    {GPU_COMMAND}", "",
                  "(it adds a GPU entry to the JSON and regenerates this file). The CPU numbers below come from a "
                  "small CPU shared with other jobs, with a short setting: wall clock there measures the load as "
                  "much as the work (read the CPU-seconds columns); they show that the bf16 path runs and what it "
                  "does on that CPU, not what it does on a GPU.", ""]
    for e in entries:
        lines += [f"## {e['device_name']} ({e['device']}), {e['preset']} ({e['params_m']} M parameters)", "",
                  f"{e['batch']} clips x {e['seconds']} s per call ({e['audio_s_per_call']} s of audio), "
                  f"{e['repeats']} repeats (median), {e['warmup']} warm-up; {e['gflops_per_audio_s']} GFLOP per audio "
                  f"second (FlopCounterMode); torch {e['environment']['torch']}, "
                  f"{e['environment']['threads']} thread(s)"
                  + (f"; CPU bf16 instructions: {', '.join(e['environment']['cpu_bf16_flags']) or 'none'}"
                     if "cpu_bf16_flags" in e["environment"] else "")
                  + f"; {e['created']}.", "",
                  "| precision | step | median s | audio s / s | TFLOP/s | MFU | CPU s | audio s / CPU s |",
                  "|---|---|---|---|---|---|---|---|"]
        for p, r in e["results"].items():
            for w in ("extract", "model"):
                m = r[w]["mfu"]
                lines.append(f"| {p} ({r['resolved_precision']}) | {w} | {r[w]['median_s']} | {r[w]['audio_s_per_s']} "
                             f"| {r[w]['achieved_tflops']} | {'-' if m is None else f'{100 * m:.1f}%'} "
                             f"| {r[w]['cpu_time_s']} | {r[w]['audio_s_per_cpu_s']} |")
        if e.get("ratio_bf16_over_fp32"):
            rt = e["ratio_bf16_over_fp32"]
            lines += ["", f"bf16 / fp32 throughput (wall clock): extract {rt['extract']}x, model {rt['model']}x; "
                          f"per CPU second: extract {rt['extract_cpu_time']}x, model {rt['model_cpu_time']}x."]
        if e["peak_tflops"] is None:
            lines += ["", "Peak FLOP/s of this device: unknown (MFU omitted)."]
        else:
            pk = e["peak_tflops"]
            lines += ["", f"Peaks used ({pk['matched']}): bf16 {pk['bf16']} TFLOP/s, fp32 {pk['fp32']} TFLOP/s; "
                          f"cuDNN TF32 {e['environment'].get('cudnn_allow_tf32')}, matmul TF32 "
                          f"{e['environment'].get('matmul_allow_tf32')}."]
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when there is one, else cpu)")
    ap.add_argument("--preset", default="mert-v1-95m")
    ap.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30: features.max_chunk_s)")
    ap.add_argument("--batch", type=int, default=8, help="clips per call (default 8: features.batch_seconds 240)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--out", default=str(OUT / "extract_gpu"), help="output path without extension")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"

    entry = measure(args)
    print(f"device: {entry['device_name']} ({entry['device']}); {entry['preset']}, {entry['batch']} x "
          f"{entry['seconds']} s per call; {entry['gflops_per_audio_s']} GFLOP per audio second")
    for p, r in entry["results"].items():
        for w in ("extract", "model"):
            m = r[w]["mfu"]
            print(f"  {p:5s} ({r['resolved_precision']}) {w:8s} {r[w]['median_s']:8.3f} s  "
                  f"{r[w]['audio_s_per_s']:9.2f} audio s/s  {r[w]['achieved_tflops']:8.3f} TFLOP/s  "
                  f"MFU {'unknown' if m is None else f'{100 * m:.1f}%'}  ({r[w]['cpu_time_s']:.3f} CPU s)")
    if entry["ratio_bf16_over_fp32"]:
        rt = entry["ratio_bf16_over_fp32"]
        print(f"ratio bf16/fp32 throughput: extract {rt['extract']}x, model {rt['model']}x (wall clock); "
              f"per CPU second: extract {rt['extract_cpu_time']}x, model {rt['model_cpu_time']}x")
    if args.no_write:
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jpath = out.with_suffix(".json")
    data = json.loads(jpath.read_text()) if jpath.exists() else {"entries": []}
    same = (entry["device_name"], entry["device"], entry["preset"], entry["batch"], entry["seconds"])
    data["entries"] = [e for e in data["entries"]
                       if (e["device_name"], e["device"], e["preset"], e["batch"], e["seconds"]) != same] + [entry]
    data["gpu_command"] = GPU_COMMAND
    data["note"] = ("GPU measurement still to be made" if not any(e["kind"] == "gpu" for e in data["entries"])
                    else "includes a GPU measurement")
    tmp = jpath.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, jpath)
    write_md(data["entries"], out.with_suffix(".md"))
    print(f"wrote {jpath} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
