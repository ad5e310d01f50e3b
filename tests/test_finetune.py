"""Fine-tuning modes (benchmark.finetune, ``run --mode lora|full``): whole runs of the tiny random MERT
(``random:debug``) and a tiny random transformers wav2vec2 on a 3-class synthetic genre folder of 1 s clips (seconds
each). LoRA trains only the adapters and the head (every base weight bit-identical), full trains the encoder, the
loss falls, a run killed after an epoch resumes to the uninterrupted result, results get their own source and
leaderboard table, and bad input is a clear error. The pooled rows equal the feature cache's."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from benchmark import finetune
from benchmark.__main__ import main
from run_helpers import genre3_folder, prepared_args, result_records
from tasks import get_task

FAST = ["finetune.epochs=4", "finetune.patience=10", "finetune.batch_size=4", "finetune.crop_s=0.5",
        "finetune.head_lr=3e-3", "probe.hidden=32"]


@pytest.fixture(scope="module")
def genre_dir(tmp_path_factory):
    return genre3_folder(tmp_path_factory.mktemp("finetune"), {"train": 12, "valid": 6, "test": 6})


_args, _runs = prepared_args, result_records


class _Built:
    """Captures every FinetuneModel a run builds (the trained network, after the run)."""

    def __init__(self, monkeypatch):
        self.models = []
        init = finetune.FinetuneModel.__init__

        def capture(model, *a, **k):
            init(model, *a, **k)
            self.models.append(model)

        monkeypatch.setattr(finetune.FinetuneModel, "__init__", capture)


def _run(root, folder, model, mode, *extra):
    return main(["run", *_args(root, folder, "--task", "genre", "--model", model, "--mode", mode, *FAST, *extra)])


@pytest.fixture(scope="module")
def lora_run(genre_dir, tmp_path_factory):
    """One uninterrupted LoRA run of random:debug (its trained model captured)."""
    mp = pytest.MonkeyPatch()
    built = _Built(mp)
    root = tmp_path_factory.mktemp("lora")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every test here (_one_thread): the resumed run must match it bit for bit
    try:
        assert _run(root, genre_dir, "random:debug", "lora") == 0
    finally:
        mp.undo()
        torch.set_num_threads(threads)
    (path, rec), = _runs(root).items()
    return {"root": root, "path": path, "record": rec, "model": built.models[0]}


def test_lora_trains_only_adapters_and_head_and_the_loss_falls(lora_run):
    from benchmark.registry import load_representation

    rec, model = lora_run["record"], lora_run["model"]
    base = dict(load_representation("random:debug").model.named_parameters())
    trained = dict(model.module.named_parameters())
    lora = [n for n in trained if "lora_" in n]
    assert lora and all(trained[n].requires_grad for n in lora)
    assert {n for n, p in trained.items() if p.requires_grad} == set(lora) | {n for n in trained
                                                                              if n.startswith("head.")}
    # every base (non-LoRA) encoder weight is bit-identical to the loaded model's
    for name, p in model.rep.model.named_parameters():
        if "lora_" in name:
            continue
        assert torch.equal(p.detach(), base[name.replace(".base_layer", "")].detach()), name
    assert any(float(trained[n].detach().abs().max()) > 0 for n in lora if "lora_B" in n)  # the adapters moved
    loss = rec["probe"]["train_loss"][0]
    assert len(loss) == 4 and loss[-1] < loss[0]
    probe = rec["probe"]
    assert probe["mode"] == "lora" and probe["lora"]["targets"] == ["qkv_proj", "out_proj"]
    assert probe["trainable_parameters"] == sum(trained[n].numel() for n in lora) + probe["head_parameters"]
    assert probe["total_parameters"] == probe["encoder_parameters"] + probe["trainable_parameters"]
    assert probe["encoder_parameters"] == sum(p.numel() for p in base.values())


def test_lora_result_has_its_own_source_schema_and_leaderboard_table(lora_run):
    from benchmark.config import config_hash
    from benchmark.results import ResultRecord, identity_of

    rec, root = lora_run["record"], lora_run["root"]
    source = rec["data"]["source"]
    assert source.endswith("-lora") and lora_run["path"].startswith(source + "/random_debug@")
    assert ResultRecord.from_dict(rec).to_dict() == rec
    assert config_hash({"config": rec["config"], **identity_of(rec)}) == rec["config_hash"]
    assert rec["config"]["finetune"]["lora"]["r"] == 8 and rec["config"]["finetune"]["precision"] == "fp32"
    assert rec["selection"]["layer"] == "weighted" and rec["seeds"] == [0] and rec["epochs_run"] == [4]
    (row,) = rec["layers"]
    assert row["test"]["main"] == rec["scores"]["main"] and 0 <= rec["scores"]["main"] <= 1
    assert row["valid_main"] == pytest.approx(max(rec["probe"]["valid_main"][0]))  # the best epoch's state is what was scored
    assert len(rec["layer_weights"][0]) == 3 and sum(rec["layer_weights"][0]) == pytest.approx(1.0)
    assert {"load_s", "train_s", "total_s"} <= set(rec["timings"])
    md = (root / "results" / "leaderboard.md").read_text()
    assert f"## {source}\n" in md and "LoRA fine-tuning (`--mode lora`)" in md
    assert not list((root / "cache").glob("finetune/**/*.pt"))  # the work folder is gone once the result is written


def test_a_killed_run_resumes_to_the_uninterrupted_result(genre_dir, lora_run, tmp_path, monkeypatch):
    calls = []

    def interrupt(seed, epoch, checkpoint):
        calls.append((epoch, checkpoint))
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(finetune, "after_epoch", interrupt)
    assert _run(tmp_path, genre_dir, "random:debug", "lora") == 130
    (epoch, ckpt), = calls
    assert epoch == 1 and ckpt.exists() and ckpt.name == "seed-0.pt"
    assert not list(tmp_path.glob("results/runs/**/*.json"))
    monkeypatch.undo()
    resumed_from = []
    load = finetune._load_checkpoint

    def loading(path, st, *a, **k):
        resumed_from.append((load(path, st, *a, **k), st.epoch))
        return resumed_from[-1][0]

    monkeypatch.setattr(finetune, "_load_checkpoint", loading)
    assert _run(tmp_path, genre_dir, "random:debug", "lora") == 0
    assert resumed_from == [(True, 1)]  # it went on after epoch 1, not from the start
    (resumed,) = _runs(tmp_path).values()
    want = lora_run["record"]
    for key in ("scores", "layers", "layer_weights", "epochs_run", "seeds", "selection", "config_hash"):
        assert resumed[key] == want[key], key
    timed = ("seconds", "seconds_per_epoch")
    assert {k: v for k, v in resumed["probe"].items() if k not in timed} == \
        {k: v for k, v in want["probe"].items() if k not in timed}
    assert not ckpt.exists()


def test_a_damaged_checkpoint_is_named_and_the_seed_starts_again(genre_dir, lora_run, tmp_path, monkeypatch,
                                                                  capsys):
    def interrupt(seed, epoch, checkpoint):
        checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # cut short (a full disk, a copy gone wrong)
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune, "after_epoch", interrupt)
    assert _run(tmp_path, genre_dir, "random:debug", "lora") == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert _run(tmp_path, genre_dir, "random:debug", "lora") == 0
    err = capsys.readouterr().err
    assert "seed-0.pt: cannot resume from it" in err and "training seed 0 from the start" in err
    (rec,) = _runs(tmp_path).values()
    assert rec["scores"] == lora_run["record"]["scores"] and rec["layers"] == lora_run["record"]["layers"]


def test_full_trains_every_encoder_weight(genre_dir, tmp_path, monkeypatch):
    from benchmark.registry import load_representation

    built = _Built(monkeypatch)
    assert _run(tmp_path, genre_dir, "random:debug", "full", "finetune.lr=1e-3") == 0
    (rec,) = _runs(tmp_path).values()
    assert rec["data"]["source"].endswith("-full") and rec["probe"]["mode"] == "full" and "lora" not in rec["probe"]
    base = dict(load_representation("random:debug").model.named_parameters())
    trained = dict(built.models[0].rep.model.named_parameters())
    assert set(trained) == set(base) and all(p.requires_grad for p in trained.values())
    changed = [n for n in base if not torch.equal(trained[n].detach(), base[n].detach())]
    assert any(n.startswith("encoder.layers.") for n in changed) and any("feature_extractor" in n for n in changed)
    assert rec["probe"]["trainable_parameters"] == rec["probe"]["total_parameters"] == \
        rec["probe"]["encoder_parameters"] + rec["probe"]["head_parameters"]
    assert rec["probe"]["train_loss"][0][-1] < rec["probe"]["train_loss"][0][0]


def test_gradient_checkpointing_and_bf16_train_the_same_network(genre_dir, lora_run, tmp_path):
    """finetune.grad_checkpointing recomputes the layers (dropout masks replayed): the same training, to float
    noise; finetune.precision=bf16 (autocast, here on the CPU) trains too and records the precision."""
    assert _run(tmp_path / "ckpt", genre_dir, "random:debug", "lora", "finetune.grad_checkpointing=true") == 0
    (rec,) = _runs(tmp_path / "ckpt").values()
    want = lora_run["record"]
    assert rec["config_hash"] != want["config_hash"]
    np.testing.assert_allclose(rec["probe"]["train_loss"], want["probe"]["train_loss"], rtol=1e-5)
    assert rec["probe"]["valid_main"] == want["probe"]["valid_main"]
    assert _run(tmp_path / "bf16", genre_dir, "random:debug", "lora", "finetune.precision=bf16",
                "finetune.epochs=1") == 0
    (rec,) = _runs(tmp_path / "bf16").values()
    assert rec["config"]["finetune"]["precision"] == "bf16" and rec["probe"]["precision"] == "bf16"
    assert np.isfinite(rec["probe"]["train_loss"][0][0])


def test_hf_encoder_under_lora(genre_dir, tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                      conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                                      feat_extract_norm="layer", do_stable_layer_norm=True)
    transformers.Wav2Vec2Model(cfg).save_pretrained(tmp_path / "w2v")
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True,
                                          return_attention_mask=True).save_pretrained(tmp_path / "w2v")
    built = _Built(monkeypatch)
    name = f"hf:{tmp_path / 'w2v'}"
    assert _run(tmp_path, genre_dir, name, "lora", "finetune.epochs=2") == 0
    (rec,) = _runs(tmp_path).values()
    assert rec["data"]["source"].endswith("-lora") and rec["representation"]["sample_rate"] == 16000
    assert rec["probe"]["lora"]["targets"] == ["q_proj", "k_proj", "v_proj", "out_proj"]
    model = built.models[0]
    trainable = {n for n, p in model.module.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith("head.") for n in trainable)
    assert sum("lora_" in n for n in trainable) == 2 * 4 * 2  # A and B of 4 projections in 2 layers
    base = transformers.Wav2Vec2Model.from_pretrained(tmp_path / "w2v")
    ref = dict(base.named_parameters())
    for n, p in model.rep.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p.detach(), ref[n.replace(".base_layer", "")].detach()), n


def test_pooled_rows_equal_the_feature_cache(genre_dir, tmp_path):
    """The model's forward (eval mode, before training) gives every clip the row the feature extraction caches,
    long clips in chunks (features.max_chunk_s=0.4 on 1 s clips: chunks of 0.4 s and 0.6 s), padding-free."""
    from benchmark.config import resolve_config
    from benchmark.features import extract_split
    from benchmark.heads import make_head
    from benchmark.registry import load_representation

    spec = get_task("genre")
    rep = load_representation("random:debug")
    cfg = resolve_config(spec, overrides=["features.max_chunk_s=1", "probe.hidden=8"])
    cfg.features.max_chunk_s = 0.4  # below the config's declared minimum on purpose: several chunks per clip
    cfg.features.precision = "fp32"
    feats = extract_split(rep, spec, genre_dir, "test", cfg.features, tmp_path / "cache", progress=False,
                          log=lambda *a: None)
    clips = finetune.load_clips(spec, genre_dir, "test", rep, cfg.features, None, tmp_path)
    assert [len(segs) for _, segs in clips.rows] == [2] * 6
    model = finetune.FinetuneModel(rep, make_head(spec, ["blues", "jazz", "rock"], cfg), cfg, "full", "cpu")
    model.train(False)
    pieces, owner = [], []
    for r, (gi, segs) in enumerate(clips.rows):
        for a, b in segs:
            pieces.append(clips.audio[gi][a:b])
            owner.append(r)
    with torch.no_grad():
        rows = model.pooled(pieces, owner, len(clips.rows)).numpy()
    cached = np.asarray(feats.x.take(np.arange(len(clips.rows))), dtype=np.float32)
    np.testing.assert_allclose(rows, cached, rtol=2e-3, atol=2e-3)  # the cache holds float16


def test_bad_input_is_a_clear_error(genre_dir, tmp_path, capsys):
    beat = ["run", *_args(tmp_path, genre_dir, "--task", "beat", "--model", "random:debug", "--mode", "lora")]
    assert main(beat) == 2
    err = capsys.readouterr().err
    assert "--mode lora: task 'beat' is a beat task" in err and "genre" in err and "separation" not in \
        err.split("supports")[1]
    assert main(["run", "--task", "separation", "--mode", "full", "--model", "random:debug", "--no-progress"]) == 2
    assert "task 'separation' is a separation task" in capsys.readouterr().err
    for extra, want in ((["finetune.lora.rank=4"], "unknown config key 'finetune.lora.rank'"),
                        (["finetune.crop_s=0"], "finetune.crop_s=0"),
                        (["finetune.lora.targets=q_proj"], "has no Linear module named q_proj"),
                        (["--shots", "3"], "--shots 3: only with --mode fewshot")):
        assert _run(tmp_path, genre_dir, "random:debug", "lora", *extra) == 2
        assert want in capsys.readouterr().err
    assert _run(tmp_path, genre_dir, "mfcc", "full") == 2
    assert "--model mfcc cannot be fine-tuned" in capsys.readouterr().err
    assert main(["probe", *_args(tmp_path, genre_dir, "--task", "genre", "--model", "random:debug", "--mode",
                                 "lora")]) == 2
    assert "`probe` reads cached features only" in capsys.readouterr().err
    assert not (tmp_path / "results" / "runs").exists()


def test_the_freeze_config_and_its_hash_do_not_see_the_finetune_section():
    from benchmark.config import config_hash, resolve_config, to_dict

    cfg = resolve_config(get_task("genre"))
    cfg.features.precision = "fp32"
    ident = {"representation": "mert-mini", "identity": "0123456789abcdef", "task": "genre@1",
             "source": "embedded-standard", "source_version": "v1", "limit": None}
    assert "finetune" not in to_dict(cfg)
    assert config_hash({"config": to_dict(cfg), **ident}) == "aa1eb68e5fbb865a"  # as pinned in test_gpu_path
    cfg.finetune.lora.r = 4  # read only by --mode lora: still not in a freeze config
    assert config_hash({"config": to_dict(cfg), **ident}) == "aa1eb68e5fbb865a"
    assert to_dict(cfg, keep=("finetune",))["finetune"]["lora"]["r"] == 4


@pytest.fixture(autouse=True)
def _one_thread():
    """These steps are tiny: one torch thread (two wait on each other on a busy machine, 5-10x slower here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
