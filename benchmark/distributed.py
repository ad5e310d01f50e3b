"""``torchrun ... -m benchmark extract|run``: the feature extraction shared by several processes / GPUs / machines.

Detected from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); without it nothing here runs.

Unit of work: one cache shard of one split (benchmark/features.py: items ``[s * shard_items, (s + 1) *
shard_items)``, batches planned within the shard). A rank computes a shard exactly as the single process does,
so the merged cache is the single-process cache byte for byte, under the same content key. Splitting a shard's
items over ranks would change which segments share a model batch, and a neural network's float32 output (then
float16) depends on the batch it was computed in, so that would not be byte-identical.

1. Rank 0 resolves every task first (builds the embedded corpus / prepares real data once), then the others.
2. Rank 0 lists the missing shards of every split of every task that needs running and their audio duration
   (item excerpts, else the file header), and broadcasts the list; every rank computes the same assignment:
   longest first onto the least-loaded rank, ties by unit index then by rank (``assign``).
3. Each rank extracts its shards, writing each atomically into the shared cache folder (so a killed rank
   keeps its finished shards and a rerun does only the missing ones).
4. Merge: rank 0 checks that every shard is visible to it; shards it cannot see (no shared file system
   between machines) are sent to it by the rank that wrote them (gather over the gloo control group).
5. ``extract``: rank 0 loads every split (the usual skip checks) and prints the records. ``run``: with one task
   (or no shared file system) rank 0 trains the probes while the others wait at the final barrier; with
   several tasks they are spread over the ranks (longest total audio first), every record is gathered to rank
   0, which writes the result files and the leaderboards. Other ranks return no records (and exit 0).

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


def item_seconds(data_dir, item) -> float:
    """Duration of one item for load balancing: the excerpt, else the file header (0 when unreadable)."""
    start = float(item.start or 0.0)
    if item.end is not None:
        return max(0.0, float(item.end) - start)
    import soundfile as sf

    from tasks.format import resolve

    try:
        return max(0.0, float(sf.info(str(resolve(data_dir, item.audio))).duration) - start)
    except (RuntimeError, OSError, sf.LibsndfileError):
        return 0.0


def shard_seconds(sc, s: int) -> float:
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
    from benchmark.pipeline import check_folders, check_options

    check_options(opts)
    check_folders(opts)
    ctx = init(opts)
    out = _run(ctx, opts, rep)
    # only reached without an error: a failing rank exits and torchrun stops the others; waiting for it here
    # would hang the healthy ranks instead
    finish(ctx)
    return out


def _run(ctx: Context, opts, rep) -> list[dict]:
    from benchmark.features import ExtractionError, _Runner, extract_shard, split_cache
    from benchmark.logging import RunLogger
    from benchmark.pipeline import existing_result, load_rep, plan_task, resolve_tasks

    rank, world = ctx.rank, ctx.world
    base = RunLogger(quiet=opts.quiet, use_wandb=opts.wandb and rank == 0)
    log = _RankLog(base, ctx)
    try:
        specs = resolve_tasks(opts.tasks)
        rep = rep or load_rep(opts)
        if rank == 0:
            log(f"torchrun: {world} ranks ({ctx.backend}); {len(specs)} task(s), {rep.name}")
        # 1. the prepared data, built once by rank 0 (the others find it, or build their own copy when the
        # file system is not shared)
        plans = [plan_task(spec, rep, opts) for spec in specs] if rank == 0 else []
        ctx.barrier()
        if rank != 0:
            plans = [plan_task(spec, rep, opts) for spec in specs]
        todo = ctx.broadcast([i for i, p in enumerate(plans) if existing_result(p, opts) is None])

        # 2. the missing shards, decided by rank 0, assigned by duration
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

        # 3. this rank's shards
        t0 = time.time()
        stats: dict[tuple[int, str], list[float]] = {}
        runners: dict[tuple[int, str], _Runner] = {}
        mine = [u for u, o in zip(units, owners) if o == rank]
        bar = None
        if opts.progress and mine and rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=len(mine), desc=f"rank 0/{world}", unit="shard", leave=False)
        device_task = None
        for i, split, s, _ in mine:
            sc, plan = caches[(i, split)], plans[i]
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

        # 4. merge on rank 0: every shard where rank 0 can read it
        gathered = ctx.gather(stats)
        missing = None
        if rank == 0:
            missing = [k for k, u in enumerate(units) if not caches[(u[0], u[1])].shard_path(u[2]).exists()]
        missing = ctx.broadcast(missing)
        for k in missing:
            i, split, s, _ = units[k]
            path = caches[(i, split)].shard_path(s)
            blob = path.read_bytes() if owners[k] == rank and path.exists() else None
            got = ctx.gather(blob)
            if rank == 0:
                blob = next((b for b in got if b is not None), None)
                if blob is None:
                    raise ExtractionError(f"{path}: rank {owners[k]} did not produce this shard")
                from tasks.format import atomic_write_bytes

                atomic_write_bytes(path, blob)
        if rank == 0 and missing:
            log(f"collected {len(missing)} shards from other ranks (no shared file system)")
        if rank == 0 and units:
            log(f"extraction on {world} ranks took {time.time() - t0:.1f} s")
        extracted = {}
        if rank == 0:
            for i in todo:
                per = [g.get((i, split), [0, 0.0]) for g in gathered for split in plans[i].spec.splits]
                # extract_s: seconds the ranks spent on this task's shards, summed (the phase took `wall`)
                extracted[i] = {"model_calls": int(sum(p[0] for p in per)),
                                "extract_s": round(sum(p[1] for p in per), 3), "world_size": world}

        # 5. records
        if opts.extract_only:
            if rank != 0:
                return []
            return [_task(plans[i], rep, opts, log, extracted[i]) for i in todo]
        visible = all(sc.shard_path(s).exists() for sc in caches.values() for s in range(sc.n_shards))
        shared = all(ctx.all_gather(visible))
        if len(todo) > 1 and shared:
            cost = [sum(item_seconds(caches[(i, sp)].data_dir, it) for sp in plans[i].spec.splits
                        for it in caches[(i, sp)].items) for i in todo] if rank == 0 else None
            prober = dict(zip(todo, assign(ctx.broadcast(cost), world)))
        else:
            prober = {i: 0 for i in todo}
        opts_probe = replace(opts, leaderboard=False)
        done = {}
        for i in todo:
            if prober[i] == rank:
                ex = extracted.get(i) or {"model_calls": 0, "extract_s": 0.0, "world_size": world}
                done[i] = _task(plans[i], rep, opts_probe, log, ex, write=rank == 0)
        if len(todo) > 1 and shared and world > 1:
            log("probes: " + ", ".join(f"{plans[i].spec.name} on rank {prober[i]}" for i in todo)
                if rank == 0 else f"probed {', '.join(plans[i].spec.name for i in done) or 'nothing'}")
        records = ctx.gather(done if rank != 0 else {})
        if rank != 0:
            return []
        from benchmark.pipeline import save_result
        from benchmark.results import write_leaderboards

        for other in records[1:]:
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
    finally:
        base.close()
