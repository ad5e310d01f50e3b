#!/usr/bin/env bash
# Reproduce the shipped mert-mini checkpoint from a fresh checkout, offline, on the CPU (about an hour on 2
# idle cores): render the embedded pretraining collection (2 h of music), label it with k-means on log-mel +
# chroma (100 clusters; the real EnCodec weights cannot be fetched here), pretrain with the `mini` config
# (acoustic k-means teacher + CQT teacher + in-batch noise mixture), export the encoder into the package, and
# write the training log and its plot under results/pretrain/mert-mini/.
#
#   scripts/pretrain_mert_mini.sh [RUN_DIR]        (default runs/mert-mini; rerunning resumes)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/mert-mini}
AUDIO=$(python -c "from tasks.embedded import prepare_pretraining; print(prepare_pretraining('standard'))")
python -m mert labels --teacher kmeans-logmel-chroma --clusters 100 --seed 0 --audio "$AUDIO" --out "$RUN/labels"
python -m mert pretrain --config mini data.labels="$RUN/labels" train.out_dir="$RUN"
python -m mert export "$RUN" mert/weights/mert-mini
mkdir -p results/pretrain/mert-mini
cp "$RUN/log.csv" results/pretrain/mert-mini/log.csv
python scripts/plot_pretrain.py "$RUN/log.csv" results/pretrain/mert-mini/loss.png --title "mert-mini pretraining"
