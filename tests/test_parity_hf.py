"""Numerical parity with transformers.HubertModel (the reference implementation, a dev dependency).

Random HF models in both layouts (post-LN / pre-LN) and both conv norm modes are saved with
``save_pretrained`` and loaded with ``mert.load_model``; every hidden state must agree within 1e-4. The same
weights renamed to fairseq's wav2vec2/MERT names (plus pretraining-only keys) must load to the same model.

Hidden-state meaning: for pre-LN, transformers 5.x returns the raw output of the last layer as its last
hidden state and the final-LayerNorm output as ``last_hidden_state``; MERT's released code (and
transformers < 5) returns the normed one as the last hidden state, which is what we return.
"""
from __future__ import annotations

import re

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import HubertConfig, HubertModel  # noqa: E402

from mert import load_model  # noqa: E402

TOL = 1e-4


def _hf_model(stable: bool, norm: str, seed: int = 0, layers: int = 3) -> HubertModel:
    torch.manual_seed(seed)
    cfg = HubertConfig(
        hidden_size=48, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=96,
        conv_dim=[32] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=stable, feat_extract_norm=norm, conv_bias=(norm == "layer"), mask_time_prob=0.05,
    )
    cfg.sample_rate = 24000
    model = HubertModel(cfg).eval()
    with torch.no_grad():  # move every parameter off its init value (norms, biases) so all of them matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _wav(b: int = 2, t: int = 12345, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, generator=g) * 0.3


def _hf_states(hf: HubertModel, wav: torch.Tensor) -> list[torch.Tensor]:
    """HF hidden states in MERT's meaning (the last one after the final LayerNorm, see module doc)."""
    with torch.no_grad():
        out = hf(wav, output_hidden_states=True)
    states = list(out.hidden_states)
    states[-1] = out.last_hidden_state
    return states


def _max_diff(ours, ref) -> float:
    assert len(ours) == len(ref)
    return max((a - b).abs().max().item() for a, b in zip(ours, ref))


@pytest.mark.parametrize("stable,norm", [(False, "group"), (False, "layer"), (True, "group"), (True, "layer")])
def test_hf_folder_parity(tmp_path, stable, norm):
    hf = _hf_model(stable, norm)
    hf.save_pretrained(tmp_path)
    ours = load_model(tmp_path)
    assert ours.config.layer_norm_first == stable and ours.config.feat_extract_norm == norm
    assert ours.num_layers == 3 and ours.dim == 48
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())
    wav = _wav()
    with torch.no_grad():
        out = ours(wav)
    ref = _hf_states(hf, wav)
    assert len(out.hidden_states) == 4
    assert _max_diff(out.hidden_states, ref) < TOL
    assert out.lengths.tolist() == [ref[0].shape[1]] * 2
    if stable:  # the raw residual stream of the last layer is what transformers 5 puts last; ours is normed
        with torch.no_grad():
            raw_last = hf(wav, output_hidden_states=True).hidden_states[-1]
        assert (raw_last - out.hidden_states[-1]).abs().max().item() > 1e-2


def test_hf_parity_with_old_weight_norm_keys_and_bin(tmp_path):
    """pytorch_model.bin with weight_g / weight_v (the released MERT files' style)."""
    hf = _hf_model(False, "group", seed=3)
    hf.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    sd = load_file(str(tmp_path / "model.safetensors"))
    p = "encoder.pos_conv_embed.conv."
    sd[p + "weight_g"] = sd.pop(p + "parametrizations.weight.original0")
    sd[p + "weight_v"] = sd.pop(p + "parametrizations.weight.original1")
    (tmp_path / "model.safetensors").unlink()
    torch.save(sd, tmp_path / "pytorch_model.bin")
    ours = load_model(tmp_path)
    wav = _wav(1, 9000)
    with torch.no_grad():
        assert _max_diff(ours(wav).hidden_states, _hf_states(hf, wav)) < TOL


def _to_fairseq(sd: dict) -> dict:
    """HF HubertModel names -> fairseq wav2vec2/MERT names (the inverse of the protocol's mapping)."""
    rules = [
        (r"^feature_projection\.projection\.", "post_extract_proj."),
        (r"^feature_projection\.layer_norm\.", "layer_norm."),
        (r"^masked_spec_embed$", "mask_emb"),
        (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
        (r"^feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
        (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
        (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
        (r"^encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
        (r"^encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
        (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
        (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
        (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    ]
    out = {}
    for k, v in sd.items():
        for pat, rep in rules:
            new, n = re.subn(pat, rep, k)
            if n:
                k = new
                break
        out[k] = v.clone()
    return out


@pytest.mark.parametrize("stable", [False, True])
def test_fairseq_parity(tmp_path, stable):
    hf = _hf_model(stable, "group", seed=5)
    sd = _to_fairseq(hf.state_dict())
    assert "encoder.pos_conv.0.weight_g" in sd and "post_extract_proj.weight" in sd
    sd["label_embs_concat"] = torch.randn(8 * 1024, 16)  # pretraining-only keys: ignored
    sd["final_proj.weight"] = torch.randn(128, 48)
    sd["final_proj.bias"] = torch.randn(128)
    cfg = {
        "model": {"_name": "mert", "encoder_layers": 3, "encoder_embed_dim": 48, "encoder_ffn_embed_dim": 96,
                  "encoder_attention_heads": 4, "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
                  "conv_pos": 16, "conv_pos_groups": 4, "layer_norm_first": stable, "extractor_mode": "default",
                  "conv_bias": False, "deepnorm": False, "attention_relax": 32.0 if stable else -1.0,
                  "dropout": 0.1, "encoder_layerdrop": 0.05},
        "task": {"sample_rate": 24000},
    }
    path = tmp_path / "checkpoint_fairseq.pt"
    torch.save({"model": sd, "cfg": cfg}, path)
    ours = load_model(path)
    assert ours.sample_rate == 24000 and ours.config.layer_norm_first == stable
    wav = _wav(2, 10000, seed=2)
    with torch.no_grad():
        assert _max_diff(ours(wav).hidden_states, _hf_states(hf, wav)) < TOL


def test_fairseq_checkpoint_with_omegaconf_cfg(tmp_path):
    """fairseq pickles its cfg as an omegaconf DictConfig: loading falls back to full unpickling."""
    from omegaconf import OmegaConf

    hf = _hf_model(False, "group", seed=6, layers=2)
    cfg = OmegaConf.create({
        "model": {"encoder_layers": 2, "encoder_embed_dim": 48, "encoder_ffn_embed_dim": 96,
                  "encoder_attention_heads": 4, "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
                  "conv_pos": 16, "conv_pos_groups": 4},
        "task": {"sample_rate": 24000},
    })
    path = tmp_path / "fs.pt"
    torch.save({"model": _to_fairseq(hf.state_dict()), "cfg": cfg}, path)
    ours = load_model(path)
    wav = _wav(1, 5000)
    with torch.no_grad():
        assert _max_diff(ours(wav).hidden_states, _hf_states(hf, wav)) < TOL


def test_fairseq_unknown_encoder_key_is_named(tmp_path):
    hf = _hf_model(False, "group", seed=7, layers=1)
    sd = _to_fairseq(hf.state_dict())
    sd["encoder.layers.0.mystery.weight"] = torch.zeros(3)
    cfg = {"model": {"encoder_layers": 1, "encoder_embed_dim": 48, "encoder_ffn_embed_dim": 96,
                     "encoder_attention_heads": 4, "conv_pos": 16, "conv_pos_groups": 4,
                     "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"},
           "task": {"sample_rate": 24000}}
    torch.save({"model": sd, "cfg": cfg}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="encoder.layers.0.mystery.weight"):
        load_model(tmp_path / "bad.pt")


def test_padded_batch_matches_hf_per_item(tmp_path):
    """Our padded batch gives, per clip, what the reference gives for that clip alone (HF itself does not:
    its conv-0 GroupNorm sees the padding)."""
    hf = _hf_model(False, "group", seed=8)
    hf.save_pretrained(tmp_path)
    ours = load_model(tmp_path)
    lens = [12000, 7001, 401]
    wav = torch.zeros(3, 12000)
    for i, n in enumerate(lens):
        wav[i, :n] = _wav(1, n, seed=10 + i)[0]
    with torch.no_grad():
        out = ours(wav, lengths=torch.tensor(lens))
        for i, n in enumerate(lens):
            ref = _hf_states(hf, wav[i:i + 1, :n])
            f = ref[0].shape[1]
            assert out.lengths[i].item() == f
            assert _max_diff([h[i:i + 1, :f] for h in out.hidden_states], ref) < TOL
        # HF's padded batch with an attention mask differs from the clip alone (the bug we fix)
        att = (torch.arange(12000)[None] < torch.tensor(lens)[:, None]).long()
        hf_pad = hf(wav, attention_mask=att).last_hidden_state
        ref1 = _hf_states(hf, wav[1:2, :7001])[-1]
        assert (hf_pad[1:2, :ref1.shape[1]] - ref1).abs().max().item() > 1e-3
