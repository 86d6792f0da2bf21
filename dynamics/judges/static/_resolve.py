"""What names in a module stand for, read off its syntax tree: import aliases and constant values."""

from __future__ import annotations

import ast
import stat

from dynamics.judges.static._taint import call_name

_STAT = {name: getattr(stat, name) for name in dir(stat)
         if name.startswith("S_I") and isinstance(getattr(stat, name), int)}


class Names:
    """Import aliases (`import cPickle as pickle` -> pickle = cPickle) and module-level constants."""

    def __init__(self, tree: ast.Module):
        self.aliases: dict[str, str] = {}
        self.constants: dict[str, object] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        self.class_constants: dict[str, object] = {}  # NAME = <constant> in a class body (read as self.NAME)
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for stmt in cls.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
                        and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                    self.class_constants[stmt.targets[0].id] = stmt.value.value
        for stmt in tree.body:  # module-level NAME = <constant>, in order
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                value = self.constant(stmt.value)
                if value is not None:
                    self.constants[stmt.targets[0].id] = value

    def qualified(self, func: ast.expr) -> str:
        """The dotted name of a call target with its first part resolved through the imports."""
        name = call_name(func)
        head, _, rest = name.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def constant(self, e: ast.expr | None, local: dict[str, object] | None = None) -> object | None:
        """The value of a constant expression (literals, known names, stat.S_*, | & + of those); else None."""
        if e is None:
            return None
        if isinstance(e, ast.Constant) and isinstance(e.value, (int, str)) and not isinstance(e.value, bool):
            return e.value
        if isinstance(e, ast.Name):
            if local and e.id in local:
                return local[e.id]
            return self.constants.get(e.id, _STAT.get(e.id) if self.aliases.get(e.id, "").startswith("stat.")
                                      else None)
        if isinstance(e, ast.Attribute) and call_name(e).startswith("stat.") and e.attr in _STAT:
            return _STAT[e.attr]
        if isinstance(e, ast.BinOp) and isinstance(e.op, (ast.BitOr, ast.BitAnd, ast.Add)):
            left, right = self.constant(e.left, local), self.constant(e.right, local)
            if isinstance(left, int) and isinstance(right, int):
                if isinstance(e.op, ast.BitOr):
                    return left | right
                return left & right if isinstance(e.op, ast.BitAnd) else left + right
            if isinstance(left, str) and isinstance(right, str) and isinstance(e.op, ast.Add):
                return left + right
        return None


def local_constants(fn: ast.AST, names: Names) -> dict[str, object]:
    """NAME = <constant> assignments directly in a function body (the last one wins)."""
    out: dict[str, object] = {}
    for stmt in getattr(fn, "body", []):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value = names.constant(stmt.value, out)
            if value is not None:
                out[stmt.targets[0].id] = value
    return out


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    """A call's argument given by position or by keyword."""
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
        return call.args[position]
    return keyword(call, name)
