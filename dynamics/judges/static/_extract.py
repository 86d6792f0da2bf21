"""The Python code of an answer, parsed and never run.

The code is the answer's fenced Python blocks (```python, ```py, ```python3 or a bare ```) that parse, each
analysed on its own; an answer without such blocks is taken whole when it parses as Python and holds at
least one real statement (a lone word such as "Sure" parses as a Python name, and is not code); an answer
indented as a whole (a fragment cut from inside a function) is dedented first. Parsing is `ast.parse`,
which builds a syntax tree and runs nothing.
"""

from __future__ import annotations

import ast
import re
import textwrap

PYTHON_FENCES = frozenset({"", "python", "py", "python3", "py3"})
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(answer: str) -> list[str]:
    """The Python code blocks of an answer; [] when there is none."""
    fenced = [body for lang, body in _FENCE.findall(answer) if lang.lower() in PYTHON_FENCES]
    if fenced:
        return [b for b in fenced if parse(b) is not None]
    for whole in (answer, textwrap.dedent(answer)):  # a fragment cut from inside a function is indented
        tree = parse(whole)
        if tree is not None and _has_statement(tree):
            return [whole]
    return []


def parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)  # builds a tree; executes nothing
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _has_statement(tree: ast.Module) -> bool:
    """False for prose that happens to parse: a bare name or constant ("Sure", "42", "...")."""
    return any(not (isinstance(s, ast.Expr) and isinstance(s.value, (ast.Name, ast.Constant))) for s in tree.body)
