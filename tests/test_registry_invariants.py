"""The SQL oracle itself: it passes a sound registry and catches each kind of broken one.

The rows are written by hand, not by the minter, so a bug in the minter cannot hide a blind spot
of the oracle that the reliability tests rely on.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from registry_invariants import check_registry, registry_snapshot

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect

A = ("Work", "sierra-system-number", "b1")
B = ("Work", "axiell-collections-id", "AC-1")
C = ("Work", "folio-instance", "in1")
D = ("Image", "mets-image", "x")


def _write(
    settings: DatabaseSettings,
    pool: dict[str, str],
    mappings: Iterable[tuple[tuple[str, str, str], str]],
) -> None:
    conn = connect(settings)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)", list(pool.items())
        )
        cursor.executemany(
            "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
            "VALUES (%s, %s, %s, %s)",
            [(*key, cid) for key, cid in mappings],
        )
    conn.commit()
    conn.close()


def test_a_sound_registry_passes_every_check(registry):
    _write(
        registry,
        {"aaaaaaa2": "assigned", "bbbbbbb2": "assigned", "ccccccc2": "free"},
        [(A, "aaaaaaa2"), (B, "aaaaaaa2"), (C, "aaaaaaa2"), (D, "bbbbbbb2")],
    )
    report = check_registry(
        registry,
        declared=[(B, A), (C, B)],
        given=[(A, "aaaaaaa2"), ("Work[folio-instance/in1]", "aaaaaaa2")],
        requested={"one": [A, B, C], "two": [D]},
        atomic_batches=True,
        complete=True,
    )
    report.assert_ok()
    assert report.counts == {"mappings": 4, "assigned": 2, "free": 1}
    assert len(report.checked) == 8


@pytest.mark.parametrize(
    ("pool", "mappings", "declared", "violated"),
    [
        pytest.param(
            {"aaaaaaa2": "assigned"},
            [(A, "aaaaaaa2"), (D, "aaaaaaa2")],
            [],
            "a shared ID has exactly one original",
            id="shared-without-predecessor",
        ),
        pytest.param(
            {"aaaaaaa2": "assigned"},
            [(A, "aaaaaaa2"), (B, "aaaaaaa2"), (C, "aaaaaaa2")],
            [(B, A), (C, D)],
            "a shared ID has exactly one original",
            id="predecessor-with-another-id",
        ),
        pytest.param(
            {"aaaaaaa2": "assigned"},
            [(A, "aaaaaaa2"), (B, "aaaaaaa2"), (C, "aaaaaaa2")],
            [(A, B), (B, A), (C, A)],
            "a shared ID has exactly one original",
            id="cycle-without-original",
        ),
        pytest.param(
            {"aaaaaaa2": "assigned"},
            [(A, "aaaaaaa2"), (B, "aaaaaaa2"), (C, "aaaaaaa2"), (D, "aaaaaaa2")],
            [(C, D), (D, C), (B, A)],
            "IDs are shared only through declared predecessors",
            id="cycle-beside-an-original",
        ),
        pytest.param(
            {"aaaaaaa2": "free"},
            [(A, "aaaaaaa2")],
            [],
            "every referenced ID is assigned",
            id="referenced-but-free",
        ),
        pytest.param(
            {"aaaaaaa2": "assigned", "bbbbbbb2": "assigned"},
            [(A, "aaaaaaa2")],
            [],
            "every assigned ID is referenced",
            id="assigned-but-unreferenced",
        ),
    ],
)
def test_each_broken_registry_is_caught(registry, pool, mappings, declared, violated):
    _write(registry, pool, mappings)
    report = check_registry(registry, declared=declared)
    assert not report.ok
    assert [name for name in report.violations if name.startswith(violated)], report.lines()
    with pytest.raises(AssertionError, match="invariants violated"):
        report.assert_ok()


def test_given_ids_requested_sources_and_partial_batches_are_checked(registry):
    _write(registry, {"aaaaaaa2": "assigned"}, [(A, "aaaaaaa2")])
    report = check_registry(
        registry,
        given=[(A, "bbbbbbb2"), (D, "aaaaaaa2")],
        requested={"half": [A, B]},
        atomic_batches=True,
        complete=True,
    )
    assert set(report.violations) == {
        "every ID a client was given is the registry's ID for that source",
        "every requested source is mapped",
        "no partial batch: a batch's own sources are all mapped or none is",
    }
    wrong = report.violations["every ID a client was given is the registry's ID for that source"]
    assert sorted(wrong) == sorted([(*A, "bbbbbbb2", "aaaaaaa2"), (*D, "aaaaaaa2", None)])


def test_a_source_shared_by_two_batches_does_not_count_as_partial(registry):
    _write(registry, {"aaaaaaa2": "assigned"}, [(A, "aaaaaaa2")])
    report = check_registry(registry, requested={"one": [A], "two": [A, B]}, atomic_batches=True)
    report.assert_ok()


def test_snapshot_sees_every_row_and_leaves_no_scratch_tables(registry):
    _write(registry, {"aaaaaaa2": "assigned"}, [(A, "aaaaaaa2")])
    before = registry_snapshot(registry)
    check_registry(registry, declared=[(B, A)], given=[(A, "aaaaaaa2")], requested={"x": [A]})
    assert registry_snapshot(registry) == before
    assert [row[:4] for row in before["identifiers"]] == [(*A, "aaaaaaa2")]
    assert not [t for t in before if t.startswith("oracle_")]
