"""The works pipeline against the real registry and the embedded store."""

from datetime import timedelta

import pytest
from db_helpers import fetch_all
from works_helpers import fill_pool, work

from idminter_pipeline.core.errors import InvalidInputError, PoolExhaustedError
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.churn_guard import ChurnGuardPolicy
from idminter_pipeline.works.documents import SourceWork, Stage, extract_work
from idminter_pipeline.works.pipeline import MAX_BATCH_SIZE, WorksPipeline, clamp_batch_size
from idminter_pipeline.works.sample_data import DEFAULT_START, generate_works
from idminter_pipeline.works.stores import FullScope, IdsScope, SqliteWorksStore, WindowScope
from idminter_pipeline.works.stores.base import WriteFailure


@pytest.fixture
def minter(connect_registry):
    fill_pool(connect_registry)
    m = Minter(connect_registry)
    yield m
    m.close()


def _mappings(registry) -> dict[tuple, str]:
    rows = fetch_all(
        registry, "SELECT OntologyType, SourceSystem, SourceId, CanonicalId FROM identifiers"
    )
    return {(o, s, i): c for o, s, i, c in rows}


def _predecessors(works) -> set[str]:
    """The works some other work of `works` names as its predecessor."""
    extracted = (extract_work(w.document, document_id=w.id) for w in works)
    return {str(e.predecessor) for e in extracted if e.predecessor is not None}


def _malformed() -> list[SourceWork]:
    missing_state = SourceWork(
        "Work[sierra-system-number/b-no-state]", {"indexed_at": "2026-07-30T09:00:00Z", "data": {}}
    )
    bad_node = work("sierra-system-number", "b-bad-item", items=("ok",))
    bad_node.document["data"]["items"].append(
        {
            "id": {
                "sourceIdentifier": {
                    "identifierType": {"id": "folio-item"},
                    "ontologyType": "Item",
                    "value": ["not", "a", "string"],
                }
            }
        }
    )
    wrong_type = SourceWork(
        "Work[sierra-system-number/b-list]",
        {"indexed_at": "2026-07-30T09:00:00Z", "state": [], "data": {}},
    )
    return [missing_state, bad_node, wrong_type]


def test_good_works_are_minted_in_one_transaction_and_bad_ones_fail_by_stage(
    store, minter, registry
):
    good = list(generate_works(60, seed=1))
    store.put_source([*good, *_malformed()])
    summary = WorksPipeline(store, minter).run(FullScope(), job_id="test-job")
    assert summary.works_read == 63
    assert summary.batches == 1 and summary.mint_calls == 1
    # A predecessor and its successor in one batch: the successor's document, the predecessor
    # superseded (works.succession).
    predecessors = _predecessors(good)
    assert summary.works_written == 60 - len(predecessors) > 0
    assert {s.work_id for s in summary.superseded} == predecessors
    assert summary.failures_by_stage == {
        "read": 0,
        "extract": 3,
        "mint": 0,
        "annotate": 0,
        "write": 0,
        "notify": 0,
    }
    failed = {f.work_id: f for f in summary.failures}
    assert set(failed) == {
        "Work[sierra-system-number/b-no-state]",
        "Work[sierra-system-number/b-bad-item]",
        "Work[sierra-system-number/b-list]",
    }
    assert "state: has no 'state'" in failed["Work[sierra-system-number/b-no-state]"].detail
    assert failed["Work[sierra-system-number/b-bad-item]"].detail.startswith(
        "data.items[1].id.sourceIdentifier.value: expected a string, got array"
    )
    assert all(f.stage is Stage.EXTRACT for f in summary.failures)

    mappings = _mappings(registry)
    # Nothing of the malformed works reached the registry, not even their good nodes.
    assert ("Item", "folio-item", "ok") not in mappings
    assert ("Work", "sierra-system-number", "b-bad-item") not in mappings
    extracted = [extract_work(w.document, document_id=w.id) for w in good]
    wanted = {s for e in extracted for s in e.identifiers}
    assert summary.identifiers_found == len(wanted)
    assert {s.as_key() for s in wanted} <= set(mappings)
    assert summary.minted + summary.inherited + summary.existing == len(wanted)
    # Every identified work carries the registry's IDs on every node.
    for e in extracted:
        canonical_id = mappings[e.source.as_key()]
        document = store.get_identified([canonical_id])[canonical_id]
        if e.work_id in predecessors:
            assert document["state"]["sourceIdentifier"]["value"] != e.source.source_id
            assert e.work_id not in summary.processed
            continue  # its successor holds the identified document they share
        assert document["state"]["canonicalId"] == canonical_id
        assert summary.processed.count(e.work_id) == 1


def test_successors_inherit_their_predecessors_ids(store, minter, registry):
    works = list(generate_works(30, seed=2))
    store.put_source(works)
    summary = WorksPipeline(store, minter).run(FullScope())
    assert summary.failed == 0
    extracted = [extract_work(w.document, document_id=w.id) for w in works]
    successors = [e for e in extracted if e.predecessor is not None]
    # Per block of ten: two Folio successors and one Axiell; block 0's second Folio record is new.
    assert len(successors) == 8
    # The Folio successors' items name the Sierra items they replace.
    declared = {(d.source, d.predecessor) for e in extracted for d in e.declarations()}
    items = {source for source, _ in declared if source.ontology_type == "Item"}
    assert len(items) >= 6
    mappings = _mappings(registry)
    for source, predecessor in declared:
        assert mappings[source.as_key()] == mappings[predecessor.as_key()]
    assert summary.inherited == len(declared)
    provenance = fetch_all(
        registry, "SELECT COUNT(*) FROM identifier_provenance WHERE Kind='inherited'"
    )
    assert provenance[0][0] == len(declared)


def test_rerunning_is_idempotent(store, minter, registry):
    store.put_source(generate_works(50, seed=3))
    first = WorksPipeline(store, minter, batch_size=20).run(FullScope())
    before = _mappings(registry)
    documents = store.get_identified(sorted(set(before.values())))
    second = WorksPipeline(store, minter, batch_size=7).run(FullScope())
    assert _mappings(registry) == before
    assert second.minted == 0 and second.inherited == 0
    assert second.existing == second.identifiers_found
    superseded = len(_predecessors([w.decoded() for w in store.read_all()]))
    assert first.works_written == second.works_written == 50 - superseded
    assert first.works_superseded == second.works_superseded == superseded
    assert store.get_identified(sorted(set(before.values()))) == documents
    assert first.batches == 3 and second.batches == 8
    free_after = fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE Status='assigned'")
    assert free_after[0][0] == len(set(before.values()))


def test_missing_predecessor_fails_only_the_work_that_declared_it(store, minter, registry):
    orphan = work("folio-instance", "orphan", predecessor=("sierra-system-number", "b-never"))
    fine = [work("sierra-system-number", f"b{n}", items=(f"item-{n}",)) for n in range(5)]
    store.put_source([orphan, *fine])
    summary = WorksPipeline(store, minter).run(FullScope())
    assert summary.mint_calls == 2, "one refused call, one re-run without the offender"
    assert summary.works_written == 5
    assert [(f.work_id, f.stage) for f in summary.failures] == [
        ("Work[folio-instance/orphan]", Stage.MINT)
    ]
    assert "Work[sierra-system-number/b-never] is not in the registry" in summary.failures[0].detail
    assert ("Work", "folio-instance", "orphan") not in _mappings(registry)


def test_a_predecessor_in_the_same_batch_is_enough(store, minter, registry):
    store.put_source(
        [
            work("sierra-system-number", "b1", indexed_at="2026-07-30T09:00:00Z"),
            work(
                "folio-instance",
                "f1",
                indexed_at="2026-07-30T09:00:01Z",
                predecessor=("sierra-system-number", "b1"),
            ),
        ]
    )
    summary = WorksPipeline(store, minter).run(FullScope())
    assert summary.failed == 0 and summary.mint_calls == 1
    mappings = _mappings(registry)
    assert (
        mappings[("Work", "folio-instance", "f1")]
        == mappings[("Work", "sierra-system-number", "b1")]
    )


def test_predecessor_cycle_fails_the_works_in_the_cycle(store, minter):
    store.put_source(
        [
            work("folio-instance", "x", predecessor=("axiell-collections-id", "y")),
            work("axiell-collections-id", "y", predecessor=("folio-instance", "x")),
            work("sierra-system-number", "b9"),
        ]
    )
    summary = WorksPipeline(store, minter, churn_guard=ChurnGuardPolicy(enabled=False)).run(
        FullScope()
    )
    assert summary.works_written == 1
    assert sorted(f.work_id for f in summary.failures) == [
        "Work[axiell-collections-id/y]",
        "Work[folio-instance/x]",
    ]
    assert all("cycle" in f.detail for f in summary.failures)


def test_ids_and_window_scopes(store, minter):
    works = list(generate_works(40, seed=4))
    store.put_source(works)
    ids = [works[0].id, "sierra-system-number/b-absent", works[3].id.removeprefix("Work[")[:-1]]
    summary = WorksPipeline(store, minter).run(IdsScope(tuple(ids)))
    assert summary.works_read == 3 and summary.works_written == 2
    assert summary.processed == [works[0].id, works[3].id]
    assert [(f.work_id, f.stage) for f in summary.failures] == [
        ("Work[sierra-system-number/b-absent]", Stage.READ)
    ]
    assert summary.failures[0].detail == f"not found in {store.describe()}"
    window = WindowScope(DEFAULT_START, DEFAULT_START + timedelta(milliseconds=1500 * 9))
    summary = WorksPipeline(store, minter).run(window)
    superseded = _predecessors(works[:10])
    assert superseded == {works[0].id, works[4].id}  # Folio 6 and Axiell 8 succeed them
    assert summary.works_read == 10
    assert summary.processed == [w.id for w in works[:10] if w.id not in superseded]


class RejectingStore(SqliteWorksStore):
    """The embedded store, refusing to write one work (as Elasticsearch rejects a document)."""

    def __init__(self, path, reject):
        super().__init__(path)
        self.reject = reject

    def write_identified(self, works):
        kept = [w for w in works if w.source_id != self.reject]
        failures = super().write_identified(kept)
        return [*failures, WriteFailure(self.reject, "400: mapper_parsing_exception")]


def test_write_failures_fail_their_work_only(tmp_path, minter):
    works = list(generate_works(5, seed=5))
    with RejectingStore(tmp_path / "w.sqlite3", works[2].id) as store:
        store.put_source(works)
        summary = WorksPipeline(store, minter).run(FullScope())
    assert summary.works_written == 4
    assert [(f.work_id, f.stage, f.detail) for f in summary.failures] == [
        (works[2].id, Stage.WRITE, "400: mapper_parsing_exception")
    ]


def test_churn_guard_stops_new_folio_minting_and_alerts(store, minter, registry):
    folio = [
        work("folio-instance", f"f{n:03d}", indexed_at="2026-07-30T09:00:01Z") for n in range(30)
    ]
    sierra = [work("sierra-system-number", f"b{n}") for n in range(10)]
    store.put_source([*sierra, *folio])
    trips = []
    policy = ChurnGuardPolicy(max_new_share={"folio-instance": 0.2}, min_new_works=20)
    summary = WorksPipeline(store, minter, churn_guard=policy, on_churn_trip=trips.append).run(
        FullScope()
    )
    assert summary.works_written == 10
    assert summary.failures_by_stage == {
        "read": 0,
        "extract": 0,
        "mint": 30,
        "annotate": 0,
        "write": 0,
        "notify": 0,
    }
    assert all("churn guard: 30 of 30 folio-instance records" in f.detail for f in summary.failures)
    assert len(trips) == 1 and trips[0].source_system == "folio-instance"
    alert = trips[0].alert(job_id="j1")
    assert alert.severity == "critical" and alert.figures["new_without_predecessor"] == 30
    assert not any(k[1] == "folio-instance" for k in _mappings(registry))

    # Re-processing records that are already registered is not churn.
    WorksPipeline(store, minter, churn_guard=ChurnGuardPolicy(enabled=False)).run(FullScope())
    again = WorksPipeline(store, minter, churn_guard=policy, on_churn_trip=trips.append).run(
        FullScope()
    )
    assert again.failed == 0 and len(trips) == 1 and again.existing == again.identifiers_found


def test_churn_guard_leaves_successors_and_small_numbers_alone(store, minter):
    store.put_source(generate_works(100, seed=6))  # 1 new Folio record in 20: a normal trickle
    summary = WorksPipeline(store, minter).run(FullScope())
    assert summary.failed == 0 and summary.churn_trips == []


def test_batch_size_is_lowered_to_the_maximum_and_refused_below_one():
    assert clamp_batch_size(10**9) == MAX_BATCH_SIZE
    assert clamp_batch_size(500) == 500
    assert clamp_batch_size(1) == 1
    for bad in (0, -5):
        with pytest.raises(InvalidInputError, match=f"batch size {bad} is not allowed"):
            clamp_batch_size(bad)
    for bad in (True, 2.5, "10"):
        with pytest.raises(InvalidInputError, match="batch size must be an integer"):
            clamp_batch_size(bad)


def test_pool_exhaustion_stops_the_run_and_writes_nothing_for_that_batch(
    store, connect_registry, registry
):
    store.put_source(generate_works(20, seed=7))
    with Minter(connect_registry) as minter, pytest.raises(PoolExhaustedError):
        WorksPipeline(store, minter).run(FullScope())
    assert store.count_identified() == 0
    assert _mappings(registry) == {}


def test_same_identifier_in_many_works_is_one_registry_row(store, minter, registry):
    shared = [work("sierra-system-number", f"b{n}", items=("shared-item",)) for n in range(3)]
    store.put_source(shared)
    WorksPipeline(store, minter).run(FullScope())
    rows = [k for k in _mappings(registry) if k[2] == "shared-item"]
    assert rows == [("Item", "folio-item", "shared-item")]
