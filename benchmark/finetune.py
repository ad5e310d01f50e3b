"""Fine-tuning modes (``python -m benchmark run --mode lora|full``, MARBLE v2's ``lora`` and ``full`` settings): the
encoder trained together with the task head on raw audio, no feature cache.

    encoder     a copy of the representation's network per (task, seed), so every run starts from the same weights:
                ``lora`` adds peft's LoRA adapters (``finetune.lora``: rank, alpha, dropout, targets) to the
                attention projections and trains only those and the head (every base weight stays bit-identical);
                ``full`` trains every weight of the encoder. Our MERT models (mert-mini, ``random:PRESET[:SEED]``,
                MERT folders, checkpoints, hub ids: benchmark.representations.MertRepresentation) and ``hf:``
                encoders (benchmark.external.HFRepresentation) can be trained: they expose their ``model`` and a
                ``forward`` with autograd (the same padding-correct forward the feature cache is extracted with).
    forward     as the feature extraction computes a row (benchmark.features): audio longer than
                ``features.max_chunk_s`` goes through the encoder in chunks, a window task's windows are rows of
                their own; padded batches with lengths (padding never changes a frame); every probed layer
                (``probe.layers``) mean-pooled over the row's valid frames (``mean_std`` for a ``+mean_std``
                model); then the probes' head (benchmark.probes.BatchedMLP, one member): the softmax-weighted sum of
                the layers (``probe.weighted_layers``) -> Linear -> ReLU + dropout -> Linear, with the probes'
                ``probe.hidden`` / ``probe.dropout``. Row outputs are combined per unit (an item; a song for key)
                and scored by the task head (benchmark.heads), exactly as the probes' are.
    training    per epoch every train item once in a seeded random order, as one random ``finetune.crop_s`` crop
                (a shorter item whole; for a window task at most its window), ``finetune.batch_size`` crops per
                AdamW step (the encoder at ``finetune.lr`` under ``full``, the LoRA matrices at
                ``finetune.lora.lr``, the head at ``finetune.head_lr``), the gradient norm clipped at
                ``finetune.grad_clip``. The encoder runs in train mode (its dropout on) while training.
                ``finetune.precision`` bf16: autocast (CUDA by default, parameters and optimiser in float32);
                ``finetune.grad_checkpointing``: each transformer layer recomputed in the backward pass.
    selection   the probes' rule: after each epoch the validation main score (the head's ``fast_scores``, as the
                probes' early stopping); the best epoch's state is kept, training stops after
                ``finetune.patience`` epochs without a better one (at least ``min_epochs``, at most ``epochs``);
                that state is scored on valid and test with the task's metrics. ``finetune.seeds`` seeds
                (``--seeds``): seed s seeds torch (LoRA and head initialisation, dropout), numpy (crops) and Python;
                the result reports the mean and standard deviation over seeds.
    resume      after every epoch a checkpoint (trainable weights, optimiser, every RNG state, the epoch, the best
                score and state so far, the curves) is written atomically to the task's work folder
                ``<--cache-dir>/finetune/<source>/<model>@<revision>/<task>@vN-<config hash>/seed-S.pt``; a seed that
                finished is a ``seed-S.json`` there. A rerun after a kill resumes from them and gives exactly the
                result of an uninterrupted run (on the same machine and thread count). The folder is removed once
                the result is written.

Results go to the data source ``<source>-lora`` / ``<source>-full`` (benchmark.pipeline.plan_task): their own folder
and leaderboard table, the mode in the identity through the source, ``finetune.*`` in the recorded config (a
section the other modes never record or hash). The record has the frozen probes' shape (one ``layers`` row, the
weighted sum) and ``probe`` adds the mode, trainable and total parameter counts, the curves and timings.
"""
from __future__ import annotations

import copy
import json
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmark.errors import RunError

MODES = ("lora", "full")
SUPPORTED_TYPES = ("multiclass", "multilabel", "regression", "key")
CHECKPOINT_FORMAT = 1

__all__ = ["MODES", "SUPPORTED_TYPES", "FinetuneModel", "after_epoch", "check_representation", "check_tasks",
           "load_clips", "lora_targets", "remove_work_folder", "run_finetune", "source_suffix", "work_folder"]


def source_suffix(mode: str) -> str:
    """What a fine-tuned result adds to its data source's name: its own folder and leaderboard table."""
    return f"-{mode}"


def check_tasks(specs, mode: str) -> None:
    """Every task is a clip-level one, else a RunError naming the first other and the supported ones."""
    from tasks import all_tasks

    ok = [s.name for s in all_tasks() if s.type in SUPPORTED_TYPES]
    for spec in specs:
        if spec.type not in SUPPORTED_TYPES:
            raise RunError(f"--mode {mode}: task {spec.name!r} is a {spec.type} task; fine-tuning supports the "
                           f"clip-level tasks ({', '.join(SUPPORTED_TYPES)} types): {', '.join(ok)}")


def check_representation(rep, mode: str, cfg=None) -> None:
    """``rep`` can be trained (a ``model`` module and a ``forward`` with autograd), and under ``lora`` the
    ``finetune.lora.targets`` of ``cfg`` name modules of it; else an error saying what can be fine-tuned."""
    import torch

    if not (callable(getattr(rep, "forward", None)) and isinstance(getattr(rep, "model", None), torch.nn.Module)):
        raise RunError(f"--mode {mode}: --model {rep.name} cannot be fine-tuned (it exposes no trainable network); "
                       "lora and full train our MERT models (mert-mini, random:PRESET[:SEED], MERT folders, "
                       "checkpoints and hub ids) and hf: encoders; use --mode freeze for this model")
    if getattr(rep, "pooling", "mean") not in ("mean", "mean_std"):
        raise RunError(f"--mode {mode}: --model {rep.name}: unknown pooling {rep.pooling!r}")
    if mode == "lora":
        import importlib.util

        if importlib.util.find_spec("peft") is None:
            raise RunError("--mode lora needs the peft package: pip install -e '.[finetune]' (or pip install "
                           "peft==0.22.0)")
        if cfg is not None:
            lora_targets(rep, str(cfg.finetune.lora.targets))


def lora_targets(rep, text: str) -> list[str]:
    """``finetune.lora.targets`` -> the module names peft adapts: ``auto`` is the representation's
    ``attention_projections``; every name must match a Linear module of the encoder (its name, or its name's end
    after a dot), else a ConfigError listing what there is."""
    import torch

    from benchmark.config import LORA_AUTO, ConfigError

    if text == LORA_AUTO:
        names = list(getattr(rep, "attention_projections", ()) or ())
        if not names:
            raise ConfigError(f"finetune.lora.targets=auto: {rep.name} declares no attention projections; name the "
                              "modules to adapt, e.g. finetune.lora.targets=q_proj,v_proj")
    else:
        names = [t.strip() for t in text.split(",") if t.strip()]
        if not names:
            raise ConfigError("finetune.lora.targets is empty; use auto or a comma list of module names")
    linear = [n for n, m in rep.model.named_modules() if isinstance(m, torch.nn.Linear)]
    missing = [t for t in names if not any(n == t or n.endswith("." + t) for n in linear)]
    if missing:
        ends = sorted({n.rsplit(".", 1)[-1] for n in linear})
        raise ConfigError(f"finetune.lora.targets={text!r}: {rep.name} has no Linear module named "
                          f"{', '.join(missing)}; its Linear modules are named {', '.join(ends)}")
    return names


def work_folder(cache_dir, plan) -> Path:
    """The task's work folder (checkpoints per seed): under the feature cache root, named as the result is (source,
    ``<model>@<revision>``, task and version) and by the config hash, so only the same run resumes from it."""
    from benchmark.paths import cache_root

    return (cache_root(cache_dir) / "finetune" / plan.source / plan.path.parent.name /
            f"{plan.spec.name}@v{plan.spec.version}-{plan.chash}")


def remove_work_folder(cache_dir, plan) -> None:
    """Remove the task's work folder once its result is written (and the folders above it it leaves empty)."""
    from benchmark.paths import cache_root

    work = work_folder(cache_dir, plan)
    shutil.rmtree(work, ignore_errors=True)
    top = cache_root(cache_dir) / "finetune"
    for parent in work.parents:
        if parent == top.parent:
            break
        try:
            parent.rmdir()  # only while empty
        except OSError:
            break


# ================================================================================================ data
@dataclass
class Clips:
    """A split as fine-tuning reads it: the decoded audio of its usable items (memory-mapped), and its rows,
    each an item and the sample ranges that go through the encoder for it (``feats``: a SplitFeatures without
    features, ``owner`` per row, for the task head's targets and units)."""
    feats: Any
    audio: dict[int, np.ndarray]
    rows: list[tuple[int, list[tuple[int, int]]]]

    @property
    def skipped(self) -> list[dict]:
        return self.feats.skipped


def _chunks(n: int, sr: int, fcfg) -> list[tuple[int, int]]:
    """The chunks a clip of ``n`` samples goes through the encoder in (benchmark.features' rule for clip tasks:
    at most ``features.max_chunk_s``, a tail under 1 s merged into the previous chunk)."""
    from benchmark.features import _segments

    return _segments(n, sr, SimpleNamespace(window="clip"), fcfg)


def load_clips(spec, folder, split: str, rep, fcfg, limit, store: Path, item_rows: bool = False) -> Clips:
    """Decode a split's audio at the representation's sample rate into ``store`` (memory-mapped), skipping what the
    feature extraction skips (unreadable, too short, silent, no frames; more than ``features.max_skip_fraction``
    fails), and make its rows as the extraction does (``item_rows``: one row per item, for the train crops)."""
    from benchmark.features import SplitFeatures, _segments, check_skipped, read_item, select_items
    from benchmark.rows import spill
    from tasks.format import read_split, resolve

    items = select_items(read_split(folder, split), limit)
    if not items:
        raise RunError(f"{Path(folder) / (split + '.jsonl')}: split {split!r} has no items")
    sr = int(rep.sample_rate)
    audio, rows, skipped = {}, [], []
    for gi, it in enumerate(items):
        wav, skip = read_item(folder, it, sr, fcfg)
        if skip is None and hasattr(rep, "num_frames") and int(rep.num_frames(len(wav))) < 1:
            skip = {"id": it.id, "audio": str(resolve(folder, it.audio)), "reason": "too short for the model (no frames)"}
        if skip is not None:
            skipped.append(skip)
            continue
        audio[gi] = spill(store / f"{split}-{gi}.npy", np.asarray(wav, dtype=np.float32))
        if item_rows or spec.window != "window":
            rows.append((gi, _chunks(len(wav), sr, fcfg)))
        else:
            rows += [(gi, [seg]) for seg in _segments(len(wav), sr, spec, fcfg)]
    owner = np.array([gi for gi, _ in rows], dtype=np.int64)
    feats = SplitFeatures(split=split, x=None, owner=owner, times=None, items=items, skipped=skipped)
    check_skipped(feats, spec, fcfg)
    if not rows:
        raise RunError(f"[{spec.name}/{split}] no usable audio in {folder} (every item skipped)")
    return Clips(feats=feats, audio=audio, rows=rows)


# ================================================================================================ the model
class FinetuneModel:
    """The trained network of one (task, seed): a copy of the representation's encoder (LoRA-adapted under
    ``lora``) and the probes' head on the mean-pooled layers. ``module`` holds every weight (``encoder.*``,
    ``head.*``), so its ``named_parameters`` and ``state_dict`` are the run's."""

    def __init__(self, rep, head, cfg, mode: str, device: str):
        import torch

        from benchmark.config import parse_layers
        from benchmark.probes import BatchedMLP, Member, weighted_positions

        self.rep = copy.deepcopy(rep)  # the caller's representation (and its weights) are never touched
        self.rep.to(device)
        encoder = self.rep.model
        self.mode = mode
        self.device = device
        self.base_parameters = sum(p.numel() for p in encoder.parameters())
        if mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            lc = cfg.finetune.lora
            self.targets = lora_targets(self.rep, str(lc.targets))
            inject_adapter_in_model(LoraConfig(r=int(lc.r), lora_alpha=float(lc.alpha),
                                               lora_dropout=float(lc.dropout), target_modules=self.targets), encoder)
            # peft marks only the adapters trainable; the base weights never get a gradient
            encoder.to(device)
        elif mode != "full":
            raise ValueError(f"FinetuneModel: mode {mode!r}; use one of {', '.join(MODES)}")
        else:
            self.targets = []
        if bool(cfg.finetune.grad_checkpointing):
            _enable_checkpointing(encoder)
        self.layers = parse_layers(cfg.probe.layers, int(rep.num_layers))
        self.pooling = str(getattr(rep, "pooling", "mean"))
        dim = int(rep.dim) * (2 if self.pooling == "mean_std" else 1)
        mask = weighted_positions(self.layers, str(cfg.probe.weighted_layers))
        weighted = len(self.layers) > 1 and (mask is None or sum(mask) > 1)
        member = Member(None if weighted else self.layers[-1], float(cfg.finetune.head_lr))
        self.mlp = BatchedMLP([member], len(self.layers), dim, int(cfg.probe.hidden), head.out_dim(),
                              float(cfg.probe.dropout), {l: i for i, l in enumerate(self.layers)}, device,
                              mask if weighted else None)
        self.layer_key = member.layer_key
        head_params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.detach().clone())
                                              for k, v in self.mlp.params.items()})
        self.mlp.params = head_params  # the MLP reads its parameters from the module's (one set of weights)
        self.module = torch.nn.ModuleDict({"encoder": encoder, "head": head_params})

    # -- parameters ---------------------------------------------------------------------------------------
    def trainable(self) -> dict[str, Any]:
        return {n: p for n, p in self.module.named_parameters() if p.requires_grad}

    def parameter_groups(self, cfg) -> list[dict]:
        ft = cfg.finetune
        enc = [p for n, p in self.module.named_parameters() if p.requires_grad and n.startswith("encoder.")]
        head = [p for n, p in self.module.named_parameters() if p.requires_grad and n.startswith("head.")]
        lr = float(ft.lora.lr if self.mode == "lora" else ft.lr)
        return [{"params": enc, "lr": lr, "weight_decay": float(ft.weight_decay)},
                {"params": head, "lr": float(ft.head_lr), "weight_decay": float(cfg.probe.weight_decay)}]

    def counts(self) -> dict[str, int]:
        params = dict(self.module.named_parameters())
        return {"trainable_parameters": int(sum(p.numel() for p in params.values() if p.requires_grad)),
                "total_parameters": int(sum(p.numel() for p in params.values())),
                "encoder_parameters": int(self.base_parameters),
                "head_parameters": int(sum(p.numel() for n, p in params.items() if n.startswith("head.")))}

    def state(self) -> dict[str, Any]:
        """The trainable weights (a detached copy on the CPU): what a checkpoint and the best state hold."""
        return {n: p.detach().to("cpu", copy=True) for n, p in self.trainable().items()}

    def load(self, state: dict[str, Any]) -> None:
        import torch

        params = self.trainable()
        if set(state) != set(params):
            raise KeyError(f"trainable weights differ: {sorted(set(state) ^ set(params))[:5]}")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[n])

    def layer_weights(self) -> list[float]:
        """The head's softmax weights over the probed layers (one-hot for a single layer)."""
        import torch

        with torch.no_grad():
            return [float(v) for v in self.mlp.mixing()[0].cpu()]

    def train(self, on: bool = True) -> None:
        self.module.train(on)

    # -- forward ------------------------------------------------------------------------------------------
    def pooled(self, pieces: list[np.ndarray], owner: list[int], n: int):
        """Pieces of audio (1-d, each at most a chunk) of ``n`` rows (``owner``: the row of each piece) -> every
        row's pooled layers [n, L, D'] (float32): the mean (and std) over the valid frames of all its pieces."""
        import torch

        longest = max(len(p) for p in pieces)
        wav = torch.zeros(len(pieces), longest)
        for b, p in enumerate(pieces):
            wav[b, : len(p)] = torch.from_numpy(np.array(p, dtype=np.float32))  # a copy: the audio is mapped read-only
        lengths = torch.tensor([len(p) for p in pieces], dtype=torch.long)
        layers, flen = self.rep.forward(wav.to(self.device), lengths)
        h = torch.stack([layers[i] for i in self.layers], 2)  # [P, T', L, D]
        with torch.autocast(h.device.type, enabled=False):  # pooled in float32, as the feature cache pools
            h = h.float()
            mask = (torch.arange(h.shape[1], device=h.device)[None] < flen.to(h.device)[:, None]).float()
            idx = torch.as_tensor(owner, dtype=torch.long, device=h.device)
            count = torch.zeros(n, device=h.device).index_add(0, idx, mask.sum(1)).clamp_min(1.0)[:, None, None]
            s1 = torch.zeros(n, *h.shape[2:], device=h.device).index_add(0, idx,
                                                                         torch.einsum("ptld,pt->pld", h, mask))
            mean = s1 / count
            if self.pooling == "mean":
                return mean
            s2 = torch.zeros_like(s1).index_add(0, idx, torch.einsum("ptld,pt->pld", h * h, mask))
            return torch.cat([mean, torch.sqrt((s2 / count - mean * mean).clamp_min(0.0) + 1e-12)], -1)

    def outputs(self, x):
        """Pooled rows [n, L, D'] -> the head's outputs [n, C] (float32)."""
        return self.mlp.forward(x, train=self.module.training)[0].float()


def _enable_checkpointing(encoder) -> None:
    """Gradient checkpointing of the transformer layers: transformers' own (non-reentrant, so gradients reach LoRA
    matrices inside frozen layers) or our MERT encoder's (mert.model.Encoder.gradient_checkpointing)."""
    if hasattr(encoder, "gradient_checkpointing_enable"):
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(getattr(encoder, "encoder", None), "gradient_checkpointing"):
        encoder.encoder.gradient_checkpointing = True
    else:
        raise RunError(f"finetune.grad_checkpointing=true: {type(encoder).__name__} has no gradient checkpointing")


# ================================================================================================ training
@dataclass
class _Seed:
    """One seed's training state: what a checkpoint saves."""
    seed: int
    epoch: int = 0                      # epochs done
    best: float = float("-inf")         # best validation main score so far
    best_epoch: int = -1
    since: int = 0                      # epochs since it improved
    best_state: dict = field(default_factory=dict)
    train_loss: list = field(default_factory=list)
    valid_main: list = field(default_factory=list)
    skipped_steps: int = 0              # steps with a non-finite loss (not applied)
    seconds: float = 0.0                # training and validation time, summed over the processes that ran it


def _rng_state(crops: np.random.Generator) -> dict:
    import torch

    out = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
           "crops": crops.bit_generator.state}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _set_rng_state(state: dict, crops: np.random.Generator) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    crops.bit_generator.state = state["crops"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def after_epoch(seed: int, epoch: int, checkpoint: Path) -> None:
    """Called once an epoch's checkpoint is written (nothing by default; the tests interrupt a run here)."""


def _save_checkpoint(path: Path, st: _Seed, model: FinetuneModel, opt, crops, chash: str) -> None:
    import torch

    from mert.fsutil import atomic_write

    blob = {"format": CHECKPOINT_FORMAT, "config_hash": chash, "seed": st.seed, "epoch": st.epoch, "best": st.best,
            "best_epoch": st.best_epoch, "since": st.since, "best_state": st.best_state,
            "train_loss": st.train_loss, "valid_main": st.valid_main, "skipped_steps": st.skipped_steps,
            "seconds": st.seconds, "trainable": model.state(), "optimizer": opt.state_dict(),
            "rng": _rng_state(crops)}
    atomic_write(path, "wb", lambda f: torch.save(blob, f))


def _load_checkpoint(path: Path, st: _Seed, model: FinetuneModel, opt, crops, chash: str) -> bool:
    """Resume ``st`` (and the model, optimiser, RNGs) from ``path``; False, with a warning on stderr (shown even
    under --quiet), when it cannot be used (damaged, cut short, another run's): the caller starts the seed again."""
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)  # our own file, in our work folder
        if blob.get("format") != CHECKPOINT_FORMAT or blob.get("config_hash") != chash or blob["seed"] != st.seed:
            raise ValueError("written by another run or format")
        model.load(blob["trainable"])
        opt.load_state_dict(blob["optimizer"])
        _set_rng_state(blob["rng"], crops)
        for k in ("epoch", "best", "best_epoch", "since", "best_state", "train_loss", "valid_main", "skipped_steps",
                  "seconds"):
            setattr(st, k, blob[k])
    except Exception as e:  # noqa: BLE001 - a damaged or foreign checkpoint: start the seed again
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        print(f"warning: {path}: cannot resume from it ({why}); training seed {st.seed} from the start",
              file=sys.stderr)
        return False
    return True


class _Trainer:
    """What every seed of a task shares: the splits, the head and its prepared data, the config."""

    def __init__(self, spec, head, clips: dict, data: dict, cfg, rep, mode: str, device: str, precision: str,
                 log, work: Path, chash: str):
        self.spec, self.head, self.clips, self.data, self.cfg = spec, head, clips, data, cfg
        self.rep, self.mode, self.device, self.precision, self.log = rep, mode, device, precision, log
        self.work, self.chash = work, chash
        self.ft = cfg.finetune
        sr = int(rep.sample_rate)
        crop_s = float(self.ft.crop_s)
        if spec.window == "window":
            crop_s = min(crop_s, float(spec.window_s))
        self.crop = max(1, int(round(crop_s * sr)))
        self.sr = sr
        self.budget = int(float(cfg.features.batch_seconds) * sr)  # audio samples per evaluation batch

    # -- one seed -------------------------------------------------------------------------------------------
    def run_seed(self, seed: int) -> dict:
        """Train one seed to its end (resuming from its checkpoint when there is one) and score its best epoch on
        valid and test; a seed that finished before is read back (``seed-S.json``)."""
        from mert.fsutil import atomic_write

        done = self.work / f"seed-{seed}.json"
        if done.exists():
            try:
                out = json.loads(done.read_text())
                self.log(f"[{self.spec.name}] seed {seed}: finished before ({done})")
                return out
            except ValueError:
                pass  # damaged: train it again
        model, opt, crops = self._start(seed)
        st = _Seed(seed)
        ckpt = self.work / f"seed-{seed}.pt"
        if ckpt.exists():
            if _load_checkpoint(ckpt, st, model, opt, crops, self.chash):
                self.log(f"[{self.spec.name}] seed {seed}: resuming after epoch {st.epoch} ({ckpt})")
            else:
                ckpt.unlink(missing_ok=True)
                model, opt, crops = self._start(seed)
                st = _Seed(seed)
        counts = model.counts()
        while st.epoch < int(self.ft.epochs) and not self._stopped(st):
            t0 = time.time()
            loss, skipped = self._train_epoch(model, opt, crops)
            score = self._valid_score(model)
            if score > st.best:
                st.best, st.best_epoch, st.since = score, st.epoch, 0
                st.best_state = model.state()
            else:
                st.since += 1
            st.train_loss.append(loss)
            st.valid_main.append(score)
            st.skipped_steps += skipped
            st.epoch += 1
            st.seconds += time.time() - t0
            self.log(f"[{self.spec.name}] {self.mode} seed {seed} epoch {st.epoch}: train loss {loss:.4f}, valid "
                     f"{score:.4f} (best {st.best:.4f} at epoch {st.best_epoch + 1}; {time.time() - t0:.1f} s)")
            if hasattr(self.log, "epoch"):
                from benchmark.probes import Member

                self.log.epoch(self.spec.name, seed, st.epoch - 1, [score], [Member(None, 0.0)])
            _save_checkpoint(ckpt, st, model, opt, crops, self.chash)
            after_epoch(seed, st.epoch, ckpt)
        if not st.best_state:
            raise RunError(f"[{self.spec.name}] seed {seed}: no epoch reached a finite validation score; the result "
                           "is not written. Check finetune.* (a lower lr) and the data")
        model.load(st.best_state)
        valid, choice = self._final_scores(model, "valid")
        test, _ = self._final_scores(model, "test", choice)
        out = {"seed": seed, "valid": valid, "test": test, "best_epoch": st.best_epoch, "epochs_run": st.epoch,
               "train_loss": st.train_loss, "valid_main": st.valid_main, "skipped_steps": st.skipped_steps,
               "layer": model.layer_key, "layer_weights": model.layer_weights(), "seconds": round(st.seconds, 3), **counts}
        atomic_write(done, "w", lambda f: f.write(json.dumps(out)))
        ckpt.unlink(missing_ok=True)
        return out

    def _start(self, seed: int):
        """A seed's model, optimiser and crop generator as at its start (every RNG seeded with ``seed``)."""
        import torch

        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        model = FinetuneModel(self.rep, self.head, self.cfg, self.mode, self.device)
        return model, torch.optim.AdamW(model.parameter_groups(self.cfg)), np.random.default_rng(seed)

    def _stopped(self, st: _Seed) -> bool:
        return st.since >= int(self.ft.patience) and st.epoch >= int(self.ft.min_epochs)

    # -- steps ----------------------------------------------------------------------------------------------
    def _train_epoch(self, model: FinetuneModel, opt, crops: np.random.Generator) -> tuple[float, int]:
        """One pass over the train items (one random crop each, a seeded order); the mean train loss."""
        import torch

        from benchmark.precision import autocast

        train = self.clips["train"]
        y = self.data["train"]["y_rows"]
        params = [p for p in model.trainable().values()]
        clip = float(self.ft.grad_clip)
        model.train(True)
        perm = crops.permutation(len(train.rows))
        bs = int(self.ft.batch_size)
        total, n, skipped = 0.0, 0, 0
        for i in range(0, len(perm), bs):
            rows = perm[i:i + bs]
            pieces, owner = [], []
            for j, r in enumerate(rows):
                wav = train.audio[train.rows[r][0]]
                if len(wav) > self.crop:
                    a = int(crops.integers(0, len(wav) - self.crop + 1))
                    wav = wav[a:a + self.crop]
                for a, b in _chunks(len(wav), self.sr, self.cfg.features):
                    pieces.append(wav[a:b])
                    owner.append(j)
            with autocast(self.precision, self.device):
                out = model.outputs(model.pooled(pieces, owner, len(rows)))
            loss = self.head.loss(out[None], y[torch.as_tensor(rows)].to(self.device))[0]
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                skipped += 1
                continue
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            total += float(loss.detach()) * len(rows)
            n += len(rows)
        opt.zero_grad(set_to_none=True)
        return (total / n if n else float("nan")), skipped

    def row_outputs(self, model: FinetuneModel, split: str):
        """Every row of a split through the model (eval mode, no gradients) -> [R, C] float32 on the CPU, in
        padded batches of at most ``features.batch_seconds`` of audio, longest rows first."""
        import torch

        from benchmark.precision import autocast

        clips = self.clips[split]
        sizes = [sum(b - a for a, b in segs) for _, segs in clips.rows]
        order = sorted(range(len(sizes)), key=lambda r: -sizes[r])
        out = torch.zeros(len(sizes), self.head.out_dim())
        model.train(False)
        i = 0
        with torch.no_grad():
            while i < len(order):
                batch, pieces, owner, longest = [], [], [], 0
                while i < len(order):
                    gi, segs = clips.rows[order[i]]
                    padded = max(longest, *(b - a for a, b in segs))  # every piece is padded to the longest
                    if batch and (len(pieces) + len(segs)) * padded > self.budget:
                        break
                    for a, b in segs:
                        pieces.append(clips.audio[gi][a:b])
                        owner.append(len(batch))
                    batch.append(order[i])
                    longest = padded
                    i += 1
                with autocast(self.precision, self.device):
                    y = model.outputs(model.pooled(pieces, owner, len(batch)))
                out[torch.as_tensor(batch)] = y.cpu()
        return out

    def _units(self, model: FinetuneModel, split: str):
        from benchmark.probes import unit_outputs

        return unit_outputs(self.head, self.row_outputs(model, split)[None], self.data[split])

    def _valid_score(self, model: FinetuneModel) -> float:
        """The validation main score the probes stop early on (the head's vectorised ``fast_scores``)."""
        score = float(self.head.fast_scores(self._units(model, "valid"), self.data["valid"])[0])
        return score if np.isfinite(score) else float("-inf")

    def _final_scores(self, model: FinetuneModel, split: str, choice=None) -> tuple[dict[str, float], Any]:
        """Every metric of the task on a split, as the probes' best states are scored: on validation with what the
        head chooses there (Head.choose, e.g. the key ensemble), on test with validation's ``choice``."""
        u = self._units(model, split)[0].numpy()
        if split == "valid":
            choice = self.head.choose(u, self.data[split])
        s = self.head.scores_with(u, self.data[split], choice)
        s["main"] = self.spec.main_score_of(s)
        return {k: float(v) for k, v in s.items() if isinstance(v, (int, float))}, choice


# ================================================================================================ the task
def run_finetune(plan, rep, opts, log, head_inputs) -> tuple[dict, dict]:
    """Fine-tune on one task (``plan``: benchmark.pipeline.TaskPlan): (the result fields, as
    ``benchmark.pipeline.run_probes`` returns them, and the data section's extras: counts, rows, skipped files,
    load and train seconds). ``head_inputs``: benchmark.pipeline.probe_inputs, the head and its prepared splits as
    the probes get them (passed in: the pipeline imports this module, not the other way round)."""
    import tempfile

    spec, cfg, mode = plan.spec, plan.cfg, plan.mode
    check_tasks([spec], mode)
    check_representation(rep, mode, cfg)
    device = str(cfg.features.device)
    precision = str(cfg.finetune.precision)  # resolved by benchmark.pipeline.resolved_config
    work = work_folder(opts.cache_dir, plan)
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob(".audio-*"):  # decoded audio left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    labels = list(plan.meta.get("labels") or spec.labels)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix=".audio-", dir=work) as store:
        by_split = {split: load_clips(spec, plan.folder, split, rep, cfg.features, opts.limit, Path(store),
                                      item_rows=split == spec.splits[0])
                    for split in spec.splits[:3]}
        # the head, its targets and units as the probes get them (regression targets standardised on train)
        head, prepared, _ = head_inputs(spec, labels, {s: c.feats for s, c in by_split.items()}, cfg, rep)
        clips = dict(zip(("train", "valid", "test"), by_split.values()))
        data = dict(zip(("train", "valid", "test"), prepared))
        load_s = time.time() - t0
        log(f"[{spec.name}] {mode} fine-tuning of {rep.name}: {len(clips['train'].rows)} train items, "
            f"{len(clips['valid'].rows)} / {len(clips['test'].rows)} valid / test rows; work folder {work}")
        trainer = _Trainer(spec, head, clips, data, cfg, rep, mode, device, precision, log, work, plan.chash)
        seeds = list(range(int(cfg.finetune.seeds)))
        t1 = time.time()
        per_seed = [trainer.run_seed(s) for s in seeds]
        train_s = time.time() - t1
    summary = _summarize(per_seed, seeds, cfg, mode, trainer, spec)
    extras = {"counts": {s: len(c.feats.items) for s, c in by_split.items()},
              "rows": {s: len(c.rows) for s, c in by_split.items()},
              "skipped": [dict(d, split=s, stage="load") for s, c in by_split.items() for d in c.skipped],
              "load_s": load_s, "train_s": train_s}
    return summary, extras


def _summarize(per_seed: list[dict], seeds: list[int], cfg, mode: str, trainer: _Trainer, spec) -> dict:
    """The result fields: the weighted-sum row (the mean over seeds of each seed's best epoch), the selection and
    what the training cost."""
    ft = cfg.finetune
    lr = float(ft.lora.lr if mode == "lora" else ft.lr)
    names = [k for k in per_seed[0]["test"]]
    v = [s["valid"]["main"] for s in per_seed]
    test = {k: float(np.mean([s["test"][k] for s in per_seed])) for k in names}
    test_std = {k: float(np.std([s["test"][k] for s in per_seed])) for k in names}
    layer_key = per_seed[0]["layer"]
    row = {"layer": layer_key, "lr": lr, "valid_main": float(np.mean(v)), "valid_main_std": float(np.std(v)),
           "test": test, "test_std": test_std, "best_epoch": [int(s["best_epoch"]) for s in per_seed],
           "test_main_per_seed": [float(s["test"]["main"]) for s in per_seed]}
    first = per_seed[0]
    epochs = sum(int(s["epochs_run"]) for s in per_seed)
    seconds = sum(float(s["seconds"]) for s in per_seed)
    probe: dict[str, Any] = {
        "mode": mode, "trainable_parameters": first["trainable_parameters"],
        "total_parameters": first["total_parameters"], "encoder_parameters": first["encoder_parameters"],
        "head_parameters": first["head_parameters"], "lr": lr, "head_lr": float(ft.head_lr),
        "crop_s": trainer.crop / trainer.sr, "batch_size": int(ft.batch_size),
        "steps_per_epoch": int(np.ceil(len(trainer.clips["train"].rows) / int(ft.batch_size))),
        "precision": trainer.precision, "train_loss": [s["train_loss"] for s in per_seed],
        "valid_main": [s["valid_main"] for s in per_seed], "skipped_steps": [s["skipped_steps"] for s in per_seed],
        "seconds": round(seconds, 3), "seconds_per_epoch": round(seconds / max(epochs, 1), 3)}
    if mode == "lora":
        lc = ft.lora
        probe["lora"] = {"r": int(lc.r), "alpha": float(lc.alpha), "dropout": float(lc.dropout),
                         "targets": lora_targets(trainer.rep, str(lc.targets)), "library": _peft_version()}
    by = ("validation main score: each seed's best epoch (early stopping, finetune.patience), mean over seeds")
    return {
        "scores": {"main": test["main"], "main_std": test_std["main"], "test": test, "test_std": test_std,
                   "valid_main": row["valid_main"]},
        "selection": {"layer": layer_key, "lr": lr, "by": by},
        "layers": [row],
        "seeds": seeds,
        "epochs_run": [int(s["epochs_run"]) for s in per_seed],
        "layer_weights": [s["layer_weights"] for s in per_seed] if layer_key == "weighted" else [],
        "probe": probe,
    }


def _peft_version() -> str:
    from importlib.metadata import version

    return f"peft {version('peft')}"
