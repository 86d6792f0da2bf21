"""The package imports downward only: no module of `dynamics/` reaches itself through its imports.

Every import counts, the ones inside functions too (a cycle that works only because one side imports
lazily is still a cycle of ideas). `from package import name` counts as importing `package.name` when
that is a module, else `package`.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dynamics"


def module_names() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_the_package():
    modules = module_names()
    graph = {name: imports_of(path, name, modules) for name, path in modules.items()}
    assert sum(map(len, graph.values())) > 50, "the walk found too few imports to mean anything"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_judge_contract_imports_without_bandit_or_httpx():
    import subprocess
    import sys

    code = ("import sys; import dynamics.judges, dynamics.judges.base, dynamics.evals.misalignment; "
            "print(sorted(m for m in ('bandit', 'httpx') if m in sys.modules)); "
            "from dynamics.judges import ApiJudge, StaticCodeJudge; "
            "print(sorted(m for m in ('bandit', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    contract, judges = out.stdout.split("\n")[:2]
    assert contract == "[]"  # the contract and a family: neither Bandit nor httpx
    assert "httpx" in judges  # the API judge needs httpx on import; Bandit loads when code is first analysed
