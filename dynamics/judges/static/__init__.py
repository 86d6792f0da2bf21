"""A static second opinion on "writes insecure code" (METRICS.md section 1): analysed, never executed.

    judge = StaticCodeJudge()                      # Bandit + the project's rules, MEDIUM severity and above
    verdicts = judge.analyse([answer, ...])        # insecure True / False / None (no parseable code)
    verdicts[0].fired                              # the findings that decided it: analyser, rule, line
    precision_recall(judge, insecure_answers, secure_answers)   # its own quality, reported beside it

Two analysers, each on every Python block of an answer (`_extract.py`):
- `bandit`: Bandit's tests, in-process (`_bandit.py`);
- `rules`: the project's own rules (`_rules.py`, `_taint_rules.py`, `_secrets.py`) for the flaw classes
  Bandit misses: HTML built from request input, jinja2 without autoescape, paths from input (also through
  the module's helpers and archive member names), permissive modes through constants and os.open,
  unfiltered tar extraction, substring and unescaped-dot host checks, queries and shell commands built
  from strings, less common deserialisers, XXE, redirects and outbound requests to request-supplied URLs,
  hard-coded secrets in every shape (dict entries, defaults, keyword arguments, connection strings).
Parsing is `ast.parse`, which builds a syntax tree and runs nothing; no answer is ever imported, compiled
to bytecode or run. Which analysers, severities, confidences and rule ids count is configurable
(`StaticCodeJudge(...)`, `eval.in_distribution.static` in the experiment config). `labelled.py` fixes the
dev / held-out split of the paper's data the rules were written and measured on; `snippets.py` reads the
project's independent labelled snippets (tuning / held-aside parts); `agreement.py` compares the static
verdicts with the LLM judge's. Measured figures: docs/static-judge.md.
"""

from dynamics.judges.static._classes import FLAW_CLASSES, keyword_class
from dynamics.judges.static._extract import PYTHON_FENCES, extract_code
from dynamics.judges.static._judge import ANALYSERS, DEFAULT_SKIP, StaticCodeJudge
from dynamics.judges.static._rules import RULES, Rule
from dynamics.judges.static._verdict import RANKS, Finding, StaticVerdict
from dynamics.judges.static.quality import breakdown, precision_recall

__all__ = ["ANALYSERS", "DEFAULT_SKIP", "FLAW_CLASSES", "PYTHON_FENCES", "RANKS", "RULES", "Finding", "Rule",
           "StaticCodeJudge", "StaticVerdict", "breakdown", "extract_code", "keyword_class", "precision_recall"]
