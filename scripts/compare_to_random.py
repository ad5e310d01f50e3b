"""Learned rows against the distribution of random networks, per task, from the committed result records.

    python scripts/compare_to_random.py --rows mert-mini,mert-mini-iter2 [--random random:mert-mini]
        [--source embedded-standard] [--handcrafted mfcc,cqt,chroma,melspec]
        [--out results/analysis/mert-mini-iterations.md]

For each task that every compared row and every random draw has (at its newest version): each row's mean and
standard deviation over probe seeds, the random draws' pooled mean (the mean over draws of each draw's mean) and
the standard deviation over every (draw, seed) score, the difference and the difference in units of that spread.
A win is a mean above the draws' mean (issue 19's measure). Then the average over those tasks for every row, the
draws and the handcrafted rows (the same tasks, so the averages compare). The numbers are the leaderboard's
(benchmark.results.leaderboard_rows), so this table and results/leaderboard.md cannot disagree.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _newest(cols: list[str]) -> list[str]:
    newest: dict[str, int] = {}
    for c in cols:
        n, v = c.split("@v")
        newest[n] = max(newest.get(n, int(v)), int(v))
    return [c for c in cols if int(c.split("@v")[1]) == newest[c.split("@v")[0]]]


def _spread(row: dict, col: str) -> float:
    s = row.get("_spread", {}).get(col)
    return float(s[0]) if s else float("nan")


def compare(results_dir: Path, source: str, names: list[str], random: str, handcrafted: list[str]) -> str:
    from benchmark.results import leaderboard_rows, load_results

    cols, rows = leaderboard_rows(load_results(results_dir))
    rows = [r for r in rows if r["data"] == source]
    by_name = {}
    for r in rows:
        by_name.setdefault(r["representation"], r)
    pooled = [r for r in rows if r["representation"].startswith(random + ":") and "draws" in str(r["revision"])]
    if not pooled:
        raise SystemExit(f"no pooled row of random draws for {random!r} in {source} (needs results of 2+ draws)")
    draws = pooled[0]
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SystemExit(f"no results for {missing} in {source}; rows: {sorted(by_name)}")
    learned = [by_name[n] for n in names]
    tasks = [c for c in _newest(cols) if c in draws and all(c in r for r in learned)]
    hand = [by_name[n] for n in handcrafted if n in by_name and all(c in by_name[n] for c in tasks)]
    heads = " | ".join(f"{r['representation']} ({r['revision']})" for r in learned)
    out = [f"| task | {heads} | "
           f"{draws['representation']} ({draws['revision']}) | "
           + " | ".join(f"{r['representation']} - draws (in sd)" for r in learned) + " |",
           "|---|" + "---|" * (2 * len(learned) + 1)]
    wins = {r["representation"]: 0 for r in learned}
    for c in tasks:
        cells = []
        for r in learned:
            s = _spread(r, c)
            cells.append(f"{r[c]:.1f}" + ("" if math.isnan(s) else f" ± {s:.1f}"))
        sd = _spread(draws, c)
        diffs = []
        for r in learned:
            d = r[c] - draws[c]
            wins[r["representation"]] += d > 0
            diffs.append(f"{d:+.1f}" + (f" ({d / sd:+.1f})" if sd > 0 else "") + (" win" if d > 0 else ""))
        out.append(f"| {c} | " + " | ".join(cells) + f" | {draws[c]:.1f} ± {sd:.1f} | " + " | ".join(diffs) + " |")

    def avg(r):
        return sum(r[c] for c in tasks) / len(tasks)

    out += ["", f"Average over these {len(tasks)} tasks (separation in dB counts as its number, as in the "
                f"leaderboard):", "", "| row | average | wins against the draws' mean |", "|---|---|---|"]
    for r in learned:
        out.append(f"| {r['representation']} ({r['revision']}) | {avg(r):.1f} | {wins[r['representation']]} of "
                   f"{len(tasks)} |")
    out.append(f"| {draws['representation']} ({draws['revision']}) | {avg(draws):.1f} | |")
    for r in hand:
        out.append(f"| {r['representation']} ({r['revision']}) | {avg(r):.1f} | |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", required=True, help="comma list of representation names (leaderboard rows)")
    ap.add_argument("--random", default="random:mert-mini", help="the random preset whose draws are pooled")
    ap.add_argument("--source", default="embedded-standard")
    ap.add_argument("--handcrafted", default="mfcc,cqt,chroma,melspec")
    ap.add_argument("--results-dir", default=str(ROOT / "results"))
    ap.add_argument("--out", default=None, help="write the table to this markdown file (else print it)")
    a = ap.parse_args()
    text = compare(Path(a.results_dir), a.source, a.rows.split(","), a.random, a.handcrafted.split(","))
    if a.out:
        Path(a.out).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
