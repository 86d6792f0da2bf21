"""A real chat-completions HTTP server on 127.0.0.1 for judge tests (a fixture, not a mock of our code).

    with FakeOpenAI() as server:
        server.top_logprobs_fn = lambda prompt: [("80", -0.1), ("90", -2.5)]
        server.fail(429, retry_after="1")      # the next request gets a 429, the one after succeeds
        judge = ApiJudge(server.base_url, "fake-judge", ...)

It answers `POST /v1/chat/completions` in OpenAI's response shape (`choices[0].message.content`,
`choices[0].logprobs.content[0].top_logprobs` when `logprobs` is asked, `usage`), and records what it
received: request bodies, Authorization / api-key headers, how many requests were in flight at most.
Failures are a scripted queue consumed one per request: an HTTP status (with optional Retry-After) or a
hang (the server holds the request without answering, for a client timeout).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Failure:
    status: int | None = None  # HTTP status to answer with; None with `hang` set: no answer at all
    retry_after: str | None = None
    message: str = "scripted failure"  # the error body's message
    hang: float = 0.0  # seconds to hold the request before (not) answering
    body: str | None = None  # "bad_json": a 200 whose body is not JSON; "no_logprobs": a 200 without them


def _default_top_logprobs(prompt: str) -> list[tuple[str, float]]:
    return [("50", math.log(0.9)), ("Sure", math.log(0.1))]


def _default_text(prompt: str) -> str:
    return "NO"


class FakeOpenAI:
    def __init__(self):
        self.top_logprobs_fn: Callable[[str], list[tuple[str, float]]] = _default_top_logprobs
        self.text_fn: Callable[[str], str] = _default_text
        self.delay = 0.0  # seconds each successful answer takes (to observe concurrency)
        self.usage_fn: Callable[[str], tuple[int, int]] = lambda prompt: (len(prompt.split()), 1)
        self.failures: deque[Failure] = deque()
        self.bodies: list[dict] = []
        self.auth_headers: list[str | None] = []  # Authorization (or api-key) of each request, as received
        self.paths: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------------------
    def fail(self, status: int, times: int = 1, retry_after: str | None = None, message: str = "scripted failure"
             ) -> None:
        """The next `times` requests get HTTP `status` (with `Retry-After` when given)."""
        for _ in range(times):
            self.failures.append(Failure(status=status, retry_after=retry_after, message=message))

    def hang(self, seconds: float, times: int = 1) -> None:
        for _ in range(times):
            self.failures.append(Failure(hang=seconds))

    def succeed(self, times: int = 1) -> None:
        """The next `times` requests are answered normally (to script failures between successes)."""
        for _ in range(times):
            self.failures.append(Failure(status=200))

    def bad_200(self, body: str, times: int = 1) -> None:
        """The next `times` requests get a 200 that is no answer: "bad_json" or "no_logprobs"."""
        assert body in ("bad_json", "no_logprobs")
        for _ in range(times):
            self.failures.append(Failure(status=200, body=body))

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.bodies)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- answering -------------------------------------------------------------------------------------
    def _next_failure(self) -> Failure | None:
        with self._lock:
            return self.failures.popleft() if self.failures else None

    def _completion(self, body: dict) -> dict:
        prompt = body["messages"][-1]["content"]
        prompt_tokens, completion_tokens = self.usage_fn(prompt)
        choice: dict = {"index": 0, "finish_reason": "length"}
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            top = sorted(self.top_logprobs_fn(prompt), key=lambda t: -t[1])[:k]
            entries = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top]
            first = entries[0] if entries else {"token": "", "logprob": 0.0, "bytes": []}
            choice["message"] = {"role": "assistant", "content": first["token"]}
            choice["logprobs"] = {"content": [{**first, "top_logprobs": entries}], "refusal": None}
        else:
            choice["message"] = {"role": "assistant", "content": self.text_fn(prompt)}
            choice["logprobs"] = None
        return {
            "id": f"chatcmpl-fake-{len(self.bodies)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},  # fmt: skip
        }


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # keep test output quiet
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with server._lock:
                server.paths.append(self.path)
                server.auth_headers.append(self.headers.get("Authorization") or self.headers.get("api-key"))
                server.bodies.append(body)
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                self._answer(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout) while we hung
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _answer(self, body: dict) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            failure = server._next_failure()
            if failure is not None and failure.status == 200 and failure.body is None:
                failure = None  # scripted success
            if failure is not None and failure.status is None:
                server._stopping.wait(failure.hang)
                self.close_connection = True
                return
            if failure is not None and failure.body == "bad_json":
                return self._send_raw(200, b'{"choices": [{"message": ')
            if failure is not None and failure.body == "no_logprobs":
                return self._send(200, server._completion({**body, "logprobs": False}))
            if failure is not None:
                headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
                return self._send(failure.status, {"error": {"message": failure.message}}, headers)
            if server.delay:
                server._stopping.wait(server.delay)
            self._send(200, server._completion(body))

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            self._send_raw(status, json.dumps(payload).encode(), headers)

        def _send_raw(self, status: int, data: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler
