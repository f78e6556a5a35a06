"""A legacy migration dry run reports what it would copy and every problem, writing nothing."""

from db_helpers import fetch_all
from legacy_helpers import SPECIAL_ROWS, make_legacy_registry, tables, triggers

from idminter_pipeline.registry import legacy_migration as lm
from idminter_pipeline.registry.connection import connect

PROBLEM_ROWS = [
    ("abcdefghijk", "Work", "too-long-id", "calm-record-id"),
    ("abcdéfgh", "Work", "non-ascii-id", "calm-record-id"),
    ("r2r2r2r2", "Work", " leading-space", "sierra-system-number"),
    ("s3s3s3s3", "Work", "ctl\x01char", "sierra-system-number"),
    ("t4t4t4t4", "Person", "p1", "label-derived"),
]


def _snapshot(settings):
    names = sorted(tables(settings))
    sums = fetch_all(settings, f"CHECKSUM TABLE {', '.join(f'`{n}`' for n in names)}")
    return names, sorted(triggers(settings)), sorted(sums)


def test_dry_run_reports_problems_and_writes_nothing(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS + PROBLEM_ROWS)
    before = _snapshot(settings)

    report = lm.dry_run(lambda: connect(settings), batch_size=2)

    assert _snapshot(settings) == before
    assert report.shape == "legacy" and report.phase == "none"
    assert report.legacy_rows == report.would_copy == 11
    assert report.batch_size == lm.MIN_BATCH_SIZE and report.batches == 1
    findings = report.findings
    assert findings["ids_not_fitting_varchar8_ascii"].count == 2
    assert {row[0] for row in findings["ids_not_fitting_varchar8_ascii"].examples} == {
        "abcdefghijk",
        "abcdéfgh",
    }
    assert {row[0] for row in findings["ids_breaking_current_format"].examples} == {
        "ABCD2345",
        "1bcdefgh",
        "xyz",
        "olid1234",
        "abcdefghijk",
        "abcdéfgh",
    }
    assert {row[3] for row in findings["source_parts_padded_empty_or_control"].examples} == {
        "i1234567 ",
        " leading-space",
        "ctl\x01char",
    }
    assert findings["sources_colliding_under_utf8mb4_bin"].count == 0
    assert findings["unregistered_ontology_types"].examples == ["Person"]
    assert report.blocking
    assert report.ontology_types["Work"] == 7


def test_dry_run_on_a_clean_legacy_table_is_not_blocking(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS)
    report = lm.dry_run(lambda: connect(settings))
    assert not report.blocking
    assert report.findings["ids_breaking_current_format"].count == 4
    # The IDs that break today's format still migrate unchanged.
    assert lm.migrate(lambda: connect(settings)).swapped


def test_dry_run_during_a_migration_counts_what_is_left(legacy_database):
    settings = make_legacy_registry(legacy_database, SPECIAL_ROWS)
    lm.migrate(lambda: connect(settings), swap=False)
    report = lm.dry_run(lambda: connect(settings))
    assert report.phase == "copied"


def test_dry_run_without_a_legacy_table(registry):
    report = lm.dry_run(lambda: connect(registry))
    assert report.shape == "migrated" and report.legacy_rows == 0 and not report.blocking
