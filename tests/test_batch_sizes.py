"""Batch sizes: below 1 refused naming the value, in every batched operation's Python API too;
large ones lowered to the maximum."""

from __future__ import annotations

import pytest
from registry_invariants import registry_snapshot

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.limits import bounded_batch_size
from idminter_pipeline.registry import legacy_migration, reconciliation
from idminter_pipeline.registry.pool import top_up
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
