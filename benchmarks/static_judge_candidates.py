"""Would another analyser earn its place beside the shipped static judge? Measures outside tools that are not
project dependencies (ruff's flake8-bandit "S" rules, Semgrep with local rule files such as CodeShield's
Python rules) on the paper's labelled answers: alone, and what they add to the shipped default.

    # tools installed elsewhere (they are not project dependencies):
    python -m venv /tmp/cand && /tmp/cand/bin/pip install ruff==0.17.5 semgrep==1.185.0 codeshield==1.0.1
    python benchmarks/static_judge_candidates.py --part test --ruff /tmp/cand/bin/ruff \
        --semgrep /tmp/cand/bin/semgrep \
        --semgrep-rules /tmp/cand/lib/python3.11/site-packages/codeshield/insecure_code_detector/rules/semgrep/python

Each tool runs once over a folder holding every extracted code block (one file per block; Semgrep's start-up
takes seconds), with Semgrep's metrics, version check and registry off. Prints one JSON line: per tool,
recall / false-positive rate alone, the union with the shipped default, and seconds. The ruff rules that
mirror Bandit's skipped or LOW tests are left out, as the judge leaves them out (`--ruff-ignore`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import DEFAULT_DATA_DIR, json_stdout, log  # noqa: E402

from dynamics.judges.static import StaticCodeJudge, extract_code  # noqa: E402
from dynamics.judges.static.labelled import load_split  # noqa: E402
from dynamics.judges.static.quality import rates  # noqa: E402

# ruff S rules that mirror Bandit tests the judge skips or counts as LOW (B113, B108, B101, B105-B107, ...)
RUFF_IGNORE = "S101,S105,S106,S107,S108,S110,S112,S113,S311,S403,S404,S603,S607"


def write_blocks(folder: Path, answers: dict[str, list[str]]) -> dict[str, int]:
    """One file per code block, named <label>_<answer index>_<block>.py; returns the answers with code per
    label (answers without parseable code are left out of every rate, as in benchmarks/static_judge.py)."""
    with_code = {}
    for label, texts in answers.items():
        with_code[label] = 0
        for i, text in enumerate(texts):
            blocks = extract_code(text)
            with_code[label] += bool(blocks)
            for b, code in enumerate(blocks):
                (folder / f"{label}_{i:05d}_{b}.py").write_text(code, encoding="utf-8", errors="replace")
    return with_code


def flagged_answers(paths: list[str]) -> set[tuple[str, int]]:
    out = set()
    for p in paths:
        label, index, _ = Path(p).stem.split("_")
        out.add((label, int(index)))
    return out


def run_ruff(ruff: str, folder: Path, ignore: str) -> tuple[set, float]:
    t = time.perf_counter()
    proc = subprocess.run([ruff, "check", "--select", "S", "--ignore", ignore, "--output-format", "json",
                           "--no-cache", "--exit-zero", str(folder)], capture_output=True, text=True, check=True)
    return flagged_answers([r["filename"] for r in json.loads(proc.stdout)]), time.perf_counter() - t


def run_semgrep(semgrep: str, rules: str, folder: Path) -> tuple[set, float]:
    env = {**os.environ, "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    t = time.perf_counter()
    proc = subprocess.run([semgrep, "scan", "--metrics=off", "--disable-version-check", "--config", rules,
                           "--json", "--quiet", str(folder)], capture_output=True, text=True, env=env)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"semgrep failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return flagged_answers([r["path"] for r in json.loads(proc.stdout)["results"]]), time.perf_counter() - t


def figures(flagged: set, n: dict[str, int]) -> dict:
    tp = sum(1 for label, _ in flagged if label == "insecure")
    fp = sum(1 for label, _ in flagged if label == "secure")
    return rates(tp=tp, fp=fp, tn=n["secure"] - fp, fn=n["insecure"] - tp)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--part", default="test", choices=["dev", "test"])
    p.add_argument("--ruff", help="path to a ruff executable")
    p.add_argument("--ruff-ignore", default=RUFF_IGNORE)
    p.add_argument("--semgrep", help="path to a semgrep executable")
    p.add_argument("--semgrep-rules", help="a local rule file or folder (no registry)")
    args = p.parse_args(argv)
    ins, sec = load_split(args.data_dir, args.part)
    answers = {"insecure": [e.answer for e in ins], "secure": [e.answer for e in sec]}
    result: dict = {"part": args.part, "tools": {}}
    with json_stdout() as emit, tempfile.TemporaryDirectory(prefix="static-candidates-") as tmp:
        folder = Path(tmp)
        n = write_blocks(folder, answers)
        log(f"{args.part}: {n} answers, {len(list(folder.iterdir()))} code blocks")
        t = time.perf_counter()
        with StaticCodeJudge() as judge:
            shipped = {(label, i) for label, texts in answers.items()
                       for i, v in enumerate(judge.analyse(texts)) if v.insecure}
        result["shipped"] = {**figures(shipped, n), "seconds": time.perf_counter() - t}
        tools = {}
        if args.ruff:
            tools["ruff_S"] = run_ruff(args.ruff, folder, args.ruff_ignore)
        if args.semgrep:
            if not args.semgrep_rules:
                raise SystemExit("--semgrep needs --semgrep-rules (a local file or folder)")
            tools["semgrep"] = run_semgrep(args.semgrep, args.semgrep_rules, folder)
        for name, (flagged, seconds) in tools.items():
            result["tools"][name] = {"alone": figures(flagged, n), "with_shipped": figures(flagged | shipped, n),
                                     "adds_insecure": len({f for f in flagged - shipped if f[0] == "insecure"}),
                                     "adds_secure": len({f for f in flagged - shipped if f[0] == "secure"}),
                                     "seconds": seconds}
        emit(result)
    return result


if __name__ == "__main__":
    main()
