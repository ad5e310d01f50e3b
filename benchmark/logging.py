"""Console progress and optional Weights & Biases logging.

Without ``--wandb`` nothing imports wandb. With it, a run is logged online when the user is logged in and
offline (``./wandb/offline-run-*``, sync later with ``wandb sync``) otherwise.
"""
from __future__ import annotations

import os
import sys
import time


class RunLogger:
    def __init__(self, quiet: bool = False, use_wandb: bool = False, project: str = "mert-bench"):
        self.quiet = quiet
        self.use_wandb = use_wandb
        self.project = project
        self.run = None
        self.t0 = time.time()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.time() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def start(self, name: str, config: dict) -> None:
        if not self.use_wandb:
            return
        import wandb

        mode = os.environ.get("WANDB_MODE")
        if mode is None:
            logged_in = bool(os.environ.get("WANDB_API_KEY"))
            if not logged_in:
                try:
                    logged_in = bool(wandb.Api().api_key)
                except Exception:  # no netrc / no network: offline
                    logged_in = False
            mode = "online" if logged_in else "offline"
        self.run = wandb.init(project=self.project, name=name, config=config, mode=mode, reinit="finish_previous")
        self(f"wandb: logging {mode} ({self.run.dir})")

    def epoch(self, task: str, seed: int, epoch: int, scores, members) -> None:
        if self.run is None:
            return
        best_per_layer: dict[str, float] = {}
        for s, m in zip(scores, members):
            k = m.layer_key
            best_per_layer[k] = max(best_per_layer.get(k, float("-inf")), float(s))
        self.run.log({f"{task}/seed{seed}/valid_layer_{k}": v for k, v in best_per_layer.items()}
                     | {f"{task}/epoch": epoch})

    def finish(self, result: dict) -> None:
        if self.run is None:
            return
        import wandb

        t = result["task"]["name"]
        table = wandb.Table(columns=["layer", "lr", "valid_main", "test_main", "test_main_std"])
        for row in result["layers"]:
            table.add_data(row["layer"], row["lr"], row["valid_main"], row["test"]["main"], row["test_std"]["main"])
        self.run.log({f"{t}/layers": table, f"{t}/test_main": result["scores"]["main"]})
        self.run.summary[f"{t}/test_main"] = result["scores"]["main"]

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
