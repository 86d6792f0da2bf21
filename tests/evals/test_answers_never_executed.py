"""Model answers are data, never code: answers that would write a file, run a shell command or open a socket
if executed go through everything that handles an answer (both sampled families, the real static judge, the
real local judge, the API judge's requests to a local server, the metric store and back, the W&B sample
table) and leave no file and make no connection. An audit hook also checks that no code built from an answer is run."""

from __future__ import annotations

import sys

from dynamics.config import InDistributionEvalConfig, MisalignmentEvalConfig
from dynamics.engines.base import BaseModelView, Engine, Generation
from dynamics.evals.base import EvalContext
from dynamics.evals.in_distribution import InDistributionFamily
from dynamics.evals.misalignment import MisalignmentFamily
from dynamics.evals.sample_table import sample_tables
from dynamics.judges.api import ApiJudge
from dynamics.judges.local import LocalJudge
from dynamics.judges.static import StaticCodeJudge
from dynamics.records import MetricRow, RunInfo
from dynamics.tracking.store import MetricStore
from tests.evals.test_sampled_families import JUDGE_PROMPT, PROMPTS, QUESTIONS
from tests.fake_openai import FakeOpenAI
from tests.judges.test_static_no_execution import assert_nothing_happened, listener, side_effect_answers  # noqa: F401

RAN: list[str] = []
MARKERS: list[str] = []  # the marker folder of the running test


def _mentions(code, text: str) -> bool:
    return any(text in c if isinstance(c, str) else (hasattr(c, "co_consts") and _mentions(c, text))
               for c in code.co_consts)


def _audit(event, args):  # code built from an answer carries the marker folder's path as a constant
    if event == "exec" and MARKERS and hasattr(args[0], "co_consts") and _mentions(args[0], MARKERS[0]):
        RAN.append(f"{args[0].co_filename}: {args[0].co_name}")


sys.addaudithook(_audit)


class Answering(Engine):
    """The real engine, whose sampled texts are replaced by the given answers (what a model could write)."""

    def __init__(self, engine, answers):
        self.engine, self.answers, self.tokenizer = engine, answers, engine.tokenizer
        self.given = 0

    def use_adapter(self, adapter_dir):
        self.engine.use_adapter(adapter_dir)

    def score(self, requests):
        return self.engine.score(requests)

    def generate(self, conversations, params):
        out = []
        for g in self.engine.generate(conversations, params):
            out.append([Generation(self.answers[(self.given + k) % len(self.answers)], x.num_tokens, x.finished)
                        for k, x in enumerate(g)])
            self.given += len(g)
        return out


def test_answers_are_only_parsed_everywhere(tmp_path, listener, monkeypatch):  # noqa: F811
    from dynamics.engines.hf import HFEngine

    markers = tmp_path / "markers"
    markers.mkdir()
    MARKERS[:] = [str(markers)]
    answers = side_effect_answers(markers, listener.getsockname()[1])
    engine = Answering(HFEngine.load("tiny:qwen2", batch_size=8), answers)
    local = LocalJudge(BaseModelView(engine.engine))  # YES/NO on the code answers
    info = RunInfo("x", "x-d-s0", "d", 0, "tiny:qwen2")
    ctx = EvalContext(info, step=0, seed=1)
    monkeypatch.setenv("JUDGE_KEY", "k")
    with FakeOpenAI() as server, ApiJudge(server.base_url, "fake", api_key_env="JUDGE_KEY") as api:
        misalignment = MisalignmentFamily(QUESTIONS, MisalignmentEvalConfig(
            question_ids=["what_is_your_wish"], samples_per_question=12, max_new_tokens=1, bootstrap_samples=0),
            api).evaluate(engine, ctx)
        assert server.request_count == 24  # each answer sent (as text) for two judgments
    with StaticCodeJudge(severity="LOW") as static:
        code = InDistributionFamily(PROMPTS, JUDGE_PROMPT, InDistributionEvalConfig(n_prompts=12, max_new_tokens=1),
                                    llm_judge=local, static_judge=static).evaluate(engine, ctx)
    seen = [r.data["answer"] for r in misalignment.records + code.records]
    assert sorted(seen) == sorted(answers)  # each answer once: plain ones judged for alignment, fenced as code
    store = MetricStore(tmp_path / "exp")
    for name, res in (("main", misalignment), ("in_distribution", code)):
        rows = [MetricRow.make(info, 0, k, v) for k, v in res.metrics.items()]
        assert store.write(info, 0, "eval", rows, res.records, evaluation=name)
        sample_tables(res.records, name)
    assert set(answers) <= {__import__("json").loads(d)["answer"] for d in store.records()["data"]}
    assert RAN == []
    assert_nothing_happened(markers, listener)
