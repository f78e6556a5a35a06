"""Helpers for the works tests: sample documents, a filled free-ID pool, the embedded store."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.works.documents import SourceWork
from idminter_pipeline.works.sample_data import identifiable, source_identifier
from idminter_pipeline.works.stores import SqliteWorksStore
from idminter_pipeline.works.stores.base import timestamp_micros

# The documents' identifier objects, as the sample works build them.
si = source_identifier
node = identifiable


def work(
    system: str,
    value: str,
    *,
    indexed_at: str = "2026-07-30T09:00:00.000Z",
    predecessor: tuple[str, str] | None = None,
    items: tuple[str, ...] = (),
) -> SourceWork:
    state: dict[str, Any] = {"sourceIdentifier": si(system, "Work", value)}
    if predecessor is not None:
        state["predecessorIdentifier"] = si(predecessor[0], "Work", predecessor[1])
    document = {
        "version": 1,
        "type": "Visible",
        "indexed_at": indexed_at,
        "data": {"items": [{"id": node("folio-item", "Item", i)} for i in items]},
        "state": state,
    }
    return SourceWork(f"Work[{system}/{value}]", document)


def numbered_works(count: int, *, first_second: int = 0) -> list[SourceWork]:
    """`count` Sierra works b0000, b0001, ..., each with one item (i0000, ...), indexed a second
    apart from 09:00:00 plus `first_second`."""
    start = datetime(2026, 7, 30, 9, tzinfo=UTC) + timedelta(seconds=first_second)
    return [
        work(
            "sierra-system-number",
            f"b{n:04d}",
            indexed_at=(start + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            items=(f"i{n:04d}",),
        )
        for n in range(count)
    ]


def results_of(
    processes: Sequence[multiprocessing.process.BaseProcess], results: multiprocessing.Queue
) -> list[Any]:
    """Start `processes` and take one result each from `results`, in the order they come;
    then check that every process exited cleanly."""
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outcomes


def fill_pool(connect, free: int = 5_000) -> None:
    top_up(connect, free)


# -- bad documents, one per failure kind ----------------------------------------------------------
# kind -> (stage, a phrase of the detail). Each is planted in the SQLite store as the stored text
# itself, the way a broken transformer or a hand-edited index would leave it.
BAD_DOCUMENTS = {
    "not JSON": ("read", "not valid JSON"),
    "empty text": ("read", "the stored text is empty"),
    "JSON null": ("read", "the stored document is null, not an object"),
    "not an object": ("read", "the stored document is array, not an object"),
    "not UTF-8": ("read", "not valid JSON"),
    "nested 600 deep": ("extract", "nests deeper than 100 levels"),
    "malformed identifier": ("extract", "sourceIdentifier.value: expected a string"),
    "_id is not its sourceIdentifier": ("extract", "but the document is stored under _id"),
    "two rows, one sourceIdentifier": ("extract", "but the document is stored under _id"),
    "missing predecessor": ("mint", "is not in the registry"),
    "different canonicalId already": ("annotate", "canonicalId is already 'zzzz9999'"),
}


def _micros(indexed_at: datetime) -> int:
    return timestamp_micros(indexed_at)


def _stamp(indexed_at: datetime) -> str:
    return indexed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def put_stored_text(store_path: Path, work_id: str, indexed_at: datetime, text: bytes) -> None:
    """A source row holding exactly `text`, bypassing the store's own checks."""
    with sqlite3.connect(store_path) as db:
        db.execute(
            "INSERT INTO source_works (id, indexed_at_us, document) VALUES (?, ?, CAST(? AS TEXT))",
            (work_id, _micros(indexed_at), text),
        )
    db.close()


def plant_bad_document(  # noqa: PLR0912 (one branch per kind)
    store_path: Path, kind: str, indexed_at: datetime
) -> tuple[str, list[str]]:
    """Put one bad document of `kind` into the store: the id that must fail, and the ids of any
    good works planted with it (which must be written)."""
    bad_id = "Work[sierra-system-number/b-bad]"
    good: list[str] = []
    document = work("sierra-system-number", "b-bad", indexed_at=_stamp(indexed_at)).document
    if kind == "not JSON":
        text = b'{"state": {not json'
    elif kind == "empty text":
        text = b""
    elif kind == "JSON null":
        text = b"null"
    elif kind == "not an object":
        text = b"[1, 2]"
    elif kind == "not UTF-8":
        text = b'{"data": {"title": "\xff\xfe"}}'
    elif kind == "nested 600 deep":
        deep: dict = {}
        document["data"]["deep"] = deep
        for _ in range(600):
            deep["child"] = {}
            deep = deep["child"]
        text = json.dumps(document).encode()
    elif kind == "malformed identifier":
        document["data"]["items"] = [{"id": node("folio-item", "Item", "i-bad")}]
        document["data"]["items"][0]["id"]["sourceIdentifier"]["value"] = ["not", "a", "string"]
        text = json.dumps(document).encode()
    elif kind == "_id is not its sourceIdentifier":
        bad_id = "Work[sierra-system-number/b-elsewhere]"
        text = json.dumps(document).encode()
    elif kind == "two rows, one sourceIdentifier":
        good_id = "Work[sierra-system-number/b-bad]"
        put_stored_text(store_path, good_id, indexed_at, json.dumps(document).encode())
        good.append(good_id)
        bad_id = "Work[sierra-system-number/b-bad-copy]"
        text = json.dumps(document).encode()
    elif kind == "missing predecessor":
        bad_id = "Work[folio-instance/f-orphan]"
        document = work(
            "folio-instance",
            "f-orphan",
            indexed_at=_stamp(indexed_at),
            predecessor=("sierra-system-number", "b-never-registered"),
        ).document
        text = json.dumps(document).encode()
    elif kind == "different canonicalId already":
        document["data"]["items"] = [{"id": {**node("folio-item", "Item", "i-1")}}]
        document["data"]["items"][0]["id"]["canonicalId"] = "zzzz9999"
        text = json.dumps(document).encode()
    else:
        raise ValueError(f"unknown kind {kind!r}")
    put_stored_text(store_path, bad_id, indexed_at, text)
    return bad_id, good


def use_embedded_store(monkeypatch: pytest.MonkeyPatch, directory: Path) -> Path:
    """Point the pipeline's environment (as the Lambda reads it) at an embedded works store in
    `directory`, with no Elasticsearch and no downstream topic; the store's path."""
    store_path = directory / "works.sqlite3"
    monkeypatch.setenv("WORKS_STORE_PATH", str(store_path))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(directory / "local"))
    for name in (
        "ELASTICSEARCH_URL",
        "IDMINTER_DOWNSTREAM_SNS_TOPIC_ARN",
        "ES_API_KEY_SECRET_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    return store_path


def embedded_store_holding(
    monkeypatch: pytest.MonkeyPatch,
    directory: Path,
    works: Sequence[SourceWork],
    connect,
    free: int,
) -> Path:
    """The embedded works store of `use_embedded_store`, holding `works`, and `free` IDs in the
    registry's pool to mint them from; the store's path."""
    store_path = use_embedded_store(monkeypatch, directory)
    fill_pool(connect, free)
    with SqliteWorksStore(store_path) as store:
        store.put_source(works)
    return store_path
