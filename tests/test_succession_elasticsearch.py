"""The Elasticsearch store's succession requests, asserted on the wire: a local HTTP server
records what the real client sends and answers as a cluster would for the case at hand (no
cluster runs here; `tests/test_works_stores.py` runs the contract against a real one where
`ELASTICSEARCH_URL` is set)."""

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from idminter_pipeline.core.settings import ElasticsearchSettings
from idminter_pipeline.works.documents import IdentifiedWork
from idminter_pipeline.works.stores.base import IdentifiedStamp
from idminter_pipeline.works.stores.elasticsearch import (
    ElasticsearchWorksStore,
    elasticsearch_client,
)
from idminter_pipeline.works.succession import RANKED

Answer = Callable[[str, str, dict[str, list[str]], bytes], dict[str, Any]]


class _Recorder(BaseHTTPRequestHandler):
    answer: Answer
    requests: list[tuple[str, str, dict[str, list[str]], bytes]]

    def _handle(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = parse_qs(url.query)
        self.requests.append((self.command, url.path, query, body))
        payload = json.dumps(self.answer(self.command, url.path, query, body)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cluster() -> Iterator[dict[str, Any]]:
    """A recording server; set `state["answer"]` to script the answers."""
    state: dict[str, Any] = {"requests": []}

    class Handler(_Recorder):
        requests = state["requests"]

        def answer(self, method, path, query, body):  # type: ignore[override]
            return state["answer"](method, path, query, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = ElasticsearchSettings(
        source_index_prefix="works-source",
        target_index_prefix="works-identified",
        pipeline_date="2026-07-30",
    )
    state["store"] = ElasticsearchWorksStore(
        elasticsearch_client(f"http://127.0.0.1:{server.server_port}"), settings
    )
    yield state
    state["store"].close()
    server.shutdown()


def _bulk_lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _bulk_answer(statuses: dict[str, tuple[int, dict[str, Any] | None]]) -> Answer:
    """Answer `_bulk` item by item: `statuses[_id]` (status, error), 201 otherwise; answer
    `_mget` with holders named `Work[folio-instance/<_id>]`."""

    def answer(method, path, query, body):
        if path.endswith("/_mget"):
            ids = json.loads(body)["ids"]
            return {
                "docs": [
                    {
                        "_id": i,
                        "found": True,
                        "_version": RANKED + 9,
                        "_source": {
                            "state": {
                                "sourceIdentifier": {
                                    "identifierType": {"id": "folio-instance"},
                                    "ontologyType": "Work",
                                    "value": i,
                                }
                            }
                        },
                    }
                    for i in ids
                ]
            }
        assert path == "/_bulk", path
        items = []
        for action in _bulk_lines(body)[::2]:
            meta = action["index"]
            status, error = statuses.get(meta["_id"], (201, None))
            item = {"_index": meta["_index"], "_id": meta["_id"], "status": status}
            if error is not None:
                item["error"] = error
            items.append({"index": item})
        return {"took": 1, "errors": any("error" in i["index"] for i in items), "items": items}

    return answer


def _work(canonical_id: str, source: str, rank: int) -> IdentifiedWork:
    return IdentifiedWork(canonical_id, source, {"state": {"canonicalId": canonical_id}}, rank)


def test_a_ranked_write_is_an_external_gte_version(cluster):
    cluster["answer"] = _bulk_answer({})
    store = cluster["store"]
    work = _work("abcd2345", "Work[folio-instance/f1]", RANKED + 7)
    assert store.write_identified([work, _work("efgh6789", "Work[x/1]", 0)]) == []
    [(method, path, _, body)] = cluster["requests"]
    assert method in {"POST", "PUT"} and path == "/_bulk"
    assert _bulk_lines(body) == [
        {
            "index": {
                "_index": store.target_index,
                "_id": "abcd2345",
                "version": RANKED + 7,
                "version_type": "external_gte",
            }
        },
        work.document,
        # An unranked write (no succession information) indexes as before.
        {"index": {"_index": store.target_index, "_id": "efgh6789"}},
        {"state": {"canonicalId": "efgh6789"}},
    ]


def test_a_version_conflict_is_superseded_naming_the_holder(cluster):
    conflict = {
        "type": "version_conflict_engine_exception",
        "reason": "[abcd2345]: version conflict, current version is higher",
    }
    cluster["answer"] = _bulk_answer({"abcd2345": (409, conflict)})
    store = cluster["store"]
    [refused] = store.write_identified([_work("abcd2345", "Work[sierra-system-number/b1]", RANKED)])
    assert refused.source_id == "Work[sierra-system-number/b1]"
    assert refused.superseded_by == "Work[folio-instance/abcd2345]"
    _, mget_path, query, body = cluster["requests"][1]
    assert mget_path == f"/{store.target_index}/_mget"
    assert query["_source_includes"] == ["state.sourceIdentifier"]
    assert json.loads(body) == {"ids": ["abcd2345"]}


def test_two_works_under_one_id_are_one_write_and_a_refusal_fails_only_its_work(cluster):
    """A batch holding a predecessor and its successor sends the successor's document alone;
    when Elasticsearch refuses it, the successor fails and the predecessor is superseded."""
    refusal = {"type": "mapper_parsing_exception", "reason": "failed to parse"}
    cluster["answer"] = _bulk_answer({"abcd2345": (400, refusal)})
    store = cluster["store"]
    old = _work("abcd2345", "Work[sierra-system-number/b1]", RANKED)
    new = _work("abcd2345", "Work[folio-instance/f1]", RANKED + (1 << 54))
    other = _work("efgh6789", "Work[sierra-system-number/b2]", RANKED)
    failures = store.write_identified([new, old, other])
    by_work = {f.source_id: f for f in failures}
    assert set(by_work) == {old.source_id, new.source_id}
    assert by_work[old.source_id].superseded_by == new.source_id
    assert by_work[new.source_id].superseded_by is None
    assert (
        "400" in by_work[new.source_id].detail and "mapper_parsing" in by_work[new.source_id].detail
    )
    [(_, _, _, body)] = cluster["requests"]
    sent = [line["index"]["_id"] for line in _bulk_lines(body)[::2]]
    assert sent == ["abcd2345", "efgh6789"]
    assert _bulk_lines(body)[0]["index"]["version"] == new.rank


def test_identified_stamps_fetch_only_the_holder_and_indexed_at(cluster):
    """The audit's read of the identified index: a multi-get of two fields per document."""

    def answer(method, path, query, body):
        found = {
            "_id": "abcd2345",
            "found": True,
            "_source": {
                "indexed_at": "2026-07-30T09:00:00.000Z",
                "state": {
                    "sourceIdentifier": {
                        "identifierType": {"id": "folio-instance"},
                        "ontologyType": "Work",
                        "value": "f1",
                    }
                },
            },
        }
        return {"docs": [found, {"_id": "missing1", "found": False}]}

    cluster["answer"] = answer
    stamps = cluster["store"].identified_stamps(["abcd2345", "missing1"])
    assert stamps == {
        "abcd2345": IdentifiedStamp("Work[folio-instance/f1]", "2026-07-30T09:00:00.000Z")
    }
    [(_, path, query, body)] = cluster["requests"]
    assert path == "/works-identified-2026-07-30/_mget"
    assert query["_source_includes"] == ["state.sourceIdentifier,indexed_at"]
    assert json.loads(body) == {"ids": ["abcd2345", "missing1"]}
