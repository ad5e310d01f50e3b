"""The embedded corpus: contract, format, splits, exact labels checked by independent estimators, faults."""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from tasks import format as F
from tasks.base import get_task
from tasks.embedded import GENERATOR_VERSIONS, TASK_NAMES, prepare, prepare_pretraining

SR = 24000
KEY_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def _load(folder: Path, item: F.Item) -> np.ndarray:
    path = F.resolve(folder, item.audio)
    info = sf.info(str(path))
    assert info.samplerate == SR and info.channels == 1 and info.format == "FLAC", path
    y, _ = sf.read(str(path), dtype="float32")
    if item.start is not None:
        y = y[int(round(item.start * SR)):int(round(item.end * SR))]
    return y


def _items(folder: Path) -> dict[str, list[F.Item]]:
    return {s: F.read_split(folder, s) for s in ("train", "valid", "test")}


# ---------------------------------------------------------------------------------------------- contract
def test_unknown_task_lists_known_names(tmp_path):
    with pytest.raises(KeyError) as e:
        prepare("kye", "tiny", home=tmp_path)
    msg = str(e.value)
    assert "did you mean 'key'" in msg and "mtg-top50" in msg and "separation" in msg
    with pytest.raises(ValueError, match="size"):
        prepare("key", "huge", home=tmp_path)


def test_versions_cover_all_tasks():
    assert set(TASK_NAMES) == {t.name for t in __import__("tasks").all_tasks()}
    assert set(GENERATOR_VERSIONS) == set(TASK_NAMES) | {"pretraining"}


def test_generators_come_from_the_specs():
    from tasks.embedded import build, songs

    assert build.generator("key") is build.generator("key") is build.GENERATORS["key"]  # made once
    assert isinstance(build.generator("key"), songs.KeyTask) and build.generator("pitch").name == "pitch"
    assert [n for n in TASK_NAMES if build.is_view(build.generator(n))] == list(songs.MTG_TASKS)
    assert set(build.GENERATORS) == set(TASK_NAMES) - set(songs.MTG_TASKS)
    assert [n for n, g in build.GENERATORS.items() if g.prune_targets] == ["tagging"]
    with pytest.raises(ValueError, match="seed family"):
        songs.KeyTask("genre")  # a generator's name is its items' seed family: it cannot serve another task


def test_home_from_environment(monkeypatch, tmp_path):
    from tasks.embedded import task_dir

    monkeypatch.setenv("MERT_BENCH_HOME", str(tmp_path))
    assert task_dir("key", "tiny").parent == tmp_path / "embedded"


# ---------------------------------------------------------------------------------------------- format
def test_tiny_corpus_format_and_splits(tiny_home):
    from tasks.technique import TEST_SINGERS

    for name in TASK_NAMES:
        spec = get_task(name)
        folder = prepare(name, "tiny", home=tiny_home, progress=False)
        meta = F.read_meta(folder)
        assert meta["task"] == name and meta["source"] == "embedded" and meta["sample_rate"] == SR
        assert meta["task_version"] == spec.version and meta["source_version"].endswith("-tiny")
        labels = meta["labels"]
        assert labels, name
        splits = _items(folder)
        groups = {}
        for split, items in splits.items():
            assert items, f"{name}: split {split} is empty"
            groups[split] = {it.group for it in items}
            for it in items:
                assert F.resolve(folder, it.audio).exists()
                if spec.type in ("multiclass", "key"):
                    assert it.target in labels, (name, it.target)
                elif spec.type == "multilabel":
                    assert set(it.target) <= set(labels), (name, it.target)
                elif spec.type == "regression":
                    assert len(it.target) == len(labels) and all(np.isfinite(it.target))
                elif spec.type == "beat":
                    assert it.target == sorted(it.target) and len(it.target) >= 4
                elif spec.type == "separation":
                    assert set(it.target) == {"vocals", "drums", "bass", "other"}
        # disjoint by song / recording
        assert not groups["train"] & groups["test"] and not groups["train"] & groups["valid"], name
        if spec.type == "multilabel":  # every label has a positive in train and test
            for split in ("train", "test"):
                pos = set().union(*[set(it.target) for it in splits[split]])
                assert set(labels) <= pos, (name, split, set(labels) - pos)
        y = _load(folder, splits["test"][0])
        assert np.abs(y).max() > 0.01 and np.isfinite(y).all()
    tech = _items(prepare("technique", "tiny", home=tiny_home))
    test_singers = {it.extra["singer"] for it in tech["test"]}
    assert test_singers <= set(TEST_SINGERS)
    assert not test_singers & {it.extra["singer"] for it in tech["train"] + tech["valid"]}
    singer = _items(prepare("singer", "tiny", home=tiny_home))
    assert {it.target for it in singer["train"]} == set(get_task("singer").labels)
    genre = _items(prepare("genre", "tiny", home=tiny_home))
    assert {it.target for it in genre["train"]} == set(get_task("genre").labels)


def test_build_is_deterministic(tmp_path, tiny_home):
    for name in ("instrument", "separation"):
        a = prepare(name, "tiny", home=tiny_home, progress=False)
        b = prepare(name, "tiny", home=tmp_path, progress=False)
        files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        assert files_a == files_b
        for rel in files_a:
            ha = hashlib.sha1((a / rel).read_bytes()).hexdigest()
            hb = hashlib.sha1((b / rel).read_bytes()).hexdigest()
            assert ha == hb, f"{name}: {rel} differs between two builds"


# ---------------------------------------------------------------------------------------------- labels
def yin_f0(x: np.ndarray, fmin: float = 25.0, fmax: float = 4500.0, thresh: float = 0.15) -> float:
    """YIN (de Cheveigné & Kawahara 2002) on one frame: cumulative-mean-normalised difference."""
    x = x.astype(np.float64)
    n = len(x)
    w = n // 2
    tmin, tmax = int(SR / fmax), min(int(SR / fmin), w - 1)
    acf = np.fft.irfft(np.fft.rfft(x, 2 * n) * np.conj(np.fft.rfft(x[:w], 2 * n)))[: w + 1]
    cs = np.concatenate([[0.0], np.cumsum(x ** 2)])
    tau = np.arange(w + 1)
    d = cs[w] + (cs[tau + w] - cs[tau]) - 2 * acf
    cmnd = np.ones_like(d)
    cmnd[1:] = d[1:] * np.arange(1, w + 1) / np.maximum(np.cumsum(d[1:]), 1e-12)
    seg = cmnd[tmin:tmax]
    below = np.where(seg < thresh)[0]
    t = tmin + (below[0] if len(below) else int(np.argmax(seg <= seg.min() + 0.1)))
    while t + 1 < tmax and cmnd[t + 1] < cmnd[t]:
        t += 1
    a, b, c = cmnd[t - 1], cmnd[t], cmnd[t + 1]
    den = a - 2 * b + c
    return SR / (t + (0.5 * (a - c) / den if den else 0.0))


def test_pitch_labels_match_yin_f0(tiny_home):
    folder = prepare("pitch", "tiny", home=tiny_home)
    items = [it for s in _items(folder).values() for it in s]
    errs = []
    for it in items:
        y = _load(folder, it)[int(0.4 * SR):int(0.4 * SR) + 8192]
        est = 69 + 12 * np.log2(yin_f0(y) / 440.0)
        errs.append(abs(est - int(it.target)))
    errs = np.array(errs)
    assert np.mean(errs < 0.75) >= 0.85, sorted(errs)[-8:]


def _chroma(y: np.ndarray) -> np.ndarray:
    n, hop = 4096, 2048
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop] * np.hanning(n)
    mag = np.abs(np.fft.rfft(frames, axis=1)).sum(0)
    f = np.fft.rfftfreq(n, 1 / SR)
    ok = (f > 55) & (f < 2000)
    pcs = np.round(12 * np.log2(f[ok] / 440) + 69).astype(int) % 12
    c = np.zeros(12)
    np.add.at(c, pcs, mag[ok])
    return c


def krumhansl_key(y: np.ndarray) -> str:
    major = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
    minor = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
    c = _chroma(y)
    scores = {f"{KEY_NAMES[t]} {m}": np.corrcoef(c, np.roll(p, t))[0, 1]
              for m, p in (("major", major), ("minor", minor)) for t in range(12)}
    return max(scores, key=scores.get)


def test_key_labels_agree_with_krumhansl_estimate(tiny_home):
    import mir_eval

    folder = prepare("key", "tiny", home=tiny_home)
    items = [it for s in _items(folder).values() for it in s]
    exact, weighted = [], []
    for it in items:
        est = krumhansl_key(_load(folder, it))
        exact.append(est == it.target)
        weighted.append(mir_eval.key.weighted_score(it.target, est))
    # chance is 1/24 exact; a template matcher on short drums-and-all mixes is an imperfect but independent
    # judge: it must find the labelled key or a MIREX-related one (fifth, relative, parallel) for most items
    related = np.mean(np.array(weighted) > 0)
    assert np.mean(exact) >= 0.35 and related >= 0.7, (np.mean(exact), related, np.mean(weighted))
    # key is uniform over the 24 classes in train
    assert sorted(it.target for it in _items(folder)["train"]) == sorted(get_task("key").labels)


def _onset_envelope(y: np.ndarray, hop: int = 240) -> np.ndarray:
    n = 1024
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (n // 2, n // 2)), n)[::hop] * np.hanning(n)
    s = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.maximum(np.diff(s, axis=0, prepend=s[:1]), 0).sum(1)
    return flux  # 100 frames per second


def test_beats_line_up_with_onsets(tiny_home):
    folder = prepare("beat", "tiny", home=tiny_home)
    wins = []
    for it in [it for s in _items(folder).values() for it in s]:
        env = _onset_envelope(_load(folder, it))
        beats = np.array(it.target)
        ibi = np.median(np.diff(beats))

        def strength(times):
            idx = np.round(np.asarray(times) * 100).astype(int)
            idx = idx[(idx >= 3) & (idx < len(env) - 3)]
            return np.mean([env[i - 3:i + 4].max() for i in idx])

        on = strength(beats)
        off = strength(beats + ibi * 0.37)  # between beats (not on an eighth or a triplet)
        wins.append(on > off)
    assert np.mean(wins) >= 0.75, wins


def test_separation_mixture_is_exact_sum_of_stems(tiny_home):
    folder = prepare("separation", "tiny", home=tiny_home)
    for it in [it for s in _items(folder).values() for it in s]:
        mix, _ = sf.read(str(F.resolve(folder, it.audio)), dtype="int16")
        stems = {k: sf.read(str(F.resolve(folder, p)), dtype="int16")[0] for k, p in it.target.items()}
        total = np.sum([s.astype(np.int32) for s in stems.values()], axis=0)
        assert np.array_equal(total, mix.astype(np.int32))
        for k, s in stems.items():
            assert np.abs(s).max() > 100, f"{it.id}: stem {k} is silent"


def test_emotion_targets_follow_documented_formula(tiny_home):
    from tasks.embedded.songs import emotion_targets

    folder = prepare("emotion", "tiny", home=tiny_home)
    for it in [it for s in _items(folder).values() for it in s]:
        e = it.extra
        a0, v0 = emotion_targets(e["tempo"], e["mode"] == "major", e["level_db"], e["register"],
                                 e["articulation"], e["dissonance"])
        # targets = formula + N(0, 0.1) noise: within 5 sigma of the noiseless formula
        assert abs(it.target[0] - a0) < 0.5 and abs(it.target[1] - v0) < 0.5


# ---------------------------------------------------------------------------------------------- voice
def _f0_track(y: np.ndarray, hop: float = 0.02, win: int = 2048) -> np.ndarray:
    out = []
    for t in np.arange(0.3, len(y) / SR - 0.3, hop):
        i = int(t * SR)
        out.append(69 + 12 * np.log2(yin_f0(y[i:i + win], fmin=30, fmax=1500) / 440))
    return np.array(out)


def test_voice_techniques_are_realised():
    from tasks.embedded import voice as V

    s = V.SINGERS["m4"]
    notes = [(50, 0.0, 2.5, "a")]

    def f0(tech):
        return _f0_track(V.sing(notes, s, tech, np.random.default_rng(3), 2.5))

    straight, vibrato, trill, fry = f0("straight"), f0("vibrato"), f0("trill"), f0("vocal_fry")
    assert abs(np.median(straight) - 50) < 0.5
    assert np.std(vibrato) > 2 * np.std(straight)
    assert np.percentile(trill, 90) - np.percentile(trill, 10) > 0.8  # alternates with the note above
    assert np.median(fry) < 50 - 12 * np.log2(110 / 80)  # creak well below the sung note
    # singers differ: same note, different singers -> different spectra
    a = np.abs(np.fft.rfft(V.sing(notes, V.SINGERS["m1"], "straight", np.random.default_rng(0), 2.5)))
    b = np.abs(np.fft.rfft(V.sing(notes, V.SINGERS["m10"], "straight", np.random.default_rng(0), 2.5)))
    assert np.corrcoef(np.log1p(a[:20000]), np.log1p(b[:20000]))[0, 1] < 0.99


# ---------------------------------------------------------------------------------------------- faults
def test_interrupted_prepare_resumes_without_rebuilding(tmp_path, monkeypatch):
    from tasks.embedded import build

    first = prepare("instrument", "tiny", home=tmp_path, progress=False)
    stamp = (first / "meta.json").stat().st_mtime_ns
    gen = build.GENERATORS["pitch"]
    real_make = gen.make
    calls = {"n": 0}

    def failing(job):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated crash")
        return real_make(job)

    monkeypatch.setattr(gen, "make", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        for name in ("instrument", "pitch"):  # a multi-task prepare dying half-way through the second task
            prepare(name, "tiny", home=tmp_path, progress=False)
    pitch_dir = build.task_dir("pitch", "tiny", tmp_path)
    assert not pitch_dir.exists()
    assert not list(pitch_dir.parent.glob(f".{pitch_dir.name}.tmp-*"))
    monkeypatch.setattr(gen, "make", real_make)

    def must_not_run(job):
        raise AssertionError("a finished task was rebuilt")

    monkeypatch.setattr(build.GENERATORS["instrument"], "make", must_not_run)
    assert prepare("instrument", "tiny", home=tmp_path, progress=False) == first
    assert (first / "meta.json").stat().st_mtime_ns == stamp
    done = prepare("pitch", "tiny", home=tmp_path, progress=False)
    assert F.is_complete(done) and len(F.read_split(done, "test")) > 0


def test_pretraining_collection_is_disjoint_from_task_material(tmp_path):
    from tasks.embedded import build

    pre = {tuple(j.seed_entropy) for j in build.PRETRAINING.plan("standard")}
    for name, gen in build.GENERATORS.items():
        test_seeds = {tuple(j.seed_entropy) for j in gen.plan("standard") if j.split == "test"}
        assert not pre & test_seeds, name
    mtg = {tuple(j.seed_entropy) for j in build.MTG.plan("standard")}
    assert not pre & mtg
    folder = prepare_pretraining("tiny", home=tmp_path)
    files = sorted(folder.glob("*.flac"))
    meta = F.read_meta(folder) if (folder / "meta.json").exists() else {}
    assert len(files) == meta["files"] >= 10
    assert sf.info(str(files[0])).samplerate == SR


# ---------------------------------------------------------------------------------------------- render identity
def test_folder_records_the_sha256_of_its_audio(tiny_home):
    from tasks.embedded.build import content_digest

    folder = prepare("separation", "tiny", home=tiny_home, progress=False)
    meta = F.read_meta(folder)
    flacs = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.flac"))
    assert any("/" in f or f.count(".") > 1 for f in flacs)  # the stems are in it, not only the mixtures
    h = hashlib.sha256()
    for rel in flacs:
        h.update(f"{rel}\t{hashlib.sha256((folder / rel).read_bytes()).hexdigest()}\n".encode())
    assert meta["content_digest"] == h.hexdigest() == content_digest(folder)


def test_a_render_the_generator_does_not_make_is_refused(tmp_path, monkeypatch):
    """A folder whose audio the current generator does not render (a generator changed without a version bump)
    is refused with the file and what to do; the feature cache key and results name the render."""
    import soundfile as sf

    from benchmark.config import resolve_config
    from benchmark.features import split_cache
    from tasks.embedded import build

    folder = prepare("key", "tiny", home=tmp_path, progress=False)
    good = F.read_meta(folder)["content_digest"]
    spot = build.spot_jobs(build.generator("key").plan("tiny"))
    assert len(spot) == build.SPOT_CHECK_JOBS
    monkeypatch.setattr(build, "_VERIFIED", set())
    assert prepare("key", "tiny", home=tmp_path, progress=False) == folder  # an intact folder passes
    # the last spot-checked job's audio, as another revision of the generator would have rendered it
    with tempfile.TemporaryDirectory() as d:
        build._do_job(("key", spot[-1], d))
        rel = build._audio_files(Path(d))[0]
    x, sr = sf.read(folder / rel, dtype="float32")
    sf.write(folder / rel, 0.5 * x, sr, format="FLAC")
    monkeypatch.setattr(build, "_VERIFIED", set())
    with pytest.raises(build.StaleRenderError, match=f"{rel}.*differs from what the current generator renders"
                                                      f".*rm -r.*bump its version"):
        prepare("key", "tiny", home=tmp_path, progress=False)
    assert issubclass(build.StaleRenderError, F.FormatError)  # the CLI's one-line error, no traceback

    # a folder of before the digest gets it on its next prepare; the feature cache key holds it
    meta = F.read_meta(folder)
    rec = split_cache(SimpleNamespace(name="r", identity=lambda: "i", sample_rate=24000, pooling="mean"),
                      get_task("key"), folder, "train", resolve_config(get_task("key")).features,
                      cache_dir=tmp_path / "cache").recipe
    assert rec["content"] == meta["content_digest"] == good
    del meta["content_digest"]
    F.atomic_write_text(folder / "meta.json", json.dumps(meta))
    sf.write(folder / rel, x, sr, format="FLAC")  # the true render back
    monkeypatch.setattr(build, "_VERIFIED", set())
    prepare("key", "tiny", home=tmp_path, progress=False)
    assert F.read_meta(folder)["content_digest"] == good
