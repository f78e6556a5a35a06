"""Provenance of inheritances and predecessor mismatches, and alias discovery."""

import pytest
from db_helpers import fetch_all
from minting_helpers import fill_pool, register, work

from idminter_pipeline.core.errors import InvalidCanonicalIdError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import AliasStatus, MintRequest
from idminter_pipeline.registry.schema import (
    apply_migrations,
    migration_status,
    rollback_migrations,
)

SIERRA = "sierra-system-number"


def test_an_inheritance_is_recorded_with_job_and_time(registry, minter):
    register(registry, {("Work", SIERRA, "b1"): "abcdefgh"})
    heir = SourceIdentifier("Image", "axiell", "AC-1")
    minter.mint_ids([MintRequest(heir, work(SIERRA, "b1"))], job_id="2026-01-29T10:30:00Z")
    rows = fetch_all(
        registry,
        "SELECT Kind, SuccessorOntologyType, SuccessorSourceSystem, SuccessorSourceId, "
        "PredecessorOntologyType, PredecessorSourceSystem, PredecessorSourceId, CanonicalId, "
        "PredecessorCanonicalId, JobId, SeenCount FROM identifier_provenance",
    )
    assert rows == [
        (
            "inherited",
            "Image",
            "axiell",
            "AC-1",
            "Work",
            SIERRA,
            "b1",
            "abcdefgh",
            "abcdefgh",
            "2026-01-29T10:30:00Z",
            1,
        )
    ]
    precision = fetch_all(
        registry,
        "SELECT DATETIME_PRECISION FROM information_schema.columns WHERE table_schema = "
        "DATABASE() AND table_name = 'identifier_provenance' AND column_name = 'CreatedAt'",
    )
    assert precision == [(6,)]


def test_nothing_is_recorded_for_plain_mints_and_lookups(registry, minter):
    fill_pool(registry, 2)
    minter.mint_ids([MintRequest(work("s", "new"))])
    minter.mint_ids([MintRequest(work("s", "new"))])
    assert fetch_all(registry, "SELECT COUNT(*) FROM identifier_provenance") == [(0,)]


def test_a_mismatch_is_recorded_once_and_counted_when_seen_again(registry, minter):
    register(registry, {("Work", SIERRA, "b1"): "abcdefgh", ("Work", SIERRA, "b2"): "bcdefghj"})
    heir = work("axiell", "AC-1")
    minter.mint_ids([MintRequest(heir, work(SIERRA, "b1"))], job_id="first")
    minter.mint_ids([MintRequest(heir, work(SIERRA, "b2"))], job_id="second")
    minter.mint_ids([MintRequest(heir, work(SIERRA, "b2"))], job_id="third")
    rows = fetch_all(
        registry,
        "SELECT Kind, PredecessorSourceId, CanonicalId, PredecessorCanonicalId, JobId, "
        "LastJobId, SeenCount FROM identifier_provenance ORDER BY Seq",
    )
    assert rows == [
        ("inherited", "b1", "abcdefgh", "abcdefgh", "first", "first", 1),
        ("predecessor_mismatch", "b2", "abcdefgh", "bcdefghj", "second", "third", 2),
    ]
    assert minter.stats.mismatches_recorded == 2


def test_an_unregistered_predecessor_of_a_registered_source_is_a_mismatch(registry, minter):
    """Scenario 4 returns the existing ID; the dangling declaration is recorded, not ignored."""
    register(registry, {("Work", "axiell", "AC-1"): "abcdefgh"})
    result = minter.mint_ids([MintRequest(work("axiell", "AC-1"), work(SIERRA, "nowhere"))])
    assert result[work("axiell", "AC-1")].canonical_id == "abcdefgh"
    assert fetch_all(
        registry,
        "SELECT Kind, PredecessorSourceId, PredecessorCanonicalId FROM identifier_provenance",
    ) == [("predecessor_mismatch", "nowhere", None)]


def test_aliases_list_the_original_then_aliases_in_inheritance_order(registry, minter):
    """Notebook, "Alias discovery"; a chain minted in one call shares one CreatedAt, so the
    order comes from the provenance sequence."""
    fill_pool(registry, 3)
    a, b, c = work(SIERRA, "b1"), work("axiell", "AC-1"), SourceIdentifier("Image", "folio", "F")
    results = minter.mint_ids([MintRequest(c, b), MintRequest(b, a), MintRequest(a)], job_id="j")
    canonical_id = results[a].canonical_id
    other = minter.mint_ids([MintRequest(work("mets", "M-1"), a)], job_id="k")
    assert other[work("mets", "M-1")].canonical_id == canonical_id
    aliases = minter.aliases(canonical_id)
    assert [(x.source, x.status, x.inherited_from, x.job_id) for x in aliases] == [
        (str(a), AliasStatus.ORIGINAL, None, None),
        (str(b), AliasStatus.ALIAS, str(a), "j"),
        (str(c), AliasStatus.ALIAS, str(b), "j"),
        (str(work("mets", "M-1")), AliasStatus.ALIAS, str(a), "k"),
    ]
    assert aliases[1].created_at == aliases[2].created_at  # one statement, one timestamp
    assert aliases[1].provenance_seq < aliases[2].provenance_seq < aliases[3].provenance_seq
    assert aliases[0].as_dict()["status"] == "original"


def test_aliases_without_provenance_fall_back_to_creation_time(registry, minter):
    conn = connect(registry)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('abcdefgh', 'assigned')"
            )
            cursor.execute(
                "INSERT INTO identifiers VALUES ('Work', 'later', 'x', 'abcdefgh', "
                "'2024-01-01 00:00:00.000002'), ('Work', 'first', 'x ', 'abcdefgh', "
                "'2024-01-01 00:00:00.000001')"
            )
        conn.commit()
    finally:
        conn.close()
    aliases = minter.aliases("abcdefgh")
    assert [(x.source, x.status) for x in aliases] == [
        ("Work[first/x ]", AliasStatus.ORIGINAL),
        ("Work[later/x]", AliasStatus.ALIAS),
    ]


def test_aliases_of_an_unknown_or_malformed_id(registry, minter):
    assert minter.aliases("abcdefgh") == []
    with pytest.raises(InvalidCanonicalIdError, match="'ABC'"):
        minter.aliases("ABC")


def test_the_provenance_migration_rolls_back_and_reapplies(empty_database):
    factory = lambda: connect(empty_database)  # noqa: E731
    apply_migrations(factory)
    assert ("identifier_provenance",) in fetch_all(empty_database, "SHOW TABLES")
    # Later domains' migrations come after ours: roll back down to and including 0002.
    versions = [state.version for state in migration_status(factory)]
    count = len(versions) - versions.index("0002_minting_provenance")
    assert rollback_migrations(factory, count=count)[-1] == "0002_minting_provenance"
    tables = {t for (t,) in fetch_all(empty_database, "SHOW TABLES")}
    assert "identifier_provenance" not in tables and "identifiers" in tables
    apply_migrations(factory)
    assert ("identifier_provenance",) in fetch_all(empty_database, "SHOW TABLES")
