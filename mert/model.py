"""The MERT encoder: conv front end -> feature projection -> positional conv -> transformer, every layer out.

One readable file. Parameter names follow Hugging Face ``HubertModel`` except that each attention block keeps
q/k/v in one fused projection (``attention.qkv_proj``: rows q, then k, then v); ``mert.checkpoints`` maps
between the two.

Padding-correct batches: given ``lengths``, conv 0's GroupNorm takes its statistics over each clip's valid
samples only, padded frames are zeroed before the positional conv (as a clip alone sees zero padding there),
and attention never looks at padded keys. Each clip of a padded batch therefore gives (within float error)
the hidden states it gives alone. The released MERT code normalises over the padding too.

Hidden states (``MertOutput.hidden_states``, num_layers + 1 tensors), the meaning MERT's released model gives:
post-LN (95M): index 0 = features + pos-conv after the encoder LayerNorm, i = output of layer i.
pre-LN (330M): index 0 = features + pos-conv (no LN), 1..L-1 = raw residual stream after layer i,
L = output of layer L after the final LayerNorm (transformers < 5 returns this too; transformers 5.x returns
the raw layer-L output as its last hidden state and the normed one only as ``last_hidden_state``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mert.config import MertConfig, get_preset

log = logging.getLogger(__name__)


@dataclass
class MertOutput:
    hidden_states: tuple[torch.Tensor, ...]  # num_layers + 1 tensors [B, T', D]
    lengths: torch.Tensor  # LongTensor [B]: valid frames per item
    conv_features: torch.Tensor | None = None  # [B, T', C] conv front end output (before the projection)

    @property
    def last_hidden_state(self) -> torch.Tensor:
        return self.hidden_states[-1]


def _activation(name: str):
    if name == "gelu":
        return F.gelu
    if name in ("relu", "silu", "tanh"):
        return getattr(F, name)
    if name == "gelu_new" or name == "gelu_pytorch_tanh":
        return lambda x: F.gelu(x, approximate="tanh")
    raise ValueError(f"unsupported activation {name!r} (gelu, gelu_new, relu, silu, tanh)")


def _length_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """[B] -> bool [B, size], True on valid positions."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


# ------------------------------------------------------------------------------------------------ front end
class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, bias: bool, norm: str | None, eps: float,
                 act: str):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":  # GroupNorm(C groups, C channels): per-channel statistics over time
            self.layer_norm = nn.GroupNorm(cout, cout, affine=True)
        elif norm == "layer":  # LayerNorm over channels, per frame
            self.layer_norm = nn.LayerNorm(cout, elementwise_affine=True)
        self.act = _activation(act)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x)  # [B, C, T]
        if self.norm_kind == "group":
            if lengths is None:
                x = self.layer_norm(x)
            else:
                x = self._masked_group_norm(x, lengths)
        elif self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.act(x)

    def _masked_group_norm(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """GroupNorm with one group per channel whose statistics use each item's valid frames only."""
        gn = self.layer_norm
        mask = _length_mask(lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)  # [B, 1, T]
        n = lengths.clamp(min=1).to(x.dtype).view(-1, 1, 1)
        mean = (x * mask).sum(-1, keepdim=True) / n
        centred = x - mean
        var = ((centred * mask) ** 2).sum(-1, keepdim=True) / n
        scale = torch.rsqrt(var + gn.eps) * gn.weight.view(1, -1, 1)
        return centred * scale + gn.bias.view(1, -1, 1)


class FeatureEncoder(nn.Module):
    """7 strided convs from the waveform [B, T] to features [B, T', C] (HF ``feature_extractor``).

    On the CPU without autograd the convs run channels-last as accumulated GEMMs over strided views of the
    input (one GEMM per kernel tap, no im2col copy), which is faster there than the conv kernels; with autograd
    or on another device they run as ``F.conv1d``. Both give the same result (tested)."""

    def __init__(self, cfg: MertConfig):
        super().__init__()
        layers = []
        for i, (c, k, s) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride)):
            cin = 1 if i == 0 else cfg.conv_dim[i - 1]
            if cfg.feat_extract_norm == "layer":
                norm = "layer"
            else:
                norm = "group" if i == 0 else None
            layers.append(ConvLayer(cin, c, k, s, cfg.conv_bias, norm, cfg.layer_norm_eps,
                                    cfg.feat_extract_activation))
        self.conv_layers = nn.ModuleList(layers)
        self.kernels = list(cfg.conv_kernel)
        self.strides = list(cfg.conv_stride)
        self.gelu = cfg.feat_extract_activation == "gelu"
        self.fast_path = True  # allow the CPU GEMM path (switch off to force F.conv1d)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if self.fast_path and wav.device.type == "cpu" and not torch.is_grad_enabled() and self.gelu:
            return self._forward_gemm(wav, lengths)
        x = wav.unsqueeze(1)
        for layer, k, s in zip(self.conv_layers, self.kernels, self.strides):
            if lengths is not None:
                lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
            x = layer(x, lengths)
        return x.transpose(1, 2)

    @torch.no_grad()
    def _forward_gemm(self, wav: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Channels-last front end on a flattened batch: the waveform is zero-padded to a multiple of the total
        stride, so every layer's output is B blocks of equal length laid end to end; each conv layer is then
        k GEMMs (one per kernel tap) over strided row views of the whole batch. Rows past an item's valid
        frames hold values no valid frame depends on; the GroupNorm statistics use valid frames only."""
        gelu_ = torch._C._nn.gelu_
        b, t = wav.shape
        total = math.prod(self.strides)
        t_pad = -(-t // total) * total
        valid = lengths if lengths is not None else torch.full((b,), t, dtype=torch.long, device=wav.device)
        n = len(self.conv_layers)
        tails = [max(self.kernels[i + 1] - self.strides[i + 1], 0) if i + 1 < n else 0 for i in range(n)]
        k0, s0 = self.kernels[0], self.strides[0]
        rows = t_pad // s0  # per item
        patches = F.pad(wav, (0, t_pad - t + k0 - s0)).unfold(-1, k0, s0)  # [B, rows, k0]
        valid = torch.div(valid - k0, s0, rounding_mode="floor") + 1
        layer0 = self.conv_layers[0]
        w0 = layer0.conv.weight[:, 0, :].t()  # [k0, C]
        c = w0.shape[1]
        buf = torch.empty(b * rows + tails[0], c, dtype=wav.dtype, device=wav.device)
        if layer0.norm_kind == "group":
            _conv0_group_norm(patches, w0, layer0.layer_norm, valid, out=buf[: b * rows].view(b, rows, c))
        else:
            y = torch.matmul(patches, w0)
            if layer0.conv.bias is not None:
                y += layer0.conv.bias
            if layer0.norm_kind == "layer":
                ln = layer0.layer_norm
                y = F.layer_norm(y, (c,), ln.weight, ln.bias, ln.eps)
            buf[: b * rows].copy_(y.view(-1, c))
        gelu_(buf[: b * rows])
        buf[b * rows:].zero_()
        for i in range(1, n):
            layer, k, s = self.conv_layers[i], self.kernels[i], self.strides[i]
            valid = torch.div(valid - k, s, rounding_mode="floor") + 1
            w, bias = layer.conv.weight, layer.conv.bias
            c = w.shape[0]
            rows //= s
            out = torch.empty(b * rows + tails[i], c, dtype=wav.dtype, device=wav.device)
            _strided_conv_gemm(buf, w, bias, s, out[: b * rows])
            if layer.norm_kind == "layer":
                ln = layer.layer_norm
                out[: b * rows] = F.layer_norm(out[: b * rows], (c,), ln.weight, ln.bias, ln.eps)
            gelu_(out[: b * rows])
            out[b * rows:].zero_()
            buf = out
        frames = self.num_frames_for(t)
        return buf[: b * rows].view(b, rows, -1)[:, :frames]

    def num_frames_for(self, t: int) -> int:
        for k, s in zip(self.kernels, self.strides):
            t = (t - k) // s + 1
        return max(t, 0)


def _conv0_group_norm(patches: torch.Tensor, w: torch.Tensor, gn: nn.GroupNorm, lengths: torch.Tensor,
                      out: torch.Tensor) -> torch.Tensor:
    """Conv 0 (one input channel) and its per-channel GroupNorm as one batched GEMM, written into ``out``.

    The conv output is y = patches @ w (+ a conv bias, which the normalisation removes). Its per-item,
    per-channel mean and variance over the valid frames follow exactly from the patches' mean and k x k
    covariance (computed in float64), so the normalisation folds into the GEMM: y_norm = patches @ (w * scale)
    + (gn.bias - mean(patches) @ w * scale), the shift riding along as a weight row against a column of ones.
    This skips the statistics and normalisation passes over the largest tensor of the model."""
    bsz, t, k = patches.shape
    u = patches.to(torch.float64) * _length_mask(lengths, t).unsqueeze(-1).to(torch.float64)
    n = lengths.clamp(min=1).to(torch.float64).view(-1, 1, 1)
    mu = u.sum(1, keepdim=True) / n  # [B, 1, k]
    cov = torch.bmm(u.transpose(1, 2), u) / n - mu.transpose(1, 2) * mu  # [B, k, k]
    w64 = w.to(torch.float64)  # [k, C]
    var = torch.einsum("kc,bkl,lc->bc", w64, cov, w64).clamp(min=0)
    scale = gn.weight.to(torch.float64) * torch.rsqrt(var + gn.eps)  # [B, C]
    shift = gn.bias.to(torch.float64) - (mu[:, 0] @ w64) * scale  # [B, C]
    w_b = torch.cat([w64.unsqueeze(0) * scale.unsqueeze(1), shift.unsqueeze(1)], 1).to(patches.dtype)
    aug = torch.ones(bsz, t, k + 1, dtype=patches.dtype, device=patches.device)
    aug[..., :k] = patches
    return torch.bmm(aug, w_b, out=out)


def _strided_conv_gemm(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, stride: int,
                       out: torch.Tensor) -> torch.Tensor:
    """Conv1d (no padding) over the rows of x [R, Cin] with w [Cout, Cin, k], into out [R_out, Cout]:
    out[r] = sum_j x[stride * r + j] @ w_j. Each tap is one GEMM over a strided row view of x (leading
    dimension stride * Cin, no im2col copy), accumulated in place. x needs stride * R_out + k - stride rows."""
    r_out = out.shape[0]
    k = w.shape[-1]
    taps = w.permute(2, 1, 0).contiguous()  # [k, Cin, Cout]
    span = stride * (r_out - 1) + 1
    if bias is None:
        torch.mm(x[0:span:stride], taps[0], out=out)
    else:
        torch.addmm(bias, x[0:span:stride], taps[0], out=out)
    for j in range(1, k):
        out.addmm_(x[j:j + span:stride], taps[j])
    return out


class FeatureProjection(nn.Module):
    def __init__(self, cfg: MertConfig):
        super().__init__()
        d = cfg.conv_dim[-1] + cfg.cqt_input_bins  # conv features (+ the CQT input, when configured)
        self.layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps) if cfg.feat_proj_layer_norm else None
        self.projection = nn.Linear(d, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.feat_proj_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.dropout(self.projection(x))


# ------------------------------------------------------------------------------------------------ transformer
class PositionalConv(nn.Module):
    """Grouped Conv1d over time with weight norm over dim 2, 'same' padding (last frame dropped when the
    kernel is even), GELU. Its output is added to the input by the encoder.

    Inference on the CPU computes the (128-tap, grouped) convolution with FFTs: per frequency a small complex
    matmul per group instead of 128 taps, about 40x fewer multiply-adds; the weight's spectrum is cached until
    the weights change. Training and other devices use the plain conv. Both agree to float precision (tested)."""

    def __init__(self, cfg: MertConfig):
        super().__init__()
        k = cfg.num_conv_pos_embeddings
        conv = nn.Conv1d(cfg.hidden_size, cfg.hidden_size, k, padding=k // 2,
                         groups=cfg.num_conv_pos_embedding_groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.kernel = k
        self.groups = cfg.num_conv_pos_embedding_groups
        self.remove = 1 if k % 2 == 0 else 0
        self.act = _activation(cfg.feat_extract_activation)
        self.fast_path = True
        self._spectra: dict = {}
        self._spectra_key = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, D]
        if self.fast_path and x.device.type == "cpu" and not torch.is_grad_enabled() and x.dtype == torch.float32:
            return self.act(self._conv_fft(x))
        y = self.conv(x.transpose(1, 2))
        if self.remove:
            y = y[:, :, : -self.remove]
        return self.act(y).transpose(1, 2)

    def _weight_spectrum(self, n: int) -> torch.Tensor:
        """conj(rfft(weight, n)) arranged [groups * freqs, c_in, c_out], cached per n and weight version."""
        pw = self.conv.parametrizations.weight
        # versions catch in-place updates (optimizer steps, load_state_dict); the sums catch edits through .data
        key = (pw.original0._version, pw.original1._version, pw.original0.data_ptr(), pw.original1.data_ptr(),
               float(pw.original0.sum()), float(pw.original1.sum()))
        if key != self._spectra_key:
            self._spectra, self._spectra_key = {}, key
        if n not in self._spectra:
            w = self.conv.weight  # [D, c, k] (weight norm applied)
            d, c, _ = w.shape
            g = self.groups
            wf = torch.fft.rfft(w, n=n, dim=-1).conj()  # [D, c_in, F]
            f = wf.shape[-1]
            wf = wf.view(g, c, c, f).permute(0, 3, 2, 1)  # [g, F, c_in, c_out]
            if len(self._spectra) > 8:
                self._spectra.clear()
            self._spectra[n] = wf.reshape(g * f, c, c).contiguous()
        return self._spectra[n]

    def _conv_fft(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        p, g = self.kernel // 2, self.groups
        c = d // g
        n = t + self.kernel - 1  # the shortest FFT with no circular wrap-around into outputs 0..t-1
        n += n % 2
        wf = self._weight_spectrum(n)
        xf = torch.fft.rfft(F.pad(x, (0, 0, p, 0)), n=n, dim=1)  # [B, F, D]
        f = xf.shape[1]
        xf = xf.view(b, f, g, c).permute(2, 1, 0, 3).reshape(g * f, b, c)
        yf = torch.bmm(xf, wf).view(g, f, b, c).permute(2, 1, 0, 3).reshape(b, f, d)
        y = torch.fft.irfft(yf, n=n, dim=1)[:, :t]
        return y + self.conv.bias


class SelfAttention(nn.Module):
    def __init__(self, cfg: MertConfig):
        super().__init__()
        d = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.head_dim = cfg.head_dim
        self.qkv_proj = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)
        self.dropout = cfg.attention_dropout
        self.relax = float(cfg.attention_relax)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv_proj(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, H, T, hd]
        p = self.dropout if self.training else 0.0
        if self.relax > 0 and x.dtype == torch.float16:
            y = relaxed_attention(q, k, v, attn_mask, self.relax, p, self.training)
        else:
            # in float32/bf16 SDPA's own max-subtracted softmax computes exactly what relaxation computes
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


def relaxed_attention(q, k, v, attn_mask, relax: float, dropout_p: float = 0.0, training: bool = False):
    """MERT's attention relaxation (for fp16 pretraining stability): the scores are computed on q / relax,
    the row max is subtracted, then multiplied back by relax; softmax is shift-invariant so, in exact
    arithmetic, the result equals plain attention, while fp16 intermediates stay in range."""
    scale = q.shape[-1] ** -0.5
    scores = torch.matmul(q * (scale / relax), k.transpose(-1, -2))
    scores = (scores - scores.amax(dim=-1, keepdim=True).detach()) * relax
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    probs = F.dropout(probs, p=dropout_p, training=training)
    return torch.matmul(probs, v)


class FeedForward(nn.Module):
    def __init__(self, cfg: MertConfig):
        super().__init__()
        self.intermediate_dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output_dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = _activation(cfg.hidden_act)
        self.intermediate_dropout = nn.Dropout(cfg.activation_dropout)
        self.output_dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intermediate_dropout(self.act(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: MertConfig):
        super().__init__()
        self.attention = SelfAttention(cfg)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.pre_ln = cfg.layer_norm_first
        # DeepNorm (MERT's HubertEncoderLayerExtend): residual branch scaled by (2N)^(1/4), post-LN only
        self.alpha = math.pow(2.0 * cfg.num_hidden_layers, 0.25) if cfg.deepnorm else 1.0

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_ln:
            x = x + self.dropout(self.attention(self.layer_norm(x), attn_mask))
            return x + self.feed_forward(self.final_layer_norm(x))
        a = self.dropout(self.attention(x, attn_mask))
        x = self.layer_norm(x * self.alpha + a if self.alpha != 1.0 else x + a)
        f = self.feed_forward(x)
        return self.final_layer_norm(x * self.alpha + f if self.alpha != 1.0 else x + f)


class Encoder(nn.Module):
    def __init__(self, cfg: MertConfig):
        super().__init__()
        self.pos_conv_embed = PositionalConv(cfg)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.pre_ln = cfg.layer_norm_first
        self.layerdrop = cfg.layerdrop
        # recompute each layer in the backward pass instead of keeping its activations (torch.utils.checkpoint;
        # training only: benchmark.finetune's finetune.grad_checkpointing)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor | None) -> list[torch.Tensor]:
        attn_mask = None if frame_mask is None else frame_mask[:, None, None, :]  # [B, 1, 1, T] True = attend
        x = x + self.pos_conv_embed(x)
        if not self.pre_ln:
            x = self.layer_norm(x)
        x = self.dropout(x)
        states = [x]
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                pass  # LayerDrop: skip the layer; its hidden state repeats the input
            elif self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(layer, x, attn_mask, use_reentrant=False)  # dropout masks replayed (RNG state kept)
            else:
                x = layer(x, attn_mask)
            states.append(self.layer_norm(x) if self.pre_ln and i == n - 1 else x)
        return states


# ------------------------------------------------------------------------------------------------ the model
class MertModel(nn.Module):
    """MERT encoder. ``model(wav [B, T], lengths=None)`` -> :class:`MertOutput` with every layer's frames."""

    def __init__(self, config: MertConfig):
        super().__init__()
        if config.feature_extractor_cqt:
            raise ValueError("feature_extractor_cqt=True (MERT's experimental CQT-concat front end) is not "
                             "supported: no released MERT checkpoint uses it")
        config.validate()
        self.config = config
        self.feature_extractor = FeatureEncoder(config)
        self.cqt_input = None
        if config.cqt_input_bins:
            from mert.teachers.cqt import CQTTeacher

            # fixed kernels (non-persistent buffers): checkpoints hold no CQT weights
            self.cqt_input = CQTTeacher(config.cqt_input_bins, config.cqt_input_bins_per_octave,
                                        config.cqt_input_fmin, log_gain=config.cqt_input_log_gain)
        self.feature_projection = FeatureProjection(config)
        self.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size).uniform_())
        self.encoder = Encoder(config)

    # -------------------------------------------------------------------- attributes of the contract
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    def num_frames(self, num_samples):
        """Frames for ``num_samples`` samples: an int for an int, a LongTensor for a tensor."""
        if isinstance(num_samples, torch.Tensor):
            n = num_samples.long()
            for k, s in zip(self.config.conv_kernel, self.config.conv_stride):
                n = torch.div(n - k, s, rounding_mode="floor") + 1
            return n.clamp(min=0)
        return self.config.num_frames(num_samples)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -------------------------------------------------------------------- input handling
    def prepare_input(self, wav, sample_rate: int | None = None, lengths=None):
        """Bring user audio to what ``forward`` expects: a float [B, T] tensor at ``self.sample_rate``.

        ``wav``: a tensor or numpy array [T] (one mono clip), [C, T] with C <= 8 < T (one multi-channel clip:
        channels are averaged), or [B, C, T] (a batch of multi-channel clips, averaged). A [B, T] input is
        taken as a batch of mono clips only by ``forward``; here a 2-D input is one clip. Audio at another
        ``sample_rate`` is resampled (with a log line). Returns ``(wav [B, T], lengths or None)``.
        Raises ``mert.audio.AudioError`` (a ValueError) for empty, too-short or non-finite audio; silent clips
        (peak below ``mert.audio.SILENCE_PEAK``) give a ``mert.audio.SilentAudioWarning`` naming the items.
        """
        x = torch.as_tensor(wav)
        if x.ndim == 2:
            if x.shape[0] > 8 or x.shape[0] >= x.shape[1]:
                raise ValueError(f"prepare_input: a 2-D input is one clip [channels, samples]; got {tuple(x.shape)}"
                                 " (pass a batch of mono clips [B, T] straight to the model)")
            x = x.float().mean(0, keepdim=True)
        x, lengths = self._normalise_input(x, lengths, sample_rate)
        self._warn_silent(x, lengths)
        return x, lengths

    @staticmethod
    def _warn_silent(x, lengths) -> None:
        import warnings

        from mert.audio import SILENCE_PEAK, SilentAudioWarning

        a = x.detach().abs()
        if lengths is not None:
            a = a * (torch.arange(a.shape[-1], device=a.device)[None] < lengths[:, None])
        silent = (a.amax(-1) < SILENCE_PEAK).nonzero().flatten().tolist()
        if silent:
            warnings.warn(SilentAudioWarning(f"input: item(s) {silent} silent (peak below {SILENCE_PEAK:g}); "
                                             "their features describe silence"), stacklevel=3)

    def _normalise_input(self, wav, lengths, sample_rate):
        from mert.audio import AudioError, check_waveform, resample

        x = torch.as_tensor(wav)
        if not (x.is_floating_point()):
            raise AudioError(f"input: expected float audio samples, got dtype {x.dtype}")
        if x.ndim == 1:
            x = x.unsqueeze(0)
        elif x.ndim == 3:  # [B, C, T] multi-channel batch -> mono
            x = x.mean(1)
        elif x.ndim != 2:
            raise AudioError(f"input: expected audio of shape [T], [B, T] or [B, C, T], got {tuple(x.shape)}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device).long().view(-1)
            if lengths.numel() != x.shape[0]:
                raise ValueError(f"lengths has {lengths.numel()} entries for a batch of {x.shape[0]}")
            if int(lengths.max()) > x.shape[-1]:
                raise ValueError(f"lengths up to {int(lengths.max())} exceed the {x.shape[-1]} samples given")
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            log.info("resampling input from %d Hz to the model's %d Hz", sample_rate, self.sample_rate)
            t0 = x.shape[-1]
            x = resample(x.float(), int(sample_rate), self.sample_rate)
            if lengths is not None:
                lengths = torch.clamp(torch.ceil(lengths.double() * x.shape[-1] / t0).long(), max=x.shape[-1])
        check_waveform(x, min_samples=self.receptive_field, name="input")
        if lengths is not None:
            short = (lengths < self.receptive_field).nonzero().flatten().tolist()
            if short:
                raise AudioError(f"input: items {short} have fewer valid samples than the receptive field "
                                 f"({self.receptive_field}): lengths {lengths[short].tolist()}")
            if bool((lengths == x.shape[-1]).all()):
                lengths = None
        return x, lengths

    # -------------------------------------------------------------------- forward
    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                output_conv_features: bool = False, sample_rate: int | None = None) -> MertOutput:
        """wav: float [B, T] (or [T], or [B, C, T] averaged to mono) at ``self.sample_rate`` (else pass
        ``sample_rate=`` and it is resampled). lengths: valid samples per item (None = all valid).
        mask: bool [B, T'] frames replaced by ``masked_spec_embed`` after the projection (pretraining)."""
        x, lengths = self._normalise_input(wav, lengths, sample_rate)
        param = self.masked_spec_embed
        x = x.to(device=param.device, dtype=param.dtype if x.dtype not in (torch.float16, torch.bfloat16)
                 else x.dtype)
        if lengths is not None:
            lengths = lengths.to(x.device)
        b = x.shape[0]
        feats = self.feature_extractor(x, lengths)  # [B, T', C]
        t = feats.shape[1]
        if lengths is None:
            frame_lengths = torch.full((b,), t, dtype=torch.long, device=x.device)
            frame_mask = None
        else:
            frame_lengths = self.num_frames(lengths).to(x.device)
            frame_mask = _length_mask(frame_lengths, t)
        if self.cqt_input is not None:
            from mert.audio import standardise

            # the item-standardised audio: the log compression is not scale-invariant, so a clip's level must
            # not matter; padded frames are zeroed below with the rest of h
            cqt = self.cqt_input(standardise(x.float(), lengths))[:, :t].to(feats.dtype)
            h = self.feature_projection(torch.cat([feats, cqt], -1))
        else:
            h = self.feature_projection(feats)
        if mask is not None:
            if mask.shape != h.shape[:2]:
                raise ValueError(f"mask has shape {tuple(mask.shape)}, expected [B, T'] = {tuple(h.shape[:2])}")
            h = torch.where(mask.to(h.device).unsqueeze(-1), self.masked_spec_embed.to(h.dtype), h)
        if frame_mask is not None:
            keep = frame_mask.unsqueeze(-1)
            h = h * keep.to(h.dtype)  # padded frames are zero at the positional conv, as for a clip alone
            feats = feats * keep.to(feats.dtype)
        states = self.encoder(h, frame_mask)
        if frame_mask is not None:
            keep = frame_mask.unsqueeze(-1).to(states[0].dtype)
            states = [s * keep for s in states]
        return MertOutput(hidden_states=tuple(states), lengths=frame_lengths,
                          conv_features=feats if output_conv_features else None)

    def extra_repr(self) -> str:
        c = self.config
        return (f"layers={c.num_hidden_layers}, dim={c.hidden_size}, sample_rate={c.sample_rate}, "
                f"frame_rate={c.frame_rate:g}, {'pre' if c.layer_norm_first else 'post'}-LN")


# ------------------------------------------------------------------------------------------------ init
def init_weights(model: MertModel, seed: int | None = None) -> MertModel:
    """Random init as HF/fairseq do: Linear N(0, initializer_range), zero biases; convs Kaiming-normal;
    norms at identity; the positional conv N(0, sqrt(4 / (k * D))) (fairseq); DeepNorm's down-scaling."""
    cfg = model.config
    gen = None
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                mod.weight.normal_(0.0, cfg.initializer_range, generator=gen)
                if mod.bias is not None:
                    mod.bias.zero_()
            elif isinstance(mod, (nn.LayerNorm, nn.GroupNorm)):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
            elif isinstance(mod, nn.Conv1d) and not name.startswith("encoder.pos_conv_embed"):
                nn.init.kaiming_normal_(mod.weight, generator=gen)
                if mod.bias is not None:
                    mod.bias.zero_()
        pc = model.encoder.pos_conv_embed.conv
        k, d = cfg.num_conv_pos_embeddings, cfg.hidden_size
        v = torch.empty_like(pc.parametrizations.weight.original1).normal_(0.0, math.sqrt(4.0 / (k * d)),
                                                                           generator=gen)
        pc.parametrizations.weight.original1.copy_(v)
        pc.parametrizations.weight.original0.copy_(torch.linalg.vector_norm(v, dim=(0, 1), keepdim=True))
        pc.bias.zero_()
        model.masked_spec_embed.uniform_(generator=gen)
        if cfg.deepnorm:
            beta = math.pow(8.0 * cfg.num_hidden_layers, 0.25)
            for layer in model.encoder.layers:
                layer.attention.qkv_proj.weight[2 * d:].div_(beta)  # v rows only
                layer.attention.qkv_proj.bias[2 * d:].div_(beta)
                for lin in (layer.attention.out_proj, layer.feed_forward.intermediate_dense,
                            layer.feed_forward.output_dense):
                    lin.weight.div_(beta)
                    lin.bias.div_(beta)
    return model


def build_model(preset_or_config: str | MertConfig = "mert-v1-95m", seed: int | None = None, **overrides) -> MertModel:
    """A randomly initialised encoder from a preset name (see ``mert.config.list_presets``) or a MertConfig.
    Keyword overrides change config fields, e.g. ``build_model("debug", layer_norm_first=True)``."""
    if isinstance(preset_or_config, MertConfig):
        cfg = preset_or_config.replace(**overrides) if overrides else preset_or_config
    else:
        cfg = get_preset(preset_or_config, **overrides)
    return init_weights(MertModel(cfg), seed=seed)


def weights_identity(model: nn.Module, normalize: bool) -> str:
    """The 16-hex identity of a MERT model's weights as the benchmark names them (its revision is the first 8):
    sha256 over the class name, every state-dict entry in key order and the input normalisation. Shared by the
    benchmark's MERT representation and the k-means-layer teacher (mert.teachers.kmeans_layer)."""
    import hashlib

    h = hashlib.sha256(f"mert:{type(model).__name__}".encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(normalize).encode())
    return h.hexdigest()[:16]
