"""The project rules that follow request input (see `_taint.py`) to where it does harm:
a response body (DYN101), a template (DYN102), a file path (DYN111) and a redirect (DYN191)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from dynamics.judges.static._resolve import Names, argument
from dynamics.judges.static._taint import Scope, Tracker, call_name, header_exprs

_RESPONSE_WRAPPERS = {"make_response", "Response", "HttpResponse", "HTMLResponse", "StreamingHttpResponse"}
_HANDLER_WRITES = {"self.wfile.write", "self.response.write", "self.response.out.write", "self.write"}
_TEMPLATE_SINKS = {"render_template_string", "Markup", "mark_safe", "SafeString", "Template", "from_string"}
# file-system calls -> the position of the path argument (and its keyword)
_PATH_SINKS = {"open": (0, "file"), "io.open": (0, "file"), "codecs.open": (0, "filename"),
               "send_file": (0, "path_or_file"), "os.remove": (0, "path"),
               "os.unlink": (0, "path"), "os.rmdir": (0, "path"), "os.rename": (0, "src"), "os.makedirs": (0, "name"),
               "os.listdir": (0, "path"), "shutil.copy": (0, "src"), "shutil.copyfile": (0, "src"),
               "shutil.move": (0, "src"), "shutil.rmtree": (0, "path"), "os.open": (0, "path"),
               "FileResponse": (0, "filename"), "tarfile.open": (0, "name")}
_PATH_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "rmdir", "mkdir",
                 "touch", "rename", "replace"}
# send_from_directory(dir, name) is not a sink: Flask joins with safe_join and refuses names that climb out
_PATH_GUARD_CALLS = {"realpath", "abspath", "resolve", "normpath", "commonpath"}
_PATH_GUARD_CHECKS = {"startswith", "is_relative_to", "commonpath"}
_REDIRECT_GUARDS = {"urlparse", "urlsplit", "is_safe_url", "url_has_allowed_host_and_scheme", "netloc", "hostname"}
_MARKUP = re.compile(r"<[A-Za-z!/][^<>]*>|&lt;[A-Za-z/]")
_REDIRECTS = {"redirect", "HttpResponseRedirect", "RedirectResponse"}
_SAME_SITE = {"request.url", "request.path", "request.full_path", "request.base_url", "request.url_root",
              "request.host_url", "request.get_full_path"}
_NOT_STRINGS = (ast.Dict, ast.List, ast.ListComp, ast.DictComp, ast.Set, ast.SetComp)


def taint_findings(tree: ast.Module, names: Names) -> list[tuple[str, ast.AST, str]]:
    """(rule id, node, message) for every taint rule that fires in the module."""
    out: list[tuple[str, ast.AST, str]] = []
    guards: dict[int, tuple[bool, bool]] = {}

    def on_stmt(stmt: ast.stmt, tracker: Tracker, scope: Scope) -> None:
        if id(scope.node) not in guards:
            guards[id(scope.node)] = _guards(scope.node)
        path_guarded, redirect_guarded = guards[id(scope.node)]
        if isinstance(stmt, ast.Return) and stmt.value is not None and scope.is_handler:
            value = stmt.value.elts[0] if isinstance(stmt.value, ast.Tuple) and stmt.value.elts else stmt.value
            if "html" in tracker.taint_of(value, scope) and _stringish(value, tracker, scope):
                out.append(_xss(value, tracker, scope, "the handler returns"))
        for expr in header_exprs(stmt):
            for call in _calls(expr):
                out.extend(_call_sinks(call, names, tracker, scope, path_guarded, redirect_guarded))

    Tracker(tree, on_stmt).run()
    return out


def _call_sinks(call: ast.Call, names: Names, tracker: Tracker, scope: Scope, path_guarded: bool,
                redirect_guarded: bool) -> Iterator[tuple[str, ast.AST, str]]:
    written = call_name(call.func)
    q = names.qualified(call.func)
    last = q.rsplit(".", 1)[-1]
    first = argument(call, 0, "")
    if (last in _RESPONSE_WRAPPERS or written in _HANDLER_WRITES) and first is not None \
            and "html" in tracker.taint_of(first, scope) and _stringish(first, tracker, scope):
        yield _xss(first, tracker, scope, f"{written}() of")
    if last in ("jsonify", "dumps") and first is not None and "html" in tracker.taint_of(first, scope) \
            and _has_markup(first, tracker, scope):  # HTML from input, shipped for a page to insert
        yield "DYN101", call, f"{written}() of HTML built from request input, unescaped"
    if last in _TEMPLATE_SINKS and first is not None and "html" in tracker.taint_of(first, scope):
        yield "DYN102", call, f"{written}() of a template built from request input"
    if not path_guarded:
        sink = _PATH_SINKS.get(q) or (_PATH_SINKS.get(last) if last == "send_file" else None)
        path = argument(call, *sink) if sink else None
        if last == "save" and isinstance(call.func, ast.Attribute):  # FileStorage.save(dst), Image.save(fp)
            path = argument(call, 0, "dst")
        elif last in _PATH_METHODS and isinstance(call.func, ast.Attribute) and _path_object(call.func.value):
            path = call.func.value  # Path(...).read_text(), file_path.unlink()
        if path is not None and "path" in tracker.taint_of(path, scope):
            yield "DYN111", call, f"{written}() of a path built from request input"
    if last in _REDIRECTS and first is not None and not redirect_guarded and not _local_path(first) \
            and "url" in tracker.taint_of(first, scope):
        yield "DYN191", call, f"{written}() to a URL from the request"


def _local_path(e: ast.expr) -> bool:
    """A redirect that stays on this site: the current URL, or text starting with one '/'."""
    if call_name(e.func if isinstance(e, ast.Call) else e) in _SAME_SITE:
        return True
    while isinstance(e, ast.BinOp):
        e = e.left
    if isinstance(e, ast.JoinedStr) and e.values:
        e = e.values[0]
    return isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value.startswith("/") \
        and not e.value.startswith("//")


def _path_object(e: ast.expr) -> bool:
    if isinstance(e, ast.Call):
        return call_name(e.func).rsplit(".", 1)[-1] in ("Path", "PurePath", "joinpath")
    written = call_name(e)
    return "path" in written.lower() and written.split(".")[0] not in ("os", "shutil", "tarfile", "zipfile")


def _calls(expr: ast.expr) -> Iterator[ast.Call]:
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _xss(e: ast.expr, tracker: Tracker, scope: Scope, what: str) -> tuple[str, ast.AST, str]:
    """DYN101 where the text carries HTML markup of its own, DYN105 where it is bare input."""
    if _has_markup(e, tracker, scope):
        return "DYN101", e, f"{what} HTML built from request input, unescaped"
    return "DYN105", e, f"{what} request input as text, unescaped"


def _has_markup(e: ast.expr, tracker: Tracker, scope: Scope, depth: int = 0) -> bool:
    for node in ast.walk(e):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _MARKUP.search(node.value):
            return True
        if isinstance(node, ast.Name) and depth < 4 and node.id in scope.values and scope.values[node.id] is not e:
            if _has_markup(scope.values[node.id], tracker, scope, depth + 1):
                return True
    return False


def _stringish(e: ast.expr, tracker: Tracker, scope: Scope) -> bool:
    """Not a dict or list (Flask sends those as JSON) nor parsed JSON."""
    value = tracker.last_value(e, scope)
    if isinstance(value, _NOT_STRINGS):
        return False
    if isinstance(value, ast.Call):
        name = call_name(value.func)
        return not (name.endswith(("get_json", ".json", ".to_dict")) or name in ("dict", "list"))
    return not (isinstance(value, ast.Attribute) and call_name(value) == "request.json")


def _guards(scope_node: ast.AST) -> tuple[bool, bool]:
    """(path guarded, redirect guarded): the scope canonicalises a path and checks where it points
    (realpath + startswith / commonpath) or rejects '..'; it parses a URL's host before redirecting."""
    called, rejects_parent, redirect = set(), False, False
    for n in ast.walk(scope_node):
        if isinstance(n, ast.Call):
            last = call_name(n.func).rsplit(".", 1)[-1]
            called.add(last)
            redirect |= last in _REDIRECT_GUARDS
        elif isinstance(n, ast.Attribute):
            redirect |= n.attr in _REDIRECT_GUARDS
        elif isinstance(n, ast.Compare):
            rejects_parent |= isinstance(n.left, ast.Constant) and n.left.value in ("..", "../")
    path = bool(called & _PATH_GUARD_CALLS and called & _PATH_GUARD_CHECKS) or rejects_parent
    return path, redirect
