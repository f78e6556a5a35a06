"""The legacy minter's output, read by source identifier and never written.

A reference is an identified index: documents keyed by canonical ID, each carrying its work's
`state.sourceIdentifier`. `find` returns the document of each requested work, by the work's
`_id` form (`Work[system/value]`). Each is tried first under the canonical ID this minter would
give the work (a primary-key read, which finds every work where both minters agree), and only
the works not found there are searched by source identifier.

- `SqliteReference` (`--reference PATH`): the `identified_works` table of a SQLite works store,
  opened read-only (`mode=ro`), so neither its rows nor its schema can change;
- `ElasticsearchReference` (`--reference-index NAME`): an index on the cluster
  `ELASTICSEARCH_URL` names, read with multi-get and, for the rest, a `terms` search on
  `state.sourceIdentifier.value` (which the index must map as a keyword).
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from idminter_pipeline.core.errors import InvalidInputError, MalformedWorkError, WorksStoreError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import environment
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.works.documents import decode_document, parse_bare_identifier

# SQLite's default limit on bound parameters is 999 on old builds.
_IDS_PER_QUERY = 500
_ES_CHUNK = 1000
# Elasticsearch's default `index.max_result_window`: the most hits one search returns.
_ES_MAX_HITS = 10_000


def _work_id_of(document: Any) -> str | None:
    """The `Work[system/value]` form of a reference document's `state.sourceIdentifier`."""
    try:
        identifier = document["state"]["sourceIdentifier"]
        system, value = identifier["identifierType"]["id"], identifier["value"]
        if identifier["ontologyType"] == "Work" and type(system) is str and type(value) is str:
            return f"Work[{system}/{value}]"  # what str(SourceIdentifier) gives, validated or not
        return str(parse_bare_identifier(identifier, "state", "reference"))
    except (KeyError, TypeError, InvalidInputError):
        return None


def _decoded(text: str, key: str) -> Any:
    """A stored reference document, decoded as the pipeline decodes source text (integers of
    any size kept exact). Text that cannot be decoded stands as an object naming the problem,
    so the work shows as an unexpected difference instead of stopping the run."""
    try:
        return decode_document(text, work_id=key)
    except MalformedWorkError as error:
        return {"(unreadable reference document)": error.detail}


class Reference(abc.ABC):
    """An identified index to compare with (see the module's docstring)."""

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def _by_canonical_id(self, canonical_ids: Sequence[str]) -> dict[str, Any]:
        """Documents by canonical ID (absent ones left out)."""

    @abc.abstractmethod
    def _by_work_id(self, work_ids: Sequence[str]) -> dict[str, Any]:
        """Documents by their work's `Work[system/value]` (absent ones left out)."""

    def find(self, candidates: Mapping[str, str | None]) -> dict[str, Any]:
        """The reference document of each work id in `candidates` (work id -> the canonical ID
        to try first, or None); works the reference lacks are left out."""
        found: dict[str, Any] = {}
        wanted = {cid: work for work, cid in candidates.items() if cid is not None}
        for canonical_id, document in self._by_canonical_id(sorted(wanted)).items():
            work = wanted[canonical_id]
            if _work_id_of(document) == work:
                found[work] = document
        rest = sorted(work for work in candidates if work not in found)
        if rest:
            found.update(self._by_work_id(rest))
        return found

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SqliteReference(Reference):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInputError(f"--reference {self.path}: no such file")
        try:
            self._conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            self._conn.execute("SELECT 1 FROM identified_works LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise InvalidInputError(
                f"--reference {self.path}: not a works store with an identified_works table "
                f"({error})"
            ) from error

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def _select(self, column: str, values: Sequence[str]) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        for start in range(0, len(values), _IDS_PER_QUERY):
            chunk = list(values[start : start + _IDS_PER_QUERY])
            marks = ",".join("?" * len(chunk))
            try:
                rows.extend(
                    self._conn.execute(
                        f"SELECT {column}, document FROM identified_works "
                        f"WHERE {column} IN ({marks})",
                        chunk,
                    ).fetchall()
                )
            except sqlite3.Error as error:
                raise WorksStoreError(f"cannot read the reference {self.path}: {error}") from error
        return rows

    def _by_canonical_id(self, canonical_ids: Sequence[str]) -> dict[str, Any]:
        return {
            key: _decoded(text, key) for key, text in self._select("canonical_id", canonical_ids)
        }

    def _by_work_id(self, work_ids: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        wanted = set(work_ids)
        for source_id, text in self._select("source_id", work_ids):
            document = _decoded(text, source_id)
            # The document's own state.sourceIdentifier decides; the column stands in for a
            # document too broken to say.
            work = _work_id_of(document) or source_id
            if work in wanted:
                found[work] = document
        return found

    def close(self) -> None:
        self._conn.close()


class ElasticsearchReference(Reference):
    def __init__(self, client: Any, index: str) -> None:
        if not index or not index.strip():
            raise InvalidInputError("--reference-index: an index name is required")
        self.client = client
        self.index = index

    @classmethod
    def from_env(
        cls, index: str, environ: Mapping[str, str] | None = None
    ) -> ElasticsearchReference:

        from idminter_pipeline.works.stores.elasticsearch import (  # noqa: PLC0415
            client_from_env,
        )

        client = client_from_env(environment(environ), needed_by="--reference-index")
        return cls(client, index)

    def describe(self) -> str:
        return f"elasticsearch:{self.index}"

    def _errors(self) -> tuple[type[Exception], ...]:
        from elasticsearch import exceptions  # noqa: PLC0415

        return (exceptions.ApiError, exceptions.TransportError)

    def _by_canonical_id(self, canonical_ids: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(canonical_ids), _ES_CHUNK):
            chunk = list(canonical_ids[start : start + _ES_CHUNK])
            try:
                response = self.client.mget(index=self.index, ids=chunk)
            except self._errors() as error:
                raise WorksStoreError(f"multi-get from {self.index} failed: {error}") from error
            found.update((d["_id"], d["_source"]) for d in response["docs"] if d.get("found"))
        return found

    def _by_work_id(self, work_ids: Sequence[str]) -> dict[str, Any]:
        wanted = set(work_ids)
        values = sorted({SourceIdentifier.parse(work).source_id for work in work_ids})
        found: dict[str, Any] = {}
        for start in range(0, len(values), _ES_CHUNK):
            for hit in self._search_values(values[start : start + _ES_CHUNK]):
                work = _work_id_of(hit.get("_source"))
                if work in wanted:
                    found[work] = hit["_source"]
        return found

    def _search_values(self, values: Sequence[str]) -> list[dict[str, Any]]:
        """Every document whose `state.sourceIdentifier.value` is one of `values`. The same
        value may stand in several source systems; when the hits outnumber one response the
        values are split and asked again, so no document is silently left out (it would read
        as `not_in_reference` and hide a difference)."""
        try:
            response = self.client.search(
                index=self.index,
                query={"terms": {"state.sourceIdentifier.value": list(values)}},
                size=_ES_MAX_HITS,
                track_total_hits=True,
            )
        except self._errors() as error:
            raise WorksStoreError(f"search of {self.index} failed: {error}") from error
        hits: list[dict[str, Any]] = response["hits"]["hits"]
        if response["hits"]["total"]["value"] <= len(hits):
            return hits
        if len(values) == 1:
            raise WorksStoreError(
                f"{self.index} holds more than {_ES_MAX_HITS:,} documents whose source "
                f"identifier value is {excerpt(values[0], 80)!r}"
            )
        middle = len(values) // 2
        return self._search_values(values[:middle]) + self._search_values(values[middle:])

    def close(self) -> None:
        self.client.close()
