"""Write the project's versioned split files into ``tasks/splits/`` from the datasets' public metadata.

    python -m tasks.real.make_splits --giantsteps DIR --emomusic-songs-info songs_info.csv --mus-yaml mus.yaml \
        [--vocalset DIR] [--out tasks/splits]

Deterministic: the same metadata gives byte-identical files. The readers compute the same splits from the
user's metadata at prepare time; tests check that both agree.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from tasks.format import atomic_write_text

OUT = Path(__file__).resolve().parents[1] / "splits"


def giantsteps_rows(root: Path) -> list[tuple[str, str, str]]:
    from tasks.real import giantsteps as gs
    from tasks.real.folders import find_named

    ann = gs._read_tsv(find_named(root, "annotations.txt"), ("ID", "MANUAL KEY", "C"))
    meta = gs._read_tsv(find_named(root, "beatport_metadata.txt"), ("ID", "ARTIST"))
    tv = gs.train_valid_tracks(ann, meta)
    test = gs.test_tracks(root)
    rows = [(d, s, k) for d, (s, k) in tv.items()] + [(d, "test", k) for d, k in test.items()]
    order = {"train": 0, "valid": 1, "test": 2}
    return sorted(rows, key=lambda r: (order[r[1]], int(r[0])))


def emomusic_rows(songs_info: Path) -> list[tuple[str, str]]:
    from tasks.real import emomusic as em

    rows = []
    for r in em._read_csv(songs_info):
        sid = str(int(r["song_id"]))
        rows.append((sid, "test" if r["Mediaeval 2013 set"] == "evaluation" else em.artist_split(r["Artist"])))
    return sorted(rows, key=lambda r: int(r[0]))


def vocalset_rows(root: Path) -> list[tuple[str, str, str]]:
    from tasks.real import vocalset as vs

    base = vs.find_singers_root(root)
    recs, _ = vs.recordings(base)
    return [(key, vs.singer_split(key), vs.technique_split(key, singer)) for key, singer, _, _ in recs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--giantsteps", type=Path, help="folder holding both GiantSteps annotation repositories")
    ap.add_argument("--emomusic-songs-info", type=Path, help="Emomusic songs_info.csv")
    ap.add_argument("--mus-yaml", type=Path, help="musdb's configs/mus.yaml")
    ap.add_argument("--vocalset", type=Path, help="a VocalSet copy (FULL/...) to list its recordings' splits")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.giantsteps:
        rows = giantsteps_rows(a.giantsteps)
        atomic_write_text(a.out / "giantsteps_key_v1.tsv",
                          "id\tsplit\tkey\n" + "".join(f"{d}\t{s}\t{k}\n" for d, s, k in rows))
        print(f"giantsteps_key_v1.tsv: {len(rows)} tracks")
    if a.emomusic_songs_info:
        rows = emomusic_rows(a.emomusic_songs_info)
        atomic_write_text(a.out / "emomusic_v1.tsv", "song_id\tsplit\n" + "".join(f"{d}\t{s}\n" for d, s in rows))
        print(f"emomusic_v1.tsv: {len(rows)} songs")
    if a.mus_yaml:
        import yaml

        names = yaml.safe_load(a.mus_yaml.read_text(encoding="utf-8"))["validation_tracks"]
        atomic_write_text(a.out / "musdb18_valid_v1.txt", "".join(f"{n}\n" for n in names))
        print(f"musdb18_valid_v1.txt: {len(names)} tracks")
    if a.vocalset:
        rows = vocalset_rows(a.vocalset)
        atomic_write_text(a.out / "vocalset_v1.tsv",
                          "recording\tsinger_split\ttechnique_split\n" + "".join("\t".join(r) + "\n" for r in rows))
        print(f"vocalset_v1.tsv: {len(rows)} recordings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
