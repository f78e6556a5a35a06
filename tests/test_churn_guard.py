"""The churn guard's decisions (the pipeline tests run it against the real registry)."""

import pytest
from works_helpers import work

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.works.churn_guard import ChurnGuard, ChurnGuardPolicy, parse_max_new_share
from idminter_pipeline.works.documents import extract_work


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
