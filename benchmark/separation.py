"""The separation probe, as MARBLE measures it: frame features -> Open-Unmix-style LSTM -> stem magnitudes ->
Wiener filter -> global SDR per stem.

MARBLE v1's probe (``benchmark/tasks/MUSDB18/MUSDB18_prober.py`` of a43992899/MARBLE-Benchmark), reproduced:

- **Input**: the representation's frame features only (MARBLE's ``nb_bins = 0``: no spectrogram), the nearest
  feature frame to each STFT frame; a softmax-weighted sum of the probed layers (those ``probe.weighted_layers``
  says: on real data MARBLE's 1..L), or one layer with ``separation.layer=N``, z-scored with train statistics
  (``probe.standardize``; MARBLE reads them raw), then MARBLE's learnable input shift and scale.
- **Head** (:class:`SeparationHead`): Linear(no bias) -> BatchNorm -> tanh -> ``separation.num_layers`` x
  ``separation.hidden`` unidirectional LSTM (dropout 0.4 between layers) -> [input, LSTM output] -> Linear -> BatchNorm
  -> ReLU -> Linear -> BatchNorm -> per-bin output scale and mean -> ReLU, times the mixture's STFT magnitude: a
  magnitude estimate per stem. STFT ``separation.n_fft`` / ``separation.hop`` (MARBLE: 2048 / 320 at 24 kHz, so
  one STFT frame per MERT frame).
- **Training**: MSE between estimated and true stem magnitudes on random ``separation.segment_s`` (6 s) segments
  of the train tracks; an epoch draws every train track ``separation.samples_per_track`` (64) times in random
  order in batches of ``separation.batch_size`` (64), or ``separation.steps_per_epoch`` random batches when that is
  set; Adam at ``separation.lr`` (1e-3), the lr halved after ``separation.plateau_patience`` (3) epochs without a
  better validation score, early stopping after ``separation.patience`` (10). MARBLE trains one model per stem
  (``separation.joint=false``, the default); ``joint=true`` trains one model with an output per stem (a quarter of
  the cost: the embedded corpus's default).
- **Decoding** (:func:`wiener_estimates`): per stem, Open-Unmix's Wiener filter (``openunmix.filtering.wiener``,
  in closed form for one channel) of the stem's magnitude estimate against the residual (mixture minus the stem),
  ``separation.wiener_iterations`` EM iterations (MARBLE: 1; 0 = the magnitude estimate with the mixture's
  phase), in windows of 600 STFT frames, then the inverse STFT.
- **Scores** (:class:`benchmark.metrics.SeparationScores`): ``sdr_<stem>``, MARBLE's global SDR (10 log10 (|s|^2 +
  1e-7) / (|s - s_hat|^2 + 1e-7) over the whole track) averaged over tracks, the main score being their mean over
  stems; the test split also gets ``bss_sdr_<stem>``, BSS-eval v3 SDR (512-tap filter) with the median over tracks
  (the SiSEC convention). A track whose reference stem is silent is left out for that stem (MARBLE would count
  about -70 dB). Validation (early stopping, the lr schedule) uses the global SDR, decoded exactly as test is.

**Stored probe** (benchmark.artefacts, kind "separation"): every run keeps, per seed, the trained networks (the
state of each, its stems; float16 weights, BatchNorm statistics and layer mixing float32: :func:`stored_state`), the
feature and spectral-input statistics and this config section, beside its result; and one line per (test track,
seed) with each stem's global SDR (:func:`score_tracks`). Both come from the stored networks (upcast to float32,
:func:`stored_models`), as a reload computes them, so a probe read back from its file gives bit-identical
estimates on the same features (same machine and thread count); the result's scores stay those of the float32
networks. :func:`evaluate_stored` scores a stored probe on another test split, :func:`separate_stored` separates new
audio with it (``predict``): with several seeds, their stem magnitude estimates are averaged before the Wiener filter
(:func:`ensemble_waveforms`; one seed gives its own estimates). Each stem is the mixture through its own Wiener gain
against its residual, so a stem and its residual add up to the mixture, but the stems need not.

With ``separation.spectral_input=true`` the mixture's log magnitude (z-scored per frequency bin with train
statistics, :func:`log_magnitude_input`) is concatenated to the features (our earlier probe's input; it made
every representation score about the same, results/analysis/separation-input.md). One lr and N seeds (no grid: an
LSTM per (layer, lr) would cost the whole sweep budget).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: STFT frames per network call when a whole track is evaluated (:meth:`_SeparationInputs.track_estimates`):
#: 30 s at 24 kHz with hop 320
EVAL_CHUNK_FRAMES = 2250
#: STFT frames per Wiener-filter call (MARBLE's and Open-Unmix's ``wiener_win_len``)
WIENER_WINDOW_FRAMES = 600
#: dropout between stacked LSTM layers (MARBLE / Open-Unmix)
LSTM_DROPOUT = 0.4


class SeparationHead:
    """MARBLE's separation head (an Open-Unmix network reading frame features; module doc). ``n_out`` stems
    (1: MARBLE's one model per stem). ``spectral_bins`` > 0 appends that many spectral input values per frame."""

    def __new__(cls, in_dim: int, n_freq: int, n_out: int, hidden: int, layers: int, n_layers_mix: int,
                spectral_bins: int = 0):
        import torch
        from torch import nn

        class _Net(nn.Module):
            def __init__(self):
                super().__init__()
                n_in = in_dim + spectral_bins
                self.mix = nn.Parameter(torch.zeros(n_layers_mix))
                self.input_shift = nn.Parameter(torch.zeros(n_in))
                self.input_scale = nn.Parameter(torch.ones(n_in))
                self.fc1 = nn.Linear(n_in, hidden, bias=False)
                self.bn1 = nn.BatchNorm1d(hidden)
                self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True,
                                    dropout=LSTM_DROPOUT if layers > 1 else 0.0)
                self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
                self.bn2 = nn.BatchNorm1d(hidden)
                self.fc3 = nn.Linear(hidden, n_out * n_freq, bias=False)
                self.bn3 = nn.BatchNorm1d(n_out * n_freq)
                self.output_scale = nn.Parameter(torch.ones(n_out, n_freq))
                self.output_mean = nn.Parameter(torch.ones(n_out, n_freq))
                self.n_out, self.n_freq, self.hidden = n_out, n_freq, hidden

            def layer_weights(self) -> list[float]:
                return torch.softmax(self.mix.detach(), 0).tolist()

            def forward(self, feats, mag, spectral=None, state=None, return_state: bool = False):
                """feats [B, T, L, D], mixture magnitudes mag [B, F, T] (and spectral [B, T, spectral_bins]) ->
                stem magnitudes [B, n_out, F, T] (and, with ``return_state``, the LSTM state after the last frame:
                the LSTM runs forward in time and BatchNorm is per frame in eval mode, so a track fed in
                consecutive chunks with the state carried over gets the estimates of the whole track at once)."""
                x = torch.einsum("btld,l->btd", feats, torch.softmax(self.mix, 0))
                if spectral is not None:
                    x = torch.cat([x, spectral], -1)
                x = (x + self.input_shift) * self.input_scale
                B, T, _ = x.shape
                x = torch.tanh(self.bn1(self.fc1(x.reshape(B * T, -1)))).view(B, T, self.hidden)
                h, state = self.lstm(x, state)
                y = torch.cat([x, h], -1).reshape(B * T, 2 * self.hidden)
                y = torch.relu(self.bn2(self.fc2(y)))
                y = self.bn3(self.fc3(y)).view(B, T, self.n_out, self.n_freq)
                y = torch.relu(y * self.output_scale + self.output_mean)
                est = y.permute(0, 2, 3, 1) * mag[:, None]
                return (est, state) if return_state else est

        return _Net()


def log_magnitude_input(train_mixes, stft, n_freq: int):
    """The optional spectral input (``separation.spectral_input``): ``log1p`` magnitudes z-scored per frequency bin
    with the statistics of the train mixtures (streamed over tracks, so real MUSDB18 never sits in memory at once).
    Returns a function [..., F, T] magnitudes -> [..., T, F] inputs.

    Raw ``log1p`` magnitudes (0 in most bins, up to ~5 in a few low ones) left an LSTM at the error of a constant
    mask whatever the features (results/analysis/separation-input.md)."""
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
    inv = 1.0 / (torch.sqrt(torch.clamp(s2 / n - mean ** 2, min=0)) + 1e-5)
    return LogMagnitudeInput(mean.float(), inv.float())


class LogMagnitudeInput:
    """The spectral input of :func:`log_magnitude_input`: ``(log1p(mag) - mean) * inv`` per frequency bin, with
    the train statistics ``mean`` and ``inv`` (float32 [F], kept in the stored probe)."""

    def __init__(self, mean, inv):
        self.mean, self.inv = mean, inv
        self._mean, self._inv = mean[:, None], inv[:, None]

    def __call__(self, mag):
        import torch

        return ((torch.log1p(mag) - self._mean) * self._inv).transpose(-1, -2)


#: Open-Unmix's ``wiener`` defaults: the regulariser and the scale the mixture is brought under before EM. Its EM
#: makes the regulariser a float32 tensor (``torch.tensor(eps)``, ``torch.sqrt(torch.as_tensor(eps))``): the same
#: float32-rounded values here (sqrt(1e-10) in float32 is 1e-5 to 2.5e-8)
WIENER_EPS = float(np.float32(1e-10))
WIENER_SQRT_EPS = float(np.sqrt(np.float32(1e-10)))
WIENER_SCALE_FACTOR = 10.0


def wiener_estimates(est_mag, X, iterations: int, window_frames: int = WIENER_WINDOW_FRAMES):
    """Stem magnitude estimates [S, F, T] and the mixture STFT X [F, T] (complex) -> the stems' complex STFTs
    [S, F, T] (complex64; the filter itself in float64): for each stem on its own, Open-Unmix's Wiener filter (``openunmix.filtering.wiener``)
    of [the stem, the residual] with ``iterations`` EM iterations, ``window_frames`` frames at a time (MARBLE's
    decoder: ``residual=True``, ``softmask=False``, ``wiener_win_len=600``). With 0 iterations a stem's estimate
    is its magnitude with the mixture's phase.

    Computed in closed form for one channel, in float64 (Open-Unmix's recommendation), equal to Open-Unmix's
    own function to 1e-6 of the largest value (tests/test_separation_wiener.py: its phase adds a float32 pi;
    it also turns exactly-zero mixture bins into 1, which this keeps at 0) at a small fraction of its cost
    (scripts/bench_wiener.py): with one channel
    the spatial covariance of a source is a scalar per frequency bin, so each EM iteration is, per window,
    ``v_j = |y_j|^2``, ``R_j = sum_t |y_j|^2 / (eps + sum_t v_j)``, ``y_j = v_j R_j / (sqrt(eps) + sum_k v_k R_k) x``
    on the mixture scaled by ``max(1, max |x| / 10)`` (Open-Unmix's ``scale_factor``), and scaled back. Every
    estimate is then a real amplitude times the mixture's phase (the initial ones are, and each gain is real), so
    the iterations run on real amplitudes."""
    import torch

    Xr = torch.view_as_real(X.to(torch.complex64))  # [F, T, 2]
    mag = X.abs().to(torch.float64)
    amp = est_mag.to(torch.float64).clone()  # [S, F, T]: every estimate is a real amplitude times the phase
    T = mag.shape[1]
    for a in range(0, T, window_frames if iterations else T):
        if not iterations:
            break
        b = min(T, a + window_frames)
        scale = max(1.0, float(mag[:, a:b].max()) / WIENER_SCALE_FACTOR)
        m = mag[:, a:b] / scale
        for k in range(amp.shape[0]):
            s0 = amp[k, :, a:b] / scale
            y = torch.stack([s0, m - s0])  # [stem, residual] amplitudes x [F, t]
            for _ in range(iterations):
                v = y ** 2
                R = v.sum(-1, keepdim=True) / (WIENER_EPS + v.sum(-1, keepdim=True))
                vr = v * R
                y = (vr / (WIENER_SQRT_EPS + vr.sum(0, keepdim=True))) * m[None]
            amp[k, :, a:b] = y[0] * scale
    # amplitude x phase as a real gain on the mixture (complex arithmetic is several times slower in torch); an
    # exactly-zero mixture bin has phase 0 (torch.angle's), so its estimate is the amplitude itself
    nonzero = mag > 0
    gain = torch.where(nonzero, amp / torch.where(nonzero, mag, 1.0), 0.0).to(torch.float32)
    out = Xr[None] * gain[..., None]
    out[..., 0] += torch.where(nonzero, 0.0, amp).to(torch.float32)
    return torch.view_as_complex(out)


def _load_tracks(feats, folder, stems, sr, store: Path | None = None, targets: bool = True):
    """Every kept track of a split: its mixture, its stems [S, N] and the rows / times of its frame features.
    With ``store`` the decoded (resampled) audio is kept in files there, memory-mapped (one track decoded at a
    time: a split's audio is never held at once; the values are the same). Without ``targets`` (new audio:
    ``predict``) only the mixture is read and a track has no ``ref``."""
    from benchmark.rows import spill
    from mert.audio import read_audio
    from tasks.format import resolve

    tracks = []
    kept = set(feats.owner.tolist())
    for gi, it in enumerate(feats.items):
        if gi not in kept:
            continue
        if targets and (not isinstance(it.target, dict) or set(it.target) != set(stems)):
            raise ValueError(f"item {it.id!r}: separation target must map every stem {list(stems)} to audio")
        mix = read_audio(resolve(folder, it.audio), sr, it.start, it.end, warn_silent=False)
        rows = np.nonzero(feats.owner == gi)[0]
        if not targets:
            if store is not None:
                mix = spill(store / f"{feats.split}-{gi}.mix.npy", mix)
            tracks.append({"id": it.id, "index": gi, "mix": mix, "rows": rows, "times": feats.times[rows]})
            continue
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
        tracks.append({"id": it.id, "index": gi, "mix": mix, "ref": ref, "rows": rows,
                       "times": feats.times[rows]})
    return tracks


@dataclass
class _SeparationInputs:
    """What every seed and stem model shares: the config, the tracks of every split with their frame features,
    the standardisation of the features (and of the optional spectral input), and the STFT."""
    sc: Any                     # cfg.separation
    sr: int
    stems: list[str]
    layers: list[int]
    feats: dict                 # split -> SplitFeatures
    data: dict                  # split -> tracks (:func:`_load_tracks`)
    std: Any                    # benchmark.probes.Standardizer of the frame features (train statistics)
    window: Any
    n_freq: int
    logmag: Any = None          # [..., F, T] magnitudes -> [..., T, F] spectral input, or None (MARBLE)

    def stft(self, x):
        import torch

        x = torch.from_numpy(np.array(x, dtype=np.float32)) if isinstance(x, np.ndarray) else x  # memmaps: a copy
        return torch.stft(torch.as_tensor(x, dtype=torch.float32), self.sc.n_fft, self.sc.hop, window=self.window,
                          return_complex=True)

    def frame_features(self, split, tr, samples):
        """The standardised frame features [T, L, D] nearest to STFT frames centred at ``samples``."""
        t = np.asarray(samples) / self.sr
        idx = np.clip(np.searchsorted(tr["times"], t), 0, len(tr["rows"]) - 1)
        return self.std.read(self.feats[split].x, tr["rows"][idx], "cpu")

    def spectral(self, mag):
        """The spectral input [..., T, F] of magnitudes [..., F, T], or None without ``spectral_input``."""
        return None if self.logmag is None else self.logmag(mag)

    def track_estimates(self, net, split, tr, X=None):
        """A whole track -> the network's stem magnitudes [n_out, F, T], run over ``EVAL_CHUNK_FRAMES`` STFT frames
        at a time with the LSTM state carried over: the frame features of a long track (a 7-minute MUSDB18 track
        at 24 kHz: 31k frames x layers x dim in float32) are never held at once. A track of at most that many
        frames (every embedded track) is one chunk. ``X``: the track's mixture STFT, when already computed."""
        import torch

        X = self.stft(tr["mix"]) if X is None else X  # [F, T]
        mag = X.abs()
        T = X.shape[1]
        out, state = [], None
        for a in range(0, T, EVAL_CHUNK_FRAMES):
            b = min(T, a + EVAL_CHUNK_FRAMES)
            f = self.frame_features(split, tr, np.arange(a, b) * self.sc.hop)
            spec = self.spectral(mag[:, a:b])
            e, state = net(f[None], mag[None, :, a:b], None if spec is None else spec[None], state,
                           return_state=True)
            out.append(e[0])
        return torch.cat(out, -1)


@dataclass
class _StemModel:
    """One trained network and the stems (indices into ``stems``) it estimates."""
    stems: list[int]
    net: Any
    epochs_run: int = 0
    best_valid: float = float("nan")


@dataclass
class _SeedResult:
    valid: dict                 # global-SDR scores of the best-validation states, with "main"
    test: dict                  # global SDR and BSS-eval, with "main"
    epochs_run: dict            # stem model name -> epochs it ran
    layer_weights: dict = field(default_factory=dict)  # stem model name -> softmax of its layer mixing
    models: list = field(default_factory=list)         # the trained _StemModel (for the stored probe)


def run_separation(spec, labels, feats, folder, cfg, rep, log) -> dict:
    """Train the separation probe for each of ``probe.seeds`` seeds (see the module doc); the probe result."""
    import tempfile

    cache = Path(feats["train"].cache_dir).parent if feats["train"].cache_dir else None
    with tempfile.TemporaryDirectory(prefix=".separation-audio-", dir=cache) as store:
        sep = _separation_inputs(spec, labels, feats, folder, cfg, rep, Path(store))
        seeds = list(range(int(cfg.probe.seeds)))
        t0 = time.time()
        runs = [_train_seed(sep, spec, seed, t0, log) for seed in seeds]
        out = _result(sep, seeds, runs, t0)
        out["_trained"] = _stored_parts(sep, spec, seeds, runs)
        return out


def _separation_inputs(spec, labels, feats, folder, cfg, rep, store: Path | None = None) -> _SeparationInputs:
    """The probed layers, the tracks of every split (their audio memory-mapped from ``store`` when given), and
    the train statistics of the frame features (and of the spectral input)."""
    import torch

    from benchmark.config import parse_layers
    from benchmark.probes import Standardizer, weighted_positions

    sc = cfg.separation
    sr = int(rep.sample_rate)
    stems = list(labels)
    layers = parse_layers(cfg.probe.layers, int(rep.num_layers))
    if sc.layer != "weighted":
        layers = parse_layers(str(sc.layer), int(rep.num_layers))
    else:  # the weighted sum mixes the layers ``probe.weighted_layers`` says (real data: MARBLE's 1..L)
        keep = weighted_positions(layers, str(cfg.probe.weighted_layers))
        if keep is not None and sum(keep) >= 1 and len(layers) > 1:
            layers = [l for l, k in zip(layers, keep) if k]
    data = {s: _load_tracks(feats[s], folder, stems, sr, store) for s in spec.splits}
    std = Standardizer(feats["train"].x, layers, bool(cfg.probe.standardize))
    sep = _SeparationInputs(sc=sc, sr=sr, stems=stems, layers=layers, feats=feats, data=data, std=std,
                            window=torch.hann_window(sc.n_fft), n_freq=sc.n_fft // 2 + 1)
    if bool(sc.spectral_input):
        sep.logmag = log_magnitude_input([tr["mix"] for tr in data["train"]], sep.stft, sep.n_freq)
    return sep


def _stem_groups(sep: _SeparationInputs) -> list[list[int]]:
    """The stems each network estimates: all of them in one (``joint``) or one network per stem (MARBLE)."""
    n = len(sep.stems)
    return [list(range(n))] if bool(sep.sc.joint) else [[k] for k in range(n)]


def _group_name(sep: _SeparationInputs, group: list[int]) -> str:
    return "joint" if len(group) > 1 else sep.stems[group[0]]


def _train_seed(sep: _SeparationInputs, spec, seed: int, t0: float, log) -> _SeedResult:
    """One seed: each stem model trained with early stopping on its validation global SDR; the best states
    scored together on validation and test."""
    models = [_train_stem_model(sep, group, seed, t0, log) for group in _stem_groups(sep)]
    v = _evaluate(sep, models, "valid")
    t = _evaluate(sep, models, "test", bss=True)
    v["main"] = spec.main_score_of(v)
    t["main"] = spec.main_score_of(t)
    log(f"  seed {seed}: valid mean SDR {v['main']:.2f} dB, test {t['main']:.2f} dB")
    return _SeedResult(valid=v, test=t, epochs_run={_group_name(sep, m.stems): m.epochs_run for m in models},
                       layer_weights={_group_name(sep, m.stems): m.net.layer_weights() for m in models},
                       models=models)


def _train_stem_model(sep: _SeparationInputs, group: list[int], seed: int, t0: float, log) -> _StemModel:
    """A network for the stems of ``group``: epochs of training, the lr halved on a validation plateau, early
    stopping; it ends in its best-validation state (eval mode)."""
    import torch

    sc = sep.sc
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SeparationHead(sep.feats["train"].x.shape[2], sep.n_freq, len(group), int(sc.hidden),
                         int(sc.num_layers), len(sep.layers), sep.n_freq if sep.logmag is not None else 0)
    opt = torch.optim.Adam(net.parameters(), lr=float(sc.lr))
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=float(sc.plateau_factor),
                                                         patience=int(sc.plateau_patience))
    model = _StemModel(stems=group, net=net)
    name = _group_name(sep, group)
    best, best_state, since, epoch = -np.inf, None, 0, 0
    for epoch in range(int(sc.max_epochs)):
        loss = _train_epoch(sep, net, opt, rng, group)
        net.eval()
        v = _evaluate(sep, [model], "valid")
        score = float(np.nanmean([v[f"sdr_{sep.stems[k]}"] for k in group]))
        plateau.step(score)
        log(f"  seed {seed} {name} epoch {epoch + 1}: train MSE {loss:.5f}, valid SDR {score:.2f} dB "
            f"({time.time() - t0:.0f} s)")
        if score > best or best_state is None:
            best, since = score, 0
            best_state = {k: x.detach().clone() for k, x in net.state_dict().items()}
        else:
            since += 1
            if since >= int(sc.patience):
                break
    net.load_state_dict(best_state)
    net.eval()
    model.epochs_run, model.best_valid = epoch + 1, best
    return model


def _epoch_batches(sep: _SeparationInputs, rng) -> list[np.ndarray]:
    """The train-track indices of each batch of an epoch: every track ``samples_per_track`` times in random order
    (MARBLE's epoch), or ``steps_per_epoch`` batches of random tracks when that is set."""
    n, bs = len(sep.data["train"]), int(sep.sc.batch_size)
    if n == 0:
        raise ValueError("separation: no train tracks")
    steps = int(sep.sc.steps_per_epoch)
    if steps > 0:
        return [rng.integers(n, size=bs) for _ in range(steps)]
    order = rng.permutation(np.repeat(np.arange(n), int(sep.sc.samples_per_track)))
    return [order[a:a + bs] for a in range(0, len(order), bs)]


def _train_epoch(sep: _SeparationInputs, net, opt, rng, group: list[int]) -> float:
    """One epoch of Adam steps on random train segments (:func:`_epoch_batches`); the mean MSE."""
    seg = int(sep.sc.segment_s * sep.sr)
    net.train()
    losses = []
    for tracks in _epoch_batches(sep, rng):
        f, mag, tgt = _batch(sep, rng, seg, tracks, group)
        est = net(f, mag, sep.spectral(mag))
        loss = ((est - tgt) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def _batch(sep: _SeparationInputs, rng, seg: int, tracks, group: list[int]):
    """A random segment of seg samples of each of the train ``tracks``, cut to the shortest: frame features
    [B, T, L, D], mixture magnitudes [B, F, T], the ``group`` stems' magnitudes [B, len(group), F, T]."""
    import torch

    batch_f, batch_m, batch_t = [], [], []
    for ti in tracks:
        tr = sep.data["train"][int(ti)]
        a = int(rng.integers(0, max(1, len(tr["mix"]) - seg)))
        b = min(len(tr["mix"]), a + seg)
        X = sep.stft(tr["mix"][a:b])
        batch_f.append(sep.frame_features("train", tr, a + np.arange(X.shape[1]) * sep.sc.hop))
        batch_m.append(X.abs())
        batch_t.append(torch.stack([sep.stft(tr["ref"][k][a:b]).abs() for k in group]))
    T = min(x.shape[1] for x in batch_m)
    f = torch.stack([x[:T] for x in batch_f])
    mag = torch.stack([x[:, :T] for x in batch_m])
    tgt = torch.stack([x[:, :, :T] for x in batch_t])
    return f, mag, tgt


def track_waveforms(sep: _SeparationInputs, models: list[_StemModel], split: str, tr):
    """A whole track's estimated stems [S, N] (the ``models`` together estimate every stem once; a stem no model
    estimates is zeros): the networks' magnitudes, Wiener-filtered (:func:`wiener_estimates`), inverse STFT."""
    import torch

    X = sep.stft(tr["mix"])
    mags = torch.zeros((len(sep.stems),) + tuple(X.shape))
    for m in models:
        mags[m.stems] = sep.track_estimates(m.net, split, tr, X)
    Y = wiener_estimates(mags, X, int(sep.sc.wiener_iterations))
    return torch.istft(Y, sep.sc.n_fft, sep.sc.hop, window=sep.window, length=len(tr["mix"])).numpy()


def _evaluate(sep: _SeparationInputs, models: list[_StemModel], split: str, bss: bool = False) -> dict:
    """The estimates of every track of a split (one track at a time: no split's estimates are held at once)
    scored by :class:`benchmark.metrics.SeparationScores` (global SDR; BSS-eval too with ``bss``), for the stems
    the ``models`` estimate."""
    import torch

    from benchmark.metrics import SeparationScores

    rows = sorted(k for m in models for k in m.stems)
    acc = SeparationScores([sep.stems[k] for k in rows], bss=bss)
    with torch.no_grad():
        for tr in sep.data[split]:
            est = track_waveforms(sep, models, split, tr)
            acc.add(np.asarray(tr["ref"])[rows], est[rows])
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
    per_model = [r.layer_weights for r in runs]
    mean_weights = [np.mean(list(w.values()), axis=0).tolist() for w in per_model]
    return {
        "scores": {"main": test["main"], "main_std": test_std["main"], "test": test, "test_std": test_std,
                   "valid_main": valid_main},
        "selection": {"layer": layer_key, "lr": float(sc.lr), "by": "fixed (separation.layer, separation.lr)"},
        "layers": [row], "grid": [row], "seeds": seeds,
        "epochs_run": [max(r.epochs_run.values()) for r in runs],
        "layer_weights": mean_weights,
        "probe": {"members": len(_stem_groups(sep)), "seconds": round(time.time() - t0, 3), "probed_layers": layers,
                  "models": "joint" if bool(sc.joint) else "one per stem",
                  "layer_weights_per_model": per_model, "epochs_run_per_model": [r.epochs_run for r in runs]},
    }



# ------------------------------------------------------------------------------------------ the stored probe

#: parameters a stored probe keeps in float32: the layer-mixing logits (as the MLP probe's mixing)
FLOAT32_PARAMETERS = ("mix",)
#: the largest magnitude float16 holds; a parameter with a larger value is kept in float32
FLOAT16_MAX = 65504.0
#: what predict's ensemble of seeds is (its JSON says it)
ENSEMBLE = "the mean of the seeds' stem magnitude estimates, then the Wiener filter"


def stored_state(net) -> dict:
    """A trained network's state as a stored probe keeps it (benchmark.artefacts, kind "separation"): the learned
    parameters in float16, except the layer mixing (and any tensor float16 cannot hold) in float32; the buffers
    (BatchNorm running means and variances, its batch count) as they are, float32 (int64 for the count)."""
    params = {n for n, _ in net.named_parameters()}
    out = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu().clone()
        if k in params and k not in FLOAT32_PARAMETERS and v.is_floating_point() and v.numel() \
                and float(v.abs().max()) <= FLOAT16_MAX:
            v = v.half()
        out[k] = v
    return out


def net_shape(in_dim: int, sc, n_layers_mix: int) -> dict[str, int]:
    """What :class:`SeparationHead` is built from, besides the stems a network estimates: the feature dim, the
    STFT bins, the LSTM size, the layers mixed and the spectral input's width (0 without it)."""
    n_freq = int(sc["n_fft"]) // 2 + 1
    return {"in_dim": int(in_dim), "n_freq": n_freq, "hidden": int(sc["hidden"]), "layers": int(sc["num_layers"]),
            "n_layers_mix": int(n_layers_mix), "spectral_bins": n_freq if bool(sc["spectral_input"]) else 0}


def stored_models(shape: dict[str, int], models: list[dict], stems: list[str]) -> list[_StemModel]:
    """The networks of one stored seed (``models``: {name, stems, state}), rebuilt in eval mode with their stored
    weights upcast to float32. A state that does not fit the network is a ValueError."""
    out = []
    for m in models:
        net = SeparationHead(shape["in_dim"], shape["n_freq"], len(m["stems"]), shape["hidden"], shape["layers"],
                             shape["n_layers_mix"], shape["spectral_bins"])
        try:
            net.load_state_dict(m["state"], strict=True)
        except RuntimeError as e:
            raise ValueError(f"model {m.get('name')!r}: " + " ".join(str(e).split())[:300]) from None
        out.append(_StemModel(stems=[list(stems).index(s) for s in m["stems"]], net=net.eval()))
    return out


def score_tracks(sep: _SeparationInputs, models: list[_StemModel], split: str, seed: int, bss: bool = False):
    """The ``models`` (every stem once) on every track of a labelled split: (the scores of :func:`_evaluate`, the
    predictions.jsonl records of each track). A record: ``id``, ``seed``, ``seconds``, ``sdr`` (per stem, the global
    SDR the metric averages; null for a stem silent in the reference, which the metric leaves out), ``score`` (their
    mean over the scored stems) and ``rms`` (per stem, of the estimate)."""
    import torch

    from benchmark.metrics import SeparationScores

    acc = SeparationScores(sep.stems, bss=bss)
    lines = []
    with torch.no_grad():
        for tr in sep.data[split]:
            est = track_waveforms(sep, models, split, tr)
            n = {s: len(acc.per_global[s]) for s in sep.stems}
            acc.add(np.asarray(tr["ref"]), est)
            sdr = {s: (acc.per_global[s][-1] if len(acc.per_global[s]) > n[s] else None) for s in sep.stems}
            scored = [v for v in sdr.values() if v is not None]
            lines.append({"id": tr["id"], "seed": int(seed), "seconds": len(tr["mix"]) / sep.sr, "sdr": sdr,
                          "score": float(np.mean(scored)) if scored else None,
                          "rms": {s: float(np.sqrt(np.mean(np.square(est[k], dtype=np.float64))))
                                  for k, s in enumerate(sep.stems)}})
    return acc.result(), lines


def _stored_parts(sep: _SeparationInputs, spec, seeds: list[int], runs: list[_SeedResult]) -> dict[str, Any]:
    """What the stored probe holds besides its header (benchmark.artefacts.SeparationProbe.from_parts), and its test
    predictions and scores, computed from the stored (float16) weights as a reload computes them: the result's
    scores stay those of the trained (float32) networks."""
    from omegaconf import OmegaConf

    sc = OmegaConf.to_container(sep.sc, resolve=True) if OmegaConf.is_config(sep.sc) else dict(sep.sc)
    shape = net_shape(sep.feats["train"].x.shape[2], sc, len(sep.layers))
    stored = [{"seed": int(seed), "epochs_run": {k: int(v) for k, v in r.epochs_run.items()},
               "models": [{"name": _group_name(sep, m.stems), "stems": [sep.stems[k] for k in m.stems],
                           "best_valid": float(m.best_valid), "state": stored_state(m.net)} for m in r.models]}
              for seed, r in zip(seeds, runs)]
    lines, mains = [], []
    for entry in stored:
        scores, ln = score_tracks(sep, stored_models(shape, entry["models"], sep.stems), "test", entry["seed"])
        mains.append(float(spec.main_score_of(scores)))
        lines += ln
    spectral = None if sep.logmag is None else {"mean": sep.logmag.mean.clone(), "inv": sep.logmag.inv.clone()}
    layer_key = "weighted" if sc["layer"] == "weighted" and len(sep.layers) > 1 else str(sep.layers[0])
    return {"kind": "separation", "stems": list(sep.stems), "layers": [int(l) for l in sep.layers],
            "mean": sep.std.mean.detach().cpu().clone(), "inv": sep.std.inv.detach().cpu().clone(),
            "config": sc, "spectral": spectral, "selection": {"layer": layer_key, "lr": float(sc["lr"])},
            "seeds": stored, "lines": lines, "test_main_per_seed": mains}


def stored_inputs(probe, feats, folder, store: Path | None = None, targets: bool = True) -> _SeparationInputs:
    """A stored probe's view of new data (``feats``: {split: SplitFeatures} of its representation and feature
    recipe): the tracks, read at the probe's sample rate, its train standardisation of the features and of the
    spectral input, its STFT."""
    import torch
    from types import SimpleNamespace

    from benchmark.probes import Standardizer

    sc = SimpleNamespace(**probe.separation_config)
    std = Standardizer.__new__(Standardizer)  # the train statistics as stored, applied as in the sweep
    std.layers, std.mean, std.inv = list(probe.layers), probe.mean.float(), probe.inv.float()
    sr = int(probe.representation["sample_rate"])
    data = {s: _load_tracks(f, folder, probe.labels, sr, store, targets) for s, f in feats.items()}
    spectral = probe.head["state"].get("spectral")
    return _SeparationInputs(sc=sc, sr=sr, stems=list(probe.labels), layers=list(probe.layers), feats=feats,
                             data=data, std=std, window=torch.hann_window(int(sc.n_fft)),
                             n_freq=int(sc.n_fft) // 2 + 1,
                             logmag=None if spectral is None else LogMagnitudeInput(spectral["mean"].float(),
                                                                                    spectral["inv"].float()))


def _audio_store(feats):
    """A temporary folder for the decoded audio, beside the feature cache (as :func:`run_separation`'s)."""
    import tempfile

    cache = Path(feats.cache_dir).parent if feats.cache_dir else None
    return tempfile.TemporaryDirectory(prefix=".separation-audio-", dir=cache)


def evaluate_stored(probe, spec, feats, folder) -> tuple[list[dict], list[dict]]:
    """A stored probe scored on a labelled test split (``python -m benchmark evaluate``): per seed, the scores the
    sweep computes for a seed (global SDR and BSS-eval, ``main``), and the predictions.jsonl records."""
    per_seed, lines = [], []
    with _audio_store(feats) as store:
        sep = stored_inputs(probe, {"test": feats}, folder, Path(store))
        for s, entry in enumerate(probe.seeds):
            scores, ln = score_tracks(sep, probe.stem_models(s), "test", int(entry["seed"]), bss=True)
            scores["main"] = spec.main_score_of(scores)
            per_seed.append(scores)
            lines += ln
    return per_seed, lines


def ensemble_waveforms(sep: _SeparationInputs, seed_models: list[list[_StemModel]], split: str, tr):
    """A whole track's stems [S, N] from several seeds' networks: the mean of the seeds' magnitude estimates, then
    the Wiener filter and the inverse STFT (with one seed: :func:`track_waveforms`'s estimates)."""
    import torch

    X = sep.stft(tr["mix"])
    mags = torch.zeros((len(sep.stems),) + tuple(X.shape))
    with torch.no_grad():
        for models in seed_models:
            for m in models:
                mags[m.stems] += sep.track_estimates(m.net, split, tr, X)
        mags /= len(seed_models)
        Y = wiener_estimates(mags, X, int(sep.sc.wiener_iterations))
        return torch.istft(Y, sep.sc.n_fft, sep.sc.hop, window=sep.window, length=len(tr["mix"])).numpy()


def separate_stored(probe, feats, folder):
    """New audio separated by a stored probe (``python -m benchmark predict``): yields (the track: its ``index``
    into ``feats.items``, ``mix``; the estimated stems [S, N] at the probe's sample rate), one track at a time,
    the seeds ensembled (:func:`ensemble_waveforms`)."""
    seed_models = [probe.stem_models(s) for s in range(len(probe.seeds))]
    with _audio_store(feats) as store:
        sep = stored_inputs(probe, {"test": feats}, folder, Path(store), targets=False)
        for tr in sep.data["test"]:
            yield tr, ensemble_waveforms(sep, seed_models, "test", tr)
