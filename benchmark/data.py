"""Data sources (``--data``): where a task's prepared folder comes from, what the source is called, and whose
defaults its config gets. Everything here is about data, nothing about models or processes.

- ``embedded`` (default): the rendered corpus of tasks.embedded, built on first use (``--size``); source
  ``embedded-<size>``;
- ``real``: the real dataset, prepared by tasks.real from ``--data-dir`` or ``$MERT_BENCH_DATA/<dataset>`` into
  ``$MERT_BENCH_HOME/prepared-real/<task>-v<version>[-<options>]``; source ``real`` plus the real-data options that
  differ from the task's defaults (``real-split=won``);
- ``prepared``: an existing prepared folder (tasks.format) at ``--data-dir`` (or ``--data-dir/<task>``); source
  ``prepared-<folder name>-<digest of its items>``, whatever its meta.json says it was made from.

Data defaults (benchmark.config.DATA_DEFAULTS): the ``--data`` kind's, except for a prepared folder, which gets
what its meta.json declares (``"defaults"``), else those of the source it was made from, else the real ones.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.errors import RunError


def data_folder(spec, opts) -> Path:
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


def real_options_suffix(spec, opts) -> str:
    """"" for a task's default real-data options, else "-k=v" for each option that differs (its own folder,
    results and leaderboard table: the MTT Won split is not the folder split)."""
    if not opts.data_options:
        return ""
    import tasks.real as real

    try:
        defaults = real.resolve_options(spec.name, None)
        chosen = real.resolve_options(spec.name, opts.data_options)
    except (KeyError, ValueError) as e:
        raise RunError(f"--data-option: {e.args[0] if e.args else e}") from None
    return "".join(f"-{k}={v}" for k, v in sorted(chosen.items()) if defaults.get(k) != v)


def real_prepared_folder(spec, opts) -> Path:
    from benchmark.paths import home

    return home() / "prepared-real" / f"{spec.name}-v{spec.version}{real_options_suffix(spec, opts)}"


def data_source(opts, meta: dict, folder: Path | None = None, digest: str | None = None) -> str:
    """The data source's name: results folder, leaderboard table and part of a result's identity.

    ``embedded-<size>``; ``real`` (plus the real-data options that differ from the task's defaults);
    ``prepared-<folder name>-<items digest[:8]>`` for a prepared folder (``--data prepared``), whatever its
    meta.json says it was made from: another folder, or the same folder with other items, is another source."""
    if opts.data == "embedded":
        return f"embedded-{opts.size}"
    if opts.data == "prepared":
        from benchmark.paths import slug

        name = slug(Path(folder).resolve().name if folder is not None else "prepared")
        return f"prepared-{name}" + (f"-{digest[:8]}" if digest else "")
    if opts.data == "real":
        d = dict(meta.get("options") or {})
        import tasks.real as real

        try:
            defaults = real.resolve_options(str(meta.get("task")), None) if meta.get("task") else {}
        except (KeyError, ValueError):
            defaults = {}
        return "real" + "".join(f"-{k}={v}" for k, v in sorted(d.items()) if defaults.get(k) != v)
    raise RunError(f"--data {opts.data!r}: use embedded, real or prepared")


def data_defaults_kind(opts, meta: dict) -> str:
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
