"""What one training step of ``--mode lora`` and ``--mode full`` costs against the frozen probes' step, in one process:
print the ratios and write results/perf/finetune_step.{json,md}.

    python scripts/perf_finetune_step.py                                   # mert-mini on the CPU, fp32
    python scripts/perf_finetune_step.py --device cuda --precision bf16 --out results/perf/finetune_step_cuda

Steps timed (the same code the runs use, benchmark.finetune and benchmark.probes):

- ``lora`` / ``full``: one AdamW step of benchmark.finetune.FinetuneModel on a batch of ``--batch`` crops of
  ``--crop-s`` seconds (the defaults of finetune.batch_size and finetune.crop_s): the encoder's forward with
  autograd, mean pooling of every layer, the probes' MLP on their softmax-weighted sum, cross-entropy, backward,
  the gradient clip and the optimiser step (LoRA: rank finetune.lora.r on the attention projections).
- ``extract``: the encoder's forward on the same batch without autograd (what the feature cache costs once per
  clip in ``--mode freeze``, and what fine-tuning pays again every epoch).
- ``probe``: one step of one frozen probe (the weighted-sum member, probe.batch_size rows of cached pooled features
  of every layer, Adam); ``sweep``: one step of the whole batched sweep that ``--mode freeze`` trains (every layer x
  the 6 lrs + the weighted sum at each lr).

Runs alternate (lora, full, extract, probe, sweep, lora, ...) after warm-up steps and the medians are reported, so
load from other processes affects all alike; the load average before and after is recorded. The ratios are of
medians: lora / probe, full / probe, lora / sweep, full / lora, lora / extract.
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

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LABELS = [f"class{i}" for i in range(10)]  # a 10-class task (genre's size)


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _config(args):
    from benchmark.config import resolve_config
    from tasks import get_task

    spec = get_task("genre")
    cfg = resolve_config(spec, overrides=[f"finetune.batch_size={args.batch}", f"finetune.crop_s={args.crop_s}",
                                          f"features.device={args.device}", f"finetune.precision={args.precision}",
                                          f"finetune.grad_checkpointing={str(args.grad_checkpointing).lower()}"])
    return spec, cfg


def finetune_step_fn(rep, spec, cfg, mode: str, args):
    """One training step of FinetuneModel (the run's forward, loss and update) on fixed random crops."""
    from benchmark.finetune import FinetuneModel
    from benchmark.heads import make_head
    from benchmark.precision import autocast

    torch.manual_seed(0)
    head = make_head(spec, LABELS, cfg)
    model = FinetuneModel(rep, head, cfg, mode, args.device)
    opt = torch.optim.AdamW(model.parameter_groups(cfg))
    params = list(model.trainable().values())
    g = np.random.default_rng(0)
    n = int(round(args.crop_s * rep.sample_rate))
    pieces = [(0.1 * g.standard_normal(n)).astype(np.float32) for _ in range(args.batch)]
    owner = list(range(args.batch))
    y = torch.as_tensor(g.integers(0, len(LABELS), args.batch)).to(args.device)

    def step():
        model.train(True)
        with autocast(args.precision, args.device):
            out = model.outputs(model.pooled(pieces, owner, args.batch))
        loss = head.loss(out[None], y)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _sync(args.device)
        return loss.item()

    def extract():
        model.train(False)
        with torch.no_grad(), autocast(args.precision, args.device):
            model.pooled(pieces, owner, args.batch)
        _sync(args.device)

    return step, extract, model.counts()


def probe_step_fn(rep, spec, cfg, sweep: bool, args):
    """One Adam step of the frozen probes on cached pooled features (benchmark.probes' batched MLP): the
    weighted-sum member alone, or the whole sweep (every layer x lr + the weighted sum)."""
    from benchmark.heads import make_head
    from benchmark.probes import BatchedAdam, BatchedMLP, Member, make_members
    from benchmark.precision import autocast

    torch.manual_seed(0)
    layers = list(range(int(rep.num_layers)))
    members = make_members(layers, list(cfg.probe.lrs), True) if sweep else [Member(None, 1e-3)]
    head = make_head(spec, LABELS, cfg)
    mlp = BatchedMLP(members, len(layers), int(rep.dim), int(cfg.probe.hidden), len(LABELS),
                     float(cfg.probe.dropout), {l: i for i, l in enumerate(layers)}, args.device)
    opt = BatchedAdam(mlp.params, [m.lr for m in members])
    bs = int(cfg.probe.batch_size)
    x = torch.randn(bs, len(layers), int(rep.dim), device=args.device)
    y = torch.randint(0, len(LABELS), (bs,), device=args.device)

    def step():
        with autocast(args.precision, args.device):
            out = mlp.forward(x, train=True)
        head.loss(out.float(), y).sum().backward()
        opt.step()
        _sync(args.device)

    return step, len(members)


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mert-mini")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--batch", type=int, default=8, help="crops per step (finetune.batch_size, default 8)")
    p.add_argument("--crop-s", type=float, default=5.0, help="crop length (finetune.crop_s, default 5)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps of each kind (default 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--out", default=str(REPO / "results" / "perf" / "finetune_step"),
                   help="output stem: STEM.json and STEM.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from benchmark.config import check_device
    from benchmark.registry import load_representation

    check_device(args.device)
    rep = load_representation(args.model)
    spec, cfg = _config(args)
    lora, extract, lora_counts = finetune_step_fn(rep, spec, cfg, "lora", args)
    full, _, full_counts = finetune_step_fn(rep, spec, cfg, "full", args)
    probe, _ = probe_step_fn(rep, spec, cfg, False, args)
    sweep, sweep_members = probe_step_fn(rep, spec, cfg, True, args)
    kinds = {"lora": lora, "full": full, "extract": extract, "probe": probe, "sweep": sweep}
    load_before = _load()
    for _ in range(args.warmup):
        for fn in kinds.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for k, fn in kinds.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {"lora / probe": med["lora"] / med["probe"], "full / probe": med["full"] / med["probe"],
              "lora / sweep": med["lora"] / med["sweep"], "full / sweep": med["full"] / med["sweep"],
              "full / lora": med["full"] / med["lora"], "lora / extract": med["lora"] / med["extract"]}
    mem = None
    if torch.device(args.device).type == "cuda":
        mem = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3)
    out = {
        "script": "scripts/perf_finetune_step.py",
        "command": "python " + " ".join(["scripts/perf_finetune_step.py", *(argv if argv is not None else sys.argv[1:])]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "device": (torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda"
                               else "cpu"),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "load_average": {"before": load_before, "after": _load()},
        "model": rep.name, "num_layers": int(rep.num_layers), "dim": int(rep.dim), "device": args.device,
        "precision": args.precision, "batch": args.batch, "crop_s": args.crop_s,
        "grad_checkpointing": bool(args.grad_checkpointing), "repeats": args.repeats, "warmup": args.warmup,
        "probe_batch_rows": int(cfg.probe.batch_size), "sweep_members": sweep_members,
        "lora": {"r": int(cfg.finetune.lora.r), **lora_counts}, "full": full_counts,
        "median_s": {k: round(v, 5) for k, v in med.items()},
        "runs_s": {k: [round(x, 5) for x in v] for k, v in times.items()},
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "peak_cuda_gib": mem,
    }
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(out))
    for k, v in med.items():
        print(f"{k:8s} {v * 1000:10.1f} ms")
    for k, v in ratios.items():
        print(f"{k:16s} {v:8.1f}x")
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    return 0


def markdown(r: dict) -> str:
    m, rt = r["median_s"], r["ratios"]
    lines = [
        "# Fine-tuning step cost (`--mode lora` / `--mode full`) against the frozen probes",
        "",
        f"Generated by `{r['command']}` ({r['created']}); do not edit. Machine: {r['machine']['device']}, "
        f"{r['machine']['cpus']} CPUs, torch {r['machine']['torch']} with {r['machine']['threads']} thread(s); load "
        f"average (1, 5, 15 min) before {r['load_average']['before']}, after {r['load_average']['after']}.",
        "",
        f"Model `{r['model']}` ({r['num_layers']} layers x {r['dim']}), {r['precision']} on `{r['device']}`. A "
        f"fine-tuning step is one AdamW update on {r['batch']} crops of {r['crop_s']:g} s (forward with autograd, "
        "pooling, the probes' MLP on the weighted sum of layers, backward, clip, update; benchmark/finetune.py); "
        f"`extract` is the encoder's forward on the same batch without gradients (the feature cache's cost, paid "
        f"once per clip by `--mode freeze`); `probe` is one step of one frozen probe ({r['probe_batch_rows']} rows "
        f"of cached features), `sweep` one step of the whole batched sweep `--mode freeze` trains "
        f"({r['sweep_members']} probes). Medians of {r['repeats']} alternating runs after {r['warmup']} warm-up "
        "steps.",
        "",
        "| step | median ms | trainable parameters |",
        "|---|---|---|",
        f"| lora (r = {r['lora']['r']}) | {m['lora'] * 1000:.1f} | {r['lora']['trainable_parameters']:,} of "
        f"{r['lora']['total_parameters']:,} |",
        f"| full | {m['full'] * 1000:.1f} | {r['full']['trainable_parameters']:,} of "
        f"{r['full']['total_parameters']:,} |",
        f"| extract (no gradients) | {m['extract'] * 1000:.1f} | - |",
        f"| probe (one frozen probe) | {m['probe'] * 1000:.2f} | {r['lora']['head_parameters']:,} |",
        f"| sweep ({r['sweep_members']} frozen probes) | {m['sweep'] * 1000:.2f} | - |",
        "",
        "| ratio | x |",
        "|---|---|",
        *[f"| {k} | {v:g} |" for k, v in rt.items()],
        "",
        "Reading it: a probe step reads pooled features from the cache, so it is a few small matrix products; a "
        "fine-tuning step runs the encoder forward and backward on raw audio, and does so every epoch (the frozen "
        "encoder runs once per clip, ever). LoRA trains far fewer weights than full fine-tuning but its backward "
        "still goes through every layer above the first adapter, so its step costs a large part of a full step.",
        "",
        "On a lent GPU (bf16 autocast; each command writes its own pair of files):",
        "",
        "```bash",
        "python scripts/perf_finetune_step.py --device cuda --precision bf16 --out results/perf/finetune_step_cuda",
        "python scripts/perf_finetune_step.py --device cuda --precision bf16 --model mert-v1-95m "
        "--out results/perf/finetune_step_cuda_95m   # needs the hub or its cache",
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
