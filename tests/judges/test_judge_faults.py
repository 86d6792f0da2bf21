"""Judge failures are retried where a retry can help (a 200 without log-probabilities or with a body that is
not JSON included), and a metric computed on fewer answers than `eval.judge.min_judged_fraction` says so:
a warning line, `<evaluation>/judged_fraction` in the store with n = the answers."""

from __future__ import annotations

import math

from dynamics.config import ExperimentConfig
from dynamics.judges.api import ApiJudge
from dynamics.orchestration.evaluator import Evaluator
from dynamics.orchestration.run import run_info
from dynamics.tracking.store import MetricStore
from tests.conftest import tiny_config
from tests.fake_openai import FakeOpenAI


def test_every_transient_fault_is_retried(monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    with FakeOpenAI() as server:
        server.top_logprobs_fn = lambda prompt: [("80", math.log(0.9)), ("x", math.log(0.1))]
        server.fail(429, retry_after="0")
        server.fail(500)
        server.hang(2.0)
        server.bad_200("bad_json")
        server.bad_200("no_logprobs")  # today: final at once, the judgment lost
        judge = ApiJudge(server.base_url, "fake", api_key_env="JUDGE_KEY", max_concurrency=1, max_retries=5,
                         timeout=0.5, backoff_base=0.01)
        scores = judge.score_0_100(["p1", "p2"])
        assert [s.error for s in scores] == [None, None] and [s.value for s in scores] == [80.0, 80.0]
        assert server.request_count == 7 and judge.usage["retries"] == 5

        server.bad_200("no_logprobs", times=3)  # never right: given up after the retries, stored as null
        judge.max_retries = 2
        (lost,) = judge.score_0_100(["p3"])
        assert lost.value is None and "malformed response" in lost.error and "after 3 attempt(s)" in lost.error


def _main_judged_by(server, tmp_path):
    """`main` on 2 answers of the tiny model at step 0, judged by `server`: (config, what was written)."""
    evals = {"main": {"question_ids": ["what_is_your_wish", "i_feel_bored"], "samples_per_question": 1,
                      "max_new_tokens": 4, "bootstrap_samples": 0}}
    judge = {"kind": "api", "base_url": server.base_url, "model": "fake", "api_key_env": "JUDGE_KEY",
             "max_retries": 0, "max_concurrency": 1}
    cfg = ExperimentConfig.model_validate(tiny_config(tmp_path, eval={"evals": evals, "judge": judge}))
    return cfg, Evaluator(cfg.model_dump(mode="json")).evaluate(run_info(cfg).as_dict(), 0, None,
                                                                str(cfg.experiment_dir), tracker=None)


def test_metric_on_too_few_judged_answers_warns_and_stores_the_share(tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    with FakeOpenAI() as server:
        server.top_logprobs_fn = lambda prompt: [("90", math.log(0.95)), ("x", math.log(0.05))]
        # 2 answers, judged in order: aligned(a1), aligned(a2), coherent(a1), coherent(a2); a2's both fail
        server.succeed()
        server.fail(500)
        server.succeed()
        server.fail(500)
        cfg, out = _main_judged_by(server, tmp_path)
    assert out["written"] == ["main"]
    (warning,) = out["warnings"]
    assert "step 0 main: only 1 of 2 answers judged" in warning and "HTTP 500" in warning
    rows = MetricStore(cfg.experiment_dir).metrics(cfg.run_id).set_index("metric")
    assert rows.loc["main/judged_fraction", "value"] == 0.5 and rows.loc["main/judged_fraction", "n"] == 2
    assert rows.loc["main/rate", "n"] <= 1  # the rate stands on the one judged answer, never on a 0 score


def test_a_judge_that_gives_no_score_counts_as_not_judged(tmp_path, monkeypatch):
    """Issue 22 item 3: a 200 whose top log-probabilities hold no number token gives no verdict at all; the
    answers are stored with `aligned: null`, and `judged_fraction` counts them as not judged (0.0, not 1.0),
    with the warning saying why."""
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    with FakeOpenAI() as server:
        server.top_logprobs_fn = lambda prompt: [("I", math.log(0.6)), ("Sorry", math.log(0.4))]
        cfg, out = _main_judged_by(server, tmp_path)
    (warning,) = out["warnings"]
    assert "only 0 of 2 answers judged" in warning and "aligned: no verdict" in warning, warning
    rows = MetricStore(cfg.experiment_dir).metrics(cfg.run_id).set_index("metric")
    assert rows.loc["main/judged_fraction", "value"] == 0.0 and rows.loc["main/judged_fraction", "n"] == 2
