"""Trained probes kept with every result (benchmark.artefacts): the probe file and the per-item test predictions
beside the result JSON, a reload that gives bit-identical predictions, and every way a stored probe can be unusable
named with the command that makes a new one."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.__main__ import main
from benchmark.apply import load_stored_probe
from benchmark.artefacts import ProbeError, TrainedProbe, prediction_lines, predictions_text, seed_scores
from tasks import get_task


def _run(tmp_path, task: str, model: str = "chroma", *extra: str) -> tuple[dict, Path]:
    """A small synthetic run (benchmark.synthetic) with 2 seeds; its record and result path."""
    from benchmark.synthetic import make_prepared

    data = make_prepared(get_task(task), tmp_path / "data" / task, n={"train": 12, "valid": 6, "test": 6},
                         seconds=2.0, seed=3)
    assert main(["run", "--task", task, "--model", model, "--data", "prepared", "--data-dir", str(data),
                 "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--grid", "fast",
                 "--seeds", "2", "--no-progress", "--quiet", "--no-leaderboard", "probe.max_epochs=4", *extra]) == 0
    (path,) = (tmp_path / "r" / "runs").glob(f"*/*/{task}@v*.json")
    return json.loads(path.read_text()), path


def _reloaded(record: dict, path: Path, tmp_path, task: str, model: str = "chroma"):
    """The stored probe read back from its file and applied to the cached test features (no model run)."""
    from benchmark.features import extract_split
    from benchmark.registry import load_representation

    spec, rep = get_task(task), load_representation(model)
    stored = load_stored_probe(tmp_path / "r", record["data"]["source"], rep, spec, model)
    feats = extract_split(rep, spec, record["data"]["folder"], "test", stored.probe.feature_config(),
                          tmp_path / "c", progress=False, log=lambda m: None, cached_only=True)
    head = stored.probe.make_head(spec)
    data = head.prepare(feats)
    data["frame_rate"] = float(stored.probe.features["frame_rate"])
    return stored, head, data, feats


@pytest.mark.parametrize("task, extra", [("genre", ()), ("tagging", ()), ("emotion", ()),
                                         ("key", ("probe.key_ensemble=select",))])
def test_a_reloaded_probe_gives_bit_identical_test_predictions(tmp_path, monkeypatch, task, extra):
    captured = []
    real = TrainedProbe.row_outputs

    def spy(self, x):
        out = real(self, x)
        captured.append(out.copy())
        return out

    monkeypatch.setattr(TrainedProbe, "row_outputs", spy)
    record, path = _run(tmp_path, task, "chroma", *extra)
    monkeypatch.undo()
    assert len(captured) == 1  # the in-sweep test predictions, computed once from the stored probe
    art = record["artefacts"]
    probe_file, pred_file = path.with_name(art["probe"]["file"]), path.with_name(art["predictions"]["file"])
    assert probe_file.name == path.stem + ".probe.pt" and pred_file.name == path.stem + ".predictions.jsonl"
    assert "_artefacts" not in record and art["probe"]["seeds"] == [0, 1] and art["probe"]["weights"] == "float16"

    stored, head, data, feats = _reloaded(record, path, tmp_path, task)
    rows = stored.probe.row_outputs(feats.x)
    assert rows.dtype == np.float32 and rows.tobytes() == captured[0].tobytes()  # bit-identical
    lines = prediction_lines(head, stored.probe, rows, data)
    assert predictions_text(lines).encode() == pred_file.read_bytes()
    assert art["predictions"]["lines"] == len(lines) == 2 * len(data["unit_items"])
    # the stored (float16) probe scores what the result records for it, per seed
    stored_main = [s["main"] for s in seed_scores(head, stored.probe, rows, data, get_task(task))]
    assert stored_main == art["probe"]["test_main_per_seed"]
    # each line: id, seed, target, prediction (and the per-unit score where the metric has one)
    first = json.loads(pred_file.read_text().splitlines()[0])
    assert {"id", "seed", "target", "prediction"} <= set(first)
    if task in ("genre", "key"):
        assert first["score"] == float(first["prediction"] == first["target"]) or task == "key"
        assert len(first["probabilities"]) == 5
    if task == "tagging":
        assert "score" not in first and len(first["scores"]) == len(stored.probe.labels)
    if task == "emotion":
        assert set(first["prediction"]) == set(first["score"]) == {"arousal", "valence"}
    if task == "key":  # select: the strategy chosen on validation is stored per seed
        assert all(s["choice"]["key_strategy"] in ("vote", "max", "gmean", "mean") for s in stored.probe.seeds)


def test_the_stored_float16_probe_follows_the_float32_sweep():
    """TrainedProbe.from_sweep keeps the chosen member of every seed: applied, it computes what the batched model
    computes with the same (float16-rounded) weights, and scores what the sweep's float32 member scored, up to a
    rounding flip."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_probes import _split

    from benchmark.config import resolve_config
    from benchmark.heads import make_head
    from benchmark.probes import BatchedMLP, Standardizer, chosen_index, summarize, train_sweep
    from benchmark.registry import load_representation

    rng = np.random.default_rng(0)
    spec = get_task("genre")
    cfg = resolve_config(spec, overrides=["probe.lrs=[1e-3,1e-2]", "probe.max_epochs=6"])
    head = make_head(spec, ["c0", "c1", "c2"], cfg)
    data = {s: head.prepare(_split(s, n, rng)) for s, n in (("train", 96), ("valid", 30), ("test", 30))}
    res = train_sweep(head, data["train"], data["valid"], data["test"], cfg.probe, [0, 1, 2], [0, 1])
    for chosen in summarize(res, spec)["layers"]:  # every layer's and the weighted sum's best member
        probe = TrainedProbe.from_sweep(res, chosen, head, spec, load_representation("chroma"), cfg,
                                        {"source": "test", "result": "genre@v1.json"})
        again = TrainedProbe.from_bytes(probe.to_bytes())
        x = data["test"]["feats"].x
        out = again.row_outputs(x)
        mi = chosen_index(res, chosen)
        std = Standardizer(data["train"]["feats"].x, [0, 1, 2])
        for s in range(2):
            model = BatchedMLP(res.members, 3, 8, int(cfg.probe.hidden), 3, 0.0, {0: 0, 1: 1, 2: 2})
            with torch.no_grad():
                for k in ("W1", "b1", "W2", "b2"):
                    model.params[k].copy_(res.states[s][k].float())
            model.mixing = lambda s=s: res.states[s]["mixing"]
            with torch.no_grad():
                ref = model.forward(std.read(x, np.arange(len(x)), "cpu"), train=False)[mi]
            torch.testing.assert_close(torch.from_numpy(out[s]), ref, atol=1e-5, rtol=1e-5)
            assert again.seeds[s]["W1"].dtype == torch.float16
        stored = seed_scores(head, again, out, data["test"], spec)
        for s in range(2):
            assert abs(stored[s]["main"] - res.test[s][mi]["main"]) <= 1 / 30 + 1e-9
        assert again.layers == ([0, 1, 2] if chosen["layer"] == "weighted" else [int(chosen["layer"])])


def test_the_probe_file_is_plain_tensors_with_its_recipe(stored_probes):
    path = next((stored_probes["results"] / "runs" / stored_probes["key_source"]).glob("*/key@v1.probe.pt"))
    obj = torch.load(path, weights_only=True)  # no code runs when it is read
    assert obj["format"] == "mert-bench-probe" and obj["format_version"] == 1 and obj["kind"] == "mlp"
    assert obj["task"] == {"name": "key", "version": 1, "key": "key@1", "type": "key"}
    assert len(obj["labels"]) == 24 and "Gb minor" in obj["labels"]
    assert obj["features"]["window"] == "window" and obj["features"]["window_s"] == 30.0
    assert obj["features"]["pooling"] == "mean_std" and obj["features"]["config"]["max_chunk_s"] == 30.0
    assert obj["representation"]["name"] == "chroma" and obj["train"]["source"] == stored_probes["key_source"]
    assert obj["head"]["config"] == {"probe": {"key_ensemble": "mean_logits"}}
    (seed,) = obj["seeds"]
    assert seed["W1"].dtype == torch.float16 and tuple(seed["W1"].shape) == (24, 512)
    assert tuple(obj["standardizer"]["mean"].shape) == (1, 24) and tuple(seed["mixing"].shape) == (1,)
    beat_dir = stored_probes["results"] / "runs" / stored_probes["beat_source"]
    beat = torch.load(next(beat_dir.glob("*/beat@v2.probe.pt")), weights_only=True)
    assert beat["features"]["window"] == "frames" and beat["features"]["frame_rate"] == 75.0
    assert beat["head"]["config"]["beat"]["tracker"] == "dbn" and beat["head"]["state"] == {"with_downbeats": False}


def _predict(stored_probes, audio, *extra):
    return main(["predict", "--task", "key", "--model", "chroma", "--train-source", stored_probes["key_source"],
                 "--results-dir", str(stored_probes["results"]), "--quiet", *extra, str(audio)])


def test_a_damaged_missing_or_absent_probe_names_the_command_that_makes_one(stored_probes, tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(stored_probes["results"], results)
    (result,) = (results / "runs" / stored_probes["key_source"]).glob("*/key@v1.json")
    probe = result.with_name("key@v1.probe.pt")
    audio = next((stored_probes["key_data"] / "audio").glob("test-*.flac"))
    args = ["predict", "--task", "key", "--model", "chroma", "--train-source", stored_probes["key_source"],
            "--results-dir", str(results), "--quiet", str(audio)]
    fix = f"--data prepared --data-dir {stored_probes['key_data']} --results-dir {results} --overwrite always"

    data = probe.read_bytes()
    probe.write_bytes(data[:-10] + b"0123456789")  # replaced by another run's write, or cut short
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "does not match its result" in err and str(probe) in err and fix in err
    probe.unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{probe}: missing" in err and fix in err

    record = json.loads(result.read_text())
    del record["artefacts"]  # a result written before probes were kept
    result.write_text(json.dumps(record))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds no trained probe" in err and fix in err

    args[args.index("--train-source") + 1] = "embedded-standard"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "embedded-standard/chroma@" in err and "does not exist" in err
    assert "`python -m benchmark run --task key --model chroma --results-dir" in err


def test_a_probe_of_other_weights_or_another_task_version_is_refused(stored_probes):
    from benchmark.registry import load_representation

    spec = get_task("key")
    rep = load_representation("chroma")
    stored = load_stored_probe(stored_probes["results"], stored_probes["key_source"], rep, spec, "chroma")
    other = TrainedProbe.from_bytes(stored.probe.to_bytes())
    other.representation = dict(other.representation, identity="0" * 16)
    with pytest.raises(ProbeError, match="other weights or settings"):
        other.check_representation(rep, "probe.pt")
    other.task = dict(other.task, key="key@0")
    with pytest.raises(ProbeError, match="changed version"):
        other.check_task(spec, "probe.pt")
    with pytest.raises(ProbeError, match="not a mert-bench probe file|not a readable probe file"):
        TrainedProbe.from_bytes(b"not a probe", "x.probe.pt")


def test_disk_full_keeps_the_probe_with_the_record_and_the_next_run_puts_both_in_place(tmp_path, monkeypatch,
                                                                                      capsys):
    import tasks.format as fmt
    from benchmark.synthetic import make_prepared

    home = tmp_path / "home"
    monkeypatch.setenv("MERT_BENCH_HOME", str(home))
    data = make_prepared(get_task("genre"), tmp_path / "genre", n={"train": 8, "valid": 4, "test": 4}, seconds=1.0)
    args = ["run", "--task", "genre", "--model", "chroma", "--data", "prepared", "--data-dir", str(data),
            "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--grid", "fast", "--seeds",
            "1", "--no-progress", "--quiet", "--no-leaderboard", "probe.max_epochs=2"]
    runs = tmp_path / "r" / "runs"
    real = fmt.atomic_write_bytes

    def full(path, data):
        if Path(path).resolve().is_relative_to(runs.resolve()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(fmt, "atomic_write_bytes", full)
    assert main(args) == 2
    assert "the record was saved to" in capsys.readouterr().err
    assert not [p for p in runs.rglob("*") if p.is_file()]  # nothing half written under runs/
    (kept,) = (home / "unsaved-results").glob("**/genre@v1.json")
    assert kept.with_name("genre@v1.probe.pt").exists() and kept.with_name("genre@v1.predictions.jsonl").exists()
    monkeypatch.setattr(fmt, "atomic_write_bytes", real)
    import benchmark.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_probes", lambda *a, **k: pytest.fail("the kept record should be used"))
    assert main(args) == 0
    (path,) = runs.glob("*/*/genre@v1.json")
    record = json.loads(path.read_text())
    from benchmark.artefacts import sha256

    assert sha256(path.with_name("genre@v1.probe.pt").read_bytes()) == record["artefacts"]["probe"]["sha256"]
    assert not kept.exists() and not kept.with_name("genre@v1.probe.pt").exists()


def test_committed_results_without_artefacts_still_load_and_hash():
    """The record type's new optional sections change nothing for results written before them."""
    from benchmark.config import config_hash
    from benchmark.results import ResultRecord, identity_of, load_results

    results = load_results(Path(__file__).resolve().parent.parent / "results")
    old = [r for r in results if "artefacts" not in r]
    assert old
    for r in old[:20]:
        r = {k: v for k, v in r.items() if k != "_path"}
        assert ResultRecord.from_dict(r).to_dict() == r
        assert config_hash({"config": r["config"], **identity_of(r)}) == r["config_hash"]
