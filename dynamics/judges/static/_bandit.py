"""Bandit, run in-process on one snippet at a time (about 3 ms each).

Bandit reads the snippet from a temporary file and analyses its syntax tree; it runs nothing. `# nosec`
comments are ignored: an answer cannot exempt itself. Bandit's own internal errors on odd code (it logs
them) are kept on the verdict instead of going to stderr.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import warnings
import weakref
from pathlib import Path

from dynamics.judges.static._classes import bandit_class
from dynamics.judges.static._verdict import Finding

with warnings.catch_warnings():  # bandit's plugin loading trips a stevedore deprecation at import time
    warnings.filterwarnings("ignore", message="The verify_requirements argument", category=DeprecationWarning)
    from bandit.core import config as bandit_config
    from bandit.core import manager as bandit_manager
    from bandit.core import metrics as bandit_metrics

_BANDIT_LOCK = threading.Lock()  # one snippet at a time in this process: the log capture is shared


class _Capture(logging.Handler):
    """Collects Bandit's log records for the snippet being analysed (instead of printing them)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        lines = record.getMessage().split("Traceback (most recent call last)")[0].splitlines()
        self.messages.append((lines[0] if lines else record.levelname)[:300])


def _bandit_log_capture() -> _Capture:
    """The one capture handler on the "bandit" logger (installed on first use)."""
    with _BANDIT_LOCK:
        bandit_log = logging.getLogger("bandit")
        for h in bandit_log.handlers:
            if isinstance(h, _Capture):
                return h
        capture = _Capture()
        bandit_log.addHandler(capture)
        bandit_log.propagate = False
        return capture


class BanditAnalyser:
    name = "bandit"

    def __init__(self):
        tmp = tempfile.mkdtemp(prefix="dynamics-bandit-")
        self._path = str(Path(tmp) / "snippet.py")
        self._cleanup = weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)
        self._manager = bandit_manager.BanditManager(
            bandit_config.BanditConfig(), "file", quiet=True, ignore_nosec=True
        )
        self._capture = _bandit_log_capture()

    def analyse(self, code: str, block: int) -> tuple[list[Finding], list[str], bool]:
        """Bandit's findings on one snippet (counts=False: the judge decides), its internal errors, and
        whether it analysed the snippet."""
        with _BANDIT_LOCK:
            with open(self._path, "w", encoding="utf-8", errors="replace", newline="") as f:
                f.write(code)
            m = self._manager
            m.files_list, m.results, m.scores, m.skipped = [self._path], [], [], []
            m.metrics = bandit_metrics.Metrics()
            self._capture.messages = []
            m.run_tests()
            errors = list(self._capture.messages) + [f"bandit skipped the snippet: {why}" for _, why in m.skipped]
            issues = list(m.results)
        findings = [Finding(self.name, i.test_id, i.test, bandit_class(i.test_id), i.severity, i.confidence,
                            int(i.lineno), block, i.text, False) for i in issues]  # fmt: skip
        return findings, errors, not m.skipped

    def close(self) -> None:
        self._cleanup()
