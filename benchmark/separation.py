"""The separation probe: frame features + STFT magnitude -> LSTM mask estimator (as MARBLE), SDR per stem.

The mixture's STFT magnitude (``separation.n_fft`` / ``separation.hop``, log1p-compressed, z-scored per
frequency bin with train statistics) is concatenated
with the representation's frame features (nearest feature frame to each STFT frame; a softmax-weighted sum
of the probed layers, or one layer with ``separation.layer=N``; z-scored with train statistics) and fed to a
``separation.num_layers`` x ``separation.hidden`` LSTM; a linear layer and a sigmoid give one magnitude mask
per stem. Training: L1 between masked mixture magnitudes and stem magnitudes on random
``separation.segment_s`` segments of the train tracks, Adam at ``separation.lr``, early stopping on the
validation mean of the plain SDR (10 log10 |s|^2 / |s - s_hat|^2, median over tracks; BSS-eval with its
512-tap filter costs seconds per track, too much every epoch). The reported valid and test numbers are
BSS-eval. Estimates use the mixture phase (inverse STFT); scores are BSS-eval SDR per stem
(benchmark.metrics.separation_scores, median over tracks). One lr (no grid: an LSTM per (layer, lr) would
cost the whole sweep budget) and N seeds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class MaskEstimator:
    def __new__(cls, in_dim: int, n_freq: int, n_stems: int, hidden: int, layers: int, n_layers_mix: int):
        import torch
        from torch import nn

        class _Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.mix = nn.Parameter(torch.zeros(n_layers_mix))
                self.lstm = nn.LSTM(in_dim + n_freq, hidden, num_layers=layers, batch_first=True)
                self.out = nn.Linear(hidden, n_stems * n_freq)
                self.n_stems, self.n_freq = n_stems, n_freq

            def forward(self, feats, logmag, state=None, return_state: bool = False):
                """feats [B, T, L, D], logmag [B, T, F] -> masks [B, S, F, T] (and the LSTM state after the
                last frame with ``return_state``: the LSTM runs forward in time, so a track fed in consecutive
                chunks with the state carried over gets the masks of the whole track at once)."""
                f = torch.einsum("btld,l->btd", feats, torch.softmax(self.mix, 0))
                h, state = self.lstm(torch.cat([f, logmag], -1), state)
                m = torch.sigmoid(self.out(h))  # [B, T, S*F]
                B, T, _ = m.shape
                masks = m.view(B, T, self.n_stems, self.n_freq).permute(0, 2, 3, 1)
                return (masks, state) if return_state else masks

        return _Net()


def log_magnitude_input(train_mixes, stft, n_freq: int):
    """The LSTM's spectral input: ``log1p`` magnitudes z-scored per frequency bin with the statistics of the
    train mixtures (streamed over tracks, so real MUSDB18 never sits in memory at once). Returns a function
    [..., F, T] magnitudes -> [..., T, F] inputs.

    Raw ``log1p`` magnitudes (0 in most bins, up to ~5 in a few low ones) left the LSTM at the error of a
    constant mask whatever the features: on the embedded corpus the L1 loss stalled at 0.157 vs 0.175 for the
    best constant mask over 300 steps; z-scored, 0.123 and falling (results/analysis/separation-input.md)."""
    import torch

    s1 = torch.zeros(n_freq, dtype=torch.float64)
    s2 = torch.zeros(n_freq, dtype=torch.float64)
    n = 0
    for mix in train_mixes:
        lm = torch.log1p(stft(mix).abs()).double()
        s1 += lm.sum(1)
        s2 += (lm ** 2).sum(1)
        n += lm.shape[1]
    if n == 0:
        raise ValueError("separation: no train frames to take the spectral input's statistics from")
    mean = s1 / n
    mean_f = mean.float()[:, None]
    inv = (1.0 / (torch.sqrt(torch.clamp(s2 / n - mean ** 2, min=0)) + 1e-5)).float()[:, None]

    def logmag(mag):
        return ((torch.log1p(mag) - mean_f) * inv).transpose(-1, -2)

    return logmag


def _load_tracks(feats, folder, stems, sr, store: Path | None = None):
    """Every kept track of a split: its mixture, its stems [S, N] and the rows / times of its frame features.
    With ``store`` the decoded (resampled) audio is kept in files there, memory-mapped (one track decoded at a
    time: a split's audio is never held at once; the values are the same)."""
    from benchmark.rows import spill
    from mert.audio import read_audio
    from tasks.format import resolve

    tracks = []
    kept = set(feats.owner.tolist())
    for gi, it in enumerate(feats.items):
        if gi not in kept:
            continue
        if not isinstance(it.target, dict) or set(it.target) != set(stems):
            raise ValueError(f"item {it.id!r}: separation target must map every stem {list(stems)} to audio")
        mix = read_audio(resolve(folder, it.audio), sr, it.start, it.end, warn_silent=False)
        ref = []
        for s in stems:
            # a stem may be silent
            w = read_audio(resolve(folder, it.target[s]), sr, it.start, it.end, warn_silent=False)
            w = np.pad(w, (0, max(0, len(mix) - len(w))))[: len(mix)]
            ref.append(w)
        ref = np.stack(ref)
        if store is not None:
            name = f"{feats.split}-{gi}"
            mix, ref = spill(store / f"{name}.mix.npy", mix), spill(store / f"{name}.ref.npy", ref)
        rows = np.nonzero(feats.owner == gi)[0]
        tracks.append({"id": it.id, "mix": mix, "ref": ref, "rows": rows,
                       "times": feats.times[rows]})
    return tracks


def _plain_sdr(ref, est) -> float:
    num = float((ref ** 2).sum())
    if num < 1e-8:
        return float("nan")
    return 10 * np.log10(num / max(float(((ref - est) ** 2).sum()), 1e-12))


#: STFT frames per network call when a whole track is evaluated (:meth:`_SeparationInputs.track_masks`):
#: 30 s at 24 kHz with hop 256
EVAL_CHUNK_FRAMES = 2816


@dataclass
class _SeparationInputs:
    """What every seed shares: the config, the tracks of every split with their frame features, the
    standardisation of the features and of the spectral input, and the STFT."""
    sc: Any                     # cfg.separation
    sr: int
    stems: list[str]
    layers: list[int]
    feats: dict                 # split -> SplitFeatures
    data: dict                  # split -> tracks (:func:`_load_tracks`)
    std: Any                    # benchmark.probes.Standardizer of the frame features (train statistics)
    window: Any
    n_freq: int
    logmag: Any = None          # [..., F, T] magnitudes -> [..., T, F] LSTM input (:func:`log_magnitude_input`)

    def stft(self, x):
        import torch

        x = torch.from_numpy(np.array(x, dtype=np.float32)) if isinstance(x, np.ndarray) else x  # memmaps: a copy
        return torch.stft(torch.as_tensor(x, dtype=torch.float32), self.sc.n_fft, self.sc.hop, window=self.window,
                          return_complex=True)

    def track_inputs(self, split, tr, a=0, b=None):
        """Samples a:b of a track -> its mixture STFT [F, T] and the nearest frame features [T, L, D]."""
        b = len(tr["mix"]) if b is None else b
        X = self.stft(tr["mix"][a:b])  # [F, T]
        return X, self.frame_features(split, tr, a + np.arange(X.shape[1]) * self.sc.hop)

    def frame_features(self, split, tr, samples):
        """The standardised frame features [T, L, D] nearest to STFT frames centred at ``samples``."""
        t = np.asarray(samples) / self.sr
        idx = np.clip(np.searchsorted(tr["times"], t), 0, len(tr["rows"]) - 1)
        return self.std.read(self.feats[split].x, tr["rows"][idx], "cpu")

    def track_masks(self, net, split, tr):
        """A whole track -> (its mixture STFT [F, T], the masks [S, F, T]), the network run over
        ``EVAL_CHUNK_FRAMES`` STFT frames at a time with the LSTM state carried over: the frame features of a
        long track (a 7-minute MUSDB18 track at 24 kHz: 39k frames x layers x dim in float32) are never held
        at once. A track of at most that many frames (every embedded track) is one chunk."""
        import torch

        X = self.stft(tr["mix"])  # [F, T]
        T = X.shape[1]
        logmag = self.logmag(X.abs())  # [T, F]
        masks, state = [], None
        for a in range(0, T, EVAL_CHUNK_FRAMES):
            b = min(T, a + EVAL_CHUNK_FRAMES)
            f = self.frame_features(split, tr, np.arange(a, b) * self.sc.hop)
            m, state = net(f[None], logmag[None, a:b], state, return_state=True)
            masks.append(m[0])
        return X, torch.cat(masks, -1)


@dataclass
class _SeedResult:
    valid: dict                 # BSS-eval scores of the best-validation state, with "main"
    test: dict
    epochs_run: int
    layer_weights: list[float]  # softmax of the learned layer mixing


def run_separation(spec, labels, feats, folder, cfg, rep, log) -> dict:
    """Train the mask estimator for each of ``probe.seeds`` seeds (see the module doc); the probe result."""
    import tempfile

    cache = Path(feats["train"].cache_dir).parent if feats["train"].cache_dir else None
    with tempfile.TemporaryDirectory(prefix=".separation-audio-", dir=cache) as store:
        sep = _separation_inputs(spec, labels, feats, folder, cfg, rep, Path(store))
        seeds = list(range(int(cfg.probe.seeds)))
        t0 = time.time()
        runs = [_train_seed(sep, spec, seed, t0, log) for seed in seeds]
        return _result(sep, seeds, runs, t0)


def _separation_inputs(spec, labels, feats, folder, cfg, rep, store: Path | None = None) -> _SeparationInputs:
    """The probed layers, the tracks of every split (their audio memory-mapped from ``store`` when given), and
    the train statistics of the frame features and of the spectral input."""
    import torch

    from benchmark.config import parse_layers
    from benchmark.probes import Standardizer

    sc = cfg.separation
    sr = int(rep.sample_rate)
    stems = list(labels)
    layers = parse_layers(cfg.probe.layers, int(rep.num_layers))
    if sc.layer != "weighted":
        layers = parse_layers(str(sc.layer), int(rep.num_layers))
    data = {s: _load_tracks(feats[s], folder, stems, sr, store) for s in spec.splits}
    std = Standardizer(feats["train"].x, layers, bool(cfg.probe.standardize))
    sep = _SeparationInputs(sc=sc, sr=sr, stems=stems, layers=layers, feats=feats, data=data, std=std,
                            window=torch.hann_window(sc.n_fft), n_freq=sc.n_fft // 2 + 1)
    sep.logmag = log_magnitude_input([tr["mix"] for tr in data["train"]], sep.stft, sep.n_freq)
    return sep


def _train_seed(sep: _SeparationInputs, spec, seed: int, t0: float, log) -> _SeedResult:
    """One seed: epochs of training with early stopping on the validation plain SDR; the best state scored."""
    import torch

    sc = sep.sc
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = MaskEstimator(sep.feats["train"].x.shape[2], sep.n_freq, len(sep.stems), int(sc.hidden),
                        int(sc.num_layers), len(sep.layers))
    opt = torch.optim.Adam(net.parameters(), lr=float(sc.lr))
    best, best_state, since, epoch = -np.inf, None, 0, 0
    for epoch in range(int(sc.max_epochs)):
        loss = _train_epoch(sep, net, opt, rng)
        score = _validation_score(sep, net)
        log(f"  seed {seed} epoch {epoch + 1}: train L1 {float(loss.detach()):.4f}, valid plain SDR {score:.2f} dB "
            f"({time.time() - t0:.0f} s)")
        if score > best:
            best, since = score, 0
            best_state = {k: x.detach().clone() for k, x in net.state_dict().items()}
        else:
            since += 1
            if since >= int(sc.patience):
                break
    v, t = _score_best_state(sep, spec, net, best_state)
    res = _SeedResult(valid=v, test=t, epochs_run=epoch + 1, layer_weights=torch.softmax(net.mix.detach(), 0).tolist())
    log(f"  seed {seed}: {epoch + 1} epochs, valid mean SDR {v['main']:.2f} dB, test {t['main']:.2f} dB")
    return res


def _train_epoch(sep: _SeparationInputs, net, opt, rng):
    """``separation.steps_per_epoch`` Adam steps on random train segments; the last step's L1 loss."""
    seg = int(sep.sc.segment_s * sep.sr)
    net.train()
    for _ in range(int(sep.sc.steps_per_epoch)):
        f, mag, tgt = _random_batch(sep, rng, seg)
        masks = net(f, sep.logmag(mag))
        loss = (masks * mag[:, None] - tgt).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss


def _random_batch(sep: _SeparationInputs, rng, seg: int):
    """``separation.batch_size`` random segments of seg samples of random train tracks, cut to the shortest:
    frame features [B, T, L, D], mixture magnitudes [B, F, T], stem magnitudes [B, S, F, T]."""
    import torch

    batch_f, batch_m, batch_t = [], [], []
    for _ in range(int(sep.sc.batch_size)):
        tr = sep.data["train"][rng.integers(len(sep.data["train"]))]
        a = int(rng.integers(0, max(1, len(tr["mix"]) - seg)))
        b = min(len(tr["mix"]), a + seg)
        X, f = sep.track_inputs("train", tr, a, b)
        batch_f.append(f)
        batch_m.append(X.abs())
        batch_t.append(torch.stack([sep.stft(r[a:b]).abs() for r in tr["ref"]]))
    T = min(x.shape[1] for x in batch_m)
    f = torch.stack([x[:T] for x in batch_f])
    mag = torch.stack([x[:, :T] for x in batch_m])
    tgt = torch.stack([x[:, :, :T] for x in batch_t])
    return f, mag, tgt


def _validation_score(sep: _SeparationInputs, net) -> float:
    """The early-stopping score: the mean over stems of the plain validation SDR (:func:`_evaluate`, fast)."""
    net.eval()
    v = _evaluate(sep, net, "valid", fast=True)
    return float(np.nanmean(list(v.values())))


def _score_best_state(sep: _SeparationInputs, spec, net, best_state) -> tuple[dict, dict]:
    """Load the best-validation state; its BSS-eval scores on validation and test, each with "main"."""
    net.load_state_dict(best_state)
    net.eval()
    v = _evaluate(sep, net, "valid")
    t = _evaluate(sep, net, "test")
    v["main"] = spec.main_score_of(v)
    t["main"] = spec.main_score_of(t)
    return v, t


def _evaluate(sep: _SeparationInputs, net, split: str, fast: bool = False) -> dict:
    """Masks on every track of a split, estimates with the mixture phase; BSS-eval SDR per stem (median over
    tracks), or with ``fast`` the plain SDR."""
    import torch

    from benchmark.metrics import SeparationScores

    sc = sep.sc
    plain = {s: [] for s in sep.stems}
    acc = SeparationScores(sep.stems)
    with torch.no_grad():
        for tr in sep.data[split]:  # one track at a time: no split's estimates are held at once
            X, masks = sep.track_masks(net, split, tr)  # [F, T], [S, F, T]
            est = torch.istft(masks * X[None], sc.n_fft, sc.hop, window=sep.window, length=len(tr["mix"])).numpy()
            ref = np.asarray(tr["ref"])
            if fast:
                for k, s in enumerate(sep.stems):
                    plain[s].append(_plain_sdr(ref[k], est[k]))
            else:
                acc.add(ref, est)
    if fast:  # plain SDR 10 log10(|s|^2 / |s - s_hat|^2), median over tracks: the per-epoch score
        return {s: float(np.nanmedian(plain[s])) for s in sep.stems}
    return acc.result()


def _result(sep: _SeparationInputs, seeds: list[int], runs: list[_SeedResult], t0: float) -> dict:
    """The probe result (the shape of :func:`benchmark.probes.summarize`'s, one grid row): means over seeds."""
    sc, layers = sep.sc, sep.layers
    valid_runs = [r.valid for r in runs]
    test_runs = [r.test for r in runs]
    names = list(test_runs[0])
    test = {k: float(np.nanmean([r[k] for r in test_runs])) for k in names}
    test_std = {k: float(np.nanstd([r[k] for r in test_runs])) for k in names}
    valid_main = float(np.mean([r["main"] for r in valid_runs]))
    layer_key = "weighted" if sc.layer == "weighted" and len(layers) > 1 else str(layers[0])
    row = {"layer": layer_key, "lr": float(sc.lr), "valid_main": valid_main, "valid_main_std":
           float(np.std([r["main"] for r in valid_runs])), "test": test, "test_std": test_std,
           "test_main_per_seed": [r["main"] for r in test_runs]}
    return {
        "scores": {"main": test["main"], "main_std": test_std["main"], "test": test, "test_std": test_std,
                   "valid_main": valid_main},
        "selection": {"layer": layer_key, "lr": float(sc.lr), "by": "fixed (separation.layer, separation.lr)"},
        "layers": [row], "grid": [row], "seeds": seeds, "epochs_run": [r.epochs_run for r in runs],
        "layer_weights": [r.layer_weights for r in runs],
        "probe": {"members": 1, "seconds": round(time.time() - t0, 3), "probed_layers": layers},
    }
