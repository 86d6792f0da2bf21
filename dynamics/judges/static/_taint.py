"""A small taint tracker over one parsed module: which values come from a web request, unsanitised.

Read-only over the `ast` tree: nothing is imported, compiled or run. One scope at a time (the module body,
then every function), statements in source order; a name's taint is that of its latest assignment, and
the two arms of an `if` / `try` are merged (tainted if either arm leaves it tainted). Calls to unknown
functions pass the taint of their arguments through (`db.get(name)` stays tainted), so a sanitiser must be
named to clear it.

A taint is the set of flaw kinds a value can still cause:
- "html": reaching a response body (cross-site scripting); cleared by escape / bleach.clean / Markup.escape
- "path": reaching a file-system path (path traversal); cleared by secure_filename / basename
- "url": reaching a redirect; cleared by url_for
Type conversions (int, float, len, ...), hashing and JSON responses clear every kind.

Sources: attributes of `request` (Flask, Django, aiohttp: `request.args`, `request.form`, `request.GET`,
`request.match_info`, `await request.post()`, ...), the string parameters of a route (Flask `/docs/<name>`;
`<int:id>` is not a string; FastAPI `/files/{name}` and parameters annotated `str`), `self.path` /
`self.headers` / `self.rfile` of an `http.server` request handler, Tornado's `self.get_argument(...)`, calls
to the module's own functions that return request input (`source_functions`), and, for the "path" kind
only, the member names of an archive (`zf.namelist()`, `tar.getmembers()`: zip slip).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

KINDS = frozenset({"html", "path", "url"})
Taint = frozenset  # of KINDS; empty = clean
CLEAN: frozenset[str] = frozenset()

# `request.<attr>` that is not user input
_REQUEST_NOT_INPUT = frozenset({"method", "endpoint", "blueprint", "url_rule", "is_json", "is_secure", "user",
                                "session", "remote_addr", "scheme", "mimetype", "content_length"})
_CONTAINER_ADDS = frozenset({"append", "extend", "add", "update", "insert", "appendleft", "setdefault"})
_LOOKUPS = frozenset({"get", "pop", "getlist"})
_HANDLER_INPUT = frozenset({"path", "headers", "rfile", "requestline"})
_ROUTE_DECORATORS = frozenset({"route", "get", "post", "put", "patch", "delete", "api_route"})
_ROUTE_PARAM = re.compile(r"<(?:(string|path|any\([^)]*\)|[a-z_]+):)?([A-Za-z_]\w*)>")
_NON_STRING_CONVERTERS = frozenset({"int", "float", "uuid"})
_FASTAPI_PARAM = re.compile(r"\{([A-Za-z_]\w*)(?::[a-z]+)?\}")
_STRING_ANNOTATIONS = frozenset({"str", "Optional[str]", "HttpUrl", "AnyUrl", "AnyHttpUrl", "Path"})
_TORNADO_INPUT = frozenset({"get_argument", "get_arguments", "get_query_argument", "get_query_arguments",
                            "get_body_argument", "get_body_arguments", "get_cookie", "decode_argument"})
_ARCHIVE_MEMBERS = frozenset({"namelist", "infolist", "getmembers", "getnames"})
PATH_ONLY: frozenset[str] = frozenset({"path"})

# final name of a called function -> the kinds it clears
_CLEARS_ALL = {"int", "float", "bool", "len", "abs", "round", "hash", "ord", "id", "isinstance", "hasattr",
               "jsonify", "dumps_json", "hexdigest", "digest", "uuid4", "UUID", "Decimal", "date", "datetime",
               "strptime", "fromisoformat", "redirect_safe", "url_for", "render_template", "abort", "isdigit",
               "isalnum", "isalpha", "startswith", "endswith", "exists", "isfile", "isdir", "count", "index",
               "find", "compare_digest", "check_password_hash", "generate_password_hash", "hashpw", "checkpw",
               "verify", "match", "fullmatch", "search"}
_CLEARS_HTML = {"escape", "clean", "linkify", "html_escape", "escape_html", "quoteattr", "sanitize",
                "sanitise", "sanitize_html", "sanitise_html", "strip_tags", "conditional_escape", "format_html",
                "quote", "quote_plus", "urlencode", "Markup.escape",
                # rendered templates escape (autoescape off is DYN103's); redirects have no body to inject into
                "render", "render_template_string", "render_to_string", "redirect", "HttpResponseRedirect"}
_CLEARS_PATH = {"secure_filename", "basename", "get_valid_filename", "safe_join", "uuid4", "quote", "quote_plus"}


def call_name(node: ast.expr) -> str:
    """The dotted name a call target is written with ('os.path.join', 'escape', 'x.save'); '' if none."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):  # request.files.get('f').filename -> '().filename' keeps the tail
        parts.append("()")
    else:
        return ""
    return ".".join(reversed(parts))


def _cleared_by(name: str) -> frozenset[str]:
    last = name.rsplit(".", 1)[-1]
    if last in _CLEARS_ALL:
        return KINDS
    cleared = set()
    low = last.lower()
    if last in _CLEARS_HTML or name in _CLEARS_HTML or "escape" in low or "saniti" in low or low.startswith("clean"):
        cleared.add("html")
    if last in _CLEARS_PATH:
        cleared.add("path")
    return frozenset(cleared)


@dataclass
class Scope:
    """One function (or the module body) being walked: taints and the last value assigned to each name."""

    node: ast.AST
    taint: dict[str, frozenset[str]] = field(default_factory=dict)
    values: dict[str, ast.expr] = field(default_factory=dict)
    is_handler: bool = False  # a web handler: a route, a Django view, or code that reads `request`
    in_request_handler_class: bool = False


SinkHook = Callable[[ast.AST, "Tracker", Scope], None]


class Tracker:
    """Walks every scope of a module in order and calls `on_stmt(stmt, tracker, scope)` on each simple
    statement and each compound statement's header, with the taints as they stand there."""

    def __init__(self, tree: ast.Module, on_stmt: SinkHook, source_functions: frozenset[str] = frozenset(),
                 seed: dict[int, set[str]] | None = None):
        """`source_functions`: names of the module's functions whose result is request input; `seed`:
        id(function node) -> parameters to treat as tainted (to learn what a helper does with its input)."""
        self.tree = tree
        self.on_stmt = on_stmt
        self.source_functions = source_functions
        self.seed = seed or {}
        self.handler_classes = {c for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and _is_handler_class(c)}
        self._loops = 0  # enclosing for-loops of the statement being walked

    def run(self) -> None:
        self._block(self.tree.body, Scope(self.tree, is_handler=_reads_request(self.tree.body)))

    # --- statements -------------------------------------------------------------------------------
    def _block(self, body: list[ast.stmt], scope: Scope) -> None:
        for stmt in body:
            self._stmt(stmt, scope)

    def _stmt(self, s: ast.stmt, scope: Scope) -> None:
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._function(s, scope)
            return
        if isinstance(s, ast.ClassDef):
            for item in s.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._function(item, scope, in_class=s)
                else:
                    self._stmt(item, scope)
            return
        self.on_stmt(s, self, scope)
        if isinstance(s, ast.Assign):
            t = self.taint_of(s.value, scope)
            for target in s.targets:
                self._bind(target, t, s.value, scope)
        elif isinstance(s, ast.AnnAssign) and s.value is not None:
            self._bind(s.target, self.taint_of(s.value, scope), s.value, scope)
        elif isinstance(s, ast.AugAssign) and isinstance(s.target, ast.Name):
            name = s.target.id
            scope.taint[name] = scope.taint.get(name, CLEAN) | self.taint_of(s.value, scope)
            scope.values[name] = _joined(scope.values.get(name), s.value)
        elif isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Attribute) \
                and s.value.func.attr in _CONTAINER_ADDS and isinstance(s.value.func.value, ast.Name):
            name = s.value.func.value.id  # items.append(input) taints items
            scope.taint[name] = scope.taint.get(name, CLEAN) | self.taint_of(s.value, scope)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self._bind(s.target, self.taint_of(s.iter, scope), None, scope)
            # twice, so a taint set late in the body reaches its start; once when deeply nested (2^depth)
            self._loops += 1
            self._branches(scope, s.body + s.body if self._loops <= 3 else s.body, s.orelse)
            self._loops -= 1
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                if item.optional_vars is not None:  # the value: what the name was opened from (a client, a file)
                    self._bind(item.optional_vars, self.taint_of(item.context_expr, scope), item.context_expr, scope)
            self._block(s.body, scope)
        elif isinstance(s, (ast.If, ast.While)):
            self._branches(scope, s.body, s.orelse)
        elif isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            self._branches(scope, s.body + s.orelse, *[h.body for h in s.handlers])
            self._block(s.finalbody, scope)
        elif isinstance(s, ast.Match):
            self._branches(scope, *[c.body for c in s.cases])

    def _branches(self, scope: Scope, *bodies: list[ast.stmt]) -> None:
        """Each body from the same start; afterwards a name is tainted if any body (or none) left it so."""
        start_t, start_v = dict(scope.taint), dict(scope.values)
        ends = []
        for body in bodies:
            scope.taint, scope.values = dict(start_t), dict(start_v)
            self._block(body, scope)
            ends.append((scope.taint, scope.values))
        merged_t, merged_v = {}, dict(start_v)  # an empty else is an end too: it keeps the start
        for t, v in ends:
            for name, kinds in t.items():
                merged_t[name] = merged_t.get(name, CLEAN) | kinds
            merged_v.update(v)
        scope.taint, scope.values = merged_t, merged_v

    def _function(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, outer: Scope, in_class=None) -> None:
        inner = Scope(fn, dict(outer.taint), dict(outer.values))
        route_params = _route_string_params(fn)
        inner.in_request_handler_class = in_class in self.handler_classes
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
        django_view = bool(params) and params[0] == "request"
        inner.is_handler = route_params is not None or django_view or inner.in_request_handler_class or \
            _reads_request(fn.body)
        seeded = self.seed.get(id(fn), ())
        for name in params:
            inner.taint[name] = KINDS if (route_params and name in route_params) or name in seeded else CLEAN
            inner.values.pop(name, None)
        self._block(fn.body, inner)

    def _bind(self, target: ast.expr, t: frozenset[str], value: ast.expr | None, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            scope.taint[target.id] = t
            if value is not None:  # x = x.replace(...) keeps what x was built from
                mentions_self = any(isinstance(n, ast.Name) and n.id == target.id for n in ast.walk(value))
                scope.values[target.id] = _joined(scope.values.get(target.id), value) if mentions_self else value
            else:
                scope.values.pop(target.id, None)
        elif isinstance(target, (ast.Tuple, ast.List)):
            elts = value.elts if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) \
                else [None] * len(target.elts)
            for sub, v in zip(target.elts, elts):
                self._bind(sub, self.taint_of(v, scope) if v is not None else t, v, scope)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, t, None, scope)
        # attribute / subscript targets (obj.x = ..., d[k] = ...) taint the object: d[k] = input -> d tainted
        elif isinstance(target, (ast.Attribute, ast.Subscript)) and isinstance(target.value, ast.Name) and t:
            scope.taint[target.value.id] = scope.taint.get(target.value.id, CLEAN) | t

    # --- expressions ------------------------------------------------------------------------------
    def taint_of(self, e: ast.expr | None, scope: Scope) -> frozenset[str]:
        if e is None or isinstance(e, ast.Constant):
            return CLEAN
        if isinstance(e, ast.Name):
            return scope.taint.get(e.id, CLEAN)
        if self.is_source(e, scope):
            return KINDS
        if isinstance(e, (ast.Attribute, ast.Subscript)):
            return self.taint_of(e.value, scope)
        if isinstance(e, ast.Call):
            return self._call_taint(e, scope)
        if isinstance(e, (ast.Compare, ast.UnaryOp)) and not isinstance(getattr(e, "op", None), ast.USub):
            return CLEAN  # booleans
        if isinstance(e, ast.IfExp):
            return self.taint_of(e.body, scope) | self.taint_of(e.orelse, scope)
        if isinstance(e, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            return self._comprehension_taint(e, scope)
        if isinstance(e, ast.Lambda):
            return CLEAN
        out = CLEAN
        for child in ast.iter_child_nodes(e):
            if isinstance(child, ast.expr):
                out |= self.taint_of(child, scope)
        return out

    def _call_taint(self, e: ast.Call, scope: Scope) -> frozenset[str]:
        name = call_name(e.func)
        passed = CLEAN
        if isinstance(e.func, ast.Attribute):
            passed |= self.taint_of(e.func.value, scope)  # name.strip(), "{}".format(x) via its args
            if e.func.attr in _LOOKUPS:  # a trusted mapping looked up with input: its values are trusted
                return passed
        for a in e.args:
            passed |= self.taint_of(a, scope)
        for k in e.keywords:
            passed |= self.taint_of(k.value, scope)
        if self.is_source(e.func, scope):  # request.get_json(), await request.post(), request.json()
            passed |= KINDS
        last = name.rsplit(".", 1)[-1]
        if last in _TORNADO_INPUT and name.startswith("self.") and scope.in_request_handler_class:
            passed |= KINDS
        elif last in self.source_functions and not name.startswith(("request.", "self.request.")):
            passed |= KINDS
        elif last in _ARCHIVE_MEMBERS and isinstance(e.func, ast.Attribute):
            passed |= PATH_ONLY  # an archive's member names: where extracting them writes
        return passed - _cleared_by(name) if passed else CLEAN

    def _comprehension_taint(self, e, scope: Scope) -> frozenset[str]:
        inner = Scope(scope.node, dict(scope.taint), dict(scope.values))
        for gen in e.generators:
            self._bind(gen.target, self.taint_of(gen.iter, inner), None, inner)
        if isinstance(e, ast.DictComp):
            return self.taint_of(e.key, inner) | self.taint_of(e.value, inner)
        return self.taint_of(e.elt, inner)

    def is_source(self, e: ast.expr, scope: Scope) -> bool:
        """`request.<input>` (at any depth of attribute / subscript / call below it), or a handler's self.path."""
        if not isinstance(e, ast.Attribute):
            return False
        if isinstance(e.value, ast.Name):
            if e.value.id == "request":
                return e.attr not in _REQUEST_NOT_INPUT
            if e.value.id == "self" and scope.in_request_handler_class:
                return e.attr in _HANDLER_INPUT
        if isinstance(e.value, ast.Attribute) and call_name(e.value) in ("self.request", "flask.request"):
            return e.attr not in _REQUEST_NOT_INPUT
        return False

    def last_value(self, e: ast.expr, scope: Scope) -> ast.expr:
        """Follow a name to the expression last assigned to it (one level deep per call, cycles stop)."""
        seen = set()
        while isinstance(e, ast.Name) and e.id in scope.values and e.id not in seen:
            seen.add(e.id)
            e = scope.values[e.id]
        return e


def _joined(before: ast.expr | None, after: ast.expr) -> ast.expr:
    """What a name holds after `x += after` or `x = f(x)`: both parts, for the markup and shape checks."""
    return after if before is None else ast.BinOp(left=before, op=ast.Add(), right=after)


def _is_handler_class(c: ast.ClassDef) -> bool:
    return any(call_name(b).endswith("RequestHandler") or call_name(b).endswith("HTTPRequestHandler")
               for b in c.bases)


def _route_string_params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str] | None:
    """The parameters a route decorator fills from the URL as strings; None when fn is not a route."""
    found = None
    for d in fn.decorator_list:
        if not isinstance(d, ast.Call) or call_name(d.func).rsplit(".", 1)[-1] not in _ROUTE_DECORATORS:
            continue
        if not (d.args and isinstance(d.args[0], ast.Constant) and isinstance(d.args[0].value, str)):
            continue
        found = found or set()
        for converter, name in _ROUTE_PARAM.findall(d.args[0].value):
            if converter not in _NON_STRING_CONVERTERS:
                found.add(name)
        braced = set(_FASTAPI_PARAM.findall(d.args[0].value))
        for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs:  # FastAPI: path and query parameters
            annotation = ast.unparse(a.annotation) if a.annotation is not None else ""
            if annotation.replace(" | None", "").replace("typing.", "") in _STRING_ANNOTATIONS \
                    or (a.arg in braced and not annotation):
                found.add(a.arg)
    return found


def _reads_request(body: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Attribute) and call_name(n.value) in ("request", "flask.request")
               for s in body for n in ast.walk(s))


def header_exprs(s: ast.stmt) -> Iterator[ast.expr]:
    """The expressions a statement evaluates itself (not those of the statements nested in its body)."""
    if isinstance(s, (ast.If, ast.While)):
        yield s.test
    elif isinstance(s, (ast.For, ast.AsyncFor)):
        yield s.iter
    elif isinstance(s, (ast.With, ast.AsyncWith)):
        yield from (i.context_expr for i in s.items)
    elif isinstance(s, ast.Match):
        yield s.subject
    elif isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
        return
    else:
        for child in ast.iter_child_nodes(s):
            if isinstance(child, ast.expr):
                yield child
