"""Migrating a legacy 1:1 registry: preserved mappings, resumption, concurrent writes, verification,
swap, finalize and rollback, against the real server."""

import random
import threading

import pymysql
import pytest
from db_helpers import fetch_all, registry_factory, write_past_the_guards
from legacy_helpers import (
    INSERT_LEGACY,
    SPECIAL_ROWS,
    LegacyWriter,
    copied_rows,
    generated_rows,
    legacy_rows,
    make_legacy_registry,
    migration_triggers,
    random_id,
    tables,
    triggers,
)

from idminter_pipeline.core.errors import LegacyMigrationError, LegacyVerificationError
from idminter_pipeline.registry import legacy_migration as lm
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.invariants import MAPPING_GUARD_NAMES, trigger_names


def _show_create(settings, table):
    return fetch_all(settings, f"SHOW CREATE TABLE `{table}`")[0][1]


def _assigned_ids(settings):
    return {
        bytes(value)
        for (value,) in fetch_all(
            settings,
            "SELECT CAST(CanonicalId AS BINARY) FROM canonical_ids WHERE Status = 'assigned'",
        )
    }


def test_a_legacy_table_migrates_with_every_mapping_preserved(legacy_database, session_database):
    rows = SPECIAL_ROWS + generated_rows(700)
    settings = make_legacy_registry(legacy_database, rows)
    before = legacy_rows(settings, "identifiers")
    legacy_ddl = _show_create(settings, "identifiers")
    seen = []

    report = lm.migrate(registry_factory(settings), batch_size=100, progress=seen.append)

    assert report.status == "swapped" and report.verified and report.swapped
    assert report.rows_copied == len(rows) == report.legacy_rows == report.new_rows
    assert [p.rows_copied for p in seen if p.phase == "copying"][-1] == len(rows)
    assert copied_rows(settings) == before
    assert _assigned_ids(settings) == {row[0] for row in before}
    # The legacy table is kept, untouched, without our triggers.
    assert legacy_rows(settings, "identifiers_legacy") == before
    assert _show_create(settings, "identifiers_legacy") == legacy_ddl.replace(
        "CREATE TABLE `identifiers`", "CREATE TABLE `identifiers_legacy`"
    )
    assert migration_triggers(settings) == set()
    # The live table carries the registry's invariant guards from the swap on.
    assert set(MAPPING_GUARD_NAMES) <= trigger_names(connect(settings), "identifiers")
    # The swapped-in table is exactly 0001's `identifiers`.
    assert _show_create(settings, "identifiers") == _show_create(session_database, "identifiers")
    assert lm.migration_status(registry_factory(settings))["phase"] == "swapped"
    # Running it again does nothing.
    again = lm.migrate(registry_factory(settings))
    assert again.status == "nothing to do" and not again.swapped


def test_the_new_table_ddl_is_0001s_identifiers_modulo_its_name(legacy_database, session_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS)
    lm.migrate(registry_factory(settings), swap=False)
    assert _show_create(settings, "identifiers_new").replace(
        "`identifiers_new`", "`identifiers`"
    ) == _show_create(session_database, "identifiers")


def test_nothing_to_do_on_a_migrated_registry(registry):
    report = lm.migrate(registry_factory(registry))
    assert report.status == "nothing to do"
    assert "identifiers_new" not in tables(registry)
    assert fetch_all(registry, "SELECT COUNT(*) FROM legacy_migration_state") == [(0,)]


def test_nothing_to_do_without_an_identifiers_table(empty_database):
    report = lm.migrate(registry_factory(empty_database))
    assert report.status == "nothing to do" and report.shape_before == "missing"
    assert tables(empty_database) == set()


class _Interrupt(Exception):
    pass


def test_an_interrupted_migration_resumes_without_redoing_work(legacy_database):
    rows = generated_rows(1000)
    settings = make_legacy_registry(legacy_database, rows)

    def interrupt_after_three_batches(progress):
        if progress.phase == "copying" and progress.batches == 3:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        lm.migrate(
            registry_factory(settings), batch_size=100, progress=interrupt_after_three_batches
        )
    assert fetch_all(
        settings, "SELECT Phase, RowsCopied, BatchesCopied FROM legacy_migration_state"
    ) == [("copying", 300, 3)]
    assert fetch_all(settings, "SELECT COUNT(*) FROM identifiers_new") == [(300,)]
    assert "identifiers_new" in tables(settings)

    resumed = []
    report = lm.migrate(registry_factory(settings), batch_size=100, progress=resumed.append)
    copying = [p for p in resumed if p.phase == "copying"]
    # Seven more batches: the three committed ones are not copied again.
    assert [p.batches for p in copying] == list(range(4, 11))
    assert copying[0].rows_copied == 400
    assert report.swapped and report.rows_copied == 1000
    assert copied_rows(settings) == legacy_rows(settings, "identifiers_legacy")
    assert fetch_all(settings, "SELECT COUNT(*) FROM canonical_ids") == [(1000,)]


def test_writes_during_the_copy_are_not_lost(legacy_database):
    rows = generated_rows(3000, seed=11)
    settings = make_legacy_registry(legacy_database, rows)
    done_ops = {"insert": 0, "update": 0, "delete": 0, "rekey": 0}
    rng = random.Random(5)
    existing = [row[0] for row in rows]

    def legacy_write(cursor, n: int) -> bool:
        op = ("insert", "update", "delete", "rekey")[n % 4]
        if op == "insert":
            new_id = random_id(rng)
            cursor.execute(
                INSERT_LEGACY.format(table="identifiers"),
                (new_id, "Work", f"new-{n}-é", "axiell-collections-id"),
            )
            existing.append(new_id)
        elif op == "update":
            target = rng.choice(existing)
            cursor.execute(
                "UPDATE identifiers SET SourceId = CONCAT(SourceId, '-u') WHERE CanonicalId = %s",
                (target,),
            )
        elif op == "delete":
            target = existing.pop(rng.randrange(len(existing)))
            cursor.execute("DELETE FROM identifiers WHERE CanonicalId = %s", (target,))
        else:
            index = rng.randrange(len(existing))
            new_id = random_id(rng)
            cursor.execute(
                "UPDATE identifiers SET CanonicalId = %s WHERE CanonicalId = %s",
                (new_id, existing[index]),
            )
            existing[index] = new_id
        done_ops[op] += 1
        return True

    writer = LegacyWriter(settings, legacy_write, at_least=200)

    def pace(progress):
        writer.start_with_the_copy(progress)
        if progress.phase != "copying" and not writer.stop.is_set():
            writer.stop.set()
            writer.join()

    report = lm.migrate(registry_factory(settings), batch_size=100, progress=pace)

    assert not writer.errors
    assert min(done_ops.values()) >= 50, done_ops
    assert report.swapped and report.changes_applied > 0
    final_legacy = legacy_rows(settings, "identifiers_legacy")
    assert final_legacy != {tuple(r) for r in rows}  # the writer really changed things
    assert copied_rows(settings) == final_legacy
    assert {row[0] for row in final_legacy} <= _assigned_ids(settings)
    assert fetch_all(settings, "SELECT COUNT(*) FROM legacy_migration_changes") == [(0,)]


def test_verification_refuses_to_swap_a_tampered_copy(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS + generated_rows(300))
    lm.migrate(registry_factory(settings), batch_size=100, swap=False)
    conn = connect(settings)
    with conn.cursor() as cursor:
        # As if the copy itself had gone wrong: other sessions are refused by the guard triggers.
        cursor.execute(f"SET {lm.MIGRATION_SESSION_VARIABLE} = 1")
        cursor.execute(
            "UPDATE identifiers_new SET SourceId = 'b1161044X' WHERE CanonicalId = 'ABCD2345'"
        )
    conn.commit()
    conn.close()

    with pytest.raises(LegacyVerificationError, match="ABCD2345"):
        lm.migrate(registry_factory(settings), batch_size=100)
    assert lm.registry_shape(connect(settings)).value == "legacy"
    assert "identifiers_legacy" not in tables(settings)


def test_verification_refuses_an_id_missing_from_canonical_ids(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS)
    lm.migrate(registry_factory(settings), swap=False)
    # Only past the guards: the legacy table still maps 'xyz'.
    write_past_the_guards(
        settings,
        "SET foreign_key_checks = 0",
        "DELETE FROM canonical_ids WHERE CanonicalId = 'xyz'",
    )
    with pytest.raises(LegacyVerificationError, match="xyz"):
        lm.migrate(registry_factory(settings))


def test_migration_refuses_ids_that_do_not_fit_and_writes_nothing(legacy_database):
    settings = make_legacy_registry(
        legacy_database, [*SPECIAL_ROWS, ("abcdefghijk", "Work", "too-long", "calm-record-id")]
    )
    with pytest.raises(LegacyMigrationError, match="abcdefghijk"):
        lm.migrate(registry_factory(settings))
    assert "identifiers_new" not in tables(settings)
    assert migration_triggers(settings) == set()
    assert fetch_all(settings, "SELECT COUNT(*) FROM canonical_ids") == [(0,)]


def test_finalize_drops_the_legacy_table(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS)
    with pytest.raises(LegacyMigrationError, match="nothing to finalize"):
        lm.finalize(registry_factory(settings))
    lm.migrate(registry_factory(settings))
    report = lm.finalize(registry_factory(settings))
    assert report.status == "finalized"
    assert "identifiers_legacy" not in tables(settings)
    assert lm.migration_status(registry_factory(settings))["phase"] == "finalized"
    with pytest.raises(LegacyMigrationError, match="finalized"):
        lm.rollback(registry_factory(settings))


def _mint_after_swap(settings, canonical, source_id):
    conn = connect(settings)
    with conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, 'assigned')"
            if canonical
            else "DO 0",
            (canonical,) if canonical else None,
        )
        cursor.execute(
            "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
            "VALUES ('Work', 'axiell-collections-id', %s, %s)",
            (source_id, canonical or "ABCD2345"),
        )
    conn.commit()
    conn.close()


def test_rollback_restores_the_legacy_table_exactly(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS + generated_rows(250))
    ddl_before = _show_create(settings, "identifiers")
    rows_before = legacy_rows(settings, "identifiers")
    lm.migrate(registry_factory(settings), batch_size=100)
    # The new minter wrote one mapping after the swap: a 1:1 table can hold it.
    _mint_after_swap(settings, "zzzz2222", "ax-1")

    report = lm.rollback(registry_factory(settings))

    assert report.rows_copied_back == 1
    assert _show_create(settings, "identifiers") == ddl_before
    assert legacy_rows(settings, "identifiers") == rows_before | {
        (b"zzzz2222", b"Work", b"ax-1", b"axiell-collections-id")
    }
    assert tables(settings) & {"identifiers_new", "identifiers_legacy"} == set()
    assert migration_triggers(settings) == set()
    assert fetch_all(settings, "SELECT COUNT(*) FROM canonical_ids") == [(0,)]
    assert lm.migration_status(registry_factory(settings))["phase"] == "none"
    # And it can be migrated again from scratch.
    assert lm.migrate(registry_factory(settings), batch_size=100).swapped


def test_rollback_refuses_when_an_alias_cannot_go_back_into_a_1_to_1_table(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS)
    lm.migrate(registry_factory(settings))
    _mint_after_swap(settings, None, "ax-alias")  # shares ABCD2345 with a legacy row
    before = copied_rows(settings)
    with pytest.raises(LegacyMigrationError, match="ax-alias"):
        lm.rollback(registry_factory(settings))
    assert copied_rows(settings) == before
    assert lm.migration_status(registry_factory(settings))["phase"] == "swapped"
    assert "identifiers_legacy" in tables(settings)


def test_rollback_before_the_swap_removes_the_copy(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS)
    rows_before = legacy_rows(settings, "identifiers")
    lm.migrate(registry_factory(settings), swap=False)
    assert triggers(settings)
    lm.rollback(registry_factory(settings))
    assert legacy_rows(settings, "identifiers") == rows_before
    assert migration_triggers(settings) == set()
    assert "identifiers_new" not in tables(settings)


def test_only_one_migration_runs_at_a_time(legacy_database):
    settings = make_legacy_registry(legacy_database, generated_rows(500))
    inside = threading.Event()
    release = threading.Event()

    def hold(progress):
        inside.set()
        release.wait(30)

    first = threading.Thread(
        target=lm.migrate,
        args=(registry_factory(settings),),
        kwargs={"batch_size": 100, "progress": hold},
    )
    first.start()
    assert inside.wait(30)
    try:
        with pytest.raises(LegacyMigrationError, match="another legacy migration"):
            lm.migrate(registry_factory(settings))
    finally:
        release.set()
        first.join()


def test_batch_size_is_clamped():
    assert lm.clamp_batch_size(1) == lm.MIN_BATCH_SIZE
    assert lm.clamp_batch_size(10**9) == lm.MAX_BATCH_SIZE
    assert lm.clamp_batch_size(5000) == 5000


def test_a_killed_copy_leaves_a_consistent_checkpoint(legacy_database):
    """The checkpoint and the batch commit together: a dead connection mid-batch loses nothing."""
    settings = make_legacy_registry(legacy_database, generated_rows(600))
    victim = {}

    def kill_own_connection(progress):
        if progress.batches == 2:
            killer = connect(settings)
            with killer.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
                    "AND info IS NULL AND id <> CONNECTION_ID() ORDER BY id"
                )
                victim["ids"] = [row[0] for row in cursor.fetchall()]
                for pid in victim["ids"]:
                    cursor.execute(f"KILL {int(pid)}")
            killer.close()

    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
        lm.migrate(registry_factory(settings), batch_size=100, progress=kill_own_connection)
    copied = fetch_all(settings, "SELECT RowsCopied FROM legacy_migration_state")[0][0]
    assert fetch_all(settings, "SELECT COUNT(*) FROM identifiers_new") == [(copied,)]
    report = lm.migrate(registry_factory(settings), batch_size=100)
    assert report.swapped
    assert copied_rows(settings) == legacy_rows(settings, "identifiers_legacy")
