"""The deployment files agree with each other and with what reads them.

cluster/ (Ray's cluster launcher, KubeRay), docker/ and jobs/ (runtime env, submit script) are checked
against Ray's own launcher schema, KubeRay's ray.io/v1 field names, the images we build, the project's
pins and the experiment configs, so that a typo or a version bump in one place fails here, not on a
cluster an hour into provisioning.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from dynamics.config import load_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
DOCKER = REPO / "docker"
LAUNCHER = CLUSTER / "aws-gpu.yaml"
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
RUNTIME_ENV = REPO / "jobs" / "runtime_env.yaml"
SUBMIT = REPO / "jobs" / "submit.sh"
PAPER_CONFIG = REPO / "jobs" / "configs" / "paper_instruct.yaml"

# KubeRay's ray.io/v1 field names (ray-operator/apis/ray/v1/raycluster_types.go, rayjob_types.go).
RAYCLUSTER_SPEC = {"headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling",
                   "autoscalerOptions", "headServiceAnnotations", "suspend", "gcsFaultToleranceOptions",
                   "managedBy", "upgradeStrategy"}
HEAD_GROUP = {"serviceType", "headService", "enableIngress", "rayStartParams", "template", "resources", "labels"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams",
                "template", "scaleStrategy", "idleTimeoutSeconds", "suspend", "resources", "labels"}
AUTOSCALER_OPTIONS = {"resources", "image", "imagePullPolicy", "env", "envFrom", "volumeMounts",
                      "securityContext", "idleTimeoutSeconds", "upscalingMode", "version"}
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
               "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint",
               "runtimeEnvYAML", "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus",
               "entrypointNumGpus", "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend", "schedule"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# ---- the images we build and the pins they must carry -------------------------------------------------

def built_tags() -> dict[str, str]:
    """{"train": tag, "eval": tag} from docker/README.md's `docker build -f docker/Dockerfile.X -t TAG .`."""
    text = (DOCKER / "README.md").read_text()
    tags = dict(re.findall(r"docker build -f docker/Dockerfile\.(\w+)\s+-t\s+(\S+)", text))
    assert set(tags) == {"train", "eval"}, f"docker/README.md should build both images, found {tags}"
    return tags


def pyproject() -> dict:
    path = REPO / "pyproject.toml"
    if not path.is_file():
        pytest.skip("pyproject.toml is not written yet: the pins cannot be compared")
    return tomllib.loads(path.read_text())


def pin(requirements: list[str], name: str) -> str:
    for req in requirements:
        m = re.match(rf"^{re.escape(name)}(\[[^\]]*\])?==([^;\s]+)", req.strip())
        if m:
            return m.group(2)
    raise AssertionError(f"no exact pin of {name} in {requirements}")


def constraints() -> list[str] | None:
    path = REPO / "constraints.txt"
    return [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")] \
        if path.is_file() else None


def base_image(dockerfile: Path) -> str:
    m = re.search(r"^ARG BASE_IMAGE=(\S+)", dockerfile.read_text(), re.M)
    assert m, f"{dockerfile}: expected `ARG BASE_IMAGE=<image>` before FROM"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", dockerfile.read_text(), re.M)
    return m.group(1)


def test_image_tags_carry_the_project_version():
    version = pyproject()["project"]["version"]
    for kind, tag in built_tags().items():
        assert re.fullmatch(rf"[\w.\-/:]+/dynamics-{kind}:{re.escape(version)}", tag), (kind, tag, version)


@pytest.mark.parametrize("kind", ["train", "eval"])
def test_dockerfile_base_and_pins_agree_with_pyproject(kind):
    dockerfile = DOCKER / f"Dockerfile.{kind}"
    project = pyproject()["project"]
    deps = project["dependencies"]
    ray, torch = pin(deps, "ray"), pin(deps, "torch")
    base = base_image(dockerfile)
    m = re.fullmatch(r"rayproject/ray:(?P<ray>[\d.]+)-py(?P<py>3\d+)-cu(?P<cuda>\d{3})", base)
    assert m, f"{dockerfile}: base {base!r} is not a rayproject/ray:<version>-py3X-cuXYZ tag"
    assert "ray-ml" not in base, "rayproject/ray-ml images are discontinued"
    assert m["ray"] == ray, f"{dockerfile}: base image Ray {m['ray']} != pyproject's ray=={ray}"
    py = (3, int(m["py"][1:]))
    for op, minor in re.findall(r"(>=|<)\s*3\.(\d+)", project["requires-python"]):
        assert (py >= (3, int(minor))) if op == ">=" else (py < (3, int(minor))), (base, project["requires-python"])
    text = dockerfile.read_text()
    assert f"pip install torch=={torch}" in text, f"{dockerfile}: torch must be installed at pyproject's pin {torch}"
    assert f"ray.__version__ == '{ray}'" in text and f"== '{torch}'" in text, "the build-time check names the pins"
    assert "-c /tmp/constraints.txt" in text and "constraints.txt" in text
    if kind == "eval":
        assert '".[gpu]"' in text and "gpu" in project["optional-dependencies"]
    lock = constraints()
    if lock is None:
        pytest.skip("constraints.txt is not written yet")
    assert f"ray=={ray}" in lock and any(l.startswith(f"torch=={torch}") for l in lock)


def test_both_images_share_python_and_ray():
    """Every node of a Ray cluster must run the same Python minor version and Ray."""
    assert base_image(DOCKER / "Dockerfile.train") == base_image(DOCKER / "Dockerfile.eval")


@pytest.mark.parametrize("kind", ["train", "eval"])
def test_docker_context_leaves_out_the_venv(kind):
    ignore = (DOCKER / f"Dockerfile.{kind}.dockerignore").read_text().splitlines()
    rules = [l.strip() for l in ignore if l.strip() and not l.startswith("#")]
    assert rules[0] == "*", "the ignore file should be an allow-list"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert {"pyproject.toml", "constraints.txt", "dynamics", "jobs"} <= allowed
    assert not allowed & {".venv", "results", "wandb", ".git"}


# ---- the cluster launcher -------------------------------------------------------------------------------

def test_every_cluster_yaml_parses():
    files = sorted(CLUSTER.rglob("*.yaml"))
    assert {LAUNCHER, RAYCLUSTER, RAYJOB} <= set(files)
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_launcher_validates_against_rays_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(load(LAUNCHER), schema)


def test_launcher_passes_rays_own_preparation():
    """What `ray up` does first: fill in the AWS defaults, then validate."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(load(LAUNCHER)))


def test_launcher_node_types_images_and_resources():
    cfg, tags = load(LAUNCHER), built_tags()
    paper = load_config(PAPER_CONFIG)
    assert cfg["docker"]["image"] == tags["train"]
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert "GPU" not in head["resources"] and not any("gpu" in k for k in head["resources"])
    train = [t for t in types.values() if "trainer_gpu" in t["resources"]]
    evals = [t for t in types.values() if "evaluator_gpu" in t["resources"]]
    assert len(train) == 1 and len(evals) == 1
    assert train[0]["node_config"]["InstanceType"] == "p5.48xlarge" and train[0]["resources"]["trainer_gpu"] == 8
    assert evals[0]["docker"]["worker_image"] == tags["eval"]
    # The configs ask for exactly the resources the node types advertise.
    assert set(paper.train.worker_resources) <= set(train[0]["resources"])
    assert set(paper.eval.resources) <= set(evals[0]["resources"])
    assert "/mnt/cluster_storage" in paper.output_dir
    assert any("/mnt/cluster_storage" in o for o in cfg["docker"]["run_options"])


# ---- KubeRay -------------------------------------------------------------------------------------------

def check_cluster_spec(spec: dict, where: str) -> None:
    tags, paper = built_tags(), load_config(PAPER_CONFIG)
    assert set(spec) <= RAYCLUSTER_SPEC, f"{where}: unknown RayClusterSpec fields {set(spec) - RAYCLUSTER_SPEC}"
    assert spec["rayVersion"] == pin(pyproject()["project"]["dependencies"], "ray")
    assert set(spec.get("autoscalerOptions", {})) <= AUTOSCALER_OPTIONS
    head = spec["headGroupSpec"]
    assert set(head) <= HEAD_GROUP, f"{where}: unknown headGroupSpec fields {set(head) - HEAD_GROUP}"
    (head_container,) = head["template"]["spec"]["containers"]
    assert head_container["image"] == tags["train"]
    assert "nvidia.com/gpu" not in head_container["resources"].get("limits", {})
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    wanted = {"trainer_gpu": tags["train"], "evaluator_gpu": tags["eval"]}
    seen = set()
    for name, group in groups.items():
        assert set(group) <= WORKER_GROUP, f"{where}: {name}: unknown fields {set(group) - WORKER_GROUP}"
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), "rayStartParams are strings"
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        (container,) = group["template"]["spec"]["containers"]
        gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
        assert gpus > 0, f"{where}: {name} is a GPU group without nvidia.com/gpu limits"
        custom = json.loads(json.loads(group["rayStartParams"]["resources"]))
        (resource,) = custom
        assert custom[resource] == gpus, f"{where}: {name}: one {resource} per GPU"
        assert container["image"] == wanted[resource], f"{where}: {name} runs {container['image']}"
        seen.add(resource)
    assert seen == set(wanted)
    assert set(paper.train.worker_resources) | set(paper.eval.resources) <= seen


def test_raycluster():
    doc = load(RAYCLUSTER)
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    check_cluster_spec(doc["spec"], str(RAYCLUSTER))


def test_rayjob():
    doc = load(RAYJOB)
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayJob")
    spec = doc["spec"]
    assert set(spec) <= RAYJOB_SPEC, f"unknown RayJobSpec fields {set(spec) - RAYJOB_SPEC}"
    assert spec["shutdownAfterJobFinishes"] is True
    check_cluster_spec(spec["rayClusterSpec"], str(RAYJOB))
    assert spec["rayClusterSpec"] == load(RAYCLUSTER)["spec"], "rayjob.yaml's cluster should be raycluster.yaml's"
    argv = spec["entrypoint"].split()
    assert argv[:4] == ["python", "-m", "dynamics.cli", "sweep"], spec["entrypoint"]
    config, overrides = REPO / argv[4], argv[5:]
    assert config.is_file(), f"the entrypoint's config {argv[4]} is not in jobs/configs"
    t = load_config(config, overrides).train  # the overrides are valid keys and values
    assert t.per_device_batch_size * t.gradient_accumulation_steps * t.num_workers == 16
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["env_vars"] == load(RUNTIME_ENV)["env_vars"], "keep in step with jobs/runtime_env.yaml"


def test_kuberay_volumes_exist():
    claims = {d["metadata"]["name"] for d in yaml.safe_load_all((CLUSTER / "kuberay" / "storage.yaml").read_text())
              if d and d.get("kind") == "PersistentVolumeClaim"}
    spec = load(RAYCLUSTER)["spec"]
    for template in [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]:
        for volume in template["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims


# ---- the job: runtime env and submit script -------------------------------------------------------------

def test_runtime_env_uploads_the_code_not_the_venv():
    env = load(RUNTIME_ENV)
    assert env["working_dir"] == "."
    assert ".venv/" in env["excludes"] or ".venv" in env["excludes"]
    assert not {"pip", "conda", "uv"} & set(env), "the image holds the dependencies"
    assert not [k for k in env.get("env_vars", {}) if re.search(r"(API_KEY|_TOKEN|SECRET|PASSWORD)$", k)], "no secrets in git"
    assert env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    # Ray's own matcher agrees: nothing under these folders is uploaded.
    from ray._private.runtime_env.packaging import _get_excludes

    excluded = _get_excludes(REPO, env["excludes"])
    for path in [".venv/bin/python", "results/x/metrics.parquet", "wandb/run/x.wandb", ".git/HEAD"]:
        assert excluded(REPO / path), path
    for path in ["dynamics/config/experiment.py", "jobs/configs/paper_instruct.yaml"]:
        assert not excluded(REPO / path), path


def test_runtime_env_is_accepted_by_ray():
    from ray.runtime_env import RuntimeEnv

    env = load(RUNTIME_ENV)
    RuntimeEnv(**{k: v for k, v in env.items() if k != "working_dir"}, working_dir=str(REPO))


def test_submit_script_builds_the_ray_job_command(tmp_path):
    assert SUBMIT.stat().st_mode & stat.S_IXUSR, "jobs/submit.sh should be executable"
    subprocess.run(["bash", "-n", str(SUBMIT)], check=True)
    fake = tmp_path / "ray"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGV_OUT"\n')
    fake.chmod(0o755)
    out = tmp_path / "argv"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "ARGV_OUT": str(out),
           "RAY_ADDRESS": "http://head:8265", "PASS_SECRETS": "0", "PYTHON": sys.executable}
    subprocess.run([str(SUBMIT), "jobs/configs/paper_instruct.yaml", "train.num_workers=2"], env=env, check=True,
                   capture_output=True, cwd=REPO)
    argv = out.read_text().splitlines()
    assert argv[:4] == ["job", "submit", "--address", "http://head:8265"]
    assert argv[argv.index("--working-dir") + 1] == "."
    assert argv[argv.index("--runtime-env") + 1] == "jobs/runtime_env.yaml"
    assert argv[argv.index("--") + 1:] == ["python", "-m", "dynamics.cli", "sweep",
                                           "jobs/configs/paper_instruct.yaml", "train.num_workers=2"]


def test_submit_script_passes_secrets_in_a_private_copy(tmp_path):
    fake = tmp_path / "ray"
    fake.write_text('#!/usr/bin/env bash\nwhile [ "$1" != --runtime-env ]; do shift; done\n'
                    'cp "$2" "$ENV_OUT"; stat -c %a "$2" > "$ENV_OUT.mode"\n')
    fake.chmod(0o755)
    out = tmp_path / "env.yaml"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "ENV_OUT": str(out),
           "OPENAI_API_KEY": "sk-test", "PYTHON": sys.executable}
    env.pop("WANDB_API_KEY", None)
    env.pop("HF_TOKEN", None)
    subprocess.run([str(SUBMIT), "run", "jobs/configs/cpu_sweep.yaml"], env=env, check=True, capture_output=True,
                   cwd=REPO)
    sent = yaml.safe_load(out.read_text())
    assert sent["env_vars"]["OPENAI_API_KEY"] == "sk-test"
    assert sent["excludes"] == load(RUNTIME_ENV)["excludes"]
    assert Path(f"{out}.mode").read_text().strip() == "600"
    assert "sk-test" not in RUNTIME_ENV.read_text()
