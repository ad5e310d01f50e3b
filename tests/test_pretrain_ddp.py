"""torchrun DDP on the CPU (gloo): 2 processes equal 1 process holding the same global batch.

The data sampler builds global batches and gives rank r clips r, r + world, ...; masks are seeded per clip;
the loss is normalised by the masked-frame count all-reduced over ranks (and scaled by the world size
against DDP's gradient averaging). So the losses logged by a 2-process run must equal those of a single
process with twice the per-rank batch, and the final weights must agree. The noise mixture draws from the
clips of each rank's own batch (as MERT's per-GPU batches do), so it is off here.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_audio import make_audio_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def losses(run: Path) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader(open(run / "log.csv"))]


def test_two_gloo_ranks_equal_one_process(tmp_path):
    from mert.pretrain import Trainer, latest_checkpoint
    from mert.pretrain_config import load_config
    from mert.teachers.command import make_labels

    audio = make_audio_folder(tmp_path / "audio", 8, (1.5, 2.5), seed=2)
    labels = tmp_path / "labels"
    make_labels(argparse.Namespace(teacher="kmeans-mfcc", audio=audio, out=labels, shard_size=8, weights=None,
                                   device="cpu", clusters=16, fit_files=100, fit_frames=20000, seed=0))
    common = [f"data.labels={labels}", "noise.prob=0.0", "optim.max_updates=4", "train.save_every=4"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    ddp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mert", "pretrain", "--config", "debug", *common, f"train.out_dir={ddp}",
           "data.max_batch_seconds=4.0"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = json.loads((ddp / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replica_max_abs_diff"] == 0.0, summary

    single = tmp_path / "single"
    cfg = load_config("debug", [*common, f"train.out_dir={single}", "data.max_batch_seconds=8.0"])
    Trainer(cfg).run()
    a, b = losses(ddp), losses(single)
    assert len(a) == len(b) == 4
    for x, y in zip(a, b):
        assert x == pytest.approx(y, rel=1e-5, abs=1e-6), (a, b)
    clips = [int(r["clips"]) for r in csv.DictReader(open(ddp / "log.csv"))]
    assert clips == [int(r["clips"]) for r in csv.DictReader(open(single / "log.csv"))]
    wa = torch.load(latest_checkpoint(ddp / "checkpoints"), weights_only=False)["model"]
    wb = torch.load(latest_checkpoint(single / "checkpoints"), weights_only=False)["model"]
    diff = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    print(f"DDP vs single: losses {a} vs {b}; max weight difference {diff:.2e}")
    assert diff < 1e-5


@pytest.mark.slow
def test_fsdp_two_gloo_ranks_equal_one_process_and_resume(tmp_path):
    """FSDP2 (fully_shard per transformer layer + root) on 2 CPU ranks: same losses as one process; a run
    stopped after update 2 and started again continues with the same losses (full state dict checkpoints)."""
    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config
    from mert.teachers.command import make_labels

    audio = make_audio_folder(tmp_path / "audio", 8, (1.5, 2.5), seed=2)
    labels = tmp_path / "labels"
    make_labels(argparse.Namespace(teacher="kmeans-mfcc", audio=audio, out=labels, shard_size=8, weights=None,
                                   device="cpu", clusters=16, fit_files=100, fit_frames=20000, seed=0))
    common = [f"data.labels={labels}", "noise.prob=0.0", "optim.max_updates=4", "train.save_every=2"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    fsdp = tmp_path / "fsdp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mert", "pretrain", "--config", "debug", *common, f"train.out_dir={fsdp}",
           "data.max_batch_seconds=4.0", "dist.fsdp=true"]
    for stop in ("train.stop_after=2", "train.stop_after=4"):
        p = subprocess.run(cmd + [stop], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "resumed from" in p.stderr
    single = tmp_path / "single"
    Trainer(load_config("debug", [*common, f"train.out_dir={single}", "data.max_batch_seconds=8.0"])).run()
    a, b = losses(fsdp), losses(single)
    assert len(a) == len(b) == 4
    for x, y in zip(a, b):
        assert x == pytest.approx(y, rel=1e-5, abs=1e-6), (a, b)
