"""Source works from an NDJSON file, as `idminter works load` reads them: each line checked
before the store holds it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from idminter_pipeline.core.errors import InvalidInputError, MalformedWorkError
from idminter_pipeline.core.strict_json import loads as strict_loads
from idminter_pipeline.works.documents import SourceWork, json_type, parse_bare_identifier
from idminter_pipeline.works.stores.base import parse_timestamp


def read_source_works(path: Path) -> Iterator[SourceWork]:
    """Source works of an NDJSON file: each line a document, or a hit `{"_id", "_source"}`.

    Lines are parsed by `strict_json`: duplicate keys, NaN and Infinity, huge integers, nesting
    deeper than a work document may have and bytes that are not UTF-8 are refused, naming the
    line, so the store only ever holds text the pipeline reads back unchanged.
    """
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield _source_work(line, f"{path} line {number}")


def _source_work(line: bytes, where: str) -> SourceWork:
    value = strict_loads(line, what=where)
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where}: expected a JSON object, got {json_type(value)}")
    document = value.get("_source", value) if "_source" in value else value
    document_id = value.get("_id") if "_source" in value else None
    if "_source" in value and document_id is not None and not isinstance(document_id, str):
        raise InvalidInputError(f"{where}: _id must be a string, got {json_type(document_id)}")
    if not isinstance(document, dict):
        raise InvalidInputError(f"{where}: _source must be an object")
    if document_id is None:
        document_id = _identifier_of(document, where)
    if "indexed_at" not in document:
        raise InvalidInputError(f"{where}: {document_id} has no indexed_at")
    try:
        parse_timestamp(document["indexed_at"], what="indexed_at")
    except InvalidInputError as error:
        raise InvalidInputError(f"{where}: {error}") from error
    return SourceWork(str(document_id), document)


def _identifier_of(document: dict, where: str) -> str:
    state = document.get("state")
    if not isinstance(state, dict) or "sourceIdentifier" not in state:
        raise InvalidInputError(
            f"{where}: no state.sourceIdentifier (and no _id) to key the work by"
        )
    try:
        return str(
            parse_bare_identifier(state["sourceIdentifier"], "state.sourceIdentifier", where)
        )
    except MalformedWorkError as error:
        raise InvalidInputError(f"{where}: {error.detail}") from error
