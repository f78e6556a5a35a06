"""Reconciliation: each finding is produced by a test that creates it, and `repair` fixes only
what is safe (and leaves the rest alone), against the real server."""

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from db_helpers import fetch_all, run_statements
from legacy_helpers import SPECIAL_ROWS, make_legacy_registry, scratch_database

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.registry import reconciliation as rc
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import apply_migrations

PROVENANCE_DDL = """CREATE TABLE IF NOT EXISTS identifier_provenance (
  Seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  EventKey BINARY(32) NOT NULL,
  Kind ENUM('inherited', 'predecessor_mismatch') CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  SuccessorOntologyType VARCHAR(255) NOT NULL,
  SuccessorSourceSystem VARCHAR(255) NOT NULL,
  SuccessorSourceId VARCHAR(255) NOT NULL,
  PredecessorOntologyType VARCHAR(255) NOT NULL,
  PredecessorSourceSystem VARCHAR(255) NOT NULL,
  PredecessorSourceId VARCHAR(255) NOT NULL,
  CanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  PredecessorCanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (Seq)
)"""


def _id(settings, canonical, status="assigned"):
    run_statements(
        settings,
        ("INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)", (canonical, status)),
    )


def _map(settings, source_id, canonical, system="sierra-system-number"):
    run_statements(
        settings,
        (
            "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
            "VALUES ('Work', %s, %s, %s)",
            (system, source_id, canonical),
        ),
    )


def _status(settings, canonical):
    rows = fetch_all(
        settings, "SELECT Status FROM canonical_ids WHERE CanonicalId = %s", (canonical,)
    )
    return rows[0][0] if rows else None


def _reconcile(settings, **kwargs):
    return rc.reconcile(lambda: connect(settings), batch_size=100, **kwargs)


def test_a_clean_registry_has_no_findings(registry):
    for i, canonical in enumerate(["abcdefgh", "bcdefghj", "cdefghjk"]):
        _id(registry, canonical)
        _map(registry, f"b{i}", canonical)
    _id(registry, "ddddeeee", "free")
    report = _reconcile(registry)
    frame = report.to_frame()
    assert list(frame["finding"]) == list(rc.FINDINGS)
    assert frame.set_index("finding")["count"].to_dict() == dict.fromkeys(rc.FINDINGS, 0)
    assert report.result(rc.PREDECESSOR_MISMATCHES).status in {"ok", "unavailable"}
    assert report.changes == []


def test_free_id_in_use_is_found_and_repair_marks_it_assigned(registry):
    _id(registry, "freeused", "free")
    _map(registry, "b1", "freeused")
    _id(registry, "reallyfr", "free")

    report = _reconcile(registry)
    found = report.result(rc.FREE_IDS_IN_USE)
    assert (found.status, found.count, found.examples) == ("found", 1, ["freeused"])
    assert _status(registry, "freeused") == "free"  # a report changes nothing

    repaired = _reconcile(registry, repair=True)
    assert [(c.action, c.canonical_id) for c in repaired.changes] == [
        ("marked assigned", "freeused")
    ]
    assert _status(registry, "freeused") == "assigned"
    assert _status(registry, "reallyfr") == "free"
    assert _reconcile(registry).result(rc.FREE_IDS_IN_USE).count == 0


def test_orphans_return_to_the_pool_only_after_the_grace_period(registry):
    _id(registry, "xrphanab")
    _id(registry, "usedabcd")
    _map(registry, "b1", "usedabcd")

    first = _reconcile(registry, repair=True, grace_period=timedelta(hours=1))
    assert first.result(rc.ORPHAN_ASSIGNED_IDS).examples == ["xrphanab"]
    assert first.changes == []  # first seen just now: inside the grace period
    assert _status(registry, "xrphanab") == "assigned"
    assert fetch_all(registry, "SELECT CanonicalId FROM reconciliation_orphans") == [("xrphanab",)]

    run_statements(
        registry, "UPDATE reconciliation_orphans SET FirstSeenAt = FirstSeenAt - INTERVAL 2 HOUR"
    )
    later = _reconcile(registry, repair=True, grace_period=timedelta(hours=1))
    assert [(c.action, c.canonical_id) for c in later.changes] == [("returned to pool", "xrphanab")]
    assert _status(registry, "xrphanab") == "free"
    assert _status(registry, "usedabcd") == "assigned"
    assert fetch_all(registry, "SELECT COUNT(*) FROM reconciliation_orphans") == [(0,)]


def test_an_orphan_that_gains_a_mapping_is_forgotten_and_never_freed(registry):
    _id(registry, "xrphanab")
    _reconcile(registry)
    run_statements(
        registry, "UPDATE reconciliation_orphans SET FirstSeenAt = FirstSeenAt - INTERVAL 30 DAY"
    )
    _map(registry, "b1", "xrphanab")  # e.g. inherited by a successor
    report = _reconcile(registry, repair=True, grace_period=timedelta(days=7))
    assert report.changes == []
    assert _status(registry, "xrphanab") == "assigned"
    assert fetch_all(registry, "SELECT COUNT(*) FROM reconciliation_orphans") == [(0,)]


def test_the_recheck_under_lock_keeps_an_id_a_mapping_took_after_the_scan(registry):
    _id(registry, "xrphanab")
    _id(registry, "xrphancd")
    _map(registry, "b1", "xrphancd")  # took it between the scan and the repair
    conn = connect(registry)
    try:
        outcome = rc.return_orphans_to_pool(conn, ["xrphanab", "xrphancd"])
    finally:
        conn.close()
    assert outcome == {"xrphanab": rc.RETURNED, "xrphancd": "kept: a mapping uses it"}
    assert _status(registry, "xrphanab") == "free"
    assert _status(registry, "xrphancd") == "assigned"


def test_an_orphan_in_a_legacy_format_is_never_returned(registry):
    _id(registry, "ABCD2345")  # legacy-format ID, unused
    report = _reconcile(registry, repair=True, grace_period=timedelta(0))
    assert report.result(rc.ORPHAN_ASSIGNED_IDS).count == 1
    assert report.changes == []
    assert _status(registry, "ABCD2345") == "assigned"


def test_a_mapping_whose_id_is_missing_is_reported_and_left_alone(registry):
    run_statements(
        registry,
        "SET foreign_key_checks = 0",
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
        "VALUES ('Work', 'sierra-system-number', 'b9', 'missingx')",
    )
    report = _reconcile(registry, repair=True, grace_period=timedelta(0))
    found = report.result(rc.MAPPINGS_MISSING_ID)
    assert (found.count, found.repairable) == (1, False)
    assert found.examples == ["Work[sierra-system-number/b9] -> missingx"]
    assert report.changes == []
    assert _status(registry, "missingx") is None


def test_case_and_padding_variants_are_reported_and_left_alone(registry):
    for i, (system, value) in enumerate(
        [
            ("sierra-system-number", "b1161044x"),
            ("sierra-system-number", "B1161044X"),
            ("sierra-system-number", " b2"),
            ("sierra-system-number", "b2"),
            ("Sierra-System-Number", "b3"),
            ("sierra-system-number", "b3"),
            ("sierra-system-number", "b4"),
        ]
    ):
        canonical = f"abcdefg{'abcdefghjk'[i]}"
        _id(registry, canonical)
        _map(registry, value, canonical, system=system)
    report = _reconcile(registry, repair=True, grace_period=timedelta(0))
    found = report.result(rc.CASE_OR_PADDING_VARIANTS)
    assert found.count == 3
    assert sorted(found.examples) == sorted(
        [
            "Work[sierra-system-number/B1161044X] | Work[sierra-system-number/b1161044x]",
            "Work[sierra-system-number/ b2] | Work[sierra-system-number/b2]",
            "Work[Sierra-System-Number/b3] | Work[sierra-system-number/b3]",
        ]
    )
    assert report.changes == []
    assert fetch_all(registry, "SELECT COUNT(*) FROM identifiers") == [(7,)]


@pytest.fixture
def scratch_registry(server_settings):
    for settings in scratch_database(server_settings):
        apply_migrations(lambda settings=settings: connect(settings))
        yield settings


def test_predecessor_mismatches_are_read_from_the_provenance_table(scratch_registry):
    run_statements(
        scratch_registry,
        PROVENANCE_DDL,
        "INSERT INTO identifier_provenance (EventKey, Kind, SuccessorOntologyType, "
        "SuccessorSourceSystem, SuccessorSourceId, PredecessorOntologyType, "
        "PredecessorSourceSystem, PredecessorSourceId, CanonicalId, PredecessorCanonicalId) "
        "VALUES (UNHEX(SHA2('a', 256)), 'predecessor_mismatch', 'Work', 'axiell-collections-id', "
        "'12345', 'Work', 'sierra-system-number', 'b1161044x', 'abcdefgh', 'bcdefghj'), "
        "(UNHEX(SHA2('b', 256)), 'inherited', 'Work', 'axiell-collections-id', '6', 'Work', "
        "'sierra-system-number', 'b6', 'cdefghjk', 'cdefghjk')",
    )
    found = _reconcile(scratch_registry).result(rc.PREDECESSOR_MISMATCHES)
    assert (found.status, found.count) == ("found", 1)
    assert found.examples == [
        "Work[axiell-collections-id/12345] (abcdefgh) declares "
        "Work[sierra-system-number/b1161044x] (bcdefghj)"
    ]


def test_predecessor_mismatches_are_unavailable_without_the_provenance_table(scratch_registry):
    if "identifier_provenance" in {t for (t,) in fetch_all(scratch_registry, "SHOW TABLES")}:
        run_statements(scratch_registry, "DROP TABLE identifier_provenance")
    found = _reconcile(scratch_registry).result(rc.PREDECESSOR_MISMATCHES)
    assert found.status == "unavailable" and "0002" in found.note


def test_a_legacy_registry_is_reported_as_unavailable(server_settings):
    for settings in scratch_database(server_settings):
        make_legacy_registry(settings, SPECIAL_ROWS)
        report = _reconcile(settings)
        assert set(report.to_frame()["status"]) == {"unavailable"}
        assert "migrate-legacy" in report.result(rc.ORPHAN_ASSIGNED_IDS).note


def test_scans_cover_every_batch(registry):
    """More IDs than one batch: counts must include every batch, not the first."""
    conn = connect(registry)
    with conn.cursor() as cursor:
        ids = [f"a{n:07d}".replace("0", "a").replace("1", "b") for n in range(350)]
        ids = sorted(set(ids))
        cursor.executemany(
            "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)",
            [(value, "assigned") for value in ids],
        )
    conn.commit()
    conn.close()
    assert _reconcile(registry).result(rc.ORPHAN_ASSIGNED_IDS).count == len(ids)


def test_grace_period_parsing():
    assert rc.parse_duration("7d") == timedelta(days=7)
    assert rc.parse_duration("90m") == timedelta(minutes=90)
    with pytest.raises(InvalidInputError, match="'soon'"):
        rc.parse_duration("soon")


def test_cli_prints_a_table_json_and_repairs(registry_env):
    _id(registry_env, "freeused", "free")
    _map(registry_env, "b1", "freeused")
    runner = CliRunner()

    table = runner.invoke(main, ["reconcile"])
    assert table.exit_code == 1  # a free ID in use remains
    assert "free_ids_in_use" in table.stdout and "critical" in table.stdout

    as_json = runner.invoke(main, ["reconcile", "--json"])
    payload = json.loads(as_json.stdout)
    assert {f["finding"]: f["count"] for f in payload["findings"]}[rc.FREE_IDS_IN_USE] == 1

    repaired = runner.invoke(main, ["reconcile", "--repair", "--grace-period", "30d"])
    assert repaired.exit_code == 0, repaired.output
    assert "marked assigned" in repaired.stdout and "freeused" in repaired.stdout

    bad = runner.invoke(main, ["reconcile", "--grace-period", "soon"])
    assert bad.exit_code == 2 and "'soon'" in bad.stderr
