"""The works store interface: read source works in one of three scopes, write identified works.

Implementations: `ElasticsearchWorksStore` (production) and `SqliteWorksStore` (the embedded
default, needing no server). Both pass the same contract tests (`tests/test_works_stores.py`).

Reads return `StoredWork`s: a document as the store holds it, not yet decoded. Decoding belongs
to the pipeline (`documents.decode_document`), so that one unreadable document fails alone
instead of stopping the scan it came in.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from idminter_pipeline.core.errors import InvalidInputError, MalformedWorkError
from idminter_pipeline.works.documents import (
    IdentifiedWork,
    SourceWork,
    decode_document,
    parse_bare_identifier,
    work_document_id,
)

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 10_000


def clamp_page_size(page_size: int) -> int:
    if page_size < 1:
        raise InvalidInputError(f"page_size must be at least 1, got {page_size}")
    return min(page_size, MAX_PAGE_SIZE)


def parse_timestamp(value: object, *, what: str = "timestamp") -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; naive input is taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as error:
            raise InvalidInputError(
                f"{what} {value!r} is not an ISO 8601 timestamp (e.g. 2026-07-30T16:33:00Z)"
            ) from error
    else:
        raise InvalidInputError(f"{what} {value!r} is not an ISO 8601 timestamp string")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class IdsScope:
    """Explicit works, by their source index `_id` (`Work[system/value]` or `system/value`)."""

    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.ids:
            raise InvalidInputError("an ids scope needs at least one work identifier")
        # Normalized and deduplicated, so a work listed twice is processed once.
        object.__setattr__(self, "ids", tuple(dict.fromkeys(map(work_document_id, self.ids))))

    def describe(self) -> str:
        return f"{len(self.ids)} work id(s)"


@dataclass(frozen=True)
class WindowScope:
    """Works whose `indexed_at` is in [start, end] (or [start, end) with `end_inclusive=False`)."""

    start: datetime
    end: datetime
    end_inclusive: bool = True

    def __post_init__(self) -> None:
        start = parse_timestamp(self.start, what="window start")
        end = parse_timestamp(self.end, what="window end")
        if end < start:
            raise InvalidInputError(
                f"window end {format_timestamp(end)} is before its start {format_timestamp(start)}"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def describe(self) -> str:
        closing = "]" if self.end_inclusive else ")"
        return (
            f"indexed_at in [{format_timestamp(self.start)}, {format_timestamp(self.end)}{closing}"
        )


@dataclass(frozen=True)
class FullScope:
    """Every work in the source index: only ever built when a caller asks for it explicitly."""

    def describe(self) -> str:
        return "the full source index"


WorkScope = IdsScope | WindowScope | FullScope


@dataclass(frozen=True, slots=True, order=True)
class ScanPosition:
    """Where a scan in (`indexed_at`, id) order stands: after the work `work_id`, indexed at
    `indexed_at_us` (microseconds since the epoch). Full and window runs checkpoint it to
    resume."""

    indexed_at_us: int
    work_id: str

    def describe(self) -> str:
        moment = _EPOCH + timedelta(microseconds=self.indexed_at_us)
        return f"{self.work_id} (indexed_at {format_timestamp(moment)})"


@dataclass(frozen=True, slots=True)
class StoredWork:
    """A source document as the store returned it: `content` is its stored text (`str` or
    UTF-8 `bytes`), or the value a client already decoded, or None when the store holds no
    document with that id. Scans also give the work's `position`."""

    id: str
    content: str | bytes | dict[str, Any] | None
    position: ScanPosition | None = None

    def decoded(self) -> SourceWork:
        """The document, decoded (raises `MalformedWorkError`, stage `read`, if it cannot be)."""
        return SourceWork(self.id, decode_document(self.content, work_id=self.id))


@dataclass(frozen=True)
class WriteFailure:
    """A work the store did not write: refused (`detail` says why), or superseded, when the
    document under its canonical ID belongs to a higher-ranked work (`superseded_by` names it:
    `works.succession`), which is not a failure."""

    source_id: str
    detail: str
    superseded_by: str | None = None


@dataclass(frozen=True, slots=True)
class StoredHolder:
    """Whose document the identified index holds under a canonical ID, and its rank (the
    Elasticsearch version; below `succession.RANKED` for a document written before ranks)."""

    source_id: str
    rank: int


def document_holder(document: Any) -> str:
    """The work an identified document belongs to (its `state.sourceIdentifier`), or '' when it
    names none readably."""
    state = document.get("state") if isinstance(document, dict) else None
    identifier = state.get("sourceIdentifier") if isinstance(state, dict) else None
    try:
        return str(parse_bare_identifier(identifier, "state.sourceIdentifier", "held document"))
    except MalformedWorkError:
        return ""


def keep_highest_rank(
    works: Sequence[IdentifiedWork],
) -> tuple[list[IdentifiedWork], list[WriteFailure]]:
    """One write per canonical ID: the highest-ranked work (the last of equals) is kept, the
    others are superseded by it. So no request holds two writes under one `_id`, and a refused
    write is always one work's."""
    kept: dict[str, IdentifiedWork] = {}
    losers: list[IdentifiedWork] = []
    for work in works:
        held = kept.get(work.canonical_id)
        if held is None:
            kept[work.canonical_id] = work
        elif work.rank >= held.rank:
            kept[work.canonical_id] = work
            losers.append(held)
        else:
            losers.append(work)
    if not losers:
        return list(works), []
    return list(kept.values()), [
        WriteFailure(
            loser.source_id,
            f"superseded by {kept[loser.canonical_id].source_id}",
            kept[loser.canonical_id].source_id,
        )
        for loser in losers
    ]


@dataclass(frozen=True, slots=True)
class IdentifiedStamp:
    """Whose identified document a canonical ID holds (its `state.sourceIdentifier` as the
    store recorded it) and the document's `indexed_at`, as stored (None when absent)."""

    source_id: str
    indexed_at: str | None


class WorksStore(abc.ABC):
    """Source works in, identified works out."""

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def read_ids(self, ids: Sequence[str]) -> Iterator[StoredWork]:
        """One `StoredWork` per id, in order; its `content` is None where the index lacks it."""

    @abc.abstractmethod
    def read_window(
        self,
        window: WindowScope,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        after: ScanPosition | None = None,
    ) -> Iterator[StoredWork]:
        """Works with `indexed_at` in the window, ordered by `indexed_at` then id, streamed; with
        `after`, only those after that position (a resumed window run), as `read_all`."""

    @abc.abstractmethod
    def read_all(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, after: ScanPosition | None = None
    ) -> Iterator[StoredWork]:
        """Every source work, ordered by `indexed_at` then id, streamed; with `after`, only the
        works after that position (a resumed full run). A store that cannot order works of one
        `indexed_at` by id starts at that instant instead: a few works again, none skipped."""

    def scan_ids(self, scope: WorkScope, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[str]:
        """The ids of a scope's works, streamed in `read_scope`'s order (an ids scope's as
        given, present or not). A store that can list ids without their documents overrides it."""
        for stored in read_scope(self, scope, page_size=page_size):
            yield stored.id

    @abc.abstractmethod
    def write_identified(self, works: Sequence[IdentifiedWork]) -> list[WriteFailure]:
        """Upsert identified works by canonical ID, refusing a lower `rank` over a higher one;
        returns the works not written: refused, or superseded (`WriteFailure.superseded_by`)."""

    @abc.abstractmethod
    def get_identified(self, canonical_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Identified documents by canonical ID (absent ones are left out)."""

    @abc.abstractmethod
    def scan_identified(
        self, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every identified document with its canonical ID, streamed in pages (the recovery
        after a registry restore reads what was published)."""

    @abc.abstractmethod
    def identified_holders(self, canonical_ids: Sequence[str]) -> dict[str, StoredHolder]:
        """Whose document is held under each canonical ID, and with which rank (absent ones
        are left out)."""

    def identified_stamps(self, canonical_ids: Sequence[str]) -> dict[str, IdentifiedStamp]:
        """Whose document each canonical ID holds and its `indexed_at` (absent ones left out):
        what an audit compares with the source, without fetching whole documents where the
        store can avoid it."""
        stamps: dict[str, IdentifiedStamp] = {}
        for canonical_id, document in self.get_identified(canonical_ids).items():
            indexed_at = document.get("indexed_at")
            stamps[canonical_id] = IdentifiedStamp(
                document_holder(document), indexed_at if isinstance(indexed_at, str) else None
            )
        return stamps

    @abc.abstractmethod
    def delete_identified(self, canonical_ids: Sequence[str]) -> None:
        """Remove identified documents (the succession repair, before it re-hands a document
        to a work of lower rank: a conflict resolved, or the tie rule changed)."""

    @abc.abstractmethod
    def put_source(self, works: Iterable[SourceWork], *, batch_size: int = 1000) -> int:
        """Load source documents (sample data, `works load`, tests); returns how many."""

    @abc.abstractmethod
    def count_source(self) -> int: ...

    @abc.abstractmethod
    def count_identified(self) -> int: ...

    def refresh(self) -> None:  # noqa: B027 (optional hook)
        """Make everything written so far visible to reads (a no-op where it already is)."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ReadThroughStore(WorksStore):
    """Reads its source works from another store, `source`; what becomes of the identified works
    (counted, compared, never written) is the subclass's to say. It writes no source work and
    deletes no identified document: asked to, it refuses with `refusal`."""

    refusal = "a read-through store writes nothing"

    def __init__(self, source: WorksStore) -> None:
        self.source = source

    def put_source(self, works: Iterable[SourceWork], *, batch_size: int = 1000) -> int:
        raise InvalidInputError(self.refusal)

    def delete_identified(self, canonical_ids: Sequence[str]) -> None:
        raise InvalidInputError(self.refusal)

    def describe(self) -> str:
        return self.source.describe()

    def read_ids(self, ids: Sequence[str]) -> Iterator[StoredWork]:
        return self.source.read_ids(ids)

    def read_window(
        self,
        window: WindowScope,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        after: ScanPosition | None = None,
    ) -> Iterator[StoredWork]:
        return self.source.read_window(window, page_size=page_size, after=after)

    def read_all(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, after: ScanPosition | None = None
    ) -> Iterator[StoredWork]:
        return self.source.read_all(page_size=page_size, after=after)

    def count_source(self) -> int:
        return self.source.count_source()


def read_scope(
    store: WorksStore,
    scope: WorkScope,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    after: ScanPosition | None = None,
) -> Iterator[StoredWork]:
    """The stored works of a scope, streamed; `after` resumes a full or window scope."""
    if isinstance(scope, IdsScope):
        yield from store.read_ids(scope.ids)
    elif isinstance(scope, WindowScope):
        yield from store.read_window(scope, page_size=page_size, after=after)
    elif isinstance(scope, FullScope):
        yield from store.read_all(page_size=page_size, after=after)
    else:
        raise InvalidInputError(f"unknown scope {scope!r}")
