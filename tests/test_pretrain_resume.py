"""A run killed with SIGKILL and started again gives the same losses as a run never interrupted.

The checkpoint holds model, heads, optimiser, scheduler, grad scaler, data position and RNG states; dropout
and layerdrop are switched on so that restoring the RNG matters, and the noise mixture is on (seeded per
clip and update).
"""
from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_audio import make_audio_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def log_rows(run: Path) -> list[dict]:
    return list(csv.DictReader(open(run / "log.csv")))


def test_sigkill_and_resume_reproduces_the_uninterrupted_run(tmp_path):
    from mert.pretrain import Trainer
    from mert.pretrain_config import load_config
    from mert.teachers.command import make_labels

    audio = make_audio_folder(tmp_path / "audio", 6, (1.5, 3.0), seed=3)
    labels = tmp_path / "labels"
    make_labels(argparse.Namespace(teacher="kmeans-mfcc", audio=audio, out=labels, shard_size=8, weights=None,
                                   device="cpu", clusters=16, fit_files=100, fit_frames=20000, seed=0))
    common = [f"data.labels={labels}", "optim.max_updates=20", "train.save_every=3", "noise.prob=0.5",
              "model.overrides.hidden_dropout=0.1", "model.overrides.attention_dropout=0.1",
              "model.overrides.layerdrop=0.2", "data.max_batch_seconds=3.0"]
    ref = tmp_path / "ref"
    Trainer(load_config("debug", [*common, f"train.out_dir={ref}"])).run()
    expected = [float(r["loss"]) for r in log_rows(ref)]
    assert len(expected) == 20

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mert", "pretrain", "--config", "debug", *common, f"train.out_dir={run}"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    ck = run / "checkpoints"
    while time.time() < deadline and proc.poll() is None:
        if ck.is_dir() and any(p.name.startswith("checkpoint-") for p in ck.iterdir()):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run should have been killed mid-way"
    killed_at = len(log_rows(run))
    assert 3 <= killed_at < 20

    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resumed from" in p.stderr
    rows = log_rows(run)
    assert [int(r["step"]) for r in rows] == list(range(1, 21)), "rows past the checkpoint are replaced"
    got = [float(r["loss"]) for r in rows]
    print(f"killed after {killed_at} logged updates; resumed losses {got[killed_at - 1:]} vs {expected[killed_at - 1:]}")
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-7), (i, killed_at, got, expected)
