"""Checkpoint loading/saving: HF layout round trips (both ways), key styles, loud failures, hub cache, info."""
from __future__ import annotations

import json
import os

import pytest
import torch

from mert import build_model, load_model, save_model
from mert.checkpoints import CheckpointError, hf_to_ours, ours_to_hf, save_checkpoint


def _wav(b=2, t=9000, seed=0):
    return torch.randn(b, t, generator=torch.Generator().manual_seed(seed)) * 0.3


def _same_outputs(a, b, wav, tol=1e-5):
    with torch.no_grad():
        oa, ob = a.eval()(wav), b.eval()(wav)
    return max((x - y).abs().max().item() for x, y in zip(oa.hidden_states, ob.hidden_states)) <= tol


@pytest.mark.parametrize("kw", [{}, {"layer_norm_first": True}, {"feat_extract_norm": "layer", "conv_bias": True}])
def test_save_load_round_trip(tmp_path, kw):
    model = build_model("debug", seed=3, **kw)
    save_model(model, tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model_type"] == "hubert" and cfg["architectures"] == ["HubertModel"]
    assert cfg["do_stable_layer_norm"] == kw.get("layer_norm_first", False) and cfg["sample_rate"] == 24000
    loaded = load_model(tmp_path / "m")
    assert loaded.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert _same_outputs(model, loaded, _wav(), tol=0.0)


@pytest.mark.parametrize("stable", [False, True])
def test_save_then_transformers_from_pretrained(tmp_path, stable):
    transformers = pytest.importorskip("transformers")
    model = build_model("debug", seed=4, layer_norm_first=stable).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(model, tmp_path)
    hf = transformers.HubertModel.from_pretrained(tmp_path).eval()
    wav = _wav()
    with torch.no_grad():
        ours = model(wav).hidden_states
        ref = hf(wav, output_hidden_states=True)
    states = list(ref.hidden_states)
    states[-1] = ref.last_hidden_state  # transformers 5 keeps the pre-LN final norm out of hidden_states
    assert max((a - b).abs().max().item() for a, b in zip(ours, states)) < 1e-4
    # and back: HF's own save of the loaded model loads into ours identically
    hf.save_pretrained(tmp_path / "again")
    assert _same_outputs(model, load_model(tmp_path / "again"), wav, tol=1e-6)


def test_qkv_mapping_round_trip():
    model = build_model("debug", seed=0)
    sd = model.state_dict()
    hf = ours_to_hf(sd)
    assert "encoder.layers.0.attention.q_proj.weight" in hf and not any("qkv" in k for k in hf)
    back = hf_to_ours(hf)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def _hf_sd(model):
    return {k: v.clone() for k, v in ours_to_hf(model.state_dict()).items()}


def _write_folder(path, model, sd):
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(model.config.to_hf_dict()))
    save_file(sd, str(path / "model.safetensors"))


def test_weight_norm_key_styles_and_plain_weight(tmp_path):
    model = build_model("debug", seed=5)
    p = "encoder.pos_conv_embed.conv."
    old = _hf_sd(model)
    old[p + "weight_g"] = old.pop(p + "parametrizations.weight.original0")
    old[p + "weight_v"] = old.pop(p + "parametrizations.weight.original1")
    _write_folder(tmp_path / "old", model, old)
    assert _same_outputs(model, load_model(tmp_path / "old"), _wav(), tol=0.0)
    plain = _hf_sd(model)
    plain[p + "weight"] = model.encoder.pos_conv_embed.conv.weight.detach().clone()
    del plain[p + "parametrizations.weight.original0"], plain[p + "parametrizations.weight.original1"]
    _write_folder(tmp_path / "plain", model, plain)
    assert _same_outputs(model, load_model(tmp_path / "plain"), _wav(), tol=1e-5)


def test_missing_unexpected_misshaped_keys_are_named(tmp_path):
    model = build_model("debug", seed=6)
    sd = _hf_sd(model)
    del sd["encoder.layers.1.final_layer_norm.bias"]
    sd["encoder.layers.0.attention.extra.weight"] = torch.zeros(2)
    sd["feature_projection.projection.weight"] = torch.zeros(5, 5)
    _write_folder(tmp_path / "bad", model, sd)
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "bad")
    msg = str(e.value)
    assert "encoder.layers.1.final_layer_norm.bias" in msg and "missing" in msg
    assert "encoder.layers.0.attention.extra.weight" in msg and "unexpected" in msg
    assert "feature_projection.projection.weight" in msg and "(5, 5)" in msg
    sd = _hf_sd(model)
    del sd["encoder.layers.0.attention.k_proj.weight"]
    _write_folder(tmp_path / "nok", model, sd)
    with pytest.raises(CheckpointError, match="k_proj.weight"):
        load_model(tmp_path / "nok")


def test_wrapper_prefix_and_heads_are_handled(tmp_path):
    """A HubertForCTC-style file: 'hubert.' prefix stripped, the CTC head ignored; masked_spec_embed optional."""
    model = build_model("debug", seed=7)
    sd = {"hubert." + k: v for k, v in _hf_sd(model).items() if k != "masked_spec_embed"}
    sd["lm_head.weight"] = torch.zeros(10, 32)
    _write_folder(tmp_path / "ctc", model, sd)
    assert _same_outputs(model, load_model(tmp_path / "ctc"), _wav(), tol=0.0)


def test_own_checkpoint_and_config_errors(tmp_path):
    model = build_model("tiny", seed=8, layer_norm_first=True)
    save_checkpoint(model, tmp_path / "enc.pt", step=12)
    loaded = load_model(tmp_path / "enc.pt")
    assert loaded.config == model.config
    assert _same_outputs(model, loaded, _wav(1, 6000), tol=0.0)
    ckpt = torch.load(tmp_path / "enc.pt", weights_only=True)
    assert ckpt["step"] == 12
    ckpt["config"]["hidden_sise"] = 3
    torch.save(ckpt, tmp_path / "typo.pt")
    with pytest.raises(ValueError, match="hidden_sise"):
        load_model(tmp_path / "typo.pt")
    torch.save({"weights": 1}, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint we know"):
        load_model(tmp_path / "junk.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(tmp_path / "empty")


def _fake_hub_cache(cache, repo_id, folder, commit="0123456789abcdef0123456789abcdef01234567"):
    """The huggingface_hub cache layout: models--owner--name/{refs/main, snapshots/<commit>/<files>}."""
    base = cache / ("models--" + repo_id.replace("/", "--"))
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)


def test_hub_id_from_offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    model = build_model("debug", seed=9)
    save_model(model, tmp_path / "src")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "someone/MERT-test", tmp_path / "src")
    loaded = load_model("someone/MERT-test", cache_dir=str(cache))
    assert _same_outputs(model, loaded, _wav(), tol=0.0)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        load_model("someone/not-cached", cache_dir=str(cache))
    with pytest.raises(CheckpointError, match="m-a-p/MERT-v1-95M"):  # short alias -> the hub id
        load_model("mert-v1-95m", cache_dir=str(cache))


def test_mert_mini_ships_in_the_package():
    """The pretrained mert-mini is inside the package (under 30 MB), has the mert-mini preset's shape, loads by
    name with no network, and is the benchmark's default model."""
    import json

    import torch

    from benchmark.registry import DEFAULT_MODEL
    from mert.checkpoints import PACKAGED
    from mert.config import get_preset

    folder = PACKAGED["mert-mini"]
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 30e6, size
    model = load_model("mert-mini")
    preset = get_preset("mert-mini")
    for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim",
              "layer_norm_first"):
        assert getattr(model.config, k) == getattr(preset, k), k
    assert model.sample_rate == 24000 and model.frame_rate == 75 and model.num_layers == 4  # + the input: 5 outputs
    prov = json.loads((folder / "pretraining.json").read_text())
    assert prov["labels"]["teacher"] == "kmeans-logmel-chroma" and prov["update"] == 1000
    assert prov["pretrain_config"]["heads"]["cqt"] is True and prov["pretrain_config"]["noise"]["prob"] > 0
    # the committed `mini` config is the one the shipped weights were trained with (scripts/pretrain_mert_mini.sh)
    from omegaconf import OmegaConf

    from mert.pretrain_config import load_config

    mini = json.loads(json.dumps(OmegaConf.to_container(load_config("mini", ["data.labels=unused"]))))
    for section in ("model", "heads", "mask", "noise", "optim"):
        assert prov["pretrain_config"][section] == mini[section], section
    assert prov["pretrain_config"]["data"]["crop_seconds"] == mini["data"]["crop_seconds"]
    assert prov["pretrain_config"]["train"]["stop_after"] == mini["train"]["stop_after"] == prov["update"]
    # trained, not the random init of the same preset
    from mert import build_model

    torch.manual_seed(0)
    rand = build_model("mert-mini")
    w = dict(model.named_parameters())
    assert any(not torch.allclose(p, w[n]) for n, p in rand.named_parameters() if n in w)
    with torch.no_grad():
        out = model(torch.randn(2, 24000) * 0.1, torch.tensor([24000, 12000]))
    assert all(torch.isfinite(h).all() for h in out.hidden_states) and out.lengths.tolist() == [74, 37]
    assert DEFAULT_MODEL == "mert-mini"


def test_not_a_source():
    with pytest.raises(CheckpointError, match="no such file"):
        load_model("./does/not/exist.pt")


def test_info_command(tmp_path, capsys):
    from mert.__main__ import main

    model = build_model("debug", seed=1)
    save_model(model, tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "parameters:      39,216" in out and "frame rate:      75 Hz" in out and "layers:          2" in out
    assert main(["info", "--json", "preset:mert-v1-95m"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 94_371_712 and info["hidden_states"] == 13 and info["frame_rate"] == 75.0
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert "no such file" in capsys.readouterr().err
