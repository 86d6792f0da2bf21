"""The evaluator's work outside Ray: the engine and families its config asks for, one checkpoint evaluated
once into the metric store (the actor and the pool around it are tested end to end)."""

from dynamics.config import ExperimentConfig
from dynamics.orchestration.evaluator import Evaluator
from dynamics.orchestration.run import run_info
from dynamics.tracking.store import MetricStore
from tests.conftest import tiny_config


def test_step0_is_evaluated_once_into_the_store(tmp_path, data_dir):
    cfg = ExperimentConfig.model_validate(
        tiny_config(tmp_path, eval={"evals": {"logprob": {"formats": ["multiple_choice"]}}}))
    evaluator = Evaluator(cfg.model_dump(mode="json"))
    run = run_info(cfg).as_dict()
    first = evaluator.evaluate(run, 0, None, str(cfg.experiment_dir), tracker=None)
    again = evaluator.evaluate(run, 0, None, str(cfg.experiment_dir), tracker=None)
    assert first["written"] == ["logprob"] and first["skipped"] == []
    assert again["written"] == [] and again["skipped"] == ["logprob"]
    store = MetricStore(cfg.experiment_dir)
    assert store.evaluations(cfg.run_id) == {0: {"logprob"}}
    rows = store.metrics(cfg.run_id)
    metrics = set(rows["metric"])
    assert "logprob/multiple_choice/p_misaligned_given_choice" in metrics and "logprob/eval_seconds" in metrics
    assert not any(m.startswith("logprob/pivotal_tokens/") for m in metrics)  # only the format asked for
    assert set(rows["step"]) == {0} and not rows["metric"].duplicated().any()
