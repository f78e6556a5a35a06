"""The embedded works store: one SQLite file (stdlib `sqlite3`), no server needed.

Same operations and semantics as the Elasticsearch store: source works keyed by their `_id`,
scanned in (`indexed_at`, id) order with keyset pagination (the analogue of `search_after`);
identified works upserted by canonical ID, a lower succession rank never over a higher one
(one conditional upsert, `works.succession`).

Source documents are read as bytes (`CAST(document AS BLOB)`), never decoded here: text that is
not valid UTF-8 or not JSON then fails its own work in the pipeline instead of the whole page.
Every SQLite error (a path that cannot hold a database, a full disk, a corrupt file) is a
`WorksStoreError` naming the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from idminter_pipeline.core.errors import InvalidInputError, WorksStoreError
from idminter_pipeline.core.settings import local_state_dir
from idminter_pipeline.works.documents import IdentifiedWork, SourceWork, encode_document
from idminter_pipeline.works.stores.base import (
    DEFAULT_PAGE_SIZE,
    FullScope,
    IdentifiedStamp,
    IdsScope,
    ScanPosition,
    StoredHolder,
    StoredWork,
    WindowScope,
    WorkScope,
    WorksStore,
    WriteFailure,
    clamp_page_size,
    keep_highest_rank,
    parse_timestamp,
    timestamp_micros,
)

DEFAULT_FILE_NAME = "works.sqlite3"
# SQLite's default limit on bound parameters is 999 on old builds.
_IDS_PER_QUERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS source_works (
    id TEXT PRIMARY KEY,
    indexed_at_us INTEGER NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS source_works_indexed_at ON source_works (indexed_at_us, id);
CREATE TABLE IF NOT EXISTS identified_works (
    canonical_id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    document TEXT NOT NULL,
    succession_rank INTEGER NOT NULL DEFAULT 0
);
"""
# A store written before succession ranks existed gets the column, its documents rank 0 (below
# every ranked write): `idminter works repair-succession` puts their chains right.
_ADD_RANK = "ALTER TABLE identified_works ADD COLUMN succession_rank INTEGER NOT NULL DEFAULT 0"
# The conditional upsert that makes succession race-safe: one statement, under SQLite's write
# lock, so concurrent writers cannot interleave a check and a write (`works.succession`).
_UPSERT_IDENTIFIED = (
    "INSERT INTO identified_works (canonical_id, source_id, document, succession_rank) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (canonical_id) DO UPDATE SET "
    "source_id = excluded.source_id, document = excluded.document, "
    "succession_rank = excluded.succession_rank "
    "WHERE excluded.succession_rank >= identified_works.succession_rank"
)


def default_sqlite_path() -> Path:
    return local_state_dir() / DEFAULT_FILE_NAME


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can only read `path` (SQLite's `mode=ro`): no journal-mode switch, no
    schema change, no write reaches the file, whatever the caller does with it."""
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60, check_same_thread=False
    )


class SqliteWorksStore(WorksStore):
    """A SQLite works store. Opened for writing (the default) it creates a missing file, turns
    on WAL and brings an older schema up to date. `read_only=True` opens an existing file as it
    is, byte for byte (a shadow run reads the store it compares): nothing is created, migrated
    or switched, and a write fails naming the file."""

    def __init__(self, path: Path | str | None = None, *, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else default_sqlite_path()
        self.read_only = read_only
        try:
            if read_only:
                if not self.path.is_file():
                    raise WorksStoreError(f"works store {self.path}: no such file")
                self._conn = connect_read_only(self.path)
                self._conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            else:
                self._open_for_writing()
        except (OSError, sqlite3.Error) as error:
            raise WorksStoreError(
                f"cannot open the works store {self.path} (WORKS_STORE_PATH): {error}"
            ) from error
        self._lock = threading.RLock()

    def _open_for_writing(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared under a lock: Dagster may call from more than one thread.
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(identified_works)")}
        if "succession_rank" not in columns:
            with self._conn:
                self._conn.execute(_ADD_RANK)

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    @contextmanager
    def _guarded(self, doing: str) -> Iterator[sqlite3.Connection]:
        """The connection under the lock; any SQLite error becomes one naming the file."""
        try:
            with self._lock:
                yield self._conn
        except sqlite3.Error as error:
            raise WorksStoreError(f"cannot {doing} the works store {self.path}: {error}") from error

    def close(self) -> None:
        with self._guarded("close"):
            self._conn.close()

    def read_ids(self, ids: Sequence[str]) -> Iterator[StoredWork]:
        wanted = list(ids)
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = wanted[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            with self._guarded("read from") as conn:
                rows = dict(
                    conn.execute(
                        "SELECT id, CAST(document AS BLOB) FROM source_works "
                        f"WHERE id IN ({marks})",
                        chunk,
                    ).fetchall()
                )
            for work_id in chunk:
                yield StoredWork(work_id, rows.get(work_id))

    def scan_ids(self, scope: WorkScope, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[str]:
        if isinstance(scope, IdsScope):
            yield from scope.ids
            return
        where, params = self._where(scope)
        for _, work_id in self._rows("id", where, params, page_size):
            yield work_id

    @staticmethod
    def _where(scope: WindowScope | FullScope) -> tuple[str, tuple[Any, ...]]:
        if isinstance(scope, WindowScope):
            upper = "<=" if scope.end_inclusive else "<"
            bounds = (timestamp_micros(scope.start), timestamp_micros(scope.end))
            return f"indexed_at_us >= ? AND indexed_at_us {upper} ?", bounds
        return "1 = 1", ()

    def _rows(
        self,
        columns: str,
        where: str,
        params: tuple[Any, ...],
        page_size: int,
        after: ScanPosition | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """`(indexed_at_us, *columns)` of the rows `where` selects, in scan order, paged."""
        size = clamp_page_size(page_size)
        keyset = None if after is None else (after.indexed_at_us, after.work_id)
        while True:
            condition = "" if keyset is None else " AND (indexed_at_us, id) > (?, ?)"
            with self._guarded("read from") as conn:
                rows = conn.execute(
                    f"SELECT indexed_at_us, {columns} FROM source_works "
                    f"WHERE {where}{condition} ORDER BY indexed_at_us, id LIMIT ?",
                    (*params, *(keyset or ()), size),
                ).fetchall()
            yield from rows
            if len(rows) < size:
                return
            keyset = (rows[-1][0], rows[-1][1])

    def _scan(
        self,
        where: str,
        params: tuple[Any, ...],
        page_size: int,
        after: ScanPosition | None = None,
    ) -> Iterator[StoredWork]:
        for indexed_at_us, work_id, content in self._rows(
            "id, CAST(document AS BLOB)", where, params, page_size, after
        ):
            yield StoredWork(work_id, content, ScanPosition(indexed_at_us, work_id))

    def read_window(
        self,
        window: WindowScope,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        after: ScanPosition | None = None,
    ) -> Iterator[StoredWork]:
        upper = "<=" if window.end_inclusive else "<"
        return self._scan(
            f"indexed_at_us >= ? AND indexed_at_us {upper} ?",
            (timestamp_micros(window.start), timestamp_micros(window.end)),
            page_size,
            after,
        )

    def read_all(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, after: ScanPosition | None = None
    ) -> Iterator[StoredWork]:
        return self._scan("1 = 1", (), page_size, after)

    def write_identified(self, works: Sequence[IdentifiedWork]) -> list[WriteFailure]:
        kept, failures = keep_highest_rank(works)
        rows = []
        for work in kept:
            try:
                text = encode_document(work.document)
            except (TypeError, ValueError, RecursionError) as error:
                failures.append(WriteFailure(work.source_id, f"not valid JSON: {error}"))
                continue
            rows.append((work.canonical_id, work.source_id, text, work.rank))
        with self._guarded("write to") as conn, conn:
            before = conn.total_changes
            conn.executemany(_UPSERT_IDENTIFIED, rows)
            if conn.total_changes - before < len(rows):
                # Some upserts were refused: a higher rank holds those documents. Read whose,
                # in the same transaction (the write lock is still ours).
                held = self._holders(conn, [row[0] for row in rows])
                # A refused row left another row in place: another work's, or this work's own
                # with a higher rank (the tie rule changed), which the pipeline reports apart.
                failures.extend(
                    WriteFailure(source_id, f"superseded by {holder.source_id}", holder.source_id)
                    for canonical_id, source_id, _, rank in rows
                    if (holder := held.get(canonical_id)) is not None
                    and (holder.source_id, holder.rank) != (source_id, rank)
                )
        return failures

    @staticmethod
    def _holders(conn: sqlite3.Connection, canonical_ids: Sequence[str]) -> dict[str, StoredHolder]:
        held: dict[str, StoredHolder] = {}
        for start in range(0, len(canonical_ids), _IDS_PER_QUERY):
            chunk = canonical_ids[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT canonical_id, source_id, succession_rank FROM identified_works "
                f"WHERE canonical_id IN ({marks})",
                chunk,
            ).fetchall()
            held.update((cid, StoredHolder(source_id, rank)) for cid, source_id, rank in rows)
        return held

    def identified_holders(self, canonical_ids: Sequence[str]) -> dict[str, StoredHolder]:
        with self._guarded("read from") as conn:
            return self._holders(conn, list(canonical_ids))

    def delete_identified(self, canonical_ids: Sequence[str]) -> None:
        wanted = list(canonical_ids)
        with self._guarded("write to") as conn, conn:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM identified_works WHERE canonical_id IN ({marks})", chunk)

    def _identified_rows(self, columns: str, canonical_ids: Sequence[str]) -> Iterator[Any]:
        """`columns` (a constant list) of the identified works under `canonical_ids`, read
        `_IDS_PER_QUERY` IDs at a time."""
        wanted = list(canonical_ids)
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = wanted[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            with self._guarded("read from") as conn:
                rows = conn.execute(
                    f"SELECT {columns} FROM identified_works WHERE canonical_id IN ({marks})",
                    chunk,
                ).fetchall()
            yield from rows

    def identified_stamps(self, canonical_ids: Sequence[str]) -> dict[str, IdentifiedStamp]:
        # Read by SQLite's JSON functions: no document is parsed in Python.
        return {
            cid: IdentifiedStamp(source_id, at if isinstance(at, str) else None)
            for cid, source_id, at in self._identified_rows(
                "canonical_id, source_id, json_extract(document, '$.indexed_at')", canonical_ids
            )
        }

    def scan_identified(
        self, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        size = clamp_page_size(page_size)
        after = ""
        while True:
            with self._guarded("read from") as conn:
                rows = conn.execute(
                    "SELECT canonical_id, document FROM identified_works "
                    "WHERE canonical_id > ? ORDER BY canonical_id LIMIT ?",
                    (after, size),
                ).fetchall()
            for canonical_id, document in rows:
                yield canonical_id, json.loads(document)
            if len(rows) < size:
                return
            after = rows[-1][0]

    def get_identified(self, canonical_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {
            cid: json.loads(document)
            for cid, document in self._identified_rows("canonical_id, document", canonical_ids)
        }

    def put_source(self, works: Iterable[SourceWork], *, batch_size: int = 1000) -> int:
        total = 0
        iterator = iter(works)
        while batch := list(islice(iterator, clamp_page_size(batch_size))):
            rows = []
            for work in batch:
                document = work.document
                if not isinstance(document, dict) or "indexed_at" not in document:
                    raise InvalidInputError(
                        f"source work {work.id!r} has no 'indexed_at' (the source index sets it "
                        "when a document is written)"
                    )
                indexed_at = parse_timestamp(document["indexed_at"], what=f"{work.id} indexed_at")
                try:
                    # The standard encoder: it refuses NaN and Infinity, which orjson would
                    # silently write as null.
                    text = json.dumps(document, ensure_ascii=False, allow_nan=False)
                except ValueError as error:
                    raise InvalidInputError(f"source work {work.id!r}: {error}") from error
                rows.append((work.id, timestamp_micros(indexed_at), text))
            with self._guarded("write to") as conn, conn:
                conn.executemany(
                    "INSERT INTO source_works (id, indexed_at_us, document) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET indexed_at_us = excluded.indexed_at_us, "
                    "document = excluded.document",
                    rows,
                )
            total += len(rows)
        return total

    def count_source(self) -> int:
        with self._guarded("read from") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM source_works").fetchone()[0])

    def count_identified(self) -> int:
        with self._guarded("read from") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM identified_works").fetchone()[0])


__all__ = ["SqliteWorksStore", "default_sqlite_path"]
