"""Downloads of public files: an :class:`Asset` (where a file comes from, its original name, its checksum),
fetched with :func:`download_file` (checksums verified, partial files resumed with HTTP Range requests, a
verified file never fetched again: :func:`verify`) and unpacked once with :func:`extract_archive`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tasks.real.folders import DatasetMissing, MetadataError, clear_cache, find_named


@dataclass(frozen=True)
class Asset:
    """A public file: where it comes from, its original name, and its checksum when one is published."""

    name: str               # original file name (what find_named looks for)
    url: str
    sha256: str | None = None
    md5: str | None = None
    dest: str = ""          # folder below the data dir ("" = data dir itself)
    extract: bool = False   # unpack (tar / zip) into the destination folder after verification
    what: str = ""          # one line for the user
    keep: bool = True       # False: delete the archive once unpacked (the unpack marker remembers it)


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, asset: Asset) -> bool:
    """True when the file matches the asset's checksum (no checksum: present and non-empty).

    A marker ``.<name>.verified`` remembers a successful check (size and mtime) so that large files are not
    hashed again."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    marker = path.with_name(f".{path.name}.verified")
    st = path.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}:{asset.sha256 or ''}:{asset.md5 or ''}"
    if marker.exists() and marker.read_text() == stamp:
        return True
    if asset.sha256 and _digest(path, "sha256") != asset.sha256.lower():
        return False
    if asset.md5 and _digest(path, "md5") != asset.md5.lower():
        return False
    marker.write_text(stamp)
    return True


def download_file(asset: Asset, data_dir: Path, log: Callable[[str], None] = print,
                  timeout: float = 60.0) -> Path:
    """Fetch ``asset`` into ``data_dir/<dest>/<name>``.

    * A file that is already there and verifies is not fetched again (it is also found anywhere below the
      data dir by its name, so a file placed by hand counts).
    * A partial ``<name>.part`` is resumed with an HTTP ``Range`` request; a server that ignores Range makes
      us start over. ``file://`` URLs work too (tests, mirrors).
    * A checksum mismatch after download deletes the file and raises.
    """
    data_dir = Path(data_dir)
    target = data_dir / asset.dest / asset.name
    existing = find_named(data_dir, asset.name, required=False) if data_dir.is_dir() else None
    for cand in [target] + ([existing] if existing else []):
        if cand.is_file() and verify(cand, asset):
            log(f"{asset.name}: present and verified ({cand})")
            return cand
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in range(2):
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(asset.url, headers={"User-Agent": "mert-bench"})
        if have and not asset.url.startswith("file:"):
            req.add_header("Range", f"bytes={have}-")
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range not satisfiable: the part is complete already
                resp = None
            else:
                raise DatasetMissing(f"{asset.name}: download from {asset.url} failed (HTTP {e.code}). "
                                     f"Fetch it by hand and put it anywhere below {data_dir}.") from None
        except (urllib.error.URLError, OSError) as e:
            raise DatasetMissing(f"{asset.name}: download from {asset.url} failed ({e}). "
                                 f"Fetch it by hand and put it anywhere below {data_dir}.") from None
        if resp is not None:
            with resp:
                status = getattr(resp, "status", None)
                resumed = have and status == 206
                if have and not resumed:
                    log(f"{asset.name}: server ignored the range request; starting over")
                    have = 0
                mode = "ab" if resumed else "wb"
                if resumed:
                    log(f"{asset.name}: resuming at byte {have}")
                else:
                    log(f"{asset.name}: downloading {asset.url}")
                with open(part, mode) as f:
                    shutil.copyfileobj(resp, f, length=1 << 20)
        os.replace(part, target)
        clear_cache()
        if verify(target, asset):
            log(f"{asset.name}: verified")
            return target
        target.unlink()
        if attempt == 0:
            log(f"{asset.name}: checksum mismatch, downloading again from scratch")
    raise DatasetMissing(f"{asset.name}: checksum mismatch after downloading {asset.url} twice; "
                         f"the source changed or is corrupt. Expected sha256={asset.sha256} md5={asset.md5}.")


def extract_archive(path: Path, dest: Path, log: Callable[[str], None] = print) -> None:
    """Unpack a tar(.gz) or zip into ``dest`` once (a marker file remembers it); refuses paths that would
    leave ``dest``."""
    import tarfile
    import zipfile

    marker = dest / f".{path.name}.extracted"
    if marker.exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    log(f"{path.name}: extracting into {dest}")
    root = dest.resolve()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for m in z.namelist():
                if not (root / m).resolve().is_relative_to(root):
                    raise MetadataError(f"{path}: member {m!r} would be written outside {dest}")
            z.extractall(dest)
    else:
        with tarfile.open(path) as t:
            t.extractall(dest, filter="data")
    marker.write_text("ok\n")
    clear_cache()
