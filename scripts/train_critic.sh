#!/usr/bin/env bash
# Fine-tunes the embedded CLIP as a critic against the loop's own samples (persistent
# chains of vqclip's VQGAN+CLIP loop, see vqclip.clip.samples), from the shipped weights.
# Usage: scripts/train_critic.sh OUT_DIR
#   BUDGET_S   seconds of training (default 2400: the CPU run of the README, one thread)
#   INIT       the CLIP to start from (default: the embedded one, "shapes"; a model folder)
#   CRITIC_ARGS extra train-clip options, e.g. '--samples both', '--energy-temperature 0' or
#               '--energy-weight 0 --align-weight 1' (gradient alignment instead of the energy term),
#               '--align-views 4' (aligned through the generator's views), '--align-near 8'
#               (near misses' slopes too), '--sample-kinds pair' (chains aimed at pairs only),
#               '--sample-object-weight 2 --sample-pair-steps 1.33' (chains with the generator's
#               object views and pair steps, as it runs by default now), '--rank-weight 2
#               --rank-margin 0.1' (whole pictures held a margin below their renders),
#               '--sample-render-start 0.5' (half the chains start at their scene's render),
#               '--stationary-weight 100' (R1: no slope at the renders for the loop to climb)
#               '--rank-truths 4' (the rank term against 4 other right pictures of each caption too)
#               '--sample-reinit 0' (chains restart only at the loop's length, so the critic sees
#               as many late states as young ones: benchmarks/chain_ages.py)
#               '--rank-nearest 0.05' (each sample that margin below the clean render of its own
#               layout too: its caption's true picture nearest to it)
# The same command runs on a GPU (where a lease allows): there, raise the batch and the
# chains, e.g. CRITIC_ARGS='--batch-size 512 --buffer-size 1024 --sample-batch 128'.
set -euo pipefail
out=${1:?usage: scripts/train_critic.sh OUT_DIR}
budget=${BUDGET_S:-2400}
init=${INIT:-shapes}
mkdir -p "$out"
python3 -m vqclip train-clip --out "$out" --init "$init" --samples loop --seed 0 \
  --steps 100000 --time-budget "$budget" --batch-size 64 --lr 1e-4 --min-lr 1e-6 --warmup 50 \
  --buffer-size 64 --sample-batch 8 --sample-steps 2 --energy-weight 0.5 \
  --energy-temperature 2 --save-every 100 --eval-every 200 --eval-n 200 --workers 0 \
  ${CRITIC_ARGS:-}
