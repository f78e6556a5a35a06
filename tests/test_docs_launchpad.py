"""Every launchpad config the docs give is one the named job accepts.

A config in the docs is a fenced YAML or JSON block right after `<!-- launchpad: JOB -->`; it is
validated against JOB's config schema in the code location's own `Definitions`. Config written
any other way (an inline `ops: {...}` code span, an unmarked block with `ops:`) is refused, so no
config reaches a reader unchecked.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import dagster as dg
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
MARKED_BLOCK = re.compile(
    r"<!-- launchpad: (?P<job>[\w]+) -->\s*\n\s*```(?P<lang>yaml|json)\n(?P<body>.*?)\n\s*```",
    re.DOTALL,
)
FENCED_BLOCK = re.compile(r"```(?:yaml|json)\n(?P<body>.*?)\n\s*```", re.DOTALL)
INLINE_CONFIG = re.compile(r"`\s*\{?\s*(ops|resources|execution)\s*:")


def _dedent(body: str) -> str:
    lines = body.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)


def launchpad_configs() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        for match in MARKED_BLOCK.finditer(page.read_text()):
            found.append((page.relative_to(ROOT).as_posix(), match["job"], match["body"]))
    return found


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from idminter_pipeline.definitions import defs  # noqa: PLC0415

    return defs


def test_the_docs_give_launchpad_configs():
    jobs = {job for _, job, _ in launchpad_configs()}
    assert {"mint_works_by_id", "pool_replenishment_job", "registry_reconciliation_job"} <= jobs


@pytest.mark.parametrize(
    ("page", "job", "body"), launchpad_configs(), ids=lambda value: str(value)[:40]
)
def test_each_documented_config_is_accepted_by_its_job(definitions, page, job, body):
    config = yaml.safe_load(_dedent(body))
    job_def = definitions.resolve_job_def(job)
    try:
        dg.validate_run_config(job_def, config)
    except dg.DagsterInvalidConfigError as error:
        pytest.fail(f"{page}: the launchpad config for {job} is refused: {error}")


def test_no_config_is_given_outside_a_marked_block():
    unchecked = []
    for page in PAGES:
        text = page.read_text()
        marked = {match.start("body") for match in MARKED_BLOCK.finditer(text)}
        for block in FENCED_BLOCK.finditer(text):
            if block.start("body") not in marked and re.search(
                r"^\s*(ops|resources):", block["body"], re.MULTILINE
            ):
                unchecked.append(f"{page.relative_to(ROOT)}: {block['body'][:60]!r}")
        unchecked.extend(
            f"{page.relative_to(ROOT)}: {line.strip()[:80]!r}"
            for line in text.splitlines()
            if INLINE_CONFIG.search(line)
        )
    assert not unchecked, "config outside a `<!-- launchpad: JOB -->` block: " + "; ".join(
        unchecked
    )


def test_a_wrong_config_is_caught(definitions):
    """The check itself: the shape a reader would guess for a job-level config is refused."""
    job_def = definitions.resolve_job_def("mint_works_by_id")
    wrong = {"ops": {"mint_listed_works": {"config": {"source_identifiers": ["x/y"]}}}}
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job_def, wrong)
