"""One task through the benchmark: plan -> (reuse or) extract -> probe -> record. No processes here: the
single-process driver (benchmark/runner.py) and the torchrun driver (benchmark/distributed.py) compose these
steps, and ``python -m benchmark`` picks the driver (benchmark/commands.py).

    plan_task        config (checked), prepared folder (benchmark.data), result path and identity
    existing_result  the result that makes the run unnecessary (per --overwrite), or None
    extract_task     every split's features, from the cache or the model (benchmark.features)
    probe_task       the probes (benchmark.probes / benchmark.separation) and the result record, with the chosen
                     probe and its test predictions as files to write beside it (benchmark.artefacts)
    finish_task      the record checked and written with those files (benchmark.results), logged
    run_task         the four in a row, for one process

Overwrite strategies (``--overwrite``) for an existing result file of the same (representation + revision,
task + version, data source):

- ``only-missing`` (default): keep it when its config equals this run's in every section the task reads (a
  beat result does not read ``separation.*``) and, on the embedded corpus, it names the same render (the audio's
  sha256, ``data.content_digest``); run and replace otherwise; a damaged file is replaced;
- ``never``: keep any existing result file, whatever its config;
- ``always``: run again and replace it.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import RunError

__all__ = ["FINETUNE_MODES", "MODES", "OVERWRITE", "RunError", "RunOptions", "TaskPlan", "build_record",
           "check_folders", "check_mode_representation", "check_options", "check_plan_config", "existing_result",
           "extract_task", "finetune_task", "finish_task", "load_rep", "plan_task", "probe_task", "resolve_tasks",
           "resolved_config", "run_task", "save_result"]


OVERWRITE = ("never", "only-missing", "always")
# --mode: freeze (the probes on cached features), fewshot (benchmark.fewshot), lora and full (benchmark.finetune)
MODES = ("freeze", "fewshot", "lora", "full")
FINETUNE_MODES = ("lora", "full")


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
    mode: str = "freeze"               # --mode: one of MODES
    shots: int | None = None           # --shots: fewshot.shots (default: the config's, 5)
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


def load_rep(opts: RunOptions):
    from benchmark.registry import load_representation

    rep = load_representation(opts.model)
    device = opts.device
    if device and hasattr(rep, "to"):
        rep.to(device)
    return rep


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
    if opts.mode not in MODES:
        raise RunError(f"--mode {opts.mode!r}: use one of {', '.join(MODES)}")
    if opts.shots is not None and (opts.mode != "fewshot" or int(opts.shots) < 1):
        raise ConfigError(f"--shots {opts.shots}: " + ("must be >= 1 (train items per class)" if opts.mode ==
                          "fewshot" else "only with --mode fewshot"))
    if opts.mode == "fewshot":
        from benchmark.fewshot import check_tasks

        check_tasks(resolve_tasks(opts.tasks))
    if opts.mode in FINETUNE_MODES:
        from benchmark.finetune import check_tasks as check_finetune_tasks

        if opts.cached_only:
            raise RunError(f"--mode {opts.mode} trains the encoder on the audio; `probe` reads cached features only: "
                           f"use `python -m benchmark run --mode {opts.mode}`")
        check_finetune_tasks(resolve_tasks(opts.tasks), opts.mode)


def check_mode_representation(opts: RunOptions, rep) -> None:
    """What of a mode can only be checked against the model, before any work: under --mode lora|full, that it can
    be trained (and that the LoRA targets name modules of it)."""
    if opts.mode in FINETUNE_MODES:
        from benchmark.finetune import check_representation

        specs = resolve_tasks(opts.tasks)
        check_representation(rep, opts.mode, resolved_config(specs[0], rep, opts) if specs else None)


def check_folders(opts: RunOptions) -> None:
    """The folders a run writes (results, feature cache) accept files, checked before any work: a read-only or
    full folder is an error naming it now, not after an hour of extraction and probing."""
    from benchmark.paths import cache_root
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
    if opts.seeds is not None:  # the seeds of what the mode trains
        ov.append(f"{'finetune' if opts.mode in FINETUNE_MODES else 'probe'}.seeds={int(opts.seeds)}")
    if opts.layers is not None:
        ov.append(f"probe.layers={opts.layers}")
    if opts.device is not None:
        ov.append(f"features.device={opts.device}")
    if opts.shots is not None:
        ov.append(f"fewshot.shots={int(opts.shots)}")
    kind = data_kind or opts.data
    cfg = resolve_config(spec, getattr(rep, "config_overrides", None) or None, opts.grid, opts.config_file, ov,
                         data=kind, size=opts.size if kind == "embedded" and opts.data == "embedded" else None)
    from benchmark.precision import resolve_precision

    # resolved once, here: "auto" -> what this run uses on its device ("fp32" on the CPU): the result records it, and fp32 leaves the
    # config hash as it was before features.precision existed (its field declares fp32 hash-neutral)
    cfg.features.precision = resolve_precision(cfg.features.precision, cfg.features.device, rep)
    # the same for fine-tuning (recorded only under --mode lora|full, where it is the precision that trained)
    cfg.finetune.precision = resolve_precision(cfg.finetune.precision, cfg.features.device, rep)
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
    data_defaults: str = "embedded"   # whose data defaults the config got (benchmark.data.data_defaults_kind)
    data_kind: str = "embedded"       # --data: embedded, real or prepared
    mode: str = "freeze"              # --mode: its source: <source>-fewshot<K>, <source>-lora, <source>-full


def plan_task(spec, rep, opts: RunOptions) -> TaskPlan:
    """Resolve the config and the prepared folder (building / preparing it if needed) of one task."""
    from benchmark.config import config_hash, to_dict
    from benchmark.data import data_defaults_kind, data_folder, data_source
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
    if opts.mode == "fewshot":  # its own folder and leaderboard table; the shots in the identity
        from benchmark.fewshot import source_suffix

        source += source_suffix(cfg.fewshot.shots)
    elif opts.mode in FINETUNE_MODES:  # the same: the mode in the identity
        from benchmark.finetune import source_suffix as finetune_suffix

        source += finetune_suffix(opts.mode)
    path = result_path(opts.results_dir, source, rep, spec)
    # a mode's own section is recorded and hashed only under that mode (the probes read neither)
    keep = {"fewshot": ("fewshot",), "lora": ("finetune",), "full": ("finetune",)}.get(opts.mode, ())
    cfg_d = to_dict(cfg, keep=keep)
    if opts.mode != "fewshot":
        cfg_d.pop("fewshot", None)
    identity = {"representation": rep.name, "identity": rep.identity(), "task": spec.key, "source": source,
                "source_version": meta.get("source_version"), "limit": opts.limit,
                **({"items": digest} if digest else {})}
    chash = config_hash({"config": cfg_d, **identity})
    return TaskPlan(spec, cfg, cfg_d, folder, meta, source, path, identity, chash, kind, opts.data, opts.mode)


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
    if opts.overwrite == "never":
        return old
    was, now = (old.get("data") or {}).get("content_digest"), plan.meta.get("content_digest")
    if was and now and was != now:  # the embedded audio was rendered anew since (the result names the render)
        warn(f"{plan.path}: computed on another render of {plan.folder.name} (audio sha256 {was[:12]}, now "
             f"{now[:12]}); running the task again to replace it")
        return None
    if old.get("config_hash") == plan.chash or _same_task_config(old, plan):
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


def announce(plan: TaskPlan, rep, log) -> None:
    """The task's first log line and the run logger's start (wandb)."""
    log(f"[{plan.spec.name}] {rep.name} on {plan.source} ({plan.folder}); {plan.data_defaults} data defaults")
    log.start(f"{rep.name}/{plan.spec.name}/{plan.source}", {"config": plan.cfg_d, **plan.identity})


def extract_task(plan: TaskPlan, rep, opts: RunOptions, log) -> tuple[dict, dict[str, float]]:
    """Every split's features (the cache where it has them, else the model): ({split: SplitFeatures},
    {"extract_s", "model_calls"})."""
    from benchmark.features import extract_split

    if hasattr(rep, "to"):
        rep.to(plan.cfg.features.device)
    t0 = time.time()
    feats = {split: extract_split(rep, plan.spec, plan.folder, split, plan.cfg.features, opts.cache_dir, opts.limit,
                                  opts.progress, log, cached_only=opts.cached_only)
             for split in plan.spec.splits}
    return feats, {"extract_s": time.time() - t0, "model_calls": int(sum(f.model_calls for f in feats.values()))}


def extraction_summary(plan: TaskPlan, feats: dict, timing: dict) -> dict:
    """What ``python -m benchmark extract`` reports of a task: cache folders, rows, time and skipped files."""
    return {"task": plan.spec.name, "features": {s: f.cache_dir for s, f in feats.items()},
            "rows": {s: int(f.x.shape[0]) for s, f in feats.items()}, "extract_s": round(timing["extract_s"], 3),
            "skipped": [dict(d, split=s) for s in feats for d in feats[s].skipped]}


def probe_task(plan: TaskPlan, rep, log, feats: dict, timing: dict, started: float) -> dict:
    """The task's probes on its features, and the result record (not written yet). ``timing``: the
    extraction's {"extract_s", "model_calls"} (and "world_size" under torchrun); ``started``: when the task began
    (time.time())."""
    spec, cfg, meta = plan.spec, plan.cfg, plan.meta
    labels = list(meta.get("labels") or spec.labels)
    tp = time.time()
    if plan.mode == "fewshot":
        from benchmark.fewshot import run_fewshot

        probe = run_fewshot(spec, labels, feats, cfg, rep, log)
    elif spec.type == "separation":
        from benchmark.separation import run_separation

        probe = run_separation(spec, labels, feats, plan.folder, cfg, rep, log)
    else:
        probe = run_probes(spec, labels, feats, cfg, rep, log)
    trained = probe.pop("_trained", None)
    files = None
    if trained is not None:  # the chosen probe and its test predictions, files beside the result
        from benchmark.artefacts import sweep_artefacts

        files = sweep_artefacts(trained, spec, rep, cfg, {
            "source": plan.source, "source_version": meta.get("source_version"), "config_hash": plan.chash,
            "result": plan.path.name})
    probe_s = time.time() - tp
    timings = {"extract_s": round(float(timing["extract_s"]), 3), "probe_s": round(probe_s, 3),
               "total_s": round(time.time() - started, 3), "model_calls": int(timing["model_calls"]),
               **({"world_size": int(timing["world_size"])} if "world_size" in timing else {})}
    return build_record(plan, rep, probe, {s: len(feats[s].items) for s in feats},
                        {s: int(feats[s].x.shape[0]) for s in feats},
                        [dict(d, split=s, stage="extract") for s in feats for d in feats[s].skipped], timings, files)


def build_record(plan: TaskPlan, rep, probe: dict, counts: dict, rows: dict, skipped: list[dict], timings: dict,
                 files=None) -> dict:
    """The result record of a task (not written yet): ``probe``, the mode's result fields (scores, selection,
    layers, seeds, ...); ``counts`` / ``rows`` per split; ``skipped``, the files lost on the way (those lost while
    preparing the data are added before them); ``files``, the stored probe and predictions to write beside it."""
    from benchmark.results import ResultRecord, representation_section, task_section

    meta = plan.meta
    data = {"source": plan.source, "source_version": meta.get("source_version"), "folder": str(plan.folder),
            "limit": plan.identity["limit"], "counts": counts, "rows": rows,
            **({"items_digest": plan.identity["items"]} if "items" in plan.identity else {}),
            **({"content_digest": meta["content_digest"]} if meta.get("content_digest") else {}),
            **({"defaults": plan.data_defaults} if plan.data_kind == "prepared" else {})}
    # files lost while preparing the real data (missing, unreadable, unlabelled), then while extracting / loading
    skipped = [{"id": d.get("name"), "split": d.get("split"), "reason": d.get("reason"), "stage": "prepare"}
               for d in meta.get("skipped") or []] + list(skipped)
    record = ResultRecord(representation=representation_section(rep), task=task_section(plan.spec), data=data,
                          config=plan.cfg_d, config_hash=plan.chash, environment=environment(), skipped=skipped,
                          timings=timings, artefacts=files.section(plan.path) if files else None, **probe).to_dict()
    if files is not None:
        record["_artefacts"] = files  # written by save_result, before the record (never into its JSON)
    return record


def finetune_task(plan: TaskPlan, rep, opts: RunOptions, log, started: float) -> dict:
    """--mode lora|full: the encoder trained with the task head on the audio (benchmark.finetune), and the result
    record (not written yet). No feature cache is read or written."""
    from benchmark.finetune import run_finetune

    probe, extras = run_finetune(plan, rep, opts, log, probe_inputs)
    timings = {"load_s": round(float(extras["load_s"]), 3), "train_s": round(float(extras["train_s"]), 3),
               "total_s": round(time.time() - started, 3)}
    return build_record(plan, rep, probe, extras["counts"], extras["rows"], extras["skipped"], timings)


def finish_task(plan: TaskPlan, record: dict, opts: RunOptions, log, write: bool = True) -> dict:
    """Check the record (benchmark.pipeline.check_record), write it (unless ``write`` is False: a torchrun rank
    other than 0 hands it to rank 0 instead) and log it."""
    check_record(record, plan.path)
    if write:
        save_result(plan.path, record, opts.results_dir)
    log.finish(record)
    lr = record["selection"]["lr"]  # None: no training (--mode fewshot); lora / full: the encoder's lr
    log(f"[{plan.spec.name}] main {record['scores']['main']:.4f} (layer {record['selection']['layer']}, "
        f"lr {'-' if lr is None else format(lr, 'g')}) -> {plan.path}")
    return record


def plan_or_existing(spec, rep, opts: RunOptions, log) -> tuple[TaskPlan, dict | None]:
    """The task's plan, and the result that makes running it unnecessary (said in the log) or None."""
    plan = plan_task(spec, rep, opts)
    old = existing_result(plan, opts)
    if old is not None:
        log(f"[{spec.name}] result exists ({plan.path}); skipped (--overwrite {opts.overwrite})")
    return plan, old


def run_task(spec, rep, opts: RunOptions, log) -> dict:
    """One task in this process: its result record (the existing one when --overwrite keeps it; for
    ``extract``, the extraction summary)."""
    started = time.time()
    plan, old = plan_or_existing(spec, rep, opts, log)
    if old is not None:
        return old
    announce(plan, rep, log)
    if plan.mode in FINETUNE_MODES:
        record = finish_task(plan, finetune_task(plan, rep, opts, log, started), opts, log)
        from benchmark.finetune import remove_work_folder

        remove_work_folder(opts.cache_dir, plan)  # its checkpoints are done with
        return record
    feats, timing = extract_task(plan, rep, opts, log)
    if opts.extract_only:
        return extraction_summary(plan, feats, timing)
    return finish_task(plan, probe_task(plan, rep, log, feats, timing, started), opts, log)


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
    """Write a result, and first the files it references (its ``_artefacts``: the trained probe and the test
    predictions, benchmark.artefacts), each atomically; ``_artefacts`` is removed from ``record``. When the disk is
    full or the folder turned read-only, the computed record (and its files) is not lost: it is saved where it can
    be (benchmark.results.save_unsaved) and the error says where; the next run with the same config puts it in
    place instead of computing it again."""
    from benchmark.results import save_unsaved, write_result

    files = record.pop("_artefacts", None)
    written: list[Path] = []
    try:
        if files is not None:
            files.write(path, written)
        write_result(path, record)
        return path
    except OSError as e:
        for w in written:  # files the record could not be written beside: they would refer to nothing
            try:
                w.unlink()
            except OSError:
                pass
        kept = save_unsaved(path, results_dir, record, files)
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
    """The probe sweep of a task and its result fields; ``"_trained"`` (popped by probe_task) holds the head, the
    sweep (with its members' states), the chosen row and the prepared test split, for the stored probe."""
    from benchmark.probes import summarize, train_sweep

    head, (train, valid, test), layers = probe_inputs(spec, labels, feats, cfg, rep)
    seeds = list(range(int(cfg.probe.seeds)))
    res = train_sweep(head, train, valid, test, cfg.probe, layers, seeds, cfg.features.device, log,
                      epoch_callback=lambda seed, ep, sc, mem: log.epoch(spec.name, seed, ep, sc, mem),
                      precision=cfg.features.precision, keep_states=True)  # precision resolved by resolved_config
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
        "_trained": {"head": head, "res": res, "chosen": ch, "test": test},
    }


def rep_slug(rep) -> str:
    from benchmark.paths import slug

    return f"{slug(rep.name)}@{rep.identity()[:8]}"


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
