"""A judge behind any OpenAI-compatible chat-completions endpoint (OpenAI, Azure OpenAI, a vLLM server).

    judge = ApiJudge("https://api.openai.com/v1", "gpt-4o-2024-08-06", cache_dir="results/judge_cache")
    scores = judge.score_0_100([prompt, ...])      # METRICS.md section 2: one token, top-20 logprobs
    verdicts = judge.yes_no([prompt, ...])         # METRICS.md section 1: exactly YES / NO
    words = judge.categorical([prompt, ...], ("TRUE", "FALSE", "UNKNOWN"))   # section 4, same request

Requests go out over `httpx` from a bounded pool of threads (`max_concurrency` requests in flight at most,
across all calls on this judge). A 408/409/429/5xx reply, a timeout or a connection error is retried up to
`max_retries` times, waiting as the server's `Retry-After` (or `retry-after-ms`) says, else exponentially
with jitter; so is a 200 that is no answer (a body that is not JSON, or lacks what was asked for, such as
the log-probabilities: an overloaded proxy or server sends those); any other HTTP error is final at once. A request that still fails becomes a record with
`error` set and no value, never a zero.

Every successful reply is kept in `cache_dir`, one JSON file per sha256 of (judge model, request kind,
rendered prompt), written to a temporary file and moved into place with `os.replace`, so concurrent runs
sharing a cache never see half a file, and a re-run never pays twice.

The API key is read from the environment variable *named* by `api_key_env` at the moment of each request
and goes only into that request's header: it is never an attribute of the judge (so never in its repr or
pickle), never logged, never cached, and scrubbed from any error text the server sends back.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx

from dynamics.files import write_atomic
from dynamics.judges.aggregate import MIN_NUMBER_MASS, aggregate_0_100, parse_yes_no
from dynamics.judges.base import Judge, JudgeScore, YesNo
from dynamics.judges.categorical import CategoricalJudgment, judge_words

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429})  # and every 5xx
SCORE_PARAMS = {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 20, "seed": 0}
YES_NO_PARAMS = {"max_tokens": 5, "temperature": 0, "seed": 0}
# The request kind is part of the cache key: changing how we ask invalidates what was asked before.
SCORE_KIND = "score_0_100:" + json.dumps(SCORE_PARAMS, sort_keys=True)
YES_NO_KIND = "yes_no:" + json.dumps(YES_NO_PARAMS, sort_keys=True)


class RequestFailed(Exception):
    """A request that could not be completed (its message never contains the API key)."""


class ApiJudge(Judge):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_concurrency: int = 16,
        max_retries: int = 6,
        timeout: float = 60.0,
        cache_dir: str | Path | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        auth: Literal["bearer", "api-key"] = "bearer",
        api_version: str | None = None,
        min_mass: float = MIN_NUMBER_MASS,
    ):
        """`base_url` ends before `/chat/completions` (OpenAI: https://api.openai.com/v1; vLLM:
        http://host:8000/v1; Azure: https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT with
        `auth="api-key"` and `api_version`). `api_key_env=None` sends no key (a local vLLM server).
        A `Retry-After` longer than `backoff_max` seconds is cut to `backoff_max`. The numbers come
        validated from `JudgeConfig` (`dynamics.config`)."""
        if auth not in ("bearer", "api-key"):
            raise ValueError(f"auth must be 'bearer' or 'api-key', got {auth!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"api:{model}"
        self.api_key_env = api_key_env
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.timeout = float(timeout)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.auth = auth
        self.api_version = api_version
        self.min_mass = min_mass
        super().__init__(extra_usage=("retries", "failures"))
        self._init_runtime()

    # -- runtime state: rebuilt after unpickling, never pickled -------------------------------------
    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._client: httpx.Client | None = None
        self._closer: weakref.finalize | None = None  # closes the client's sockets if close() is forgotten
        self._rng = random.Random()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for k in ("_lock", "_slots", "_client", "_closer", "_rng"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._init_runtime()

    def __repr__(self) -> str:
        cache = str(self.cache_dir) if self.cache_dir else None
        return (f"ApiJudge(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, "
                f"max_concurrency={self.max_concurrency}, cache_dir={cache!r})")  # fmt: skip

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
        self._client = self._closer = None

    def __enter__(self) -> ApiJudge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the Judge contract -------------------------------------------------------------------------
    def score_0_100(self, prompts: list[str]) -> list[JudgeScore]:
        return self._map(prompts, self._score_one)

    def yes_no(self, prompts: list[str]) -> list[YesNo]:
        return self._map(prompts, self._yes_no_one)

    def categorical(self, prompts: list[str], words: tuple[str, ...], min_mass: float = 0.25) -> list:
        # The same request as a 0-100 score (one token, top-20 logprobs), so both share the cache.
        return self._map(prompts, lambda p: self._categorical_one(p, tuple(words), min_mass))

    def _map(self, prompts: list[str], fn) -> list:
        unique = list(dict.fromkeys(prompts))  # a prompt asked twice in one batch is paid once
        if len(unique) <= 1:
            done = {p: fn(p) for p in unique}
        else:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(unique))) as pool:
                done = dict(zip(unique, pool.map(fn, unique)))
        return [done[p] for p in prompts]

    def _score_one(self, prompt: str) -> JudgeScore:
        try:
            response, cached = self._complete(prompt, SCORE_KIND, SCORE_PARAMS, _top_logprobs)
        except RequestFailed as e:
            return JudgeScore(value=None, mass=0.0, error=str(e))
        top = _top_logprobs(response)
        value, mass = aggregate_0_100(top, self.min_mass)
        return JudgeScore(value=value, mass=mass, top_logprobs=top, cached=cached)

    def _categorical_one(self, prompt: str, words: tuple[str, ...], min_mass: float) -> CategoricalJudgment:
        try:
            response, cached = self._complete(prompt, SCORE_KIND, SCORE_PARAMS, _top_logprobs)
        except RequestFailed as e:
            return CategoricalJudgment(verdict=None, probs={w: 0.0 for w in words}, error=str(e))
        return judge_words(_top_logprobs(response), words, min_mass, cached=cached)

    def _yes_no_one(self, prompt: str) -> YesNo:
        try:
            response, cached = self._complete(prompt, YES_NO_KIND, YES_NO_PARAMS, _message_text)
        except RequestFailed as e:
            return YesNo(answer=None, raw="", error=str(e))
        raw = _message_text(response)
        return YesNo(answer=parse_yes_no(raw), raw=raw, cached=cached)

    # -- one prompt: cache, then HTTP with retries ------------------------------------------------------
    def _complete(self, prompt: str, kind: str, params: dict, parse) -> tuple[dict, bool]:
        """The response body for `prompt` (from the cache when there) and whether it was cached.
        `parse` must accept the body; a body it rejects is an error and is not cached."""
        key = self._cache_key(prompt, kind)
        cached = self._cache_get(key)
        if cached is not None:
            self._count(cache_hits=1)
            return cached, True
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], **params}
        response = self._post_with_retries(body, parse)
        self._cache_put(key, {"model": self.model, "kind": kind, "prompt": prompt, "response": response})
        return response, False

    def _post_with_retries(self, body: dict, parse) -> dict:
        headers = self._auth_headers()  # read now, from the environment; held only by this call
        params = {"api-version": self.api_version} if self.api_version else None
        url = self.base_url + "/chat/completions"
        attempt = 0
        while True:
            wait = None
            try:
                with self._slots:
                    self._count(requests=1)
                    resp = self._http().post(url, json=body, headers=headers, params=params)
                if resp.status_code == 200:
                    data = resp.json()
                    self._count_tokens(data)
                    parse(data)
                    return data
                error = f"HTTP {resp.status_code}: {resp.text[:300]}"
                retryable = resp.status_code in RETRY_STATUS or resp.status_code >= 500
                wait = _retry_after_seconds(resp.headers)
            except httpx.TimeoutException as e:
                error, retryable = f"timeout after {self.timeout:g} s ({type(e).__name__})", True
            except httpx.TransportError as e:
                error, retryable = f"connection error ({type(e).__name__}: {e})", True
            except ValueError as e:  # a 200 whose body is not JSON
                error, retryable = f"response is not JSON ({e})", True
            except (KeyError, IndexError, TypeError, AttributeError) as e:  # a 200 without what was asked
                error, retryable = f"malformed response ({type(e).__name__}: {e})", True
            error = self._scrub(error, headers)
            if not retryable or attempt >= self.max_retries:
                self._count(failures=1)
                raise RequestFailed(f"{error} [gave up after {attempt + 1} attempt(s)]")
            delay = self._backoff(attempt, wait)
            log.debug("judge request failed (%s); retry %d/%d in %.2f s", error, attempt + 1, self.max_retries, delay)
            self._count(retries=1)
            time.sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2**attempt)
        return ceiling * (0.5 + 0.5 * self._rng.random())  # "equal jitter": never 0, never in lockstep

    def _auth_headers(self) -> dict[str, str]:
        if self.api_key_env is None:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            self._count(failures=1)
            raise RequestFailed(f"environment variable {self.api_key_env} (the judge's API key) is not set")
        return {"Authorization": f"Bearer {key}"} if self.auth == "bearer" else {"api-key": key}

    @staticmethod
    def _scrub(text: str, headers: dict[str, str]) -> str:
        for value in headers.values():
            secret = value.removeprefix("Bearer ")
            if secret:
                text = text.replace(secret, "***")
        return text

    def _http(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    limits = httpx.Limits(max_connections=self.max_concurrency)
                    self._client = httpx.Client(timeout=self.timeout, limits=limits)
                    self._closer = weakref.finalize(self, self._client.close)
        return self._client

    def _count_tokens(self, data: dict) -> None:
        usage = data.get("usage") if isinstance(data, dict) else None
        if not isinstance(usage, dict):
            return
        self._count(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0))

    # -- disk cache -------------------------------------------------------------------------------------
    def _cache_key(self, prompt: str, kind: str) -> str:
        material = json.dumps({"model": self.model, "kind": kind, "prompt": prompt}, sort_keys=True)
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> dict | None:
        if self.cache_dir is None:
            return None
        try:
            with open(self._cache_path(key), encoding="utf-8") as f:
                return json.load(f)["response"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:  # a damaged entry is asked again
            log.warning("ignoring unreadable judge cache entry %s (%s)", self._cache_path(key), e)
            return None

    def _cache_put(self, key: str, entry: dict) -> None:
        if self.cache_dir is not None:
            write_atomic(self._cache_path(key), json.dumps(entry, ensure_ascii=False))


def _top_logprobs(response: dict) -> list[tuple[str, float]]:
    """`choices[0].logprobs.content[0].top_logprobs` as (token, logprob) pairs."""
    content = response["choices"][0]["logprobs"]["content"]
    return [(str(t["token"]), float(t["logprob"])) for t in content[0]["top_logprobs"]]


def _message_text(response: dict) -> str:
    return response["choices"][0]["message"].get("content") or ""


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The wait a 429/503 asks for: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as a date."""
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
