"""The churn guard's decisions, on works and on concepts and items (the pipeline tests, and the
last one here, run it against the real registry)."""

import pytest
from works_helpers import fill_pool, node, work

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.defs.works.resources import ChurnGuardResource, churn_guard_from_env
from idminter_pipeline.works.churn_guard import (
    NODE_SAMPLE,
    WORK_SAMPLE,
    ChurnGuard,
    ChurnGuardPolicy,
    parse_max_new_share,
)
from idminter_pipeline.works.documents import extract_work
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.stores import FullScope


def _extracted(*works):
    return [extract_work(w.document, document_id=w.id) for w in works]


class CountingLookup:
    def __init__(self, registered=()):
        self.registered = {s: "abcd2345" for s in registered}
        self.calls = []

    def __call__(self, sources):
        sources = list(sources)
        self.calls.append(sources)
        return {s: self.registered[s] for s in sources if s in self.registered}


def test_no_lookup_when_no_work_is_suspicious():
    works = _extracted(
        work("sierra-system-number", "b1"),
        work("folio-instance", "f1", predecessor=("sierra-system-number", "b1")),
    )
    lookup = CountingLookup()
    guard = ChurnGuard(ChurnGuardPolicy(min_new_works=1))
    assert guard.screen(works, lookup) == ({}, [])
    assert lookup.calls == [] and guard.lookups == 0


def test_one_lookup_for_just_the_suspicious_works():
    works = _extracted(
        work("sierra-system-number", "b1"),
        *(work("folio-instance", f"f{n}") for n in range(3)),
        work("folio-instance", "g", predecessor=("sierra-system-number", "b1")),
    )
    lookup = CountingLookup()
    stopped, trips = ChurnGuard(ChurnGuardPolicy(min_new_works=3)).screen(works, lookup)
    assert [[s.source_id for s in call] for call in lookup.calls] == [["f0", "f1", "f2"]]
    assert set(stopped) == {
        "Work[folio-instance/f0]",
        "Work[folio-instance/f1]",
        "Work[folio-instance/f2]",
    }
    assert trips[0].records_in_batch == 4 and trips[0].new_without_predecessor == 3
    assert trips[0].share == 0.75


def test_thresholds_share_and_minimum():
    works = _extracted(
        *(work("folio-instance", f"f{n}") for n in range(5)),
        *(
            work("folio-instance", f"p{n}", predecessor=("sierra-system-number", "b"))
            for n in range(15)
        ),
    )
    # 5 of 20 = 25%: over a 20% limit, under a 30% one; and the minimum must be met.
    assert (
        ChurnGuard(ChurnGuardPolicy({"folio-instance": 0.3}, min_new_works=1)).screen(
            works, CountingLookup()
        )[1]
        == []
    )
    assert (
        ChurnGuard(ChurnGuardPolicy({"folio-instance": 0.2}, min_new_works=6)).screen(
            works, CountingLookup()
        )[1]
        == []
    )
    assert (
        len(
            ChurnGuard(ChurnGuardPolicy({"folio-instance": 0.2}, min_new_works=5)).screen(
                works, CountingLookup()
            )[1]
        )
        == 1
    )


def test_registered_records_are_reprocessing_not_churn():
    works = _extracted(*(work("folio-instance", f"f{n}") for n in range(30)))
    lookup = CountingLookup(registered=[w.source for w in works])
    assert ChurnGuard(ChurnGuardPolicy(min_new_works=1)).screen(works, lookup) == ({}, [])


def test_a_tripped_system_stays_stopped_for_the_run_and_alerts_once():
    guard = ChurnGuard(ChurnGuardPolicy(min_new_works=2))
    first = _extracted(*(work("folio-instance", f"f{n}") for n in range(4)))
    stopped, trips = guard.screen(first, CountingLookup())
    assert len(stopped) == 4 and len(trips) == 1
    later = _extracted(
        work("folio-instance", "late"),
        *(
            work("folio-instance", f"p{n}", predecessor=("sierra-system-number", "b"))
            for n in range(10)
        ),
    )
    stopped, trips = guard.screen(later, CountingLookup())
    assert list(stopped) == ["Work[folio-instance/late]"] and trips == []


def test_disabled_and_unguarded_systems_are_left_alone():
    works = _extracted(*(work("miro-image-number", f"V{n}") for n in range(50)))
    lookup = CountingLookup()
    assert ChurnGuard(ChurnGuardPolicy(min_new_works=1)).screen(works, lookup) == ({}, [])
    folio = _extracted(*(work("folio-instance", f"f{n}") for n in range(50)))
    assert ChurnGuard(ChurnGuardPolicy(enabled=False)).screen(folio, lookup) == ({}, [])
    assert lookup.calls == []


def test_configuration_from_the_environment():
    policy = ChurnGuardPolicy.from_env(
        {
            "IDMINTER_CHURN_GUARD": "folio-instance=0.1, x=1",
            "IDMINTER_CHURN_GUARD_MIN_NEW_WORKS": "7",
        }
    )
    assert policy.max_new_share == {"folio-instance": 0.1, "x": 1.0}
    assert policy.min_new_works == 7 and policy.enabled
    assert not ChurnGuardPolicy.from_env({"IDMINTER_CHURN_GUARD_ENABLED": "false"}).enabled
    for bad in ("folio-instance", "folio-instance=2", "=0.1", "folio-instance=lots"):
        with pytest.raises(InvalidInputError, match="source-system=share"):
            parse_max_new_share(bad)
    with pytest.raises(InvalidInputError, match="min_new_works"):
        ChurnGuardPolicy(min_new_works=0)


# -- concepts and items ---------------------------------------------------------------------------


def _with_concepts(source, labels):
    source.document["data"]["subjects"] = [
        {"id": node("label-derived", "Concept", label)} for label in labels
    ]
    return source


def _catalogue(count, *, suffix="", concepts=3):
    return [
        _with_concepts(
            work("sierra-system-number", f"b{n}"),
            [f"subject {n}-{c}{suffix}" for c in range(concepts)],
        )
        for n in range(count)
    ]


def _registered(works):
    """Everything the works carry, as a registry that has minted them all would hold it."""
    extracted = _extracted(*works)
    return [source for w in extracted for source in w.identifiers]


def test_re_keyed_concepts_of_minted_works_trip_the_guard_and_stop_those_works():
    minted = _catalogue(30)
    rekeyed = _extracted(*_catalogue(30, suffix=" (revised)"))
    lookup = CountingLookup(registered=_registered(minted))
    stopped, trips = ChurnGuard(ChurnGuardPolicy(min_new_works=20)).screen(rekeyed, lookup)
    [trip] = trips
    assert (trip.ontology_type, trip.source_system) == ("Concept", "label-derived")
    assert (trip.records_in_batch, trip.new_without_predecessor) == (90, 90)
    assert trip.examples[0].startswith("Concept[label-derived/subject ")
    assert "Concept label-derived identifiers of already-minted works" in trip.reason
    assert set(stopped) == {w.work_id for w in rekeyed}
    assert trip.alert().title == "Churn guard stopped new Concept label-derived minting"
    # One lookup: 30 works and their 90 concepts fit in the sample.
    assert [len(call) for call in lookup.calls] == [30 + 90]


def test_new_works_bring_new_concepts_without_tripping():
    lookup = CountingLookup()
    guard = ChurnGuard(ChurnGuardPolicy(min_new_works=1))
    assert guard.screen(_extracted(*_catalogue(40)), lookup) == ({}, [])
    assert len(lookup.calls) == 1


def test_a_few_new_concepts_on_minted_works_are_ordinary_change():
    minted = _catalogue(30)
    # One new concept on each of 10 works: 10 of 100 concepts, 10 %.
    changed = [
        _with_concepts(
            w,
            [
                *(s["id"]["sourceIdentifier"]["value"] for s in w.document["data"]["subjects"]),
                f"extra {n}",
            ],
        )
        if n < 10
        else w
        for n, w in enumerate(_catalogue(30))
    ]
    lookup = CountingLookup(registered=_registered(minted))
    assert ChurnGuard(ChurnGuardPolicy(min_new_works=5)).screen(_extracted(*changed), lookup) == (
        {},
        [],
    )


def test_a_large_batch_is_judged_on_a_sample_then_counted_in_full():
    minted = _catalogue(200, concepts=5)
    rekeyed = _extracted(*_catalogue(200, suffix="!", concepts=5))
    lookup = CountingLookup(registered=_registered(minted))
    stopped, [trip] = ChurnGuard(ChurnGuardPolicy()).screen(rekeyed, lookup)
    first, second = lookup.calls
    assert len(first) <= WORK_SAMPLE + NODE_SAMPLE
    assert len(first) + len(second) == 200 + 1_000  # each work and concept looked up once
    assert trip.new_without_predecessor == 1_000 and len(stopped) == 200


def test_items_are_guarded_and_node_types_are_configuration():
    minted = [work("sierra-system-number", f"b{n}", items=(f"i{n}",)) for n in range(25)]
    renumbered = _extracted(
        *(work("sierra-system-number", f"b{n}", items=(f"x{n}",)) for n in range(25))
    )
    lookup = CountingLookup(registered=_registered(minted))
    _, [trip] = ChurnGuard(ChurnGuardPolicy()).screen(renumbered, lookup)
    assert trip.subject == "Item folio-item"
    off = ChurnGuardPolicy.from_env({"IDMINTER_CHURN_GUARD_NODES": "Concept=0.5"})
    assert off.max_new_node_share == {"Concept": 0.5}
    assert ChurnGuard(off).screen(renumbered, CountingLookup(_registered(minted))) == ({}, [])
    assert ChurnGuardPolicy.from_env({}).max_new_node_share == {"Concept": 0.2, "Item": 0.2}
    with pytest.raises(InvalidInputError, match="ontology-type=share"):
        ChurnGuardPolicy.from_env({"IDMINTER_CHURN_GUARD_NODES": "Concept"})


def test_the_pipeline_stops_re_keyed_concepts_before_minting_them(store, minter, connect_registry):
    fill_pool(connect_registry, 1_000)
    store.put_source(_catalogue(40))
    assert WorksPipeline(store, minter).run(FullScope()).works_written == 40
    minted_concepts = minter.lookup_ids(
        source for w in _extracted(*_catalogue(40, suffix="?")) for source in w.identifiers
    )
    assert all(s.ontology_type == "Work" for s in minted_concepts)

    store.put_source(_catalogue(40, suffix="?"))
    trips = []
    summary = WorksPipeline(store, minter, on_churn_trip=trips.append).run(FullScope())
    assert summary.failed == 40 and summary.failures_by_stage["mint"] == 40
    assert [t.subject for t in trips] == ["Concept label-derived"]
    revised = [s for w in _extracted(*_catalogue(40, suffix="?")) for s in w.identifiers]
    assert all(s.ontology_type == "Work" for s in minter.lookup_ids(revised))


def test_the_dagster_resource_carries_the_node_guard_from_the_environment(monkeypatch):
    monkeypatch.setenv("IDMINTER_CHURN_GUARD_NODES", "Item=0.05")
    policy = churn_guard_from_env().policy()
    assert policy.max_new_node_share == {"Item": 0.05}
    assert ChurnGuardResource().policy().max_new_node_share == {"Concept": 0.2, "Item": 0.2}
