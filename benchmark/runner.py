"""The single-process driver of ``python -m benchmark run`` (and ``extract``, ``probe``): every requested task
through the pipeline (benchmark/pipeline.py) in this process, then the leaderboards. Under torchrun the command
uses the torchrun driver (benchmark/distributed.py) instead; both drive the same pipeline steps.

    from benchmark.runner import RunOptions, run
    records = run(RunOptions(model="mfcc", tasks=["key"], grid="fast"))
"""
from __future__ import annotations

import os

from benchmark.errors import RunError
from benchmark.pipeline import RunOptions

__all__ = ["RunError", "RunOptions", "run"]


def run(opts: RunOptions, rep=None) -> list[dict]:
    """Run every requested task; returns the result records (existing ones for skipped tasks). Everything that
    can be checked before any work is: the options, the folders written, and every task's config."""
    from benchmark.logging import RunLogger
    from benchmark.pipeline import (check_folders, check_mode_representation, check_options, check_plan_config,
                                    load_rep, resolve_tasks, resolved_config, run_task)

    if all(os.environ.get(k, "").strip() for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):  # distributed.launched
        raise RunError("benchmark.runner.run is the single-process driver, and this process was started by "
                       "torchrun: use benchmark.distributed.run, or benchmark.commands.driver() (which picks)")
    check_options(opts)
    check_folders(opts)
    specs = resolve_tasks(opts.tasks)
    rep = rep or load_rep(opts)
    check_mode_representation(opts, rep)
    for spec in specs:  # every task's config and layers checked before the first task does any work
        check_plan_config(resolved_config(spec, rep, opts), rep, spec)
    log = RunLogger(quiet=opts.quiet, use_wandb=opts.wandb)
    results = []
    try:
        for spec in specs:
            results.append(run_task(spec, rep, opts, log))
    finally:
        log.close()
    if opts.leaderboard and not opts.extract_only:
        from benchmark.results import write_leaderboards

        write_leaderboards(opts.results_dir)
    return results
