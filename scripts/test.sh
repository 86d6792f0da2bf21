#!/usr/bin/env bash
# README command 2: set up (idempotent) and run the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_SILENT=true RAY_DISABLE_USAGE_STATS=1
export PYTHONUNBUFFERED=1
python -m pytest tests "$@"
