"""MLP probes for every layer and learning rate at once.

The probe of the MARBLE constrained protocol is Linear(D -> 512) -> ReLU -> Dropout(0.2) -> Linear(512 -> C),
trained with Adam (batch 64) for each learning rate of the grid, the lr halved on a validation plateau,
early stopping on the validation main score, and the best-validation state scored once on test; on every
single layer and on a softmax-weighted sum of layers.

Instead of one run per (layer, lr) as MARBLE does, all of them (the *members*) train as one batched model:
stacked weights ``W1 [M, D, H]``, ``W2 [M, H, C]``, one ``torch.bmm`` per layer per mini-batch. Member m reads
its input through a mixing row ``A[m] [L]`` (one-hot for a single-layer probe, softmax of learned weights for
the weighted sum): ``x_m = einsum('bld,ml->mbd', x, A)``. Members share the mini-batch order (one sweep per
seed, so seeds differ in order, initialisation and dropout) and nothing else: their losses are summed, so
each member's gradient is its own; Adam is elementwise, and the per-member learning rate, plateau halving
and early stopping are a per-member lr vector in a batched Adam step (a stopped member gets lr 0 and keeps
its best state; stopped members are dropped from the batched model at the end of the epoch, so the
sweep gets cheaper as probes converge). Selection: the (layer, lr) with the best validation main score, averaged over seeds.

The lr plateau rule (``probe.plateau_mode``): ``halving`` (ours, the embedded default) multiplies the lr by
``plateau_factor`` every ``plateau_patience`` epochs without a better validation score; ``torch`` (the real-data
default, MARBLE's) is ReduceLROnPlateau's rule, per member (:func:`torch_plateau_step`). The weighted sum mixes
every probed layer (``probe.weighted_layers=all``) or, as MARBLE's ``layer: all``, the transformer layers 1..L
only (``transformer``, the real-data default). docs/protocol.md lists every such choice.

Successive halving (``probe.prune=halving``, off by default): after each rung of ``probe.prune_rungs`` epochs
(2, 4, 8, 16, 32), the members still training are ranked by their best validation main score so far and only
the best ``ceil(n / probe.prune_eta)`` go on, always including the overall best and the best
``probe.prune_keep_per_layer`` members of every layer (the weighted sum counts as a layer): with the default 1
every layer keeps its leading lr until it stops early, so the per-layer curve of the results still comes from
a fully trained probe per layer, and the cost falls towards L + 1 members instead of L x lrs + lrs. A pruned
member is dropped like a stopped one: it keeps its best-so-far state, which is scored on validation and test
at the end like every other member's (its grid row says ``pruned_at_epoch``); selection is unchanged (the
best mean validation main score of the best states), so a pruned member can only be chosen if nothing that
went on beat the score it had when it was pruned.

Trained probes (``keep_states``, on by default): every member's best-validation state is kept per seed (weights
in float16 on the CPU, the layer mixing in float32) with the train standardisation, so the chosen probe can be
stored and applied again without the training data (benchmark.artefacts); :func:`chosen_index` says which member
was chosen.

Precision (``precision="bf16"``, from ``features.precision`` resolved for the run's device: bf16 on a CUDA GPU
that supports it by default, fp32 on the CPU): the member forward passes run under
``torch.autocast(bfloat16)``; parameters, Adam state, the standardisation and the losses stay float32 (outputs
are cast to float32 before the loss and before scoring).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Member:
    layer: int | None  # None: softmax-weighted sum of the probed layers
    lr: float

    @property
    def layer_key(self) -> str:
        return "weighted" if self.layer is None else str(self.layer)


@dataclass
class SweepResult:
    members: list[Member]
    seeds: list[int]
    valid: list[list[dict[str, float]]]     # [seed][member] -> metrics (best-validation state)
    test: list[list[dict[str, float]]]
    best_epoch: list[list[int]]
    epochs_run: list[int]
    layer_weights: list[list[float]] = field(default_factory=list)   # per seed, first weighted member
    seconds: float = 0.0
    pruned_at: list[list[int | None]] = field(default_factory=list)  # [seed][member]: epochs done when pruned
    member_epochs: list[int] = field(default_factory=list)           # per seed: epochs trained, summed over members
    # keep_states: per seed, every member's best-validation parameters (W1 [M, D, H], b1 [M, 1, H], W2 [M, H, C],
    # b2 [M, 1, C] float16, cpu) and its layer mixing row (``mixing`` [M, L] float32: one-hot, or the softmax
    # weights of a weighted member)
    states: list[dict] = field(default_factory=list)
    # per seed: what the head chose on validation for each member (Head.choose), or None
    choices: list[list[dict] | None] = field(default_factory=list)
    layers: list[int] = field(default_factory=list)                  # the probed layers (the mixing's columns)
    standardizer: dict = field(default_factory=dict)                 # "mean", "inv" [L, D] float32 (cpu)


class Standardizer:
    """Per (layer, dimension) z-scoring with train statistics, applied to float16 rows on the fly."""

    def __init__(self, x: np.ndarray, layers: list[int], enabled: bool = True, chunk: int = 4096):
        import torch

        L, D = len(layers), x.shape[2]
        if enabled:
            s = np.zeros((L, D)); s2 = np.zeros((L, D))
            for i in range(0, len(x), chunk):
                b = select_rows(x, np.arange(i, min(len(x), i + chunk)), layers).astype(np.float64)
                s += b.sum(0); s2 += (b ** 2).sum(0)
            mean = s / len(x)
            std = np.sqrt(np.maximum(s2 / len(x) - mean ** 2, 0)) + 1e-5
        else:
            mean, std = np.zeros((L, D)), np.ones((L, D))
        self.layers = layers
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.inv = torch.tensor(1 / std, dtype=torch.float32)

    def __call__(self, x_rows: np.ndarray, device):
        """Rows already read (all layers) -> the probed layers, standardised, as a float32 tensor."""
        return self._scale(x_rows[:, self.layers], device)

    def read(self, x, idx, device):
        """Rows ``idx`` of ``x`` standardised; only the probed layers are read (:func:`select_rows`)."""
        return self._scale(select_rows(x, idx, self.layers), device)

    def _scale(self, rows: np.ndarray, device):
        import torch

        if self.mean.device != torch.device(device):
            self.mean, self.inv = self.mean.to(device), self.inv.to(device)
        x = torch.from_numpy(np.ascontiguousarray(rows)).to(device).float()
        return (x - self.mean) * self.inv


def select_rows(x, idx, layers) -> np.ndarray:
    """Rows ``idx`` of features ``x`` [R, L, D] with only ``layers``: from the cache's memory-mapped shards
    (benchmark.rows.ShardedRows.take) only those layers leave the disk; a numpy array is indexed as usual."""
    if isinstance(x, np.ndarray):
        return x[idx][:, layers]
    return x.take(idx, layers)


_RELU_DROPOUT = None


def _relu_dropout():
    """ReLU then inverted dropout as one autograd op: one mask (keep with probability 1 - p, times 1 / (1 - p),
    times z > 0) is drawn with ``rand_like`` and reused by the backward. Same distribution as
    ``F.dropout(F.relu(z))``; ``F.dropout``'s Bernoulli sampling costs 4x a uniform draw on the CPU, which made it
    the largest single cost of a frame-level (beat) sweep; fused, a probe step is about 1.5x faster
    (measured on [6, 1024, 512] hidden activations, 2 threads)."""
    global _RELU_DROPOUT
    if _RELU_DROPOUT is None:
        import torch

        class ReluDropout(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z, p: float):
                m = torch.rand_like(z)
                m.ge_(p)
                m.mul_(z > 0)
                m.mul_(1.0 / (1.0 - p))
                ctx.save_for_backward(m)
                return z * m

            @staticmethod
            def backward(ctx, g):
                (m,) = ctx.saved_tensors
                return g * m, None

        _RELU_DROPOUT = ReluDropout
    return _RELU_DROPOUT


class BatchedMLP:
    """M independent MLP probes with stacked parameters; layer mixing per member."""

    def __init__(self, members: list[Member], num_layers: int, dim: int, hidden: int, out: int, dropout: float,
                 layer_pos: dict[int, int], device="cpu", mix_mask: list[bool] | None = None):
        import torch

        self.M = len(members)
        self.dropout = dropout
        # the probed layers the weighted members mix (None: all of them; see weighted_positions)
        self.mix_mask = None if mix_mask is None else torch.tensor([bool(b) for b in mix_mask], device=device)
        onehot = torch.zeros(self.M, num_layers)
        self.weighted = torch.tensor([m.layer is None for m in members])
        for i, m in enumerate(members):
            if m.layer is not None:
                onehot[i, layer_pos[m.layer]] = 1.0
        self.onehot = onehot.to(device)

        def uni(shape, fan_in):
            b = 1 / math.sqrt(fan_in)
            return (torch.rand(*shape, device=device) * 2 - 1) * b

        self.params = {
            "W1": uni((self.M, dim, hidden), dim), "b1": uni((self.M, 1, hidden), dim),
            "W2": uni((self.M, hidden, out), hidden), "b2": uni((self.M, 1, out), hidden),
            "mix": torch.zeros(self.M, num_layers, device=device),  # softmax weights (used by weighted members)
        }
        for p in self.params.values():
            p.requires_grad_(True)

    def mixing(self):
        import torch

        soft = torch.softmax(self._mix_logits(self.params["mix"]), dim=1)
        return torch.where(self.weighted.to(soft.device)[:, None], soft, self.onehot)

    def _mix_logits(self, mix):
        """The weighted members' mixing logits, the layers outside ``mix_mask`` at -inf (weight 0, no gradient)."""
        if self.mix_mask is None:
            return mix
        return mix.masked_fill(~self.mix_mask.to(mix.device), float("-inf"))

    def mix_weights(self, i: int) -> list[float]:
        """Member ``i``'s softmax layer weights (over every probed layer; 0 for a layer left out)."""
        import torch

        return torch.softmax(self._mix_logits(self.params["mix"][i:i + 1]), 1)[0].tolist()

    def forward(self, x, train: bool):
        """x [B, L, D] -> [M, B, C]."""
        import torch
        import torch.nn.functional as F

        p = self.params
        xm = torch.einsum("bld,ml->mbd", x, self.mixing())
        z = torch.baddbmm(p["b1"], xm, p["W1"])
        if train and self.dropout > 0:
            h = _relu_dropout().apply(z, float(self.dropout))
        else:
            h = F.relu(z)
        return torch.baddbmm(p["b2"], h, p["W2"])

    def state(self) -> dict:
        return {k: v.detach().clone() for k, v in self.params.items()}


class BatchedAdam:
    """Adam over stacked member parameters with a learning rate per member (dim 0)."""

    def __init__(self, params: dict, lrs, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        import torch

        self.params = params
        self.lr = torch.as_tensor(lrs, dtype=torch.float32, device=next(iter(params.values())).device).clone()
        self.b1, self.b2 = betas
        self.eps = eps
        self.wd = weight_decay
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}
        self.buf: dict = {}
        self.t = 0

    def step(self):
        """One Adam step (torch.optim.Adam's formula) with in-place ops and reused buffers: the stacked
        parameters are large (84 probes x 768 x 512), so temporaries would cost more than the arithmetic."""
        import torch

        self.t += 1
        bc1 = 1 - self.b1 ** self.t
        bc2 = 1 - self.b2 ** self.t
        with torch.no_grad():
            for k, p in self.params.items():
                g = p.grad
                if g is None:
                    continue
                if self.wd:
                    g.add_(p, alpha=self.wd)
                m, v = self.m[k], self.v[k]
                m.mul_(self.b1).add_(g, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
                buf = self.buf.get(k)
                if buf is None or buf.shape != p.shape:
                    buf = self.buf[k] = torch.empty_like(p)
                torch.sqrt(v, out=buf)
                buf.mul_(1 / math.sqrt(bc2)).add_(self.eps)
                torch.div(m, buf, out=buf)
                buf.mul_((self.lr / bc1).view(-1, *([1] * (p.dim() - 1))))
                p.sub_(buf)
                g.zero_()  # keep the gradient buffer: backward accumulates into it without a new allocation


def _forward_rows(model, std, x: np.ndarray, device, max_elems: int = 1 << 25, precision: str = "fp32"):
    """All rows of x through every member in chunks -> [M, R, C] float32 (cpu)."""
    import torch

    from benchmark.precision import autocast

    width = max(model.params["W1"].shape[1], model.params["W1"].shape[2])
    chunk = max(64, max_elems // max(1, model.M * width))
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            with autocast(precision, device):
                out = model.forward(std.read(x, np.arange(i, min(len(x), i + chunk)), device), train=False)
            outs.append(out.float().cpu())
    return torch.cat(outs, 1)


def unit_outputs(head, row_out, data):
    """[M, R, C] row outputs -> [M, U, C] unit outputs (mean over a unit's rows)."""
    import torch

    if head.type == "beat":
        return row_out
    idx = data["unit_idx"]
    M, R, C = row_out.shape
    out = torch.zeros(M, data["n_units"], C).index_add_(1, idx, row_out)
    cnt = torch.zeros(data["n_units"]).index_add_(0, idx, torch.ones(R))
    return out / cnt[None, :, None]


def make_members(layers: list[int], lrs: list[float], weighted_sum: bool) -> list[Member]:
    members = [Member(l, float(lr)) for l in layers for lr in lrs]
    if weighted_sum and len(layers) > 1:
        members += [Member(None, float(lr)) for lr in lrs]
    return members


@dataclass
class Halving:
    rungs: list[int]
    eta: float
    keep_per_layer: int


def prune_settings(pcfg) -> Halving | None:
    """``probe.prune*`` -> the halving schedule, or None for ``none`` (a config without the keys: none)."""
    mode = str(getattr(pcfg, "prune", "none"))
    if mode == "none":
        return None
    if mode != "halving":
        raise ValueError(f"probe.prune={mode!r}: valid values are 'none' and 'halving'")
    # the ranges (rungs >= 1, eta > 1, keep >= 0) are declared on the fields and checked at config resolution
    # (benchmark.config.check_values)
    rungs = sorted({int(r) for r in pcfg.prune_rungs})
    eta = float(pcfg.prune_eta)
    keep = int(pcfg.prune_keep_per_layer)
    return Halving(rungs, eta, keep)


def halving_keep(best: np.ndarray, active: np.ndarray, groups: list[str], eta: float, keep_per_group: int) -> np.ndarray:
    """The members that survive a rung (bool mask, a subset of ``active``): the best ``ceil(n / eta)`` of the n
    active ones by best validation score so far, always including the best active one and the best
    ``keep_per_group`` active ones of every group (layer). Ties go to the lower member index."""
    idx = np.nonzero(active)[0]
    keep = np.zeros(len(active), dtype=bool)
    if len(idx) == 0:
        return keep
    n_keep = max(1, math.ceil(len(idx) / eta))
    order = idx[np.lexsort((idx, -best[idx]))]  # best first
    keep[order[0]] = True
    if keep_per_group > 0:
        count: dict[str, int] = {}
        for i in order:
            if count.get(groups[i], 0) < keep_per_group:
                keep[i] = True
                count[groups[i]] = count.get(groups[i], 0) + 1
    for i in order:
        if keep.sum() >= n_keep:
            break
        keep[i] = True
    return keep


@dataclass
class _Sweep:
    """What every seed of a sweep shares: the head, the splits, the probe config and the members."""
    head: Any
    train: dict
    valid: dict
    test: dict | None
    pcfg: Any
    layers: list[int]
    members: list[Member]
    groups: list[str]          # per member: its layer key (the weighted sum is a group of its own)
    halving: Halving | None
    std: Standardizer
    layer_pos: dict[int, int]
    batch_size: int
    device: str
    precision: str
    log: Any
    epoch_callback: Any
    mix_mask: list[bool] | None = None  # the probed layers the weighted sum mixes (None: all)


@dataclass
class _SeedRun:
    """One seed's sweep in progress. The arrays are per member (global index, ``len(members)``)."""
    seed: int
    rng: np.random.Generator   # the mini-batch order
    model: BatchedMLP          # holds only the members in ``alive``
    opt: BatchedAdam
    best: np.ndarray           # best validation main score so far
    best_epoch: np.ndarray     # the epoch (0-based) of that score
    since: np.ndarray          # epochs since the last improvement
    active: np.ndarray         # still training: not stopped early, not pruned
    best_state: dict           # every member's best-validation parameters
    alive: np.ndarray          # global ids of the members still in the batched model (stopped ones are dropped)
    pruned_at: list[int | None]
    member_epochs: int = 0
    epochs_run: int = 0
    # probe.plateau_mode=torch: ReduceLROnPlateau's own state per member (its best, with the relative threshold,
    # and its bad-epoch count, reset at each reduction)
    plateau_best: np.ndarray | None = None
    plateau_bad: np.ndarray | None = None


def train_sweep(head, train: dict, valid: dict, test: dict | None, pcfg, layers: list[int], seeds: list[int],
                device: str = "cpu", log=None, epoch_callback=None, precision: str = "fp32",
                keep_states: bool = True) -> SweepResult:
    """Train every (layer, lr) member for each seed; score each member's best-validation state.

    ``precision``: "fp32" or "bf16" (autocast of the forward passes; see the module doc). ``keep_states``: keep
    every member's best-validation state per seed in the result (float16 weights on the CPU: half the memory of
    the float32 states the sweep holds anyway, per seed), and the train standardisation, so that the chosen
    probe can be stored (benchmark.artefacts)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"train_sweep: precision {precision!r}; use 'fp32' or 'bf16' (resolve features.precision "
                         "with benchmark.precision.resolve_precision)")
    t0 = time.time()
    sweep = _setup_sweep(head, train, valid, test, pcfg, layers, device, precision, log, epoch_callback)
    res = SweepResult(members=sweep.members, seeds=list(seeds), valid=[], test=[], best_epoch=[], epochs_run=[],
                      layers=list(layers))
    if keep_states:
        res.standardizer = {"mean": sweep.std.mean.detach().cpu().clone(), "inv": sweep.std.inv.detach().cpu().clone()}
    for seed in seeds:
        run = _train_seed(sweep, seed)
        _record_seed(sweep, run, res, keep_states)
    res.seconds = time.time() - t0
    return res


def chosen_index(res: SweepResult, chosen: dict) -> int:
    """The member index of the configuration :func:`summarize` chose (its ``chosen`` row)."""
    for i, m in enumerate(res.members):
        if m.layer_key == chosen["layer"] and m.lr == chosen["lr"]:
            return i
    raise KeyError(f"no member of the sweep has layer {chosen['layer']!r} and lr {chosen['lr']!r}")


def weighted_positions(layers: list[int], mode: str) -> list[bool] | None:
    """Which of the probed ``layers`` the weighted sum mixes (``probe.weighted_layers``): None for "all" (ours:
    every probed layer, 0..L); for "transformer" (MARBLE's ``layer: all``, the features' layers 1..L) every layer
    but 0, the conv / embedding output of a hidden-states model."""
    if mode == "all":
        return None
    if mode == "transformer":
        return [l != 0 for l in layers]
    raise ValueError(f"probe.weighted_layers={mode!r}: valid values are 'all' and 'transformer'")


def _setup_sweep(head, train, valid, test, pcfg, layers, device, precision, log, epoch_callback) -> _Sweep:
    mask = weighted_positions(layers, str(getattr(pcfg, "weighted_layers", "all")))
    weighted = bool(pcfg.weighted_sum) and (mask is None or sum(mask) > 1)
    members = make_members(layers, list(pcfg.lrs), weighted)
    halving = prune_settings(pcfg)
    groups = [m.layer_key for m in members]
    std = Standardizer(train["feats"].x, layers, bool(pcfg.standardize))
    layer_pos = {l: i for i, l in enumerate(layers)}
    frames = head.type == "beat"
    bs = int(pcfg.frame_batch_size if frames else pcfg.batch_size)
    return _Sweep(head, train, valid, test, pcfg, layers, members, groups, halving, std, layer_pos, bs, device,
                  precision, log, epoch_callback, mask)


def _new_model(sweep: _Sweep) -> BatchedMLP:
    """A freshly initialised batched model of every member (draws from torch's global RNG)."""
    pcfg = sweep.pcfg
    return BatchedMLP(sweep.members, len(sweep.layers), sweep.train["feats"].x.shape[2], int(pcfg.hidden),
                      sweep.head.out_dim(), float(pcfg.dropout), sweep.layer_pos, sweep.device, sweep.mix_mask)


def _train_seed(sweep: _Sweep, seed: int) -> _SeedRun:
    """One seed: epochs of training until every member has stopped early or been pruned, or max_epochs."""
    run = _start_seed(sweep, seed)
    epoch = 0
    for epoch in range(int(sweep.pcfg.max_epochs)):
        _train_epoch(sweep, run)
        score = _validation_scores(sweep, run)
        _track_best(sweep, run, score, epoch)
        _halve_lr_on_plateau(sweep, run, score)
        stop = _stop_early(sweep, run, epoch)
        pruned = _halving_rung(sweep, run, epoch)
        if sweep.epoch_callback is not None:
            sweep.epoch_callback(seed, epoch, score, sweep.members)
        if not run.active.any():
            break
        if stop.any() or pruned.any():
            _drop_finished_members(sweep, run)
    run.epochs_run = epoch + 1
    return run


def _start_seed(sweep: _Sweep, seed: int) -> _SeedRun:
    """Seed torch and the batch order, initialise the model and the optimiser; nothing trained or stopped."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = _new_model(sweep)
    opt = BatchedAdam(model.params, [m.lr for m in sweep.members], weight_decay=float(sweep.pcfg.weight_decay))
    M = len(sweep.members)
    return _SeedRun(seed=seed, rng=rng, model=model, opt=opt, best=np.full(M, -np.inf),
                    best_epoch=np.zeros(M, dtype=int), since=np.zeros(M, dtype=int), active=np.ones(M, dtype=bool),
                    best_state=model.state(), alive=np.arange(M), pruned_at=[None] * M)


def _train_epoch(sweep: _Sweep, run: _SeedRun) -> None:
    """One pass over the train rows in a new random order, one batched Adam step per mini-batch (a head with
    ``train_batches``, beat, says which rows make each step). A step over more rows than
    ``probe.frame_batch_size`` is evaluated in chunks of that size with the gradients accumulated (the same
    mean loss, bounded memory)."""
    from benchmark.precision import autocast

    xtr, y, device = sweep.train["feats"].x, sweep.train["y_rows"], sweep.device
    run.member_epochs += len(run.alive)
    if hasattr(sweep.head, "train_batches"):
        batches = sweep.head.train_batches(run.rng, sweep.train, sweep.batch_size)
    else:
        perm = run.rng.permutation(len(xtr))
        batches = [perm[i:i + sweep.batch_size] for i in range(0, len(perm), sweep.batch_size)]
    chunk = int(sweep.pcfg.frame_batch_size)
    for rows in batches:
        idx = np.sort(rows)
        if len(idx) <= chunk or not hasattr(sweep.head, "loss_norm"):
            with autocast(sweep.precision, device):
                out = run.model.forward(sweep.std.read(xtr, idx, device), train=True)
            loss = sweep.head.loss(out.float(), y[idx].to(device))
            loss.sum().backward()
        else:  # gradients accumulated over chunks: each chunk's loss normalised by the whole batch's counts
            yb = y[idx]
            norm = sweep.head.loss_norm(yb)
            for i in range(0, len(idx), chunk):
                part = idx[i:i + chunk]
                with autocast(sweep.precision, device):
                    out = run.model.forward(sweep.std.read(xtr, part, device), train=True)
                loss = sweep.head.loss(out.float(), yb[i:i + chunk].to(device), norm=norm)
                loss.sum().backward()
        run.opt.step()


def _validation_scores(sweep: _Sweep, run: _SeedRun) -> np.ndarray:
    """The validation main score of every member (global index; -inf for a dropped member or a failed score)."""
    head, valid = sweep.head, sweep.valid
    rows = _forward_rows(run.model, sweep.std, valid["feats"].x, sweep.device, precision=sweep.precision)
    local = head.fast_scores(unit_outputs(head, rows, valid), valid)
    score = np.full(len(sweep.members), -np.inf)
    score[run.alive] = np.where(np.isfinite(local), local, -np.inf)
    return score


def _track_best(sweep: _Sweep, run: _SeedRun, score: np.ndarray, epoch: int) -> None:
    """The active members that improved on their best score take this epoch's state as their best one; the
    others count one more epoch without improvement."""
    import torch

    improved = (score > run.best) & run.active
    run.best[improved] = score[improved]
    run.best_epoch[improved] = epoch
    run.since[improved] = 0
    run.since[~improved & run.active] += 1
    imp_local = improved[run.alive]
    if imp_local.any():
        g = torch.from_numpy(run.alive[imp_local]).to(sweep.device)
        l_ = torch.from_numpy(np.nonzero(imp_local)[0]).to(sweep.device)
        with torch.no_grad():
            for k, v in run.model.params.items():
                run.best_state[k][g] = v.detach()[l_]


def _halve_lr_on_plateau(sweep: _Sweep, run: _SeedRun, score: np.ndarray | None = None) -> None:
    """The lr plateau step after an epoch's validation scores (``probe.plateau_mode``).

    ``halving`` (ours): every ``plateau_patience`` epochs without a better validation score (the early-stopping
    count), an active member's lr is multiplied by ``plateau_factor``.
    ``torch``: :func:`torch_plateau_step`, ReduceLROnPlateau's rule (MARBLE's scheduler)."""
    import torch

    if str(getattr(sweep.pcfg, "plateau_mode", "halving")) == "torch":
        torch_plateau_step(sweep, run, score)
        return
    halve = (run.active & (run.since > 0) & (run.since % int(sweep.pcfg.plateau_patience) == 0))[run.alive]
    run.opt.lr[torch.from_numpy(halve).to(sweep.device)] *= float(sweep.pcfg.plateau_factor)


PLATEAU_EPS = 1e-8  # torch's ReduceLROnPlateau eps: a reduction smaller than this is not applied


def torch_plateau_step(sweep: _Sweep, run: _SeedRun, score: np.ndarray) -> None:
    """``torch.optim.lr_scheduler.ReduceLROnPlateau(mode="max", factor=plateau_factor, patience=plateau_patience,
    threshold=plateau_threshold, threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8).step(score)`` for every
    active member at once (global member index; ``score`` -inf where a member did not score, which counts as a
    bad epoch, as torch counts a NaN). A score is better than the scheduler's best when it exceeds
    ``best * (1 + threshold)``; after more than ``patience`` bad epochs in a row the lr is multiplied by the
    factor (unless that changes it by ``eps`` or less) and the count restarts. The scheduler's best is its own: an
    improvement within the threshold resets early stopping's count but not this one."""
    import torch

    pcfg = sweep.pcfg
    M = len(sweep.members)
    if run.plateau_best is None:
        run.plateau_best = np.full(M, -np.inf)
        run.plateau_bad = np.zeros(M, dtype=np.int64)
    act = run.active
    with np.errstate(invalid="ignore"):
        better = np.asarray(score, dtype=np.float64) > run.plateau_best * (1.0 + float(pcfg.plateau_threshold))
    up = better & act
    run.plateau_best[up] = np.asarray(score, dtype=np.float64)[up]
    run.plateau_bad[up] = 0
    run.plateau_bad[~better & act] += 1
    reduce = act & (run.plateau_bad > int(pcfg.plateau_patience))
    run.plateau_bad[reduce] = 0
    local = torch.from_numpy(reduce[run.alive]).to(sweep.device)
    if bool(local.any()):
        old = run.opt.lr[local]
        new = old * float(pcfg.plateau_factor)
        run.opt.lr[local] = torch.where((old - new) > PLATEAU_EPS, new, old)


def _stop_early(sweep: _Sweep, run: _SeedRun, epoch: int) -> np.ndarray:
    """Members ``patience`` epochs without improvement (once ``min_epochs`` are done) stop: the mask of them."""
    pcfg = sweep.pcfg
    stop = run.active & (run.since >= int(pcfg.patience)) & (epoch + 1 >= int(pcfg.min_epochs))
    run.active &= ~stop
    return stop


def _halving_rung(sweep: _Sweep, run: _SeedRun, epoch: int) -> np.ndarray:
    """At a successive-halving rung, stop the members that do not survive it (:func:`halving_keep`) and note
    the epochs done; the mask of the pruned members (none off a rung or without ``probe.prune=halving``)."""
    halving = sweep.halving
    pruned = np.zeros(len(sweep.members), dtype=bool)
    if halving is not None and epoch + 1 in halving.rungs and run.active.any():
        pruned = run.active & ~halving_keep(run.best, run.active, sweep.groups, halving.eta, halving.keep_per_layer)
        for i in np.nonzero(pruned)[0]:
            run.pruned_at[i] = epoch + 1
        run.active &= ~pruned
        if sweep.log and pruned.any():
            sweep.log(f"  seed {run.seed}: epoch {epoch + 1}: halving pruned {int(pruned.sum())}, "
                      f"{int(run.active.sum())} members go on")
    return pruned


def _drop_finished_members(sweep: _Sweep, run: _SeedRun) -> None:
    """Compact the batched model to the members still training (the others' best states are saved)."""
    import torch

    keep = run.active[run.alive]
    _compact(run.model, run.opt, torch.from_numpy(np.nonzero(keep)[0]).to(sweep.device))
    run.alive = run.alive[keep]


def _record_seed(sweep: _Sweep, run: _SeedRun, res: SweepResult, keep_states: bool = False) -> None:
    """Score every member's best-validation state on validation and test and append the seed's rows to res
    (with ``keep_states``, the states too: see :class:`SweepResult`)."""
    import torch

    members = sweep.members
    model = _best_state_model(sweep, run)
    res.best_epoch.append(run.best_epoch.tolist())
    res.epochs_run.append(run.epochs_run)
    res.member_epochs.append(int(run.member_epochs))
    if sweep.halving is not None:
        res.pruned_at.append(run.pruned_at)
    if keep_states:
        with torch.no_grad():
            state = {k: model.params[k].detach().to("cpu", torch.float16).clone() for k in ("W1", "b1", "W2", "b2")}
            state["mixing"] = model.mixing().detach().to("cpu", torch.float32).clone()
        res.states.append(state)
    valid, choices = _final_scores(sweep.head, model, sweep.std, sweep.valid, sweep.device, sweep.precision)
    res.valid.append(valid)
    res.choices.append(choices if any(c is not None for c in choices) else None)
    res.test.append(_final_scores(sweep.head, model, sweep.std, sweep.test, sweep.device, sweep.precision,
                                  choices)[0] if sweep.test is not None else [{} for _ in members])
    wi = [i for i, m in enumerate(members) if m.layer is None]
    if wi:
        res.layer_weights.append(torch.softmax(model.params["mix"][wi[0]], 0).tolist() if model.mix_mask is None
                                 else model.mix_weights(wi[0]))
    if sweep.log:
        sweep.log(f"  seed {run.seed}: {run.epochs_run} epochs, best valid {np.max(run.best):.4f}")


def _best_state_model(sweep: _Sweep, run: _SeedRun) -> BatchedMLP:
    """A batched model of every member again, each with its best-validation state."""
    import torch

    model = _new_model(sweep)
    with torch.no_grad():
        for k in model.params:
            model.params[k].copy_(run.best_state[k])
    return model


def _compact(model: BatchedMLP, opt: BatchedAdam, keep) -> None:
    """Drop stopped members from the batched model and its optimiser state (their best states are saved)."""
    with __import__("torch").no_grad():
        for k in list(model.params):
            model.params[k] = model.params[k].detach()[keep].clone().requires_grad_(True)
            opt.m[k] = opt.m[k][keep].clone()
            opt.v[k] = opt.v[k][keep].clone()
    opt.params = model.params
    opt.lr = opt.lr[keep].clone()
    model.onehot = model.onehot[keep]
    model.weighted = model.weighted[keep.cpu()]
    model.M = len(keep)


def _final_scores(head, model, std, data, device, precision: str = "fp32",
                  choices: list | None = None) -> tuple[list[dict[str, float]], list]:
    """Every member's metrics on a split, and what the head chose for each (Head.choose): on validation
    (``choices`` None) the choices are made here; another split is scored under validation's ``choices``."""
    rows = _forward_rows(model, std, data["feats"].x, device, precision=precision)
    units = unit_outputs(head, rows, data)
    out, chosen = [], []
    for m in range(model.M):
        u = units[m].numpy()
        c = head.choose(u, data) if choices is None else choices[m]
        s = head.scores_with(u, data, c)
        s["main"] = head.spec.main_score_of(s)
        out.append(s)
        chosen.append(c)
    return out, chosen


def summarize(res: SweepResult, spec) -> dict[str, Any]:
    """Per (layer, lr) config: mean over seeds; the chosen config (best mean validation main score) and the
    per-layer table (each layer at its best lr on validation)."""
    configs: dict[tuple[str, float], dict[str, Any]] = {}
    for mi, m in enumerate(res.members):
        v = [res.valid[s][mi]["main"] for s in range(len(res.seeds))]
        t = [res.test[s][mi] for s in range(len(res.seeds))]
        metric_names = [k for k in t[0] if isinstance(t[0][k], (int, float))]
        configs[(m.layer_key, m.lr)] = {
            "layer": m.layer_key, "lr": m.lr,
            "valid_main": float(np.mean(v)), "valid_main_std": float(np.std(v)),
            "test": {k: float(np.mean([x[k] for x in t])) for k in metric_names},
            "test_std": {k: float(np.std([x[k] for x in t])) for k in metric_names},
            "best_epoch": [res.best_epoch[s][mi] for s in range(len(res.seeds))],
            "test_main_per_seed": [float(x["main"]) for x in t],
        }
        if res.pruned_at:  # successive halving: the epochs done when this member was pruned (None: not pruned)
            configs[(m.layer_key, m.lr)]["pruned_at_epoch"] = [res.pruned_at[s][mi] for s in range(len(res.seeds))]
    ranked = sorted(configs.values(), key=lambda c: (-c["valid_main"], c["layer"] == "weighted", c["lr"]))
    chosen = ranked[0]
    per_layer = {}
    for c in ranked:
        per_layer.setdefault(c["layer"], c)
    order = sorted(per_layer, key=lambda k: (k == "weighted", int(k) if k != "weighted" else 0))
    return {"chosen": chosen, "layers": [per_layer[k] for k in order], "grid": list(configs.values())}
