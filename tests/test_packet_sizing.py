"""Statements sized to the server: any batch mints on a server with a 1 MB `max_allowed_packet`,
and a work beyond a documented limit fails alone at `extract`, its neighbours written.

The server is a private MariaDB (never the shared one) whose `max_allowed_packet` is lowered to
1 MB (`SET GLOBAL` by its administrator: every later session starts with it), so the batches
(a work with tens of thousands of 215-character item identifiers beside ordinary works) are
several times the packet. `idminter mint` runs in a real process.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from db_helpers import (
    cli_env,
    create_database,
    drop_database,
    fetch_all,
    migrated_database,
    private_mariadb,
    run_idminter,
    set_max_allowed_packet,
)
from registry_invariants import check_registry
from works_helpers import node, numbered_works, work

from idminter_pipeline.core.canonical_ids import generate_canonical_ids_bulk
from idminter_pipeline.core.errors import RegistryUnavailableError, StatementTooLargeError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import MAX_PART_LENGTH, SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.registry.outage import is_outage, ride_out
from idminter_pipeline.registry.packets import MIN_MAX_ALLOWED_PACKET, max_allowed_packet, pack
from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.works.documents import MAX_IDENTIFIERS_PER_WORK, SourceWork
from idminter_pipeline.works.sample_data import DEFAULT_START
from idminter_pipeline.works.stores import SqliteWorksStore

# Its servers are private ones, started by its own fixtures.
pytestmark = pytest.mark.uses_database

PACKET = 1024 * 1024
NEIGHBOURS = 10
# 215 characters: a long item identifier, far below the 255-character limit.
LONG_VALUE = "x" * 200 + "-{:014d}"


@pytest.fixture(scope="module")
def small_packet_server(tmp_path_factory) -> Iterator[tuple[DatabaseSettings, object]]:
    with private_mariadb(tmp_path_factory.mktemp("packet-mariadb")) as (server, paths):
        set_max_allowed_packet(paths, PACKET)
        yield server, paths


@pytest.fixture
def small_registry(small_packet_server) -> Iterator[DatabaseSettings]:
    server, _ = small_packet_server
    with migrated_database(server, "packet_") as settings:
        yield settings


def _big_work(value: str, items: int, first_item: int = 0):
    made = work("sierra-system-number", value, indexed_at="2026-07-30T09:00:00.500Z")
    made.document["data"]["items"] = [
        {"id": node("folio-item", "Item", LONG_VALUE.format(first_item + n))} for n in range(items)
    ]
    return made


def _mint_window(settings: DatabaseSettings, store_path: Path) -> subprocess.CompletedProcess:
    env = cli_env(settings, WORKS_STORE_PATH=str(store_path), ELASTICSEARCH_URL="")
    start = DEFAULT_START.isoformat().replace("+00:00", "Z")
    return run_idminter(
        env, "mint", "--window-start", start, "--window-end", "2026-07-30T10:00:00Z"
    )


def _written(store_path: Path) -> set[str]:
    with SqliteWorksStore(store_path) as store, store._guarded("read from") as conn:
        return {row[0] for row in conn.execute("SELECT source_id FROM identified_works")}


def test_the_server_really_refuses_a_statement_over_its_packet(small_registry):
    """The premise: without sizing, a 2 MB statement fails on this server, with a packet error
    (1153) or a dropped connection (2006/2013, which alone would look like an outage)."""
    # A plain pymysql connection: a registry connection would refuse the statement unsent.
    conn = pymysql.connect(
        host=small_registry.host,
        port=small_registry.port,
        user=small_registry.username,
        password=small_registry.password,
        database=small_registry.database,
    )
    try:
        with pytest.raises(pymysql.err.MySQLError) as refused, conn.cursor() as cursor:
            cursor.execute("SELECT '" + "y" * (2 * PACKET) + "'")
        assert refused.value.args[0] in (1153, 2006, 2013)
    finally:
        conn.close()


def test_a_connection_that_knows_the_limit_never_sends_more_and_nothing_retries_it(
    small_registry,
):
    conn = connect(small_registry)
    attempts = []

    def oversized() -> None:
        attempts.append(1)
        with conn.cursor() as cursor:
            cursor.execute("SELECT '" + "y" * (2 * PACKET) + "'")

    try:
        assert max_allowed_packet(conn) == PACKET
        with conn.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            (_, before) = cursor.fetchone()
        with pytest.raises(StatementTooLargeError, match="max_allowed_packet of 1,048,576"):
            ride_out(oversized, what="sending an oversized statement", bound_seconds=30)
        assert attempts == [1]  # not an outage: tried once
        with conn.cursor() as cursor:  # the session is intact: nothing was sent
            cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            (_, after) = cursor.fetchone()
        assert int(after) == int(before) + 1  # this SHOW only
    finally:
        conn.close()


def test_a_statement_nobody_sized_is_refused_unsent_on_any_registry_connection(
    small_registry, caplog
):
    """Not only the minter's: a statement built without sizing (one INSERT of 100,000 IDs,
    about 1.4 MB) over this 1 MB packet is refused before it is sent, naming the limit. Sent,
    the server drops the connection ("gone away"), which would be ridden out as an outage for
    the whole bound: no outage retry happens, and nothing is inserted. The pool top-up sizes its
    batches from the packet, so the same 100,000 IDs in one batch go in as several statements."""
    caplog.set_level(logging.WARNING, logger="idminter_pipeline.registry.outage")
    ids = sorted(set(generate_canonical_ids_bulk(100_000)))

    def unsized_insert() -> None:
        conn = connect(small_registry)
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO canonical_ids (CanonicalId) VALUES ('" + "'),('".join(ids) + "')"
                )
            conn.commit()
        finally:
            conn.close()

    with pytest.raises(StatementTooLargeError, match="max_allowed_packet of 1,048,576"):
        ride_out(unsized_insert, what="inserting unsized", bound_seconds=60)
    assert "registry unreachable" not in caplog.text  # not taken for an outage
    assert fetch_all(small_registry, "SELECT COUNT(*) FROM canonical_ids") == [(0,)]
    report = top_up(lambda: connect(small_registry), 100_000, batch_size=100_000, writers=1)
    assert report.free_after == 100_000
    # A small statement on a new connection costs no read of the limit.
    conn = connect(small_registry)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            (_, before) = cursor.fetchone()
            cursor.execute("SELECT 1")
            cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            (_, after) = cursor.fetchone()
        assert int(after) == int(before) + 2  # the SELECT and this SHOW, nothing else
    finally:
        conn.close()


def test_a_work_larger_than_the_packet_mints_beside_its_neighbours(small_registry, tmp_path):
    """20,000 item identifiers of 215 characters (4.3 MB of keys, four times the packet) beside
    ten ordinary works, in one batch, in a real `idminter mint`: every work is written."""
    top_up(lambda: connect(small_registry), 21_000)
    store_path = tmp_path / "works.sqlite3"
    big = _big_work("b-big", 20_000)
    neighbours = numbered_works(NEIGHBOURS, first_second=1)
    with SqliteWorksStore(store_path) as store:
        store.put_source([big, *neighbours])

    done = _mint_window(small_registry, store_path)

    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["works_written"] == NEIGHBOURS + 1
    assert summary["failures"] == []
    assert _written(store_path) == {big.id, *(w.id for w in neighbours)}
    (items,) = fetch_all(
        small_registry, "SELECT COUNT(*) FROM identifiers WHERE OntologyType = 'Item'"
    )[0]
    assert items == 20_000 + NEIGHBOURS
    check_registry(small_registry).assert_ok()


def _extract_failure_beside_neighbours(
    registry: DatabaseSettings, store_path: Path, oversized: SourceWork
) -> dict:
    """Mint `oversized` in one window with its neighbours: it fails alone at extract, they are
    written, none of its identifiers is minted. Its failure, for the limit it names."""
    top_up(lambda: connect(registry), 100)
    neighbours = numbered_works(NEIGHBOURS, first_second=1)
    with SqliteWorksStore(store_path) as store:
        store.put_source([oversized, *neighbours])

    done = _mint_window(registry, store_path)

    assert done.returncode == 1, done.stderr[-3000:]  # some work failed
    summary = json.loads(done.stdout)
    assert summary["works_written"] == NEIGHBOURS
    (failure,) = summary["failures"]
    assert failure["sourceIdentifier"] == oversized.id
    assert failure["stage"] == "extract"
    assert _written(store_path) == {w.id for w in neighbours}
    source_id = oversized.document["state"]["sourceIdentifier"]["value"]
    assert fetch_all(
        registry, "SELECT COUNT(*) FROM identifiers WHERE SourceId = %s", (source_id,)
    ) == [(0,)]
    return failure


def test_a_work_beyond_the_identifier_limit_fails_alone_at_extract(small_registry, tmp_path):
    """Beyond MAX_IDENTIFIERS_PER_WORK the work fails at extract naming the limit; its ten
    neighbours in the same batch are written, and none of its identifiers is minted."""
    oversized = _big_work("b-huge", MAX_IDENTIFIERS_PER_WORK)  # its own id makes one more
    failure = _extract_failure_beside_neighbours(
        small_registry, tmp_path / "works.sqlite3", oversized
    )
    assert f"{MAX_IDENTIFIERS_PER_WORK + 1:,} distinct source identifiers" in failure["detail"]
    assert "MAX_IDENTIFIERS_PER_WORK" in failure["detail"]


def test_a_work_with_an_identifier_beyond_the_part_limit_fails_alone_at_extract(
    small_registry, tmp_path
):
    """The bytes-per-identifier limit: one item identifier whose value is one character over
    MAX_PART_LENGTH fails its work at extract, naming the limit; its neighbours are written and
    none of its identifiers is minted."""
    too_long = "y" * (MAX_PART_LENGTH + 1)
    oversized = _big_work("b-long", 3)
    oversized.document["data"]["items"].append({"id": node("folio-item", "Item", too_long)})
    failure = _extract_failure_beside_neighbours(
        small_registry, tmp_path / "works.sqlite3", oversized
    )
    assert (
        f"is {MAX_PART_LENGTH + 1} characters long; at most {MAX_PART_LENGTH}"
        in (failure["detail"])
    )
    assert too_long not in failure["detail"]  # named by an excerpt, not whole


@pytest.mark.slow(seconds=10)
def test_lookups_and_provenance_split_to_the_packet_in_one_transaction(small_registry):
    """A minter call whose every statement would exceed the packet: 8,000 long keys, 4,000 of
    them inheriting (provenance rows), then looked up again. Answers are complete, and the
    statement count grows only with the bytes (each statement under the packet)."""
    top_up(lambda: connect(small_registry), 9_000)
    olds = [SourceIdentifier("Work", "old", LONG_VALUE.format(n)) for n in range(4_000)]
    news = [SourceIdentifier("Work", "new", LONG_VALUE.format(n)) for n in range(4_000)]
    with Minter(lambda: connect(small_registry)) as minter:
        first = minter.mint_ids([MintRequest(old) for old in olds])
        second = minter.mint_ids(
            [MintRequest(new, old) for new, old in zip(news, olds, strict=True)], job_id="j"
        )
        found = minter.lookup_ids([*olds, *news])
    assert len(first) == len(second) == 4_000
    given = {
        **{o: first[o].canonical_id for o in olds},
        **{n: second[n].canonical_id for n in news},
    }
    assert all(given[new] == given[old] for new, old in zip(news, olds, strict=True))
    assert found == given
    assert fetch_all(small_registry, "SELECT COUNT(*) FROM identifier_provenance") == [(4_000,)]
    check_registry(
        small_registry,
        given=list(given.items()),
        declared=list(zip(news, olds, strict=True)),
    ).assert_ok()


def test_a_row_that_cannot_fit_is_never_sent_and_is_not_an_outage():
    with pytest.raises(StatementTooLargeError) as refused:
        pack(["'" + "z" * 5_000 + "'"], head="SELECT ", budget=4_096)
    assert "max_allowed_packet" in str(refused.value)
    assert not is_outage(refused.value)
    # Rows that fit are packed in order, each statement within the budget.
    rows = [f"'{n:04d}'" for n in range(1_000)]
    statements = pack(rows, head="SELECT ", separator=",", budget=1_000)
    assert len(statements) > 1
    assert all(len(statement) <= 1_000 for statement in statements)
    assert ",".join(s.removeprefix("SELECT ") for s in statements) == ",".join(rows)


def test_a_server_below_the_supported_packet_is_refused_naming_it(small_packet_server):
    server, paths = small_packet_server
    settings = create_database(server, "tiny_packet_")
    set_max_allowed_packet(paths, 32 * 1024)
    try:
        with (
            Minter(lambda: connect(settings)) as minter,
            pytest.raises(RegistryUnavailableError) as refused,
        ):
            minter.lookup_ids([SourceIdentifier("Work", "s", "v")])
    finally:
        set_max_allowed_packet(paths, PACKET)
        drop_database(settings)
    assert "max_allowed_packet is 32,768 bytes" in str(refused.value)
    assert f"{MIN_MAX_ALLOWED_PACKET:,}" in str(refused.value)
