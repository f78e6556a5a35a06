"""Batch sizes: below 1 refused naming the value, on the command line, in the launchpad's run
config (before a run exists) and in every batched operation's Python API; large ones lowered to
the maximum."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner
from registry_invariants import registry_snapshot

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.limits import bounded_batch_size
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.legacy.assets import legacy_registry_migration
from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.reconciliation.assets import registry_reconciliation
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry import legacy_migration, reconciliation
from idminter_pipeline.registry.pool import PoolSettings, top_up
from idminter_pipeline.works.pipeline import clamp_batch_size as works_batch_size


@pytest.mark.parametrize("bad", [0, -1, -5])
def test_non_positive_sizes_are_refused_naming_them(bad):
    with pytest.raises(InvalidInputError, match=f"batch size {bad} is not allowed"):
        bounded_batch_size(bad, maximum=10)


@pytest.mark.parametrize("bad", [True, 2.0, "5", None])
def test_non_integers_are_refused(bad):
    with pytest.raises(InvalidInputError, match="must be an integer"):
        bounded_batch_size(bad, maximum=10)


def test_sizes_are_kept_within_their_bounds():
    assert bounded_batch_size(7, maximum=10) == 7
    assert bounded_batch_size(10_000, maximum=10) == 10
    assert bounded_batch_size(3, minimum=5, maximum=10) == 5
    assert works_batch_size(1_000_000) == 5_000


@pytest.mark.parametrize(
    "call",
    [
        lambda connect: reconciliation.reconcile(connect, batch_size=0),
        lambda connect: reconciliation.reconcile(connect, repair=True, batch_size=-1),
        lambda connect: legacy_migration.migrate(connect, batch_size=0),
        lambda connect: legacy_migration.dry_run(connect, batch_size=-5),
        lambda connect: top_up(connect, 100, batch_size=0),
    ],
    ids=["reconcile", "reconcile --repair", "migrate-legacy", "dry run", "pool top-up"],
)
def test_the_registry_apis_refuse_non_positive_sizes_and_write_nothing(
    call, connect_registry, registry
):
    before = registry_snapshot(registry)
    with pytest.raises(InvalidInputError, match="is not allowed"):
        call(connect_registry)
    assert registry_snapshot(registry) == before


@pytest.mark.parametrize(
    "args",
    [
        ["reconcile", "--batch-size", "0"],
        ["reconcile", "--batch-size", "-1"],
        ["db", "migrate-legacy", "--batch-size", "0"],
        ["db", "migrate-legacy", "--dry-run", "--batch-size", "-5"],
        ["pool", "top-up", "--batch-size", "-5"],
        ["pool", "top-up", "--writers", "0"],
        ["pool", "top-up", "--target", "0"],
        ["pool", "top-up", "--max-rounds", "0"],
    ],
)
def test_non_positive_sizes_are_refused_naming_the_value(registry_env, args):
    before = registry_snapshot(registry_env)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"{args[-1]} is not in the range x>=1" in result.stderr
    assert registry_snapshot(registry_env) == before


def test_large_batch_sizes_are_still_clamped(registry_env):
    result = CliRunner().invoke(main, ["reconcile", "--json", "--batch-size", "1000000000"])
    assert result.exit_code == 0, result.output
    legacy = CliRunner().invoke(main, ["db", "migrate-legacy", "--batch-size", "1000000000"])
    assert legacy.exit_code == 0, legacy.output


def _pool_resource() -> FreeIdPool:
    return FreeIdPool.from_settings(PoolSettings.from_env({}))


@pytest.mark.parametrize(
    ("asset", "config"),
    [
        (registry_reconciliation, {"batch_size": 0}),
        (registry_reconciliation, {"batch_size": -1}),
        (legacy_registry_migration, {"batch_size": 0}),
        (canonical_id_pool, {"batch_size": -5}),
        (canonical_id_pool, {"target_free": 0}),
    ],
)
def test_the_launchpad_refuses_non_positive_sizes_before_a_run_exists(
    registry, asset, config, tmp_path
):
    """Dagster resolves run config (and so `PositiveInt`) when it builds the execution plan,
    before the webserver creates the run: the launch is refused, naming the field and value."""
    before = registry_snapshot(registry)
    resources = {
        "registry_database": RegistryDatabase.from_settings(registry),
        # The reconciliation alerts on critical findings.
        "alerts": AlertsResource(log_file=str(tmp_path / "alerts.log")),
    }
    if asset is canonical_id_pool:
        resources["id_pool"] = _pool_resource()
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError) as raised:
            dg.materialize(
                [asset],
                resources=resources,
                run_config={"ops": {asset.node_def.name: {"config": config}}},
                instance=instance,
            )
        assert instance.get_runs() == []
    (field, value) = next(iter(config.items()))
    message = " ".join(error.message for error in raised.value.errors)
    assert field in message
    assert f"expected a whole number of at least 1, got {value}" in message
    assert registry_snapshot(registry) == before


def test_the_launchpad_still_accepts_positive_and_unset_sizes(registry):
    resources = {
        "registry_database": RegistryDatabase.from_settings(registry),
        "id_pool": _pool_resource(),
    }
    result = dg.materialize(
        [canonical_id_pool],
        resources=resources,
        run_config={
            "ops": {"canonical_id_pool": {"config": {"target_free": 30, "batch_size": None}}}
        },
    )
    assert result.success
    metadata = result.asset_materializations_for_node("canonical_id_pool")[0].metadata
    assert metadata["free"].value >= 30
