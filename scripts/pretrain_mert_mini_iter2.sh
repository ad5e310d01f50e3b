#!/usr/bin/env bash
# mert-mini's second iteration (HuBERT's recipe), offline, on the CPU: label the embedded pretraining collection
# (2 h of music) with k-means (100 clusters) on layer 3 of the shipped mert-mini (mert/weights/mert-mini; why
# layer 3: mert/teachers/kmeans_layer.py), pretrain mert-mini's architecture from a random init on those labels
# with the `mini-iter2` config (mini's recipe: the CQT teacher and the in-batch noise mixture, 1000 updates),
# export the encoder to RUN/model (mert-mini itself, the teacher, is left as it is) and write the training log
# and its plot under results/pretrain/mert-mini-iter2/. Benchmark the result with --model RUN/model.
#
#   scripts/pretrain_mert_mini_iter2.sh [RUN_DIR] [LAYER]    (default runs/mert-mini-iter2, layer 3; rerunning
#                                                            resumes; another LAYER needs another RUN_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/mert-mini-iter2}
LAYER=${2:-3}
AUDIO=$(python -c "from tasks.embedded import prepare_pretraining; print(prepare_pretraining('standard'))")
python -m mert labels --teacher kmeans-layer --model mert-mini --layer "$LAYER" --clusters 100 --seed 0 \
  --audio "$AUDIO" --out "$RUN/labels"
python -m mert pretrain --config mini-iter2 data.labels="$RUN/labels" train.out_dir="$RUN"
python -m mert export "$RUN" "$RUN/model"
mkdir -p results/pretrain/mert-mini-iter2
cp "$RUN/log.csv" results/pretrain/mert-mini-iter2/log.csv
python scripts/plot_pretrain.py "$RUN/log.csv" results/pretrain/mert-mini-iter2/loss.png \
  --title "mert-mini iteration 2 pretraining (k-means on mert-mini layer $LAYER)"
