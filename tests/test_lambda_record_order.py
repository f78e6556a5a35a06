"""A queued batch larger than one registry transaction (SQS and Pipes deliver up to 10,000
records; the pipeline mints at most 5,000 works a transaction) gives the same answer whatever the
order of its records: a successor whose predecessor sits later in the batch inherits it, and the
churn guard judges the invocation's records together, not each 5,000 alone. Against the real
registry and the embedded store."""

from __future__ import annotations

import logging

import pytest
from queued_events import sns_notification, sqs_record
from works_helpers import fill_pool, work

from idminter_pipeline.aws_lambda import dispatch
from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.works.stores import SqliteWorksStore

PAIRS = 2_000  # Sierra works and the Folio works that name them as predecessors
NEW_FOLIO = 100  # Folio works without a predecessor: 100 of 2,100 Folio records, under 20 %
OTHERS = 5_900  # plain Sierra works, so the batch holds 10,000 records


@pytest.fixture
def batch(works_store_env, connect_registry, monkeypatch):
    monkeypatch.delenv("IDMINTER_CHURN_GUARD", raising=False)
    fill_pool(connect_registry, 10_000)
    stamp = "2026-07-30T09:00:00.000Z"
    predecessors = [work("sierra-system-number", f"b{n}", indexed_at=stamp) for n in range(PAIRS)]
    successors = [
        work(
            "folio-instance",
            f"f{n}",
            indexed_at=stamp,
            predecessor=("sierra-system-number", f"b{n}"),
        )
        for n in range(PAIRS)
    ]
    new_folio = [work("folio-instance", f"g{n}", indexed_at=stamp) for n in range(NEW_FOLIO)]
    others = [work("sierra-system-number", f"s{n}", indexed_at=stamp) for n in range(OTHERS)]
    with SqliteWorksStore(works_store_env) as store:
        store.put_source([*predecessors, *successors, *new_folio, *others])
        yield {
            "predecessors": predecessors,
            "successors": successors,
            "new_folio": new_folio,
            "others": others,
            "store": store,
        }


def _records(works):
    return [
        sqs_record(f"m-{w.id}", sns_notification(w.id.removeprefix("Work[").removesuffix("]")))
        for w in works
    ]


def _store_order(batch):
    return [*batch["predecessors"], *batch["successors"], *batch["new_folio"], *batch["others"]]


def _successors_first(batch):
    # The successors fill the first 5,000 with 3,000 plain works; their predecessors and the
    # 100 new Folio works (alone among plain works there) come in the second 5,000.
    return [
        *batch["successors"],
        *batch["others"][:3_000],
        *batch["predecessors"],
        *batch["others"][3_000:],
        *batch["new_folio"],
    ]


@pytest.mark.parametrize("order", [_store_order, _successors_first], ids=lambda f: f.__name__)
def test_a_batch_of_10_000_records_gives_the_same_answer_in_any_order(
    batch, connect_registry, order
):
    records = _records(order(batch))
    assert len(records) == 10_000

    response = handler({"Records": records}, None)

    assert response == {"batchItemFailures": []}
    with connect_registry() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT SourceSystem, COUNT(*), COUNT(DISTINCT CanonicalId) FROM identifiers "
            "WHERE OntologyType = 'Work' GROUP BY SourceSystem ORDER BY SourceSystem"
        )
        rows = cursor.fetchall()
    # Each successor shares its predecessor's canonical ID; every other work has its own.
    assert [tuple(r) for r in rows] == [
        ("folio-instance", PAIRS + NEW_FOLIO, PAIRS + NEW_FOLIO),
        ("sierra-system-number", PAIRS + OTHERS, PAIRS + OTHERS),
    ]
    with connect_registry() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(DISTINCT CanonicalId) FROM identifiers WHERE OntologyType = 'Work'"
        )
        (distinct,) = cursor.fetchone()
    assert distinct == PAIRS + NEW_FOLIO + OTHERS
    # The successor holds the chain's one document: 2,000 predecessors are superseded.
    assert batch["store"].count_identified() == PAIRS + NEW_FOLIO + OTHERS


def test_the_churn_guard_judges_the_invocation_not_each_transaction(
    works_store_env, connect_registry, monkeypatch, caplog
):
    """30 new Folio works among 10 with predecessors (75 %, limit 20 %) spread over transactions
    of 50 records, fewer than the guard's minimum of 20 in each: judged together they trip."""
    monkeypatch.setattr(dispatch, "MAX_BATCH_SIZE", 50)
    monkeypatch.delenv("IDMINTER_CHURN_GUARD", raising=False)
    fill_pool(connect_registry, 500)
    plain = [work("sierra-system-number", f"s{n}") for n in range(200)]
    predecessors = plain[:10]
    successors = [
        work("folio-instance", f"f{n}", predecessor=("sierra-system-number", f"s{n}"))
        for n in range(10)
    ]
    new_folio = [work("folio-instance", f"g{n}") for n in range(30)]
    with SqliteWorksStore(works_store_env) as store:
        store.put_source([*plain, *successors, *new_folio])
    # Six new Folio works in each 50 records.
    interleaved = [w for n in range(40) for w in (*plain[n * 5 : n * 5 + 5], *new_folio[n : n + 1])]
    records = _records([*interleaved, *successors])
    assert predecessors[0] in interleaved

    caplog.set_level(logging.ERROR)
    response = handler({"Records": records}, None)

    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    assert failed == {f"m-{w.id}" for w in new_folio}
    assert "30 of 40 folio-instance records in the run (75%, limit 20%)" in caplog.text
