"""The lowest `max_allowed_packet` the project accepts (64 KB): every batched statement is sized
from the packet, so the commands work with their default settings.

The server is a private MariaDB (never the shared one) whose `max_allowed_packet` is set to
`MIN_MAX_ALLOWED_PACKET` by its administrator; the commands run as real `idminter` processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from db_helpers import (
    cli_env,
    fetch_all,
    migrated_database,
    private_mariadb,
    run_idminter,
    set_max_allowed_packet,
)

from idminter_pipeline.core.canonical_ids import generate_canonical_ids_bulk
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.registry.packets import MIN_MAX_ALLOWED_PACKET
from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.registry.reconciliation import CASE_OR_PADDING_VARIANTS, reconcile

# Its servers are private ones, started by its own fixtures.
pytestmark = pytest.mark.uses_database

ORPHANS = 6_000


@pytest.fixture(scope="module")
def minimum_packet_server(tmp_path_factory) -> Iterator[DatabaseSettings]:
    with private_mariadb(tmp_path_factory.mktemp("min-packet-mariadb")) as (server, paths):
        set_max_allowed_packet(paths, MIN_MAX_ALLOWED_PACKET)
        yield server


@pytest.fixture
def registry(minimum_packet_server) -> Iterator[DatabaseSettings]:
    with migrated_database(minimum_packet_server, "min_packet_") as settings:
        yield settings


def _idminter(settings: DatabaseSettings, *args: str) -> subprocess.CompletedProcess:
    return run_idminter(cli_env(settings), *args)


def test_the_server_runs_at_the_minimum_packet(registry):
    assert fetch_all(registry, "SELECT @@SESSION.max_allowed_packet") == [(MIN_MAX_ALLOWED_PACKET,)]


def test_a_pool_top_up_with_default_settings_fits_the_packet(registry):
    done = _idminter(registry, "pool", "top-up", "--target", "20000", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["free_after"] == 20_000
    assert fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'") == [
        (20_000,)
    ]


def _plant_orphans(settings: DatabaseSettings, count: int) -> tuple[list[str], list[str]]:
    """`count` assigned IDs no mapping uses, in one keyset range: half stamped by an assignment
    (evidence they once identified a record: retired), half unstamped (tracked orphans)."""
    ids = sorted(set(generate_canonical_ids_bulk(count + 100)))[:count]
    stamped, unstamped = ids[::2], ids[1::2]
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            for start in range(0, count, 1_000):  # each statement well under 64 KB
                chunk = ids[start : start + 1_000]
                cursor.executemany(
                    "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)",
                    [(value, "assigned") for value in chunk],
                )
            for start in range(0, len(stamped), 1_000):
                chunk = stamped[start : start + 1_000]
                cursor.execute(
                    "UPDATE canonical_ids SET AssignedAt = CURRENT_TIMESTAMP(6) "
                    f"WHERE CanonicalId IN ({', '.join(['%s'] * len(chunk))})",
                    chunk,
                )
        conn.commit()
    finally:
        conn.close()
    return stamped, unstamped


@pytest.mark.parametrize("repair", [False, True], ids=["report-only", "repair"])
def test_reconcile_with_thousands_of_orphans_in_one_range_fits_the_packet(registry, repair):
    stamped, unstamped = _plant_orphans(registry, ORPHANS)
    args = ["reconcile", "--json", *(["--repair", "--grace-period", "0s"] if repair else [])]
    done = _idminter(registry, *args)
    assert done.returncode in (0, 1), done.stderr  # 1: findings were reported
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    orphans = next(f for f in report["findings"] if f["finding"] == "orphan_assigned_ids")
    assert orphans["count"] == ORPHANS
    assert report["retired_orphans"] == len(stamped)
    retired = fetch_all(registry, "SELECT COUNT(*) FROM retired_canonical_ids")[0][0]
    assert retired == len(stamped)
    if repair:
        # The unstamped ones went back to the pool, under lock, in runs that fit the packet.
        free = fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'")
        assert free == [(len(unstamped),)]
    else:
        tracked = fetch_all(registry, "SELECT COUNT(*) FROM reconciliation_orphans")
        assert tracked == [(len(unstamped),)]


def _case_variants(count: int, length: int = 250) -> list[str]:
    """`count` spellings of one `length`-character value, differing only by case."""
    bits = max(1, (count - 1).bit_length())
    return [
        "".join("X" if n >> j & 1 else "x" for j in range(bits)) + "x" * (length - bits)
        for n in range(count)
    ]


def test_a_group_of_long_variants_is_reported_whole(registry):
    """300 spellings of one 250-character identifier: more than 64 KB together, beyond what
    GROUP_CONCAT keeps (group_concat_max_len, and never more than max_allowed_packet)."""
    top_up(lambda: connect(registry), 400)
    variants = _case_variants(300)
    sources = [SourceIdentifier("Work", "sierra-system-number", v) for v in variants]
    with Minter(lambda: connect(registry)) as minter:
        minter.mint_ids([MintRequest(source) for source in sources])
    report = reconcile(lambda: connect(registry))
    found = report.result(CASE_OR_PADDING_VARIANTS)
    assert found.count == 1
    (example,) = found.examples
    assert len(example) > MIN_MAX_ALLOWED_PACKET
    members = example.split(" | ")
    assert members == sorted(f"Work[sierra-system-number/{v}]" for v in variants)
