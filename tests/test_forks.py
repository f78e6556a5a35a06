"""A fork of the registry (a test registry loaded from a dump, an Aurora clone) knows it is one,
drops the free pool it copied, and draws new IDs only from the fork partition of the ID space, so
it never hands out an ID that production has handed out or will. Against the real server."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from db_helpers import fetch_all
from minting_helpers import work

from idminter_pipeline.cli import main
from idminter_pipeline.core.canonical_ids import (
    FORK,
    PRODUCTION,
    generate_canonical_ids_bulk,
    is_canonical_id,
)
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.forks import fork_status, mark_fork
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.registry.schema import apply_migrations


def test_the_partitions_split_the_id_space():
    assert set(PRODUCTION.first_characters) | set(FORK.first_characters) == set(
        "abcdefghjkmnpqrstuvwxyz"
    )
    assert not set(PRODUCTION.first_characters) & set(FORK.first_characters)
    assert PRODUCTION.upper <= FORK.lower


def test_a_million_ids_each_from_production_and_a_fork_share_none():
    production = set(generate_canonical_ids_bulk(1_000_000, PRODUCTION))
    fork = set(generate_canonical_ids_bulk(1_000_000, FORK))
    assert len(production) > 999_000 and len(fork) > 999_000
    assert not production & fork
    assert all(PRODUCTION.contains(c) and is_canonical_id(c) for c in production)
    assert all(FORK.contains(c) and is_canonical_id(c) for c in fork)


def _copy_registry(source, target):
    """What an Aurora clone or a restored snapshot holds: every row, the free pool included."""
    apply_migrations(lambda: connect(target))
    conn = connect(target)
    try:
        with conn.cursor() as cursor:
            for table in ("canonical_ids", "identifiers", "identifier_provenance"):
                cursor.execute(f"INSERT INTO {table} SELECT * FROM `{source.database}`.{table}")
        conn.commit()
    finally:
        conn.close()


def _mint(settings, prefix, count):
    with Minter(lambda: connect(settings)) as minter:
        handed = []
        for start in range(0, count, 500):
            sources = [work("calm-record-id", f"{prefix}-{n}") for n in range(start, start + 500)]
            results = minter.mint_ids([MintRequest(s) for s in sources])
            handed += [results[s].canonical_id for s in sources]
        return handed


def test_production_and_a_fork_minting_after_the_fork_never_share_an_id(registry, empty_database):
    production, fork = registry, empty_database
    top_up(lambda: connect(production), 3_000)
    before = set(_mint(production, "before", 500))
    _copy_registry(production, fork)
    free_copied = fetch_all(fork, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'")[0][0]
    assert free_copied == 2_500

    status = mark_fork(lambda: connect(fork), "test clone")
    assert (status.is_fork, status.partition, status.free_ids_dropped) == (True, "fork", 2_500)
    assert fetch_all(fork, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'") == [(0,)]
    assert fork_status(connect(production)).is_fork is False

    # Both top up and mint 2,000 new records each after the fork.
    top_up(lambda: connect(fork), 2_500)
    production_after = _mint(production, "prod-after", 2_000)
    fork_after = _mint(fork, "fork-after", 2_000)
    assert not set(production_after) & set(fork_after)
    assert not set(fork_after) & before
    assert all(FORK.contains(c) for c in fork_after)
    assert all(PRODUCTION.contains(c) for c in production_after)
    # Marking again changes nothing it should not.
    assert mark_fork(lambda: connect(fork), "again").origin == "test clone"


def test_db_status_and_mark_fork_on_the_command_line(registry_env):
    runner = CliRunner()
    before = json.loads(runner.invoke(main, ["db", "status", "--json"]).output)
    assert before["fork"]["is_fork"] is False
    marked = runner.invoke(main, ["db", "mark-fork", "--origin", "aurora clone of prod"])
    assert marked.exit_code == 0, marked.output
    assert json.loads(marked.output)["is_fork"] is True
    shown = runner.invoke(main, ["db", "status"])
    assert "FORK of another registry (aurora clone of prod" in shown.output


@pytest.mark.parametrize("prefix", ["z"])
def test_production_never_claims_from_the_fork_partition(registry, prefix):
    conn = connect(registry)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId) VALUES (%s), ('bbbb2222')",
                (f"{prefix}aaa2222",),
            )
        conn.commit()
    finally:
        conn.close()
    with Minter(lambda: connect(registry)) as minter:
        source = work("calm-record-id", "one")
        assert minter.mint_ids([MintRequest(source)])[source].canonical_id == "bbbb2222"
