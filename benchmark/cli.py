"""Argument parsing for ``python -m benchmark`` (no logic here; see benchmark.commands)."""
from __future__ import annotations

import argparse

DESCRIPTION = """The 14 MARBLE tasks as frozen-feature probes: extract every layer once into a cache, train MLP
probes for all layers and learning rates at once, choose on validation, score once on test, write results
and leaderboards. Runs offline on the embedded corpus by default; --data real uses the real datasets."""

EPILOG = """examples:
  python -m benchmark run --task key --model chroma
  python -m benchmark run --task all --model mfcc --grid fast
  python -m benchmark run --task genre --model mert-v1-95m --layers 6,7 --seeds 3 probe.max_epochs=50
  python -m benchmark run --task tagging --model mypkg.mymodule:factory
  python -m benchmark run --task genre --model mfcc --mode fewshot --shots 5
  python -m benchmark run --task genre,key --model mert-mini --mode lora finetune.epochs=10
  python -m benchmark run --task genre --model hf:facebook/wav2vec2-base
  python -m benchmark run --task beat --model hear:hearbaseline
  python -m benchmark list-tasks --format md
  python -m benchmark predict --task key --model chroma song.wav more_songs/
  python -m benchmark evaluate --task key --model chroma --data prepared --data-dir my_keys/
"""


def _common(p: argparse.ArgumentParser, probe: bool = True) -> None:
    from benchmark.registry import DEFAULT_MODEL

    p.add_argument("--task", action="append", default=[], metavar="NAME",
                   help="task name (repeatable, comma lists allowed) or 'all'")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"representation: a name from list-models, random:PRESET[:SEED], hear:MODULE[:WEIGHTS], "
                        f"hf:REPO_OR_PATH[@REVISION], pkg.module:factory, a MERT hub id, folder or checkpoint; "
                        f"+mean_std or +mean after any of them replaces its clip pooling (default {DEFAULT_MODEL})")
    _data_args(p)
    p.add_argument("--cache-dir", default=None, help="feature cache (default $MERT_BENCH_HOME/features)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use N items per split (smoke runs)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default features.device = cpu)")
    p.add_argument("--config", default=None, metavar="FILE", help="yaml with probe/features/beat/separation keys")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="no log lines")
    if probe:
        p.add_argument("--layers", default=None, help="'all' (default) or a comma list of layer indices")
        p.add_argument("--seeds", type=int, default=None,
                       help="number of probe seeds (default 1; 3 for clip-level tasks on the embedded corpus); "
                            "--mode lora / full: training seeds (finetune.seeds, default 1)")
        p.add_argument("--grid", choices=("full", "fast"), default="full", help="probe grid (default full)")
        p.add_argument("--results-dir", default="results", help="where runs/ and leaderboards go (default results)")
        p.add_argument("--overwrite", choices=("never", "only-missing", "always"), default="only-missing",
                       help="existing results: never replace / replace when the config differs (default) / always")
        p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (offline without a login)")
        p.add_argument("--no-leaderboard", action="store_true", help="do not regenerate the leaderboards")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. probe.max_epochs=5")


def _mode_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--mode", choices=("freeze", "fewshot", "lora", "full"), default="freeze",
                   help="freeze: MLP probes on the frozen features (default); fewshot: nearest class centroid from "
                        "--shots labelled train items per class, no training (multi-class tasks; results under "
                        "the source <source>-fewshot<K>); lora: the encoder's attention projections adapted with "
                        "LoRA (peft) and trained with the probe's head on raw audio crops; full: every encoder "
                        "weight trained with the head (lora / full: clip-level tasks, MERT and hf: models, "
                        "finetune.* keys, --seeds runs; results under <source>-lora / <source>-full)")
    p.add_argument("--shots", type=int, default=None, metavar="K",
                   help="--mode fewshot: train items per class (default fewshot.shots = 5)")


def _data_args(p: argparse.ArgumentParser, what: str = "data source") -> None:
    p.add_argument("--data", choices=("embedded", "real", "prepared"), default="embedded",
                   help=f"{what} (default embedded)")
    p.add_argument("--size", choices=("standard", "tiny"), default="standard", help="embedded corpus size")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE", dest="data_option",
                   help="real-data option of a task, e.g. split=won for MTT tagging (the Won et al. split); "
                        "results go to their own table (source real-split=won)")
    p.add_argument("--data-dir", default=None,
                   help="real: the dataset folder (default $MERT_BENCH_DATA/<dataset>); embedded: the corpus home; "
                        "prepared: a prepared folder")


_TRAIN_SOURCE_HELP = ("the data source the probe was trained on, as in results/runs/<SOURCE>: embedded-standard "
                      "(default), embedded-tiny, real, prepared-<folder>-<digest>, ...")


def _stored_probe_args(p: argparse.ArgumentParser) -> None:
    from benchmark.registry import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"the representation the probe reads (default {DEFAULT_MODEL})")
    p.add_argument("--train-source", default="embedded-standard", metavar="SOURCE", help=_TRAIN_SOURCE_HELP)
    p.add_argument("--results-dir", default="results", help="where the probe's result is (default results)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... for the representation (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="no log lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _mode_args(sub.add_parser("run", help="extract features, train probes, score, write results and leaderboards"))
    p = sub.add_parser("extract", help="extract features into the cache only")
    _common(p, probe=False)
    p.add_argument("--dry-run", action="store_true",
                   help="run nothing: say per task and split how many items, hours of audio, cache rows and GB the "
                        "model's features will take (from the audio headers)")
    _mode_args(sub.add_parser("probe", help="train probes and score from cached features only (no model runs)"))
    p = sub.add_parser("reference", help="reference rows of the beat task: untrained / specialist trackers scored "
                                         "on the same items (no features, no probe)")
    _common(p)
    p.add_argument("--tracker", default="spectral-flux", metavar="NAMES",
                   help="comma list: spectral-flux (untrained spectral flux + DBN), madmom-rnn (madmom's trained RNN "
                        "+ DBN; needs the madmom extra, models CC BY-NC-SA) (default spectral-flux)")
    p = sub.add_parser("predict", help="apply a trained probe (stored by `run`) to your own audio: the task's output "
                                       "per file (key, classes, tags, arousal/valence, beats)")
    p.add_argument("--task", required=True, metavar="NAME", help="the task whose probe to apply")
    _stored_probe_args(p)
    p.add_argument("--out", default="predictions", metavar="DIR",
                   help="where the outputs go: <file>.<task>.json (beat: also .beats, and .jams with jams installed); "
                        "default ./predictions")
    p.add_argument("inputs", nargs="+", metavar="AUDIO", help="audio files, or folders of them (searched recursively)")
    p = sub.add_parser("evaluate", help="score a trained probe (stored by `run`) on another data source's test split, "
                                        "without training; its own result and leaderboard table")
    p.add_argument("--task", action="append", default=[], metavar="NAME",
                   help="task name (repeatable, comma lists allowed) or 'all'")
    _stored_probe_args(p)
    _data_args(p, "the test data")
    p.add_argument("--cache-dir", default=None, help="feature cache (default $MERT_BENCH_HOME/features)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use N test items (smoke runs)")
    p.add_argument("--overwrite", choices=("never", "only-missing", "always"), default="only-missing",
                   help="an existing evaluation: never replace / replace when anything differs (default) / always")
    p.add_argument("--no-leaderboard", action="store_true", help="do not regenerate the leaderboards")
    p = sub.add_parser("list-tasks", help="the tasks with dataset, type, metrics, main score and version")
    p.add_argument("--format", choices=("table", "md", "csv"), default="table")
    sub.add_parser("list-models", help="the registered representations")
    p = sub.add_parser("leaderboard", help="regenerate the leaderboards from results/runs")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--no-plots", action="store_true")
    p = sub.add_parser("prepare", help="build the embedded corpus or prepare a real dataset")
    p.add_argument("--task", action="append", default=[], metavar="NAME", help="task name or 'all'")
    p.add_argument("--data", choices=("embedded", "real"), default=None,
                   help="default: real when --data-dir is given, else embedded")
    p.add_argument("--size", choices=("standard", "tiny"), default="standard")
    p.add_argument("--data-dir", default=None, help="real: the dataset folder; embedded: the corpus home")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="real: do not fetch what is public (checksummed, resumable); only prepare local files")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE", dest="data_option",
                   help="real-data option, e.g. split=won for MTT tagging")
    p = sub.add_parser("mock-run", help="every task through the whole pipeline on tiny synthetic data (a one-minute "
                                        "check of a model or a change, not a score)")
    p.add_argument("--task", action="append", default=[], metavar="NAME", help="task name (default: all)")
    p.add_argument("--model", default="chroma", help="representation (default chroma, the fastest)")
    p.add_argument("--device", default=None, help="cpu, cuda, ...")
    p.add_argument("--keep", default=None, metavar="DIR", help="build in DIR and keep it (default: a temporary folder)")
    p.add_argument("--quiet", action="store_true", help="no log lines")
    p = sub.add_parser("validate", help="check a real dataset's files and splits")
    p.add_argument("--task", action="append", default=[], metavar="NAME", help="task name or 'all'")
    p.add_argument("--deep", action="store_true",
                   help="decode every file completely and say which hold NaN, infinite or silent audio (slower; "
                        "the default reads headers: format and length)")
    p.add_argument("--data-dir", default=None, help="the dataset folder (default $MERT_BENCH_DATA/<dataset>)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE", dest="data_option",
                   help="real-data option, e.g. split=won for MTT tagging")
    return parser
