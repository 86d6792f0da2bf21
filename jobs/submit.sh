#!/usr/bin/env bash
# Submit an experiment to a running Ray cluster as a Ray job (Ray 2.60 `ray job submit`).
#
#   jobs/submit.sh jobs/configs/paper_instruct.yaml                      # a sweep (the default verb)
#   jobs/submit.sh jobs/configs/paper_instruct.yaml train.num_workers=2 train.gradient_accumulation_steps=4
#   jobs/submit.sh run jobs/configs/quickstart.yaml                      # a single run
#   jobs/submit.sh prefetch Qwen/Qwen2.5-Coder-32B-Instruct              # fill the cluster's HF cache once
#
# At its core this is exactly:
#   ray job submit --address http://HEAD:8265 --working-dir . --runtime-env jobs/runtime_env.yaml \
#       -- python -m dynamics.cli sweep jobs/configs/paper_instruct.yaml
#
# Environment:
#   RAY_ADDRESS   the cluster's dashboard (default http://127.0.0.1:8265: a local `ray start --head`, or
#                 `ray dashboard cluster/aws-gpu.yaml` / `kubectl port-forward svc/dynamics-head-svc 8265`)
#   NO_WAIT=1     return once submitted instead of following the logs (`ray job logs -f ID` follows later)
#   PASS_SECRETS  1 (default): copy OPENAI_API_KEY, WANDB_API_KEY and HF_TOKEN from this shell into the
#                 job's runtime env, for clusters whose nodes do not carry them. Anyone who can reach the
#                 dashboard can read a job's runtime env: on Kubernetes keep them in a Secret instead
#                 (cluster/kuberay/) and set PASS_SECRETS=0.
set -euo pipefail
cd "$(dirname "$0")/.."

ADDRESS="${RAY_ADDRESS:-http://127.0.0.1:8265}"
RUNTIME_ENV=jobs/runtime_env.yaml
PYTHON="${PYTHON:-python3}"

verb=sweep
case "${1:-}" in
  run|sweep|prefetch) verb="$1"; shift ;;
  ""|-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
esac
[ $# -ge 1 ] || { echo "usage: jobs/submit.sh [run|sweep|prefetch] CONFIG_OR_MODEL [key=value ...]" >&2; exit 2; }

# Secrets travel in a private copy of the runtime env, never in the committed file.
secrets=()
if [ "${PASS_SECRETS:-1}" = 1 ]; then
  for name in OPENAI_API_KEY WANDB_API_KEY HF_TOKEN; do
    [ -n "${!name:-}" ] && secrets+=("$name")
  done
fi
if [ "$verb" = prefetch ] || [ ${#secrets[@]} -gt 0 ]; then
  tmp="$(mktemp -t dynamics-runtime-env.XXXXXX.yaml)"
  chmod 600 "$tmp"
  trap 'rm -f "$tmp"' EXIT
  VERB="$verb" "$PYTHON" - "$RUNTIME_ENV" "$tmp" ${secrets[@]+"${secrets[@]}"} <<'EOF'
import os, sys, yaml
src, dst, *names = sys.argv[1:]
env = yaml.safe_load(open(src))
env.setdefault("env_vars", {}).update({n: os.environ[n] for n in names})
if os.environ["VERB"] == "prefetch":
    env["env_vars"]["HF_HUB_OFFLINE"] = "0"  # the one job that may reach the Hub
with open(dst, "w") as f:
    yaml.safe_dump(env, f)
EOF
  RUNTIME_ENV="$tmp"
fi

if [ "$verb" = prefetch ]; then
  # Downloads into the head node's HF_HOME, which the cluster definitions put on the shared volume.
  entrypoint=(python -c "import sys; from huggingface_hub import snapshot_download; print(snapshot_download(sys.argv[1]))" "$1")
  id="prefetch-$(date +%Y%m%d-%H%M%S)"
else
  entrypoint=(python -m dynamics.cli "$verb" "$@")
  id="$(basename "$1" .yaml)-$verb-$(date +%Y%m%d-%H%M%S)"
fi

wait_flag=()
[ "${NO_WAIT:-0}" = 1 ] && wait_flag=(--no-wait)

set -x
ray job submit --address "$ADDRESS" --submission-id "$id" ${wait_flag[@]+"${wait_flag[@]}"} \
  --working-dir . --runtime-env "$RUNTIME_ENV" \
  -- "${entrypoint[@]}"
