"""Trainers and evaluators land on separate GPU bundles, on a local cluster with fake GPU resources
(`ray.init(num_gpus=...)`, as Ray's own tests do). Nothing touches CUDA: the loop only reports what Ray
assigned it. Runs in a subprocess: the session's CPU-only cluster cannot gain GPUs."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

PROBE = r'''
import json, ray
from ray.train import RunConfig
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
from dynamics.config import config_from_dict
from dynamics.orchestration.evaluator import evaluator_options
from dynamics.orchestration.run import scaling_config

cfg = config_from_dict({"output_dir": "OUT", "train": {"use_gpu": True, "num_workers": 2,
                        "worker_resources": {"trainer_gpu": 1}},
                        "eval": {"num_gpus": 1, "num_cpus": 1, "resources": {"evaluator_gpu": 1}}})
ray.init(address="local", num_cpus=6, num_gpus=3, resources={"trainer_gpu": 2, "evaluator_gpu": 1},
         include_dashboard=False, log_to_driver=False)

@ray.remote
class Probe:
    def gpus(self):
        return [str(g) for g in ray.get_gpu_ids()]

ev = Probe.options(**{k: v for k, v in evaluator_options(cfg).items() if k != "max_task_retries"}).remote()
ev_gpus = ray.get(ev.gpus.remote())

def loop():
    import json, os, ray.train
    rank = ray.train.get_context().get_world_rank()
    with open(os.path.join("OUT", f"rank{rank}.json"), "w") as f:
        json.dump([str(g) for g in ray.get_gpu_ids()], f)

DataParallelTrainer(loop, scaling_config=scaling_config(cfg),
                    run_config=RunConfig(name="probe", storage_path="OUT")).fit()
trainers = [json.load(open(f"OUT/rank{r}.json")) for r in range(2)]
print("RESULT", json.dumps({"evaluator": ev_gpus, "trainers": trainers,
                            "bundles": scaling_config(cfg).resources_per_worker}))
'''


def test_trainers_and_evaluators_get_separate_gpus(tmp_path):
    code = PROBE.replace("OUT", str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stdout[-3000:] + out.stderr[-3000:]
    got = json.loads(line[0][len("RESULT "):])
    assert got["bundles"] == {"CPU": 1.0, "trainer_gpu": 1, "GPU": 1}
    assert len(got["evaluator"]) == 1
    a, b = got["trainers"]
    assert len(a) == len(b) == 1 and a != b  # one GPU per training worker, not shared
    assert not (set(a) | set(b)) & set(got["evaluator"])  # and none of them the evaluator's
