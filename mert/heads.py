"""MERT pretraining heads and loss.

* Codebook heads (HuBERT / MERT): the encoder output is projected to ``final_dim * K`` and split into K
  chunks, one per codebook; logits are the cosine similarity of a chunk with that codebook's learned code
  embeddings, divided by the temperature (0.1); cross-entropy per codebook on masked frames, summed over
  codebooks.
* CQT head: a linear layer regressing the clean audio's CQT frame, MSE on masked frames (weight 1).
* Feature penalty: mean square of the conv front end's features (weight 10).

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
                 temperature: float = 0.1, cqt_bins: int = 0):
        super().__init__()
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.final_dim = final_dim
        self.temperature = temperature
        self.final_proj = nn.Linear(dim, final_dim * num_codebooks)
        self.label_embs = nn.Parameter(torch.empty(num_codebooks, codebook_size, final_dim))
        nn.init.uniform_(self.label_embs)  # fairseq HuBERT initialises label_embs_concat uniformly
        self.cqt_proj = nn.Linear(dim, cqt_bins) if cqt_bins else None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] -> [N, K, V] cosine logits / temperature."""
        proj = self.final_proj(x).view(x.shape[0], self.num_codebooks, self.final_dim)
        proj = F.normalize(proj.float(), dim=-1)
        embs = F.normalize(self.label_embs.float(), dim=-1)
        return torch.einsum("nkd,kvd->nkv", proj, embs) / self.temperature


@dataclass
class LossSums:
    """Per-batch sums on this rank; divide by global counts (see :func:`combine`)."""

    ce: torch.Tensor  # [K] cross-entropy sums over masked frames
    correct: torch.Tensor  # [K] correct predictions on masked frames
    cqt: torch.Tensor  # () sum over masked frames of the mean squared error over bins
    feat: torch.Tensor  # () sum over valid frames of the mean square over conv channels
    masked: torch.Tensor  # () masked frames
    valid: torch.Tensor  # () valid frames


class PretrainModel(nn.Module):
    """Encoder + heads. ``forward(wav, lengths, mask, labels [B, F, K], cqt [B, F, bins] | None)``."""

    def __init__(self, encoder: nn.Module, heads: PretrainHeads):
        super().__init__()
        self.encoder = encoder
        self.heads = heads

    def forward(self, wav, lengths, mask, labels, cqt=None) -> LossSums:
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
        return LossSums(ce=ce, correct=correct, cqt=cqt_sum, feat=feat_sum,
                        masked=m.sum().to(ce.dtype), valid=valid.sum().to(ce.dtype))


def total_loss(s: LossSums, masked_total: torch.Tensor, valid_total: torch.Tensor, cqt_weight: float = 1.0,
               feature_penalty: float = 10.0) -> torch.Tensor:
    """This rank's share of the global loss: per-frame CE summed over codebooks + w * CQT MSE + 10 * pen.

    ``masked_total`` / ``valid_total`` are the counts over all ranks, so summing this over ranks gives the
    loss of the global batch (what one process would compute on all clips at once).
    """
    m = masked_total.clamp_min(1.0)
    return s.ce.sum() / m + cqt_weight * s.cqt / m + feature_penalty * s.feat / valid_total.clamp_min(1.0)
