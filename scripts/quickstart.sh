#!/usr/bin/env bash
# README command 1: set up (idempotent) and run the CPU quickstart, then write the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_DISABLE_USAGE_STATS=1
dynamics run jobs/configs/quickstart.yaml --report "$@"
echo "the headline metrics per checkpoint (all of them: dynamics metrics results/quickstart):"
dynamics metrics results/quickstart --metric p_misaligned_given_choice
dynamics metrics results/quickstart --metric main/rate
