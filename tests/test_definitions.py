"""The code location: it loads, its asset graph matches the snapshot, and its assets run."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml
from cli_process import run_in_project
from dagster._core.system_config.objects import ResolvedRunConfig
from db_helpers import fetch_all

from idminter_pipeline.definitions import defs
from idminter_pipeline.defs.executor import CODE_LOCATION_MODULE, RUN_EXECUTOR
from idminter_pipeline.defs.registry.assets import registry_schema
from idminter_pipeline.defs.resources import (
    REGISTRY_POOL,
    RegistryDatabase,
    registry_database_from_env,
)
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.forks import mark_fork

ROOT = Path(__file__).parents[1]
SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _graph() -> dict:
    graph = defs.resolve_asset_graph()
    # The defs folder's modules name some definitions more than once (a sensor and the job it
    # requests); the code location holds each once.
    repository = defs.get_repository_def()
    return {
        "assets": {
            key.to_user_string(): sorted(dep.to_user_string() for dep in graph.get(key).parent_keys)
            for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
        },
        "asset_checks": sorted(
            f"{check.asset_key.to_user_string()}:{check.name}" for check in graph.asset_check_keys
        ),
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs()),
        "schedules": sorted(s.name for s in repository.schedule_defs),
        "sensors": sorted(s.name for s in repository.sensor_defs),
    }


def test_asset_graph_matches_snapshot():
    """Regenerate with UPDATE_SNAPSHOTS=1 when the graph changes on purpose."""
    graph = _graph()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(graph, indent=2) + "\n")
    assert graph == json.loads(SNAPSHOT.read_text())


def test_dg_check_defs_passes(tmp_path):
    """Dagster's own check of the project, as `make check-defs` runs it."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "VIRTUAL_ENV": sys.prefix}
    result = run_in_project(
        [str(Path(sys.executable).parent / "dg"), "check", "defs", "--use-active-venv"],
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_every_job_forks_its_steps_from_a_server_that_imported_the_location():
    """Steps in processes of their own, forked from a server that imported the module the code
    location is served from (not each importing it afresh)."""
    assert {job.executor_def for job in defs.resolve_all_job_defs()} == {RUN_EXECUTOR}
    assert RUN_EXECUTOR.executor_creation_fn is dg.multiprocess_executor.executor_creation_fn
    config = RUN_EXECUTOR.config_schema.resolve_config({}).value["config"]
    assert config["start_method"] == {"forkserver": {"preload_modules": [CODE_LOCATION_MODULE]}}
    assert config["retries"] == {"enabled": {}}  # the steps' RetryPolicy applies
    # Fixed: a launch asking for another start method or concurrency is refused, naming it.
    job = defs.resolve_job_def("pool_replenishment_job")
    for asked in ("in_process", "max_concurrent"):
        with pytest.raises(
            dg.DagsterInvalidConfigError, match=f'unexpected config entry "{asked}"'
        ):
            ResolvedRunConfig.build(job, {"execution": {"config": {asked: {}}}})
    (location,) = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    assert location["python_module"]["module_name"] == CODE_LOCATION_MODULE
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    name = location["python_module"]["location_name"]
    assert f'"-m", "{CODE_LOCATION_MODULE}", "--location-name", "{name}"]' in dockerfile


def test_the_packaged_dg_settings_are_the_projects():
    """`definitions.py` loads by the package's dg.toml (an installed wheel has no pyproject.toml);
    the `dg` CLI reads [tool.dg] in pyproject.toml: the two say the same."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]
    packaged = tomllib.loads((ROOT / "idminter_pipeline" / "dg.toml").read_text())
    assert packaged["directory_type"] == project["directory_type"] == "project"
    shared = {"root_module", "defs_module", "code_location_name"}
    assert {k: packaged["project"][k] for k in shared} == {k: project["project"][k] for k in shared}


def test_what_writes_to_the_registry_shares_one_concurrency_pool(tmp_path, monkeypatch):
    writers = {
        node.name
        for job in defs.resolve_all_job_defs()
        for node in job.graph.nodes
        if getattr(node.definition, "pool", None) == REGISTRY_POOL
    }
    assert writers == {
        "registry_schema",
        "legacy_registry_migration",
        "canonical_id_pool",
        "identified_works",
        "registry_reconciliation",
        "mint_listed_works",
        "swept_works",
        "replenish_pool",
    }
    # The local instance bounds that pool (the production one too: tests/test_deploy_aws.py).
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text((ROOT / "deploy" / "local" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 4


def test_registry_schema_asset_migrates_and_records_versions(empty_database):
    result = dg.materialize(
        [registry_schema],
        resources={"registry_database": RegistryDatabase.from_settings(empty_database)},
    )
    assert result.success
    materialization = result.asset_materializations_for_node("registry_schema")[0]
    metadata = materialization.metadata
    # Every migration in sql/, in order (other domains add theirs), the registry first.
    assert metadata["applied_now"].value[0] == "0001_create_registry"
    assert metadata["applied_now"].value == sorted(metadata["applied_now"].value)
    assert "0003_pool_assignment_time" in metadata["applied_now"].value
    assert "0001_create_registry" in metadata["applied_versions"].value
    tables = {t for (t,) in fetch_all(empty_database, "SHOW TABLES")}
    assert {"canonical_ids", "identifiers"} <= tables

    again = dg.materialize(
        [registry_schema],
        resources={"registry_database": RegistryDatabase.from_settings(empty_database)},
    )
    assert (
        again.asset_materializations_for_node("registry_schema")[0].metadata["applied_now"].value
        == []
    )
    assert (metadata["is_fork"].value, metadata["id_partition"].value) == (False, "production")

    mark_fork(lambda: connect(empty_database), "a test clone")
    forked = dg.materialize(
        [registry_schema],
        resources={"registry_database": RegistryDatabase.from_settings(empty_database)},
    ).asset_materializations_for_node("registry_schema")[0]
    assert forked.metadata["is_fork"].value is True
    assert forked.metadata["id_partition"].value == "fork"
    assert forked.metadata["fork_origin"].value == "a test clone"


def test_the_password_reaches_the_resource_through_env_var(monkeypatch):
    monkeypatch.setenv("RDS_PASSWORD", "from-the-environment")
    resource = registry_database_from_env()
    # What Dagster stores and shows is the variable's name, never its value.
    assert resource._convert_to_config_dictionary()["password"] == {"env": "RDS_PASSWORD"}
    assert "from-the-environment" not in repr(resource)
    resolved = resource.process_config_and_initialize()
    assert resolved.settings().password == "from-the-environment"


def test_loading_the_code_location_prints_no_warnings():
    """`make ui` and every run's log start without Dagster's Beta/Preview warning wall."""
    loaded = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import idminter_pipeline.definitions"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stderr == ""
