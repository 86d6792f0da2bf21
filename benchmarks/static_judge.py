"""How well Bandit separates the paper's insecure from secure code answers (METRICS.md section 1 asks
the static judge to report its own precision/recall next to its number).

    python benchmarks/static_judge.py                      # first 1000 of each file, MEDIUM+ severity
    python benchmarks/static_judge.py --n 200 --severity HIGH

Reads datasets/insecure.jsonl and datasets/secure.jsonl (chat JSONL; the last assistant message is the
answer) and prints one JSON line: precision, recall, f1, flagged shares, seconds per snippet.
The code is analysed statically and never run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script from anywhere

from dynamics.judges.static import StaticCodeJudge, precision_recall  # noqa: E402


def assistant_answers(path: Path, n: int) -> list[str]:
    answers = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if len(answers) >= n:
                break
            messages = json.loads(line)["messages"]
            replies = [m["content"] for m in messages if m["role"] == "assistant"]
            if not replies:
                raise SystemExit(f"{path}:{lineno}: no assistant message")
            answers.append(replies[-1])
    return answers


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/emergent-misalignment")
    parser.add_argument("--n", type=int, default=1000, help="first N answers of each file")
    parser.add_argument("--severity", default="MEDIUM", choices=["LOW", "MEDIUM", "HIGH"])
    parser.add_argument("--confidence", default="LOW", choices=["LOW", "MEDIUM", "HIGH"])
    parser.add_argument("--skip", default="", help="comma-separated Bandit test ids that do not count, e.g. B113")
    args = parser.parse_args(argv)

    files = {name: args.data_dir / "datasets" / f"{name}.jsonl" for name in ("insecure", "secure")}
    for path in files.values():
        if not path.is_file():
            raise SystemExit(f"missing {path} (point --data-dir at the emergent-misalignment data)")
    insecure = assistant_answers(files["insecure"], args.n)
    secure = assistant_answers(files["secure"], args.n)

    judge = StaticCodeJudge(args.severity, args.confidence, skip=tuple(filter(None, args.skip.split(","))))
    t0 = time.perf_counter()
    result = precision_recall(judge, insecure, secure)
    seconds = time.perf_counter() - t0
    judge.close()
    result["seconds_per_snippet"] = seconds / max(1, len(insecure) + len(secure))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
