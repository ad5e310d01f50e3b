"""The encoder itself: presets and parameter counts, frame arithmetic, padding-correct batches, input handling,
pretraining options (mask, conv features, deepnorm, attention relaxation, layerdrop)."""
from __future__ import annotations

import logging

import pytest
import torch

from mert import MertConfig, build_model
from mert.audio import AudioError
from mert.config import get_preset, list_presets
from mert.model import MertModel, relaxed_attention


def _meta_model(name):
    with torch.device("meta"):
        return MertModel(get_preset(name))


@pytest.mark.parametrize("name,params,layers,dim,sr", [
    ("mert-v1-95m", 94_371_712, 12, 768, 24000),  # protocol: about 94.4M
    ("mert-v1-330m", 315_428_992, 24, 1024, 24000),  # protocol: about 315M
    ("mert-v0", 94_371_712, 12, 768, 16000),
])
def test_preset_shapes_and_counts(name, params, layers, dim, sr):
    m = _meta_model(name)
    assert m.num_parameters() == params
    assert (m.num_layers, m.dim, m.sample_rate, m.receptive_field) == (layers, dim, sr, 400)
    assert m.frame_rate == sr / 320
    assert m.config.layer_norm_first == (name == "mert-v1-330m")


def test_preset_names_and_errors():
    assert {"mert-v1-95m", "mert-v1-330m", "mert-v0", "tiny", "debug"} <= set(list_presets())
    assert get_preset("m-a-p/MERT-v1-95M").hidden_size == 768
    with pytest.raises(ValueError, match="did you mean 'mert-v1-95m'"):
        get_preset("mert-v1-95")
    with pytest.raises(ValueError, match="hidden_sise"):
        MertConfig.from_dict({"hidden_sise": 3})
    with pytest.raises(ValueError, match="deepnorm"):
        MertConfig(deepnorm=True, layer_norm_first=True)
    with pytest.raises(ValueError, match="feat_extract_norm"):
        MertConfig(feat_extract_norm="batch")


def test_config_hf_round_trip_tolerates_extra_keys():
    cfg = get_preset("mert-v1-330m")
    d = cfg.to_hf_dict()
    assert d["do_stable_layer_norm"] is True and d["attention_relax"] == 32.0
    d.update(auto_map={"AutoModel": "x"}, vocab_size=32, ctc_loss_reduction="sum", _name_or_path="m-a-p/x")
    assert MertConfig.from_hf_dict(d) == cfg
    assert MertConfig.from_dict(cfg.to_dict()) == cfg
    assert MertConfig.from_hf_dict({"hidden_size": 768}).sample_rate == 16000  # plain HuBERT config


@pytest.mark.parametrize("n", [400, 401, 719, 720, 1000, 24000, 24001, 12345])
def test_num_frames_matches_output(n):
    m = build_model("debug", seed=0).eval()
    with torch.no_grad():
        out = m(torch.randn(1, n))
    assert out.hidden_states[0].shape[1] == m.num_frames(n) == out.lengths.item()
    assert m.num_frames(torch.tensor([n])).item() == m.num_frames(n)
    assert len(out.hidden_states) == m.num_layers + 1
    assert out.last_hidden_state is out.hidden_states[-1]


@pytest.mark.parametrize("kw", [
    {},  # post-LN, GroupNorm on conv 0
    {"layer_norm_first": True},  # pre-LN
    {"feat_extract_norm": "layer", "conv_bias": True},
])
def test_padded_batch_equals_each_clip_alone(kw):
    model = build_model("debug", seed=1, **kw).eval()
    lens = [24000, 13001, 7777, 400, 23999, 1000]  # non-multiples of 320, the minimum, one sample short
    wav = torch.zeros(len(lens), max(lens))
    g = torch.Generator().manual_seed(0)
    for i, n in enumerate(lens):
        wav[i, :n] = torch.randn(n, generator=g) * 0.3
        wav[i, n:] = 0.5  # padding content must not matter
    with torch.no_grad():
        batch = model(wav, lengths=torch.tensor(lens))
        naive = model(wav)  # no lengths: statistics and attention over the padding
        worst, naive_worst = 0.0, 0.0
        for i, n in enumerate(lens):
            alone = model(wav[i:i + 1, :n])
            f = alone.hidden_states[0].shape[1]
            assert batch.lengths[i].item() == f == model.num_frames(n)
            for a, b, c in zip(alone.hidden_states, batch.hidden_states, naive.hidden_states):
                worst = max(worst, (a[0] - b[i, :f]).abs().max().item())
                naive_worst = max(naive_worst, (a[0] - c[i, :f]).abs().max().item())
                assert torch.all(b[i, f:] == 0)  # padded frames are zeroed
    assert worst < 1e-4
    assert naive_worst > 1e-2  # the test can tell


def test_input_handling(caplog):
    model = build_model("debug", seed=2).eval()
    x = torch.randn(2, 6000) * 0.3
    with torch.no_grad():
        mono = model(x).last_hidden_state
        stereo = torch.stack([x + 0.1, x - 0.1], 1)  # [B, 2, T] averages to x
        assert torch.allclose(model(stereo).last_hidden_state, mono, atol=1e-5)
        one = model(x[0]).last_hidden_state  # [T]
        assert torch.allclose(one[0], mono[0], atol=1e-5)
        clip, lengths = model.prepare_input(torch.stack([x[0], x[0]]))  # one stereo clip [2, T]
        assert clip.shape == (1, 6000) and lengths is None
        with caplog.at_level(logging.INFO, logger="mert.model"):
            out = model(torch.randn(1, 16000), sample_rate=16000)
        assert out.hidden_states[0].shape[1] == model.num_frames(24000)
        assert "resampling input from 16000 Hz to the model's 24000 Hz" in caplog.text
        with caplog.at_level(logging.INFO, logger="mert.model"):
            out = model(torch.randn(2, 8000), lengths=torch.tensor([8000, 4000]), sample_rate=8000)
        assert out.lengths.tolist() == [model.num_frames(24000), model.num_frames(12000)]
    with pytest.raises(ValueError, match="shorter than the minimum of 400"):
        model(torch.randn(1, 399))
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(1, 0))
    bad = torch.randn(1, 1000)
    bad[0, 10] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        model(bad)
    bad[0, 10] = float("inf")
    with pytest.raises(AudioError, match="NaN or inf"):
        model(bad)
    with pytest.raises(ValueError, match=r"items \[1\]"):
        model(torch.randn(2, 1000), lengths=torch.tensor([1000, 300]))
    with pytest.raises(ValueError, match="exceed"):
        model(torch.randn(2, 1000), lengths=torch.tensor([1000, 1001]))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 1000, dtype=torch.int16))


def test_mask_and_conv_features():
    model = build_model("debug", seed=3).eval()
    x = torch.randn(2, 8000)
    with torch.no_grad():
        base = model(x)
        t = base.hidden_states[0].shape[1]
        none = model(x, mask=torch.zeros(2, t, dtype=torch.bool))
        assert torch.equal(none.last_hidden_state, base.last_hidden_state)
        mask = torch.zeros(2, t, dtype=torch.bool)
        mask[0, 3:8] = True
        out = model(x, mask=mask, output_conv_features=True)
        assert not torch.allclose(out.hidden_states[1][0], base.hidden_states[1][0])
        assert torch.allclose(out.hidden_states[1][1], base.hidden_states[1][1], atol=1e-6)  # item 1 unmasked
        assert out.conv_features.shape == (2, t, model.config.conv_dim[-1])
        assert base.conv_features is None
    with pytest.raises(ValueError, match="mask has shape"):
        model(x, mask=torch.zeros(2, t + 1, dtype=torch.bool))


def test_training_step_backward_with_layerdrop():
    model = build_model("debug", seed=4, layerdrop=0.5, hidden_dropout=0.1).train()
    torch.manual_seed(0)
    x = torch.randn(3, 6000)
    for _ in range(4):  # layerdrop never changes the number of hidden states
        out = model(x, lengths=torch.tensor([6000, 5000, 3000]), output_conv_features=True)
        assert len(out.hidden_states) == 3
    loss = out.last_hidden_state.pow(2).mean() + out.conv_features.pow(2).mean()
    loss.backward()
    assert model.feature_extractor.conv_layers[0].conv.weight.grad is not None
    assert model.encoder.pos_conv_embed.conv.parametrizations.weight.original0.grad is not None


def test_deepnorm():
    plain = build_model("debug", seed=5)
    deep = build_model("debug", seed=5, deepnorm=True)
    n = plain.config.num_hidden_layers
    assert deep.encoder.layers[0].alpha == pytest.approx((2 * n) ** 0.25)
    beta = (8 * n) ** 0.25
    d = plain.dim
    pw = plain.encoder.layers[0].attention.qkv_proj.weight
    dw = deep.encoder.layers[0].attention.qkv_proj.weight
    assert torch.allclose(dw[2 * d:] * beta, pw[2 * d:]) and torch.equal(dw[:2 * d], pw[:2 * d])
    assert torch.allclose(deep.encoder.layers[1].feed_forward.output_dense.weight * beta,
                          plain.encoder.layers[1].feed_forward.output_dense.weight)
    with torch.no_grad():
        out = deep.eval()(torch.randn(1, 4000))
    assert torch.isfinite(out.last_hidden_state).all()


def test_attention_relaxation_equals_plain_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 20, 8, generator=g) * 4 for _ in range(3))
    mask = torch.ones(2, 1, 1, 20, dtype=torch.bool)
    mask[1, ..., 13:] = False
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (relaxed_attention(q, k, v, mask, 32.0) - ref).abs().max().item() < 1e-4  # values up to ~10
    # in fp16, where relaxation matters, the model takes the relaxed path and stays finite
    model = build_model("debug", seed=6, attention_relax=32.0).eval().half()
    with torch.no_grad():
        out = model(torch.randn(1, 4000).half())
    assert out.last_hidden_state.dtype == torch.float16 and torch.isfinite(out.last_hidden_state).all()


def test_cqt_front_end_rejected():
    with pytest.raises(ValueError, match="feature_extractor_cqt"):
        build_model("debug", feature_extractor_cqt=True)


@pytest.mark.parametrize("kw", [{}, {"feat_extract_norm": "layer", "conv_bias": True}, {"conv_bias": True}])
def test_cpu_inference_fast_paths_equal_plain_convs(kw):
    """The GEMM conv front end (with GroupNorm folded into conv 0) and the FFT positional conv give what the
    plain F.conv1d paths give (the paths training and other devices use)."""
    model = build_model("tiny", seed=7, **kw).eval()
    with torch.no_grad():
        for p in model.parameters():  # non-trivial norms and biases
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(3, 9000) * 0.3 + 0.05  # a DC offset exercises the mean handling
    lengths = torch.tensor([9000, 5001, 400])
    with torch.no_grad():
        fast = model(x, lengths=lengths, output_conv_features=True)
        model.feature_extractor.fast_path = False
        model.encoder.pos_conv_embed.fast_path = False
        plain = model(x, lengths=lengths, output_conv_features=True)
    assert (fast.conv_features - plain.conv_features).abs().max().item() < 1e-4
    for a, b in zip(fast.hidden_states, plain.hidden_states):
        assert (a - b).abs().max().item() < 1e-4


def test_positional_conv_spectrum_cache_follows_weight_changes():
    model = build_model("debug", seed=8).eval()
    pc = model.encoder.pos_conv_embed
    h = torch.randn(1, 50, model.dim)
    with torch.no_grad():
        before = pc(h)
        pc.conv.parametrizations.weight.original1.data.mul_(2.0).add_(0.01)  # edit behind autograd's back
        after = pc(h)
        pc.fast_path = False
        ref = pc(h)
    assert not torch.allclose(before, after)
    assert (after - ref).abs().max().item() < 1e-4
