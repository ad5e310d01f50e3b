"""Stored probes applied without training: to your own audio (``python -m benchmark predict``) and to another data
source's test split (``python -m benchmark evaluate``). Both read the probe a ``run`` stored beside its result
(benchmark.artefacts) and extract features exactly as the benchmark does (benchmark.features: the task's window
policy, the run's chunks, skip rules and precision), with the same representation (its identity is checked).

Finding a probe (:func:`load_stored_probe`): the result of (model, task, ``--train-source``) under ``--results-dir``,
its ``artefacts.probe`` file, checked against the sha256 the result records, the task version and the
representation's identity. Each way that fails (no result, a result written before probes were kept, a missing,
replaced or damaged file, other weights) is one error naming the file and the ``run`` command that makes a probe.

predict: every input file (or every audio file below an input folder) is one item of a temporary prepared folder
(tasks.format), whose features go through a temporary cache; the probe's seeds are applied and their ensemble
decoded (benchmark.heads ``Head.decode``), and one JSON per input is written to ``--out`` with the task's natural
output; beat adds ``<name>.beats`` (one beat time in seconds per line) and, when ``jams`` is installed,
``<name>.jams``. Separation writes each estimated stem as ``<name>.separation/<stem>.wav`` (mono float32 at the
representation's sample rate, the input's length at that rate; the seeds' magnitude estimates averaged before the
Wiener filter, benchmark.separation) and the JSON describes them. An input that cannot be used (missing,
unreadable, empty, silent, too short) is named with the reason on stderr and the others go on; the exit status is 1
when any input failed.

evaluate: the test split of ``--data`` (``--data-dir``) is scored by the stored probe of ``--train-source``, per
seed as the sweep scores a member (the validation choices of the stored probe, e.g. the key ensemble), and written
as a result of its own: source ``train=<train source>+test=<test source>`` (its own folder and leaderboard
table), identity with both sources and the probe file's sha256, predictions beside it. Nothing is trained; the
training run's result is never touched.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.artefacts import ProbeError
from benchmark.errors import RunError

#: what predict reads in a folder (what libsndfile decodes)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".opus")
DEFAULT_TRAIN_SOURCE = "embedded-standard"


# ------------------------------------------------------------------------------------------ finding a probe

@dataclass
class StoredProbe:
    """A result with its probe (a benchmark.artefacts.TrainedProbe), read and verified."""

    record: dict[str, Any]
    path: Path          # the result JSON
    probe_file: Path
    probe: Any
    sha256: str


def run_command(spec, model: str, source: str, record: dict | None = None, results_dir="results",
                overwrite: bool = False) -> str:
    """The ``python -m benchmark run`` command line that trains the probe of (model, task, data source)."""
    import shlex

    parts = ["python", "-m", "benchmark", "run", "--task", spec.name, "--model", model]
    if source.startswith("embedded-"):
        size = source[len("embedded-"):]
        if size != "standard":
            parts += ["--size", size]
    elif source == "real" or source.startswith("real-"):
        parts += ["--data", "real", "--data-dir", "DATASET_DIR"]
        for opt in source[len("real-"):].split("-") if source.startswith("real-") else []:
            parts += ["--data-option", opt]
    elif source.startswith("prepared-"):
        folder = (record or {}).get("data", {}).get("folder") or "PREPARED_FOLDER"
        parts += ["--data", "prepared", "--data-dir", str(folder)]
    if str(results_dir) != "results":
        parts += ["--results-dir", str(results_dir)]
    if overwrite:
        parts += ["--overwrite", "always"]
    return " ".join(shlex.quote(p) if p not in ("DATASET_DIR", "PREPARED_FOLDER") else p for p in parts)


def trained_sources(results_dir, rep_slug: str, spec) -> list[str]:
    """The data sources under ``results_dir`` with a result of this representation and task that has a probe."""
    out = []
    for p in sorted((Path(results_dir) / "runs").glob(f"*/{rep_slug}/{spec.name}@v{spec.version}.json")):
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and (rec.get("artefacts") or {}).get("probe") and not rec.get("evaluation"):
            out.append(p.parent.parent.name)
    return out


def load_stored_probe(results_dir, source: str, rep, spec, model: str) -> StoredProbe:
    """The trained probe of (``rep``, ``spec``, data ``source``) under ``results_dir``, verified against its
    result (sha256), task version and representation; every way this can fail is a ProbeError naming the file
    and the ``run`` command that makes a probe."""
    from benchmark.artefacts import TrainedProbe, sha256
    from benchmark.pipeline import rep_slug
    from benchmark.results import ResultError, read_result, result_path

    slug = rep_slug(rep)
    path = result_path(results_dir, source, slug, spec)
    if not path.exists():
        others = [s for s in trained_sources(results_dir, slug, spec) if s != source]
        hint = f"; probes of it exist for {', '.join(others)} (pass --train-source)" if others else ""
        cmd = run_command(spec, model, source, None, results_dir)
        raise ProbeError(f"no trained probe for {rep.name} on task {spec.key} from data source {source!r}: {path} "
                         f"does not exist{hint}; train one with `{cmd}`")
    try:
        record = read_result(path)
    except ResultError as e:
        raise ProbeError(f"{e}") from None
    section = (record.get("artefacts") or {}).get("probe")
    cmd = run_command(spec, model, source, record, results_dir, overwrite=True)
    if not section and (record.get("probe") or {}).get("mode") in ("lora", "full"):
        raise ProbeError(f"{path} is a fine-tuned result (--mode {record['probe']['mode']}): its encoder was trained "
                         "with the head and is not kept, so there is no probe to apply; predict and evaluate apply "
                         "frozen-feature probes: train one with `python -m benchmark run` without --mode and pass "
                         "--train-source " + source.rsplit("-", 1)[0])
    if not section:
        raise ProbeError(f"{path} holds no trained probe (the result was written before probes were kept with "
                         f"results); make one with `{cmd}` (with the options the result was run with: its config is "
                         "in the file)")
    pfile = path.with_name(section["file"])
    try:
        data = pfile.read_bytes()
    except FileNotFoundError:
        raise ProbeError(f"{pfile}: missing (the result {path} refers to it); make it again with `{cmd}`") from None
    digest = sha256(data)
    if digest != section.get("sha256"):
        raise ProbeError(f"{pfile} does not match its result {path} (sha256 {digest[:12]}, the result says "
                         f"{str(section.get('sha256'))[:12]}): replaced or cut short by another run; make it again "
                         f"with `{cmd}`")
    probe = TrainedProbe.from_bytes(data, str(pfile))
    probe.check_task(spec, str(pfile))
    probe.check_representation(rep, str(pfile))
    return StoredProbe(record=record, path=path, probe_file=pfile, probe=probe, sha256=digest)


def evaluation_source(train_source: str, test_source: str) -> str:
    """The data source of a stored probe scored on another source's test split: its results folder and its own
    leaderboard table, ``train=<train source>+test=<test source>``."""
    return f"train={train_source}+test={test_source}"


# ------------------------------------------------------------------------------------------------- predict

@dataclass
class PredictOptions:
    task: str
    model: str
    inputs: list[str]
    train_source: str = DEFAULT_TRAIN_SOURCE
    results_dir: str = "results"
    out: str = "predictions"
    device: str | None = None
    progress: bool = False
    quiet: bool = False


@dataclass
class Prediction:
    """One input's output: the file written and a one-line summary (what ``predict`` prints)."""

    audio: Path
    files: list[Path]
    summary: str
    output: dict[str, Any]


def audio_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """The audio files the inputs name (a file as it is; a folder: every file below it with an audio extension,
    sorted) and the problems of the others (a missing path, a folder without audio)."""
    files, problems = [], []
    for name in inputs:
        p = Path(name).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                problems.append(f"{p}: a folder with no audio file ({', '.join(AUDIO_EXTENSIONS)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return [f.resolve() for f in files], problems


def predict(opts: PredictOptions, rep=None, log=None) -> tuple[list[Prediction], list[str]]:
    """Apply the stored probe of (``opts.model``, ``opts.task``, ``opts.train_source``) to the inputs and write
    one output per usable input into ``opts.out``; (the predictions, the problems of the inputs that failed).
    Raises RunError (ProbeError) when there is no usable probe or no usable input."""
    from benchmark.logging import RunLogger
    from benchmark.registry import load_representation
    from tasks import get_task

    spec = get_task(opts.task)
    log = log or RunLogger(quiet=opts.quiet)
    rep = rep or load_representation(opts.model)
    stored = load_stored_probe(opts.results_dir, opts.train_source, rep, spec, opts.model)
    files, problems = audio_inputs(opts.inputs)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not files:
        raise RunError("no audio to predict: " + ("; ".join(problems) if problems else "give files or folders"))
    if opts.device and hasattr(rep, "to"):
        rep.to(opts.device)
    probe = stored.probe
    log(f"[{spec.name}] {rep.name}: probe {stored.probe_file} (trained on {opts.train_source}, layer "
        f"{probe.selection['layer']}, seeds {probe.seed_numbers}) on {len(files)} file(s)")
    with tempfile.TemporaryDirectory(prefix="mert-bench-predict-") as tmp:
        feats = _extract_inputs(spec, rep, probe, files, Path(tmp), opts, log)
        skipped = {d["id"]: d["reason"] for d in feats.skipped}
        for i, f in enumerate(files):
            if f"input-{i:05d}" in skipped:
                problems.append(f"{f}: {skipped[f'input-{i:05d}']}; not predicted")
                print(f"error: {problems[-1]}", file=sys.stderr)
        if probe.kind == "separation":
            out = _predict_separation(spec, rep, stored, files, feats, Path(tmp) / "inputs", opts)
            return out, problems
        head = probe.make_head(spec)
        data = head.prepare_unlabelled(feats)
        data["frame_rate"] = float(probe.features["frame_rate"])
        rows = probe.row_outputs(feats.x)
        ensemble = head.decode(rows, data, [s.get("choice") for s in probe.seeds])
        per_seed = [head.decode(rows[s:s + 1], data, [probe.seeds[s].get("choice")], top=1)
                    for s in range(len(probe.seeds))] if len(probe.seeds) > 1 else None
        out, taken = [], set()
        for u, items in enumerate(data["unit_items"]):
            audio = files[items[0]]
            result = {"file": str(audio), "task": spec.key, "model": rep.name,
                      "representation": f"{rep.name}@{rep.identity()[:8]}", "probe": str(stored.probe_file),
                      "train_source": opts.train_source, "seeds": probe.seed_numbers,
                      "seconds": _seconds(audio), **ensemble[u]}
            if per_seed is not None:
                result["per_seed"] = [{"seed": probe.seed_numbers[s], "prediction": per_seed[s][u]["prediction"]}
                                      for s in range(len(per_seed))]
            out.append(_write_prediction(spec, audio, result, _output_stem(audio, taken, Path(opts.out), spec.name)))
    return out, problems


def _predict_separation(spec, rep, stored, files: list[Path], feats, folder: Path, opts: PredictOptions):
    """Every usable input separated by the stored probe (benchmark.separation.separate_stored: the mean of the seeds'
    magnitude estimates, then the Wiener filter): ``<out>/<name>.separation/<stem>.wav`` (mono float32 WAV at the
    representation's sample rate, as long as the input read at that rate; not clipped) and ``<out>/<name>
    .separation.json`` describing them, each written atomically. Each stem is the mixture through its own Wiener
    gain against its residual (MARBLE's decoder): the stems need not add up to the mixture."""
    from benchmark.separation import ENSEMBLE, separate_stored

    probe = stored.probe
    sr = int(probe.representation["sample_rate"])
    out, taken = [], set()
    for tr, est in separate_stored(probe, feats, folder):
        audio = files[int(tr["index"])]
        base = _output_stem(audio, taken, Path(opts.out), spec.name)
        wavs, stems = {}, {}
        for k, stem in enumerate(probe.labels):
            wavs[stem] = base / f"{stem}.wav"
            _write_wav(wavs[stem], est[k], sr)
            stems[stem] = {"file": str(wavs[stem]), "rms": float(np.sqrt(np.mean(np.square(est[k], dtype=np.float64)))),
                           "peak": float(np.abs(est[k]).max(initial=0.0))}
        result = {"file": str(audio), "task": spec.key, "model": rep.name,
                  "representation": f"{rep.name}@{rep.identity()[:8]}", "probe": str(stored.probe_file),
                  "train_source": opts.train_source, "seeds": probe.seed_numbers, "seconds": _seconds(audio),
                  "sample_rate": sr, "samples": int(est.shape[1]), "ensemble": ENSEMBLE,
                  "wiener_iterations": int(probe.separation_config["wiener_iterations"]),
                  "prediction": {stem: str(p) for stem, p in wavs.items()}, "stems": stems}
        out.append(_write_prediction(spec, audio, result, base, list(wavs.values())))
    return out


def _write_wav(path: Path, wav, sr: int) -> None:
    """A mono float32 WAV (not clipped), atomically."""
    import io

    import soundfile as sf

    from tasks.format import atomic_write_bytes

    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav, dtype=np.float32), sr, format="WAV", subtype="FLOAT")
    atomic_write_bytes(path, buf.getvalue())


def _extract_inputs(spec, rep, probe, files: list[Path], tmp: Path, opts: PredictOptions, log):
    """The features of the input files: a temporary prepared folder (one ``test`` item per file, no targets) through
    benchmark.features with the probe's features config; every input may be skipped (its reason is kept)."""
    from benchmark.features import ExtractionError, extract_split
    from tasks.format import Item, write_meta, write_split

    folder = tmp / "inputs"
    folder.mkdir()
    write_split(folder, "test", [Item(id=f"input-{i:05d}", audio=str(f), target=None) for i, f in enumerate(files)])
    write_meta(folder, {"task": spec.name, "task_version": spec.version, "source": "predict",
                        "source_version": "predict", "sample_rate": int(rep.sample_rate), "labels": probe.labels})
    fcfg = probe.feature_config(opts.device, max_skip_fraction=1.0)
    try:
        return extract_split(rep, spec, folder, "test", fcfg, tmp / "cache", None, opts.progress, log)
    except ExtractionError as e:
        raise RunError(f"no input could be used: {e}".replace(str(folder), "inputs")) from None


def _seconds(audio: Path) -> float | None:
    import soundfile as sf

    try:
        return round(float(sf.info(str(audio)).duration), 3)
    except Exception:  # noqa: BLE001 - decoded fine by the extraction; a header libsndfile cannot read
        return None


def _output_stem(audio: Path, taken: set[str], out: Path, task: str) -> Path:
    """``<out>/<file stem>.<task>``, with ``-2``, ``-3`` ... when two inputs share a stem."""
    stem, n = audio.stem, 1
    while f"{stem}.{task}" in taken:
        n += 1
        stem = f"{audio.stem}-{n}"
    taken.add(f"{stem}.{task}")
    return out / f"{stem}.{task}"


def _write_prediction(spec, audio: Path, result: dict, base: Path, also: list[Path] | None = None) -> Prediction:
    """``<base>.json`` with the natural output (and for beat ``<base>.beats``, ``<base>.jams``), atomically;
    ``also``: files already written for it (separation's stems)."""
    from benchmark.artefacts import compact
    from tasks.format import atomic_write_text

    written = [base.with_name(base.name + ".json")]
    atomic_write_text(written[0], json.dumps(compact(result), indent=1, ensure_ascii=False) + "\n")
    written += list(also or [])
    if spec.type == "beat":
        beats = result["prediction"]
        written.append(base.with_name(base.name + ".beats"))
        atomic_write_text(written[-1], "".join(f"{b:.3f}\n" for b in beats))
        jams_file = _write_jams(base.with_name(base.name + ".jams"), result)
        if jams_file is not None:
            written.append(jams_file)
    return Prediction(audio=audio, files=written, summary=summary(spec, result), output=result)


def _write_jams(path: Path, result: dict) -> Path | None:
    """The beats (and downbeats, as metrical position 1) as a JAMS file when ``jams`` is installed; None without it."""
    try:
        import jams
    except ImportError:
        return None
    from mert.fsutil import finish_atomic_write, temporary_path

    duration = float(result.get("seconds") or (max(result["prediction"], default=0.0) + 1.0))
    jam = jams.JAMS()
    jam.file_metadata.duration = duration
    ann = jams.Annotation(namespace="beat", time=0.0, duration=duration)
    ann.annotation_metadata = jams.AnnotationMetadata(
        data_source=f"mert-bench predict: {result['representation']} probe for {result['task']} trained on "
                    f"{result['train_source']}")
    downs = [float(d) for d in result.get("downbeats") or []]
    for b in result["prediction"]:
        is_down = any(abs(float(b) - d) < 1e-6 for d in downs)
        ann.append(time=float(b), duration=0.0, value=1 if is_down else None)
    jam.annotations.append(ann)
    tmp = temporary_path(path)
    try:
        jam.save(str(tmp), fmt="jams")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finish_atomic_write(tmp, path)
    return path


def summary(spec, result: dict) -> str:
    """A prediction in a few words: 'C major (0.93)', 'rock (0.71)', 'guitar, fast', 'arousal 0.12, valence
    -0.30', '24 beats, 120.0 bpm'."""
    pred = result["prediction"]
    if spec.type == "separation":
        return f"{len(pred)} stems ({', '.join(pred)}) in {Path(next(iter(pred.values()))).parent}"
    if spec.type in ("multiclass", "key"):
        return f"{pred} ({result['probabilities'][pred]:.2f})"
    if spec.type == "multilabel":
        top = ", ".join(f"{t} {result['scores'][t]:.2f}" for t in pred[:5])
        return top or f"no tag >= 0.5 (top: {next(iter(result['scores']))} {next(iter(result['scores'].values())):.2f})"
    if spec.type == "regression":
        return ", ".join(f"{k} {v:.2f}" for k, v in pred.items())
    tempo = result.get("tempo_bpm")
    return f"{len(pred)} beats" + (f", {tempo:.1f} bpm" if tempo else "")


# ------------------------------------------------------------------------------------------------ evaluate

def evaluate(opts, train_source: str = DEFAULT_TRAIN_SOURCE, rep=None) -> list[dict]:
    """Every task of ``opts`` (benchmark.pipeline.RunOptions: the test data, results and cache folders, limit,
    overwrite, device) scored by the stored probe of ``train_source``; the result records (existing ones where
    ``--overwrite`` keeps them). Then the leaderboards, unless ``opts.leaderboard`` is False."""
    from benchmark.logging import RunLogger
    from benchmark.pipeline import check_folders, check_options, load_rep, resolve_tasks

    check_options(opts)
    check_folders(opts)
    specs = resolve_tasks(opts.tasks)
    log = RunLogger(quiet=opts.quiet)
    rep = rep or load_rep(opts)
    out = [evaluate_task(spec, rep, opts, train_source, log) for spec in specs]
    if opts.leaderboard:
        from benchmark.results import write_leaderboards

        write_leaderboards(opts.results_dir)
    return out


def evaluation_plan(spec, rep, opts, stored, train_source: str):
    """The evaluation's plan (benchmark.pipeline.TaskPlan): the test data's folder and source, the result path
    under ``train=<train>+test=<test>``, the config (the training run's, on this run's device) and the identity
    (both sources, the probe's sha256) with its hash."""
    import copy

    from benchmark.config import config_hash
    from benchmark.data import data_folder, data_source
    from benchmark.pipeline import TaskPlan, result_path
    from benchmark.results import evaluation_identity
    from tasks.format import folder_digest, read_meta

    folder = data_folder(spec, opts)
    meta = read_meta(folder)
    if meta.get("task") not in (None, spec.name):
        raise RunError(f"{folder}: prepared for task {meta.get('task')!r}, not {spec.name!r}")
    if not (folder / "test.jsonl").exists():
        raise RunError(f"{folder}: no test split (test.jsonl); evaluate scores a source's test split")
    present = [s for s in spec.splits if (folder / f"{s}.jsonl").exists()]
    digest = None if opts.data == "embedded" else folder_digest(folder, present)
    test_source = data_source(opts, meta, folder, digest)
    if test_source == train_source:
        raise RunError(f"the probe was trained on {train_source}, whose test split its result {stored.path} already "
                       f"scores; evaluate another source (--data, --data-dir) or --train-source")
    source = evaluation_source(train_source, test_source)
    cfg_d = copy.deepcopy(stored.record["config"])
    if opts.device is not None:
        cfg_d["features"]["device"] = str(opts.device)
    identity = {"representation": rep.name, "identity": rep.identity(), "task": spec.key, "source": source,
                "source_version": meta.get("source_version"), "limit": opts.limit,
                **({"items": digest} if digest else {}), **evaluation_identity(train_source, stored.sha256)}
    chash = config_hash({"config": cfg_d, **identity})
    path = result_path(opts.results_dir, source, rep, spec)
    plan = TaskPlan(spec, None, cfg_d, folder, meta, source, path, identity, chash, "evaluation", opts.data)
    return plan, test_source


def evaluate_task(spec, rep, opts, train_source: str, log) -> dict:
    """One task: the stored probe scored on the test split of ``opts``' data, its result written (and returned)."""
    from benchmark.artefacts import ArtefactFiles, prediction_lines, predictions_text, seed_scores
    from benchmark.features import extract_split
    from benchmark.pipeline import environment, existing_result, finish_task
    from benchmark.results import ResultRecord, representation_section, task_section

    started = time.time()
    stored = load_stored_probe(opts.results_dir, train_source, rep, spec, opts.model)
    probe = stored.probe
    plan, test_source = evaluation_plan(spec, rep, opts, stored, train_source)
    old = existing_result(plan, opts)
    if old is not None:
        log(f"[{spec.name}] evaluation exists ({plan.path}); skipped (--overwrite {opts.overwrite})")
        return old
    log(f"[{spec.name}] {rep.name}: probe trained on {train_source} ({stored.probe_file}) scored on the test split of "
        f"{test_source} ({plan.folder})")
    if hasattr(rep, "to"):
        rep.to(plan.cfg_d["features"]["device"])
    t0 = time.time()
    feats = extract_split(rep, spec, plan.folder, "test", probe.feature_config(plan.cfg_d["features"]["device"]),
                          opts.cache_dir, opts.limit, opts.progress, log)
    extract_s = time.time() - t0
    t1 = time.time()
    if probe.kind == "separation":  # its networks on the test tracks (benchmark.separation), scored as the run does
        from benchmark.separation import evaluate_stored

        per_seed, lines = evaluate_stored(probe, spec, feats, plan.folder)
        mean, std = np.nanmean, np.nanstd  # a stem silent in every track is nan (benchmark.separation._result)
        epochs = {"epochs_run": [max(s["epochs_run"].values()) for s in probe.seeds]}
    else:
        head = probe.make_head(spec)
        data = head.prepare(feats)
        data["frame_rate"] = float(probe.features["frame_rate"])
        rows = probe.row_outputs(feats.x)
        per_seed = seed_scores(head, probe, rows, data, spec)
        lines = prediction_lines(head, probe, rows, data)
        mean, std = np.mean, np.std
        epochs = {"best_epoch": [int(s["best_epoch"]) for s in probe.seeds]}
    apply_s = time.time() - t1
    metrics = [k for k in per_seed[0] if isinstance(per_seed[0][k], (int, float))]
    test = {k: float(mean([s[k] for s in per_seed])) for k in metrics}
    test_std = {k: float(std([s[k] for s in per_seed])) for k in metrics}
    train_rec = stored.record
    sel = train_rec["selection"]
    chosen = next((r for r in train_rec.get("layers", []) if r["layer"] == sel["layer"] and r["lr"] == sel["lr"]), {})
    row = {"layer": sel["layer"], "lr": sel["lr"], "valid_main": train_rec["scores"]["valid_main"],
           "valid_main_std": chosen.get("valid_main_std", 0.0), "test": test, "test_std": test_std, **epochs,
           "test_main_per_seed": [float(s["main"]) for s in per_seed]}
    files = ArtefactFiles()
    files.files["predictions"] = predictions_text(lines).encode("utf-8")
    files.info["predictions"] = {"split": "test", "lines": len(lines), "units": len(lines) // len(probe.seeds)}
    results_root = Path(opts.results_dir)
    data_section = {"source": plan.source, "train_source": train_source, "test_source": test_source,
                    "source_version": plan.meta.get("source_version"), "folder": str(plan.folder),
                    "limit": opts.limit, "counts": {"test": len(feats.items)}, "rows": {"test": int(feats.x.shape[0])},
                    **({"items_digest": plan.identity["items"]} if "items" in plan.identity else {})}
    record = ResultRecord(
        representation=representation_section(rep), task=task_section(spec), data=data_section, config=plan.cfg_d,
        config_hash=plan.chash, environment=environment(),
        scores={"main": test["main"], "main_std": test_std["main"], "test": test, "test_std": test_std,
                "valid_main": train_rec["scores"]["valid_main"], "train_test_main": train_rec["scores"]["main"]},
        selection={"layer": sel["layer"], "lr": sel["lr"],
                   "by": f"the stored probe trained on {train_source} (chosen there on validation); no training here"},
        layers=[row], seeds=probe.seed_numbers,
        skipped=[dict(d, split="test", stage="extract") for d in feats.skipped],
        timings={"extract_s": round(extract_s, 3), "probe_s": round(apply_s, 3),
                 "total_s": round(time.time() - started, 3), "model_calls": int(feats.model_calls)},
        probe={"members": 0, "trained": False, "seconds": round(apply_s, 3)},
        evaluation={"train_source": train_source, "test_source": test_source,
                    "train_result": _relative(stored.path, results_root),
                    "probe_file": _relative(stored.probe_file, results_root), "probe_sha256": stored.sha256,
                    "train_config_hash": train_rec.get("config_hash"), "trained": False},
        artefacts=files.section(plan.path),
    ).to_dict()
    record["_artefacts"] = files
    return finish_task(plan, record, opts, log)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
