"""The production works store: the transformer's and the minter's Elasticsearch indices.

Reads use the official client: multi-get for explicit ids, and a point-in-time with
`search_after` for windows and full runs (consistent across pages, unlike from/size, and without
scroll contexts). The client decodes `_source` with the standard library, which keeps integers
exact; Elasticsearch itself refused duplicate keys when the document was indexed. Writes go
through `elasticsearch.helpers.streaming_bulk`, which retries documents rejected with 429; the
client itself retries timeouts and 502/503/504.

Identified documents are written with external versioning, the version being the work's
succession rank (`works.succession`, `version_type: external_gte`): Elasticsearch refuses a
lower rank over a higher one (409 `version_conflict_engine_exception`), whatever order or
concurrency the writes come in, and such a work is reported superseded, naming the holder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from elasticsearch import Elasticsearch, helpers
from elasticsearch import exceptions as es_exceptions

from idminter_pipeline.core.errors import InvalidInputError, MalformedWorkError, WorksStoreError
from idminter_pipeline.core.settings import ElasticsearchSettings, environment
from idminter_pipeline.works.documents import IdentifiedWork, SourceWork, parse_bare_identifier
from idminter_pipeline.works.stores.base import (
    DEFAULT_PAGE_SIZE,
    IdentifiedStamp,
    ScanPosition,
    StoredHolder,
    StoredWork,
    WindowScope,
    WorksStore,
    WriteFailure,
    clamp_page_size,
    document_holder,
    format_timestamp,
    keep_highest_rank,
)

# Refusals (ApiError) and unreachable clusters (TransportError, after the client's retries).
_ES_ERRORS = (es_exceptions.ApiError, es_exceptions.TransportError)
POINT_IN_TIME_KEEP_ALIVE = "5m"
BULK_CHUNK_SIZE = 500
BULK_MAX_RETRIES = 5
_MGET_CHUNK = 1000
# `indexed_at` is the only field the minter queries; the rest of the document is stored as is.
SOURCE_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {"indexed_at": {"type": "date"}},
}
TARGET_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "indexed_at": {"type": "date"},
        "state": {"properties": {"canonicalId": {"type": "keyword"}}},
    },
}


def elasticsearch_client(
    url: str,
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    request_timeout: float = 30,
) -> Elasticsearch:
    auth: dict[str, Any] = {}
    if api_key:
        auth["api_key"] = api_key
    elif username:
        auth["basic_auth"] = (username, password or "")
    return Elasticsearch(
        url,
        request_timeout=request_timeout,
        retry_on_timeout=True,
        max_retries=5,
        retry_on_status=(429, 502, 503, 504),
        **auth,
    )


def _is_version_conflict(error: object) -> bool:
    return isinstance(error, dict) and error.get("type") == "version_conflict_engine_exception"


def _holder_name(source: object) -> str:
    """The work whose document this is, from its `state.sourceIdentifier`."""
    state = source.get("state") if isinstance(source, dict) else None
    identifier = state.get("sourceIdentifier") if isinstance(state, dict) else None
    try:
        return str(parse_bare_identifier(identifier, "state.sourceIdentifier", "held document"))
    except MalformedWorkError:
        return "a work without a readable state.sourceIdentifier"


def client_from_env(env: Mapping[str, str], *, needed_by: str = "") -> Elasticsearch:
    """A client of the cluster `ELASTICSEARCH_URL` names, with the `ES_*` credentials;
    `needed_by` names what wanted it in the error when the variable is unset."""
    url = env.get("ELASTICSEARCH_URL")
    if not url:
        raise InvalidInputError(
            f"{needed_by} needs ELASTICSEARCH_URL (the cluster)"
            if needed_by
            else "ELASTICSEARCH_URL is not set"
        )
    return elasticsearch_client(
        url,
        api_key=env.get("ES_API_KEY") or None,
        username=env.get("ES_USERNAME") or None,
        password=env.get("ES_PASSWORD") or None,
    )


def _resumed_at(after: ScanPosition) -> dict[str, Any]:
    """The works from `after`'s instant on. Works of one instant come in `_shard_doc` order,
    which a new point in time does not keep: a resumed scan starts at the instant itself,
    re-minting (idempotently) the works written there."""
    return {"range": {"indexed_at": {"gte": after.indexed_at_us // 1000, "format": "epoch_millis"}}}


class ElasticsearchWorksStore(WorksStore):
    def __init__(
        self,
        client: Elasticsearch,
        settings: ElasticsearchSettings | None = None,
        *,
        bulk_chunk_size: int = BULK_CHUNK_SIZE,
        bulk_max_retries: int = BULK_MAX_RETRIES,
    ) -> None:
        self.client = client
        self.settings = settings or ElasticsearchSettings.from_env()
        self.bulk_chunk_size = clamp_page_size(bulk_chunk_size)
        self.bulk_max_retries = bulk_max_retries

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ElasticsearchWorksStore:
        env = environment(environ)
        return cls(client_from_env(env), ElasticsearchSettings.from_env(env))

    @property
    def source_index(self) -> str:
        return self.settings.source_index

    @property
    def target_index(self) -> str:
        return self.settings.target_index

    def describe(self) -> str:
        return f"elasticsearch:{self.source_index} -> {self.target_index}"

    def close(self) -> None:
        self.client.close()

    def ensure_indices(self) -> None:
        """Create the two indices if missing (deployments usually create them with templates)."""
        for index, mappings in (
            (self.source_index, SOURCE_MAPPINGS),
            (self.target_index, TARGET_MAPPINGS),
        ):
            if not self.client.indices.exists(index=index):
                try:
                    self.client.indices.create(index=index, mappings=mappings)
                except es_exceptions.BadRequestError as error:
                    if error.error != "resource_already_exists_exception":
                        raise

    def refresh(self) -> None:
        self.client.indices.refresh(index=[self.source_index, self.target_index])

    def _multi_get(
        self, index: str, ids: Sequence[str], source_includes: list[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each id with its multi-get answer, in order, fetched `_MGET_CHUNK` at a time."""
        wanted = list(ids)
        options = {} if source_includes is None else {"source_includes": source_includes}
        for start in range(0, len(wanted), _MGET_CHUNK):
            chunk = wanted[start : start + _MGET_CHUNK]
            try:
                response = self.client.mget(index=index, ids=chunk, **options)
            except _ES_ERRORS as error:
                raise WorksStoreError(f"multi-get from {index} failed: {error}") from error
            yield from zip(chunk, response["docs"], strict=True)

    def read_ids(self, ids: Sequence[str]) -> Iterator[StoredWork]:
        for work_id, doc in self._multi_get(self.source_index, ids):
            yield StoredWork(work_id, doc.get("_source") if doc.get("found") else None)

    def _scan(self, query: dict[str, Any], page_size: int) -> Iterator[StoredWork]:
        size = clamp_page_size(page_size)
        try:
            pit_id = self.client.open_point_in_time(
                index=self.source_index, keep_alive=POINT_IN_TIME_KEEP_ALIVE
            )["id"]
        except _ES_ERRORS as error:
            raise WorksStoreError(
                f"cannot open a point in time on {self.source_index}: {error}"
            ) from error
        search_after: list[Any] | None = None
        try:
            while True:
                try:
                    response = self.client.search(
                        pit={"id": pit_id, "keep_alive": POINT_IN_TIME_KEEP_ALIVE},
                        query=query,
                        sort=[{"indexed_at": {"order": "asc"}}, {"_shard_doc": {"order": "asc"}}],
                        size=size,
                        search_after=search_after,
                        track_total_hits=False,
                    )
                except _ES_ERRORS as error:
                    raise WorksStoreError(
                        f"search of {self.source_index} failed: {error}"
                    ) from error
                pit_id = response.get("pit_id", pit_id)
                hits = response["hits"]["hits"]
                for hit in hits:
                    # The first sort value is indexed_at in epoch milliseconds (a `date` field).
                    position = ScanPosition(int(hit["sort"][0]) * 1000, hit["_id"])
                    yield StoredWork(hit["_id"], hit.get("_source"), position)
                if len(hits) < size:
                    return
                search_after = hits[-1]["sort"]
        finally:
            # It expires on its own after the keep-alive if closing fails.
            with contextlib.suppress(*_ES_ERRORS):
                self.client.close_point_in_time(id=pit_id)

    def read_window(
        self,
        window: WindowScope,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        after: ScanPosition | None = None,
    ) -> Iterator[StoredWork]:
        bounds = {
            "gte": format_timestamp(window.start),
            "lte" if window.end_inclusive else "lt": format_timestamp(window.end),
            "format": "strict_date_optional_time_nanos",
        }
        window_range = {"range": {"indexed_at": bounds}}
        if after is None:
            return self._scan(window_range, page_size)
        return self._scan({"bool": {"filter": [window_range, _resumed_at(after)]}}, page_size)

    def read_all(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, after: ScanPosition | None = None
    ) -> Iterator[StoredWork]:
        if after is None:
            return self._scan({"match_all": {}}, page_size)
        return self._scan(_resumed_at(after), page_size)

    def write_identified(self, works: Sequence[IdentifiedWork]) -> list[WriteFailure]:
        # One write per `_id` per request: each refusal then belongs to exactly one work.
        kept, failures = keep_highest_rank(works)
        source_ids = {work.canonical_id: work.source_id for work in kept}
        conflicts: list[str] = []
        try:
            for ok, item in helpers.streaming_bulk(
                self.client,
                (self._index_action(work) for work in kept),
                chunk_size=self.bulk_chunk_size,
                max_retries=self.bulk_max_retries,
                initial_backoff=1,
                max_backoff=30,
                raise_on_error=False,
                raise_on_exception=False,
            ):
                if ok:
                    continue
                result = next(iter(item.values()))
                canonical_id = result.get("_id", "")
                error = result.get("error")
                if result.get("status") == 409 and _is_version_conflict(error):
                    conflicts.append(canonical_id)  # a higher rank holds it: superseded
                    continue
                failures.append(
                    WriteFailure(
                        source_ids.get(canonical_id, canonical_id),
                        f"{result.get('status')}: {error}",
                    )
                )
            if conflicts:
                held = self.identified_holders(conflicts)
                for canonical_id in conflicts:
                    holder = held.get(canonical_id)
                    name = holder.source_id if holder is not None else "a higher-ranked work"
                    failures.append(
                        WriteFailure(source_ids[canonical_id], f"superseded by {name}", name)
                    )
        except _ES_ERRORS as error:
            raise WorksStoreError(f"bulk write to {self.target_index} failed: {error}") from error
        return failures

    def _index_action(self, work: IdentifiedWork) -> dict[str, Any]:
        action: dict[str, Any] = {
            "_op_type": "index",
            "_index": self.target_index,
            "_id": work.canonical_id,
            "_source": work.document,
        }
        if work.rank:
            # Elasticsearch keeps the document unless this version is at least the stored one:
            # a lower rank never replaces a higher one, an equal rank (the same work) does.
            action["_version"] = work.rank
            action["_version_type"] = "external_gte"
        return action

    def identified_holders(self, canonical_ids: Sequence[str]) -> dict[str, StoredHolder]:
        return {
            doc["_id"]: StoredHolder(
                _holder_name(doc.get("_source")), int(doc.get("_version") or 0)
            )
            for _, doc in self._multi_get(
                self.target_index, canonical_ids, ["state.sourceIdentifier"]
            )
            if doc.get("found")
        }

    def identified_stamps(self, canonical_ids: Sequence[str]) -> dict[str, IdentifiedStamp]:
        # Only the two fields an audit compares, not whole documents.
        stamps: dict[str, IdentifiedStamp] = {}
        for _, doc in self._multi_get(
            self.target_index, canonical_ids, ["state.sourceIdentifier", "indexed_at"]
        ):
            if doc.get("found"):
                source = doc.get("_source") or {}
                indexed_at = source.get("indexed_at")
                stamps[doc["_id"]] = IdentifiedStamp(
                    document_holder(source), indexed_at if isinstance(indexed_at, str) else None
                )
        return stamps

    def delete_identified(self, canonical_ids: Sequence[str]) -> None:
        # A deleted document's version lives on for `index.gc_deletes` (60 s by default): a
        # lower-ranked write is refused until then, and the repair reports it to run again.
        actions = (
            {"_op_type": "delete", "_index": self.target_index, "_id": canonical_id}
            for canonical_id in canonical_ids
        )
        try:
            for ok, item in helpers.streaming_bulk(
                self.client, actions, max_retries=self.bulk_max_retries, raise_on_error=False
            ):
                result = next(iter(item.values()))
                if not ok and result.get("status") != 404:
                    raise WorksStoreError(
                        f"cannot delete {result.get('_id')} from {self.target_index}: "
                        f"{result.get('error')}"
                    )
        except _ES_ERRORS as error:
            raise WorksStoreError(
                f"bulk delete from {self.target_index} failed: {error}"
            ) from error

    def scan_identified(
        self, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            for hit in helpers.scan(
                self.client,
                index=self.target_index,
                query={"query": {"match_all": {}}},
                size=clamp_page_size(page_size),
                preserve_order=False,
            ):
                yield hit["_id"], hit["_source"]
        except _ES_ERRORS as error:
            raise WorksStoreError(f"scan of {self.target_index} failed: {error}") from error

    def get_identified(self, canonical_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = list(canonical_ids)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), _MGET_CHUNK):
            response = self.client.mget(
                index=self.target_index, ids=wanted[start : start + _MGET_CHUNK]
            )
            found.update((d["_id"], d["_source"]) for d in response["docs"] if d.get("found"))
        return found

    def put_source(self, works: Iterable[SourceWork], *, batch_size: int = 1000) -> int:
        # Loading sample or dumped works may target fresh indices: give them the date mapping.
        self.ensure_indices()
        total = 0
        for ok, item in helpers.streaming_bulk(
            self.client,
            (
                {
                    "_op_type": "index",
                    "_index": self.source_index,
                    "_id": work.id,
                    "_source": work.document,
                }
                for work in works
            ),
            chunk_size=clamp_page_size(batch_size),
            max_retries=self.bulk_max_retries,
            raise_on_error=False,
        ):
            if not ok:
                raise WorksStoreError(f"cannot load a source work into {self.source_index}: {item}")
            total += 1
        self.client.indices.refresh(index=self.source_index)
        return total

    def count_source(self) -> int:
        return int(self.client.count(index=self.source_index)["count"])

    def count_identified(self) -> int:
        return int(self.client.count(index=self.target_index)["count"])
