"""The copy is proved equal to the legacy table in both directions before the final lock, so the
lock only applies and re-checks what changed since; the copy is guarded meanwhile. Against the
real server."""

import random

import pymysql
import pytest
from db_helpers import as_another_client, fetch_all, registry_factory
from legacy_helpers import (
    INSERT_LEGACY,
    SPECIAL_ROWS,
    copied_rows,
    generated_rows,
    legacy_rows,
    make_legacy_registry,
    migration_triggers,
    random_id,
)

from idminter_pipeline.core.errors import LegacyVerificationError
from idminter_pipeline.registry import legacy_migration as lm
from idminter_pipeline.registry.connection import connect


def test_rows_added_to_the_copy_behind_its_back_refuse_the_swap_naming_them(legacy_database):
    rows = SPECIAL_ROWS + generated_rows(1200)
    assert not {"zzzzzzzz", "bbbbbbbb", "abcd2345"} & {row[0] for row in rows}
    settings = make_legacy_registry(legacy_database, rows)
    before = legacy_rows(settings, "identifiers")

    def intrude(progress):
        # During the copy, before the guard exists: three mappings no legacy row has. One sorts
        # after every legacy ID, one among them, and one equals the legacy 'ABCD2345' under
        # latin1_swedish_ci but not byte for byte.
        if progress.phase == "copying" and progress.batches == 1:
            as_another_client(
                settings,
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES "
                "('zzzzzzzz', 'assigned'), ('bbbbbbbb', 'assigned'), ('abcd2345', 'assigned')",
                "INSERT INTO identifiers_new (OntologyType, SourceSystem, SourceId, CanonicalId) "
                "VALUES ('Work', 'sierra-system-number', 'extra-1', 'zzzzzzzz'), "
                "('Work', 'sierra-system-number', 'extra-2', 'bbbbbbbb'), "
                "('Work', 'sierra-system-number', 'extra-3', 'abcd2345')",
            )

    with pytest.raises(LegacyVerificationError) as refused:
        lm.migrate(registry_factory(settings), batch_size=100, progress=intrude)

    message = str(refused.value)
    assert "3 rows of identifiers_new that are no legacy mapping" in message
    for extra in ("extra-1] -> zzzzzzzz", "extra-2] -> bbbbbbbb", "extra-3] -> abcd2345"):
        assert extra in message
    assert "legacy mappings missing" not in message  # every legacy row was copied
    assert lm.registry_shape(connect(settings)) is lm.RegistryShape.LEGACY
    assert legacy_rows(settings, "identifiers") == before
    assert "identifiers_legacy" not in {t for (t,) in fetch_all(settings, "SHOW TABLES")}


def test_the_guard_refuses_other_writers_to_the_copy_until_the_swap(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS + generated_rows(200))
    lm.migrate(registry_factory(settings), batch_size=100, swap=False)
    copy_before = copied_rows(settings, "identifiers_new")
    attempts = [
        "INSERT INTO identifiers_new (OntologyType, SourceSystem, SourceId, CanonicalId) "
        "VALUES ('Work', 'sierra-system-number', 'sneaky', 'ABCD2345')",
        "UPDATE identifiers_new SET SourceId = 'b1161044X' WHERE CanonicalId = 'ABCD2345'",
        "DELETE FROM identifiers_new WHERE CanonicalId = 'ABCD2345'",
    ]
    for statement, named in zip(attempts, ["sneaky", "b1161044x", "b1161044x"], strict=True):
        with pytest.raises(pymysql.err.OperationalError, match=f"{named}.*ABCD2345") as refused:
            as_another_client(settings, statement)
        assert "written only by migrate-legacy" in str(refused.value)
    assert copied_rows(settings, "identifiers_new") == copy_before

    report = lm.migrate(registry_factory(settings), batch_size=100)
    assert report.swapped
    assert migration_triggers(settings) == set()
    # The live table takes the new minter's writes again.
    as_another_client(
        settings,
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
        "VALUES ('Work', 'axiell-collections-id', 'AC-1', 'ABCD2345')",
    )


def _legacy_writes(settings, existing, rng, count):
    """`count` writes of each kind by a legacy minter (insert, update, delete, re-key); returns
    how many log entries they make."""
    statements = []
    for n in range(count):
        statements += [
            (
                INSERT_LEGACY.format(table="identifiers"),
                (random_id(rng), "Work", f"late-{n}", "calm-record-id"),
            ),
            (
                "UPDATE identifiers SET SourceId = CONCAT(SourceId, '-u') WHERE CanonicalId = %s",
                (existing.pop(),),
            ),
            ("DELETE FROM identifiers WHERE CanonicalId = %s", (existing.pop(),)),
            (
                "UPDATE identifiers SET CanonicalId = %s WHERE CanonicalId = %s",
                (random_id(rng), existing.pop()),
            ),
        ]
    as_another_client(settings, *statements)
    return count * 6  # an update logs its old and its new ID


@pytest.mark.parametrize("writes", [0, 15, 40])
def test_the_final_lock_reads_in_proportion_to_the_changes_not_to_the_table(
    legacy_database, writes
):
    """Under the lock the server reads about a dozen rows per change it applies, whatever the
    table holds (the old final pass read every row of both tables: two COUNT(*)). Changes made
    during the verification are applied without the lock when there are more than a few."""
    rows = generated_rows(20_000, seed=3)
    settings = make_legacy_registry(legacy_database, rows)
    existing = [row[0] for row in rows]
    random.Random(9).shuffle(existing)
    logged = {}

    def write_while_verifying(progress):
        # After the catch-up passes before the verification.
        if progress.phase == "verifying" and not logged:
            logged["entries"] = _legacy_writes(settings, existing, random.Random(4), writes)

    report = lm.migrate(registry_factory(settings), batch_size=1000, progress=write_while_verifying)

    assert report.swapped and report.verified
    assert report.changes_applied == logged["entries"] == 6 * writes
    under_lock = logged["entries"] if logged["entries"] <= lm.FINAL_PASS_THRESHOLD else 0
    assert report.changes_applied_under_lock == under_lock
    # Pending IDs are left out of the chunk checksums: the writes cost no row-by-row comparison.
    assert any(" chunks, 0 compared row by row" in message for message in report.messages)
    assert report.lock_rows_read <= 30 * under_lock + 100, report.lock_rows_read
    assert report.lock_rows_read < len(rows) // 10
    # The counts were derived, not read: they must still be exact.
    final = legacy_rows(settings, "identifiers_legacy")
    assert report.new_rows == report.legacy_rows == len(final) == len(rows)  # +writes -writes
    assert copied_rows(settings) == final


def test_applying_changes_moves_a_key_whose_old_id_comes_later_and_counts_exactly(
    legacy_database,
):
    """A legacy update moved source key b1 from ID aaaa2222 to bbbb3333 and gave aaaa2222 a new
    key; the log names bbbb3333 first. Applying that entry alone must take b1 away from
    aaaa2222 in the copy (a plain insert would collide) and count the rows it changed."""
    rows = [
        ("aaaa2222", "Work", "b1", "sierra-system-number"),
        ("bbbb3333", "Work", "b2", "sierra-system-number"),
    ]
    settings = make_legacy_registry(legacy_database, rows)
    lm.migrate(registry_factory(settings), batch_size=100, swap=False)
    # Write the end state unlogged, then log only bbbb3333.
    as_another_client(
        settings,
        "DROP TRIGGER idminter_legacy_au",
        "UPDATE identifiers SET SourceId = 'b3' WHERE CanonicalId = 'bbbb3333'",
        "UPDATE identifiers SET SourceId = 'b9' WHERE CanonicalId = 'aaaa2222'",
        "UPDATE identifiers SET SourceId = 'b1' WHERE CanonicalId = 'bbbb3333'",
        "INSERT INTO legacy_migration_changes (CanonicalId) VALUES ('bbbb3333')",
    )
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SET {lm.MIGRATION_SESSION_VARIABLE} = 1")  # past the guard
        applied = lm.apply_changes(
            conn, source="identifiers", target="identifiers_new", batch_size=100
        )
    finally:
        conn.close()

    assert (applied.entries, applied.ids) == (1, {"bbbb3333"})
    # b2 went (bbbb3333's old key), and b1 moved from aaaa2222 to bbbb3333: one row fewer.
    assert applied.row_delta == -1
    assert copied_rows(settings, "identifiers_new") == {
        (b"bbbb3333", b"Work", b"b1", b"sierra-system-number")
    }


def _mixed_case_ids(count, seed):
    """IDs the two collations order differently: upper and mixed case, digits and punctuation
    first, short and padded ones; unique even ignoring case (the legacy key is case-blind)."""
    rng = random.Random(seed)
    ids: dict[str, str] = {}
    while len(ids) < count:
        value = random_id(rng)
        style = rng.randrange(6)
        if style == 1:
            value = value.upper()
        elif style == 2:
            value = "".join(c.upper() if rng.random() < 0.5 else c for c in value)
        elif style == 3:
            value = rng.choice("0123456789-_~.") + value[1:]
        elif style == 4:
            value = value[: rng.randrange(1, 8)]
        elif style == 5:
            value = value[: rng.randrange(1, 7)] + " "
        ids.setdefault(value.rstrip(" ").lower(), value)
    return sorted(ids.values(), key=lambda _: rng.random())


def test_ids_that_the_two_collations_order_differently_verify_in_both_directions(
    legacy_database,
):
    ids = _mixed_case_ids(1600, seed=21)
    rows = [(value, "Work", f"m{n}", "miro-image-number") for n, value in enumerate(ids)]
    settings = make_legacy_registry(legacy_database, rows)
    lm.migrate(registry_factory(settings), batch_size=100, swap=False)

    conn = connect(settings)
    try:
        verification = lm.verify_copy(conn, batch_size=100)
    finally:
        conn.close()
    # Chunks of 500 in latin1_swedish_ci order, plus the open-ended last range on the new side.
    assert verification.chunks == 5
    assert verification.legacy_rows == verification.new_rows == len(rows)
    assert verification.chunks_compared_row_by_row > 0  # the orders really disagree

    report = lm.migrate(registry_factory(settings), batch_size=100)
    assert report.swapped and report.new_rows == len(rows)
    assert copied_rows(settings) == legacy_rows(settings, "identifiers_legacy")
