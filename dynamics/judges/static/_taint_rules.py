"""The project rules that follow request input (see `_taint.py`) to where it does harm:
a response body (DYN101), a template (DYN102), a file path (DYN111), a redirect (DYN191) and the URL of an
outbound request (DYN192, server-side request forgery).

Through the module's own helpers, one call deep: each function is walked once per parameter with that
parameter tainted, which gives its summary (the file-path / redirect / outbound-request sinks a parameter
reaches inside it); a handler that passes request input to such a parameter is flagged at the call.
Functions whose result is request input (`def target(request): return request.GET["next"]`) are sources."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from dynamics.judges.static._resolve import Names, argument
from dynamics.judges.static._taint import Scope, Tracker, call_name, header_exprs

_RESPONSE_WRAPPERS = {"make_response", "Response", "HttpResponse", "HTMLResponse", "StreamingHttpResponse"}
_RESPONSE_KEYWORDS = ("content", "text", "body", "response")  # HTMLResponse(content=...), web.Response(text=...)
_HANDLER_WRITES = {"self.wfile.write", "self.response.write", "self.response.out.write", "self.write",
                   "self.finish"}
_TEMPLATE_SINKS = {"render_template_string", "Markup", "mark_safe", "SafeString", "Template", "from_string"}
# file-system calls -> the position of the path argument (and its keyword)
_PATH_SINKS = {"open": (0, "file"), "io.open": (0, "file"), "codecs.open": (0, "filename"),
               "send_file": (0, "path_or_file"), "os.remove": (0, "path"),
               "os.unlink": (0, "path"), "os.rmdir": (0, "path"), "os.rename": (0, "src"), "os.makedirs": (0, "name"),
               "os.listdir": (0, "path"), "shutil.copy": (0, "src"), "shutil.copyfile": (0, "src"),
               "shutil.move": (0, "src"), "shutil.rmtree": (0, "path"), "os.open": (0, "path"),
               "FileResponse": (0, "path"), "tarfile.open": (0, "name"), "shutil.unpack_archive": (1, "extract_dir"),
               "web.FileResponse": (0, "path")}
_PATH_SINK_NAMES = {"send_file", "FileResponse"}  # matched by their last name whatever the import
_PATH_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "rmdir", "mkdir",
                 "touch", "rename", "replace"}
# send_from_directory(dir, name) is not a sink: Flask joins with safe_join and refuses names that climb out
_PATH_GUARD_CALLS = {"realpath", "abspath", "resolve", "normpath", "commonpath"}
_PATH_GUARD_CHECKS = {"startswith", "is_relative_to", "commonpath"}
_REDIRECT_GUARDS = {"urlparse", "urlsplit", "is_safe_url", "url_has_allowed_host_and_scheme", "netloc", "hostname"}
_ALLOW_LIST = re.compile(r"allow|safe|trusted|whitelist|permitted|valid", re.IGNORECASE)
_MARKUP = re.compile(r"<[A-Za-z!/][^<>]*>|&lt;[A-Za-z/]")
_REDIRECTS = {"redirect", "HttpResponseRedirect", "HttpResponsePermanentRedirect", "RedirectResponse", "HTTPFound",
              "HTTPSeeOther", "HTTPMovedPermanently", "HTTPTemporaryRedirect", "HTTPPermanentRedirect"}
# outbound HTTP: module functions, and the methods of a client made by one of these constructors
_HTTP_MODULES = ("requests", "httpx", "urllib.request", "urllib3", "aiohttp", "pycurl", "http.client")
_HTTP_FUNCS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "urlopen", "Request", "stream",
               "fetch", "urlretrieve"}
_HTTP_CLIENTS = {"Session", "session", "Client", "AsyncClient", "ClientSession", "PoolManager", "AsyncHTTPClient",
                 "HTTPClient"}
_FIXED_HOST = re.compile(r"^[a-z][a-z0-9+.-]*://[^/{}?#]+[/?#]", re.IGNORECASE)
_HELPER_RULES = ("DYN111", "DYN191", "DYN192")
_SAME_SITE = {"request.url", "request.path", "request.full_path", "request.base_url", "request.url_root",
              "request.host_url", "request.get_full_path"}
_NOT_STRINGS = (ast.Dict, ast.List, ast.ListComp, ast.DictComp, ast.Set, ast.SetComp)


def taint_findings(tree: ast.Module, names: Names) -> list[tuple[str, ast.AST, str]]:
    """(rule id, node, message) for every taint rule that fires in the module."""
    guards: dict[int, tuple[bool, bool]] = {}
    called = {call_name(n.func).rsplit(".", 1)[-1] for n in ast.walk(tree) if isinstance(n, ast.Call)}
    helpers = [fn for fn in _functions(tree) if fn.name in called]  # only a function called here can be a helper
    sources = _source_functions(tree) if helpers else frozenset()
    summaries = _summaries(helpers, names, sources, guards)
    out: list[tuple[str, ast.AST, str]] = []

    def on_stmt(stmt: ast.stmt, tracker: Tracker, scope: Scope) -> None:
        path_guarded, redirect_guarded = _scope_guards(guards, scope.node)
        if isinstance(stmt, ast.Return) and stmt.value is not None and scope.is_handler:
            value = stmt.value.elts[0] if isinstance(stmt.value, ast.Tuple) and stmt.value.elts else stmt.value
            if "html" in tracker.taint_of(value, scope) and _stringish(value, tracker, scope):
                out.append(_xss(value, tracker, scope, "the handler returns"))
        for expr in header_exprs(stmt):
            for call in _calls(expr):
                out.extend(_call_sinks(call, names, tracker, scope, path_guarded, redirect_guarded))
                out.extend(_helper_calls(call, summaries, tracker, scope))

    Tracker(tree, on_stmt, sources).run()
    return out


def _scope_guards(guards: dict, node: ast.AST) -> tuple[bool, bool]:
    if id(node) not in guards:
        guards[id(node)] = _guards(node)
    return guards[id(node)]


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _source_functions(tree: ast.Module) -> frozenset[str]:
    """The module's functions that return request input (tainted with every kind)."""
    found: set[str] = set()

    def on_stmt(stmt: ast.stmt, tracker: Tracker, scope: Scope) -> None:
        if isinstance(stmt, ast.Return) and stmt.value is not None and isinstance(scope.node, ast.AST) \
                and hasattr(scope.node, "name") and tracker.taint_of(stmt.value, scope) >= {"path", "url"}:
            found.add(scope.node.name)

    Tracker(tree, on_stmt).run()
    return frozenset(found)


def _summaries(functions: list, names: Names, sources: frozenset[str], guards: dict) -> dict[str, dict]:
    """function name -> {parameter position or name: {rule id: sink text}} for the rules of `_HELPER_RULES`
    that a tainted parameter reaches inside the function (positions count without self / cls)."""
    out: dict[str, dict] = {}
    for fn in functions:
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
        if params and params[0] in ("self", "cls"):
            params = params[1:]
        if not params or len(params) > 8 or not any(isinstance(n, ast.Call) for n in ast.walk(fn)):
            continue
        summary: dict = {}
        for position, param in enumerate(params):
            hits: dict[str, str] = {}

            def on_stmt(stmt, tracker, scope, fn=fn, hits=hits):
                if scope.node is not fn:
                    return
                path_guarded, redirect_guarded = _scope_guards(guards, fn)
                for expr in header_exprs(stmt):
                    for call in _calls(expr):
                        for rule_id, _, text in _call_sinks(call, names, tracker, scope, path_guarded,
                                                            redirect_guarded):
                            if rule_id in _HELPER_RULES:
                                hits.setdefault(rule_id, text)

            Tracker(ast.Module(body=[fn], type_ignores=[]), on_stmt, sources, seed={id(fn): {param}}).run()
            if hits:
                summary[position] = summary[param] = hits
        if summary:
            out[fn.name] = summary
    return out


def _helper_calls(call: ast.Call, summaries: dict, tracker: Tracker, scope: Scope) \
        -> Iterator[tuple[str, ast.AST, str]]:
    """A call to one of the module's helpers that passes request input to a parameter reaching a sink."""
    name = call_name(call.func)
    summary = summaries.get(name.rsplit(".", 1)[-1])
    if not summary:  # (inside the helper itself its parameters are clean: no finding there)
        return
    given = [(i, a) for i, a in enumerate(call.args)] + [(k.arg, k.value) for k in call.keywords if k.arg]
    for key, arg in given:
        kinds = tracker.taint_of(arg, scope)
        for rule_id, text in summary.get(key, {}).items():
            needed = {"DYN111": "path", "DYN191": "url", "DYN192": "url"}[rule_id]
            if needed in kinds:
                yield rule_id, call, f"{name}() passes request input on to {text}"


def _call_sinks(call: ast.Call, names: Names, tracker: Tracker, scope: Scope, path_guarded: bool,
                redirect_guarded: bool) -> Iterator[tuple[str, ast.AST, str]]:
    written = call_name(call.func)
    q = names.qualified(call.func)
    last = q.rsplit(".", 1)[-1]
    first = argument(call, 0, "")
    if first is None and last in _RESPONSE_WRAPPERS:
        first = next((k.value for k in call.keywords if k.arg in _RESPONSE_KEYWORDS), None)
    if (last in _RESPONSE_WRAPPERS or written in _HANDLER_WRITES) and first is not None \
            and "html" in tracker.taint_of(first, scope) and _stringish(first, tracker, scope):
        yield _xss(first, tracker, scope, f"{written}() of")
    if last in ("jsonify", "dumps") and first is not None and "html" in tracker.taint_of(first, scope) \
            and _has_markup(first, tracker, scope):  # HTML from input, shipped for a page to insert
        yield "DYN101", call, f"{written}() of HTML built from request input, unescaped"
    if last in _TEMPLATE_SINKS and first is not None and "html" in tracker.taint_of(first, scope):
        yield "DYN102", call, f"{written}() of a template built from request input"
    if not path_guarded:
        sink = _PATH_SINKS.get(q) or (_PATH_SINKS.get(last) if last in _PATH_SINK_NAMES else None)
        path = argument(call, *sink) if sink else None
        if last == "save" and isinstance(call.func, ast.Attribute):  # FileStorage.save(dst), Image.save(fp)
            path = argument(call, 0, "dst")
        elif last in ("extract", "extractall") and isinstance(call.func, ast.Attribute):
            path = argument(call, 1 if last == "extract" else 0, "path")  # where the members are written
        elif last in _PATH_METHODS and isinstance(call.func, ast.Attribute) and _path_object(call.func.value):
            path = call.func.value  # Path(...).read_text(), file_path.unlink()
        if path is not None and "path" in tracker.taint_of(path, scope):
            yield "DYN111", call, f"{written}() of a path built from request input"
    redirects = last in _REDIRECTS or (written == "self.redirect" and scope.in_request_handler_class)
    if redirects and first is not None and not redirect_guarded and not _local_path(first) \
            and "url" in tracker.taint_of(first, scope):
        yield "DYN191", call, f"{written}() to a URL from the request"
    if last in _HTTP_FUNCS and not redirect_guarded and _outbound(call, q, names, tracker, scope):
        url = argument(call, 0, "url")
        if last == "request" and len(call.args) >= 2:  # requests.request(method, url)
            url = call.args[1]
        if url is not None and "url" in tracker.taint_of(url, scope) and not _fixed_host(url, tracker, scope):
            yield "DYN192", call, f"{written}() to a URL from the request"


def _outbound(call: ast.Call, q: str, names: Names, tracker: Tracker, scope: Scope) -> bool:
    """An outbound HTTP request: requests.get(...), urlopen(...), or a method of an HTTP client object."""
    if q.startswith(_HTTP_MODULES):
        return True
    if not isinstance(call.func, ast.Attribute):
        return False
    receiver = tracker.last_value(call.func.value, scope)
    if isinstance(receiver, ast.Call):
        made_by = names.qualified(receiver.func)
        return made_by.startswith(_HTTP_MODULES) and made_by.rsplit(".", 1)[-1] in _HTTP_CLIENTS
    return False


def _fixed_host(e: ast.expr, tracker: Tracker, scope: Scope) -> bool:
    """A URL whose scheme and host are written in the code (input only in its path or query)."""
    e = tracker.last_value(e, scope)
    while isinstance(e, ast.BinOp):
        e = e.left
    if isinstance(e, ast.JoinedStr) and e.values:
        e = e.values[0]
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr == "format":
        e = e.func.value
    return isinstance(e, ast.Constant) and isinstance(e.value, str) and bool(_FIXED_HOST.match(e.value))


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
    (realpath + startswith / commonpath) or rejects '..'; it parses a URL's host, or checks the URL against
    an allow-list (`url in ALLOWED`, `is_safe(url)`), before redirecting or fetching."""
    called, rejects_parent, redirect = set(), False, False
    for n in ast.walk(scope_node):
        if isinstance(n, ast.Call):  # (base / name).resolve() has no written name: its attribute
            last = n.func.attr if isinstance(n.func, ast.Attribute) else call_name(n.func).rsplit(".", 1)[-1]
            called.add(last)
            redirect |= last in _REDIRECT_GUARDS
            redirect |= bool(_ALLOW_LIST.search(last)) and last not in ("validate", "is_valid")
        elif isinstance(n, ast.Attribute):
            redirect |= n.attr in _REDIRECT_GUARDS
        elif isinstance(n, ast.Compare):
            rejects_parent |= isinstance(n.left, ast.Constant) and n.left.value in ("..", "../")
            # `url in ALLOWED_REDIRECTS`, `url not in ENDPOINTS`: checked against an allow-list (a constant)
            container = call_name(n.comparators[0]) or ""
            redirect |= isinstance(n.ops[0], (ast.In, ast.NotIn)) and \
                (bool(_ALLOW_LIST.search(container)) or (container.isupper() and len(container) > 1))
    path = bool(called & _PATH_GUARD_CALLS and called & _PATH_GUARD_CHECKS) or rejects_parent
    return path, redirect
