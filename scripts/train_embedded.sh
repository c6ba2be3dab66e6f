#!/usr/bin/env bash
# Trains the two embedded models side by side on one GPU, with the settings the
# shipped weights were made with. Usage: scripts/train_embedded.sh OUT_DIR
# (on a CPU-only machine the same commands run, far slower). CLIP_ARGS adds options
# to train-clip for experiments, e.g. CLIP_ARGS=--hard-negatives; the shipped weights
# were made without it. VQGAN_ARGS does the same for train-vqgan, e.g.
# VQGAN_ARGS='--config configs/shapes-vqgan-f8.json'.
set -euo pipefail
out=${1:?usage: scripts/train_embedded.sh OUT_DIR}
budget=${BUDGET_S:-420}   # each run anneals and ends within this many seconds
mkdir -p "$out"
timeout -s INT "$((budget + 90))" python3 -m vqclip train-clip --out "$out/clip" --seed 0 \
  --steps 20000 --batch-size 512 --time-budget "$budget" --lr 1e-3 --warmup 500 --workers 9 \
  --save-every 1000 --eval-every 2000 --eval-n 500 ${CLIP_ARGS:-} >"$out/clip.log" 2>&1 &
clip=$!
timeout -s INT "$((budget + 90))" python3 -m vqclip train-vqgan --out "$out/vqgan" --seed 0 \
  --steps 30000 --batch-size 128 --time-budget "$budget" --lr 1e-3 --disc-start 0.6 --workers 5 \
  --save-every 1000 ${VQGAN_ARGS:-} >"$out/vqgan.log" 2>&1 || echo "vqgan exit $?"
wait $clip || echo "clip exit $?"
