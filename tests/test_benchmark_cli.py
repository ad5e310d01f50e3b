"""The command line: instant help and listing, config layering and errors, model resolution."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.__main__ import main
from benchmark.config import ConfigError, resolve_config
from benchmark.registry import ModelError, load_representation
from tasks import get_task

REPO = Path(__file__).resolve().parent.parent


def test_help_and_list_tasks_do_not_import_torch():
    code = ("import sys; from benchmark.__main__ import main; main(['list-tasks', '--format', 'csv']); "
            "import contextlib, io\nwith contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):"
            " main(['run', '--help'])\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "name,dataset,type,metrics,main_score,window,version"
    from tasks import all_tasks

    assert len(lines) == 1 + len(all_tasks()) + 1 and lines[-1] == "NO-TORCH"
    assert any(l.startswith("key,GiantSteps,key,weighted_key accuracy,weighted_key,") for l in lines)


def test_config_layers_and_unknown_keys(tmp_path):
    spec = get_task("beat")
    cfg = resolve_config(spec)
    assert cfg.probe.max_epochs == 60  # beat's task-type default over the global 100
    f = tmp_path / "c.yaml"
    f.write_text("probe:\n  max_epochs: 7\n  patience: 1\n")
    cfg = resolve_config(spec, {"features": {"batch_seconds": 10.0}}, "fast", str(f), ["probe.patience=4"])
    assert (cfg.probe.max_epochs, cfg.probe.patience, cfg.features.batch_seconds) == (7, 4, 10.0)
    assert list(cfg.probe.lrs) == [1e-3, 5e-3]  # the fast grid
    with pytest.raises(ConfigError, match=r"unknown config key 'probe.max_epoch'.*probe.max_epochs"):
        resolve_config(spec, overrides=["probe.max_epoch=3"])
    f.write_text("probes:\n  hidden: 3\n")
    with pytest.raises(ConfigError, match=r"'probes'.*--config"):
        resolve_config(spec, config_file=str(f))


def test_data_source_layer_sizes_the_separation_probe():
    spec = get_task("separation")
    real = resolve_config(spec, data="real").separation
    assert (real.hidden, real.num_layers) == (512, 3)  # MARBLE's LSTM on real MUSDB18
    emb = resolve_config(spec, data="embedded").separation
    assert (emb.hidden, emb.num_layers, emb.max_epochs) == (128, 2, 20)  # 10 minutes of training audio
    # the layers after it still win: the model, the grid, --config and the command line
    cfg = resolve_config(spec, {"separation": {"hidden": 64}}, overrides=["separation.num_layers=3"],
                         data="embedded").separation
    assert (cfg.hidden, cfg.num_layers) == (64, 3)
    # and per task type: 3 probe seeds for the embedded clip tasks (small test sets), one for beat and for real
    # data; the command line still wins
    for name in ("key", "genre", "emotion", "tagging", "mtg-top50"):
        assert resolve_config(get_task(name), data="embedded").probe.seeds == 3, name
        assert resolve_config(get_task(name), data="real").probe.seeds == 1, name
        assert resolve_config(get_task(name), data="embedded", overrides=["probe.seeds=1"]).probe.seeds == 1
    for name in ("beat", "separation"):
        assert resolve_config(get_task(name), data="embedded").probe.seeds == 1, name
    emb_key = resolve_config(get_task("key"), data="embedded").probe
    assert {**emb_key, "seeds": 1} == {**resolve_config(get_task("key")).probe}  # nothing else changes


def test_model_names_did_you_mean_and_user_factory(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="did you mean 'mfcc'"):
        load_representation("mfc")
    (tmp_path / "mymodels.py").write_text(
        "from benchmark.representations import Chroma\n"
        "def factory():\n    r = Chroma()\n    r.name = 'my-chroma'\n    return r\n"
        "def broken():\n    return object()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rep = load_representation("mymodels:factory")
    assert rep.name == "my-chroma" and rep.num_layers == 1
    with pytest.raises(ModelError, match="lacks"):
        load_representation("mymodels:broken")
    rep = load_representation("random:debug")
    assert rep.num_layers == 3 and rep.identity() == load_representation("random:debug").identity()
    # the init seed: 0 unless random:PRESET:SEED names another; each seed is its own network
    assert load_representation("random:debug:0").identity() == rep.identity()
    other = load_representation("random:debug:1")
    assert other.name == "random:debug:1" and other.identity() != rep.identity()
    assert other.identity() == load_representation("random:debug:1").identity()
    with pytest.raises(ModelError, match="init seed .* non-negative integer, got 'x'"):
        load_representation("random:debug:x")


def _small_genre_run(tmp_path) -> list[str]:
    """`run` arguments (less --model) for a 10/4/4-item synthetic genre folder, results under tmp_path/r."""
    from benchmark.synthetic import make_prepared

    data = make_prepared(get_task("genre"), tmp_path / "genre", n={"train": 10, "valid": 4, "test": 4}, seconds=1.0)
    return ["--task", "genre", "--data", "prepared", "--data-dir", str(data), "--results-dir", str(tmp_path / "r"),
            "--cache-dir", str(tmp_path / "c"), "--grid", "fast", "--no-progress", "--quiet", "probe.max_epochs=2"]


def test_pooling_suffix_gets_its_own_result_and_row(tmp_path, capsys):
    import csv
    import json

    base = _small_genre_run(tmp_path)
    for model in ("mfcc", "mfcc+mean"):
        assert main(["run", "--model", model, *base]) == 0
    runs = {p.parent.name.split("@")[0]: json.loads(p.read_text()) for p in (tmp_path / "r").glob("runs/*/*/*.json")}
    assert sorted(runs) == ["mfcc", "mfcc+mean"]
    assert runs["mfcc"]["representation"]["pooling"] == "mean_std"
    assert runs["mfcc+mean"]["representation"]["pooling"] == "mean"
    assert runs["mfcc+mean"]["representation"]["identity"] == runs["mfcc"]["representation"]["identity"]
    rows = list(csv.DictReader((tmp_path / "r" / "leaderboard.csv").open()))
    assert sorted(r["representation"] for r in rows) == ["mfcc", "mfcc+mean"]
    assert main(["run", "--model", "mfcc+meanstd", *base]) == 2
    assert "did you mean 'mfcc+mean_std'" in capsys.readouterr().err


def test_rerun_ignores_config_sections_the_task_does_not_read(tmp_path):
    base = ["run", "--model", "mfcc", *_small_genre_run(tmp_path)]
    assert main(base) == 0
    (result,) = (tmp_path / "r").glob("runs/*/*/genre@v1.json")
    mtime = result.stat().st_mtime_ns
    assert main([*base, "separation.hidden=64", "beat.tightness=50"]) == 0  # genre reads neither: kept
    assert result.stat().st_mtime_ns == mtime
    assert main([*base, "probe.patience=1"]) == 0  # a key genre reads: run again
    assert result.stat().st_mtime_ns != mtime


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--task", "kye", "--data", "prepared", "--data-dir", str(tmp_path)]) == 2
    assert "did you mean 'key'" in capsys.readouterr().err
    assert main(["run", "--task", "key", "--data", "prepared", "--data-dir", str(tmp_path)]) == 2
    assert "meta.json missing" in capsys.readouterr().err
    assert main(["run", "--task", "key", "--data", "prepared", "--data-dir", str(tmp_path), "probe.nope=1"]) == 2
    assert "unknown config key 'probe.nope'" in capsys.readouterr().err


def test_prepare_with_a_data_dir_means_the_real_dataset(tmp_path, capsys, monkeypatch):
    """`prepare --task genre --data-dir DIR` reads the real GTZAN layout in DIR (no embedded build there)."""
    monkeypatch.setenv("MERT_BENCH_HOME", str(tmp_path / "home"))
    data = tmp_path / "gtzan"
    data.mkdir()
    rc = main(["prepare", "--task", "genre", "--data-dir", str(data), "--no-download"])
    out = capsys.readouterr()
    assert rc != 0
    assert "GTZAN" in out.err + out.out and "train_filtered.txt" in out.err + out.out
    assert not (data / "embedded").exists() and not (tmp_path / "home" / "embedded").exists()


def test_mock_run_exercises_each_task_type_end_to_end(tmp_path, capsys, monkeypatch):
    """`mock-run`: synthetic folders, the whole pipeline, one result per task (kept with --keep)."""
    import json

    monkeypatch.setenv("MERT_BENCH_HOME", str(tmp_path / "home"))
    assert main(["mock-run", "--task", "genre,beat,separation,emotion", "--keep", str(tmp_path / "m"), "--quiet"]) == 0
    out = capsys.readouterr().out
    runs = [json.loads(p.read_text()) for p in (tmp_path / "m" / "results" / "runs").glob("**/*.json")]
    assert sorted(r["task"]["name"] for r in runs) == ["beat", "emotion", "genre", "separation"]
    assert all(r["data"]["source"].startswith("prepared-") for r in runs) and "kept in" in out
