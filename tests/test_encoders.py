"""Music encoders of other packages as representations (benchmark/encoders): EnCodec, DAC, MuQ, CLAP, Dasheng.

Every adapter runs on a model its own package builds with random weights (``FAMILY:VARIANT:random``; the
``tiny`` variants are the package's architecture at a test size), and is checked against that package's own
forward: layer count, dimension, frame counts and rate, values. Clips of several lengths go through one call, so
the per-length grouping is checked against each clip alone. One tiny task
runs end to end per family through ``python -m benchmark run``. A family whose extra is not installed is skipped
with the reason (pytest.importorskip). No network: weights are never looked up on the hub here except through
the offline cache, which the tests point at an empty folder.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.registry import ModelError, load_representation

FAST = """
probe:
  max_epochs: 2
  patience: 1
"""


def _clips(sr: int, seconds: list[float], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(int(s * sr), generator=g) for s in seconds]


def _batch(clips):
    n = torch.tensor([len(c) for c in clips])
    wav = torch.zeros(len(clips), int(n.max()))
    for b, c in enumerate(clips):
        wav[b, : len(c)] = c
    return wav, n


def _check_batch_vs_alone(rep, clips, atol=1e-5):
    """A call on clips of several lengths: shapes, zeros after each clip's frames, and each clip's frames equal
    to a call on that clip alone. Returns (layers, frame counts)."""
    layers, n = rep(*_batch(clips))
    assert len(layers) == rep.num_layers and n.tolist() == [rep.num_frames(len(c)) for c in clips]
    assert all(h.shape == (len(clips), int(n.max()), rep.dim) for h in layers)
    for b, c in enumerate(clips):
        alone, k = rep(c[None], torch.tensor([len(c)]))
        assert k.tolist() == [int(n[b])]
        for h, a in zip(layers, alone):
            torch.testing.assert_close(h[b, : n[b]], a[0], atol=atol, rtol=1e-4)
            assert float(h[b, n[b]:].abs().sum()) == 0.0
    return layers, n


def _run_genre(model, tiny_home, tmp_path, monkeypatch, *extra):
    """`benchmark run --task genre` on the tiny corpus (3 items per split, one seed, the fast grid); the result."""
    from benchmark.__main__ import main

    monkeypatch.setenv("MERT_BENCH_HOME", str(tmp_path / "home"))
    (tmp_path / "fast.yaml").write_text(FAST)
    args = ["run", "--task", "genre", "--model", model, "--size", "tiny", "--data-dir", str(tiny_home),
            "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--grid", "fast",
            "--seeds", "1", "--config", str(tmp_path / "fast.yaml"), "--limit", "3", "--no-progress", "--quiet",
            "--no-leaderboard", *extra]
    assert main(args) == 0
    (path,) = (tmp_path / "results" / "runs").glob("**/genre@v*.json")
    result = json.loads(path.read_text())
    assert np.isfinite(result["scores"]["main"]) and result["timings"]["model_calls"] > 0
    return result


def _check_result(result, rep):
    got = result["representation"]
    assert (got["name"], got["num_layers"], got["dim"], got["sample_rate"]) == \
        (rep.name, rep.num_layers, rep.dim, rep.sample_rate)
    assert got["frame_rate"] == pytest.approx(rep.frame_rate) and got["identity"] == rep.identity()


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """torch hub's and Hugging Face's caches pointed at empty folders, the hub offline: no checkpoint anywhere."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


# ------------------------------------------------------------------ names, options, list-models
def test_spec_parsing_and_errors():
    from benchmark.encoders import parse_spec

    s = parse_spec("encodec:24khz:rvq:bw=12:random=3")
    assert (s.family, s.variant, s.flags, s.value("bw"), s.random, s.weights) == \
        ("encodec", "24khz", {"rvq"}, "12", 3, None)
    assert parse_spec("dasheng").variant == "base" and parse_spec("dac:random").variant == "44khz"
    assert parse_spec("dac:16khz:weights=/x:y/w.pth").weights == "/x:y/w.pth"  # the path keeps its colons
    with pytest.raises(ModelError, match="did you mean 'rvq'"):
        load_representation("encodec:24khz:rqv")
    with pytest.raises(ModelError, match="test-size architecture.*dasheng:tiny:random"):
        load_representation("dasheng:tiny")
    with pytest.raises(ModelError, match="random=SEED"):
        load_representation("muq:large:random=x")
    with pytest.raises(ModelError, match="exclude each other"):
        load_representation("clap:music:random:weights=/tmp/x.pt")
    with pytest.raises(ModelError, match="add :rvq"):
        load_representation("encodec:24khz:bw=6:random")
    with pytest.raises(ModelError, match="bw must be one of"):
        load_representation("encodec:24khz:rvq:bw=7:random")


def test_missing_extra_names_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dasheng", None)  # as if dasheng were not installed
    with pytest.raises(ModelError, match=r"pip install -e '\.\[dasheng\]'"):
        load_representation("dasheng:tiny:random")


def test_list_models_lists_the_families(capsys):
    from benchmark.__main__ import main
    from benchmark.encoders import FAMILIES, installed

    assert main(["list-models"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["name"][:7] == ["name", "kind", "sample_rate", "frame_rate", "layers", "dim", "extra"]
    assert rows["encodec:24khz"][2:7] == ["24000", "75", "1", "128", "core:yes"]
    assert rows["encodec:24khz:rvq"][2:6] == ["24000", "75", "9", "128"]
    assert rows["dac:44khz"][2:6] == ["44100", "86.1328", "1", "1024"]
    assert rows["muq:large"][2:6] == ["24000", "25", "13", "1024"]
    assert rows["clap:music"][2:6] == ["48000", "3.2", "4", "1024"]
    assert rows["dasheng:base"][2:6] == ["16000", "25", "13", "768"]
    for fam in ("dac", "muq", "clap", "dasheng"):
        assert rows[f"{fam}:tiny:random"][6] == f"{fam}:{'yes' if installed(fam) else 'no'}"
    assert rows["mfcc"][6] == "-" and set(FAMILIES) <= {r[1] for r in rows.values()}


# ------------------------------------------------------------------ EnCodec (core dependency)
def test_encodec_layers_against_the_package():
    pytest.importorskip("encodec")
    rep = load_representation("encodec:24khz:rvq:random")
    assert (rep.sample_rate, rep.frame_rate, rep.num_layers, rep.dim) == (24000, 75.0, 9, 128)
    assert rep.batching == "per-length" and rep.autocast is False
    clips = _clips(24000, [0.5, 0.61, 0.61, 1.0 / 75])
    layers, n = _check_batch_vs_alone(rep, clips, atol=1e-4)
    assert n.tolist() == [38, 46, 46, 1]
    # the package's own encode(): its codes decode (quantizer.decode) to the last layer, frame for frame
    model = rep.model
    for b, c in enumerate(clips[:2]):
        with torch.no_grad():
            (codes, scale), = model.encode(c[None, None])            # [1, K, T]
            assert scale is None and codes.shape == (1, 8, int(n[b]))
            q = model.quantizer.decode(codes.transpose(0, 1))        # [1, D, T]
            z = model.encoder(c[None, None])
        torch.testing.assert_close(layers[-1][b, : n[b]], q[0].T, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(layers[0][b, : n[b]], z[0].T, atol=1e-4, rtol=1e-4)
    assert all(float(h[0].abs().mean()) > 0 for h in layers)  # the random codebooks are not the package's zeros
    # bw picks the levels; the latent alone is one layer
    assert load_representation("encodec:24khz:rvq:bw=1.5:random").num_layers == 3
    plain = load_representation("encodec:24khz:random")
    assert plain.num_layers == 1
    torch.testing.assert_close(plain(*_batch(clips[:1]))[0][0], layers[0][:1, :38], atol=1e-4, rtol=1e-4)


def test_encodec_weights_identity_and_missing_checkpoint(tmp_path, empty_caches):
    pytest.importorskip("encodec")
    a = load_representation("encodec:24khz:random")
    assert a.identity() == load_representation("encodec:24khz:random").identity()
    assert a.identity() != load_representation("encodec:24khz:random=1").identity()
    assert a.identity() != load_representation("encodec:24khz:rvq:random").identity()
    with pytest.raises(ModelError, match=r"encodec_24khz-d7cc33bc\.th not found.*dl\.fbaipublicfiles\.com.*"
                                         r"weights=.*:random"):
        load_representation("encodec:24khz")
    torch.save(a.model.state_dict(), tmp_path / "w.th")
    b = load_representation(f"encodec:24khz:weights={tmp_path / 'w.th'}")
    assert b.identity() == a.identity()  # the same weights from a file: the same features, the same cache
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "encodec_24khz-d7cc33bc.th").write_bytes((tmp_path / "w.th").read_bytes())
    assert load_representation("encodec:24khz").identity() == a.identity()  # torch hub's cache, offline
    (tmp_path / "bad.th").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load"):
        load_representation(f"encodec:24khz:weights={tmp_path / 'bad.th'}")


def test_encodec_runs_a_task_end_to_end(tiny_home, tmp_path, monkeypatch):
    pytest.importorskip("encodec")
    result = _run_genre("encodec:24khz:rvq:bw=1.5:random", tiny_home, tmp_path, monkeypatch)
    _check_result(result, load_representation("encodec:24khz:rvq:bw=1.5:random"))


# ------------------------------------------------------------------ Dasheng
def test_dasheng_layers_against_the_package():
    pytest.importorskip("dasheng")
    rep = load_representation("dasheng:tiny:random")
    assert (rep.sample_rate, rep.frame_rate, rep.num_layers, rep.dim) == (16000, 25.0, 3, 32)
    assert rep.batching == "per-length"
    clips = _clips(16000, [11.0, 2.0, 2.0, 0.5, 0.02])  # 11 s: two of the package's 10.08 s splits
    layers, n = _check_batch_vs_alone(rep, clips)
    assert n.tolist() == [275, 50, 50, 12, 0]
    m = rep.model
    for b in (0, 3):
        with torch.no_grad():
            out = m(clips[b][None])                       # the package's forward: the last layer
            assert out.shape == (1, int(n[b]), 32)
            torch.testing.assert_close(layers[-1][b, : n[b]], out[0], atol=1e-5, rtol=1e-4)
            first = m.blocks[0](layers[0][b : b + 1, : min(int(n[b]), 252)])  # block 1 of the first split
            torch.testing.assert_close(layers[1][b, : first.shape[1]], first[0], atol=1e-5, rtol=1e-4)
    assert rep.identity() != load_representation("dasheng:tiny:random=1").identity()


def test_dasheng_checkpoints(empty_caches, monkeypatch):
    pytest.importorskip("dasheng")
    import benchmark.encoders.dasheng as D

    # a checkpoint in the package's format ({"model": state, "config": kwargs}) in torch hub's cache is read
    # offline by the package's own loader; "base" is shrunk to the tiny size so the file stays small
    tiny = load_representation("dasheng:tiny:random=2")
    ckpt = empty_caches / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save({"model": tiny.model.state_dict(), "config": {}}, ckpt / "dasheng_base.pt")
    monkeypatch.setitem(D.SIZES, "base", D.SIZES["tiny"])
    base = load_representation("dasheng:base")
    clip = _clips(16000, [1.0])
    torch.testing.assert_close(base(*_batch(clip))[0][-1], tiny(*_batch(clip))[0][-1])
    (ckpt / "dasheng_base.pt").unlink()
    with pytest.raises(ModelError, match=r"dasheng_base\.pt not found.*zenodo\.org.*dasheng:base:random"):
        load_representation("dasheng:base")
    with pytest.raises(ModelError, match="dasheng_06b.pt"):
        load_representation("dasheng:0.6b")
    (empty_caches / "bad.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match="cannot load"):
        load_representation(f"dasheng:base:weights={empty_caches / 'bad.pt'}")


def test_dasheng_runs_a_task_end_to_end(tiny_home, tmp_path, monkeypatch):
    pytest.importorskip("dasheng")
    result = _run_genre("dasheng:tiny:random", tiny_home, tmp_path, monkeypatch)
    _check_result(result, load_representation("dasheng:tiny:random"))


# ------------------------------------------------------------------ DAC
def test_dac_layers_against_the_package(tmp_path):
    pytest.importorskip("dac", reason="the .[dac] extra (then pip install --no-deps descript-audio-codec)")
    rep = load_representation("dac:tiny:rvq:random")
    assert (rep.sample_rate, rep.frame_rate, rep.num_layers, rep.dim) == (16000, 50.0, 4, 32)
    clips = _clips(16000, [1.0, 0.61, 0.61, 0.01])
    layers, n = _check_batch_vs_alone(rep, clips, atol=1e-4)
    assert n.tolist() == [50, 31, 31, 1]
    m = rep.model
    for b in (0, 1):
        with torch.no_grad():                               # the package's own encode(): z and its codes
            z, codes, *_ = m.encode(m.preprocess(clips[b][None, None], 16000))
        assert codes.shape == (1, 3, int(n[b]))
        torch.testing.assert_close(layers[-1][b, : n[b]], z[0].T, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(layers[0][b, : n[b]], m.encoder(m.preprocess(clips[b][None, None], 16000))[0].T,
                                   atol=1e-4, rtol=1e-4)
    # a checkpoint as the package writes one (DAC.save: state dict + the constructor's kwargs), read by DAC.load
    m.save(str(tmp_path / "w.pth"), package=False)
    loaded = load_representation(f"dac:16khz:rvq:weights={tmp_path / 'w.pth'}")
    assert loaded.identity() == load_representation(f"dac:16khz:rvq:weights={tmp_path / 'w.pth'}").identity()
    torch.testing.assert_close(loaded(*_batch(clips[:1]))[0][-1], layers[-1][:1])
    assert load_representation("dac:tiny:random").num_layers == 1


def test_dac_missing_checkpoint(monkeypatch, tmp_path):
    pytest.importorskip("dac", reason="the .[dac] extra (then pip install --no-deps descript-audio-codec)")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"weights_44khz_8kbps_0\.0\.1\.pth not found.*\.cache/descript/dac.*"
                                         r"github\.com/descriptinc.*dac:44khz:random"):
        load_representation("dac:44khz")


def test_dac_runs_a_task_end_to_end(tiny_home, tmp_path, monkeypatch):
    pytest.importorskip("dac", reason="the .[dac] extra (then pip install --no-deps descript-audio-codec)")
    result = _run_genre("dac:tiny:rvq:random", tiny_home, tmp_path, monkeypatch)
    _check_result(result, load_representation("dac:tiny:rvq:random"))


# ------------------------------------------------------------------ MuQ / MuQ-MuLan
def _muq_package_states(rep, x):
    """MuQ's own forward where it runs (transformers 4); on transformers 5 muq 0.1.0 fails reading the conformer's
    hidden states (the adapter's reason to collect them itself), and the package's modules are compared piecewise."""
    try:
        with torch.inference_mode():
            return list(rep.muq(x, output_hidden_states=True).hidden_states)
    except (KeyError, AttributeError):
        return None


def test_muq_layers_against_the_package():
    pytest.importorskip("muq", reason="the .[muq] extra")
    rep = load_representation("muq:tiny:random")
    assert (rep.sample_rate, rep.frame_rate, rep.num_layers, rep.dim) == (24000, 25.0, 3, 32)
    clips = _clips(24000, [1.0, 0.61, 0.61, 0.04])
    layers, n = _check_batch_vs_alone(rep, clips)
    assert n.tolist() == [25, 16, 16, 0]
    mm = rep.muq.model
    for b in (0, 1):
        x = clips[b][None]
        with torch.inference_mode():
            mel = mm.normalize(mm.preprocessing(x, features=["melspec_2048"]))["melspec_2048"]
            conv = mm.conv(mel)                                        # the conformer's input: layer 0
            last = mm.conformer(conv)["last_hidden_state"]             # the encoder's output: the last layer
        torch.testing.assert_close(layers[0][b, : n[b]], conv[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(layers[-1][b, : n[b]], last[0], atol=1e-5, rtol=1e-4)
        states = _muq_package_states(rep, x)
        if states is not None:
            assert len(states) == rep.num_layers
            for h, s in zip(layers, states):
                torch.testing.assert_close(h[b, : n[b]], s[0], atol=1e-5, rtol=1e-4)


def test_muq_mulan_tower_against_the_package():
    pytest.importorskip("muq", reason="the .[muq] extra")
    rep = load_representation("muq:tiny-mulan:random")
    assert (rep.num_layers, rep.dim, rep.frame_rate) == (3, 32, 25.0)
    clips = _clips(24000, [10.5, 3.0, 3.0])  # 10.5 s: two of MuLan's 10 s clips
    layers, n = _check_batch_vs_alone(rep, clips)
    assert n.tolist() == [263, 75, 75]
    tower = rep.tower
    tower._forward_pretrained_model = rep.hidden_states  # the package's tower forward around the same backbone
    with torch.inference_mode():
        out, inner = tower(clips[1][None], return_all_layers=True, return_mean=False)
        latent = tower(clips[1][None])                     # the tower's pooled output, as MuQ-MuLan uses it
    torch.testing.assert_close(layers[-1][1, :75], out[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(layers[1][1, :75], inner[0, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(layers[-1][1, :75].mean(0), latent[0], atol=1e-5, rtol=1e-4)
    backbone = load_representation("muq:tiny:random")
    assert backbone.identity() != rep.identity()


def test_muq_checkpoints(empty_caches):
    pytest.importorskip("muq", reason="the .[muq] extra")
    from safetensors.torch import save_file

    from benchmark.encoders.muq import tiny_config

    with pytest.raises(ModelError, match=r"config\.json of OpenMuQ/MuQ-large-msd-iter.*HF_HUB_OFFLINE.*"
                                         r"huggingface-cli download.*muq:large:random"):
        load_representation("muq:large")
    with pytest.raises(ModelError, match="OpenMuQ/MuQ-MuLan-large"):
        load_representation("muq:mulan")
    with pytest.raises(ModelError, match="backbone is an option of muq:mulan"):
        load_representation("muq:large:backbone:random")
    # a snapshot folder as the hub holds it (config.json + model.safetensors), at the tiny size
    tiny = load_representation("muq:tiny:random=1")
    snap = empty_caches / "snapshot"
    snap.mkdir()
    (snap / "config.json").write_text(json.dumps(tiny_config()))
    save_file({k: v.contiguous() for k, v in tiny.muq.state_dict().items()}, str(snap / "model.safetensors"))
    rep = load_representation(f"muq:large:weights={snap}")
    clip = _clips(24000, [1.0])
    torch.testing.assert_close(rep(*_batch(clip))[0][-1], tiny(*_batch(clip))[0][-1])
    save_file({"x": torch.zeros(1)}, str(snap / "model.safetensors"))
    with pytest.raises(ModelError, match="does not hold this model's weights"):
        load_representation(f"muq:large:weights={snap}")


def test_muq_runs_a_task_end_to_end(tiny_home, tmp_path, monkeypatch):
    pytest.importorskip("muq", reason="the .[muq] extra")
    result = _run_genre("muq:tiny:random", tiny_home, tmp_path, monkeypatch)
    _check_result(result, load_representation("muq:tiny:random"))


# ------------------------------------------------------------------ CLAP (audio branch)
def test_clap_layers_against_the_package():
    pytest.importorskip("laion_clap", reason="the .[clap] extra (then pip install --no-deps laion-clap)")
    rep = load_representation("clap:tiny:random")
    assert (rep.sample_rate, rep.frame_rate, rep.num_layers, rep.dim) == (48000, 3.2, 3, 32)
    clips = _clips(48000, [10.0, 12.0, 3.0, 0.001])
    layers, n = _check_batch_vs_alone(rep, clips)
    assert n.tolist() == [32, 39, 10, 1]
    # the package's own outputs for a 10 s window: its clip embedding is the mean of the last layer's frames, its
    # fine-grained embedding the same frames, each repeated 32 times
    out = rep.embedding(clips[0][None])
    torch.testing.assert_close(layers[-1][0, :32].mean(0), out["embedding"][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(layers[-1][0, :32], out["fine_grained_embedding"][0, ::32], atol=1e-5, rtol=1e-4)
    # a short clip is what CLAP embeds after repeat-padding it to 10 s; a long one, 10 s windows
    filled = torch.nn.functional.pad(clips[2].repeat(3), (0, 480000 - 3 * len(clips[2])))
    fine = rep.embedding(filled[None])["fine_grained_embedding"][0, ::32]
    torch.testing.assert_close(layers[-1][2, :10], fine[:10], atol=1e-5, rtol=1e-4)
    second = torch.nn.functional.pad(clips[1][480000:].repeat(5), (0, 480000 - 5 * 96000))
    fine = rep.embedding(second[None])["fine_grained_embedding"][0, ::32]
    torch.testing.assert_close(layers[-1][1, 32:39], fine[:7], atol=1e-5, rtol=1e-4)


def test_clap_checkpoints(empty_caches, monkeypatch):
    pytest.importorskip("laion_clap", reason="the .[clap] extra (then pip install --no-deps laion-clap)")
    from benchmark.encoders import clap as C

    with pytest.raises(ModelError, match=r"music_audioset_epoch_15_esc_90\.14\.pt of lukewys/laion_clap.*"
                                         r"clap:music:random"):
        load_representation("clap:music")
    # a checkpoint as LAION-CLAP saves it (DataParallel prefixes, both branches), read for its audio branch only;
    # HTSAT-tiny is shrunk to the test size so that the file stays small
    tiny = load_representation("clap:tiny:random=1")
    htsat = C.htsat_module()
    monkeypatch.setattr(htsat, "create_htsat_model", lambda cfg, **kw: htsat.HTSAT_Swin_Transformer(
        spec_size=256, patch_size=4, patch_stride=(4, 4), num_classes=527, window_size=8, config=cfg, **C.TINY))
    state = {f"module.audio_branch.{k}": v for k, v in tiny.model.state_dict().items()}
    torch.save({"epoch": 15, "state_dict": {**state, "module.text_branch.w": torch.zeros(2)}}, empty_caches / "c.pt")
    rep = load_representation(f"clap:general:weights={empty_caches / 'c.pt'}")
    clip = _clips(48000, [2.0])
    torch.testing.assert_close(rep(*_batch(clip))[0][-1], tiny(*_batch(clip))[0][-1])
    torch.save({"state_dict": {"module.text_branch.w": torch.zeros(2)}}, empty_caches / "text.pt")
    with pytest.raises(ModelError, match="no audio_branch"):
        load_representation(f"clap:general:weights={empty_caches / 'text.pt'}")


def test_clap_runs_a_task_end_to_end(tiny_home, tmp_path, monkeypatch):
    pytest.importorskip("laion_clap", reason="the .[clap] extra (then pip install --no-deps laion-clap)")
    result = _run_genre("clap:tiny:random", tiny_home, tmp_path, monkeypatch)
    _check_result(result, load_representation("clap:tiny:random"))
