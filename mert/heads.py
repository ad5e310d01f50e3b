"""MERT pretraining heads and loss.

* Codebook heads (HuBERT / MERT): the encoder output is projected to ``final_dim * K`` and split into K
  chunks, one per codebook; logits are the cosine similarity of a chunk with that codebook's learned code
  embeddings, divided by the temperature (0.1); cross-entropy per codebook on masked frames, summed over
  codebooks.
* CQT head: a linear layer regressing the clean audio's CQT frame, MSE on masked frames (weight 1).
* Feature penalty: mean square of the conv front end's features (weight 10).
* Optionally (``unmasked_weight`` > 0, fairseq's ``pred_nomask_weight``; 0 in HuBERT and MERT) the same
  codebook cross-entropy on the unmasked frames, normalised by their own count.

:class:`PretrainModel` wraps the encoder and the heads in one module (what DDP / FSDP wrap) and returns
*sums* (per-codebook cross-entropy sums, correct counts, CQT squared-error sums, feature square sums) and
counts, so the training loop can normalise by counts gathered over all ranks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class PretrainHeads(nn.Module):
    def __init__(self, dim: int, num_codebooks: int, codebook_size: int, final_dim: int = 64,
                 temperature: float = 0.1, cqt_bins: int = 0, cosine: bool = True):
        super().__init__()
        self.cosine = cosine
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.final_dim = final_dim
        self.temperature = temperature
        self.final_proj = nn.Linear(dim, final_dim * num_codebooks)
        self.label_embs = nn.Parameter(torch.empty(num_codebooks, codebook_size, final_dim))
        # fairseq HuBERT initialises label_embs_concat uniform in [0, 1): every code then points into the same
        # orthant (pairwise cosine ~0.75), and with Adam moving each coordinate ~lr per step, telling the codes
        # apart takes thousands of updates -- invisible over 400k updates, but a short run (mert-mini: ~2k)
        # never leaves the label prior. Zero-mean normal codes start nearly orthogonal.
        nn.init.normal_(self.label_embs)
        self.cqt_proj = nn.Linear(dim, cqt_bins) if cqt_bins else None
        self.register_buffer("log_prior", None)

    def set_prior(self, log_prior: torch.Tensor) -> None:
        """Add a fixed per-code bias (log label frequencies, [K, V]) to the logits.

        Cosine logits have no bias, so the only way they can express the label marginal is to point every
        frame's projection the same way: a short run learns the prior by collapsing the encoder's top layer
        (measured on mert-mini: within-clip std of the last layer 0.85 -> 0.02 in 80 updates, CE stuck at
        the prior entropy) and rarely climbs back. With the prior as a bias, the cosine term only has to
        carry what the audio says beyond the prior."""
        self.log_prior = log_prior.float().reshape(self.num_codebooks, self.codebook_size)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] -> [N, K, V] cosine logits / temperature, or (``cosine=False``) the projection's dot
        product with the unit code embeddings, plus the log prior when set.

        A cosine logit has a fixed scale (1 / temperature), so "I cannot tell" can only be said by pointing all
        frames one way; on a short run the masked frames, which carry no context yet, drag the top layer into
        that collapse. With a free-length projection, uncertainty is a short projection."""
        proj = self.final_proj(x).view(x.shape[0], self.num_codebooks, self.final_dim).float()
        embs = F.normalize(self.label_embs.float(), dim=-1)
        if self.cosine:
            out = torch.einsum("nkd,kvd->nkv", F.normalize(proj, dim=-1), embs) / self.temperature
        else:  # dot product with unit code embeddings: the projection's length is the confidence
            out = torch.einsum("nkd,kvd->nkv", proj, embs)
        if self.log_prior is not None:
            out = out + self.log_prior[None]
        return out


@dataclass
class LossSums:
    """Per-batch sums on this rank; divide by global counts (see :func:`combine`)."""

    ce: torch.Tensor  # [K] cross-entropy sums over masked frames
    correct: torch.Tensor  # [K] correct predictions on masked frames
    cqt: torch.Tensor  # () sum over masked frames of the mean squared error over bins
    feat: torch.Tensor  # () sum over valid frames of the mean square over conv channels
    masked: torch.Tensor  # () masked frames
    valid: torch.Tensor  # () valid frames
    ce_unmasked: torch.Tensor | None = None  # [K] cross-entropy sums over unmasked valid frames (when asked)
    cqt_unmasked: torch.Tensor | None = None  # () CQT squared-error sum over unmasked valid frames (when asked)
    unmasked: torch.Tensor | None = None  # () unmasked valid frames


class PretrainModel(nn.Module):
    """Encoder + heads. ``forward(wav, lengths, mask, labels [B, F, K], cqt [B, F, bins] | None)``."""

    def __init__(self, encoder: nn.Module, heads: PretrainHeads):
        super().__init__()
        self.encoder = encoder
        self.heads = heads

    def forward(self, wav, lengths, mask, labels, cqt=None, unmasked: bool = False) -> LossSums:
        out = self.encoder(wav, lengths, mask=mask, output_conv_features=True)
        x = out.last_hidden_state  # [B, T, D]
        b, t, _ = x.shape
        valid = torch.arange(t, device=x.device)[None] < out.lengths[:, None].to(x.device)
        m = mask[:, :t] & valid
        if labels.shape[1] < t:
            raise ValueError(f"labels have {labels.shape[1]} frames but the encoder gives {t}")
        y = labels[:, :t][m]  # [N, K]
        h = x[m]  # [N, D]
        logits = self.heads.logits(h)  # [N, K, V]
        k = logits.shape[1]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
        ce = ce.view(-1, k).sum(0)
        correct = (logits.argmax(-1) == y).sum(0).to(ce.dtype)
        if self.heads.cqt_proj is not None and cqt is not None:
            pred = self.heads.cqt_proj(h).float()
            cqt_sum = (pred - cqt[:, :t][m].float()).pow(2).mean(-1).sum()
        else:
            cqt_sum = ce.new_zeros(())
        feats = out.conv_features.float()  # [B, T, C]
        feat_sum = feats.pow(2).mean(-1)[valid].sum()
        ce_u = n_u = cqt_u = None
        if unmasked:  # fairseq's pred_nomask_weight: the same prediction on the frames the encoder saw
            u = ~mask[:, :t] & valid
            hu = x[u]
            lu = self.heads.logits(hu)
            ce_u = F.cross_entropy(lu.reshape(-1, lu.shape[-1]), labels[:, :t][u].reshape(-1), reduction="none")
            ce_u = ce_u.view(-1, k).sum(0)
            n_u = u.sum().to(ce.dtype)
            if self.heads.cqt_proj is not None and cqt is not None:
                cqt_u = (self.heads.cqt_proj(hu).float() - cqt[:, :t][u].float()).pow(2).mean(-1).sum()
        return LossSums(ce=ce, correct=correct, cqt=cqt_sum, feat=feat_sum,
                        masked=m.sum().to(ce.dtype), valid=valid.sum().to(ce.dtype), ce_unmasked=ce_u, unmasked=n_u,
                        cqt_unmasked=cqt_u)


def total_loss(s: LossSums, masked_total: torch.Tensor, valid_total: torch.Tensor, cqt_weight: float = 1.0,
               feature_penalty: float = 10.0, unmasked_weight: float = 0.0,
               unmasked_total: torch.Tensor | None = None, cqt_unmasked_weight: float = 0.0) -> torch.Tensor:
    """This rank's share of the global loss: per-frame CE summed over codebooks + w * CQT MSE + 10 * pen.

    ``masked_total`` / ``valid_total`` are the counts over all ranks, so summing this over ranks gives the
    loss of the global batch (what one process would compute on all clips at once).
    """
    m = masked_total.clamp_min(1.0)
    loss = s.ce.sum() / m + cqt_weight * s.cqt / m + feature_penalty * s.feat / valid_total.clamp_min(1.0)
    if unmasked_weight and s.ce_unmasked is not None:
        loss = loss + unmasked_weight * s.ce_unmasked.sum() / unmasked_total.clamp_min(1.0)
    if cqt_unmasked_weight and s.cqt_unmasked is not None:
        loss = loss + cqt_unmasked_weight * s.cqt_unmasked / unmasked_total.clamp_min(1.0)
    return loss
