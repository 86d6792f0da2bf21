"""How well the static judge separates the paper's insecure from secure code answers, on the rule-writing
("dev") part and the held-out ("test") part of the data, and on the project's quickstart pairs with their
15 known flaw classes (METRICS.md section 1 asks the static judge to report its own quality).

    python benchmarks/static_judge.py                            # the shipped default, both parts + quickstart
    python benchmarks/static_judge.py --part test --analysers bandit --skip ''   # Bandit alone, nothing skipped
    python benchmarks/static_judge.py --n 200 --severity HIGH    # 200 answers of each class per part

Prints one JSON line: for each part, the combined figures (recall on insecure answers, false-positive rate
on secure ones, precision), the same per analyser, per rule (answers it fired on, and those it alone
decided) and per flaw class, with answers a second. The paper's data has no class labels, so its classes
come from keywords in each answer's code (dynamics/judges/static/_classes.py), never from the rules.
The split is fixed in dynamics/judges/static/labelled.py. Code is analysed, never run.

Beside the paper's data, the project's independent labelled snippets (benchmarks/data/
static_judge_independent/, written for the project, classes labelled by hand): its "tuning" part and its
"held_aside" part (no rule was written from it), each with per-class recall and false-positive rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import DEFAULT_DATA_DIR, json_stdout, log  # noqa: E402

from dynamics.judges.static import DEFAULT_SKIP, StaticCodeJudge, breakdown, extract_code, keyword_class  # noqa: E402
from dynamics.judges.static.labelled import load_split  # noqa: E402
from dynamics.judges.static.snippets import PARTS, SNIPPETS_DIR, read_snippets  # noqa: E402


def assistant_answers(path: Path, n: int) -> list[str]:
    """The last assistant message of the first n lines of a chat JSONL file (used by eval_breakdown.py)."""
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


def measure(judge: StaticCodeJudge, insecure: list[str], secure: list[str], classes_ins=None, classes_sec=None,
            rules: bool = True) -> dict:
    t, cpu = time.perf_counter(), time.process_time()
    vi, vs = judge.analyse(insecure), judge.analyse(secure)
    seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    if classes_ins is None:  # the answer's own code decides its class (keywords)
        classes_ins = [keyword_class("\n".join(extract_code(a))) for a in insecure]
        classes_sec = [keyword_class("\n".join(extract_code(a))) for a in secure]
    out = {"n_insecure": len(insecure), "n_secure": len(secure), **breakdown(vi, vs, classes_ins, classes_sec),
           "seconds": seconds, "answers_per_second": (len(insecure) + len(secure)) / seconds if seconds else None,
           # CPU time is what a shared or loaded machine does not inflate (wall time waits for the cores)
           "cpu_seconds": cpu_seconds,
           "answers_per_cpu_second": (len(insecure) + len(secure)) / cpu_seconds if cpu_seconds else None}
    if not rules:
        out.pop("per_rule")
    return out


def paper_part(judge: StaticCodeJudge, data_dir: Path, part: str, n: int | None) -> dict:
    ins, sec = load_split(data_dir, part)
    log(f"{part}: {len(ins)} insecure, {len(sec)} secure answers" + (f"; the first {n} of each" if n else ""))
    return measure(judge, [e.answer for e in ins][:n], [e.answer for e in sec][:n])


def quickstart(judge: StaticCodeJudge, per_class: int | None = None) -> dict:
    import importlib.util

    make = REPO / "scripts" / "quickstart_dataset" / "make.py"  # the quickstart dataset's generator
    spec = importlib.util.spec_from_file_location("quickstart_dataset_make", make)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pairs, seen = [], {}
    for p in module.generate_pairs():
        seen[p["flaw"]] = seen.get(p["flaw"], 0) + 1
        if per_class is None or seen[p["flaw"]] <= per_class:
            pairs.append(p)
    log(f"quickstart: {len(pairs)} pairs")
    flaws = [p["flaw"] for p in pairs]
    return measure(judge, [p["insecure"] for p in pairs], [p["secure"] for p in pairs], flaws, flaws, rules=False)


def independent(judge: StaticCodeJudge, folder: Path = SNIPPETS_DIR) -> dict:
    """Each part of the independent snippet set, classes from the snippets' own labels."""
    snippets = read_snippets(folder)
    out = {}
    for part in PARTS:
        ins = [s for s in snippets if s.part == part and s.insecure]
        sec = [s for s in snippets if s.part == part and not s.insecure]
        log(f"independent {part}: {len(ins)} insecure, {len(sec)} secure snippets")
        out[part] = measure(judge, [s.code for s in ins], [s.code for s in sec],
                            [s.flaw_class for s in ins], [s.flaw_class for s in sec])
        verdicts = judge.analyse([s.code for s in ins + sec])  # which snippets it got wrong, by id
        out[part]["missed"] = [s.id for s, v in zip(ins + sec, verdicts) if s.insecure and v.insecure is False]
        out[part]["false_alarms"] = [s.id for s, v in zip(ins + sec, verdicts) if not s.insecure and v.insecure]
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--part", default="both", choices=["dev", "test", "both", "none"])
    parser.add_argument("--n", type=int, default=None, help="the first N answers of each class per part (all)")
    parser.add_argument("--analysers", default="bandit,rules", help="comma-separated: bandit, rules")
    parser.add_argument("--severity", default="MEDIUM", choices=["LOW", "MEDIUM", "HIGH"])
    parser.add_argument("--confidence", default="LOW", choices=["LOW", "MEDIUM", "HIGH"])
    parser.add_argument("--skip", default=",".join(DEFAULT_SKIP), help="comma-separated rule ids that do not count")
    parser.add_argument("--no-quickstart", action="store_true", help="leave out the quickstart pairs")
    parser.add_argument("--no-independent", action="store_true", help="leave out the independent snippet set")
    parser.add_argument("--independent-dir", type=Path, default=SNIPPETS_DIR)
    parser.add_argument("--quickstart-n", type=int, default=None, help="the first N pairs of each class (all)")
    args = parser.parse_args(argv)

    judge = StaticCodeJudge(args.severity, args.confidence, skip=tuple(filter(None, args.skip.split(","))),
                            analysers=tuple(filter(None, args.analysers.split(","))))
    result: dict = {"settings": judge.settings(), "parts": {}}
    load_start = os.getloadavg()[0]
    with json_stdout() as emit:
        parts = {"both": ("dev", "test"), "none": ()}.get(args.part, (args.part,))
        if parts and not (args.data_dir / "datasets").is_dir():
            raise SystemExit(f"missing {args.data_dir}/datasets (point --data-dir at the emergent-misalignment data)")
        for part in parts:
            result["parts"][part] = paper_part(judge, args.data_dir, part, args.n)
        if not args.no_independent:
            result["independent"] = independent(judge, args.independent_dir)
        if not args.no_quickstart:
            result["quickstart"] = quickstart(judge, args.quickstart_n)
        judge.close()
        result["machine"] = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                             "loadavg_1m_at_start": load_start, "loadavg_1m_at_end": os.getloadavg()[0]}
        emit(result)
    return result


if __name__ == "__main__":
    main()
