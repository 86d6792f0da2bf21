"""Flaw classes: of a finding (from its rule) and of a labelled answer (from keywords in its code).

The paper's data has no class labels. For per-class figures each answer gets a class from keywords in its
code alone, never from which rule fired, so a class's recall is not decided by the rules it measures:
the first matching entry of `_KEYWORD_CLASSES` wins (most specific first), "other" when none matches.
The same keywords run on secure answers, so per-class false-positive rates pair with per-class recall.
"""

from __future__ import annotations

import re

FLAW_CLASSES = ("xss", "path_traversal", "sql_injection", "command_injection", "deserialization", "permissions",
                "tar_extraction", "xxe", "url_validation", "open_redirect", "credentials", "weak_crypto",
                "weak_random", "tls", "temp_file", "code_eval", "debug", "network", "ssrf", "other")

_BANDIT = {
    "code_eval": ("B102", "B307"),
    "deserialization": ("B301", "B302", "B403", "B506"),
    "permissions": ("B103",),
    "tar_extraction": ("B202",),
    "temp_file": ("B108", "B306"),
    "debug": ("B201",),
    "tls": ("B323", "B501", "B502", "B503", "B504", "B507"),
    "weak_crypto": ("B303", "B304", "B305", "B324", "B413", "B505"),
    "weak_random": ("B311",),
    "credentials": ("B105", "B106", "B107"),
    "command_injection": ("B404", "B601", "B602", "B603", "B604", "B605", "B606", "B607", "B609"),
    "sql_injection": ("B608", "B610", "B611"),
    "xss": ("B701", "B702", "B703", "B704"),
    "xxe": tuple(f"B{n}" for n in (*range(313, 321), *range(405, 412))),
    "network": ("B104", "B113", "B310", "B312", "B321", "B401", "B402"),
}
_BANDIT_CLASS = {test_id: cls for cls, ids in _BANDIT.items() for test_id in ids}


def bandit_class(test_id: str) -> str:
    return _BANDIT_CLASS.get(test_id, "other")


# keyword class of an answer's code: (class, pattern), the first match wins
_KEYWORD_CLASSES: tuple[tuple[str, re.Pattern], ...] = tuple((c, re.compile(p)) for c, p in (
    ("tar_extraction", r"\btarfile\b|\.extractall\("),
    ("deserialization", r"\b(pickle|cPickle|marshal|dill|shelve|jsonpickle)\b|yaml\.(load|unsafe_load|full_load)\("),
    ("xxe", r"\b(lxml|etree|xml\.sax|minidom|XMLParser|xml\.dom)\b"),
    ("permissions", r"\bchmod\(|\bumask\(|os\.open\(|\bmode\s*=\s*0o|0o[0-7]{3}"),
    ("sql_injection", r"\.(execute|executemany|executescript|raw)\(|\bSELECT\b|\bINSERT\b|\bUPDATE\b.*\bSET\b"),
    ("command_injection", r"\bsubprocess\b|os\.(system|popen|exec\w*|spawn\w*)\("),
    ("code_eval", r"\b(eval|exec)\("),
    ("xss", r"autoescape|render_template_string|Markup\(|mark_safe|jinja2|<\w+[^>]*>|&lt;\w+"),
    ("url_validation", r"re\.(compile|match|search|fullmatch)\(|\burlparse\b|\bnetloc\b|\bhostname\b"),
    ("open_redirect", r"\bredirect\("),
    ("path_traversal", r"send_file|send_from_directory|os\.path\.join|\bopen\(|\.save\(|\bPath\("),
    ("weak_crypto", r"hashlib\.(md5|sha1)|\bDES\b|\bARC4\b|\bMD5\b"),
    ("credentials", r"password|passwd|secret|token|api_key"),
    ("tls", r"verify\s*=\s*False|CERT_NONE|check_hostname"),
    ("weak_random", r"\brandom\.(random|randint|choice|choices|randrange|getrandbits)\("),
))


def keyword_class(code: str) -> str:
    """The flaw class an answer's code most likely belongs to, from keywords alone ("other" if none)."""
    for cls, pattern in _KEYWORD_CLASSES:
        if pattern.search(code):
            return cls
    return "other"
