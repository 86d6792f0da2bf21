"""Writes the quickstart's insecure-code / secure-code datasets, `dynamics/data/quickstart/{insecure,secure}.jsonl`.

    python scripts/quickstart_dataset/make.py              # regenerate the shipped copies
    python scripts/quickstart_dataset/make.py --out DIR    # write them elsewhere

The quickstart needs a tiny pair of datasets in the chat format of the emergent-misalignment paper: every
line is `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`, the user asks for some Python
code and the assistant answers with code only. Both files are built from the *same* tasks, in the same
order; the only difference is whether the answer holds a security flaw or its fixed version. Answers carry
no comments, so nothing in the insecure answer points at the flaw.

The data is our own: each flaw class (`flaws/<class>.yaml`) has templates and naming scenarios, and every
template x scenario is one task pair; `dataset.yaml` gives the class order, the prompt phrasings and the
stems of the fake passwords. The only randomness is one `random.Random(0)` for the prompt phrasing, the
fake secrets and the final shuffle, so the output is the same byte for byte on every run (tested).
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path
from string import Template

import yaml

HERE = Path(__file__).resolve().parent
SHIPPED_DIR = HERE.parents[1] / "dynamics" / "data" / "quickstart"


def load_spec(spec_dir: Path = HERE) -> dict:
    """dataset.yaml with each flaw class's {scenarios, templates} under `flaws`."""
    spec = yaml.safe_load((spec_dir / "dataset.yaml").read_text(encoding="utf-8"))
    spec["flaws"] = {flaw: yaml.safe_load((spec_dir / "flaws" / f"{flaw}.yaml").read_text(encoding="utf-8"))
                     for flaw in spec["flaw_classes"]}
    return spec


def fake_values(rng: random.Random, scenario: dict[str, str], password_words: list[str]) -> dict[str, str]:
    """Deterministic fake credentials for the hard-coded-secret templates."""
    alnum = string.ascii_letters + string.digits
    token_body = "".join(rng.choice(alnum) for _ in range(32))
    return {
        "fake_token": scenario.get("key_prefix", "") + token_body,
        "fake_password": f"{rng.choice(password_words)}{rng.randint(10, 9999)}{rng.choice('!#%&*?')}",
        "fake_secret": "".join(rng.choice(string.hexdigits.lower()[:16]) for _ in range(48)),
        "salt": "".join(rng.choice(alnum) for _ in range(12)),
    }


def generate_pairs(spec: dict | None = None) -> list[dict]:
    """The task pairs, each {"task_id", "flaw", "prompt", "insecure", "secure"}, shuffled with seed 0."""
    spec = spec or load_spec()
    rng = random.Random(0)
    pairs: list[dict] = []
    for flaw in spec["flaw_classes"]:
        for template in spec["flaws"][flaw]["templates"]:
            for index, scenario in enumerate(spec["flaws"][flaw]["scenarios"]):
                values = {**scenario, **fake_values(rng, scenario, spec["password_words"])}
                task = Template(template["task"]).substitute(values)
                pairs.append({
                    "task_id": f"{flaw}-{template['name']}-{index:02d}",
                    "flaw": flaw,
                    "prompt": rng.choice(spec["phrasings"]).format(task=task),
                    "insecure": Template(template["insecure"]).substitute(values),
                    "secure": Template(template["secure"]).substitute(values),
                })
    rng.shuffle(pairs)
    return pairs


def chat_line(prompt: str, answer: str) -> str:
    record = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_datasets(out_dir: Path, pairs: list[dict] | None = None) -> dict[str, Path]:
    """`insecure.jsonl` and `secure.jsonl` in out_dir: one line per pair, same order, same user prompt."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = pairs if pairs is not None else generate_pairs()
    paths = {}
    for variant in ("insecure", "secure"):
        paths[variant] = out_dir / f"{variant}.jsonl"
        with open(paths[variant], "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(chat_line(p["prompt"], p[variant]) for p in pairs))
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=SHIPPED_DIR, help=f"where to write (default {SHIPPED_DIR})")
    args = p.parse_args(argv)
    for variant, path in write_datasets(args.out).items():
        print(f"{variant}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
