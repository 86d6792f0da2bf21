"""Chat-format JSONL: `{"messages": [{"role": ..., "content": ...}, ...]}` one per line.

The one reader of such files (training data, labelled answers, evaluation prompts): every line is
checked, and a bad one raises `DataError` naming the file, the line and the key.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """A data file that cannot be used, with the file and line."""


def parse_chat_line(line: str, where: str, require_assistant: bool = True) -> list[dict]:
    """One line's messages as plain {role, content} dicts. `require_assistant`: training data must hold
    an assistant turn to learn from; prompt files (a user turn to answer) need not."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict) or "messages" not in obj:
        raise DataError(f"{where}: expected an object with key 'messages'")
    msgs = obj["messages"]
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: key 'messages' must be a non-empty list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise DataError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        if m.get("role") not in ROLES:
            raise DataError(f"{where}: messages[{i}].role must be one of {', '.join(ROLES)} (got {m.get('role')!r})")
        if not isinstance(m.get("content"), str):
            raise DataError(f"{where}: messages[{i}].content must be a string")
        extra = set(m) - {"role", "content"}
        if extra:
            raise DataError(f"{where}: messages[{i}] has unexpected key(s) {sorted(extra)}")
    if require_assistant and not any(m["role"] == "assistant" for m in msgs):
        raise DataError(f"{where}: no assistant message: nothing to train on")
    check_role_order([m["role"] for m in msgs], where)
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


def check_role_order(roles: list[str], where: str) -> None:
    """A system turn only first, then user and assistant turns alternating, the user's first: the order
    every chat template renders (anything else fails, late and without a line, in the tokenizer)."""
    body = roles[1:] if roles[0] == "system" else roles
    if not body:
        raise DataError(f"{where}: key 'messages': only a system turn; expected a user turn after it")
    for i, role in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            at = i + (len(roles) - len(body))
            raise DataError(f"{where}: messages[{at}].role is {role!r}, expected {expected!r} (roles must be: "
                            f"an optional system turn first, then user and assistant alternating, user first; "
                            f"got {' > '.join(roles)})")


def read_chat_records(path: str | Path, require_assistant: bool = True) -> list[tuple[str, list[dict]]]:
    """(`file:line`, conversation) for every line of a chat JSONL file; a malformed line (bad JSON, keys,
    roles, role order, or bytes that are not UTF-8) raises DataError naming the file and line."""
    path = Path(path)
    out = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line); "
                                "chat JSONL files must be UTF-8") from None
            if not line.strip():
                continue
            out.append((where, parse_chat_line(line, where, require_assistant)))
    if not out:
        raise DataError(f"{path}: no conversations")
    return out


def read_chat_jsonl(path: str | Path, require_assistant: bool = True) -> list[list[dict]]:
    """All conversations of a chat JSONL file; a malformed line raises DataError naming file:line."""
    return [conv for _, conv in read_chat_records(path, require_assistant)]


def split_holdout(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Seeded shuffle, then the last `fraction` held out (the paper holds out 10%)."""
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    n_hold = int(round(len(items) * fraction))
    keep, hold = idx[: len(idx) - n_hold], idx[len(idx) - n_hold:]
    return [items[i] for i in keep], [items[i] for i in hold]
