"""The subcommands of ``python -m benchmark``; heavy modules are imported inside each command."""
from __future__ import annotations

import json
import sys


def _options(args, **extra):
    from benchmark.pipeline import RunOptions

    return RunOptions(
        model=args.model, tasks=args.task or [], data=args.data, size=args.size, data_dir=args.data_dir,
        results_dir=getattr(args, "results_dir", "results"), cache_dir=args.cache_dir, limit=args.limit,
        overwrite=getattr(args, "overwrite", "only-missing"), grid=getattr(args, "grid", "full"),
        seeds=getattr(args, "seeds", None), layers=getattr(args, "layers", None), device=args.device,
        config_file=args.config, overrides=list(args.overrides or []), wandb=getattr(args, "wandb", False),
        progress=not args.no_progress and sys.stderr.isatty(), quiet=args.quiet,
        leaderboard=not getattr(args, "no_leaderboard", False), data_options=data_options(args),
        mode=getattr(args, "mode", "freeze"), shots=getattr(args, "shots", None), **extra)


def data_options(args) -> dict[str, str]:
    """``--data-option KEY=VALUE`` (repeatable) -> dict; a malformed one is a usage error naming it."""
    out = {}
    for o in getattr(args, "data_option", None) or []:
        k, sep, v = o.partition("=")
        if not sep or not k.strip():
            raise SystemExit(f"--data-option {o!r}: expected KEY=VALUE, e.g. split=won")
        out[k.strip()] = v.strip()
    return out


def _need_task(args) -> None:
    if not args.task:
        raise SystemExit("error: --task NAME is required (or --task all); see `python -m benchmark list-tasks`")


def driver():
    """The driver for this process: torchrun's (RANK / WORLD_SIZE / LOCAL_RANK set) or the single-process one.
    Both run the same pipeline (benchmark/pipeline.py)."""
    from benchmark import distributed

    if distributed.launched():
        return distributed.run
    from benchmark.runner import run

    return run


def cmd_run(args) -> int:
    _need_task(args)
    print_table(driver()(_options(args)))
    return 0


def cmd_probe(args) -> int:
    _need_task(args)
    print_table(driver()(_options(args, cached_only=True)))
    return 0


def cmd_extract(args) -> int:
    _need_task(args)
    if getattr(args, "dry_run", False):
        return extract_dry_run(_options(args, extract_only=True))
    for r in driver()(_options(args, extract_only=True)):
        print(json.dumps(r))
    return 0


def extract_dry_run(opts) -> int:
    """The size of what ``extract`` would write, per task and split, without running the model."""
    from benchmark.features import estimate_split
    from benchmark.pipeline import check_options, load_rep, plan_task, resolve_tasks

    check_options(opts)
    rep = load_rep(opts)
    rows = [("task", "split", "items", "audio h", "rows", "cache GB")]
    total = 0
    for spec in resolve_tasks(opts.tasks):
        plan = plan_task(spec, rep, opts)
        for split in spec.splits:
            e = estimate_split(rep, spec, plan.folder, split, plan.cfg.features, opts.limit)
            total += e["bytes"]
            rows.append((spec.name, split, str(e["items"]), f"{e['seconds'] / 3600:.2f}", str(e["rows"]),
                         f"{e['bytes'] / 1e9:.2f}"))
    rows.append(("all", "", "", "", "", f"{total / 1e9:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"{rep.name}: {int(rep.num_layers)} layers x {int(rep.dim)} dims, float16 (float32 where a value exceeds "
          f"65504)")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def print_table(results: list[dict], file=None) -> None:
    if not results:  # a torchrun rank other than 0 (rank 0 prints the table)
        return
    file = file or sys.stdout  # looked up at call time (sys.stdout may be replaced, e.g. by pytest)
    rows = [("task", "data", "model", "main", "+-", "layer", "lr", "time_s")]
    for r in results:
        rows.append((r["task"]["name"], r["data"]["source"], r["representation"]["name"],
                     f"{r['scores']['main']:.4f}", f"{r['scores'].get('main_std', 0):.4f}",
                     str(r["selection"]["layer"]), "-" if r["selection"]["lr"] is None else f"{r['selection']['lr']:g}",
                     f"{r['timings']['total_s']:.1f}"))
    widths = [max(len(str(x[i])) for x in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)), file=file)


def cmd_list_tasks(args) -> int:
    from tasks import all_tasks

    cols = ("name", "dataset", "type", "metrics", "main_score", "window", "version")
    rows = [(s.name, s.dataset, s.type, " ".join(s.metrics), s.main_score,
             s.window + (f" {s.window_s:g}s" if s.window == "window" else ""), str(s.version)) for s in all_tasks()]
    if args.format == "csv":
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        w.writerows(rows)
    elif args.format == "md":
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        for r in (cols, *rows):
            print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    return 0


def cmd_list_models(args) -> int:
    from benchmark.registry import DEFAULT_MODEL, list_models

    def num(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    # extra: the optional dependency a model needs and whether it is installed (dac:yes), "-" for the core's own
    cols = ("name", "kind", "sample_rate", "frame_rate", "layers", "dim", "extra", "description")
    rows = [(e.name, e.kind, num(e.sample_rate), num(e.frame_rate), num(e.num_layers), num(e.dim), e.extra,
             e.description + (" (default)" if e.name == DEFAULT_MODEL else "")) for e in list_models()]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    for r in (cols, *rows):
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    return 0


def cmd_leaderboard(args) -> int:
    from benchmark.errors import RunError
    from benchmark.results import write_leaderboards

    try:
        path = write_leaderboards(args.results_dir, plots=not args.no_plots)
    except OSError as e:
        raise RunError(f"cannot write the leaderboards in {args.results_dir}: {e.strerror or e}"
                               f"{f' ({e.filename})' if e.filename else ''}; make the folder writable or pass "
                               "--results-dir") from None
    print(path.with_suffix(".md").read_text())
    return 0


def cmd_prepare(args) -> int:
    from benchmark.pipeline import resolve_tasks

    _need_task(args)
    # `prepare --task key --data-dir DIR` means the real dataset in DIR (issue 5); without a folder, the
    # embedded corpus (issue 3). --data makes either explicit.
    data = args.data or ("real" if args.data_dir else "embedded")
    for spec in resolve_tasks(args.task):
        if data == "embedded":
            import tasks.embedded as emb

            path = emb.prepare(spec.name, size=args.size, home=args.data_dir)
        else:
            import tasks.real as real

            if args.download:
                real.download(spec.name, args.data_dir)
            from benchmark.data import real_prepared_folder
            from benchmark.pipeline import RunOptions

            ropts = RunOptions(model="", tasks=[spec.name], data="real", data_dir=args.data_dir,
                               data_options=data_options(args))
            path = real.prepare(spec.name, args.data_dir, real_prepared_folder(spec, ropts),
                                options=ropts.data_options or None)
        print(f"{spec.name}: {path}")
    return 0


def cmd_validate(args) -> int:
    import tasks.real as real
    from benchmark.pipeline import resolve_tasks

    _need_task(args)
    ok = True
    for spec in resolve_tasks(args.task):
        try:
            report = real.validate(spec.name, args.data_dir, options=data_options(args) or None,
                                   level="decode" if args.deep else "header")
        except (FileNotFoundError, ValueError) as e:
            print(f"{spec.name}: {e}")
            ok = False
            continue
        print(report.text())
        ok &= bool(report.ok)
    return 0 if ok else 1


def cmd_mock_run(args) -> int:
    """Every task (or the --task ones) through the whole pipeline on small synthetic folders (benchmark.synthetic)
    in a temporary folder, fast probe settings: a one-minute check that a model or a code change works with every
    task type, not a score (results and leaderboard stay in that folder)."""
    import tempfile
    from pathlib import Path

    from benchmark.pipeline import RunOptions, resolve_tasks
    from benchmark.synthetic import make_prepared

    specs = resolve_tasks(args.task or ["all"])
    with tempfile.TemporaryDirectory(prefix="mert-bench-mock-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for i, spec in enumerate(specs):
            make_prepared(spec, root / "data" / spec.name, n={"train": 12, "valid": 6, "test": 6}, seconds=2.0,
                          seed=i)
        opts = RunOptions(model=args.model, tasks=[s.name for s in specs], data="prepared",
                          data_dir=str(root / "data"), results_dir=str(root / "results"),
                          cache_dir=str(root / "cache"), grid="fast", seeds=1, overwrite="always",
                          progress=False, quiet=args.quiet, device=args.device,
                          overrides=["probe.max_epochs=3", "separation.max_epochs=2", "separation.steps_per_epoch=5",
                                     "separation.hidden=32", "separation.num_layers=1"])
        records = driver()(opts)
        print_table(records)
        if args.keep:
            print(f"kept in {root}")
    return 0


def cmd_reference(args) -> int:
    """``python -m benchmark reference``: the reference rows of a beat task (benchmark.trackers) on the chosen
    data source, written as results beside the probed rows."""
    _need_task(args)
    from benchmark.logging import RunLogger
    from benchmark.pipeline import check_folders, resolve_tasks
    from benchmark.trackers import ReferenceTracker, run_reference

    trackers = [ReferenceTracker(t) for t in str(args.tracker).split(",") if t]
    args.model = trackers[0].name
    opts = _options(args)
    check_folders(opts)
    log = RunLogger(quiet=opts.quiet)
    out = [run_reference(spec, tr, opts, log) for spec in resolve_tasks(opts.tasks) for tr in trackers]
    if opts.leaderboard:
        from benchmark.results import write_leaderboards

        write_leaderboards(opts.results_dir)
    print_table(out)
    return 0


def cmd_predict(args) -> int:
    """``python -m benchmark predict``: a stored probe applied to the user's audio (benchmark.apply.predict); one
    line per file, 1 when some input could not be used (each named on stderr)."""
    from benchmark.apply import PredictOptions, predict

    opts = PredictOptions(task=args.task, model=args.model, inputs=list(args.inputs), train_source=args.train_source,
                          results_dir=args.results_dir, out=args.out, device=args.device,
                          progress=not args.no_progress and sys.stderr.isatty(), quiet=args.quiet)
    if args.device is not None:
        from benchmark.config import check_device

        check_device(args.device)
    done, problems = predict(opts)
    rows = [("file", "prediction", "written")] + [(str(p.audio), p.summary, str(p.files[0])) for p in done]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if problems:
        print(f"{len(problems)} input(s) not predicted (see the errors above)", file=sys.stderr)
    return 1 if problems else 0


def cmd_evaluate(args) -> int:
    """``python -m benchmark evaluate``: stored probes scored on another source's test split (benchmark.apply)."""
    _need_task(args)
    from benchmark.apply import evaluate
    from benchmark.pipeline import RunOptions

    opts = RunOptions(model=args.model, tasks=args.task, data=args.data, size=args.size, data_dir=args.data_dir,
                      results_dir=args.results_dir, cache_dir=args.cache_dir, limit=args.limit,
                      overwrite=args.overwrite, device=args.device,
                      progress=not args.no_progress and sys.stderr.isatty(), quiet=args.quiet,
                      leaderboard=not args.no_leaderboard, data_options=data_options(args))
    print_table(evaluate(opts, train_source=args.train_source))
    return 0


COMMANDS = {"run": cmd_run, "probe": cmd_probe, "extract": cmd_extract, "predict": cmd_predict,
            "evaluate": cmd_evaluate, "list-tasks": cmd_list_tasks, "list-models": cmd_list_models,
            "leaderboard": cmd_leaderboard, "prepare": cmd_prepare, "validate": cmd_validate,
            "mock-run": cmd_mock_run, "reference": cmd_reference}
