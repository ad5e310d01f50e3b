"""The separation probe kept with its result (benchmark.artefacts, kind "separation"): the stored networks reloaded
give bit-identical per-track estimates and the SDRs of predictions.jsonl; ``predict`` writes one WAV per stem of the
input's length; ``evaluate`` scores another folder without training and leaves the training result as it was; a
damaged or missing probe file is a ProbeError naming it. One tiny run (mfcc, one seed, two epochs of two steps,
a network per stem with the spectral input) on four synthetic stems (tests/fixtures_probes.py)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

import benchmark.separation as S
from benchmark.__main__ import main
from benchmark.apply import load_stored_probe
from benchmark.artefacts import KINDS, ProbeError, SeparationProbe, TrainedProbe, predictions_text
from fixtures_probes import SEPARATION_STEMS, SR, make_separation_folder, stem_mix
from tasks import get_task

MODEL = "mfcc"
TINY = ["separation.hidden=8", "separation.num_layers=1", "separation.max_epochs=2", "separation.steps_per_epoch=2",
        "separation.batch_size=2", "separation.segment_s=1.0", "separation.joint=false",
        "separation.spectral_input=true"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The run, with the estimates its stored probe computed for the test tracks (captured from score_tracks)."""
    root = tmp_path_factory.mktemp("separation-artefacts")
    data = make_separation_folder(root / "stems", {"train": 4, "valid": 2, "test": 2}, seed=0, seconds=2.0,
                                  silent={"test-001": ("other",)})
    captured = {}
    real_score, real_waveforms = S.score_tracks, S.track_waveforms

    def score(sep, models, split, seed, bss=False):
        def waveforms(sep, models, split, tr):
            out = real_waveforms(sep, models, split, tr)
            captured[(seed, tr["id"])] = out.copy()
            return out

        S.track_waveforms = waveforms
        try:
            return real_score(sep, models, split, seed, bss)
        finally:
            S.track_waveforms = real_waveforms

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(S, "score_tracks", score)
        assert main(["run", "--task", "separation", "--model", MODEL, "--data", "prepared", "--data-dir", str(data),
                     "--results-dir", str(root / "results"), "--cache-dir", str(root / "cache"), "--seeds", "1",
                     "--no-progress", "--quiet", "--no-leaderboard", *TINY]) == 0
    (path,) = (root / "results" / "runs").glob("*/*/separation@v2.json")
    return {"root": root, "data": data, "path": path, "record": json.loads(path.read_text()),
            "source": path.parent.parent.name, "captured": captured}


def _stored(trained):
    from benchmark.registry import load_representation

    return load_stored_probe(trained["root"] / "results", trained["source"], load_representation(MODEL),
                             get_task("separation"), MODEL)


def test_a_reloaded_probe_gives_bit_identical_estimates_and_the_sdrs_of_its_predictions(trained, tmp_path):
    from benchmark.features import extract_split
    from benchmark.registry import load_representation

    record, path = trained["record"], trained["path"]
    art = record["artefacts"]
    assert "separation" in KINDS and "_artefacts" not in record
    assert art["probe"]["file"] == "separation@v2.probe.pt" and art["probe"]["kind"] == "separation"
    assert art["probe"]["seeds"] == [0] and art["probe"]["models"] == "one per stem"
    assert art["predictions"] == dict(art["predictions"], file="separation@v2.predictions.jsonl", lines=2, units=2)
    assert len(trained["captured"]) == 2  # the stored probe on the two test tracks, once, in the run

    stored = _stored(trained)
    probe = stored.probe
    assert isinstance(probe, SeparationProbe) and probe.labels == list(SEPARATION_STEMS)
    feats = extract_split(load_representation(MODEL), get_task("separation"), trained["data"], "test",
                          probe.feature_config(),
                          trained["root"] / "cache", progress=False, log=lambda m: None, cached_only=True)
    sep = S.stored_inputs(probe, {"test": feats}, trained["data"], tmp_path)
    models = probe.stem_models(0)
    assert [m.net.fc3.weight.dtype for m in models] == [torch.float32] * 4  # upcast from the stored float16
    for tr in sep.data["test"]:
        with torch.no_grad():
            est = S.track_waveforms(sep, models, "test", tr)
        assert est.dtype == np.float32 and est.tobytes() == trained["captured"][(0, tr["id"])].tobytes()
    scores, lines = S.score_tracks(sep, models, "test", 0)
    text = path.with_name(art["predictions"]["file"]).read_bytes()
    assert predictions_text(lines).encode() == text  # the file's lines, from the reloaded probe
    assert [get_task("separation").main_score_of(scores)] == art["probe"]["test_main_per_seed"]
    # float16 weights: the stored probe's score is the trained network's, up to rounding
    assert abs(art["probe"]["test_main_per_seed"][0] - record["scores"]["main"]) < 0.05

    by_id = {l["id"]: l for l in map(json.loads, text.decode().splitlines())}
    assert set(by_id) == {"test-000", "test-001"} and by_id["test-000"]["seed"] == 0
    assert by_id["test-001"]["sdr"]["other"] is None  # silent in the reference: left out, as the metric does
    assert by_id["test-000"]["seconds"] == 2.0 and set(by_id["test-000"]["rms"]) == set(SEPARATION_STEMS)
    for stem in SEPARATION_STEMS:  # the result's per-stem score is the mean of the tracks' (float32 weights there)
        per_track = [l["sdr"][stem] for l in by_id.values() if l["sdr"][stem] is not None]
        assert np.mean(per_track) == pytest.approx(record["scores"]["test"][f"sdr_{stem}"], abs=0.05)


def test_the_probe_file_is_plain_tensors_with_the_network_config(trained):
    obj = torch.load(trained["path"].with_name("separation@v2.probe.pt"), weights_only=True)
    assert obj["format"] == "mert-bench-probe" and obj["format_version"] == 1 and obj["kind"] == "separation"
    assert obj["task"] == {"name": "separation", "version": 2, "key": "separation@2", "type": "separation"}
    assert obj["labels"] == list(SEPARATION_STEMS) and obj["layers"] == [0]
    assert obj["features"]["window"] == "frames" and obj["features"]["pooling"] is None
    assert obj["representation"]["name"] == MODEL and obj["train"]["source"] == trained["source"]
    assert obj["selection"] == {"layer": "0", "lr": 0.001}
    sc = obj["head"]["config"]["separation"]
    assert (sc["n_fft"], sc["hop"], sc["hidden"], sc["num_layers"], sc["wiener_iterations"]) == (2048, 320, 8, 1, 1)
    assert sc["spectral_input"] is True and sc["joint"] is False
    spectral = obj["head"]["state"]["spectral"]
    assert spectral["mean"].dtype == torch.float32 and tuple(spectral["inv"].shape) == (1025,)
    assert tuple(obj["standardizer"]["mean"].shape) == (1, 60)
    (seed,) = obj["seeds"]
    assert seed["seed"] == 0 and seed["epochs_run"] == {s: 2 for s in SEPARATION_STEMS}
    assert [(m["name"], m["stems"]) for m in seed["models"]] == [(s, [s]) for s in SEPARATION_STEMS]
    state = seed["models"][0]["state"]
    assert state["fc3.weight"].dtype == state["lstm.weight_hh_l0"].dtype == state["output_mean"].dtype == torch.float16
    assert state["bn3.running_var"].dtype == state["mix"].dtype == torch.float32  # statistics and mixing: float32
    assert state["bn3.num_batches_tracked"].dtype == torch.int64


def _predict(trained, inputs, out, *extra) -> int:
    return main(["predict", "--task", "separation", "--model", MODEL, "--train-source", trained["source"],
                 "--results-dir", str(trained["root"] / "results"), "--out", str(out), "--quiet", *extra,
                 *map(str, inputs)])


def test_predict_writes_a_wav_per_stem_of_the_inputs_length(trained, tmp_path, monkeypatch, capsys):
    mix, _ = stem_mix(3.3, np.random.default_rng(42))
    sf.write(tmp_path / "song.wav", mix, SR, subtype="FLOAT")
    test_mix = trained["data"] / "test-000" / "mixture.wav"
    monkeypatch.setattr(S, "EVAL_CHUNK_FRAMES", 64)  # several network calls per track, the LSTM state carried
    assert _predict(trained, [tmp_path / "song.wav", test_mix], tmp_path / "out") == 0
    assert "4 stems (vocals, drums, bass, other) in " in capsys.readouterr().out
    out = json.loads((tmp_path / "out" / "song.separation.json").read_text())
    assert out["task"] == "separation@2" and out["seeds"] == [0] and out["sample_rate"] == SR
    assert out["samples"] == len(mix) and "mean of the seeds' stem magnitude" in out["ensemble"]
    assert sorted(p.name for p in (tmp_path / "out" / "song.separation").iterdir()) == sorted(
        f"{s}.wav" for s in SEPARATION_STEMS)
    for stem in SEPARATION_STEMS:
        wav, sr = sf.read(out["prediction"][stem], dtype="float32")
        assert sr == SR and wav.shape == mix.shape
        # the residual Wiener filter: each stem is a gain in [0, 1] on the mixture's STFT and the rest of the
        # mixture its complement, so stem and residual together hold no more energy than the mixture
        e_stem, e_rest = float(np.sum(wav.astype(np.float64) ** 2)), float(np.sum((mix - wav).astype(np.float64) ** 2))
        assert e_stem + e_rest <= 1.01 * float(np.sum(mix.astype(np.float64) ** 2))
        assert out["stems"][stem]["rms"] == pytest.approx(np.sqrt(e_stem / len(wav)), rel=1e-5)
    # a test track: one seed, so the stored probe's own estimates (in the run, whole-track network calls)
    ref = trained["captured"][(0, "test-000")]
    got = np.stack([sf.read(tmp_path / "out" / "mixture.separation" / f"{s}.wav", dtype="float32")[0]
                    for s in SEPARATION_STEMS])
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_evaluate_scores_another_folder_without_training_and_keeps_the_training_result(trained, tmp_path,
                                                                                      monkeypatch):
    import benchmark.pipeline as pipeline

    def no(*a, **k):
        raise AssertionError("evaluate must not train a probe")

    for name in ("run_separation", "_train_seed", "_train_stem_model", "_train_epoch"):
        monkeypatch.setattr(S, name, no)
    monkeypatch.setattr(pipeline, "run_probes", no)
    other = make_separation_folder(tmp_path / "other-stems", {"test": 2}, seed=7, seconds=1.5)
    train_dir = trained["root"] / "results" / "runs" / trained["source"]
    before = {p: p.read_bytes() for p in sorted(train_dir.rglob("*")) if p.is_file()}
    assert main(["evaluate", "--task", "separation", "--model", MODEL, "--train-source", trained["source"], "--data",
                 "prepared", "--data-dir", str(other), "--results-dir", str(trained["root"] / "results"),
                 "--cache-dir", str(trained["root"] / "cache"), "--no-progress", "--quiet", "--no-leaderboard"]) == 0
    assert {p: p.read_bytes() for p in sorted(train_dir.rglob("*")) if p.is_file()} == before  # byte-identical

    (path,) = (trained["root"] / "results" / "runs").glob(f"train={trained['source']}+test=*/*/separation@v2.json")
    r = json.loads(path.read_text())
    assert r["evaluation"]["trained"] is False and r["probe"]["members"] == 0 and r["seeds"] == [0]
    assert r["data"]["counts"] == {"test": 2} and r["layers"][0]["epochs_run"] == [2]
    assert set(r["scores"]["test"]) == {"main"} | {f"{m}_{s}" for m in ("sdr", "bss_sdr") for s in SEPARATION_STEMS}
    assert r["scores"]["train_test_main"] == trained["record"]["scores"]["main"]
    lines = [json.loads(l) for l in path.with_name("separation@v2.predictions.jsonl").read_text().splitlines()]
    assert [l["id"] for l in lines] == ["test-000", "test-001"]
    for stem in SEPARATION_STEMS:
        assert np.mean([l["sdr"][stem] for l in lines]) == pytest.approx(r["scores"]["test"][f"sdr_{stem}"],
                                                                          abs=1e-5)


def test_a_damaged_or_missing_probe_is_an_error_naming_it(trained, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(trained["root"] / "results" / "runs" / trained["source"], results / "runs" / trained["source"])
    (result,) = (results / "runs" / trained["source"]).glob("*/separation@v2.json")
    probe_file = result.with_name("separation@v2.probe.pt")
    args = ["predict", "--task", "separation", "--model", MODEL, "--train-source", trained["source"],
            "--results-dir", str(results), "--out", str(tmp_path / "out"), "--quiet",
            str(trained["data"] / "test-000" / "mixture.wav")]

    good = probe_file.read_bytes()
    obj = torch.load(probe_file, weights_only=True)
    del obj["seeds"][0]["models"][1]["state"]["fc3.weight"]  # a network without one of its weights
    with pytest.raises(ProbeError, match="x.probe.pt: damaged probe file .*'drums'"):
        TrainedProbe.from_bytes(_saved(obj), "x.probe.pt")
    obj = torch.load(probe_file, weights_only=True)
    obj["seeds"][0]["models"] = obj["seeds"][0]["models"][:3]  # a stem that no network estimates
    with pytest.raises(ProbeError, match="x.probe.pt: damaged probe file .*not every stem"):
        TrainedProbe.from_bytes(_saved(obj), "x.probe.pt")
    with pytest.raises(ProbeError, match="x.probe.pt: not a readable probe file"):
        TrainedProbe.from_bytes(good[: len(good) // 2], "x.probe.pt")

    probe_file.write_bytes(good[:-10] + b"0123456789")  # cut short or replaced by another run
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{probe_file} does not match its result" in err and "--task separation" in err
    probe_file.unlink()
    assert main(args) == 2
    assert f"{probe_file}: missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _saved(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
