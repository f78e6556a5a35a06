"""Every relative link in the README and docs/ resolves, to a file and, with `#`, a heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_helpers import ROOT, anchors, markdown_pages

README_MAX_LINES = 250
# [text](target) outside code; images too. Targets with a scheme are not checked (no network).
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def _links(page: Path) -> list[str]:
    text = _CODE.sub("", page.read_text(encoding="utf-8"))
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_pages_have_links_to_check():
    assert sum(len(_links(page)) for page in markdown_pages()) > 50


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in _links(page):
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists():
            broken.append(f"{target}: no such file")
            continue
        if ROOT not in path.parents and path != ROOT:
            broken.append(f"{target}: outside the repository")
            continue
        if anchor:
            if path.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(path):
                broken.append(f"{target}: no heading with that anchor in {path.name}")
    assert not broken, "\n".join(broken)


def test_the_readme_is_an_entry_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


_REPEATED_WORD = re.compile(r"(?:^|-)([a-z0-9]+)-\1(?=-|$)")


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_heading_anchor_repeats_a_word(page):
    """A placeholder named after the word beside it (`within {hours} hours`) gives an anchor that
    reads as a typo (`within-hours-hours`) in every alert's runbook link: name it for what it
    stands for instead (`{horizon} hours`)."""
    repeated = sorted(a for a in anchors(page) if _REPEATED_WORD.search(a))
    assert not repeated, f"{page.name}: anchors repeating a word: {repeated}"
