"""The project's independent labelled snippet set (benchmarks/data/static_judge_independent/*.txt).

    snippets = read_snippets(SNIPPETS_DIR)          # every snippet, with its label, class and part
    tuning, held = [s for s in snippets if s.part == "tuning"], [s for s in snippets if s.part == "held_aside"]

Short Python programs written for this project (not taken from the paper's data, not from the rules), each
labelled insecure or secure and with the flaw class it is about. A file holds snippets one after another,
each opened by a header line

    # === id: cred-dict-stripe | label: insecure | class: credentials | style: settings dict | part: tuning

The part is fixed by the id alone (`part_of`: sha256 of the id, HELD_ASIDE_PERCENT of 100 buckets are
"held_aside") and written into each header when the set was committed, before any rule was written for it;
rules may be tuned on "tuning" snippets only. `read_snippets` refuses a header whose part disagrees with
the hash, so the split cannot drift. Snippets are analysed, never run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

HELD_ASIDE_PERCENT = 40
PARTS = ("tuning", "held_aside")
LABELS = {"insecure": True, "secure": False}
SNIPPETS_DIR = Path(__file__).resolve().parents[3] / "benchmarks" / "data" / "static_judge_independent"
_HEADER = re.compile(r"^# === (.*)$")
_FIELDS = ("id", "label", "class", "style", "part")


class SnippetDataError(ValueError):
    """A snippet file that cannot be read, with the file, line and key."""


@dataclass(frozen=True)
class Snippet:
    id: str
    insecure: bool
    flaw_class: str
    style: str
    part: str
    code: str
    source: str  # file:line of its header


def part_of(snippet_id: str) -> str:
    """"held_aside" for about HELD_ASIDE_PERCENT percent of ids, "tuning" for the rest; a pure function of the id."""
    bucket = int(hashlib.sha256(snippet_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "held_aside" if bucket < HELD_ASIDE_PERCENT else "tuning"


def parse_header(text: str, where: str, require_part: bool = True) -> dict[str, str]:
    fields = {}
    for item in text.split("|"):
        key, sep, value = item.partition(":")
        if not sep:
            raise SnippetDataError(f"{where}: header item {item.strip()!r}: expected 'key: value'")
        fields[key.strip()] = value.strip()
    wanted = _FIELDS if require_part else _FIELDS[:-1]
    missing = [k for k in wanted if not fields.get(k)]
    if missing:
        raise SnippetDataError(f"{where}: header lacks key {missing[0]!r} (expected {', '.join(wanted)})")
    if fields["label"] not in LABELS:
        raise SnippetDataError(f"{where}: key 'label': expected insecure or secure, got {fields['label']!r}")
    if require_part and fields["part"] != part_of(fields["id"]):
        raise SnippetDataError(f"{where}: key 'part': {fields['part']!r}, but the id's hash puts it in "
                               f"{part_of(fields['id'])!r} (the split is fixed; see snippets.py)")
    return fields


def read_snippets(folder: str | Path = SNIPPETS_DIR) -> list[Snippet]:
    """Every snippet of every *.txt file in folder, in file then line order; ids are unique."""
    folder = Path(folder)
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise SnippetDataError(f"{folder}: no snippet files (*.txt)")
    out: list[Snippet] = []
    seen: dict[str, str] = {}
    for path in files:
        header, start, body = None, 0, []
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno, line in enumerate([*lines, "# === end"], 1):
            m = _HEADER.match(line)
            if not m:
                if header is None and line.strip():
                    raise SnippetDataError(f"{path}:{lineno}: code before the first '# === ' header")
                body.append(line)
                continue
            if header is not None:
                where = f"{path}:{start}"
                if header["id"] in seen:
                    raise SnippetDataError(f"{where}: key 'id': {header['id']!r} already used at {seen[header['id']]}")
                seen[header["id"]] = where
                code = "\n".join(body).strip("\n") + "\n"
                out.append(Snippet(header["id"], LABELS[header["label"]], header["class"], header["style"],
                                   header["part"], code, where))
            if lineno > len(lines):
                break
            header, start, body = parse_header(m.group(1), f"{path}:{lineno}"), lineno, []
    return out
