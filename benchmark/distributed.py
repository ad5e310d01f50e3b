"""``torchrun ... -m benchmark extract|run``: the feature extraction shared by several processes / GPUs / machines.

Detected from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); without it nothing here runs.

Unit of work: one cache shard of one split (benchmark/features.py: items ``[s * shard_items, (s + 1) *
shard_items)``, batches planned within the shard). A rank computes a shard exactly as the single process does,
so the merged cache is the single-process cache byte for byte, under the same content key. Splitting a shard's
items over ranks would change which segments share a model batch, and a neural network's float32 output (then
float16) depends on the batch it was computed in, so that would not be byte-identical.

Under ``_run``, one function a phase, each taking the previous phases' results:

1. ``_plan_tasks``: rank 0 resolves every task first (builds the embedded corpus / prepares real data once),
   then the others.
2. ``_assign_missing_shards``: rank 0 lists the missing shards of every split of every task that needs running
   and their audio duration (item excerpts, else the file header), and broadcasts the list; every rank computes
   the same assignment: longest first onto the least-loaded rank, ties by unit index then by rank (``assign``).
3. ``_extract_my_shards``: each rank extracts its shards, writing each atomically into the shared cache folder
   (so a killed rank keeps its finished shards and a rerun does only the missing ones).
4. ``_collect_shards_on_rank_0``: rank 0 checks that every shard is visible to it; shards it cannot see (no
   shared file system between machines) are sent to it by the rank that wrote them (gather over the gloo
   control group).
5. ``_records``: ``extract``: rank 0 loads every split (the usual skip checks) and prints the records. ``run``
   (``_probe_and_write``): with one task (or no shared file system) rank 0 trains the probes while the others
   wait at the final barrier; with several tasks they are spread over the ranks (longest total audio first),
   every record is gathered to rank 0, which writes the result files and the leaderboards. Other ranks return
   no records (and exit 0).

Every rank makes the same collective calls (broadcast / gather / all_gather / barrier) in the same order; each
phase function lists its own.

Backend: NCCL when the device is CUDA (each rank on ``cuda:LOCAL_RANK``), gloo otherwise; barriers and object
messages always go through a gloo group. Timeout ``MERT_BENCH_DIST_TIMEOUT`` seconds (default 48 h, since
ranks wait at a barrier while rank 0 trains probes). Every rank reaches the final barrier before
``destroy_process_group``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
DEFAULT_TIMEOUT_S = 48 * 3600


def launched() -> bool:
    """True when started by torchrun (or anything that sets RANK, WORLD_SIZE and LOCAL_RANK)."""
    return all(os.environ.get(k, "").strip() for k in ENV)


def assign(costs: list[float], world: int) -> list[int]:
    """The rank of each unit: longest first onto the least-loaded rank; ties by unit index, then by rank."""
    if world < 1:
        raise ValueError(f"world size {world} < 1")
    load = [0.0] * world
    owner = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-float(costs[i]), i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += float(costs[i])
    return owner


@dataclass
class Context:
    rank: int
    world: int
    local_rank: int
    backend: str
    ctrl: Any = None              # the gloo group for barriers and objects (None: the default group is gloo)
    owns_group: bool = True       # False when the process group existed before (then it is left alone)

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier(group=self.ctrl)

    def broadcast(self, obj):
        """rank 0's ``obj`` on every rank."""
        import torch.distributed as dist

        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, group=self.ctrl)
        return box[0]

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` as a list on rank 0 (None elsewhere)."""
        import torch.distributed as dist

        out = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0, group=self.ctrl)
        return out

    def all_gather(self, obj) -> list:
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj, group=self.ctrl)
        return out


def _wants_cuda(opts) -> bool:
    dev = opts.device
    if dev is None:
        from benchmark.config import resolve_config

        dev = resolve_config(None, None, opts.grid, opts.config_file, opts.overrides).features.device
    return str(dev).startswith("cuda")


def init(opts) -> Context:
    """Join the process group torchrun set up (env:// rendezvous)."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    rank, world, local = (int(os.environ[k]) for k in ENV)
    timeout = timedelta(seconds=float(os.environ.get("MERT_BENCH_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    backend = "gloo"
    kw: dict[str, Any] = {}
    if _wants_cuda(opts) and torch.cuda.is_available():
        backend = "nccl"
        dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)  # "cuda" now means this rank's GPU (model, probes, separation)
        kw["device_id"] = dev
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend, timeout=timeout, **kw)
    else:
        backend = dist.get_backend()
    ctrl = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    return Context(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local, backend=backend, ctrl=ctrl,
                   owns_group=owns)


def finish(ctx: Context) -> None:
    """Every rank reaches this barrier before the group is destroyed (a rank tearing down gloo while another
    still talks to it aborts with 'terminate called without an active exception')."""
    import torch.distributed as dist

    ctx.barrier()
    if ctx.owns_group:
        dist.destroy_process_group()


def shard_seconds(sc, s: int) -> float:
    from benchmark.features import item_seconds

    lo, hi = sc.shard_range(s)
    return sum(item_seconds(sc.data_dir, sc.items[i]) for i in range(lo, hi))


class _RankLog:
    """The run logger of a rank: rank 0 logs as usual, the others prefix their lines with their rank."""

    def __init__(self, log, ctx: Context):
        self.log, self.ctx = log, ctx

    def __call__(self, msg: str) -> None:
        self.log(msg if self.ctx.rank == 0 else f"rank {self.ctx.rank}/{self.ctx.world}: {msg}")

    def __getattr__(self, name):
        return getattr(self.log, name)


def _task(plan, rep, opts, log, extracted: dict, write: bool = True) -> dict:
    """The pipeline's steps after the shared extraction: the features (all in the cache now), the probes and the
    record, reporting the ranks' extraction (``extracted``: model_calls, extract_s, world_size) instead of the
    cache load; written only where ``write`` (rank 0)."""
    from benchmark.pipeline import announce, extract_task, extraction_summary, finish_task, probe_task

    started = time.time()
    announce(plan, rep, log)
    feats, loaded = extract_task(plan, rep, opts, log)
    timing = {"extract_s": float(extracted["extract_s"]),
              "model_calls": loaded["model_calls"] + int(extracted["model_calls"]),
              "world_size": int(extracted["world_size"])}
    if opts.extract_only:
        return extraction_summary(plan, feats, timing)
    return finish_task(plan, probe_task(plan, rep, log, feats, timing, started), opts, log, write=write)


def run(opts, rep=None) -> list[dict]:
    """The torchrun driver of ``python -m benchmark run``: the records on rank 0, [] on the other ranks. Checks
    what can be checked before any work, as the single-process driver (benchmark/runner.py) does."""
    from benchmark.errors import RunError
    from benchmark.pipeline import FINETUNE_MODES, check_folders, check_options

    check_options(opts)
    if opts.mode in FINETUNE_MODES:
        raise RunError(f"--mode {opts.mode} trains in one process (benchmark.finetune): run it without torchrun, "
                       "e.g. python -m benchmark run --mode " + opts.mode + " ...")
    check_folders(opts)
    ctx = init(opts)
    out = _run(ctx, opts, rep)
    # only reached without an error: a failing rank exits and torchrun stops the others; waiting for it here
    # would hang the healthy ranks instead
    finish(ctx)
    return out


def _run(ctx: Context, opts, rep) -> list[dict]:
    """The five phases of the module docstring, in order. Every rank makes the same collective calls in the same
    order (a rank calling another one, or in another order, would deadlock or mix the messages)."""
    from benchmark.logging import RunLogger
    from benchmark.pipeline import load_rep, resolve_tasks

    base = RunLogger(quiet=opts.quiet, use_wandb=opts.wandb and ctx.rank == 0)
    log = _RankLog(base, ctx)
    try:
        specs = resolve_tasks(opts.tasks)
        rep = rep or load_rep(opts)
        if ctx.rank == 0:
            log(f"torchrun: {ctx.world} ranks ({ctx.backend}); {len(specs)} task(s), {rep.name}")
        plans, todo = _plan_tasks(ctx, specs, rep, opts)
        shards = _assign_missing_shards(ctx, plans, todo, rep, opts, log)
        t0 = time.time()
        stats = _extract_my_shards(ctx, plans, shards, rep, opts, log, t0)
        extracted = _collect_shards_on_rank_0(ctx, plans, todo, shards, stats, t0, log)
        return _records(ctx, plans, todo, shards.caches, extracted, rep, opts, log)
    finally:
        base.close()


def _plan_tasks(ctx: Context, specs, rep, opts) -> tuple[list, list[int]]:
    """Phase 1: every task's plan, and the indices of the tasks without a result (rank 0's view, broadcast).
    Rank 0 plans first: it builds the prepared data once, and the others find it after the barrier (or build
    their own copy when the file system is not shared).
    Collectives: barrier, broadcast."""
    from benchmark.pipeline import existing_result, plan_task

    plans = [plan_task(spec, rep, opts) for spec in specs] if ctx.rank == 0 else []
    ctx.barrier()
    if ctx.rank != 0:
        plans = [plan_task(spec, rep, opts) for spec in specs]
    todo = ctx.broadcast([i for i, p in enumerate(plans) if existing_result(p, opts) is None])
    return plans, todo


@dataclass(frozen=True)
class _Shards:
    """The split caches of the tasks to run (by (task index, split)), the missing shards as units (task index,
    split, shard, seconds of audio) and the rank that extracts each unit; the same on every rank."""
    caches: dict[tuple[int, str], Any]
    units: list[tuple[int, str, int, float]]
    owners: list[int]

    def of(self, rank: int) -> list[tuple[int, str, int, float]]:
        """The units ``rank`` extracts."""
        return [u for u, o in zip(self.units, self.owners) if o == rank]


def _assign_missing_shards(ctx: Context, plans: list, todo: list[int], rep, opts, log) -> _Shards:
    """Phase 2: the missing shards, listed by rank 0 (none with ``cached_only``) and broadcast; every rank
    computes the same assignment by duration (``assign``).
    Collectives: broadcast."""
    from benchmark.features import split_cache

    rank, world = ctx.rank, ctx.world
    caches = {(i, split): split_cache(rep, plans[i].spec, plans[i].folder, split, plans[i].cfg.features,
                                      opts.cache_dir, opts.limit)
              for i in todo for split in plans[i].spec.splits}
    units = None
    if rank == 0:
        # (`probe` never runs the model: run_task reports what is missing)
        units = [(i, split, s, shard_seconds(sc, s)) for (i, split), sc in caches.items() for s in sc.missing()
                 if not opts.cached_only]
    units = ctx.broadcast(units)
    owners = assign([u[3] for u in units], world)
    if rank == 0 and units:
        loads = [sum(u[3] for u, o in zip(units, owners) if o == r) for r in range(world)]
        log(f"extracting {len(units)} missing shards ({sum(u[3] for u in units):.0f} s of audio) on {world} "
            f"ranks: " + ", ".join(f"rank {r} {n:.0f} s" for r, n in enumerate(loads)))
    return _Shards(caches, units, owners)


def _extract_my_shards(ctx: Context, plans: list, shards: _Shards, rep, opts, log,
                       t0: float) -> dict[tuple[int, str], list[float]]:
    """Phase 3: this rank's shards, each written atomically into its cache folder (one already there is
    skipped); returns [model calls, seconds] per (task index, split) it worked on. ``t0``: the phase's start.
    Collectives: none."""
    from benchmark.features import _Runner, extract_shard

    stats: dict[tuple[int, str], list[float]] = {}
    runners: dict[tuple[int, str], _Runner] = {}
    mine = shards.of(ctx.rank)
    bar = None
    if opts.progress and mine and ctx.rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(mine), desc=f"rank 0/{ctx.world}", unit="shard", leave=False)
    device_task = None
    for i, split, s, _ in mine:
        sc, plan = shards.caches[(i, split)], plans[i]
        st = stats.setdefault((i, split), [0, 0.0])
        if sc.shard_path(s).exists():  # written meanwhile / earlier on this machine's own file system
            continue
        if device_task != i and hasattr(rep, "to"):
            rep.to(plan.cfg.features.device)
            device_task = i
        runner = runners.setdefault((i, split), _Runner(rep, plan.cfg.features))
        ts = time.time()
        calls = runner.calls
        extract_shard(sc, s, rep, plan.spec, plan.cfg.features, runner)
        st[0] += runner.calls - calls
        st[1] += time.time() - ts
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if mine:
        log(f"{len(mine)} shards in {time.time() - t0:.1f} s")
    return stats


def _collect_shards_on_rank_0(ctx: Context, plans: list, todo: list[int], shards: _Shards,
                              stats: dict[tuple[int, str], list[float]], t0: float, log) -> dict[int, dict]:
    """Phase 4: the ranks' ``stats`` gathered to rank 0, then every shard where rank 0 can read it
    (``_fetch_unseen_shards``). Returns on rank 0 each task's extraction (model_calls, extract_s, world_size)
    by task index, {} on the other ranks.
    Collectives: gather, then those of ``_fetch_unseen_shards``."""
    gathered = ctx.gather(stats)
    missing = _fetch_unseen_shards(ctx, shards)
    if ctx.rank != 0:
        return {}
    if missing:
        log(f"collected {len(missing)} shards from other ranks (no shared file system)")
    if shards.units:
        log(f"extraction on {ctx.world} ranks took {time.time() - t0:.1f} s")
    extracted = {}
    for i in todo:
        per = [g.get((i, split), [0, 0.0]) for g in gathered for split in plans[i].spec.splits]
        # extract_s: seconds the ranks spent on this task's shards, summed (the phase took `wall`)
        extracted[i] = {"model_calls": int(sum(p[0] for p in per)),
                        "extract_s": round(sum(p[1] for p in per), 3), "world_size": ctx.world}
    return extracted


def _fetch_unseen_shards(ctx: Context, shards: _Shards) -> list[int]:
    """The units whose shard rank 0 cannot see (no shared file system; rank 0's list, broadcast), each sent to
    rank 0 by the rank that wrote it and written there atomically; returns those units' indices.
    Collectives: broadcast, then one gather per unit."""
    from benchmark.features import ExtractionError

    rank, units, owners = ctx.rank, shards.units, shards.owners
    missing = None
    if rank == 0:
        missing = [k for k, u in enumerate(units) if not shards.caches[(u[0], u[1])].shard_path(u[2]).exists()]
    missing = ctx.broadcast(missing)
    for k in missing:
        i, split, s, _ = units[k]
        sc = shards.caches[(i, split)]
        path, rows = sc.shard_path(s), sc.rows_path(s)
        # a shard is two files: its rows, then its index (written last, as extract_shard does)
        blob = (rows.read_bytes(), path.read_bytes()) if owners[k] == rank and path.exists() else None
        got = ctx.gather(blob)
        if rank == 0:
            blob = next((b for b in got if b is not None), None)
            if blob is None:
                raise ExtractionError(f"{path}: rank {owners[k]} did not produce this shard")
            from tasks.format import atomic_write_bytes

            atomic_write_bytes(rows, blob[0])
            atomic_write_bytes(path, blob[1])
    return missing


def _records(ctx: Context, plans: list, todo: list[int], caches: dict, extracted: dict[int, dict], rep, opts,
             log) -> list[dict]:
    """Phase 5: ``extract``: rank 0 loads every split and returns the extraction summaries; ``run``:
    ``_probe_and_write``. The other ranks return [].
    Collectives: none for ``extract``, else those of ``_probe_and_write``."""
    if opts.extract_only:
        if ctx.rank != 0:
            return []
        return [_task(plans[i], rep, opts, log, extracted[i]) for i in todo]
    return _probe_and_write(ctx, plans, todo, caches, extracted, rep, opts, log)


def _probe_and_write(ctx: Context, plans: list, todo: list[int], caches: dict, extracted: dict[int, dict], rep,
                     opts, log) -> list[dict]:
    """The probes of the tasks to run, each on the rank ``_spread_probes`` picks; the records gathered to rank
    0, which writes them (``_write_records``) and returns every task's record. The other ranks return [].
    Collectives: those of ``_spread_probes``, then gather."""
    rank, world = ctx.rank, ctx.world
    prober, spread = _spread_probes(ctx, plans, todo, caches)
    opts_probe = replace(opts, leaderboard=False)
    done = {}
    for i in todo:
        if prober[i] == rank:
            ex = extracted.get(i) or {"model_calls": 0, "extract_s": 0.0, "world_size": world}
            done[i] = _task(plans[i], rep, opts_probe, log, ex, write=rank == 0)
    if spread and world > 1:
        log("probes: " + ", ".join(f"{plans[i].spec.name} on rank {prober[i]}" for i in todo)
            if rank == 0 else f"probed {', '.join(plans[i].spec.name for i in done) or 'nothing'}")
    records = ctx.gather(done if rank != 0 else {})
    if rank != 0:
        return []
    return _write_records(plans, todo, done, records[1:], extracted, opts, log)


def _spread_probes(ctx: Context, plans: list, todo: list[int], caches: dict) -> tuple[dict[int, int], bool]:
    """The rank that trains each task's probes (by task index), and whether they are spread: with several tasks
    and every shard visible on every rank, longest total audio first (``assign``, rank 0's costs broadcast);
    otherwise all on rank 0.
    Collectives: all_gather, then broadcast only when spread (the same decision on every rank)."""
    visible = all(sc.shard_path(s).exists() for sc in caches.values() for s in range(sc.n_shards))
    shared = all(ctx.all_gather(visible))
    if len(todo) > 1 and shared:
        from benchmark.features import item_seconds

        cost = [sum(item_seconds(caches[(i, sp)].data_dir, it) for sp in plans[i].spec.splits
                    for it in caches[(i, sp)].items) for i in todo] if ctx.rank == 0 else None
        return dict(zip(todo, assign(ctx.broadcast(cost), ctx.world))), True
    return {i: 0 for i in todo}, False


def _write_records(plans: list, todo: list[int], done: dict[int, dict], others: list[dict],
                   extracted: dict[int, dict], opts, log) -> list[dict]:
    """Rank 0: the records the other ranks probed (``others``) written with rank 0's extraction timings, then
    every task's record in task order (those not run: the existing result), and the leaderboards."""
    from benchmark.pipeline import existing_result, save_result
    from benchmark.results import write_leaderboards

    for other in others:
        for i, rec in other.items():
            # the extraction was timed on rank 0 for every task
            rec["timings"].update({k: extracted[i][k] for k in ("model_calls", "extract_s")})
            save_result(plans[i].path, rec, opts.results_dir)
            done[i] = rec
    results = [done[i] if i in done else existing_result(plans[i], opts) for i in range(len(plans))]
    for i, p in enumerate(plans):
        if i not in todo:
            log(f"[{p.spec.name}] result exists ({p.path}); skipped (--overwrite {opts.overwrite})")
    if opts.leaderboard:
        write_leaderboards(opts.results_dir)
    return results
