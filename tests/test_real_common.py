"""tasks.real machinery: data-dir resolution, metadata search, downloads (local server only), reports,
published reference rows."""
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

import tasks.real as real
from tasks import all_tasks
from tasks.real.download import Asset, download_file, verify
from tasks.real.folders import compare_with_published
from tasks.real.validation import Problem, ValidationReport

ALL_TASKS = [s.name for s in all_tasks()]


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support; counts bytes sent so tests can see what was re-fetched."""

    sent = 0
    range_requests = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        if rng:
            type(self).range_requests.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # count before writing: the client may finish reading before this thread runs another line
        type(self).sent += len(body)
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()

    def handler(*a, **kw):
        return _RangeHandler(*a, directory=str(srv_dir), **kw)

    _RangeHandler.sent = 0
    _RangeHandler.range_requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield srv_dir, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_resumes_with_range_and_never_refetches_verified(server, tmp_path):
    srv_dir, base = server
    payload = bytes(range(256)) * 4000  # 1 MB
    (srv_dir / "train_filtered.txt").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    data = tmp_path / "data"
    data.mkdir()
    (data / "splits").mkdir()
    (data / "splits" / "train_filtered.txt.part").write_bytes(payload[:300_000])  # an interrupted download
    a = Asset("train_filtered.txt", f"{base}/train_filtered.txt", sha256=sha, dest="splits")
    logs = []
    p = download_file(a, data, log=logs.append)
    assert p.read_bytes() == payload and p == data / "splits" / "train_filtered.txt"
    assert _RangeHandler.range_requests == ["bytes=300000-"] and _RangeHandler.sent == len(payload) - 300_000
    assert any("resuming at byte 300000" in m for m in logs)
    _RangeHandler.sent = 0
    assert download_file(a, data, log=logs.append) == p
    assert _RangeHandler.sent == 0 and "present and verified" in logs[-1]


def test_checksum_mismatch_is_an_error_and_leaves_no_file(server, tmp_path):
    srv_dir, base = server
    (srv_dir / "x.txt").write_bytes(b"tampered")
    a = Asset("x.txt", f"{base}/x.txt", sha256="0" * 64)
    with pytest.raises(real.DatasetMissing, match="checksum mismatch"):
        download_file(a, tmp_path, log=lambda m: None)
    assert not (tmp_path / "x.txt").exists()


def test_file_placed_by_hand_anywhere_counts(tmp_path):
    payload = b"blues/blues.00029.wav\n"
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "train_filtered.txt").write_bytes(payload)
    a = Asset("train_filtered.txt", "http://127.0.0.1:9/unreachable", sha256=hashlib.sha256(payload).hexdigest())
    assert download_file(a, tmp_path, log=lambda m: None) == tmp_path / "deep" / "er" / "train_filtered.txt"


def test_unreachable_source_says_what_to_do(tmp_path):
    a = Asset("annotations_final.csv", "http://127.0.0.1:9/annotations_final.csv")
    with pytest.raises(real.DatasetMissing, match="Fetch it by hand"):
        download_file(a, tmp_path, log=lambda m: None)


def test_gtzan_download_via_file_urls_then_validate(tmp_path, monkeypatch):
    """download() end to end for GTZAN's split lists from file:// mirrors, checksums of the real lists."""
    from fixtures_real import make_gtzan
    from tasks.real import gtzan

    data = tmp_path / "GTZAN"
    make_gtzan(data)
    mirror = tmp_path / "mirror"
    (data / "splits").rename(mirror)
    fake = {}
    for split, a in gtzan.SPLIT_ASSETS.items():
        body = (mirror / a.name).read_bytes()
        fake[split] = Asset(a.name, (mirror / a.name).as_uri(), sha256=hashlib.sha256(body).hexdigest(), dest="splits")
    monkeypatch.setattr(gtzan, "SPLIT_ASSETS", fake)
    got = real.download("genre", data, log=lambda m: None)
    assert sorted(p.name for p in got) == ["test_filtered.txt", "train_filtered.txt", "valid_filtered.txt"]
    assert real.validate("genre", data).ok


def test_verify_marker_skips_rehash(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    a = Asset("f.bin", "file:///dev/null", sha256=hashlib.sha256(b"abc").hexdigest())
    assert verify(p, a)
    assert (tmp_path / ".f.bin.verified").exists()
    assert not verify(p, Asset("f.bin", "x", sha256="1" * 64))


def test_data_dir_from_environment_and_missing_dataset_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MERT_BENCH_DATA", str(tmp_path))
    with pytest.raises(real.DatasetMissing) as e:
        real.prepare("genre", None, tmp_path / "out")
    msg = str(e.value)
    assert str(tmp_path / "GTZAN") in msg and "kaggle" in msg.lower() and "genres_original" in msg
    from fixtures_real import make_gtzan

    make_gtzan(tmp_path / "GTZAN")
    assert real.validate("genre").ok
    monkeypatch.delenv("MERT_BENCH_DATA")
    rep = real.validate("genre")
    assert not rep.ok and "MERT_BENCH_DATA" in rep.errors[0]


@pytest.mark.parametrize("task", ALL_TASKS)
def test_every_task_has_instructions_with_layout(task):
    text = real.instructions(task)
    assert "Expected" in text and len(text) > 200
    assert real.dataset_of(task) in real.DATASET_DIRS


def test_unknown_task_suggests():
    with pytest.raises(KeyError, match="did you mean 'genre'"):
        real.validate("genra", "/nonexistent")


def test_report_text_lists_every_bad_file_and_ok_rule():
    rep = ValidationReport(dataset="X", task="genre", data_dir="/d", listed={"train": 100, "valid": 10, "test": 10},
                           usable={"train": 95, "valid": 10, "test": 10},
                           missing=[Problem("train", f"f{i}.wav", "file missing") for i in range(5)])
    assert rep.ok  # exactly 5 % lost
    rep.usable["train"] = 94
    assert not rep.ok
    assert all(f"f{i}.wav" in rep.text() for i in range(5))


def test_reference_rows_are_marked_published_and_combine_like_our_specs():
    rows = real.reference_rows()
    assert rows and all(r["published"] is True and r["source"] == "marble-v1" for r in rows)
    assert {r["task"] for r in rows} - {"suite"} <= set(ALL_TASKS)  # published for the MARBLE v1 tasks
    from tasks.real.reference import main_scores

    m = main_scores()["MERT-v1-95M"]
    assert m["genre"] == 74.8 and m["tagging"] == pytest.approx((91.0 + 39.3) / 2)
    assert m["emotion"] == pytest.approx((76.3 + 55.5) / 2) and m["suite"] == 63.3
    assert m["separation"] == pytest.approx((5.5 + 5.5 + 3.8 + 3.1) / 4)


def test_compare_with_published_split_file(tmp_path):
    p = tmp_path / "s.tsv"
    p.write_text("id\tsplit\n1\ttrain\n2\tvalid\n")
    assert compare_with_published(p, {"1": "train", "2": "valid", "3": "test"}, "id", "split") is None
    note = compare_with_published(p, {"1": "valid", "2": "valid"}, "id", "split")
    assert note.startswith("1 items fall in another split") and "first: 1" in note
    assert compare_with_published(tmp_path / "none.tsv", {"1": "x"}, "id", "split") is None


def _file_asset(a: Asset, path: Path) -> Asset:
    return Asset(a.name, path.as_uri(), sha256=hashlib.sha256(path.read_bytes()).hexdigest(), dest=a.dest,
                 extract=a.extract, keep=a.keep)


def test_mtt_download_joins_zip_parts_and_unpacks(tmp_path, monkeypatch):
    """The three mp3.zip parts are joined and unzipped into mp3/; then the task validates."""
    import zipfile

    from fixtures_real import make_mtt
    from tasks.real import mtt

    src = tmp_path / "src"
    make_mtt(src)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "all.zip", "w") as z:
        for p in sorted((src / "mp3").rglob("*.mp3")):
            z.write(p, p.relative_to(src / "mp3").as_posix())
    blob = (mirror / "all.zip").read_bytes()
    third = len(blob) // 3
    for i, part in enumerate((blob[:third], blob[third:2 * third], blob[2 * third:]), 1):
        (mirror / f"mp3.zip.00{i}").write_bytes(part)
    (mirror / "annotations_final.csv").write_bytes((src / "annotations_final.csv").read_bytes())
    monkeypatch.setattr(mtt, "ASSETS", [_file_asset(a, mirror / a.name) for a in mtt.ASSETS])
    data = tmp_path / "MagnaTagATune"
    real.download("tagging", data, log=lambda m: None)
    assert (data / "mp3" / "c" / "lvx_nova-lvx_nova-01-contimune-30-59.mp3").exists()
    rep = real.validate("tagging", data)
    assert rep.ok and rep.usable == {"train": 7, "valid": 3, "test": 4}
    # a second download touches nothing: everything verified / unpacked
    logs = []
    real.download("tagging", data, log=logs.append)
    assert not any("downloading" in m or "extracting" in m for m in logs)


def test_emomusic_download_unpacks_tar_archives(tmp_path, monkeypatch):
    import tarfile

    from fixtures_real import make_emomusic
    from tasks.real import emomusic

    src = tmp_path / "src"
    make_emomusic(src)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "annotations.tar.gz", "w:gz") as t:
        t.add(src / "annotations", arcname="annotations")
    with tarfile.open(mirror / "clips_45sec.tar.gz", "w:gz") as t:
        t.add(src / "clips_45seconds", arcname="clips_45seconds")
    monkeypatch.setattr(emomusic, "ASSETS", [_file_asset(a, mirror / a.name) for a in emomusic.ASSETS])
    data = tmp_path / "Emomusic"
    real.download("emotion", data, log=lambda m: None)
    rep = real.validate("emotion", data)
    assert rep.ok and rep.usable == {"train": 5, "valid": 3, "test": 3}


def test_relative_data_dir_gives_absolute_item_paths(tmp_path, monkeypatch):
    from fixtures_real import make_emomusic
    from tasks.format import read_split, resolve

    make_emomusic(tmp_path / "Emomusic")
    monkeypatch.chdir(tmp_path)
    out = real.prepare("emotion", "Emomusic", tmp_path / "prepared")
    it = read_split(out, "test")[0]
    assert Path(it.audio).is_absolute() and resolve(out, it.audio).exists()
    rep = real.validate("emotion", "Emomusic")
    assert "other counts than the protocol's" in rep.text()


def test_download_says_what_is_still_missing(tmp_path):
    logs = []
    assert real.download("separation", tmp_path / "MUSDB18", log=logs.append) == []
    assert "still needed" in logs[-1] and "musdbconvert" in logs[-1]


def test_one_dead_link_does_not_stop_the_other_downloads(tmp_path, monkeypatch):
    from tasks.real import emomusic

    good = tmp_path / "mirror" / "clips_45sec.tar.gz"
    good.parent.mkdir()
    import tarfile

    (tmp_path / "c" / "clips_45seconds").mkdir(parents=True)
    with tarfile.open(good, "w:gz") as t:
        t.add(tmp_path / "c" / "clips_45seconds", arcname="clips_45seconds")
    monkeypatch.setattr(emomusic, "ASSETS", [
        Asset("annotations.tar.gz", "http://127.0.0.1:9/annotations.tar.gz", extract=True),
        Asset("clips_45sec.tar.gz", good.as_uri(), sha256=hashlib.sha256(good.read_bytes()).hexdigest(), extract=True)])
    logs = []
    got = real.download("emotion", tmp_path / "Emomusic", log=logs.append)
    assert [p.name for p in got] == ["clips_45sec.tar.gz"]
    assert any("1 file(s) could not be fetched" in m and "annotations.tar.gz" in m for m in logs)
    assert "still needed" in logs[-1] and "songs_info.csv" in logs[-1]
