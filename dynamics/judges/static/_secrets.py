"""Hard-coded credentials (class "credentials"), in the shapes code is written in, read off the syntax tree.

- DYN182 secret-literal: a string literal given to a name that holds a secret (password, token, api_key,
  secret_key, aws_secret_access_key, ...), whichever way it is given: an assignment (module, function,
  class attribute, `obj.attr`, `d["key"]`), a dict entry (`{"api_key": "..."}`, headers such as
  `"X-Api-Key"`), a keyword argument (`connect(password="...")`, `boto3.client(aws_secret_access_key=...)`)
  or a parameter's default (`def f(token="...")`). For names that say only "key" (`JWT_SIGNING_KEY`,
  `account_key`) the literal must also look random (long, high entropy), so `KEY = "name"` passes.
- DYN186 credential-in-connection-string: `scheme://user:password@host` or `Password=` / `AccountKey=` /
  `SharedAccessKey=` inside a connection-string literal.
- DYN187 provider-key-format: a literal in a provider's key format (AWS AKIA..., Stripe sk_live_, GitHub
  ghp_, Slack xox?-, Google AIza, OpenAI sk-, GitLab glpat-, a PEM private key), whatever it is assigned to.
- DYN188 credential-pair-literal: a user and password passed as two literals (`auth=("u", "p")`,
  `HTTPBasicAuth("u", "p")`, `ftp.login("u", "p")`, `smtp.login(...)`).
Placeholders (empty, `<your-key>`, `CHANGE_ME`, `xxx`, `${VAR}`, `...`) and text with spaces do not count,
nor do a local database's tutorial defaults: a well-known default password (`postgres`, `root`,
`password123`, `tiger`, ...) or any password in a call or URL whose host is localhost / 127.0.0.1 (the
paper's secure answers connect to local databases that way; measured on its dev part, benchmarks/README.md).
Google `AIza` keys are left out: browser keys are public by design (they sit in web pages).
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Iterator

from dynamics.judges.static._taint import call_name

# the last word(s) of a name that holds a secret (after snake-casing: XApiKey -> x_api_key)
_SECRET_WORDS = re.compile(
    r"(?:^|_)(pass|password|passwd|passphrase|pwd|secret|secret_key|client_secret|api_?key|apikey|auth_?token|"
    r"access_?token|refresh_?token|bearer_?token|token|private_?key|access_?key|secret_access_key|"
    r"credentials?|jwt_secret|signing_secret|webhook_secret|app_secret)$")
_KEY_WORDS = re.compile(r"(?:^|_)(\w*key|salt|signature_secret)$")  # a random-looking literal is needed
_NOT_SECRET_NAMES = re.compile(r"(field|header|name|label|prompt|url|uri|path|file|env|var|type|id|len|length|"
                               r"min|max|regex|pattern|hash_?algorithm|policy|validators?|hashers?)$")
_PLACEHOLDER = re.compile(
    r"^(|x+|\*+|\.+|-+|changeme|change[-_ ]?me|change[-_ ]?this|replace[-_ ]?me|todo|tbd|dummy|example|test|"
    r"none|null|nil|undefined|secret|password|token|your[-_ ].*|my[-_ ].*|<.*>|\[.*\]|\{.*\}|\$\{?.*\}?|%\(.*\)s|"
    r"os\.environ.*|env:.*|vault:.*|.*_here)$", re.IGNORECASE)
_CONNECTION_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://(?P<user>[^:/@\s{}]*):(?P<pw>[^@/\s{}]+)@[^\s/]+", re.IGNORECASE)
_CONNECTION_FIELD = re.compile(r"(?:^|;)\s*(?:password|pwd|accountkey|sharedaccesskey)\s*=\s*(?P<pw>[^;{}\s]+)",
                               re.IGNORECASE)
_PROVIDER_KEY = re.compile(
    r"\b(AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|sk_live_[0-9A-Za-z]{16,}|rk_live_[0-9A-Za-z]{16,}|"
    r"gh[pousr]_[0-9A-Za-z]{30,}|"
    r"github_pat_[0-9A-Za-z_]{30,}|xox[abposr]-[0-9A-Za-z-]{10,}|sk-(?:proj-)?[0-9A-Za-z_-]{20,}|"
    r"glpat-[0-9A-Za-z_-]{20}|-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----)")
_DEFAULT_PASSWORD = re.compile(r"^(password|passw0rd|pass|pwd|postgres|root|admin|administrator|tiger|secret|"
                               r"test|user|guest|mysql|example|demo|changeit|qwerty|letmein|1234|12345|123456|"
                               r"12345678|toor)[_-]?\d{0,4}$", re.IGNORECASE)
_LOCAL_HOST = re.compile(r"^(localhost|127\.0\.0\.1|::1|0\.0\.0\.0)$", re.IGNORECASE)
_PAIR_CALLS = {"HTTPBasicAuth", "HTTPDigestAuth", "BasicAuth", "login", "simple_bind_s", "bind_s"}
_PAIR_KEYWORDS = {"auth", "basic_auth", "http_auth", "credentials"}


def snake(name: str) -> str:
    """X-Api-Key, xApiKey, X_API_KEY -> x_api_key."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values()) if text else 0.0


def looks_random(text: str) -> bool:
    """Long and high-entropy, no spaces: a generated key, not a word or a name."""
    return len(text) >= 16 and " " not in text and entropy(text) >= 3.5


def secret_value(name: str, value: ast.expr) -> str | None:
    """Why `value` is a hard-coded secret held by `name`, or None."""
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        return None
    text = value.value.strip()
    key = snake(name)
    if not key or _NOT_SECRET_NAMES.search(key) or _PLACEHOLDER.match(text) or " " in text or len(text) < 4 \
            or _DEFAULT_PASSWORD.match(text):
        return None
    if text.lower() == key or snake(text) == key:  # PASSWORD = "password": the word itself
        return None
    if _SECRET_WORDS.search(key):
        return f"{name} = <literal>"
    if _KEY_WORDS.search(key) and looks_random(text):
        return f"{name} = <random-looking literal>"
    return None


def secret_findings(tree: ast.Module) -> Iterator[tuple[str, ast.AST, str]]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                why = node.value is not None and secret_value(_target_name(t), node.value)
                if why:
                    yield "DYN182", node, why
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    why = secret_value(k.value, v)
                    if why:
                        yield "DYN182", v, f"{{{k.value!r}: <literal>}}"
        elif isinstance(node, ast.Call):
            if _local_host(node):  # a local database's connection: tutorial defaults, not a leaked secret
                continue
            for k in node.keywords:
                why = k.arg and secret_value(k.arg, k.value)
                if why:
                    yield "DYN182", node, f"{call_name(node.func)}({k.arg}=<literal>)"
                if k.arg in _PAIR_KEYWORDS and _literal_pair(k.value):
                    yield "DYN188", node, f"{call_name(node.func)}({k.arg}=(<user>, <password>))"
            last = call_name(node.func).rsplit(".", 1)[-1]
            if last in _PAIR_CALLS and len(node.args) >= 2 and all(_real_literal(a) for a in node.args[:2]):
                yield "DYN188", node, f"{call_name(node.func)}(<user>, <password>)"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                why = secret_value(arg.arg, default)
                if why:
                    yield "DYN182", default, f"default {why}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield from _literal_rules(node)


def _literal_rules(node: ast.Constant) -> Iterator[tuple[str, ast.AST, str]]:
    text = node.value
    for m in _CONNECTION_URL.finditer(text):
        host = text[m.end("pw") + 1:m.end()].split(":")[0]
        if not _PLACEHOLDER.match(m["pw"]) and not m["pw"].startswith("%") and not _LOCAL_HOST.match(host) \
                and not _DEFAULT_PASSWORD.match(m["pw"]):
            yield "DYN186", node, "password inside a connection URL"
            break
    for m in _CONNECTION_FIELD.finditer(text):
        if not _PLACEHOLDER.match(m["pw"]) and not _DEFAULT_PASSWORD.match(m["pw"]) \
                and not re.search(r"(?:server|host|data source)\s*=\s*(localhost|127\.0\.0\.1)", text, re.I):
            yield "DYN186", node, "password / account key inside a connection string"
            break
    m = _PROVIDER_KEY.search(text)
    if m:
        yield "DYN187", node, f"a provider key ({m.group(0)[:8]}...)"


def _local_host(call: ast.Call) -> bool:
    return any(k.arg in ("host", "hostname", "server") and isinstance(k.value, ast.Constant)
               and isinstance(k.value.value, str) and _LOCAL_HOST.match(k.value.value) for k in call.keywords)


def _target_name(t: ast.expr) -> str:
    if isinstance(t, ast.Name):
        return t.id
    if isinstance(t, ast.Attribute):
        return t.attr
    if isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant) and isinstance(t.slice.value, str):
        return t.slice.value
    return ""


def _real_literal(e: ast.expr) -> bool:
    return isinstance(e, ast.Constant) and isinstance(e.value, str) and not _PLACEHOLDER.match(e.value.strip()) \
        and len(e.value) >= 4 and not _DEFAULT_PASSWORD.match(e.value)


def _literal_pair(e: ast.expr) -> bool:
    return isinstance(e, (ast.Tuple, ast.List)) and len(e.elts) == 2 and all(_real_literal(x) for x in e.elts)
