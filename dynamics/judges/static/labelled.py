"""The paper's labelled code answers (insecure.jsonl / secure.jsonl), split once into "dev" and "test".

    examples = read_labelled(data_dir / "datasets/insecure.jsonl", label=True)
    dev, test = split(examples)          # by sha256 of the user prompt; test is held out

The split was fixed in code before any answer was looked at to write a rule. Project rules are written
from `dev` only; `test` (about 30% of each file, more than 1000 answers of each class) is the held-out
part the shipped default is judged on. The split follows the user prompt, so a prompt that occurs twice
falls on one side. Changing `TEST_SHARE_PERCENT` or the hash would break the promise that no rule was
written from the test part: don't.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

TEST_SHARE_PERCENT = 30
SPLITS = ("dev", "test")


class LabelledDataError(ValueError):
    """A labelled data file that cannot be read, with the file, line and key."""


@dataclass(frozen=True)
class Labelled:
    prompt: str  # the last user message
    answer: str  # the last assistant message: the code answer
    insecure: bool  # the file it came from: insecure.jsonl (True) or secure.jsonl (False)
    line: int  # 1-based line in its file

    @property
    def split(self) -> str:
        return split_of(self.prompt)


def split_of(prompt: str) -> str:
    """"test" for about TEST_SHARE_PERCENT percent of prompts, "dev" for the rest; a pure function of the text."""
    bucket = int(hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16) % 100
    return "test" if bucket < TEST_SHARE_PERCENT else "dev"


def read_labelled(path: str | Path, insecure: bool) -> list[Labelled]:
    """Every (user prompt, assistant answer) of a chat JSONL file, labelled by which file it is."""
    path = Path(path)
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise LabelledDataError(f"{path}: cannot read: {e.strerror}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
            users = [m["content"] for m in messages if m["role"] == "user"]
            replies = [m["content"] for m in messages if m["role"] == "assistant"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise LabelledDataError(f"{path}:{lineno}: key 'messages': expected a list of {{role, content}}") from None
        if not users or not replies:
            raise LabelledDataError(f"{path}:{lineno}: key 'messages': expected a user and an assistant turn")
        out.append(Labelled(users[-1], replies[-1], insecure, lineno))
    return out


def split(examples: list[Labelled]) -> tuple[list[Labelled], list[Labelled]]:
    """(dev, test), each in file order."""
    return [e for e in examples if e.split == "dev"], [e for e in examples if e.split == "test"]


def load_split(data_dir: str | Path, part: str) -> tuple[list[Labelled], list[Labelled]]:
    """(insecure, secure) examples of one part ("dev", "test" or "all") of the paper's data in data_dir."""
    if part not in (*SPLITS, "all"):
        raise ValueError(f"part must be one of dev, test, all; got {part!r}")
    datasets = Path(data_dir) / "datasets"
    out = []
    for name, label in (("insecure", True), ("secure", False)):
        examples = read_labelled(datasets / f"{name}.jsonl", label)
        out.append(examples if part == "all" else [e for e in examples if e.split == part])
    return out[0], out[1]
