"""Time one pretraining step of our MERT-v1-95M against torchaudio's hubert_pretrain_base, same batch, same
process, on the CPU; print the ratio and write results/perf/pretrain_step_cpu.json.

    python scripts/bench_pretrain_step.py                      # 95M vs torchaudio, batch 2 x 5 s
    python scripts/bench_pretrain_step.py --mini               # s/update of the mini config -> max_updates for 1 h

A step = forward (masked), loss, backward, AdamW update. Ours: span masks (0.8 / 5), 8 codebooks x 1024
cosine heads (final_dim 64), the CQT regression head and the feature penalty. torchaudio: its own masking
(0.8 / 10), 100-class cosine head (its default), feature penalty. Both models are the same size of encoder
(HuBERT base layout, 12 x 768, 512-channel conv front end); layerdrop 0.05 and dropout 0.1 in both. The CQT
target (computed on the training device from the clean audio, no gradient) is timed separately because
torchaudio's recipe has no such target. Runs alternate (ours, theirs, ours, ...) and medians are reported,
so load from other processes affects both alike.
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

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ours_step_fn(batch: int, samples: int):
    from mert.heads import PretrainHeads, PretrainModel, total_loss
    from mert.masking import compute_mask
    from mert.model import build_model

    torch.manual_seed(0)
    enc = build_model("mert-v1-95m", seed=0)
    model = PretrainModel(enc, PretrainHeads(enc.dim, 8, 1024, 64, 0.1, 336)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    t = enc.num_frames(samples)
    lengths = torch.full((batch,), samples, dtype=torch.long)
    labels = torch.randint(0, 1024, (batch, t, 8))
    cqt = torch.rand(batch, t, 336)

    def step(wav):
        mask = compute_mask(torch.full((batch,), t), t, list(range(batch)))
        s = model(wav, lengths, mask, labels, cqt)
        loss = total_loss(s, s.masked, s.valid)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    n_params = sum(p.numel() for p in model.parameters())
    return step, n_params


def torchaudio_step_fn(batch: int, samples: int):
    import torch.nn.functional as F
    from torchaudio.models import hubert_pretrain_base

    torch.manual_seed(0)
    model = hubert_pretrain_base().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    t = model.wav2vec2.feature_extractor(torch.zeros(1, samples), None)[0].shape[1]
    labels = torch.randint(0, 100, (batch, t))
    lengths = torch.full((batch,), samples, dtype=torch.long)

    def step(wav):
        logit_m, logit_u, pen = model(wav, labels, lengths)
        target = torch.zeros(logit_m.shape[0], dtype=torch.long)  # positive first (torchaudio's recipe)
        loss = F.cross_entropy(logit_m, target, reduction="sum") / max(1, logit_m.shape[0]) + 10 * pen
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    n_params = sum(p.numel() for p in model.parameters())
    return step, n_params


def bench_95m(args) -> dict:
    samples = int(args.seconds * 24000)
    wav = torch.randn(args.batch, samples) * 0.1
    ours, n_ours = ours_step_fn(args.batch, samples)
    theirs, n_theirs = torchaudio_step_fn(args.batch, samples)
    from mert.teachers.cqt import CQTTeacher

    cqt = CQTTeacher()
    ours(wav), theirs(wav), cqt(wav)  # warm-up
    t_ours, t_theirs, t_cqt = [], [], []
    c_ours, c_theirs = [], []  # process CPU seconds: less sensitive than wall time to other processes' load
    for r in range(args.repeats):
        order = ((ours, t_ours, c_ours), (theirs, t_theirs, c_theirs))
        for fn, acc, cacc in order if r % 2 == 0 else order[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            fn(wav)
            acc.append(time.perf_counter() - t0)
            cacc.append(time.process_time() - c0)
        t0 = time.perf_counter()
        cqt(wav)
        t_cqt.append(time.perf_counter() - t0)
    m_ours, m_theirs, m_cqt = (statistics.median(x) for x in (t_ours, t_theirs, t_cqt))
    mc_ours, mc_theirs = statistics.median(c_ours), statistics.median(c_theirs)
    res = {
        "what": "one pretraining step (forward, loss, backward, AdamW), CPU, same batch, same process",
        "batch": args.batch, "seconds_per_clip": args.seconds, "threads": torch.get_num_threads(),
        "ours_params_with_heads": n_ours, "torchaudio_params": n_theirs,
        "ours_s": m_ours, "torchaudio_hubert_pretrain_base_s": m_theirs,
        "ratio_ours_over_torchaudio": m_ours / m_theirs,
        "cqt_teacher_s_per_batch": m_cqt,
        "ratio_ours_with_cqt_over_torchaudio": (m_ours + m_cqt) / m_theirs,
        "ours_cpu_s": mc_ours, "torchaudio_cpu_s": mc_theirs, "ratio_cpu_time_ours_over_torchaudio": mc_ours / mc_theirs,
        "runs_ours_s": t_ours, "runs_torchaudio_s": t_theirs, "runs_ours_cpu_s": c_ours, "runs_torchaudio_cpu_s": c_theirs,
        "load_average_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    print(f"95M step, batch {args.batch} x {args.seconds} s, {torch.get_num_threads()} threads: ours {m_ours:.2f} s, "
          f"torchaudio hubert_pretrain_base {m_theirs:.2f} s, ratio ours/theirs {m_ours / m_theirs:.3f} "
          f"(CQT target +{m_cqt:.2f} s -> {(m_ours + m_cqt) / m_theirs:.3f}); CPU time ours {mc_ours:.2f} s vs "
          f"{mc_theirs:.2f} s, ratio {mc_ours / mc_theirs:.3f}")
    return res


def bench_mini(args) -> dict:
    """Seconds per update of the mini config on synthetic music, and max_updates for ~1 hour."""
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    from _pretrain_audio import make_audio_folder

    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config
    from mert.teachers.command import make_labels

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        audio = make_audio_folder(d / "audio", 16, (6.0, 10.0), seed=0)
        make_labels(argparse.Namespace(teacher="kmeans-logmel-chroma", audio=audio, out=d / "labels", shard_size=64,
                                       weights=None, device="cpu", clusters=64, fit_files=100, fit_frames=20000,
                                       seed=0))
        cfg = load_config("mini", [f"data.labels={d / 'labels'}", f"train.out_dir={d / 'run'}",
                                   f"train.stop_after={args.mini_steps}", "train.save_every=100000"])
        tr = Trainer(cfg)
        res = tr.run()
        h = res["history"][1:]  # the first update includes warm-up
        s_step = statistics.median(r["step_time"] for r in h)
        cpu_step = statistics.median(r["cpu_time"] for r in h)
        # on a busy machine wall time overstates; CPU seconds / threads is what an idle machine would take
        idle_est = cpu_step / torch.get_num_threads()
        n_enc = sum(p.numel() for p in tr.module.encoder.parameters())
        out = {
            "config": "mini", "encoder_params": n_enc, "encoder_fp32_mb": n_enc * 4 / 2 ** 20,
            "clips_per_update": h[0]["clips"], "audio_s_per_update": h[0]["audio_s"],
            "s_per_update_median": s_step, "audio_s_per_s": h[0]["audio_s"] / s_step,
            "mfu_median": statistics.median(r["mfu"] for r in h),
            "updates_per_hour": 3600 / s_step, "cpu_s_per_update_median": cpu_step,
            "idle_s_per_update_estimate": idle_est, "updates_per_hour_idle_estimate": 3600 / idle_est,
            "configured_max_updates": cfg.optim.max_updates,
            "threads": torch.get_num_threads(), "load_average_before": os.getloadavg()[0],
            "losses": [r["loss"] for r in res["history"]],
        }
    print(f"mini: {n_enc / 1e6:.2f}M encoder params ({out['encoder_fp32_mb']:.1f} MB fp32), {s_step:.2f} s/update "
          f"({out['audio_s_per_s']:.1f} audio s/s) -> {3600 / s_step:.0f} updates per hour; CPU {cpu_step:.2f} s/update "
          f"-> idle estimate {idle_est:.2f} s/update, {3600 / idle_est:.0f} per hour "
          f"(configured max_updates {cfg.optim.max_updates})")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mini", action="store_true", help="measure the mini config instead")
    p.add_argument("--mini-steps", type=int, default=6)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.mini:
        res = bench_mini(args)
        out = args.out or REPO / "results" / "perf" / "pretrain_step_mini.json"
    else:
        res = bench_95m(args)
        out = args.out or REPO / "results" / "perf" / "pretrain_step_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
