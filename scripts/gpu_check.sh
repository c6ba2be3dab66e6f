#!/usr/bin/env bash
# The GPU checks to run when a device machine is lent (one short script, a few minutes):
# the loop's speed and memory on the imagenet architectures, and a short critic run.
set -euo pipefail
pip install -q -e . >/dev/null
mkdir -p "${OUT:-out}"
python benchmarks/bench_generate.py --gpu --iterations 10 | tee "${OUT:-out}/bench_generate_gpu.jsonl"
python -m vqclip generate "a red circle" --device cuda --iterations 10 -q --out "${OUT:-out}/gpu.png"
BUDGET_S=${CRITIC_S:-240} CRITIC_ARGS='--batch-size 512 --buffer-size 1024 --sample-batch 128 --workers 8' \
  scripts/train_critic.sh "${OUT:-out}/critic" > "${OUT:-out}/critic.log" 2>&1 || true
