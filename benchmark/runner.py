"""The pipeline behind ``python -m benchmark run``: data -> features -> probes -> scores -> result -> leaderboard.

Data sources (``--data``):

- ``embedded`` (default): the rendered corpus of tasks.embedded, built on first use (``--size``);
- ``real``: the real dataset, prepared by tasks.real from ``--data-dir`` or ``$MERT_BENCH_DATA/<dataset>``;
- ``prepared``: an existing prepared folder (tasks.format) at ``--data-dir`` (or ``--data-dir/<task>``).

Overwrite strategies (``--overwrite``) for an existing result file of the same (representation + revision,
task + version, data source):

- ``only-missing`` (default): keep it when its config equals this run's in every section the task reads (a
  beat result does not read ``separation.*``); run and replace otherwise;
- ``never``: keep any existing result file, whatever its config;
- ``always``: run again and replace it.

Under torchrun (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) ``run`` hands over to benchmark/distributed.py: the
ranks share the extraction, then probe on rank 0 or spread the tasks; rank 0 writes results and leaderboards.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OVERWRITE = ("never", "only-missing", "always")


class RunError(RuntimeError):
    pass


@dataclass
class RunOptions:
    model: str
    tasks: list[str]
    data: str = "embedded"
    size: str = "standard"
    data_dir: str | None = None
    results_dir: str = "results"
    cache_dir: str | None = None
    limit: int | None = None
    overwrite: str = "only-missing"
    grid: str = "full"
    seeds: int | None = None
    layers: str | None = None
    device: str | None = None
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    data_options: dict[str, str] = field(default_factory=dict)  # real-data options (--data-option split=won)
    wandb: bool = False
    progress: bool = True
    quiet: bool = False
    leaderboard: bool = True
    cached_only: bool = False          # `probe`: never run the model
    extract_only: bool = False         # `extract`: stop after the features


def resolve_tasks(names: list[str]):
    from tasks import all_tasks, get_task

    if not names or "all" in names:
        return all_tasks()
    out = []
    for n in names:
        for part in n.split(","):
            if part.strip():
                out.append(get_task(part.strip()))
    return out


def data_folder(spec, opts: RunOptions) -> Path:
    """The prepared folder of a task for the chosen data source (building / preparing it if needed)."""
    from tasks.format import is_complete

    if opts.data == "embedded":
        import tasks.embedded as emb

        home = None if not opts.data_dir else opts.data_dir
        return Path(emb.prepare(spec.name, size=opts.size, home=home, progress=opts.progress))
    if opts.data == "real":
        import tasks.real as real

        try:
            # prepare() reuses the folder when the data, the options and the task version are unchanged, and
            # rebuilds it when any changed (another --data-dir, a file added or replaced, another split)
            return Path(real.prepare(spec.name, opts.data_dir, real_prepared_folder(spec, opts),
                                     options=opts.data_options or None, progress=opts.progress))
        except (KeyError, ValueError) as e:
            if isinstance(e, KeyError) or "option" in str(e):
                raise RunError(f"--data-option: {e.args[0] if e.args else e}") from None
            raise
    if opts.data == "prepared":
        if not opts.data_dir:
            raise RunError("--data prepared needs --data-dir PATH (a prepared folder, or a folder of them by task)")
        d = Path(opts.data_dir)
        for cand in (d / spec.name, d):
            if is_complete(cand):
                return cand
        raise RunError(f"--data-dir {d}: neither {d / spec.name} nor {d} is a prepared folder (meta.json missing)")
    raise RunError(f"--data {opts.data!r}: use embedded, real or prepared")


def real_options_suffix(spec, opts: RunOptions) -> str:
    """"" for a task's default real-data options, else "-k=v" for each option that differs (its own folder,
    results and leaderboard table: the MTT Won split is not the folder split)."""
    if not opts.data_options:
        return ""
    import tasks.real as real

    try:
        defaults = real._options(spec.name, None)
        chosen = real._options(spec.name, opts.data_options)
    except (KeyError, ValueError) as e:
        raise RunError(f"--data-option: {e.args[0] if e.args else e}") from None
    return "".join(f"-{k}={v}" for k, v in sorted(chosen.items()) if defaults.get(k) != v)


def real_prepared_folder(spec, opts: RunOptions) -> Path:
    from benchmark.features import home

    return home() / "prepared-real" / f"{spec.name}-v{spec.version}{real_options_suffix(spec, opts)}"


def data_source(opts: RunOptions, meta: dict, folder: Path | None = None, digest: str | None = None) -> str:
    """The data source's name: results folder, leaderboard table and part of a result's identity.

    ``embedded-<size>``; ``real`` (plus the real-data options that differ from the task's defaults);
    ``prepared-<folder name>-<items digest[:8]>`` for a prepared folder (``--data prepared``), whatever its
    meta.json says it was made from: another folder, or the same folder with other items, is another source."""
    if opts.data == "embedded":
        return f"embedded-{opts.size}"
    if opts.data == "prepared":
        from benchmark.features import _slug

        name = _slug(Path(folder).resolve().name if folder is not None else "prepared")
        return f"prepared-{name}" + (f"-{digest[:8]}" if digest else "")
    if opts.data == "real":
        d = dict(meta.get("options") or {})
        import tasks.real as real

        try:
            defaults = real._options(str(meta.get("task")), None) if meta.get("task") else {}
        except (KeyError, ValueError):
            defaults = {}
        return "real" + "".join(f"-{k}={v}" for k, v in sorted(d.items()) if defaults.get(k) != v)
    raise RunError(f"--data {opts.data!r}: use embedded, real or prepared")


def data_defaults_kind(opts: RunOptions, meta: dict) -> str:
    """Whose defaults (benchmark.config.DATA_DEFAULTS / DATA_TYPE_DEFAULTS) a run's data gets: its ``--data``,
    except a prepared folder, which gets what its meta.json declares (``"defaults": "embedded"`` or
    ``"real"``), else those of the source it was made from (a copy of an embedded task: the embedded protocol),
    else the real-data protocol."""
    if opts.data != "prepared":
        return opts.data
    from benchmark.config import DATA_KINDS

    declared = meta.get("defaults")
    if declared is not None:
        if declared not in DATA_KINDS:
            raise RunError(f"meta.json: \"defaults\": {declared!r} is not a data kind; use one of "
                           f"{', '.join(DATA_KINDS)}")
        return str(declared)
    return str(meta.get("source")) if meta.get("source") in DATA_KINDS else "real"


def rep_slug(rep) -> str:
    from benchmark.features import _slug

    return f"{_slug(rep.name)}@{rep.identity()[:8]}"


def result_path(results_dir, source: str, rep, spec) -> Path:
    from benchmark.results import result_path as path_of

    return path_of(results_dir, source, rep_slug(rep), spec)


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    pk = {}
    for p in ("torch", "torchaudio", "numpy", "scikit-learn", "mir_eval", "librosa", "nnAudio", "omegaconf",
              "fast_bss_eval", "mert-bench"):
        try:
            pk[p] = version(p)
        except PackageNotFoundError:
            pk[p] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": pk,
            "git_commit": git_commit()}


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "benchmark", "tasks",
                                "mert"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def load_rep(opts: RunOptions):
    from benchmark.registry import load_representation

    rep = load_representation(opts.model)
    device = opts.device
    if device and hasattr(rep, "to"):
        rep.to(device)
    return rep


def run(opts: RunOptions, rep=None) -> list[dict]:
    """Run every requested task; returns the result records (existing ones for skipped tasks)."""
    from benchmark.logging import RunLogger

    check_options(opts)
    check_folders(opts)
    from benchmark import distributed

    if distributed.launched():  # under torchrun: ranks share the extraction (benchmark/distributed.py)
        return distributed.run(opts, rep)
    specs = resolve_tasks(opts.tasks)
    rep = rep or load_rep(opts)
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


def check_options(opts: RunOptions) -> None:
    """The command-line options that are wrong whatever the task: an error naming the option, before any work."""
    from benchmark.config import ConfigError, check_device

    if opts.overwrite not in OVERWRITE:
        raise RunError(f"--overwrite {opts.overwrite!r}: use one of {', '.join(OVERWRITE)}")
    if opts.limit is not None and int(opts.limit) < 1:
        raise ConfigError(f"--limit {opts.limit}: must be >= 1 (items per split); leave it out to use every item")
    if opts.seeds is not None and int(opts.seeds) < 1:
        raise ConfigError(f"--seeds {opts.seeds}: must be >= 1 (probe seeds per layer and lr)")
    if opts.device is not None:
        check_device(opts.device)


def check_folders(opts: RunOptions) -> None:
    """The folders a run writes (results, feature cache) accept files, checked before any work: a read-only or
    full folder is an error naming it now, not after an hour of extraction and probing."""
    from benchmark.features import cache_root
    from benchmark.results import writable_problem

    folders = [] if opts.cached_only else [("--cache-dir (the feature cache)", cache_root(opts.cache_dir))]
    if not opts.extract_only:
        folders.insert(0, ("--results-dir", Path(opts.results_dir)))
    for what, folder in folders:
        problem = writable_problem(folder)
        if problem:
            raise RunError(f"{what} {folder}: {problem}; free space or choose another folder")


def check_plan_config(cfg, rep, spec) -> None:
    """What of a resolved config can only be checked against the model: the probed layers (and the device)."""
    from benchmark.config import ConfigError, parse_layers

    parse_layers(cfg.probe.layers, int(rep.num_layers))
    layer = str(cfg.separation.layer)
    if spec.type == "separation" and layer != "weighted":
        try:
            parse_layers(layer, int(rep.num_layers))
        except ConfigError as e:
            raise ConfigError(f"separation.layer={layer!r}: use 'weighted' or a layer index "
                              f"({str(e).split(': ', 1)[-1]})") from None
    if cfg.features.device != "cpu":
        from benchmark.config import check_device

        check_device(cfg.features.device)


def resolved_config(spec, rep, opts: RunOptions, data_kind: str | None = None):
    """The run's config for one task; ``data_kind``: whose data defaults apply (default: ``--data``'s)."""
    from benchmark.config import resolve_config

    ov = list(opts.overrides)
    if opts.seeds is not None:
        ov.append(f"probe.seeds={int(opts.seeds)}")
    if opts.layers is not None:
        ov.append(f"probe.layers={opts.layers}")
    if opts.device is not None:
        ov.append(f"features.device={opts.device}")
    cfg = resolve_config(spec, getattr(rep, "config_overrides", None) or None, opts.grid, opts.config_file, ov,
                         data=data_kind or opts.data)
    from benchmark.features import resolve_precision

    # "auto" -> what this run uses on its device ("fp32" on the CPU): the result records it, and fp32 leaves the
    # config hash as it was before features.precision existed (its field declares fp32 hash-neutral)
    cfg.features.precision = resolve_precision(cfg.features.precision, cfg.features.device, rep)
    return cfg


@dataclass
class TaskPlan:
    """What a task run is about before any work: its config, prepared folder, result path and config hash."""

    spec: Any
    cfg: Any
    cfg_d: dict
    folder: Path
    meta: dict
    source: str
    path: Path
    identity: dict
    chash: str
    data_defaults: str = "embedded"   # whose data defaults the config got (data_defaults_kind)


def plan_task(spec, rep, opts: RunOptions) -> TaskPlan:
    """Resolve the config and the prepared folder (building / preparing it if needed) of one task."""
    from benchmark.config import config_hash, to_dict
    from tasks.format import folder_digest, read_meta

    folder = data_folder(spec, opts)
    meta = read_meta(folder)
    if meta.get("task") not in (None, spec.name):
        raise RunError(f"{folder}: prepared for task {meta.get('task')!r}, not {spec.name!r}")
    kind = data_defaults_kind(opts, meta)
    cfg = resolved_config(spec, rep, opts, kind)
    check_plan_config(cfg, rep, spec)
    # the embedded corpus is a pure function of its source_version (generator version and size); any other
    # folder's items are part of the identity, so a result is never reused for other data
    digest = None if opts.data == "embedded" else folder_digest(folder, spec.splits)
    source = data_source(opts, meta, folder, digest)
    path = result_path(opts.results_dir, source, rep, spec)
    cfg_d = to_dict(cfg)
    identity = {"representation": rep.name, "identity": rep.identity(), "task": spec.key, "source": source,
                "source_version": meta.get("source_version"), "limit": opts.limit,
                **({"items": digest} if digest else {})}
    chash = config_hash({"config": cfg_d, **identity})
    return TaskPlan(spec, cfg, cfg_d, folder, meta, source, path, identity, chash, kind)


def existing_result(plan: TaskPlan, opts: RunOptions) -> dict | None:
    """The result record that makes running this task unnecessary (per --overwrite), or None. A record whose
    config differs only in sections its task type does not read (benchmark.config.task_config_hash) counts."""
    if opts.overwrite == "always" or opts.extract_only:
        return None
    from benchmark.results import ResultError, adopt_unsaved, read_result

    adopted = adopt_unsaved(plan.path, opts.results_dir, plan.chash)
    if adopted is not None:  # a record computed earlier whose write failed (disk full), now in place
        return adopted
    if not plan.path.exists():
        return None
    try:
        old = read_result(plan.path)
    except ResultError as e:
        if opts.overwrite == "never":
            raise RunError(f"{e}; it cannot be kept under --overwrite never: delete it or run with --overwrite "
                           "only-missing to replace it") from None
        warn(f"{e}; running the task again to replace it")
        return None
    if opts.overwrite == "never" or old.get("config_hash") == plan.chash or _same_task_config(old, plan):
        return old
    return None


def warn(msg: str) -> None:
    """A warning the user must see even under --quiet (a damaged file replaced, a record kept elsewhere)."""
    print(f"warning: {msg}", file=sys.stderr)


def _same_task_config(old: dict, plan: TaskPlan) -> bool:
    from benchmark.config import task_config_hash
    from benchmark.results import identity_of

    try:
        return task_config_hash({"config": old["config"], **identity_of(old)}, plan.spec.type) == \
            task_config_hash({"config": plan.cfg_d, **plan.identity}, plan.spec.type)
    except (KeyError, TypeError):
        return False


def run_task(spec, rep, opts: RunOptions, log, plan: TaskPlan | None = None, extracted: dict | None = None,
             write: bool = True) -> dict:
    """One task: features (cache or model), probes, scores, the result file (unless ``write`` is False).

    ``plan``: from plan_task when already resolved; ``extracted``: timings of an extraction done beforehand
    across torchrun ranks ({"extract_s", "model_calls", "world_size"}), reported instead of the cache load."""
    t0 = time.time()
    plan = plan or plan_task(spec, rep, opts)
    cfg, folder, meta, source, path = plan.cfg, plan.folder, plan.meta, plan.source, plan.path
    cfg_d, identity, chash = plan.cfg_d, plan.identity, plan.chash
    old = existing_result(plan, opts)
    if old is not None:
        log(f"[{spec.name}] result exists ({path}); skipped (--overwrite {opts.overwrite})")
        return old
    log(f"[{spec.name}] {rep.name} on {source} ({folder}); {plan.data_defaults} data defaults")
    log.start(f"{rep.name}/{spec.name}/{source}", {"config": cfg_d, **identity})

    from benchmark.features import extract_split

    if hasattr(rep, "to"):
        rep.to(cfg.features.device)
    feats = {}
    te = time.time()
    for split in spec.splits:
        feats[split] = extract_split(rep, spec, folder, split, cfg.features, opts.cache_dir, opts.limit,
                                     opts.progress, log, cached_only=opts.cached_only)
    extract_s = time.time() - te
    calls = int(sum(f.model_calls for f in feats.values()))
    if extracted is not None:
        extract_s, calls = float(extracted["extract_s"]), calls + int(extracted["model_calls"])
    if opts.extract_only:
        return {"task": spec.name, "features": {s: f.cache_dir for s, f in feats.items()},
                "rows": {s: int(f.x.shape[0]) for s, f in feats.items()}, "extract_s": round(extract_s, 3),
                "skipped": [dict(d, split=s) for s in feats for d in feats[s].skipped]}
    labels = list(meta.get("labels") or spec.labels)
    tp = time.time()
    if spec.type == "separation":
        from benchmark.separation import run_separation

        probe = run_separation(spec, labels, feats, folder, cfg, rep, log)
    else:
        probe = run_probes(spec, labels, feats, cfg, rep, log)
    probe_s = time.time() - tp
    from benchmark.results import ResultRecord, representation_section, task_section

    result = ResultRecord(
        representation=representation_section(rep), task=task_section(spec),
        data={"source": source, "source_version": meta.get("source_version"), "folder": str(folder),
              "limit": opts.limit, "counts": {s: len(feats[s].items) for s in feats},
              "rows": {s: int(feats[s].x.shape[0]) for s in feats},
              **({"items_digest": identity["items"]} if "items" in identity else {}),
              **({"defaults": plan.data_defaults} if opts.data == "prepared" else {})},
        config=cfg_d, config_hash=chash, environment=environment(), **probe,
        # files lost while preparing the real data (missing, unreadable, unlabelled) and while extracting
        skipped=[{"id": d.get("name"), "split": d.get("split"), "reason": d.get("reason"), "stage": "prepare"}
                 for d in meta.get("skipped") or []]
        + [dict(d, split=s, stage="extract") for s in feats for d in feats[s].skipped],
        timings={"extract_s": round(extract_s, 3), "probe_s": round(probe_s, 3), "total_s": round(time.time() - t0, 3),
                 "model_calls": calls,
                 **({"world_size": int(extracted["world_size"])} if extracted is not None else {})},
    )
    record = result.to_dict()
    check_record(record, path)
    if write:
        save_result(path, record, opts.results_dir)
    log.finish(record)
    log(f"[{spec.name}] main {record['scores']['main']:.4f} (layer {record['selection']['layer']}, "
        f"lr {record['selection']['lr']:g}) -> {path}")
    return record


def check_record(record: dict, path: Path) -> None:
    """A record that cannot be a valid measurement is never written: the chosen probe must have a finite
    validation score (no probe that never scored on validation can be chosen) and a test score."""
    import math

    valid, main = record["scores"].get("valid_main"), record["scores"].get("main")
    if valid is None or not math.isfinite(float(valid)) or main is None or math.isnan(float(main)):
        raise RunError(f"[{record['task']['name']}] no probe reached a finite validation score (chosen: valid "
                       f"{valid}, test {main}); the result is not written and {path} is left as it was. Check the "
                       "probe settings (probe.*) and the features")


def save_result(path: Path, record: dict, results_dir) -> Path:
    """Write a result; when the disk is full or the folder turned read-only, the computed record is not lost:
    it is saved where it can be (benchmark.results.save_unsaved) and the error says where; the next run with
    the same config puts it in place instead of computing it again."""
    from benchmark.results import save_unsaved, write_result

    try:
        write_result(path, record)
        return path
    except OSError as e:
        kept = save_unsaved(path, results_dir, record)
        where = (f"the record was saved to {kept}; the next run of this task puts it in place once {path.parent} "
                 "can be written (or move it there yourself)") if kept else \
            "the record could not be saved anywhere and was printed to stderr above"
        raise RunError(f"could not write the result {path}: {e.strerror or e}; {where}") from None


def probe_inputs(spec, labels, feats, cfg, rep):
    """The task head (train-standardised for regression), its prepared (train, valid, test) data and the
    probed layers: what the sweep trains on."""
    from benchmark.config import parse_layers
    from benchmark.heads import make_head

    head = make_head(spec, labels, cfg)
    if head.type == "regression":
        tr = feats["train"]
        head.set_train_stats(head.item_targets([tr.items[i] for i in sorted(set(tr.owner.tolist()))]))
    data = {}
    for s, f in feats.items():
        data[s] = head.prepare(f)
        data[s]["frame_rate"] = float(rep.frame_rate)
    layers = parse_layers(cfg.probe.layers, int(rep.num_layers))
    return head, tuple(data[s] for s in spec.splits[:3]), layers


def run_probes(spec, labels, feats, cfg, rep, log) -> dict:
    from benchmark.features import resolve_precision
    from benchmark.probes import summarize, train_sweep

    head, (train, valid, test), layers = probe_inputs(spec, labels, feats, cfg, rep)
    seeds = list(range(int(cfg.probe.seeds)))
    res = train_sweep(head, train, valid, test, cfg.probe, layers, seeds, cfg.features.device, log,
                      epoch_callback=lambda seed, ep, sc, mem: log.epoch(spec.name, seed, ep, sc, mem),
                      precision=resolve_precision(cfg.features.precision, cfg.features.device, rep))
    summ = summarize(res, spec)
    ch = summ["chosen"]
    return {
        "scores": {"main": ch["test"]["main"], "main_std": ch["test_std"]["main"],
                   "test": ch["test"], "test_std": ch["test_std"], "valid_main": ch["valid_main"]},
        "selection": {"layer": ch["layer"], "lr": ch["lr"], "by": "mean validation main score over seeds"},
        "layers": summ["layers"],
        "grid": summ["grid"],
        "seeds": seeds,
        "epochs_run": res.epochs_run,
        "layer_weights": res.layer_weights,
        "probe": {"members": len(res.members), "seconds": round(res.seconds, 3)},
    }


def print_table(results: list[dict], file=None) -> None:
    if not results:  # a torchrun rank other than 0 (rank 0 prints the table)
        return
    file = file or sys.stdout  # looked up at call time (sys.stdout may be replaced, e.g. by pytest)
    rows = [("task", "data", "model", "main", "+-", "layer", "lr", "time_s")]
    for r in results:
        rows.append((r["task"]["name"], r["data"]["source"], r["representation"]["name"],
                     f"{r['scores']['main']:.4f}", f"{r['scores'].get('main_std', 0):.4f}",
                     str(r["selection"]["layer"]), f"{r['selection']['lr']:g}",
                     f"{r['timings']['total_s']:.1f}"))
    widths = [max(len(str(x[i])) for x in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)), file=file)
