#!/usr/bin/env bash
# README command 1: set up (idempotent) and run the CPU quickstart, then write the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_DISABLE_USAGE_STATS=1
# the run ends with the headline metrics as a table (again: dynamics metrics results/quickstart --table)
dynamics run jobs/configs/quickstart.yaml --report "$@"
