"""docs/operations/dagster.md lists what the code location defines, and nothing else: every asset
with its group, every check with its asset, every job, schedule (with its default state), sensor
and resource; and its lineage sentence follows the asset graph's edges."""

from __future__ import annotations

import itertools
import re
import warnings
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "operations" / "dagster.md"
NAME = re.compile(r"`([\w]+)`")


@pytest.fixture(scope="module")
def repository() -> dg.RepositoryDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from idminter_pipeline.definitions import defs  # noqa: PLC0415

    return defs.get_repository_def()


def _sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", PAGE.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def table_rows(heading: str, header: str) -> list[list[str]]:
    """The cells of each row of the table whose header row starts `| header |` under `heading`."""
    lines = _sections()[heading].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def names(cell: str) -> list[str]:
    return NAME.findall(cell)


def test_every_asset_is_listed_with_its_group(repository):
    graph = repository.asset_graph
    defined = {
        key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()
    }
    listed = {
        name: names(row[1])[0]
        for row in table_rows("Assets and their checks", "asset")
        for name in names(row[0])
    }
    assert listed == defined


def test_every_check_is_listed_with_its_asset(repository):
    defined = {
        (key.name, key.asset_key.to_user_string())
        for key in repository.asset_graph.asset_check_keys
    }
    listed = {
        (name, names(row[1])[0])
        for row in table_rows("Assets and their checks", "check")
        for name in names(row[0])
    }
    assert listed == defined


def test_every_job_is_listed(repository):
    defined = {job.name for job in repository.get_all_jobs() if not job.name.startswith("__")}
    listed = {name for row in table_rows("Jobs", "job") for name in names(row[0])}
    assert listed == defined


def test_every_schedule_is_listed_with_its_default_state(repository):
    defined = {
        schedule.name: schedule.default_status.value.lower()
        for schedule in repository.schedule_defs
    }
    listed = {
        name: row[1].strip("*")
        for row in table_rows("Schedules", "schedule")
        for name in names(row[0])
    }
    assert listed == defined


def test_every_sensor_is_listed(repository):
    defined = {sensor.name for sensor in repository.sensor_defs}
    assert all(
        sensor.default_status == dg.DefaultSensorStatus.RUNNING for sensor in repository.sensor_defs
    ), "the page lists sensors as running: say which is not"
    listed = {name for row in table_rows("Sensors", "sensor") for name in names(row[0])}
    assert listed == defined


def test_every_resource_is_listed(repository):
    defined = set(repository.get_top_level_resources())
    listed = {name for row in table_rows("Resources", "resource") for name in names(row[0])}
    assert listed == defined


def test_the_lineage_follows_the_asset_graph(repository):
    graph = repository.asset_graph
    text = " ".join(_sections()["Assets and their checks"].split())
    chain = re.search(r"The lineage is ((?:`\w+` -> )+`\w+`)", text)
    assert chain, "the lineage sentence is gone"
    assets = names(chain[1])
    for parent, child in itertools.pairwise(assets):
        assert dg.AssetKey(parent) in graph.get(dg.AssetKey(child)).parent_keys, (parent, child)
    for child, parent in re.findall(r"`(\w+)` hangs off `(\w+)`", text):
        assert dg.AssetKey(parent) in graph.get(dg.AssetKey(child)).parent_keys, (parent, child)
