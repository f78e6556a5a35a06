"""Contention: eight processes mint overlapping catalogue keys with predecessors, over many batches,
each on its own connection; then the SQL oracle checks the registry against what they were told.

This is the bounded version (about a minute); `make stress` runs longer and wider ones.
"""

from __future__ import annotations

from collections import Counter

from registry_invariants import check_registry, registry_snapshot

from benchmarks.minting_workload import fill_pool, run_concurrent

PROCESSES = 8
BATCHES = 48  # six per process
WORKS_PER_BATCH = 40  # about 240 identifiers per batch
KEY_SPACE = BATCHES * WORKS_PER_BATCH // 3  # every work is asked for about three times
POOL = 20_000


def test_eight_processes_on_overlapping_keys_keep_every_invariant(registry):
    fill_pool(registry, POOL)
    run = run_concurrent(
        registry,
        processes=PROCESSES,
        total_batches=BATCHES,
        works_per_batch=WORKS_PER_BATCH,
        key_space=KEY_SPACE,
        timeout=900,
    )

    assert run.failures == []
    assert run.batches_failed == 0
    assert run.batches_ok == BATCHES
    assert [r.conflicting_answers for r in run.reports] == [[]] * PROCESSES

    # The workload really contended: keys were answered to several processes, and every
    # outcome (new, inherited through a predecessor, already there) occurred.
    answered_to = Counter(source for source, _ in run.given())
    assert max(answered_to.values()) >= 4
    outcomes = sum((r.outcomes for r in run.reports), Counter())
    assert outcomes["minted"] > 0 and outcomes["inherited"] > 0 and outcomes["existing"] > 0

    report = check_registry(
        registry,
        declared=run.declared(),
        given=run.given(),
        requested=run.requested(),
        complete=True,
    )
    report.assert_ok()
    assert report.counts["mappings"] == len(answered_to)
    # No ID was lost from the pool: what is not assigned is still free.
    assert report.counts["assigned"] + report.counts["free"] == POOL
    # Every inheritance shares an ID, so there are fewer IDs than sources.
    assert report.counts["assigned"] < report.counts["mappings"]


def test_a_second_round_over_the_same_keys_changes_nothing(registry):
    fill_pool(registry, POOL)
    shape = {
        "total_batches": 16,
        "works_per_batch": WORKS_PER_BATCH,
        "key_space": 16 * WORKS_PER_BATCH // 3,
        "timeout": 600,
    }
    first = run_concurrent(registry, processes=4, **shape)
    assert first.failures == []
    before = registry_snapshot(registry)
    second = run_concurrent(registry, processes=PROCESSES, **shape)
    assert second.failures == []
    # Other processes and other batch splits, same keys: every answer is the first one.
    first_ids = dict(first.given())
    assert {source: first_ids[source] for source, _ in second.given()} == dict(second.given())
    outcomes = sum((r.outcomes for r in second.reports), Counter())
    assert set(outcomes) == {"existing"}
    after = registry_snapshot(registry)
    assert after["identifiers"] == before["identifiers"]
    assert after["canonical_ids"] == before["canonical_ids"]
