"""python -m mert pretrain: MERT pretraining (masked prediction of teacher codes + CQT), one process or torchrun.

    python -m mert pretrain --config debug data.labels=labels/mfcc train.out_dir=runs/debug
    torchrun --nproc_per_node 8 -m mert pretrain --config mert-v1-95m data.labels=labels/encodec

One update: crops (mert.data) -> CQT of the clean audio (mert.teachers.cqt) -> in-batch noise mixture
(mert.noise) -> span masks (mert.masking) -> encoder with the mask embedding -> heads and loss (mert.heads).
The loss is normalised by the masked-frame count of the whole update over all ranks (all-reduced before the
forward pass), so N processes compute exactly the gradient of one process holding the same global batch.
Non-finite losses are skipped and counted; the run stops after ``train.max_consecutive_nonfinite`` in a row.
Checkpoints (model, heads, optimiser, scheduler, grad scaler, data position, every rank's RNG states) are
written atomically every ``train.save_every`` updates; starting the same command again resumes from the
newest one that reads (a damaged newer one, e.g. truncated by a copy, is skipped with a warning naming both)
and reproduces the uninterrupted run. Logs: console, ``<out_dir>/log.csv``, and W&B (--wandb).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import json
import logging
import math
import os
import sys
import random
import re
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("mert.pretrain")

CKPT_RE = re.compile(r"^checkpoint-(\d{8})\.pt$")


# ------------------------------------------------------------------------------------------------ helpers
class NonFiniteLossError(RuntimeError):
    pass


def lr_lambda(warmup: int, total: int, power: float, end_ratio: float):
    """Linear warmup (update k of the warmup uses lr * k / warmup), then polynomial decay to end_lr (fairseq)."""

    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if step >= total:
            return end_ratio
        progress = (step - warmup) / max(1, total - warmup)
        return end_ratio + (1.0 - end_ratio) * (1.0 - progress) ** power

    return f


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside ``path`` (its folder is created), then rename: a reader never sees
    half a checkpoint; the file gets the umask's permissions (mert.fsutil)."""
    import torch

    from mert.fsutil import atomic_write

    atomic_write(Path(path), "wb", lambda f: torch.save(obj, f))


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-NNNNNNNN.pt`` in ``folder`` by name (whether it reads or not: see
    :func:`newest_readable_checkpoint`)."""
    found = checkpoints_in(folder)
    return found[-1] if found else None


def checkpoints_in(folder: Path) -> list[Path]:
    """``checkpoint-NNNNNNNN.pt`` files in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CKPT_RE.match(p.name))


CHECKPOINT_KEYS = ("step", "model", "encoder_config")


def read_checkpoint(path: Path) -> dict:
    """Load a ``python -m mert pretrain`` checkpoint on the CPU. Raises ``mert.checkpoints.CheckpointError``
    naming the file when it is damaged (truncated, corrupt: torch's own error says neither) or is not one."""
    import pickle
    import zipfile

    import torch

    from mert.checkpoints import CheckpointError

    path = Path(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: damaged checkpoint (an empty file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except PermissionError:
        raise
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        # torch's reader says "failed reading zip archive" or "[Errno 22] Invalid argument", without the path
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: damaged checkpoint, it cannot be read (truncated or corrupt: {first})") from None
    if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS):
        raise CheckpointError(f"{path}: not a `python -m mert pretrain` checkpoint (expected a dict with "
                              f"{', '.join(CHECKPOINT_KEYS)}); released or exported encoders load with "
                              "mert.load_model")
    return state


def newest_readable_checkpoint(folder: Path, using: str = "using") -> tuple[Path, dict] | None:
    """(path, state) of the newest checkpoint in ``folder`` that reads. A damaged newer one is skipped with a
    warning naming it and the one used (``using``: the verb for the log line, e.g. "resuming from"). None when
    the folder holds no checkpoint; CheckpointError naming them all when none reads."""
    from mert.checkpoints import CheckpointError

    damaged: list[str] = []
    for path in reversed(checkpoints_in(folder)):
        try:
            state = read_checkpoint(path)
        except CheckpointError as e:
            damaged.append(str(e))
            continue
        for d in damaged:
            log.warning("%s; %s %s instead (update %d), the newest checkpoint that reads", d, using, path,
                        int(state["step"]))
        return path, state
    if damaged:
        raise CheckpointError(f"{folder}: no checkpoint can be read: " + "; ".join(damaged)
                              + ". Restore one from a copy, or move them away to start from update 0")
    return None


def rng_state() -> dict:
    import torch

    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    import torch

    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def measure_cpu_peak_flops(seconds: float = 0.3) -> float:
    """Achieved fp32 GEMM FLOP/s of this process's threads (the CPU's practical peak, for MFU)."""
    import torch

    n = 512
    g = torch.Generator().manual_seed(0)  # leaves the global RNG alone (resume reproducibility)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    a @ b
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        a @ b
        k += 1
    return 2 * n ** 3 * k / (time.perf_counter() - t0)


GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0,
                   "4090": 165.0, "3090": 71.0}  # dense bf16/fp16 tensor-core peaks


# ------------------------------------------------------------------------------------------------ trainer
class Trainer:
    """Builds everything from a config and runs updates; ``run()`` trains to ``max_updates`` / ``stop_after``."""

    def __init__(self, cfg, wandb: bool = False):
        import torch
        import torch.distributed as dist

        from mert.data import PretrainDataset
        from mert.heads import PretrainHeads, PretrainModel
        from mert.model import build_model

        self.cfg = cfg
        self.out_dir = Path(cfg.train.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        # ---- distributed
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but no CUDA device is available")
        self.device = torch.device(f"cuda:{self.local_rank}" if want_cuda else "cpu")
        if want_cuda:
            torch.cuda.set_device(self.device)
        if cfg.train.threads:
            torch.set_num_threads(int(cfg.train.threads))
        self.distributed = self.world_size > 1
        if self.distributed and not dist.is_initialized():
            backend = cfg.dist.backend if cfg.dist.backend != "auto" else ("nccl" if want_cuda else "gloo")
            dist.init_process_group(backend=backend)
        self.is_main = self.rank == 0
        # ---- precision
        p = cfg.train.precision
        if p == "auto":
            p = "bf16" if want_cuda and torch.cuda.is_bf16_supported() else "fp32"
        self.precision = p
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(p)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=(p == "fp16"))
        # ---- data
        self.dataset = PretrainDataset(cfg.data.labels, cfg.data.audio, cfg.data.crop_seconds,
                                       cfg.data.min_crop_seconds, seed=cfg.train.seed)
        # the entropy of the label marginal: a model that ignores the audio reaches this CE and no lower
        self.ce_prior = self.dataset.store.prior_entropy()
        # ---- model
        torch.manual_seed(cfg.train.seed)
        overrides = dict(cfg.model.overrides)
        for k in ("conv_dim", "conv_kernel", "conv_stride"):
            if k in overrides:
                overrides[k] = tuple(overrides[k])
        encoder = build_model(cfg.model.preset, seed=cfg.train.seed, **overrides)
        if encoder.sample_rate != 24000 or encoder.config.total_stride != 320:
            raise ValueError("pretraining needs a 24 kHz encoder with total stride 320 (75 Hz frames), got "
                             f"{encoder.sample_rate} Hz / stride {encoder.config.total_stride}")
        self.encoder_config = encoder.config
        heads = PretrainHeads(encoder.dim, self.dataset.num_codebooks, self.dataset.codebook_size,
                              cfg.heads.final_dim, cfg.heads.temperature,
                              cfg.heads.cqt_bins if cfg.heads.cqt else 0, cosine=bool(cfg.heads.cosine))
        if cfg.heads.prior_bias:
            heads.set_prior(torch.from_numpy(self.dataset.store.log_prior()))
        self.module = PretrainModel(encoder, heads).to(self.device)
        # dropout / layerdrop draw from the global RNG: a different stream per rank (weights are identical:
        # built from the seed above, and DDP broadcasts rank 0's anyway)
        torch.manual_seed(cfg.train.seed * 1_000_003 + self.rank)
        self.cqt = None
        if cfg.heads.cqt:
            from mert.teachers.cqt import CQTTeacher

            self.cqt = CQTTeacher(cfg.heads.cqt_bins, cfg.heads.cqt_bins_per_octave, cfg.heads.cqt_fmin,
                                  log_gain=cfg.heads.cqt_log_gain).to(self.device)
        self.flops_per_audio_second = None
        self.peak_flops = None
        self._estimate_flops()  # before wrapping (FSDP shards the parameters)
        self.model = self._wrap(self.module)
        # ---- optimiser + schedule
        o = cfg.optim
        head_ids = {id(q) for q in self.module.heads.parameters()}
        enc = [q for q in self.model.parameters() if q.requires_grad and id(q) not in head_ids]
        head = [q for q in self.model.parameters() if q.requires_grad and id(q) in head_ids]
        groups = [{"params": enc, "lr": o.lr}]
        if head:
            groups.append({"params": head, "lr": o.lr * float(o.head_lr_scale)})
        self.optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                           weight_decay=o.weight_decay)  # decoupled decay, as fairseq's Adam
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(o.warmup_updates, o.max_updates, o.power, o.end_lr / o.lr if o.lr else 0.0))
        # ---- state
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.skipped = 0
        self.consecutive_nonfinite = 0
        self.wandb = None
        self.use_wandb = wandb or cfg.log.wandb

    # ---------------------------------------------------------------- setup
    def _wrap(self, module):
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP

        if not self.distributed:
            return module
        if self.cfg.dist.fsdp:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            mp = MixedPrecisionPolicy(param_dtype=self.autocast_dtype, reduce_dtype=torch.float32) \
                if self.autocast_dtype is not None else MixedPrecisionPolicy()
            for layer in module.encoder.encoder.layers:
                fully_shard(layer, mp_policy=mp)
            fully_shard(module, mp_policy=mp)
            return module
        unused = self.cfg.dist.find_unused_parameters
        if unused is None:
            unused = self.encoder_config.layerdrop > 0
        return DDP(module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                   find_unused_parameters=bool(unused))

    def _estimate_flops(self) -> None:
        """FLOPs per second of audio for forward + backward (3x forward, counted by FlopCounterMode)."""
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        n = self.dataset.crop
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            enc = self.module.encoder
            was = enc.training
            enc.eval()
            x = torch.zeros(1, n, device=self.device)
            counter = FlopCounterMode(display=False)
            with counter:
                out = enc(x + 1e-3, output_conv_features=True)
                self.module.heads.final_proj(out.last_hidden_state)
            enc.train(was)
        self.flops_per_audio_second = 3.0 * counter.get_total_flops() / (n / 24000)
        if self.cfg.train.peak_tflops:
            self.peak_flops = self.cfg.train.peak_tflops * 1e12
        elif self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            self.peak_flops = next((v * 1e12 for k, v in GPU_PEAK_TFLOPS.items() if k in name), None)
        else:
            self.peak_flops = measure_cpu_peak_flops()

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path | None:
        import torch
        import torch.distributed as dist

        rngs = [rng_state()]
        if self.distributed:
            rngs = [None] * self.world_size
            dist.all_gather_object(rngs, rng_state())
        if self.cfg.dist.fsdp and self.distributed:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

            msd, osd = get_state_dict(self.model, self.optimizer,
                                      options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            msd, osd = self.module.state_dict(), self.optimizer.state_dict()
        path = None
        if self.is_main:
            from omegaconf import OmegaConf

            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            state = {
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "model": msd, "optimizer": osd, "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rngs, "world_size": self.world_size,
                "skipped": self.skipped, "consecutive_nonfinite": self.consecutive_nonfinite,
                "config": OmegaConf.to_container(self.cfg, resolve=True),
                "encoder_config": self.encoder_config.to_dict(),
                "labels": {"teacher": self.dataset.store.info.teacher,
                           "num_codebooks": self.dataset.num_codebooks,
                           "codebook_size": self.dataset.codebook_size},
            }
            path = self.ckpt_dir / f"checkpoint-{self.step:08d}.pt"
            atomic_torch_save(state, path)
            # the newest keep_checkpoints stay, and so does every multiple of keep_every
            every = self.cfg.train.keep_every
            old = sorted(p for p in self.ckpt_dir.iterdir() if CKPT_RE.match(p.name))
            for p in old[: max(0, len(old) - self.cfg.train.keep_checkpoints)]:
                if every and int(CKPT_RE.match(p.name).group(1)) % every == 0:
                    continue
                p.unlink()
            log.info("saved %s", path)
        if self.distributed:
            dist.barrier()
        return path

    def load_checkpoint(self, path: Path, state: dict | None = None) -> None:
        """Restore the run from checkpoint ``path`` (``state``: its contents, when already read)."""
        if state is None:
            state = read_checkpoint(path)
        if self.cfg.dist.fsdp and self.distributed:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

            set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                           optim_state_dict=state["optimizer"],
                           options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            self.module.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.skipped, self.consecutive_nonfinite = state["skipped"], state["consecutive_nonfinite"]
        rngs = state["rng"]
        if len(rngs) == self.world_size:
            set_rng_state(rngs[self.rank])
        else:
            log.warning("checkpoint was written by %d ranks, this run has %d: RNG states not restored",
                        len(rngs), self.world_size)
        log.info("resumed from %s (update %d, epoch %d, batch %d)", path, self.step, self.epoch, self.batch_in_epoch)

    # ---------------------------------------------------------------- data
    def batches(self):
        """Yields (epoch, batch index after this one, micro-batch) from the saved position on."""
        import torch

        from mert.data import EpochBatches, collate
        from mert.masking import clip_seed

        epoch, start = self.epoch, self.batch_in_epoch
        while True:
            sampler = EpochBatches(self.dataset, epoch, self.cfg.data.max_batch_seconds, self.rank,
                                   self.world_size, start, self.cfg.data.max_clips_per_rank)
            # its own generator: creating a loader must not draw from the global RNG (exact resume)
            gen = torch.Generator().manual_seed(clip_seed(self.cfg.train.seed, epoch, self.rank, 3))
            loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate,
                                                 num_workers=self.cfg.data.num_workers, generator=gen,
                                                 pin_memory=self.device.type == "cuda")
            for i, batch in enumerate(loader, start=start):
                yield epoch, i + 1, batch
            if len(sampler.batches) == 0:
                raise RuntimeError("the dataset gives no batch")
            epoch, start = epoch + 1, 0

    def prepare(self, batch: dict, step: int) -> dict:
        """Device transfer, CQT of the clean audio, noise mixture, masks (all seeded per clip)."""
        import torch

        from mert.masking import clip_seed, compute_mask
        from mert.noise import mix_in_batch

        cfg = self.cfg
        seed = cfg.train.seed
        idx = batch["index"].tolist()
        wav = batch["wav"]
        lengths = batch["lengths"]
        enc = self.module.encoder
        t = enc.num_frames(wav.shape[1])
        frame_lengths = enc.num_frames(lengths)
        masks = compute_mask(frame_lengths, t, [clip_seed(seed, step, i, 1) for i in idx], cfg.mask.prob,
                             cfg.mask.span, cfg.mask.min_spans)
        cqt = None
        wav_dev = wav.to(self.device, non_blocking=True)
        if self.cqt is not None:
            cqt = self.cqt(wav_dev)  # clean audio, padded clips: frames past a clip's end are never scored
        noisy, added = mix_in_batch(wav, lengths, [clip_seed(seed, step, i, 2) for i in idx], cfg.noise.prob,
                                    cfg.noise.min_segments, cfg.noise.max_segments,
                                    (cfg.noise.min_seconds, cfg.noise.max_seconds), cfg.noise.gain)
        return {"wav": noisy.to(self.device, non_blocking=True), "lengths": lengths.to(self.device),
                "mask": masks.to(self.device), "labels": batch["labels"].to(self.device), "cqt": cqt,
                "masked": float((masks & (torch.arange(t)[None] < frame_lengths[:, None])).sum()),
                "valid": float(frame_lengths.sum()), "audio_s": float(lengths.sum()) / 24000,
                "clips": len(idx), "noisy_clips": sum(1 for a in added if a)}

    # ---------------------------------------------------------------- one update
    def update(self, micro: list[dict]) -> dict:
        """Forward/backward over the micro-batches of one update, then the optimiser step (or a skip)."""
        import torch
        import torch.distributed as dist

        from mert.heads import total_loss

        cfg = self.cfg
        k = self.dataset.num_codebooks
        counts = torch.tensor([sum(m["masked"] for m in micro), sum(m["valid"] for m in micro),
                               sum(m["audio_s"] for m in micro), sum(m["clips"] for m in micro)],
                              dtype=torch.float64, device=self.device)
        if self.distributed:
            dist.all_reduce(counts)
        masked_total = counts[0].float()
        valid_total = counts[1].float()
        # stats: ce[K], correct[K], cqt, feat
        stats = torch.zeros(2 * k + 3, dtype=torch.float64, device=self.device)
        uw = float(cfg.heads.unmasked_weight)
        cuw = float(cfg.heads.cqt_unmasked_weight)
        unmasked_total = valid_total - masked_total
        loss_local = torch.zeros((), dtype=torch.float64, device=self.device)
        self.model.train()
        for j, m in enumerate(micro):
            sync = j == len(micro) - 1
            ctx = self.model.no_sync() if (self.distributed and not sync and hasattr(self.model, "no_sync")) \
                else contextlib.nullcontext()
            with ctx:
                with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                    enabled=self.autocast_dtype is not None):
                    s = self.model(m["wav"], m["lengths"], m["mask"], m["labels"], m["cqt"], uw > 0 or cuw > 0)
                loss = total_loss(s, masked_total, valid_total, cfg.heads.cqt_weight, cfg.heads.feature_penalty,
                                  uw, unmasked_total, cuw)
                # DDP / FSDP average gradients over ranks; the loss is a share of the global sum -> times world
                self.scaler.scale(loss * self.world_size).backward()
            loss_local += loss.detach().double()
            ce_u = s.ce_unmasked.detach().sum()[None] if s.ce_unmasked is not None else s.cqt.new_zeros(1)
            stats += torch.cat([s.ce.detach(), s.correct.detach(), s.cqt.detach()[None],
                                s.feat.detach()[None], ce_u]).double()
        allstats = torch.cat([loss_local[None], stats])
        if self.distributed:
            dist.all_reduce(allstats)
        loss_global = float(allstats[0])
        ce, correct = allstats[1:1 + k], allstats[1 + k:1 + 2 * k]
        mt, vt = max(float(counts[0]), 1.0), max(float(counts[1]), 1.0)
        rec = {"loss": loss_global, "ce": float(ce.sum()) / mt, "acc": float(correct.sum()) / (mt * k),
               "cqt": float(allstats[1 + 2 * k]) / mt, "feat_pen": float(allstats[2 + 2 * k]) / vt,
               "ce_unmasked": float(allstats[3 + 2 * k]) / max(vt - mt, 1.0) if uw > 0 else float("nan"),
               "ce_prior": self.ce_prior,
               "masked_frames": float(counts[0]), "audio_s": float(counts[2]), "clips": int(counts[3])}
        for i in range(k):
            rec[f"ce_{i}"] = float(ce[i]) / mt
            rec[f"acc_{i}"] = float(correct[i]) / mt
        finite = math.isfinite(loss_global)
        grad_norm = float("nan")
        if finite:
            self.scaler.unscale_(self.optimizer)
            clip = cfg.optim.clip_norm if cfg.optim.clip_norm > 0 else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)  # skips the step itself on inf/nan gradients
                if not math.isfinite(grad_norm):
                    self.skipped += 1
                self.scaler.update()
            elif math.isfinite(grad_norm):
                self.optimizer.step()
            else:
                finite = False
        if finite:
            self.consecutive_nonfinite = 0
        else:
            self.skipped += 1
            self.consecutive_nonfinite += 1
            if self.scaler.is_enabled():
                self.scaler.update(self.scaler.get_scale() / 2)
            log.warning("update %d: non-finite loss/gradient (%s), step skipped (%d in a row, %d total)",
                        self.step + 1, loss_global, self.consecutive_nonfinite, self.skipped)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        rec.update(grad_norm=grad_norm, skipped=self.skipped, loss_scale=self.scaler.get_scale()
                   if self.scaler.is_enabled() else 1.0)
        if self.consecutive_nonfinite >= cfg.train.max_consecutive_nonfinite:
            raise NonFiniteLossError(
                f"stopping: {self.consecutive_nonfinite} non-finite losses in a row at update {self.step} "
                f"(train.max_consecutive_nonfinite={cfg.train.max_consecutive_nonfinite}). Lower optim.lr, use "
                f"train.precision=bf16 instead of fp16, model.overrides.layer_norm_first=true with "
                f"model.overrides.attention_relax=32, or resume from an earlier checkpoint.")
        return rec

    # ---------------------------------------------------------------- logging
    def _csv_columns(self) -> list[str]:
        k = self.dataset.num_codebooks
        return (["step", "epoch", "lr", "loss", "ce", "ce_prior", "ce_unmasked", "acc", "cqt", "feat_pen", "grad_norm",
                 "loss_scale",
                 "skipped", "clips", "masked_frames", "audio_s", "audio_s_per_s", "mfu", "step_time", "cpu_time"]
                + [f"ce_{i}" for i in range(k)] + [f"acc_{i}" for i in range(k)])

    def _open_csv(self):
        path = self.out_dir / self.cfg.log.csv
        rows = []
        if path.exists():  # keep the rows up to the resumed update (a killed run may have logged past it)
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        cols = self._csv_columns()
        f = open(path, "w", newline="")
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
        f.flush()
        return f, w

    def _init_wandb(self):
        import wandb
        from omegaconf import OmegaConf

        mode = os.environ.get("WANDB_MODE")
        if mode is None:  # online only with credentials (env or ~/.netrc from `wandb login`), else offline
            logged_in = bool(os.environ.get("WANDB_API_KEY"))
            if not logged_in:
                import netrc

                try:
                    logged_in = netrc.netrc().authenticators("api.wandb.ai") is not None
                except (OSError, netrc.NetrcParseError):
                    logged_in = False
            mode = "online" if logged_in else "offline"
        return wandb.init(project=self.cfg.log.wandb_project, name=self.cfg.log.run_name, mode=mode,
                          dir=str(self.out_dir), config=OmegaConf.to_container(self.cfg, resolve=True),
                          resume="allow")

    # ---------------------------------------------------------------- the loop
    def run(self) -> dict:
        import torch

        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        found = newest_readable_checkpoint(self.ckpt_dir, "resuming from")  # a damaged newest one is skipped
        if found is not None:
            self.load_checkpoint(*found)
        last = cfg.optim.max_updates if cfg.train.stop_after is None else min(cfg.optim.max_updates,
                                                                             cfg.train.stop_after)
        f = w = None
        if self.is_main:
            f, w = self._open_csv()
            if self.use_wandb:
                self.wandb = self._init_wandb()
            n_enc = sum(p.numel() for p in self.module.encoder.parameters())
            n_all = sum(p.numel() for p in self.module.parameters())
            name = cfg.model.preset + (f" + {dict(cfg.model.overrides)}" if cfg.model.overrides else "")
            log.info("pretraining %s (%.2fM encoder params, %.2fM with heads) on %d x %s, %s, %d clips; "
                     "teacher %s (%d x %d); updates %d -> %d", name, n_enc / 1e6, n_all / 1e6,
                     self.world_size, self.device, self.precision, len(self.dataset),
                     self.dataset.store.info.teacher, self.dataset.num_codebooks, self.dataset.codebook_size,
                     self.step, last)
        history = []
        stream = self.batches()
        try:
            while self.step < last:
                t0, c0 = time.perf_counter(), time.process_time()
                micro = []
                for _ in range(cfg.optim.update_freq):
                    epoch, nxt, batch = next(stream)
                    micro.append(self.prepare(batch, self.step))
                    self.epoch, self.batch_in_epoch = epoch, nxt
                lr = self.scheduler.get_last_lr()[0]
                rec = self.update(micro)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                dt = time.perf_counter() - t0
                rec.update(step=self.step, epoch=self.epoch, lr=lr, step_time=dt, cpu_time=time.process_time() - c0,
                           audio_s_per_s=rec["audio_s"] / dt)
                rec["mfu"] = (self.flops_per_audio_second * rec["audio_s_per_s"] / (self.peak_flops * self.world_size)
                              if self.peak_flops else float("nan"))
                history.append(rec)
                if self.is_main:
                    w.writerow(rec)
                    f.flush()
                    if self.wandb is not None:
                        self.wandb.log(rec, step=self.step)
                    if self.step % cfg.train.log_every == 0 or self.step == 1 or self.step == last:
                        log.info("update %d | loss %.4f | ce %.4f (prior %.3f, unmasked %.3f) | acc %.3f | cqt %.4f | "
                                 "pen %.4f | gnorm %.3g | lr %.3g | %.1f audio s/s | mfu %.1f%% | skipped %d",
                                 self.step, rec["loss"], rec["ce"], rec["ce_prior"], rec["ce_unmasked"],
                                 rec["acc"], rec["cqt"], rec["feat_pen"], rec["grad_norm"], lr,
                                 rec["audio_s_per_s"], 100 * rec["mfu"], rec["skipped"])
                if self.step % cfg.train.save_every == 0 or self.step == last:
                    self.save_checkpoint()
        finally:
            if f is not None:
                f.close()
            if self.wandb is not None:
                self.wandb.finish()
        summary = {"step": self.step, "skipped": self.skipped, "world_size": self.world_size}
        if self.distributed and not cfg.dist.fsdp:
            summary["replica_max_abs_diff"] = self.replica_difference()
        if self.is_main:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        return {"history": history, **summary}

    def replica_difference(self) -> float:
        """Largest |w_rank - w_rank0| over all parameters and ranks (0 when replicas are in sync)."""
        import torch
        import torch.distributed as dist

        diff = torch.zeros((), dtype=torch.float64, device=self.device)
        for p in self.module.parameters():
            q = p.detach().clone()
            dist.broadcast(q, 0)
            diff = torch.maximum(diff, (q - p.detach()).abs().max().double())
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        return float(diff)


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="a named config (debug, mini, mert-v1-95m, mert-v1-330m) or a .yaml path")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, e.g. data.labels=DIR train.out_dir=DIR")
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (offline without a login)")


def run(args) -> int:
    import torch.distributed as dist

    from mert.pretrain_config import ConfigError, load_config

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer = None
    try:
        trainer = Trainer(cfg, wandb=args.wandb)
        trainer.run()
    except NonFiniteLossError as e:
        log.error("%s", e)
        return 3
    except (FileNotFoundError, ValueError) as e:  # bad input (labels, audio, checkpoints): one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        # The DDP reducer holds the gloo process group: let it go while the interpreter is alive. Left to
        # interpreter shutdown, its worker threads are torn down unjoined and the rank aborts ("terminate
        # called without an active exception"), about one run in five under load.
        trainer = None
        gc.collect()
        if dist.is_available() and dist.is_initialized():
            # Every rank reaches the end before the group goes away: a gloo rank that tears down while its
            # peer is still saving a checkpoint aborts the process ("terminate called without an active
            # exception"), seen under load.
            with contextlib.suppress(RuntimeError):
                dist.barrier()
            dist.destroy_process_group()
    return 0
