"""Representations from the ecosystem (benchmark/external.py): ``hear:MODULE`` and ``hf:REPO_OR_PATH``.

A small HEAR 2021 module is written into a temporary folder by the tests (its embeddings depend on the whole
input, so padding would show); tiny random wav2vec2 / HuBERT / WavLM / data2vec-audio models are saved by
the tests with transformers. No network: hub ids only go through the offline cache (conftest sets
HF_HUB_OFFLINE).
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.registry import ModelError, load_representation

# ------------------------------------------------------------------ a HEAR 2021 module, written by the tests
HEAR_MODULE = '''
"""A tiny HEAR 2021 module: centred 25 ms frames every HOP_MS, a linear map of each frame after scaling the
whole sound to unit RMS (so zero padding would change every embedding)."""
import torch

SR = 16000
HOP_MS = 10.0
OFFSET_MS = 0.0
IRREGULAR = False
WIN = 400


class Model(torch.nn.Module):
    sample_rate = SR
    timestamp_embedding_size = 8
    scene_embedding_size = 8

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = torch.nn.Parameter(torch.randn(WIN, 8, generator=g) / 20)


def load_model(model_file_path=""):
    model = Model()
    if model_file_path:
        model.load_state_dict(torch.load(model_file_path))
    return model


def get_timestamp_embeddings(audio, model):
    hop = int(SR * HOP_MS / 1000)
    x = audio / audio.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-8)
    x = torch.nn.functional.pad(x, (WIN // 2, WIN // 2))
    frames = x.unfold(1, WIN, hop)                         # [n, T, WIN]
    emb = torch.tanh(frames @ model.proj)
    t = OFFSET_MS + torch.arange(emb.shape[1], dtype=torch.float64) * HOP_MS
    if IRREGULAR:
        t = t + (torch.arange(emb.shape[1]) % 2) * HOP_MS / 3
    return emb, t.expand(audio.shape[0], -1)


def get_scene_embeddings(audio, model):
    emb, _ = get_timestamp_embeddings(audio, model)
    return emb.mean(1)
'''


def _write_module(folder: Path, name: str, **consts) -> None:
    text = HEAR_MODULE
    for k, v in consts.items():
        text = text.replace(f"\n{k} = ", f"\n{k} = {v!r}  # was ", 1)
    (folder / f"{name}.py").write_text(text)


@pytest.fixture(scope="module")
def hear_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hear")
    _write_module(d, "tiny_hear")
    _write_module(d, "tiny_hear_offset", SR=8000, HOP_MS=20.0, OFFSET_MS=12.5)
    _write_module(d, "tiny_hear_irregular", IRREGULAR=True)
    (d / "not_hear.py").write_text("def load_model(model_file_path=''):\n    return None\n")
    text = (d / "tiny_hear.py").read_text()  # a module whose load_model requires the weights file
    (d / "tiny_hear_needs_file.py").write_text(text.replace('def load_model(model_file_path=""):',
                                                            "def load_model(model_file_path):"))
    sys.path.insert(0, str(d))
    importlib.invalidate_caches()
    yield d
    sys.path.remove(str(d))
    for m in ("tiny_hear", "tiny_hear_offset", "tiny_hear_irregular", "tiny_hear_needs_file", "not_hear"):
        sys.modules.pop(m, None)


def _batch(clips):
    lengths = torch.tensor([len(c) for c in clips])
    wav = torch.zeros(len(clips), int(lengths.max()))
    for b, c in enumerate(clips):
        wav[b, : len(c)] = c
    return wav, lengths


def _clips(seed, lengths):
    g = torch.Generator().manual_seed(seed)
    return [0.3 * torch.randn(n, generator=g) for n in lengths]


def test_hear_module_is_a_one_layer_representation(hear_dir):
    import tiny_hear

    rep = load_representation("hear:tiny_hear")
    assert (rep.name, rep.num_layers, rep.dim, rep.sample_rate) == ("hear:tiny_hear", 1, 8, 16000)
    assert rep.frame_rate == pytest.approx(100.0) and rep.frame_offset_s == 0.0
    assert len(rep.identity()) == 16 and rep.identity() == load_representation("hear:tiny_hear").identity()

    lengths = [16000, 7040, 7040, 3000]  # two clips of one length share a call; the others run alone
    clips = _clips(0, lengths)
    layers, flen = rep(*_batch(clips))
    assert len(layers) == 1 and layers[0].shape == (4, 16000 // 160 + 1, 8)
    assert flen.tolist() == [n // 160 + 1 for n in lengths]
    model = tiny_hear.load_model()
    for b, c in enumerate(clips):  # each clip's frames are what the module gives that clip alone
        alone, ts = tiny_hear.get_timestamp_embeddings(c[None], model)
        assert torch.allclose(layers[0][b, : flen[b]], alone[0], atol=1e-6)
        assert float(layers[0][b, flen[b]:].abs().sum()) == 0.0
    # padding would have changed the embeddings of the short clips (the module scales by the sound's RMS)
    padded, _ = tiny_hear.get_timestamp_embeddings(_batch(clips)[0], model)
    assert not torch.allclose(padded[3, : flen[3]], layers[0][3, : flen[3]], atol=1e-3)


def test_hear_frame_rate_offset_weights_and_errors(hear_dir, tmp_path):
    rep = load_representation("hear:tiny_hear_offset")
    assert rep.sample_rate == 8000 and rep.frame_rate == pytest.approx(50.0)
    assert rep.frame_offset_s == pytest.approx(0.0125)

    import tiny_hear

    m = tiny_hear.load_model()
    with torch.no_grad():
        m.proj.mul_(2)
    torch.save(m.state_dict(), tmp_path / "w.pt")
    other = load_representation(f"hear:tiny_hear:{tmp_path / 'w.pt'}")
    base = load_representation("hear:tiny_hear")
    assert other.identity() != base.identity()  # the weights file is part of the identity
    x = _batch(_clips(1, [4000]))
    assert not torch.allclose(other(*x)[0][0], base(*x)[0][0])

    assert load_representation(f"hear:tiny_hear_needs_file:{tmp_path / 'w.pt'}").identity() != \
        other.identity()  # another module, same weights
    with pytest.raises(ModelError, match="needs a weights file"):
        load_representation("hear:tiny_hear_needs_file")
    with pytest.raises(ModelError, match="not evenly spaced"):
        load_representation("hear:tiny_hear_irregular")
    with pytest.raises(ModelError, match="lacks get_timestamp_embeddings, get_scene_embeddings"):
        load_representation("hear:not_hear")
    with pytest.raises(ModelError, match="cannot import module 'no_such_hear_module'"):
        load_representation("hear:no_such_hear_module")
    with pytest.raises(ModelError, match="does not exist"):
        load_representation(f"hear:tiny_hear:{tmp_path / 'missing.pt'}")


# ------------------------------------------------------------------ Hugging Face encoders, tiny random models
SMALL = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
HF_MODELS = {
    # name: (config class, model class, config extras, feature extractor kwargs or None, expected batching)
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", dict(feat_extract_norm="layer", do_stable_layer_norm=True),
                 dict(sampling_rate=16000, do_normalize=True, return_attention_mask=True), "masked"),
    "hubert": ("HubertConfig", "HubertModel", dict(feat_extract_norm="group"), None, "per-length"),
    "wavlm": ("WavLMConfig", "WavLMModel", dict(feat_extract_norm="layer", num_buckets=32, max_bucket_distance=80,
                                                conv_stride=(5, 2, 2, 2, 2, 2, 1)),
              dict(sampling_rate=8000, do_normalize=False), "masked"),
    "data2vec": ("Data2VecAudioConfig", "Data2VecAudioModel", dict(num_conv_pos_embeddings=5),
                 dict(sampling_rate=16000, do_normalize=True), "per-length"),
}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("hf")
    for name, (cfg_cls, model_cls, extra, fe, _) in HF_MODELS.items():
        torch.manual_seed(0)
        cfg = getattr(transformers, cfg_cls)(**{**SMALL, **extra})
        model = getattr(transformers, model_cls)(cfg)
        model.save_pretrained(d / name)
        if fe is not None:
            transformers.Wav2Vec2FeatureExtractor(**fe).save_pretrained(d / name)
    return d


@pytest.mark.parametrize("name", list(HF_MODELS))
def test_hf_encoder_layers_frames_padding_and_direct_call(hf_dir, name):
    import transformers

    _, model_cls, _, fe_kw, batching = HF_MODELS[name]
    rep = load_representation(f"hf:{hf_dir / name}")
    model = getattr(transformers, model_cls).from_pretrained(hf_dir / name).eval()
    cfg = model.config
    sr = (fe_kw or {}).get("sampling_rate", 16000)
    stride = int(np.prod(cfg.conv_stride))
    assert type(rep.model).__name__ == model_cls and rep.batching == batching
    assert (rep.num_layers, rep.dim, rep.sample_rate) == (cfg.num_hidden_layers + 1, 16, sr)
    assert rep.frame_rate == pytest.approx(sr / stride)

    lengths = [sr, int(0.61 * sr), int(0.61 * sr), int(0.37 * sr), 300]  # the last is shorter than one frame
    clips = _clips(2, lengths)
    layers, flen = rep(*_batch(clips))
    expect = [max(int(model._get_feat_extract_output_lengths(torch.tensor(n))), 0) if n >= 400 else 0
              for n in lengths]
    assert flen.tolist() == expect and expect[-1] == 0 and expect[0] == rep.num_frames(sr)
    assert len(layers) == rep.num_layers and all(h.shape == (5, max(expect), 16) for h in layers)

    fe = transformers.Wav2Vec2FeatureExtractor(**(fe_kw or {}))
    for b, c in enumerate(clips[:-1]):
        alone, alone_len = rep(c[None], torch.tensor([len(c)]))  # one clip, no padding
        assert alone_len.tolist() == [expect[b]]
        x = fe(c.numpy(), sampling_rate=sr, return_tensors="pt").input_values
        with torch.no_grad():
            direct = model(x, output_hidden_states=True).hidden_states
        assert len(direct) == rep.num_layers
        for h, a, d in zip(layers, alone, direct):
            assert d.shape[1] == expect[b]
            assert torch.allclose(h[b, : expect[b]], a[0], atol=1e-5)   # padded batch == per clip
            assert torch.allclose(a[0], d[0], atol=1e-4)                 # == the transformers model itself
            assert float(h[b, expect[b]:].abs().sum()) == 0.0


def test_hf_identity_follows_the_weights(hf_dir, tmp_path):
    import transformers

    a = load_representation(f"hf:{hf_dir / 'hubert'}")
    assert a.identity() == load_representation(f"hf:{hf_dir / 'hubert'}").identity()
    model = transformers.HubertModel.from_pretrained(hf_dir / "hubert")
    with torch.no_grad():
        model.encoder.layers[0].attention.q_proj.weight.add_(1e-3)
    model.save_pretrained(tmp_path / "changed")
    assert load_representation(f"hf:{tmp_path / 'changed'}").identity() != a.identity()
    assert a.identity() != load_representation(f"hf:{hf_dir / 'wav2vec2'}").identity()
    model.half().save_pretrained(tmp_path / "half")  # a float16 checkpoint runs in float32 on the CPU
    half = load_representation(f"hf:{tmp_path / 'half'}")
    assert next(half.model.parameters()).dtype == torch.float32
    layers, n = half(*_batch(_clips(3, [8000])))
    assert n.tolist() == [24] and torch.isfinite(layers[-1]).all()


def test_hf_errors(hf_dir, tmp_path, monkeypatch):
    # a hub id that is not in the offline cache: a clear error, no network (HF_HUB_OFFLINE is set)
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        load_representation("hf:nobody-here/no-such-model")
    (tmp_path / "mert").mkdir()
    (tmp_path / "mert" / "config.json").write_text(json.dumps({"model_type": "mert_model"}))
    with pytest.raises(ModelError, match="MERT checkpoint"):
        load_representation(f"hf:{tmp_path / 'mert'}")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if transformers were not installed
    with pytest.raises(ModelError, match="pip install transformers"):
        load_representation(f"hf:{hf_dir / 'wavlm'}")


# ------------------------------------------------------------------ list-models and end to end
def test_list_models_shows_shapes(capsys):
    from benchmark.__main__ import main

    assert main(["list-models"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["name"][:6] == ["name", "kind", "sample_rate", "frame_rate", "layers", "dim"]
    assert rows["mert-v1-95m"][2:6] == ["24000", "75", "13", "768"]
    assert rows["mert-v0"][2:6] == ["16000", "50", "13", "768"]
    assert rows["mfcc"][2:6] == ["24000", "75", "1", "60"]
    assert rows["random:debug"][2:6] == ["24000", "75", "3", "32"]
    assert {"hear:MODULE", "hf:REPO_OR_PATH", "pkg.module:factory"} <= set(rows)
    assert rows["hear:MODULE"][1] == "hear" and "own" in " ".join(rows["hf:REPO_OR_PATH"])


FAST = """
probe:
  max_epochs: 2
  patience: 1
"""


@pytest.fixture(scope="module")
def small_home(tmp_path_factory):
    import tasks.embedded as emb

    home = tmp_path_factory.mktemp("home")
    for t in ("beat", "genre"):
        emb.prepare(t, "tiny", home=home, progress=False)
    return home


@pytest.mark.parametrize("model", ["hear:tiny_hear", "hf"])
def test_benchmark_run_end_to_end(hear_dir, hf_dir, small_home, tmp_path, model):
    """`benchmark run` on the tiny beat (frames) and genre (clips) tasks: the representation's own sample
    rate and frame rate reach the result, the cached frame features have the model's frame counts."""
    from benchmark.__main__ import main
    from mert.audio import read_audio
    from tasks import embedded as emb
    from tasks.format import read_split, resolve

    if model == "hf":
        model = f"hf:{hf_dir / 'wavlm'}"  # 8 kHz, 50 frames/s
    (tmp_path / "fast.yaml").write_text(FAST)
    args = ["--model", model, "--task", "beat,genre", "--size", "tiny", "--data-dir", str(small_home),
            "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--grid", "fast",
            "--config", str(tmp_path / "fast.yaml"), "--limit", "3", "--no-progress", "--quiet", "--no-leaderboard"]
    assert main(["run", *args]) == 0
    rep = load_representation(model)
    runs = {p.name: json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("**/*.json")}
    assert set(runs) == {"beat@v2.json", "genre@v1.json"}
    for r in runs.values():
        got = r["representation"]
        assert (got["name"], got["num_layers"], got["dim"], got["sample_rate"]) == \
            (model, rep.num_layers, rep.dim, rep.sample_rate)
        assert got["frame_rate"] == pytest.approx(rep.frame_rate) and got["identity"] == rep.identity()
        assert np.isfinite(r["scores"]["main"]) and r["timings"]["model_calls"] > 0

    # the beat features: one row per model frame, exactly the frames the model gives each (resampled) item
    folder = emb.prepare("beat", "tiny", home=small_home, progress=False)
    recipes = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "beat").glob("*/recipe.json")]
    test_dir = next(p.parent for p, r in zip((tmp_path / "cache" / "beat").glob("*/recipe.json"), recipes)
                    if r["split"] == "test")
    from benchmark.features import read_shard, select_items

    items = select_items(read_split(folder, "test"), 3)
    z = read_shard(test_dir / "shard-00000.npz", 0, test_dir.name.rsplit("-", 1)[-1], items, frames=True)
    owner, x = z["owner"], z["x"][z["order"]]  # the file's rows in item order
    for i, it in enumerate(items):
        wav = torch.from_numpy(read_audio(resolve(folder, it.audio), rep.sample_rate, it.start, it.end).copy())
        layers, flen = rep(wav[None], torch.tensor([len(wav)]))
        assert int((owner == i).sum()) == int(flen[0])
        np.testing.assert_allclose(x[owner == i][:, -1].astype(np.float32),
                                   layers[-1][0, : flen[0]].numpy(), atol=2e-3, rtol=2e-3)

    # extracting again finds every shard cached: nothing is rewritten
    shards = {q: q.stat().st_mtime_ns for q in (tmp_path / "cache").glob("*/*/shard-*.npz")}
    assert len(shards) == 6
    assert main(["extract", "--model", model, "--task", "beat,genre", "--size", "tiny", "--data-dir",
                 str(small_home), "--cache-dir", str(tmp_path / "cache"), "--limit", "3", "--no-progress",
                 "--quiet"]) == 0
    assert {q: q.stat().st_mtime_ns for q in (tmp_path / "cache").glob("*/*/shard-*.npz")} == shards


def test_frame_times_include_the_models_first_timestamp(hear_dir, small_home, tmp_path):
    """Beat frames of a HEAR module whose first timestamp is 12.5 ms sit at 12.5 ms + k / rate (the probe's
    beat times come from these), not at k / rate."""
    from benchmark.__main__ import main

    model = "hear:tiny_hear_offset"
    assert main(["extract", "--model", model, "--task", "beat", "--size", "tiny", "--data-dir", str(small_home),
                 "--cache-dir", str(tmp_path / "cache"), "--limit", "1", "--no-progress", "--quiet"]) == 0
    rep = load_representation(model)
    shards = list((tmp_path / "cache" / "beat").glob("*/shard-00000.npz"))
    assert shards
    for s in shards:
        with np.load(s) as z:
            t = z["times"][z["owner"] == 0]
        assert t[0] == pytest.approx(0.0125, abs=1e-6)
        np.testing.assert_allclose(np.diff(t), 1 / rep.frame_rate, atol=1e-4)  # stored as float32
