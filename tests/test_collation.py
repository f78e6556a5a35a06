"""The registry's character set and collation rule (docs/design/registry-schema.md)."""

import pymysql
import pytest
from db_helpers import fetch_all
from legacy_helpers import create_legacy_table

from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import apply_migrations

INSERT_ID = "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, 'assigned')"
INSERT_MAPPING = (
    "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
    "VALUES (%s, %s, %s, %s)"
)


def _insert(conn, rows):
    with conn.cursor() as cursor:
        for i, (ontology, system, value) in enumerate(rows):
            canonical = f"abcde{i:03d}".replace("0", "a").replace("1", "b")
            cursor.execute(INSERT_ID, (canonical,))
            cursor.execute(INSERT_MAPPING, (ontology, system, value, canonical))
    conn.commit()


def test_keys_differing_only_in_case_are_distinct(conn, registry):
    _insert(conn, [("Work", "sierra-system-number", "b1"), ("Work", "sierra-system-number", "B1")])
    rows = fetch_all(
        registry,
        "SELECT SourceId FROM identifiers WHERE SourceSystem = %s AND SourceId = %s",
        ("sierra-system-number", "b1"),
    )
    assert rows == [("b1",)]


@pytest.mark.parametrize(
    "value",
    ["café", "Ἀριστοτέλης", "東京大学", "🦠 microbes", "Müller, Hans", "e\u0301 decomposed"],
)
def test_any_unicode_value_is_stored_and_found_unchanged(conn, registry, value):
    _insert(conn, [("Concept", "label-derived", value)])
    rows = fetch_all(registry, "SELECT SourceId FROM identifiers WHERE SourceId = %s", (value,))
    assert rows == [(value,)]


def test_accents_and_normalization_forms_are_distinct(conn, registry):
    _insert(
        conn,
        [
            ("Concept", "label-derived", "cafe"),
            ("Concept", "label-derived", "café"),
            ("Concept", "label-derived", "cafe\u0301"),
        ],
    )
    assert len(fetch_all(registry, "SELECT SourceId FROM identifiers")) == 3


def test_the_server_pads_trailing_spaces_which_is_why_input_rejects_them(conn):
    """utf8mb4_bin is PAD SPACE on MySQL 8 and MariaDB: 'b1' and 'b1 ' are one key there."""
    _insert(conn, [("Work", "sierra-system-number", "b1")])
    with pytest.raises(pymysql.err.IntegrityError), conn.cursor() as cursor:
        cursor.execute(INSERT_ID, ("zzzzzzzz",))
        cursor.execute(INSERT_MAPPING, ("Work", "sierra-system-number", "b1 ", "zzzzzzzz"))
    conn.rollback()


def test_over_long_values_are_refused_not_truncated(conn, registry):
    with pytest.raises(pymysql.err.DataError), conn.cursor() as cursor:
        cursor.execute(INSERT_ID, ("abcdefgh",))
        cursor.execute(INSERT_MAPPING, ("Concept", "label-derived", "x" * 256, "abcdefgh"))
    conn.rollback()
    assert fetch_all(registry, "SELECT COUNT(*) FROM identifiers") == [(0,)]


def test_legacy_latin1_rows_copy_unchanged_and_stay_unique(empty_database):
    """A legacy latin1 case-insensitive table copies into the new schema without collisions."""
    legacy_rows = [
        ("aaaaaaaa", "Work", "Bücher Ærø", "label-derived"),
        ("bbbbbbbb", "Work", "b1161044x", "sierra-system-number"),
        ("cccccccc", "Image", "V0012345", "miro-image-number"),
    ]
    create_legacy_table(empty_database, legacy_rows, table="legacy")
    conn = connect(empty_database)
    try:
        # The legacy collation folds case: the old minter could never hold both spellings.
        with conn.cursor() as cursor, pytest.raises(pymysql.err.IntegrityError):
            cursor.execute(
                "INSERT INTO legacy VALUES ('dddddddd', 'Work', 'B1161044X', "
                "'sierra-system-number')"
            )
        conn.commit()
        apply_migrations(lambda: connect(empty_database))
        with conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) "
                "SELECT CanonicalId, 'assigned' FROM legacy"
            )
            cursor.execute(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                "SELECT OntologyType, SourceSystem, SourceId, CanonicalId FROM legacy"
            )
        conn.commit()
        copied = fetch_all(
            empty_database,
            "SELECT CanonicalId, OntologyType, SourceId, SourceSystem FROM identifiers "
            "ORDER BY CanonicalId",
        )
        assert copied == legacy_rows
    finally:
        conn.close()
