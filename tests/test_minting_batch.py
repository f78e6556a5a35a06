"""Batch minting: the notebook's demonstrations, folding, the pool, statement counts."""

import pytest
from db_helpers import fetch_all
from minting_helpers import (
    fill_pool,
    pool_counts,
    register,
    registry_state,
    session_counters,
    statements_sent,
    work,
)

from idminter_pipeline.core.errors import InvalidInputError, PoolExhaustedError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest, MintResult
from idminter_pipeline.registry.minting import claims as claims_module


def test_batch_of_existing_inheriting_and_new(registry, minter):
    """Notebook, "Batch minting": two found, one inherits, one new; one pool ID consumed."""
    register(
        registry,
        {
            ("Work", "sierra-system-number", "1001768"): "nvkdnjxp",
            ("Work", "sierra-system-number", "1007167"): "swbrj79k",
        },
    )
    fill_pool(registry, 20)
    first, second = work("sierra-system-number", "1001768"), work("sierra-system-number", "1007167")
    heir, new = (
        work("axiell-collections-id", "AC-BATCH-1"),
        work("axiell-collections-id", "AC-NEW-1"),
    )
    results = minter.mint_ids(
        [MintRequest(first), MintRequest(second), MintRequest(heir, first), MintRequest(new)]
    )
    assert list(results) == [first, second, heir, new]
    assert results[first] == MintResult(first, "nvkdnjxp", MintOutcome.EXISTING)
    assert results[second] == MintResult(second, "swbrj79k", MintOutcome.EXISTING)
    assert results[heir] == MintResult(heir, "nvkdnjxp", MintOutcome.INHERITED)
    assert results[new].outcome is MintOutcome.MINTED
    assert pool_counts(registry) == {"free": 19, "assigned": 3}
    assert fetch_all(
        registry,
        "SELECT Status FROM canonical_ids WHERE CanonicalId = %s",
        (results[new].canonical_id,),
    ) == [("assigned",)]
    assert minter.lookup_ids([heir, new]) == {heir: "nvkdnjxp", new: results[new].canonical_id}


def test_ten_new_records_take_ten_pool_ids(registry, minter):
    """Notebook, "New record minting": 10 distinct IDs, 10 consumed, 10 assigned."""
    pool = set(fill_pool(registry, 30))
    sources = [work("axiell-collections-id", f"AC-BRAND-NEW-{i}") for i in range(10)]
    results = minter.mint_ids(MintRequest(s) for s in sources)
    ids = {r.canonical_id for r in results.values()}
    assert len(ids) == 10 and ids <= pool
    assert all(r.outcome is MintOutcome.MINTED for r in results.values())
    assert pool_counts(registry) == {"free": 20, "assigned": 10}


def test_claimed_ids_are_consecutive_from_a_point_of_the_pool_in_key_order(registry, minter):
    pool = sorted(fill_pool(registry, 10))
    results = minter.mint_ids([MintRequest(work("s", v)) for v in ("c", "a", "b")])
    given = [results[work("s", v)].canonical_id for v in ("a", "b", "c")]
    # Three free IDs in a row from where the claim started (wrapping around the pool's end),
    # given to the sources in key order.
    start = pool.index(given[0])
    assert given == [pool[(start + n) % len(pool)] for n in range(3)]


def test_minting_twice_returns_the_same_id(registry, minter, connect_registry):
    """Notebook, "Idempotency", also from a second minter."""
    fill_pool(registry, 5)
    source = work("idempotent-test", "IDEMPOTENT-TEST-1")
    first = minter.mint_ids([MintRequest(source)])[source]
    with Minter(connect_registry) as other:
        again = other.mint_ids([MintRequest(source)])[source]
    assert again == MintResult(source, first.canonical_id, MintOutcome.EXISTING)
    assert pool_counts(registry) == {"free": 4, "assigned": 1}


def test_duplicate_requests_are_folded(registry, minter):
    register(registry, {("Work", "sierra", "b1"): "abcdefgh"})
    fill_pool(registry, 5)
    source, heir = work("s", "dup"), work("axiell", "AC-1")
    results = minter.mint_ids(
        [
            MintRequest(source),
            MintRequest(source),
            MintRequest(heir),
            MintRequest(heir, work("sierra", "b1")),
            MintRequest(heir),
        ]
    )
    assert list(results) == [source, heir]
    assert results[heir] == MintResult(heir, "abcdefgh", MintOutcome.INHERITED)
    assert pool_counts(registry)["free"] == 4
    assert fetch_all(registry, "SELECT COUNT(*) FROM identifiers") == [(3,)]


def test_pool_exhaustion_commits_nothing_and_says_what_was_needed(registry, minter):
    register(registry, {("Work", "sierra", "b1"): "abcdefgh"})
    fill_pool(registry, 2)
    before = registry_state(registry)
    requests = [MintRequest(work("axiell", "AC-1"), work("sierra", "b1"))]
    requests += [MintRequest(work("s", f"new-{i}")) for i in range(3)]
    with pytest.raises(PoolExhaustedError) as caught:
        minter.mint_ids(requests)
    assert (caught.value.needed, caught.value.available) == (3, 2)
    assert registry_state(registry) == before
    # The same minter works again once the pool is topped up.
    fill_pool(registry, 1)
    assert len(minter.mint_ids(requests)) == 4


def test_empty_pool_reports_zero_available(registry, minter):
    with pytest.raises(PoolExhaustedError) as caught:
        minter.mint_ids([MintRequest(work("s", "x"))])
    assert (caught.value.needed, caught.value.available) == (1, 0)


def test_bad_requests_are_refused_naming_the_value(registry, minter):
    with pytest.raises(InvalidInputError, match="'Work\\[s/x\\]'"):
        minter.mint_ids(["Work[s/x]"])
    with pytest.raises(InvalidInputError, match="predecessor"):
        minter.mint_ids([MintRequest(work("s", "x"), "Work[s/y]")])
    with pytest.raises(InvalidInputError, match="job id"):
        minter.mint_ids([MintRequest(work("s", "x"))], job_id="j" * 256)
    assert registry_state(registry) == ([], [], [])


def _mixed_requests(size: int, prefix: str) -> list[MintRequest]:
    requests = []
    for i in range(size):
        kind = i % 4
        if kind == 0:
            requests.append(MintRequest(work("existing", f"{prefix}-{i}")))
        elif kind == 1:
            requests.append(MintRequest(work("new", f"{prefix}-{i}")))
        elif kind == 2:
            requests.append(
                MintRequest(
                    SourceIdentifier("Image", "heir", f"{prefix}-{i}"),
                    work("existing", f"{prefix}-{i - 2}"),
                )
            )
        else:  # an existing source declaring another predecessor: a recorded mismatch
            requests.append(
                MintRequest(
                    work("existing", f"{prefix}-{i - 3}"), work("existing", f"{prefix}-{i - 7}")
                )
                if i >= 7
                else MintRequest(work("new", f"{prefix}-{i}"))
            )
    return requests


@pytest.mark.parametrize("always_reread", [False, True])
@pytest.mark.parametrize("size", [8, 10_000])
def test_statement_count_is_constant_whatever_the_batch_size(
    registry, connect_registry, size, always_reread, monkeypatch
):
    """Every step of the flow in play, for 8 identifiers and for 10,000: 7 statements, or 8
    with the locking re-read (done when the insert shows some key already existed). The claim
    starts at the beginning of the pool here: a claim whose random start leaves too few free IDs
    after it takes the rest from the beginning with one more SELECT (test_pool_claims.py)."""
    monkeypatch.setattr(claims_module, "generate_canonical_id", lambda partition: partition.lower)
    register(registry, {("Work", "existing", f"p-{i}"): _cid(i) for i in range(0, size, 4)})
    fill_pool(registry, size // 2 + 10)
    minter = Minter(connect_registry, always_reread=always_reread)
    conn = minter.connection
    names = ("Com_select", "Com_insert", "Com_update", "Com_commit")
    before = session_counters(conn, names)
    count, results = statements_sent(conn, lambda: minter.mint_ids(_mixed_requests(size, "p")))
    after = session_counters(conn, names)
    assert count == 7 + always_reread
    # SELECTs: lookup, claim, the chains new successors extend (and the re-read); INSERTs:
    # mappings, provenance; UPDATE: mark assigned; COMMIT. The SHOW statements that count are
    # not Com_select.
    assert {n: after[n] - before[n] for n in names} == {
        "Com_select": 3 + always_reread,
        "Com_insert": 2,
        "Com_update": 1,
        "Com_commit": 1,
    }
    assert minter.stats.rereads == always_reread
    outcomes = {o: sum(r.outcome is o for r in results.values()) for o in MintOutcome}
    assert outcomes[MintOutcome.INHERITED] == size // 4
    assert fetch_all(
        registry,
        "SELECT COUNT(*) FROM identifier_provenance WHERE Kind = 'predecessor_mismatch'",
    ) == [((size - 4) // 4,)]
    # Re-running it finds everything: one lookup, the mismatch upsert, and the commit.
    count, again = statements_sent(conn, lambda: minter.mint_ids(_mixed_requests(size, "p")))
    assert count == 3
    assert {s: r.canonical_id for s, r in again.items()} == {
        s: r.canonical_id for s, r in results.items()
    }
    minter.close()


@pytest.mark.parametrize("size", [1, 3000])
def test_all_existing_calls_are_one_select_and_a_commit(registry, minter, size):
    register(registry, {("Work", "existing", f"e-{i}"): _cid(i) for i in range(size)})
    count, results = statements_sent(
        minter.connection,
        lambda: minter.mint_ids(MintRequest(work("existing", f"e-{i}")) for i in range(size)),
    )
    assert count == 2
    assert all(r.outcome is MintOutcome.EXISTING for r in results.values())


def _cid(i: int) -> str:
    alphabet = "abcdefghjkmnpqrstuvwxyz"
    digits = []
    for _ in range(7):
        i, r = divmod(i, len(alphabet))
        digits.append(alphabet[r])
    return "a" + "".join(digits)
