"""The GPU path, checked on the CPU: ``features.precision`` (bf16 autocast) through the real extraction and probe
code, feature cache keys and config hashes that stay what they were for fp32, SDPA attention for MERT and hf:
models. Nothing here needs a GPU (CUDA answers are simulated where a test needs one)."""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.config import ConfigError, config_hash, resolve_config, to_dict
from benchmark.features import extract_split, recipe, recipe_key
from benchmark.precision import resolve_precision
from benchmark.representations import MFCC, MertRepresentation
from benchmark.synthetic import make_prepared
from tasks import get_task
from tasks.format import Item

NOOP = lambda *a, **k: None  # noqa: E731

# computed with the code before features.precision existed (commit 1baece6): fp32 must keep them. The config
# hashes were re-pinned when the beat section's defaults became MARBLE's beat protocol (issue 22): every task's
# full config holds that section (results of the other tasks stay current through benchmark.config's
# task_config_hash, which leaves out the sections a task does not read)
PINNED_RECIPE_KEY = "216f1e2149af97b5a9dca3dd"
# re-pinned with separation v2 (its section is in every full config; other tasks' results stay current through
# task_config_hash)
PINNED_HASH = {"cpu": "aa1eb68e5fbb865a", "cuda": "f149a0c593d2129c"}
IDENT = {"representation": "mert-mini", "identity": "0123456789abcdef", "task": "genre@1",
         "source": "embedded-standard", "source_version": "v1", "limit": None}


def _fake_rep():
    return SimpleNamespace(name="mert-mini", identity=lambda: "0123456789abcdef", sample_rate=24000, pooling="mean")


def _recipe(fcfg, rep=None):
    items = [Item(id=f"a{i}", audio=f"audio/a{i}.flac", target="blues") for i in range(3)]
    return recipe(rep or _fake_rep(), get_task("genre"), {"source": "embedded", "source_version": "v1"}, "train",
                  items, fcfg)


def _resolved(spec, rep=None, overrides=()):
    cfg = resolve_config(spec, overrides=list(overrides))
    cfg.features.precision = resolve_precision(cfg.features.precision, cfg.features.device, rep)
    return cfg


def _without_new_keys(d):
    """The config as results written before features.precision and probe.prune* existed hold it (with
    probe.eval_batch_rows, retired since: benchmark.config.RETIRED)."""
    return {**d, "features": {k: v for k, v in d["features"].items()
                              if k != "precision" and not (k == "window_tail" and v == "overlap")},
            "probe": {**{k: v for k, v in d["probe"].items() if not k.startswith("prune") and k not in _later(d)},
                      "eval_batch_rows": 8192}}


def _later(d):
    """The probe keys added after these results while they hold their hash-neutral value."""
    p = d["probe"]
    out = {k for k, v in (("plateau_mode", "halving"), ("weighted_layers", "all"), ("key_ensemble", "mean_logits"))
           if p.get(k) == v}
    return out | ({"plateau_threshold"} if "plateau_mode" in out else set())


@pytest.fixture
def cuda(monkeypatch):
    """Simulated CUDA: ``cuda(bf16=...)`` makes torch report a GPU with or without bfloat16 support."""
    def set_(available=True, bf16=True, name="NVIDIA H100 80GB HBM3"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: name)
    return set_


def test_precision_resolution_and_errors(cuda):
    spec = get_task("genre")
    assert resolve_config(spec).features.precision == "auto"
    assert resolve_precision("auto", "cpu") == "fp32"  # the CPU default is plain float32, as before
    assert resolve_precision("fp32", "cpu") == resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # CPU autocast does bf16 (what the tests below run)
    assert resolve_precision("bf16", "cpu", MFCC()) == "fp32"  # handcrafted baselines never autocast
    assert resolve_precision(resolve_precision("bf16", "cpu"), "cpu") == "bf16"  # idempotent
    with pytest.raises(ConfigError, match=r"features.precision='fp16'.*auto.*fp32 or bf16"):
        resolve_config(spec, overrides=["features.precision=fp16"])
    with pytest.raises(ConfigError, match=r"features.precision='half'"):
        resolve_precision("half", "cpu")

    cuda(available=True, bf16=True)
    assert resolve_precision("auto", "cuda") == resolve_precision("auto", "cuda:1") == "bf16"
    assert resolve_precision("auto", "cuda", MFCC()) == "fp32"
    assert resolve_precision("auto", "cpu") == "fp32"
    cuda(available=True, bf16=False, name="Tesla V100-SXM2-16GB")
    assert resolve_precision("auto", "cuda") == "fp32"
    with pytest.raises(ConfigError, match=r"features.precision=bf16: .*V100.* does not support bfloat16.*"
                                          r"features.precision=fp32"):
        resolve_precision("bf16", "cuda")
    cuda(available=False)
    assert resolve_precision("auto", "cuda") == "fp32"
    with pytest.raises(ConfigError, match=r"features.precision=bf16 with features.device='cuda'.*no CUDA device"):
        resolve_precision("bf16", "cuda")


def test_fp32_cache_keys_and_config_hashes_are_unchanged(cuda):
    spec = get_task("genre")
    for device in ("cpu", "cuda"):
        cuda(available=device == "cuda", bf16=False)  # a GPU without bf16: auto is fp32 there too
        cfg = _resolved(spec, overrides=[f"features.device={device}"])
        assert cfg.features.precision == "fp32"
        r = _recipe(cfg.features)
        assert "precision" not in r and recipe_key(r) == PINNED_RECIPE_KEY
        d = to_dict(cfg)
        assert d["features"]["precision"] == "fp32"
        assert config_hash({"config": d, **IDENT}) == PINNED_HASH[device]
        # ... which is the hash of the same config without the key (as results written before it exist; nor the
        # probe.prune* keys, neutral since the same way)
        old = {"config": _without_new_keys(d), **IDENT}
        assert hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16] == PINNED_HASH[device]
        assert config_hash(old) == PINNED_HASH[device]

    cuda(available=True, bf16=True)
    auto_gpu = _resolved(spec, overrides=["features.device=cuda"])
    assert auto_gpu.features.precision == "bf16"
    bf16_cpu = _resolved(spec, overrides=["features.precision=bf16"])
    for cfg, device in ((auto_gpu, "cuda"), (bf16_cpu, "cpu")):
        r = _recipe(cfg.features)
        assert r["precision"] == "bf16" and recipe_key(r) != PINNED_RECIPE_KEY
        assert config_hash({"config": to_dict(cfg), **IDENT}) != PINNED_HASH[device]
    # an unresolved config says "auto" for the cache key too: the recipe resolves the precision itself
    assert _recipe(resolve_config(spec, overrides=["features.device=cuda"]).features)["precision"] == "bf16"
    assert "precision" not in _recipe(resolve_config(spec).features)
    # handcrafted baselines: bf16 asked for, fp32 computed, the fp32 key
    mfcc = MFCC()
    mrep = SimpleNamespace(**{**vars(_fake_rep()), "autocast": False})
    assert "precision" not in _recipe(bf16_cpu.features, mrep)
    assert _resolved(spec, mfcc, ["features.precision=bf16"]).features.precision == "fp32"


@pytest.fixture(scope="module")
def genre_dir(tmp_path_factory):
    return make_prepared(get_task("genre"), tmp_path_factory.mktemp("gpu") / "genre",
                         n={"train": 6, "valid": 4, "test": 4}, seconds=1.5)


@pytest.fixture(scope="module")
def mert_rep():
    """mert-mini's shape with random weights. (Not the "debug" preset: torch 2.11's CPU conv1d in bfloat16 gives
    wrong results for its positional conv, 4 groups of 8 channels with a 16-tap kernel, cosine -0.4 to float32;
    the mert-mini and 95M shapes compute correctly.)"""
    from mert import build_model

    torch.manual_seed(0)
    return MertRepresentation(build_model("mert-mini"), "mini-random", "test")


def _fcfg(**kw):
    return resolve_config(get_task("genre"), overrides=[f"features.{k}={v}" for k, v in kw.items()]).features


def test_bf16_extraction_is_close_to_fp32_and_cached_apart(genre_dir, mert_rep, tmp_path):
    spec = get_task("genre")
    kw = dict(cache_dir=tmp_path, progress=False, log=NOOP)
    f32 = extract_split(mert_rep, spec, genre_dir, "train", _fcfg(batch_seconds=3.0), **kw)
    b16 = extract_split(mert_rep, spec, genre_dir, "train", _fcfg(batch_seconds=3.0, precision="bf16"), **kw)
    assert f32.model_calls > 0 and b16.model_calls > 0  # the bf16 run did not read the fp32 cache
    assert f32.cache_dir != b16.cache_dir
    r32 = json.loads((tmp_path / f32.cache_dir / "recipe.json").read_text())
    r16 = json.loads((tmp_path / b16.cache_dir / "recipe.json").read_text())
    assert "precision" not in r32 and r16["precision"] == "bf16"
    assert {k: v for k, v in r16.items() if k != "precision"} == r32
    assert f32.x.shape == b16.x.shape == (6, mert_rep.num_layers, mert_rep.dim)
    assert f32.x.dtype == b16.x.dtype == np.float16  # the cache format is the same
    a, b = f32.x.astype(np.float64), b16.x.astype(np.float64)
    assert np.abs(a - b).max() > 0  # autocast really ran in bf16
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))  # [items, layers]
    assert cos.min() > 0.99, cos.min(axis=0)
    # the auto default on the CPU is the fp32 entry; a rerun of either precision does no model work
    again = extract_split(mert_rep, spec, genre_dir, "train", _fcfg(batch_seconds=3.0, precision="auto"), **kw)
    assert again.model_calls == 0 and again.cache_dir == f32.cache_dir and np.array_equal(again.x, f32.x)
    again = extract_split(mert_rep, spec, genre_dir, "train", _fcfg(batch_seconds=3.0, precision="bf16"), **kw)
    assert again.model_calls == 0 and again.cache_dir == b16.cache_dir


def test_mert_attention_goes_through_sdpa(mert_rep, monkeypatch):
    import torch.nn.functional as F

    calls = []
    real = F.scaled_dot_product_attention

    def counting(q, *a, **k):
        calls.append(q.dtype)
        return real(q, *a, **k)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    wav = torch.randn(2, 24000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layers, _ = mert_rep(wav, torch.tensor([24000, 12000]))
    assert calls == [torch.bfloat16] * mert_rep.model.config.num_hidden_layers
    assert len(layers) == mert_rep.num_layers


def _problem(rng, n):
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 3, 8)).astype(np.float32)
    x[np.arange(n), 1, y] += 3.0  # only layer 1 knows the class
    items = [Item(id=str(i), audio="x.flac", target=f"c{y[i]}") for i in range(n)]
    from benchmark.features import SplitFeatures

    return SplitFeatures(split="s", x=x.astype(np.float16), owner=np.arange(n), times=None, items=items)


def test_probe_sweep_in_bf16_matches_fp32(monkeypatch):
    from benchmark import probes
    from benchmark.heads import make_head
    from benchmark.probes import summarize, train_sweep

    spec = get_task("genre")
    cfg = resolve_config(spec, overrides=["probe.lrs=[1e-2]", "probe.max_epochs=6", "probe.patience=6"])
    head = make_head(spec, ["c0", "c1", "c2"], cfg)
    rng = np.random.default_rng(0)
    data = {s: head.prepare(_problem(rng, n)) for s, n in (("train", 96), ("valid", 48), ("test", 48))}
    dtypes = []
    real_forward = probes.BatchedMLP.forward

    def spy(self, x, train):
        out = real_forward(self, x, train)
        dtypes.append((out.dtype, self.params["W1"].dtype))
        return out

    monkeypatch.setattr(probes.BatchedMLP, "forward", spy)
    res = {p: train_sweep(head, data["train"], data["valid"], data["test"], cfg.probe, [0, 1, 2], [0], precision=p)
           for p in ("fp32", "bf16")}
    assert (torch.bfloat16, torch.float32) in dtypes and (torch.float32, torch.float32) in dtypes
    s32, s16 = summarize(res["fp32"], spec), summarize(res["bf16"], spec)
    assert s16["chosen"]["layer"] in ("1", "weighted") and s16["chosen"]["test"]["main"] > 0.9
    by32 = {r["layer"]: r["test"]["main"] for r in s32["layers"]}
    by16 = {r["layer"]: r["test"]["main"] for r in s16["layers"]}
    assert by32.keys() == by16.keys() and max(abs(by32[k] - by16[k]) for k in by32) <= 0.1
    with pytest.raises(ValueError, match="precision 'auto'"):
        train_sweep(head, data["train"], data["valid"], None, cfg.probe, [0], [0], precision="auto")


def test_run_records_the_resolved_precision(genre_dir, mert_rep, tmp_path):
    """The runner: "auto" becomes "fp32" on the CPU (hash as before the key), bf16 its own hash and result."""
    from benchmark.pipeline import plan_task
    from benchmark.runner import RunOptions, run

    spec = get_task("genre")
    base = dict(model="mini-random", tasks=["genre"], data="prepared", data_dir=str(genre_dir),
                results_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"), grid="fast",
                progress=False, quiet=True, leaderboard=False)
    fp = plan_task(spec, mert_rep, RunOptions(**base))
    assert fp.cfg.features.precision == fp.cfg_d["features"]["precision"] == "fp32"
    old = {"config": _without_new_keys(fp.cfg_d), **fp.identity}
    assert fp.chash == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    opts = RunOptions(**base, overrides=["features.precision=bf16", "probe.max_epochs=2", "probe.lrs=[1e-3]",
                                         "probe.weighted_sum=false"])
    (rec,) = run(opts, rep=mert_rep)
    assert rec["config"]["features"]["precision"] == "bf16"
    assert rec["config_hash"] == plan_task(spec, mert_rep, opts).chash != fp.chash
    assert json.loads(fp.path.read_text())["config"]["features"]["precision"] == "bf16"  # same result path
    assert np.isfinite(rec["scores"]["main"])


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("hf")
    # 16 channels per positional-conv group (not 8: see mert_rep on torch's CPU bf16 conv1d)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                 feat_extract_norm="layer")
    for name, cfg_cls, model_cls, extra in (
            ("wav2vec2", "Wav2Vec2Config", "Wav2Vec2Model", {}),
            ("wavlm", "WavLMConfig", "WavLMModel", dict(num_buckets=32, max_bucket_distance=80))):
        torch.manual_seed(0)
        getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**small, **extra)).save_pretrained(d / name)
    return d


def test_hf_models_use_sdpa_where_transformers_has_it(hf_dir):
    from benchmark.features import _Runner
    from benchmark.registry import load_representation

    w2v = load_representation(f"hf:{hf_dir / 'wav2vec2'}")
    assert w2v.attn_implementation == "sdpa" and w2v.model.config._attn_implementation == "sdpa"
    wavlm = load_representation(f"hf:{hf_dir / 'wavlm'}")  # no SDPA attention in transformers: its default
    assert wavlm.attn_implementation != "sdpa"
    # bf16 autocast through the extraction runner stays close to fp32
    segs = [np.random.default_rng(i).standard_normal(n).astype(np.float32) * 0.1 for i, n in enumerate((16000, 9000))]
    f32 = _Runner(w2v, _fcfg(precision="fp32")).run(segs)
    b16 = _Runner(w2v, _fcfg(precision="bf16")).run(segs)
    for a, b in zip(f32, b16):
        assert a.shape == b.shape and not np.array_equal(a, b)
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
        assert np.nanmin(cos) > 0.99
