"""A published canonical ID cannot move: the database refuses, whoever asks, to change or delete a
mapping or to hand a once-mapped ID back to the pool; the one way through is the admin's permit,
and the guard records what it let through. Against the real server (the test account holds every
privilege on its database, like a person at a SQL prompt with the admin account); the production
accounts are tried in test_server_privileges.py."""

from __future__ import annotations

import random
import threading

import pymysql
import pytest
from db_helpers import as_another_client, fetch_all, registry_factory
from legacy_helpers import (
    INSERT_LEGACY,
    LegacyWriter,
    generated_rows,
    make_legacy_registry,
    random_id,
)

from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry import legacy_migration as lm
from idminter_pipeline.registry import reconciliation
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.invariants import (
    RULE_MAPPING_IMMUTABLE,
    RULE_MAPPING_UNDELETABLE,
    RULE_PUBLISHED_ID_KEPT,
    mapping_change_permit,
    refused_rule,
)
from idminter_pipeline.registry.minting import MintRequest
from idminter_pipeline.registry.reconciliation.retired_ids import retire_mapping
from idminter_pipeline.registry.schema import (
    apply_migrations,
    migration_status,
    rollback_migrations,
)

FAST_PATH_MIGRATION = "0011_registry_pool_guard_fast_path"
FIVE_ROWS = [(f"leg0000{n}", "Work", f"b{n}", "sierra-system-number") for n in range(1, 6)]


def _refused(settings, *statements) -> str | None:
    """The rule the database names refusing the last of `statements`, or None if it ran."""
    try:
        as_another_client(settings, *statements)
    except pymysql.err.MySQLError as error:
        rule = refused_rule(error)
        assert rule is not None, error
        return rule
    return None


def _mappings(settings, table="identifiers"):
    return set(
        fetch_all(
            settings,
            "SELECT CAST(OntologyType AS BINARY), CAST(SourceSystem AS BINARY), "
            f"CAST(SourceId AS BINARY), CAST(CanonicalId AS BINARY) FROM {table}",
        )
    )


def test_the_five_row_legacy_registry_keeps_its_mappings_after_the_swap(legacy_database):
    settings = make_legacy_registry(legacy_database, FIVE_ROWS)
    assert lm.migrate(registry_factory(settings)).swapped
    before = _mappings(settings)
    assert len(before) == 5

    assert _refused(settings, "DELETE FROM identifiers WHERE CanonicalId = 'leg00003'") == (
        RULE_MAPPING_UNDELETABLE
    )
    assert _refused(
        settings, "UPDATE identifiers SET SourceId = 'b3' WHERE CanonicalId = 'leg00004'"
    ) == (RULE_MAPPING_IMMUTABLE)
    assert _mappings(settings) == before
    assert fetch_all(settings, "SELECT COUNT(*) FROM mapping_changes") == [(0,)]


@pytest.fixture
def published(registry, minter):
    """A registry with a free pool and two published mappings, one inherited from the other."""
    as_another_client(
        registry,
        "INSERT INTO canonical_ids (CanonicalId) VALUES ('aaaa2222'), ('bbbb3333'), ('cccc4444')",
    )
    b1 = SourceIdentifier.parse("Work[sierra-system-number/b1]")
    f1 = SourceIdentifier.parse("Work[folio-instance/f1]")
    minter.mint_ids([MintRequest(b1)])
    minter.mint_ids([MintRequest(f1, b1)])
    (canonical_id,) = set(minter.lookup_ids([b1, f1]).values())
    return registry, canonical_id


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        # To another ID of the pool, whichever one the claim gave b1.
        (
            "UPDATE identifiers SET CanonicalId = IF(CanonicalId = 'cccc4444', 'bbbb3333', "
            "'cccc4444') WHERE SourceId = 'b1'",
            "immutable",
        ),
        ("UPDATE identifiers SET SourceId = 'b2' WHERE SourceId = 'b1'", "immutable"),
        ("UPDATE identifiers SET SourceId = 'b1 ' WHERE SourceId = 'b1'", "immutable"),
        ("UPDATE identifiers SET SourceSystem = 'calm' WHERE SourceId = 'b1'", "immutable"),
        ("UPDATE identifiers SET OntologyType = 'Image' WHERE SourceId = 'b1'", "immutable"),
        ("DELETE FROM identifiers WHERE SourceId = 'b1'", "undeletable"),
        ("DELETE FROM identifiers", "undeletable"),
        ("UPDATE canonical_ids SET Status = 'free' WHERE Status = 'assigned'", "kept"),
        ("UPDATE canonical_ids SET CanonicalId = 'dddd5555' WHERE Status = 'assigned'", "kept"),
        ("DELETE FROM canonical_ids WHERE Status = 'assigned'", "kept"),
    ],
)
def test_every_statement_that_would_move_a_published_id_is_refused_naming_its_rule(
    published, statement, rule
):
    settings, canonical_id = published
    mappings = _mappings(settings)
    pool = fetch_all(settings, "SELECT CanonicalId, Status FROM canonical_ids ORDER BY 1")
    named = _refused(settings, statement)
    assert (
        named
        == {
            "immutable": RULE_MAPPING_IMMUTABLE,
            "undeletable": RULE_MAPPING_UNDELETABLE,
            "kept": RULE_PUBLISHED_ID_KEPT,
        }[rule]
    )
    assert _mappings(settings) == mappings
    assert fetch_all(settings, "SELECT CanonicalId, Status FROM canonical_ids ORDER BY 1") == pool
    assert canonical_id in {row[3].decode() for row in mappings}


def test_a_rename_that_only_adds_a_trailing_space_is_refused(registry):
    # ascii_bin is PAD SPACE: 'ret0001' = 'ret0001 ', yet the bytes differ. A retired ID has no
    # mapping, so no foreign key stands in for the guard.
    as_another_client(
        registry,
        "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('ret0001', 'assigned')",
        "INSERT INTO retired_canonical_ids (CanonicalId, Reason) VALUES ('ret0001', 'withdrawn')",
    )
    statement = "UPDATE canonical_ids SET CanonicalId = 'ret0001 ' WHERE CanonicalId = 'ret0001'"
    assert _refused(registry, statement) == RULE_PUBLISHED_ID_KEPT
    assert fetch_all(registry, "SELECT CONCAT('[', CanonicalId, ']') FROM canonical_ids") == [
        ("[ret0001]",)
    ]


def test_the_admins_permit_also_returns_a_once_mapped_id_to_the_pool(published):
    settings, canonical_id = published
    free_it = f"UPDATE canonical_ids SET Status = 'free' WHERE CanonicalId = '{canonical_id}'"
    conn = connect(settings)
    try:
        with mapping_change_permit(conn, "test"), conn.cursor() as cursor:
            assert cursor.execute(free_it) == 1
        conn.rollback()
    finally:
        conn.close()
    assert _refused(settings, free_it) == RULE_PUBLISHED_ID_KEPT


def _update_guard(settings) -> str:
    ((body,),) = fetch_all(
        settings,
        "SELECT action_statement FROM information_schema.triggers "
        "WHERE trigger_schema = DATABASE() AND trigger_name = 'idminter_pool_guard_bu'",
    )
    return body


def test_the_fast_path_migration_swaps_the_update_guard_both_ways(empty_database):
    factory = registry_factory(empty_database)
    apply_migrations(factory)
    as_another_client(
        empty_database,
        "INSERT INTO canonical_ids (CanonicalId) VALUES ('aaaa2222'), ('bbbb3333')",
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
        "VALUES ('Work', 'sierra-system-number', 'b1', 'aaaa2222')",
        "UPDATE canonical_ids SET Status = 'assigned'",
    )
    fast = _update_guard(empty_database)
    # Down to and including the fast path's migration, whatever later migrations add.
    applied = [state.version for state in migration_status(factory) if state.applied]
    later = applied[applied.index(FAST_PATH_MIGRATION) :]
    assert rollback_migrations(factory, count=len(later)) == later[::-1]
    assert "DECLARE" in _update_guard(empty_database) and "DECLARE" not in fast
    freeing_and_renaming = (
        "UPDATE canonical_ids SET Status = 'free' WHERE CanonicalId = 'aaaa2222'",
        "UPDATE canonical_ids SET CanonicalId = 'cccc4444' WHERE CanonicalId = 'bbbb3333'",
    )
    for statement in freeing_and_renaming:
        assert _refused(empty_database, statement) == RULE_PUBLISHED_ID_KEPT
    assert apply_migrations(factory) == later
    assert _update_guard(empty_database) == fast
    for statement in freeing_and_renaming:
        assert _refused(empty_database, statement) == RULE_PUBLISHED_ID_KEPT
    assert fetch_all(
        empty_database,
        "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE()",
    ) == [(4,)]


def test_a_session_variable_opens_nothing(published):
    settings, _ = published
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET @idminter_legacy_migration = 1, @permit = 'yes'")
            with pytest.raises(pymysql.err.OperationalError) as refused:
                cursor.execute("DELETE FROM identifiers WHERE SourceId = 'b1'")
        assert refused_rule(refused.value) == RULE_MAPPING_UNDELETABLE
    finally:
        conn.rollback()
        conn.close()


def test_what_keeps_ids_and_keys_still_runs(published, minter):
    settings, canonical_id = published
    # The minter's idempotent insert of an existing key, a no-op update, a free ID renamed.
    as_another_client(
        settings,
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) VALUES "
        f"('Work', 'sierra-system-number', 'b1', '{canonical_id}') "
        "ON DUPLICATE KEY UPDATE CanonicalId = CanonicalId",
        "UPDATE identifiers SET SourceId = SourceId",
        "UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId = 'cccc4444'",
    )
    # An assigned ID never published (no stamp, no mapping, no record) goes back and may go.
    as_another_client(
        settings,
        "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('eeee6666', 'assigned')",
        "UPDATE canonical_ids SET Status = 'free' WHERE CanonicalId = 'eeee6666'",
        "DELETE FROM canonical_ids WHERE CanonicalId = 'eeee6666'",
    )
    assert fetch_all(
        settings, "SELECT COUNT(*) FROM canonical_ids WHERE CanonicalId = 'eeee6666'"
    ) == [(0,)]


def test_an_orphan_never_published_still_goes_back_through_the_repair(registry):
    as_another_client(
        registry, "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('ffff7777', 'assigned')"
    )
    outcome = reconciliation.return_orphans_to_pool(connect(registry), ["ffff7777"])
    assert outcome == {"ffff7777": reconciliation.RETURNED}
    assert fetch_all(
        registry, "SELECT Status FROM canonical_ids WHERE CanonicalId = 'ffff7777'"
    ) == [("free",)]


def test_retiring_a_mapping_is_the_admins_path_and_is_recorded(published):
    settings, canonical_id = published
    b1 = SourceIdentifier.parse("Work[sierra-system-number/b1]")
    f1 = SourceIdentifier.parse("Work[folio-instance/f1]")

    kept = retire_mapping(registry_factory(settings), f1, "duplicate record merged away")
    assert (kept.canonical_id, kept.still_mapped_by) == (canonical_id, 1)
    retired = retire_mapping(registry_factory(settings), b1, "withdrawn from the catalogue")
    assert retired.still_mapped_by == 0

    assert _mappings(settings) == set()
    changes = fetch_all(
        settings,
        "SELECT Action, SourceId, CanonicalId, Reason, Account FROM mapping_changes ORDER BY Seq",
    )
    assert [(a, s, c) for a, s, c, _, _ in changes] == [
        ("deleted", "f1", canonical_id),
        ("deleted", "b1", canonical_id),
    ]
    assert changes[1][3] == "retire-mapping: withdrawn from the catalogue"
    assert changes[1][4].startswith(f"{settings.username}@")
    assert fetch_all(settings, "SELECT COUNT(*) FROM mapping_change_permits") == [(0,)]
    assert fetch_all(
        settings,
        "SELECT CanonicalId FROM retired_canonical_ids WHERE CanonicalId = %s",
        (canonical_id,),
    ) == [(canonical_id,)]
    # Gone from every mapping, the ID still never goes back: the record keeps it.
    as_another_client(settings, "DELETE FROM retired_canonical_ids")
    assert (
        _refused(
            settings,
            f"UPDATE canonical_ids SET Status = 'free' WHERE CanonicalId = '{canonical_id}'",
        )
        == RULE_PUBLISHED_ID_KEPT
    )


def test_a_permit_is_for_its_own_transaction_and_session(published):
    settings, _ = published
    conn = connect(settings)
    try:
        with mapping_change_permit(conn, "test"):
            with conn.cursor() as cursor:
                cursor.execute(
                    "DELETE FROM identifiers WHERE OntologyType = 'Work' "
                    "AND SourceSystem = 'folio-instance' AND SourceId = 'f1'"
                )
            # Another session holds no permit.
            assert _refused(
                settings,
                "DELETE FROM identifiers WHERE OntologyType = 'Work' "
                "AND SourceSystem = 'sierra-system-number' AND SourceId = 'b1'",
            ) == (RULE_MAPPING_UNDELETABLE)
        conn.rollback()
    finally:
        conn.close()
    assert len(_mappings(settings)) == 2
    assert fetch_all(settings, "SELECT COUNT(*) FROM mapping_changes") == [(0,)]


def test_a_legacy_writer_running_through_the_swap_loses_and_adds_nothing(legacy_database):
    rows = generated_rows(2000, seed=13)
    settings = make_legacy_registry(legacy_database, rows)
    swapped = threading.Event()
    after_swap = {"attempts": 0, "refused": 0}
    rng = random.Random(3)
    # Writes during the copy delete and move legacy rows, so after the swap each write aims at
    # an ID the live table holds (one that hits no row would pass any guard, and prove nothing).
    targets = [row[0] for row in rows]

    def legacy_write(cursor, n: int) -> bool:
        was_swapped = swapped.is_set()
        existing = targets
        target = rng.choice(existing)
        statement = [
            (
                INSERT_LEGACY.format(table="identifiers"),
                (random_id(rng), "Work", f"late-{n}", "calm-record-id"),
            ),
            (
                "UPDATE identifiers SET SourceId = CONCAT(SourceId, '-u') WHERE CanonicalId = %s",
                (target,),
            ),
            ("DELETE FROM identifiers WHERE CanonicalId = %s", (target,)),
            (
                "UPDATE identifiers SET CanonicalId = %s WHERE CanonicalId = %s",
                (rng.choice(existing), target),
            ),
        ][n % 4]
        try:
            cursor.execute(*statement)
        except pymysql.err.MySQLError:
            if not was_swapped:
                return True  # a legacy write refused before the swap: not this test's
            after_swap["refused"] += 1
        if was_swapped:
            after_swap["attempts"] += 1
        return after_swap["attempts"] < 400

    writer = LegacyWriter(settings, legacy_write)
    report = lm.migrate(
        registry_factory(settings), batch_size=100, progress=writer.start_with_the_copy
    )
    targets = [c for (c,) in fetch_all(settings, "SELECT CanonicalId FROM identifiers")]
    swapped.set()
    writer.join(60)
    writer.stop.set()
    assert not writer.errors
    assert report.swapped
    assert after_swap["attempts"] >= 400
    # Every write after the swap was refused: the live table is the legacy table as swapped,
    # 0 mappings missing and 0 foreign.
    legacy = {
        (o, s, v, c)
        for c, o, v, s in fetch_all(
            settings,
            "SELECT CAST(CanonicalId AS BINARY), CAST(OntologyType AS BINARY), "
            "CAST(SourceId AS BINARY), CAST(SourceSystem AS BINARY) FROM identifiers_legacy",
        )
    }
    live = _mappings(settings)
    assert len(legacy - live) == 0
    assert len(live - legacy) == 0
    assert after_swap["refused"] == after_swap["attempts"]
