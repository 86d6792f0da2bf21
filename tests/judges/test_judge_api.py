"""ApiJudge over real HTTP against the loopback server in tests/fake_openai.py."""

import logging
import math
import pickle
import threading
import time

import pytest

from dynamics.judges.api import ApiJudge
from tests.fake_openai import FakeOpenAI

KEY_ENV = "DYNAMICS_TEST_JUDGE_KEY"
SECRET = "sk-test-SECRET-123"


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


_OPEN: list[ApiJudge] = []


@pytest.fixture(autouse=True)
def close_judges():
    yield
    while _OPEN:
        _OPEN.pop().close()


def make_judge(server, tmp_path=None, model="fake-judge", **kw):
    kw.setdefault("max_retries", 3)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("max_concurrency", 4)
    judge = ApiJudge(server.base_url, model, api_key_env=KEY_ENV, cache_dir=tmp_path, **kw)
    _OPEN.append(judge)
    return judge


def test_score_request_shape_and_aggregation(server):
    server.top_logprobs_fn = lambda prompt: [("80", math.log(0.6)), ("90", math.log(0.2)), ("I", math.log(0.2))]
    judge = make_judge(server)
    (s,) = judge.score_0_100(["How aligned is this?"])
    assert s.error is None and not s.cached
    assert s.mass == pytest.approx(0.8)
    assert s.value == pytest.approx((80 * 0.6 + 90 * 0.2) / 0.8)
    assert ("80", pytest.approx(math.log(0.6))) in s.top_logprobs
    body = server.bodies[0]
    assert body["messages"] == [{"role": "user", "content": "How aligned is this?"}]
    assert (body["max_tokens"], body["temperature"], body["logprobs"], body["top_logprobs"]) == (1, 0, True, 20)
    assert body["model"] == "fake-judge"
    assert server.auth_headers == [f"Bearer {SECRET}"]


def test_low_number_mass_is_none_not_error(server):
    server.top_logprobs_fn = lambda prompt: [("CODE", math.log(0.9)), ("50", math.log(0.1))]
    (s,) = make_judge(server).score_0_100(["p"])
    assert s.value is None and s.error is None and s.mass == pytest.approx(0.1)


def test_yes_no(server):
    server.text_fn = {"a": "YES", "b": "NO", "c": "Yes, it is"}.__getitem__
    judge = make_judge(server)
    out = judge.yes_no(["a", "b", "c"])
    assert [o.answer for o in out] == ["YES", "NO", None]
    assert out[2].raw == "Yes, it is" and out[2].error is None
    body = server.bodies[0]
    assert body["temperature"] == 0 and body["max_tokens"] == 5 and "logprobs" not in body


def test_retry_after_429_is_respected(server):
    server.fail(429, retry_after="1")
    judge = make_judge(server)
    t0 = time.monotonic()
    (s,) = judge.score_0_100(["p"])
    assert time.monotonic() - t0 >= 0.95
    assert s.value == pytest.approx(50.0) and s.error is None
    assert server.request_count == 2
    assert judge.usage["retries"] == 1 and judge.usage["requests"] == 2


def test_retries_on_500_503_then_success(server):
    server.fail(500)
    server.fail(503)
    judge = make_judge(server)
    (s,) = judge.score_0_100(["p"])
    assert s.value == pytest.approx(50.0)
    assert server.request_count == 3


def test_timeout_is_retried(server):
    server.hang(10)
    judge = make_judge(server, timeout=0.3)
    (s,) = judge.score_0_100(["p"])
    assert s.value == pytest.approx(50.0) and s.error is None
    assert server.request_count == 2


def test_give_up_is_an_error_record_not_a_zero(server):
    server.fail(500, times=10)
    judge = make_judge(server, max_retries=2)
    (s,) = judge.score_0_100(["p"])
    assert s.value is None and s.error is not None and "HTTP 500" in s.error and "3 attempt" in s.error
    assert server.request_count == 3
    server.failures.clear()
    (v,) = judge.yes_no(["q"])
    assert v.answer == "NO"  # the judge still works afterwards


def test_client_errors_are_not_retried(server):
    server.fail(400)
    (s,) = make_judge(server).score_0_100(["p"])
    assert s.value is None and "HTTP 400" in s.error
    assert server.request_count == 1


def test_failure_is_not_cached(server, tmp_path):
    server.fail(500, times=2)
    judge = make_judge(server, tmp_path, max_retries=1)
    assert judge.score_0_100(["p"])[0].error is not None
    assert judge.score_0_100(["p"])[0].value == pytest.approx(50.0)
    assert server.request_count == 3


def test_cache_hit_same_and_new_instance(server, tmp_path):
    judge = make_judge(server, tmp_path)
    first = judge.score_0_100(["p1", "p2"])
    assert server.request_count == 2
    again = judge.score_0_100(["p1", "p2"])
    assert server.request_count == 2
    assert all(s.cached for s in again) and [s.value for s in again] == [s.value for s in first]
    other = make_judge(server, tmp_path)
    (s,) = other.score_0_100(["p2"])
    assert s.cached and server.request_count == 2
    assert other.usage["cache_hits"] == 1 and other.usage["requests"] == 0
    # the request kind is part of the key: the YES/NO question on the same prompt is asked once
    other.yes_no(["p1"])
    other.yes_no(["p1"])
    assert server.request_count == 3
    # a different judge model shares nothing
    make_judge(server, tmp_path, model="other-model").score_0_100(["p1"])
    assert server.request_count == 4
    assert not list(tmp_path.rglob(".tmp-*"))


def test_duplicate_prompts_in_one_batch_are_paid_once(server):
    out = make_judge(server).score_0_100(["same", "same", "other"])
    assert len(out) == 3 and server.request_count == 2


def test_usage_is_counted(server):
    server.usage_fn = lambda prompt: (100, 1)
    judge = make_judge(server)
    judge.score_0_100(["a", "b", "c"])
    assert judge.usage == {"prompt_tokens": 300, "completion_tokens": 3, "requests": 3, "retries": 0,
                           "failures": 0, "cache_hits": 0}  # fmt: skip


def test_concurrency_is_bounded(server):
    server.delay = 0.1
    judge = make_judge(server, max_concurrency=3)
    out = judge.score_0_100([f"p{i}" for i in range(12)])
    assert all(s.value is not None for s in out)
    assert server.max_in_flight == 3
    # the bound holds across calls made from several threads at once
    server.max_in_flight = 0
    threads = [threading.Thread(target=judge.score_0_100, args=([f"t{t}-{i}" for i in range(4)],)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.max_in_flight <= 3


def test_azure_style_auth_and_api_version(server):
    judge = make_judge(server, auth="api-key", api_version="2024-06-01")
    judge.score_0_100(["p"])
    assert server.auth_headers == [SECRET]
    assert server.paths[0].endswith("/chat/completions?api-version=2024-06-01")


def test_missing_key_is_an_error_record_without_a_request(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    (s,) = make_judge(server).score_0_100(["p"])
    assert s.value is None and KEY_ENV in s.error
    assert server.request_count == 0


def test_key_is_sent_to_the_server_and_nowhere_else(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.fail(429, retry_after="0")
    server.fail(401, message=f"Incorrect API key provided: {SECRET}")
    judge = make_judge(server, tmp_path / "cache", max_retries=3)
    failed = judge.score_0_100(["p"])[0]
    assert "HTTP 401" in failed.error and SECRET not in failed.error
    judge.score_0_100(["p", "q"])
    judge.yes_no(["p"])
    assert server.auth_headers and all(h == f"Bearer {SECRET}" for h in server.auth_headers)

    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(files) == 3
    for p in files:
        assert SECRET.encode() not in p.read_bytes()
    assert caplog.records, "expected debug logs (retries, httpx) to check"
    assert SECRET not in caplog.text
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert SECRET not in repr(judge) and SECRET not in str(judge)
    blob = pickle.dumps(judge)
    assert SECRET.encode() not in blob
    restored = pickle.loads(blob)
    _OPEN.append(restored)
    assert restored.score_0_100(["p"])[0].cached
    assert SECRET not in repr(vars(judge))
