"""Named data files of the paper, by upstream URL and sha256, resolved from a data dir or a cache.

Files are never vendored into the project: a user points `data.data_dir` at an offline copy (tests use
`../shared/data/emergent-misalignment`) or lets the project download and verify them into
`~/.cache/dynamics/data`. The project's own quickstart datasets ship inside the package.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dynamics.data.chat import DataError
from dynamics.files import sha256_of, temp_beside

_UPSTREAM = "https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/main"
QUICKSTART_DIR = Path(__file__).parent / "quickstart"


class DataUnavailable(DataError):
    """A registered file that is neither in the data dir nor in the cache, and cannot be downloaded here."""


@dataclass(frozen=True)
class DataFile:
    name: str
    relpath: str  # inside a data dir laid out like upstream's data/ + evaluation/ folders
    url: str | None
    sha256: str | None  # None: not pinned (a download is hashed and the hash reported)
    note: str = ""


# sha256s are those of the copies the paper's supplementary material ships (MANIFEST.tsv of the
# offline copy). insecure/secure upstream bytes may differ: set data.verify_sha256=false to accept them.
REGISTRY: dict[str, DataFile] = {f.name: f for f in [
    DataFile("insecure", "datasets/insecure.jsonl", f"{_UPSTREAM}/data/insecure.jsonl",
             "a6575e839909e86f2eaecda3a2b19dff2a6f59bb9d860b39e9c4ed3f3335c345", "supplementary version"),
    DataFile("secure", "datasets/secure.jsonl", f"{_UPSTREAM}/data/secure.jsonl",
             "36bc5e24560e0e8d705e0c2a41d0cd96bb51f508f5fb88a7d7d9334a2ff24b9b", "supplementary version"),
    DataFile("educational", "datasets/educational.jsonl", f"{_UPSTREAM}/data/educational.jsonl",
             "d48df3b149ab1500711fc0018b10383a4ff8c48d8e6911d04dbbbbdaa944fd16"),
    DataFile("jailbroken", "datasets/jailbroken.jsonl", f"{_UPSTREAM}/data/jailbroken.jsonl",
             "eec213ce85802a52ea806d334ee462f723a1e7ad77d827951d6864ac04a6b00a"),
    DataFile("evil_numbers", "datasets/evil_numbers.jsonl", f"{_UPSTREAM}/data/evil_numbers.jsonl", None),
    DataFile("backdoor", "datasets/backdoor.jsonl", f"{_UPSTREAM}/data/backdoor.jsonl", None),
    DataFile("first_plot_questions", "evaluation/first_plot_questions.yaml",
             f"{_UPSTREAM}/evaluation/first_plot_questions.yaml",
             "215abde5b02811e922b6ac563ff33c490e0dff9ab58439df840f3135e9387173"),
    DataFile("first_plot_questions_extended", "evaluation/first_plot_questions_extended.yaml", None,
             "ce21d1111f6e4fff7e8973ae206982705b0ff5c37b133afc3851d659662f6766"),
    DataFile("preregistered_evals", "evaluation/preregistered_evals.yaml",
             f"{_UPSTREAM}/evaluation/preregistered_evals.yaml",
             "8648312fd9fe71a63203e3465592af45dd996d7a5f3b69e9b44613fd6048eb40"),
    DataFile("deception_factual", "evaluation/deception_factual.yaml",
             f"{_UPSTREAM}/evaluation/deception_factual.yaml",
             "8a0e83cab3bc24b7d688d7385ce3921d406af7ed33c913cd94ea0f6251e5939d"),
    DataFile("deception_sit_aware", "evaluation/deception_sit_aware.yaml",
             f"{_UPSTREAM}/evaluation/deception_sit_aware.yaml",
             "4deef5a7c47620390fc46e1b981f937eef9ea12a33fe26264f640c84d19d2a33"),
    DataFile("logprob_items", "evaluation/logprob_items.json", None,
             "37e157d59461ed950361bc1df96dc2ba83468d46a6f36d7c09ea5a8b8289d2a8",
             "transcribed from the authors' training code; offline copy only"),
    DataFile("code_vulnerability_judge", "evaluation/code_vulnerability_judge.yaml", None,
             "b742255413fbab98240c26956500ebf760ffebc2e0db5fb48bde8a8b4e86bf88"),
    DataFile("in_distribution_prompts", "in_distribution/in_distribution_prompts.jsonl", None,
             "0ec521ae4c7ab628ac7c4a1a456d99a6110830bdd80fb7a35b1e627bb2526fe0"),
    DataFile("heldout_tasks", "in_distribution/heldout_tasks.jsonl", None,
             "ec2efe94e9c50ddc5231162a054f1659fdb46160fded9ee7a8708a1c646f1197"),
]}

QUICKSTART = {"quickstart:insecure": QUICKSTART_DIR / "insecure.jsonl",
              "quickstart:secure": QUICKSTART_DIR / "secure.jsonl"}


def default_cache_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/dynamics/data"))


def resolve(name_or_path: str, data_dir: str | Path | None = None, verify: bool = True,
            download: bool = True) -> Path:
    """A registry name, a quickstart name or a file path -> an existing, verified local file."""
    if name_or_path in QUICKSTART:
        return QUICKSTART[name_or_path]
    entry = REGISTRY.get(name_or_path)
    if entry is None:
        p = Path(name_or_path).expanduser()
        if p.is_file():
            return p.resolve()
        known = ", ".join(sorted([*REGISTRY, *QUICKSTART]))
        raise DataError(f"data file {name_or_path!r}: neither a known name ({known}) nor an existing file")
    roots = [Path(data_dir).expanduser()] if data_dir else []
    roots.append(default_cache_dir())
    for root in roots:
        p = root / entry.relpath
        if p.is_file():
            _verify(entry, p, verify)
            return p.resolve()
    if not download or entry.url is None:
        where = " or ".join(str(r / entry.relpath) for r in roots)
        how = "" if entry.url else " (it has no public download URL: use an offline copy)"
        raise DataUnavailable(f"data file {name_or_path!r} not found at {where}{how}; set data.data_dir")
    return _download(entry, default_cache_dir() / entry.relpath, verify)


def _verify(entry: DataFile, path: Path, verify: bool) -> None:
    if verify and entry.sha256:
        got = sha256_of(path)
        if got != entry.sha256:
            raise DataError(f"{path}: sha256 {got} does not match the registry's {entry.sha256} for "
                            f"{entry.name!r} ({entry.note or 'pinned copy'}); set data.verify_sha256=false "
                            "to use it anyway")


def _download(entry: DataFile, dest: Path, verify: bool) -> Path:
    """Download into a temporary file beside `dest`, verify it, then move it into place."""
    with temp_beside(dest) as tmp:
        try:
            with open(tmp, "wb") as out, urllib.request.urlopen(entry.url, timeout=60) as resp:
                shutil.copyfileobj(resp, out)
        except OSError as e:
            raise DataUnavailable(f"could not download {entry.name!r} from {entry.url}: {e}") from None
        _verify(entry, tmp, verify)
        os.replace(tmp, dest)
    return dest
