"""Plot a pretraining run's log.csv (written by ``python -m mert pretrain``) as loss curves.

    python scripts/plot_pretrain.py runs/mert-mini/log.csv results/pretrain/mert-mini/loss.png

Panels: masked codebook cross-entropy (and, when logged, the unmasked one) against the entropy of the label
prior -- the CE of a model that ignores the audio, so the gap below that line is what was learned; the CQT
reconstruction MSE; masked-frame accuracy; the learning rate. Raw values are drawn thin, a moving average thick.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path


def read_log(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    cols: dict[str, list[float]] = {}
    for key in rows[0]:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[key]))
            except (TypeError, ValueError):
                vals.append(math.nan)
        cols[key] = vals
    return cols


def smooth(v: list[float], k: int) -> list[float]:
    out, acc, n = [], [], 0
    for x in v:
        acc.append(x)
        if len(acc) > k:
            acc.pop(0)
        good = [a for a in acc if math.isfinite(a)]
        out.append(sum(good) / len(good) if good else math.nan)
    return out


def plot(cols: dict[str, list[float]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = cols["step"]
    k = max(1, len(step) // 40)
    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    a = ax[0, 0]
    for key, colour, label in (("ce", "C0", "masked CE"), ("ce_unmasked", "C2", "unmasked CE")):
        if key in cols and any(math.isfinite(x) for x in cols[key]):
            a.plot(step, cols[key], colour, alpha=0.25, lw=0.8)
            a.plot(step, smooth(cols[key], k), colour, lw=2, label=label)
    if "ce_prior" in cols and math.isfinite(cols["ce_prior"][0]):
        a.axhline(cols["ce_prior"][0], color="k", ls="--", lw=1, label=f"label prior {cols['ce_prior'][0]:.2f}")
    a.set_title("codebook cross-entropy (nats)")
    a.legend()
    a = ax[0, 1]
    a.plot(step, cols["cqt"], "C1", alpha=0.25, lw=0.8)
    a.plot(step, smooth(cols["cqt"], k), "C1", lw=2)
    a.set_title("CQT reconstruction MSE (masked frames)")
    a = ax[1, 0]
    a.plot(step, cols["acc"], "C3", alpha=0.25, lw=0.8)
    a.plot(step, smooth(cols["acc"], k), "C3", lw=2)
    a.set_title("masked-frame accuracy")
    a.set_xlabel("update")
    a = ax[1, 1]
    a.plot(step, cols["lr"], "C4")
    a.set_title("learning rate")
    a.set_xlabel("update")
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log_csv", type=Path)
    p.add_argument("out_png", type=Path)
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    cols = read_log(args.log_csv)
    plot(cols, args.out_png, args.title or str(args.log_csv))
    print(f"wrote {args.out_png} ({len(cols['step'])} updates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
