"""Predecessors: inheritance (RFC scenarios 2-4), in-batch chains, cycles, conflicts, atomicity."""

import pytest
from db_helpers import fetch_all
from minting_helpers import fill_pool, pool_counts, register, registry_state, work

from idminter_pipeline.core.errors import (
    ConflictingPredecessorsError,
    MissingPredecessorError,
    PredecessorCycleError,
)
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest, MintResult

SIERRA = "sierra-system-number"
AXIELL = "axiell-collections-id"


def test_migrated_records_inherit_their_predecessors_ids(registry, minter):
    """Notebook, "Predecessor inheritance": five Sierra works migrate to Axiell, one call each."""
    sierra = {("Work", SIERRA, f"10{i}"): f"jw8huq{c}t" for i, c in enumerate("abcde")}
    register(registry, sierra)
    fill_pool(registry, 5)
    for (_, _, value), canonical_id in sierra.items():
        heir = work(AXIELL, f"AC-MIGRATE-{value}")
        result = minter.mint_ids([MintRequest(heir, work(SIERRA, value))])
        assert result[heir] == MintResult(heir, canonical_id, MintOutcome.INHERITED)
    assert pool_counts(registry) == {"free": 5, "assigned": 5}


def test_inheritance_across_ontology_types(registry, minter):
    register(registry, {("Image", "sierra-image", "i999"): "abcdefgh"})
    heir = work(AXIELL, "AC-456")
    result = minter.mint_ids([MintRequest(heir, SourceIdentifier("Image", "sierra-image", "i999"))])
    assert result[heir] == MintResult(heir, "abcdefgh", MintOutcome.INHERITED)


def test_two_successors_of_one_predecessor_share_its_id(registry, connect_registry):
    """RFC scenario 2, from two minters."""
    register(registry, {("Work", SIERRA, "b1234"): "abc23def"})
    with Minter(connect_registry) as a, Minter(connect_registry) as b:
        ra = a.mint_ids([MintRequest(work(AXIELL, "123"), work(SIERRA, "b1234"))])
        rb = b.mint_ids([MintRequest(work(AXIELL, "456"), work(SIERRA, "b1234"))])
    assert (
        ra[work(AXIELL, "123")].canonical_id == rb[work(AXIELL, "456")].canonical_id == "abc23def"
    )


def test_missing_predecessor_fails_and_commits_nothing(registry, minter):
    """RFC scenario 3; the rest of the batch is not committed either."""
    register(registry, {("Work", SIERRA, "b1"): "abcdefgh"})
    fill_pool(registry, 5)
    before = registry_state(registry)
    with pytest.raises(MissingPredecessorError) as caught:
        minter.mint_ids(
            [
                MintRequest(work("s", "new")),
                MintRequest(work(AXIELL, "ok"), work(SIERRA, "b1")),
                MintRequest(work(AXIELL, "123"), work(SIERRA, "b404")),
            ]
        )
    assert caught.value.missing == [(work(AXIELL, "123"), work(SIERRA, "b404"))]
    assert "Work[sierra-system-number/b404]" in str(caught.value)
    assert registry_state(registry) == before


@pytest.mark.parametrize("again", ["same", "other", "none"])
def test_reminting_keeps_the_id_whatever_the_predecessor(registry, minter, again):
    """RFC scenario 4: the mapping is fixed at first mint."""
    register(registry, {("Work", SIERRA, "b1"): "abcdefgh", ("Work", SIERRA, "b2"): "bcdefghj"})
    heir = work(AXIELL, "123")
    minter.mint_ids([MintRequest(heir, work(SIERRA, "b1"))])
    predecessor = {"same": work(SIERRA, "b1"), "other": work(SIERRA, "b2"), "none": None}[again]
    result = minter.mint_ids([MintRequest(heir, predecessor)])
    assert result[heir] == MintResult(heir, "abcdefgh", MintOutcome.EXISTING)
    mismatches = fetch_all(
        registry,
        "SELECT PredecessorSourceId, CanonicalId, PredecessorCanonicalId FROM "
        "identifier_provenance WHERE Kind = 'predecessor_mismatch'",
    )
    assert mismatches == ([("b2", "abcdefgh", "bcdefghj")] if again == "other" else [])


def test_a_predecessor_new_in_the_same_call_is_minted_first(registry, minter):
    fill_pool(registry, 5)
    old, heir = work(SIERRA, "b1"), SourceIdentifier("Image", AXIELL, "AC-1")
    # The successor comes first in the request list.
    results = minter.mint_ids([MintRequest(heir, old), MintRequest(old)])
    assert results[old].outcome is MintOutcome.MINTED
    assert results[heir] == MintResult(heir, results[old].canonical_id, MintOutcome.INHERITED)
    assert pool_counts(registry) == {"free": 4, "assigned": 1}


def test_a_chain_resolves_in_one_call(registry, minter):
    fill_pool(registry, 5)
    a, b, c, d = (work(s, "x") for s in ("a-sys", "b-sys", "c-sys", "d-sys"))
    results = minter.mint_ids(
        [MintRequest(d, c), MintRequest(c, b), MintRequest(b, a), MintRequest(a)]
    )
    ids = {r.canonical_id for r in results.values()}
    assert len(ids) == 1
    assert [results[s].outcome for s in (a, b, c, d)] == [
        MintOutcome.MINTED,
        MintOutcome.INHERITED,
        MintOutcome.INHERITED,
        MintOutcome.INHERITED,
    ]
    assert pool_counts(registry)["assigned"] == 1
    chain = fetch_all(
        registry,
        "SELECT SuccessorSourceSystem, PredecessorSourceSystem FROM identifier_provenance "
        "WHERE Kind = 'inherited' ORDER BY Seq",
    )
    assert chain == [("b-sys", "a-sys"), ("c-sys", "b-sys"), ("d-sys", "c-sys")]


def test_a_chain_rooted_in_a_registered_source(registry, minter):
    register(registry, {("Work", SIERRA, "b1"): "abcdefgh"})
    b, c = work(AXIELL, "AC-1"), work("folio", "F-1")
    results = minter.mint_ids([MintRequest(c, b), MintRequest(b, work(SIERRA, "b1"))])
    assert results[b].canonical_id == results[c].canonical_id == "abcdefgh"
    assert pool_counts(registry) == {"free": 0, "assigned": 1}


def test_a_chain_whose_root_is_missing_fails(registry, minter):
    fill_pool(registry, 3)
    before = registry_state(registry)
    b, c = work(AXIELL, "AC-1"), work("folio", "F-1")
    with pytest.raises(MissingPredecessorError) as caught:
        minter.mint_ids([MintRequest(c, b), MintRequest(b, work(SIERRA, "gone"))])
    assert caught.value.missing == [(b, work(SIERRA, "gone"))]
    assert registry_state(registry) == before


def test_cycles_are_refused_naming_every_member(registry, minter):
    fill_pool(registry, 3)
    a, b, c = work("a", "1"), work("b", "1"), work("c", "1")
    with pytest.raises(PredecessorCycleError) as caught:
        minter.mint_ids([MintRequest(a, c), MintRequest(b, a), MintRequest(c, b)])
    assert set(caught.value.cycle) == {a, b, c}
    for source in (a, b, c):
        assert str(source) in str(caught.value)
    assert registry_state(registry)[0] == []


def test_a_self_predecessor_is_a_cycle(registry, minter):
    a = work("a", "1")
    with pytest.raises(PredecessorCycleError, match=r"Work\[a/1\] -> Work\[a/1\]"):
        minter.mint_ids([MintRequest(work("ok", "1")), MintRequest(a, a)])


def test_a_cycle_is_refused_even_when_its_members_exist(registry, minter):
    register(registry, {("Work", "a", "1"): "abcdefgh", ("Work", "b", "1"): "bcdefghj"})
    with pytest.raises(PredecessorCycleError):
        minter.mint_ids(
            [
                MintRequest(work("a", "1"), work("b", "1")),
                MintRequest(work("b", "1"), work("a", "1")),
            ]
        )


def test_conflicting_predecessors_are_refused(registry, minter):
    register(registry, {("Work", SIERRA, "b1"): "abcdefgh", ("Work", SIERRA, "b2"): "bcdefghj"})
    before = registry_state(registry)
    heir = work(AXIELL, "AC-1")
    with pytest.raises(ConflictingPredecessorsError) as caught:
        minter.mint_ids(
            [
                MintRequest(heir, work(SIERRA, "b1")),
                MintRequest(heir),
                MintRequest(heir, work(SIERRA, "b2")),
            ]
        )
    assert caught.value.source == heir
    assert caught.value.predecessors == [work(SIERRA, "b1"), work(SIERRA, "b2")]
    assert registry_state(registry) == before


def test_an_existing_source_whose_new_predecessor_is_minted_in_the_call(registry, minter):
    """The declared predecessor gets a new ID, which differs from the source's: a mismatch."""
    register(registry, {("Work", AXIELL, "AC-1"): "abcdefgh"})
    fill_pool(registry, 2)
    old = work(SIERRA, "late")
    results = minter.mint_ids([MintRequest(work(AXIELL, "AC-1"), old), MintRequest(old)])
    assert results[work(AXIELL, "AC-1")].canonical_id == "abcdefgh"
    assert results[old].outcome is MintOutcome.MINTED
    assert fetch_all(
        registry,
        "SELECT CanonicalId, PredecessorCanonicalId FROM identifier_provenance "
        "WHERE Kind = 'predecessor_mismatch'",
    ) == [("abcdefgh", results[old].canonical_id)]
