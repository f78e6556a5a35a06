"""One contract for every works store: the embedded SQLite file, and Elasticsearch when
`ELASTICSEARCH_URL` points at a real cluster (otherwise those cases are skipped, saying why)."""

import multiprocessing
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch
from works_helpers import results_of, work

from idminter_pipeline.core.errors import InvalidInputError, WorksStoreError
from idminter_pipeline.core.settings import ElasticsearchSettings
from idminter_pipeline.works.documents import IdentifiedWork, SourceWork
from idminter_pipeline.works.sample_data import DEFAULT_START, generate_works
from idminter_pipeline.works.stores import (
    FullScope,
    IdsScope,
    SqliteWorksStore,
    WindowScope,
    read_scope,
    works_store_from_env,
)
from idminter_pipeline.works.stores.base import IdentifiedStamp, WorksStore
from idminter_pipeline.works.stores.elasticsearch import (
    ElasticsearchWorksStore,
    elasticsearch_client,
)
from idminter_pipeline.works.succession import RANKED

T0 = datetime(2026, 7, 30, 16, 0, tzinfo=UTC)


def _doc(value: str, indexed_at: datetime) -> SourceWork:
    stamp = indexed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return SourceWork(
        f"Work[sierra-system-number/{value}]",
        {
            "indexed_at": stamp,
            "state": {
                "sourceIdentifier": {
                    "identifierType": {"id": "sierra-system-number"},
                    "ontologyType": "Work",
                    "value": value,
                }
            },
            "data": {"title": f"Título {value} ✓"},
        },
    )


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteWorksStore(tmp_path / "works.sqlite3")
        yield s
        s.close()
        return
    url = os.environ.get("ELASTICSEARCH_URL")
    if not url:
        pytest.skip(
            "ELASTICSEARCH_URL not set: the Elasticsearch store contract needs a real cluster"
        )
    suffix = uuid.uuid4().hex[:8]
    settings = ElasticsearchSettings(
        source_index_prefix=f"test-works-source-{suffix}",
        target_index_prefix=f"test-works-identified-{suffix}",
        pipeline_date="2026-07-30",
    )
    s = ElasticsearchWorksStore(elasticsearch_client(url), settings)
    s.ensure_indices()
    yield s
    s.client.indices.delete(index=[s.source_index, s.target_index], ignore_unavailable=True)
    s.close()


def _ids(works):
    return [w.id for w in works]


def test_put_and_read_by_ids_in_order_with_missing_ones_reported(store):
    works = [_doc(f"b{n}", T0 + timedelta(seconds=n)) for n in range(5)]
    assert store.put_source(works) == 5
    store.refresh()
    wanted = [works[3].id, "Work[sierra-system-number/absent]", works[0].id]
    result = list(store.read_ids(wanted))
    assert [w.id for w in result] == wanted
    assert result[0].decoded().document == works[3].document
    assert result[1].content is None
    assert result[2].decoded().document["data"]["title"] == "Título b0 ✓"
    assert store.count_source() == 5


def test_window_includes_both_ends_and_is_ordered(store):
    works = [_doc(f"b{n:03d}", T0 + timedelta(minutes=n)) for n in range(10)]
    store.put_source(reversed(works))
    store.refresh()
    inside = list(
        store.read_window(
            WindowScope(T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)), page_size=2
        )
    )
    assert _ids(inside) == _ids(works[2:6])
    half_open = list(
        store.read_window(
            WindowScope(T0 + timedelta(minutes=2), T0 + timedelta(minutes=5), end_inclusive=False)
        )
    )
    assert _ids(half_open) == _ids(works[2:5])
    one_instant = list(
        store.read_window(WindowScope(T0 + timedelta(minutes=7), T0 + timedelta(minutes=7)))
    )
    assert _ids(one_instant) == [works[7].id]
    assert (
        list(store.read_window(WindowScope(T0 - timedelta(days=1), T0 - timedelta(seconds=1))))
        == []
    )


def test_millisecond_boundaries_are_exact(store):
    a = _doc("b1", T0 + timedelta(milliseconds=999))
    b = _doc("b2", T0 + timedelta(seconds=1))
    store.put_source([a, b])
    store.refresh()
    assert _ids(
        store.read_window(WindowScope(T0, T0 + timedelta(seconds=1), end_inclusive=False))
    ) == [a.id]
    assert _ids(
        store.read_window(WindowScope(T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)))
    ) == [b.id]


def test_full_scan_pages_through_everything_once_including_equal_timestamps(store):
    works = list(generate_works(57, seed=9, spacing=timedelta(0)))  # all share one indexed_at
    store.put_source(works)
    store.refresh()
    scanned = list(store.read_all(page_size=10))
    assert len(scanned) == 57
    assert sorted(_ids(scanned)) == sorted(_ids(works))


def test_scopes_dispatch(store):
    works = [_doc(f"b{n}", T0 + timedelta(hours=n)) for n in range(3)]
    store.put_source(works)
    store.refresh()
    assert _ids(read_scope(store, IdsScope(("sierra-system-number/b1",)))) == [works[1].id]
    window = WindowScope(T0, T0 + timedelta(hours=1))
    assert _ids(read_scope(store, window)) == _ids(works[:2])
    assert _ids(read_scope(store, FullScope())) == _ids(works)
    assert [w.decoded() for w in read_scope(store, FullScope())] == works


def test_a_full_scan_resumes_after_a_position_and_skips_nothing(store):
    works = list(generate_works(30, seed=9, spacing=timedelta(milliseconds=500)))
    store.put_source(works)
    store.refresh()
    scanned = list(store.read_all(page_size=7))
    assert [w.decoded() for w in scanned] == works
    assert all(w.position is not None and w.position.work_id == w.id for w in scanned)
    resumed = list(store.read_all(page_size=7, after=scanned[11].position))
    # A store that orders one instant by id resumes exactly after the position; one that does
    # not (Elasticsearch) starts at the position's instant: never a work skipped.
    assert _ids(resumed)[-18:] == _ids(works[12:])
    assert set(_ids(resumed)) <= set(_ids(works[10:]))


def test_a_window_scan_resumes_after_a_position_within_the_window(store):
    works = list(generate_works(30, seed=9, spacing=timedelta(milliseconds=500)))
    store.put_source(works)
    store.refresh()
    # Works 5 to 24 are in the window: [start of 5, start of 25).
    step = timedelta(milliseconds=500)
    window = WindowScope(DEFAULT_START + step * 5, DEFAULT_START + step * 25, end_inclusive=False)
    scanned = list(store.read_window(window, page_size=7))
    assert _ids(scanned) == _ids(works[5:25])
    resumed = list(read_scope(store, window, page_size=7, after=scanned[8].position))
    # As a full scan: exactly after the position, or from its instant; never before the
    # window's start nor past its end.
    assert _ids(resumed)[-11:] == _ids(works[14:25])
    assert set(_ids(resumed)) <= set(_ids(works[12:25]))


def test_identified_writes_are_upserts_by_canonical_id(store):
    first = IdentifiedWork("abcd2345", "Work[x/1]", {"state": {"canonicalId": "abcd2345"}, "v": 1})
    assert store.write_identified([first]) == []
    second = IdentifiedWork("abcd2345", "Work[x/1]", {"state": {"canonicalId": "abcd2345"}, "v": 2})
    other = IdentifiedWork("efgh6789", "Work[x/2]", {"state": {"canonicalId": "efgh6789"}, "v": 1})
    assert store.write_identified([second, other]) == []
    store.refresh()
    found = store.get_identified(["abcd2345", "efgh6789", "missing1"])
    assert found == {"abcd2345": second.document, "efgh6789": other.document}
    assert store.count_identified() == 2


def test_identified_stamps_name_the_holder_and_indexed_at_without_whole_documents(store):
    """What the audit compares: the same from the store's own query as from its documents."""

    def document(system, value, indexed_at):
        state = {
            "sourceIdentifier": {
                "identifierType": {"id": system},
                "ontologyType": "Work",
                "value": value,
            }
        }
        return {"indexed_at": indexed_at, "state": state, "data": {"title": "x" * 1000}}

    stamped = IdentifiedWork(
        "abcd2345", "Work[x/1]", document("x", "1", "2026-07-30T09:00:00.000Z")
    )
    unstamped = IdentifiedWork("efgh6789", "Work[x/2]", {"state": {}})
    assert store.write_identified([stamped, unstamped]) == []
    store.refresh()
    stamps = store.identified_stamps(["abcd2345", "efgh6789", "missing1"])
    assert stamps["abcd2345"] == IdentifiedStamp("Work[x/1]", "2026-07-30T09:00:00.000Z")
    assert stamps["efgh6789"].indexed_at is None and set(stamps) == {"abcd2345", "efgh6789"}
    # The interface's own reading of the documents agrees.
    assert WorksStore.identified_stamps(store, ["abcd2345"]) == {"abcd2345": stamps["abcd2345"]}


def test_a_scan_of_identified_documents_pages_through_each_once(store):
    written = [
        IdentifiedWork(f"abcd{n:04d}", f"Work[x/{n}]", {"state": {"n": n}}) for n in range(23)
    ]
    assert store.write_identified(written) == []
    store.refresh()
    scanned = list(store.scan_identified(page_size=5))
    assert sorted(cid for cid, _ in scanned) == [w.canonical_id for w in written]
    assert dict(scanned) == {w.canonical_id: w.document for w in written}


def test_a_lower_succession_rank_never_replaces_a_higher_one(store):
    """Succession (works.succession): SQLite's conditional upsert and Elasticsearch's
    `external_gte` versions behave alike."""
    successor = IdentifiedWork("abcd2345", "Work[folio-instance/f1]", {"v": "f1"}, RANKED + 9)
    predecessor = IdentifiedWork("abcd2345", "Work[sierra-system-number/b1]", {"v": "b1"}, RANKED)
    assert store.write_identified([predecessor]) == []
    assert store.write_identified([successor]) == []  # higher: replaces
    [refused] = store.write_identified([predecessor])  # lower: refused, naming the holder
    assert (refused.source_id, refused.superseded_by) == (
        predecessor.source_id,
        "Work[folio-instance/f1]",
    )
    again = IdentifiedWork("abcd2345", "Work[folio-instance/f1]", {"v": "f1 again"}, RANKED + 9)
    assert store.write_identified([again]) == []  # equal: the same work, replaces
    store.refresh()
    assert store.get_identified(["abcd2345"]) == {"abcd2345": {"v": "f1 again"}}
    held = store.identified_holders(["abcd2345", "missing1"])
    assert list(held) == ["abcd2345"]
    assert held["abcd2345"].rank == RANKED + 9
    store.delete_identified(["abcd2345"])
    store.refresh()
    assert store.get_identified(["abcd2345"]) == {}


def test_putting_a_source_work_again_replaces_it(store):
    store.put_source([_doc("b1", T0)])
    store.put_source([_doc("b1", T0 + timedelta(days=1))])
    store.refresh()
    assert store.count_source() == 1
    assert _ids(store.read_window(WindowScope(T0 + timedelta(days=1), T0 + timedelta(days=1)))) == [
        "Work[sierra-system-number/b1]"
    ]


def test_scopes_validate_their_input():
    with pytest.raises(InvalidInputError, match="at least one"):
        IdsScope(())
    with pytest.raises(InvalidInputError, match="before its start"):
        WindowScope(T0, T0 - timedelta(seconds=1))
    with pytest.raises(InvalidInputError, match="'yesterday' is not an ISO 8601"):
        WindowScope("yesterday", T0)
    scope = IdsScope(("sierra-system-number/b1", "Work[sierra-system-number/b1]"))
    assert scope.ids == ("Work[sierra-system-number/b1]",)
    naive = WindowScope("2026-07-30T16:00:00", "2026-07-30T17:00:00Z")
    assert naive.start == T0


def test_sqlite_store_refuses_documents_without_indexed_at(tmp_path):
    with SqliteWorksStore(tmp_path / "w.sqlite3") as store:
        with pytest.raises(InvalidInputError, match="'Work\\[x/1\\]' has no 'indexed_at'"):
            store.put_source([SourceWork("Work[x/1]", {"state": {}})])
        assert store.count_source() == 0


def test_store_from_env_defaults_to_the_embedded_file(tmp_path):
    store = works_store_from_env({"WORKS_STORE_PATH": str(tmp_path / "here.sqlite3")})
    assert isinstance(store, SqliteWorksStore)
    assert store.describe() == f"sqlite:{tmp_path / 'here.sqlite3'}"
    store.close()


def test_an_unreachable_elasticsearch_is_a_clear_store_error():
    client = Elasticsearch("http://127.0.0.1:9", max_retries=0, request_timeout=2)
    store = ElasticsearchWorksStore(client, ElasticsearchSettings(pipeline_date="2026-07-30"))
    assert store.source_index == "works-source-2026-07-30"
    assert store.target_index == "works-identified-2026-07-30"
    with pytest.raises(WorksStoreError, match="works-source-2026-07-30"):
        list(store.read_ids(["Work[sierra-system-number/b1]"]))
    with pytest.raises(WorksStoreError, match="point in time on works-source-2026-07-30"):
        list(store.read_all())
    store.close()


def test_text_the_pipeline_cannot_decode_reaches_it_undecoded(tmp_path):
    """Bad stored text (not UTF-8, not JSON) must not break the scan it comes in."""
    with SqliteWorksStore(tmp_path / "w.sqlite3") as store:
        store.put_source([_doc("b1", T0), _doc("b3", T0 + timedelta(seconds=2))])
        with store._guarded("write to") as conn, conn:
            conn.execute(
                "INSERT INTO source_works VALUES (?, ?, CAST(? AS TEXT))",
                ("Work[sierra-system-number/b2]", 1_785_427_201_000_000, b"{\xff not json"),
            )
        scanned = list(store.read_all(page_size=1))
    assert _ids(scanned) == [f"Work[sierra-system-number/b{n}]" for n in (1, 2, 3)]
    assert scanned[1].content == b"{\xff not json"


@pytest.mark.parametrize("where", ["/proc/works.sqlite3", "/proc/no/such/dir/works.sqlite3"])
def test_a_path_that_cannot_hold_a_store_is_one_store_error_naming_it(where):
    with pytest.raises(WorksStoreError, match=f"cannot open the works store {where}"):
        SqliteWorksStore(where)


def _open_like(store):
    """A second, independent handle on the same store (its own connection or client), picklable
    as arguments for a spawned process."""
    if isinstance(store, SqliteWorksStore):
        return ("sqlite", str(store.path), None)
    return ("elasticsearch", os.environ["ELASTICSEARCH_URL"], store.settings)


def _ranked_writer(opener, works, rounds, barrier, results) -> None:
    kind, where, settings = opener
    if kind == "sqlite":
        store = SqliteWorksStore(where)
    else:
        store = ElasticsearchWorksStore(elasticsearch_client(where), settings)
    refusals = []
    with store:
        for _ in range(rounds):
            barrier.wait(timeout=60)
            refusals += [(r.source_id, r.superseded_by) for r in store.write_identified(works)]
    results.put((works[0].source_id.split("/")[0], refusals))


def test_concurrent_writers_end_with_the_higher_rank_whatever_the_interleaving(store):
    """Race safety is the store's (works.succession): two processes, each with its own
    connection, write a predecessor's and its successor's documents for the same canonical IDs
    at the same moments, round after round. Every document ends as the successor's, the
    successor is never refused, and every refusal of the predecessor names the successor."""
    ids = [f"race{n:04d}" for n in range(40)]
    successors = [
        IdentifiedWork(i, f"Work[folio-instance/{i}]", {"v": f"f-{i}"}, RANKED + (1 << 54))
        for i in ids
    ]
    predecessors = [
        IdentifiedWork(i, f"Work[sierra-system-number/{i}]", {"v": f"b-{i}"}, RANKED) for i in ids
    ]
    rounds = 8
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(
            target=_ranked_writer, args=(_open_like(store), works, rounds, barrier, results)
        )
        for works in (predecessors, successors)
    ]
    outcomes = dict(results_of(processes, results))
    assert outcomes["Work[folio-instance"] == []
    refused = outcomes["Work[sierra-system-number"]
    # At least the rounds after the first are refused in full; the first may go either way.
    assert len(refused) >= (rounds - 1) * len(ids)
    assert all(
        held_by == source.replace("sierra-system-number", "folio-instance")
        for source, held_by in refused
    )
    store.refresh()
    assert store.get_identified(ids) == {i: {"v": f"f-{i}"} for i in ids}
    assert {i: h.source_id for i, h in store.identified_holders(ids).items()} == {
        i: f"Work[folio-instance/{i}]" for i in ids
    }


def test_a_read_only_sqlite_store_reads_and_refuses_writes_naming_the_file(tmp_path):
    path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(path) as store:
        store.put_source([work("sierra-system-number", "b1")])
    before = path.read_bytes()
    with SqliteWorksStore(path, read_only=True) as store:
        assert [w.id for w in store.read_all()] == ["Work[sierra-system-number/b1]"]
        with pytest.raises(WorksStoreError, match=f"{path}.*readonly"):
            store.put_source([work("sierra-system-number", "b2")])
    assert path.read_bytes() == before
    missing = tmp_path / "missing.sqlite3"
    with pytest.raises(WorksStoreError, match=f"{missing}: no such file"):
        SqliteWorksStore(missing, read_only=True)
    assert not missing.exists()
