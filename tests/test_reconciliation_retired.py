"""Published IDs are never reused: `reconcile --repair` returns to the pool only orphans that
never appeared in any mapping, and retires the others (orphans with a public past).

Each way an ID can show that it identified a record is created for real here: a minted mapping
deleted by hand, a provenance row, a legacy row deleted during a live legacy migration (before
and after finalize), the legacy table and its change log. A grace period of zero and repeated
repairs give the repair every chance to free them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from db_helpers import fetch_all, registry_factory, run_statements, write_past_the_guards
from legacy_helpers import make_legacy_registry

from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry import legacy_migration as lm
from idminter_pipeline.registry import reconciliation as rc
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.registry.reconciliation.retired_ids import (
    ASSIGNED_BY_A_MAPPING,
    COPIED_FROM_LEGACY,
    IN_THE_CHANGE_LOG,
    IN_THE_LEGACY_TABLE,
    NAMED_BY_PROVENANCE,
    once_mapped,
)
from idminter_pipeline.registry.schema import (
    apply_migrations,
    migration_status,
    rollback_migrations,
)


def _status(settings, canonical_id):
    rows = fetch_all(
        settings, "SELECT Status FROM canonical_ids WHERE CanonicalId = %s", (canonical_id,)
    )
    return rows[0][0] if rows else None


def _retired(settings):
    return dict(fetch_all(settings, "SELECT CanonicalId, Reason FROM retired_canonical_ids"))


def _repair(settings, **kwargs):
    return rc.reconcile(
        lambda: connect(settings), repair=True, grace_period=timedelta(0), batch_size=100, **kwargs
    )


def _returned(report):
    return [c.canonical_id for c in report.changes if c.action == "returned to pool"]


def _assigned_by_hand(settings, *canonical_ids):
    """IDs inserted as assigned with no mapping at all: what repair may free."""
    run_statements(
        settings,
        *[
            ("INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, 'assigned')", (c,))
            for c in canonical_ids
        ],
    )


def test_an_id_whose_mapping_was_deleted_by_hand_is_retired_never_freed(registry):
    run_statements(
        registry, "INSERT INTO canonical_ids (CanonicalId) VALUES ('mintedab'), ('spareabc')"
    )
    source = SourceIdentifier("Work", "sierra-system-number", "b1")
    with Minter(lambda: connect(registry)) as minter:
        # The claim starts at a random point of the pool: either free ID may be the one.
        minted = minter.mint_ids([MintRequest(source)])[source].canonical_id
    assert minted in {"mintedab", "spareabc"}
    # By hand, past the guards (from before them): no trace left.
    write_past_the_guards(registry, "DELETE FROM identifiers WHERE SourceId = 'b1'")
    _assigned_by_hand(registry, "neverabc")  # assigned, but no mapping ever held it

    first = _repair(registry)
    assert first.result(rc.ORPHAN_ASSIGNED_IDS).count == 2
    assert _returned(first) == ["neverabc"]
    assert first.newly_retired == [(minted, ASSIGNED_BY_A_MAPPING)]
    assert "1 retired" in first.result(rc.ORPHAN_ASSIGNED_IDS).note
    assert _status(registry, minted) == "assigned"
    assert _retired(registry) == {minted: ASSIGNED_BY_A_MAPPING}

    # However often repair runs, the published ID stays out of the pool, and the next mint
    # takes a free ID, never it.
    again = _repair(registry)
    assert _returned(again) == [] and again.newly_retired == []
    assert again.retired_orphans == 1
    assert _status(registry, minted) == "assigned"
    other = SourceIdentifier("Work", "sierra-system-number", "b2")
    with Minter(lambda: connect(registry)) as minter:
        assert minter.mint_ids([MintRequest(other)])[other].canonical_id != minted


def test_an_id_named_by_provenance_is_retired_and_stays_retired_after_the_rows_go(registry):
    _assigned_by_hand(registry, "heirabcd", "predabcd", "neverabc")
    run_statements(
        registry,
        # An inheritance of one ID, and a mismatch naming another as the predecessor's.
        "INSERT INTO identifier_provenance (EventKey, Kind, SuccessorOntologyType, "
        "SuccessorSourceSystem, SuccessorSourceId, PredecessorOntologyType, "
        "PredecessorSourceSystem, PredecessorSourceId, CanonicalId, PredecessorCanonicalId) "
        "VALUES (UNHEX(SHA2('a', 256)), 'inherited', 'Work', 'axiell', 'AC-1', 'Work', "
        "'sierra', 'b1', 'heirabcd', 'heirabcd'), (UNHEX(SHA2('b', 256)), "
        "'predecessor_mismatch', 'Work', 'axiell', 'AC-2', 'Work', 'sierra', 'b2', "
        "'otherabc', 'predabcd')",
    )
    report = _repair(registry)
    assert _returned(report) == ["neverabc"]
    assert _retired(registry) == {"heirabcd": NAMED_BY_PROVENANCE, "predabcd": NAMED_BY_PROVENANCE}
    # The evidence is recorded: pruning provenance does not put the IDs back in play.
    run_statements(registry, "DELETE FROM identifier_provenance")
    assert _returned(_repair(registry)) == []
    assert _status(registry, "heirabcd") == _status(registry, "predabcd") == "assigned"


def test_ids_in_the_legacy_change_log_are_retired(registry):
    _assigned_by_hand(registry, "loggedab", "neverabc")
    run_statements(
        registry, "INSERT INTO legacy_migration_changes (CanonicalId) VALUES ('loggedab')"
    )
    conn = connect(registry)
    try:
        assert once_mapped(conn, ["loggedab", "neverabc"]) == {"loggedab": IN_THE_CHANGE_LOG}
    finally:
        conn.close()
    assert _returned(_repair(registry)) == ["neverabc"]
    assert _retired(registry) == {"loggedab": IN_THE_CHANGE_LOG}


def test_the_recheck_under_lock_retires_rather_than_frees(registry):
    """A candidate that gained evidence after the scan (here: a provenance row) is kept."""
    _assigned_by_hand(registry, "laterabc", "neverabc")
    run_statements(
        registry,
        "INSERT INTO identifier_provenance (EventKey, Kind, SuccessorOntologyType, "
        "SuccessorSourceSystem, SuccessorSourceId, PredecessorOntologyType, "
        "PredecessorSourceSystem, PredecessorSourceId, CanonicalId, PredecessorCanonicalId) "
        "VALUES (UNHEX(SHA2('c', 256)), 'inherited', 'Work', 'a', 'x', 'Work', 's', 'y', "
        "'laterabc', 'laterabc')",
    )
    conn = connect(registry)
    retired: dict[str, str] = {}
    try:
        outcome = rc.return_orphans_to_pool(conn, ["laterabc", "neverabc"], retired=retired)
    finally:
        conn.close()
    assert outcome == {
        "laterabc": f"kept and retired: once identified a record ({NAMED_BY_PROVENANCE})",
        "neverabc": rc.RETURNED,
    }
    assert retired == {"laterabc": NAMED_BY_PROVENANCE}
    assert (_status(registry, "laterabc"), _status(registry, "neverabc")) == ("assigned", "free")


LEGACY_ROWS = [
    ("keepab23", "Work", "b1", "sierra-system-number"),
    ("gonecd45", "Work", "b2", "sierra-system-number"),
    ("handef67", "Work", "b3", "sierra-system-number"),
]


def _migrate_deleting_a_legacy_row_meanwhile(settings):
    """A live migration during which the legacy minter deletes `gonecd45`'s row: the copy
    drops the mapping, and the ID stays assigned (an orphan with a public past)."""
    make_legacy_registry(settings, LEGACY_ROWS)
    lm.migrate(registry_factory(settings), swap=False)
    run_statements(
        settings, "DELETE FROM identifiers WHERE CanonicalId = 'gonecd45'"
    )  # the legacy table
    report = lm.migrate(registry_factory(settings))
    assert report.swapped
    assert _status(settings, "gonecd45") == "assigned"
    assert fetch_all(settings, "SELECT COUNT(*) FROM identifiers WHERE CanonicalId = 'gonecd45'")[
        0
    ] == (0,)


@pytest.mark.parametrize("finalize_first", [False, True], ids=["before-finalize", "after"])
def test_a_legacy_row_deleted_during_the_migration_keeps_its_id_out_of_the_pool(
    legacy_database, finalize_first
):
    settings = legacy_database
    _migrate_deleting_a_legacy_row_meanwhile(settings)
    # After the swap, a mapping of a legacy ID is deleted by hand (it is still in the kept
    # legacy table until finalize).
    write_past_the_guards(settings, "DELETE FROM identifiers WHERE CanonicalId = 'handef67'")
    # In a registry that received a legacy copy, an unstamped assigned ID cannot be told from
    # a legacy one: even one inserted by hand is kept out (an ID lost, never one reused).
    _assigned_by_hand(settings, "neverabc")
    if finalize_first:
        lm.finalize(registry_factory(settings))  # the legacy table and its evidence are gone
    report = _repair(settings)
    assert report.result(rc.ORPHAN_ASSIGNED_IDS).count == 3
    assert _returned(report) == []
    expected = {
        "gonecd45": COPIED_FROM_LEGACY,
        "handef67": COPIED_FROM_LEGACY if finalize_first else IN_THE_LEGACY_TABLE,
        "neverabc": COPIED_FROM_LEGACY,
    }
    assert _retired(settings) == expected
    if not finalize_first:
        lm.finalize(registry_factory(settings))
        assert _returned(_repair(settings)) == []
        assert _retired(settings) == expected  # recorded before the legacy table went
    assert _status(settings, "gonecd45") == _status(settings, "handef67") == "assigned"


def test_a_legacy_id_differing_only_by_case_is_kept_out_too(legacy_database):
    """The legacy table matches IDs case-insensitively, and so does the evidence."""
    settings = legacy_database
    make_legacy_registry(settings, [("CASEab23", "Work", "b1", "sierra-system-number")])
    lm.migrate(registry_factory(settings))
    run_statements(
        settings, "DELETE FROM legacy_migration_state"
    )  # leave the legacy table as evidence
    _assigned_by_hand(settings, "caseab23")
    conn = connect(settings)
    try:
        assert once_mapped(conn, ["caseab23"]) == {"caseab23": IN_THE_LEGACY_TABLE}
    finally:
        conn.close()


def test_migration_0006_rolls_back_and_reapplies_and_reconcile_needs_it(empty_database):
    factory = registry_factory(empty_database)
    apply_migrations(factory)
    applied = [state.version for state in migration_status(factory) if state.applied_at]
    assert "0006_retired_canonical_ids" in applied
    rolled_back = rollback_migrations(
        factory, count=len(applied) - applied.index("0006_retired_canonical_ids")
    )
    assert "0006_retired_canonical_ids" in rolled_back
    orphans = rc.reconcile(factory).result(rc.ORPHAN_ASSIGNED_IDS)
    assert orphans.status == "unavailable"
    assert "idminter db migrate" in orphans.note
    assert "0006_retired_canonical_ids" in apply_migrations(factory)
    assert fetch_all(empty_database, "SELECT COUNT(*) FROM retired_canonical_ids") == [(0,)]


def test_a_free_id_in_use_is_not_counted_as_an_orphan(registry):
    """The canonical_ids scan splits its rows by status: found by mutation testing."""
    run_statements(
        registry,
        "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('freeused', 'free'), "
        "('xrphanab', 'assigned')",
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
        "VALUES ('Work', 'sierra', 'b1', 'freeused')",
    )
    report = rc.reconcile(lambda: connect(registry), batch_size=100)
    assert report.result(rc.FREE_IDS_IN_USE).examples == ["freeused"]
    orphans = report.result(rc.ORPHAN_ASSIGNED_IDS)
    assert (orphans.count, orphans.examples) == (1, ["xrphanab"])
    assert report.retired_orphans == 0


def test_the_default_grace_period_is_the_one_the_docs_and_the_cli_state():
    from click.testing import CliRunner  # noqa: PLC0415

    from idminter_pipeline.cli import main  # noqa: PLC0415
    from idminter_pipeline.core.settings import project_root  # noqa: PLC0415

    design = project_root() / "docs" / "design" / "reconciliation.md"
    grace = rc.DEFAULT_GRACE_PERIOD
    assert grace == timedelta(days=7)
    assert "[--grace-period 7d]" in design.read_text(encoding="utf-8")
    help_text = CliRunner().invoke(main, ["reconcile", "--help"]).output
    assert "[default: 7d]" in help_text
