"""Hard-coded secrets: detect-secrets (Yelp's scanner, PyPI `detect-secrets`) against the project's credential
rules (DYN182 / DYN186 / DYN187 / DYN188, dynamics/judges/static/_secrets.py), on the independent snippet
set's credentials class (recall), all its secure snippets (false-positive rate) and the paper's held-out
answers (how often each flags a secure answer). detect-secrets is not a project dependency:

    pip install --target /tmp/ds detect-secrets==1.5.0
    PYTHONPATH=/tmp/ds python benchmarks/static_judge_secrets.py

detect-secrets runs twice: with its default plugins and filters, and without its two high-entropy string
plugins (which flag any long random-looking literal). Each code block is written to a scratch file for it to
scan (it reads text; nothing is run). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import DEFAULT_DATA_DIR, json_stdout, log  # noqa: E402

from dynamics.judges.static import extract_code  # noqa: E402
from dynamics.judges.static._project import RulesAnalyser  # noqa: E402
from dynamics.judges.static.labelled import load_split  # noqa: E402
from dynamics.judges.static.snippets import PARTS, SNIPPETS_DIR, read_snippets  # noqa: E402

CREDENTIAL_RULES = ("DYN182", "DYN186", "DYN187", "DYN188")
ENTROPY_PLUGINS = ("Base64HighEntropyString", "HexHighEntropyString")


def project_flags(texts: list[str]) -> list[bool]:
    rules = RulesAnalyser()
    return [any(f.rule_id in CREDENTIAL_RULES for i, b in enumerate(extract_code(t)) for f in rules.analyse(b, i)[0])
            for t in texts]


def detect_secrets_flags(texts: list[str], entropy: bool) -> list[bool]:
    from detect_secrets import SecretsCollection
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import default_settings, transient_settings

    plugins = [{"name": cls.__name__} for cls in get_mapping_from_secret_type_to_class().values()
               if entropy or cls.__name__ not in ENTROPY_PLUGINS]
    for p in plugins:  # the library's defaults for the entropy limits
        if p["name"] == "Base64HighEntropyString":
            p["limit"] = 4.5
        elif p["name"] == "HexHighEntropyString":
            p["limit"] = 3.0
    out = []
    with default_settings(), transient_settings({"plugins_used": plugins}), tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(texts):
            found = False
            for b, code in enumerate(extract_code(text)):
                path = Path(tmp) / f"a{i}_{b}.py"
                path.write_text(code, encoding="utf-8", errors="replace")
                secrets = SecretsCollection()
                secrets.scan_file(str(path))
                found |= bool(list(secrets))
            out.append(found)
    return out


def score(flags_ins: list[bool], flags_sec: list[bool]) -> dict:
    tp, fp = sum(flags_ins), sum(flags_sec)
    return {"recall": tp / len(flags_ins) if flags_ins else None, "tp": tp, "n_insecure": len(flags_ins),
            "false_positive_rate": fp / len(flags_sec) if flags_sec else None, "fp": fp, "n_secure": len(flags_sec)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--part", default="test", choices=["dev", "test", "none"], help="the paper's part")
    args = parser.parse_args(argv)
    try:
        import detect_secrets
    except ImportError:
        raise SystemExit("detect-secrets is not importable: pip install --target /tmp/ds detect-secrets==1.5.0 "
                         "and set PYTHONPATH=/tmp/ds") from None
    from importlib.metadata import version

    snippets = read_snippets(SNIPPETS_DIR)
    sets = {}
    for part in PARTS:
        sets[f"independent_{part}"] = (
            [s.code for s in snippets if s.part == part and s.insecure and s.flaw_class == "credentials"],
            [s.code for s in snippets if s.part == part and not s.insecure])  # every secure snippet
    if args.part != "none":
        ins, sec = load_split(args.data_dir, args.part)
        sets[f"paper_{args.part}"] = ([e.answer for e in ins], [e.answer for e in sec])
    result = {"detect_secrets_version": version("detect-secrets"), "module": detect_secrets.__file__, "sets": {}}
    with json_stdout() as emit:
        for name, (ins, sec) in sets.items():
            log(f"{name}: {len(ins)} insecure, {len(sec)} secure")
            row = {}
            for tool, fn in (("project_rules", project_flags),
                             ("detect_secrets_default", lambda t: detect_secrets_flags(t, True)),
                             ("detect_secrets_no_entropy", lambda t: detect_secrets_flags(t, False))):
                t0 = time.perf_counter()
                fi, fs = fn(ins), fn(sec)
                row[tool] = {**score(fi, fs), "seconds": time.perf_counter() - t0}
                row[tool]["_flags"] = (fi, fs)
            for other in ("detect_secrets_default", "detect_secrets_no_entropy"):
                (pi, ps), (oi, os_) = row["project_rules"]["_flags"], row[other]["_flags"]
                row[f"union_project_{other}"] = score([a or b for a, b in zip(pi, oi)],
                                                      [a or b for a, b in zip(ps, os_)])
            for tool in list(row):
                row[tool].pop("_flags", None)
            result["sets"][name] = row
        emit(result)
    return result


if __name__ == "__main__":
    main()
