"""Entry point for `ray job submit`: the same as `dynamics run` / `dynamics sweep`, on the cluster.

    ray job submit --address http://HEAD:8265 --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/run.py jobs/configs/quickstart.yaml [key=value ...]
    ray job submit ... -- python jobs/run.py --sweep jobs/configs/cpu_sweep.yaml

Ray sets RAY_ADDRESS for the job's driver, so `dynamics` connects to that cluster instead of starting
a local one. The working dir is on sys.path, so the uploaded `dynamics` package is the one that runs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamics.cli import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--sweep":
        raise SystemExit(main(["sweep", *args[1:]]))
    raise SystemExit(main(["run", *args]))
