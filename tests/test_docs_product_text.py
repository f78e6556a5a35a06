"""The product describes the product: no issue numbers and no notes waiting to be folded in, in
code, tests, docs or deployment files. How the project got here is in CHANGELOG.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]
# Issue numbers in any spelling (an issue, issues or Issue # followed by a number, issue-NN) and
# the folder of notes from other branches.
HISTORY = re.compile(r"\bissues?[ -]?#?\d|\b_incoming\b", re.IGNORECASE)
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".sql", ".json", ".txt", ".cfg", ""}
# The changelog is where history goes; this file names what it looks for.
NOT_PRODUCT = {"CHANGELOG.md", "tests/test_docs_product_text.py"}


def product_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [
        ROOT / name
        for name in listed.split("\0")
        if name and name not in NOT_PRODUCT and Path(name).suffix in TEXT_SUFFIXES
        if (ROOT / name).is_file()
    ]


def test_product_text_carries_no_history():
    found = [
        f"  {path.relative_to(ROOT)}:{number}: {line.strip()[:120]}"
        for path in product_files()
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1
        )
        if HISTORY.search(line)
    ]
    assert not found, "history in product text (it belongs in CHANGELOG.md):\n" + "\n".join(found)


def test_the_check_finds_what_it_looks_for():
    for line in ("as in issue 21", "Issues 19 to 24", "the issue-13 cases", "see docs/_incoming/"):
        assert HISTORY.search(line), line
    for line in ("no issue with that", "tissue 5", "missing 3 files"):
        assert not HISTORY.search(line), line
