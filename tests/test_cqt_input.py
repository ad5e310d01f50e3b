"""The CQT input of the mert-mini preset (MertConfig.cqt_input_bins): a log-CQT of the standardised audio,
frame-aligned with the conv front end and concatenated to its features before the projection."""
from __future__ import annotations

import pytest
import torch

SR = 24000


def _projection_input(model, wav, lengths=None):
    seen = {}

    def keep(mod, args, out):
        seen["x"] = args[0]  # returns None: the output stays

    hook = model.feature_projection.register_forward_hook(keep)
    try:
        with torch.no_grad():
            out = model(wav, lengths=lengths)
    finally:
        hook.remove()
    return seen["x"], out


def test_cqt_input_is_the_aligned_log_cqt_of_the_standardised_audio():
    from mert import build_model
    from mert.teachers.cqt import CQTTeacher

    model = build_model("mert-mini", seed=0).eval()
    cfg = model.config
    assert (cfg.cqt_input_bins, cfg.cqt_input_bins_per_octave, cfg.cqt_input_log_gain) == (84, 12, 1.0)
    assert model.feature_projection.projection.in_features == cfg.conv_dim[-1] + 84
    # the CQT kernels are fixed, not weights: a checkpoint holds no CQT tensors
    assert not [k for k in model.state_dict() if "cqt" in k]

    torch.manual_seed(0)
    wav = 0.05 * torch.randn(1, 2 * SR)
    x, _ = _projection_input(model, wav)
    z = (wav - wav.mean()) / wav.std(unbiased=False)
    want = CQTTeacher(84, 12, 32.7, log_gain=1.0)(z)
    assert x.shape == (1, model.num_frames(2 * SR), 128 + 84)
    torch.testing.assert_close(x[..., 128:], want, rtol=1e-4, atol=1e-4)

    # a clip's level does not matter (GroupNorm on conv 0, standardisation before the CQT)
    with torch.no_grad():
        a, b = model(wav).last_hidden_state, model(20 * wav).last_hidden_state
    assert (a - b).abs().max() < 1e-2


def test_cqt_input_padding_does_not_leak_and_roundtrips(tmp_path):
    from mert import build_model, load_model, save_model

    model = build_model("mert-mini", seed=1).eval()
    torch.manual_seed(1)
    wav = 0.1 * torch.randn(3, 4 * SR)
    lengths = torch.tensor([4 * SR, 2 * SR + 123, 3 * SR])
    with torch.no_grad():
        batch = model(wav, lengths=lengths)
        for i in range(3):
            alone = model(wav[i:i + 1, : int(lengths[i])])
            n = int(batch.lengths[i])
            assert n == alone.lengths[0]
            torch.testing.assert_close(batch.hidden_states[-1][i, :n], alone.hidden_states[-1][0],
                                       rtol=1e-4, atol=1e-4)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m").eval()
    assert again.config.cqt_input_bins == 84
    with torch.no_grad():
        torch.testing.assert_close(again(wav).last_hidden_state, model(wav).last_hidden_state)


def test_cqt_input_needs_mert_v1_frame_timing():
    from mert.config import get_preset

    with pytest.raises(ValueError, match="cqt_input_bins > 0 needs"):
        get_preset("mert-v0", cqt_input_bins=84)  # 16 kHz
    assert get_preset("mert-v1-95m").cqt_input_bins == 0  # released layouts: off
