"""Every launchpad config the docs give is one Dagster accepts (or, where the docs say a value is
refused, one it refuses).

A config in the docs follows a marker and is either a fenced YAML or JSON block or an inline code
span (`hold_synced: true`, `{source_identifiers: [...]}`):

- `<!-- launchpad: JOB -->`: the launchpad of JOB. A config without `ops:` is taken as the job's
  own root config when the job has one (`mint_works_by_id`), else as the config of the job's one
  configurable op.
- `<!-- launchpad: asset ASSET -->`: **Materialize...** on ASSET's page (Dagster's implicit asset
  job). A config without `ops:` is ASSET's own config.
- `<!-- launchpad refuses: ... -->`: the same, for a value the docs say is refused at launch;
  `<!-- launchpad default: ... -->` for a value the docs give as the default (accepted, and what
  Dagster fills in when the launchpad leaves it out).

Each is validated against the job's config schema in the code location's own `Definitions`. A
config written without a marker (a code span or block whose keys are config fields of some job
or asset, or `ops:` / `resources:`) fails the last test, so no config reaches a reader unchecked.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
# docs/cli.md is generated from the commands' help, which gives no Dagster config.
PAGES.remove(ROOT / "docs" / "cli.md")
MARKER = re.compile(
    r"<!-- launchpad(?: (?P<kind>refuses|default))?: (?P<asset>asset )?(?P<name>\w+) -->\s*"
    r"(?:```(?:yaml|json)\n(?P<block>.*?)\n\s*```|`(?P<span>[^`\n]+)`)",
    re.DOTALL,
)
FENCED_BLOCK = re.compile(r"^\s*```[\w-]*\n(?P<body>.*?)\n\s*```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`(?P<body>[^`\n]+)`")
# A code span that is a mapping: `key: value`, `{key: ...}`, `{"key": ...}`.
SPAN_KEY = re.compile(r"^\s*\{?\s*\"?(?P<key>\w+)\"?\s*:(?:\s|$)")
RUN_CONFIG_SECTIONS = frozenset({"ops", "resources", "execution", "loggers"})


@dataclass(frozen=True)
class DocumentedConfig:
    page: str
    line: int
    name: str
    is_asset: bool
    # "accepts", "refuses" or "default": what the docs say of the config.
    kind: str
    body: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({'asset ' if self.is_asset else ''}{self.name})"


def _dedent(body: str) -> str:
    lines = body.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)


def documented_configs(pages: list[Path] = PAGES) -> list[DocumentedConfig]:
    found = []
    for page in pages:
        text = page.read_text()
        for match in MARKER.finditer(text):
            found.append(
                DocumentedConfig(
                    page=page.relative_to(ROOT).as_posix(),
                    line=text.count("\n", 0, match.start()) + 1,
                    name=match["name"],
                    is_asset=bool(match["asset"]),
                    kind=match["kind"] or "accepts",
                    body=match["block"] if match["block"] is not None else match["span"],
                )
            )
    return found


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from idminter_pipeline.definitions import defs  # noqa: PLC0415

    return defs


def _op_config_fields(job_def: dg.JobDefinition) -> dict[str, frozenset[str]]:
    """Each op of the job that takes config, with its config's field names."""
    ops = job_def.run_config_schema.config_type.fields.get("ops")
    found = {}
    for op_name, op_field in (ops.config_type.fields if ops else {}).items():
        config = op_field.config_type.fields.get("config")
        fields = getattr(config.config_type, "fields", None) if config else None
        if fields:
            found[op_name] = frozenset(fields)
    return found


def run_config(definitions: dg.Definitions, documented: DocumentedConfig) -> tuple[Any, Any]:
    """The job a documented config is launched on and the whole run config it amounts to."""
    config = yaml.safe_load(_dedent(documented.body))
    assert isinstance(config, dict), f"{documented}: not a mapping: {documented.body!r}"
    if documented.is_asset:
        job_def = definitions.resolve_implicit_global_asset_job_def()
        if not set(config) & RUN_CONFIG_SECTIONS:
            config = {"ops": {documented.name: {"config": config}}}
        return job_def, config
    job_def = definitions.resolve_job_def(documented.name)
    if set(config) & RUN_CONFIG_SECTIONS or set(config) <= set(
        job_def.run_config_schema.config_type.fields
    ):
        return job_def, config
    configurable = _op_config_fields(job_def)
    assert len(configurable) == 1, (
        f"{documented}: {documented.name} has {len(configurable)} configurable ops "
        f"({sorted(configurable)}); write the config with ops:"
    )
    (op_name,) = configurable
    return job_def, {"ops": {op_name: {"config": config}}}


def config_field_names(definitions: dg.Definitions) -> frozenset[str]:
    """Every key a launchpad config can hold: each job's root fields and each op's config's."""
    names = set(RUN_CONFIG_SECTIONS)
    for job_def in definitions.get_repository_def().get_all_jobs():
        names.update(job_def.run_config_schema.config_type.fields)
        for fields in _op_config_fields(job_def).values():
            names.update(fields)
    return frozenset(names)


def unmarked_configs(text: str, field_names: frozenset[str]) -> list[str]:
    """Config in `text` (code spans and fenced blocks) that no launchpad marker covers."""
    marked = set()
    for match in MARKER.finditer(text):
        marked.add(match.start("block") if match["block"] is not None else match.start("span"))
    unchecked = []
    for block in FENCED_BLOCK.finditer(text):
        if block.start("body") in marked:
            continue
        try:
            parsed = yaml.safe_load(_dedent(block["body"]))
        except yaml.YAMLError:
            continue
        if isinstance(parsed, dict) and set(parsed) & field_names:
            unchecked.append(block["body"].strip()[:80])
    outside_blocks = FENCED_BLOCK.sub(lambda block: " " * len(block[0]), text)
    for span in CODE_SPAN.finditer(outside_blocks):
        key = SPAN_KEY.match(span["body"])
        if key and key["key"] in field_names and span.start("body") not in marked:
            unchecked.append(span["body"][:80])
    return unchecked


def test_the_docs_give_launchpad_configs():
    configs = documented_configs()
    jobs = {config.name for config in configs if not config.is_asset}
    assets = {config.name for config in configs if config.is_asset}
    assert {"mint_works_by_id", "pool_replenishment_job", "registry_reconciliation_job"} <= jobs
    assert {"identified_works", "swept_works", "legacy_registry_migration"} <= assets
    assert {config.kind for config in configs} == {"accepts", "refuses", "default"}


@pytest.mark.parametrize("documented", documented_configs(), ids=str)
def test_each_documented_config_is_judged_by_its_job_as_the_docs_say(definitions, documented):
    job_def, config = run_config(definitions, documented)
    try:
        dg.validate_run_config(job_def, config)
    except dg.DagsterInvalidConfigError as error:
        if documented.kind != "refuses":
            pytest.fail(f"{documented}: the launchpad config is refused: {error}")
    else:
        assert documented.kind != "refuses", f"{documented}: said to be refused; it is accepted"
    if documented.kind == "default":
        filled_in = dg.validate_run_config(job_def, {})
        for op_name, op_config in config["ops"].items():
            defaults = filled_in["ops"][op_name]["config"]
            assert {key: defaults[key] for key in op_config["config"]} == op_config["config"], (
                f"{documented}: not the default"
            )


def test_no_config_is_given_outside_a_marked_block(definitions):
    field_names = config_field_names(definitions)
    unchecked = [
        f"{page.relative_to(ROOT)}: {config!r}"
        for page in PAGES
        for config in unmarked_configs(page.read_text(), field_names)
    ]
    assert not unchecked, "config outside a `<!-- launchpad: ... -->` marker: " + "; ".join(
        unchecked
    )


def test_unmarked_config_is_found_in_every_form(definitions):
    """The check itself: each way a config can be written without a marker is found."""
    field_names = config_field_names(definitions)
    text = "\n".join(
        [
            "Materialize with config `lookback_hours: 0`, or `{hold_synced: true}`.",
            'JSON: `{"source_identifiers": ["a/b"]}`.',
            "```yaml",
            "ops:",
            "  swept_works:",
            "    config: {lookback_hours: 0}",
            "```",
            "```json",
            '{"source_identifiers": ["a/b"], "batch_size": 10}',
            "```",
            "<!-- launchpad: asset swept_works --> `lookback_hours: 0` is checked.",
            "Not config: `idminter mint --batch-size 500`, `status: ok`.",
        ]
    )
    assert unmarked_configs(text, field_names) == [
        "ops:\n  swept_works:\n    config: {lookback_hours: 0}",
        '{"source_identifiers": ["a/b"], "batch_size": 10}',
        "lookback_hours: 0",
        "{hold_synced: true}",
        '{"source_identifiers": ["a/b"]}',
    ]


def test_a_wrong_config_is_caught(definitions):
    """The check itself: the shape a reader would guess for a job-level config is refused, and
    a documented config with a misspelt field fails its test."""
    job_def = definitions.resolve_job_def("mint_works_by_id")
    wrong = {"ops": {"mint_listed_works": {"config": {"source_identifiers": ["x/y"]}}}}
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job_def, wrong)
    misspelt = DocumentedConfig("page.md", 1, "swept_works", True, "accepts", "lookback_hour: 0")
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(*run_config(definitions, misspelt))
