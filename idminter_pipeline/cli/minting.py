"""`idminter lookup | mint-ids | aliases`: the minting engine for scripts and operators."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING

import click

from idminter_pipeline.cli.output import echo_json
from idminter_pipeline.core import strict_json
from idminter_pipeline.core.errors import InvalidInputError, InvalidSourceIdentifierError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.source_identifiers import SourceIdentifier

if TYPE_CHECKING:
    from idminter_pipeline.registry.minting import MintRequest

# The registry modules (pymysql, with the cryptography and ssl modules it loads, and tenacity:
# about half of these commands' start-up) are imported by the commands that run, so `--help`
# does not pay for them.

_REQUEST_FIELDS = frozenset({"source", "predecessor"})
# Request lines per `mint-ids` call: one call is one transaction, and the minter's statement
# count stays constant up to 10,000 identifiers. Larger inputs are refused, not split, so a
# script never half-commits a file; callers split their input instead.
MAX_MINT_REQUESTS = 10_000


@click.command("lookup")
@click.argument("identifiers", nargs=-1, required=True)
def lookup(identifiers: tuple[str, ...]) -> None:
    """Print {"Work[system/value]": "canonicalid"} for each given identifier that is registered.

    Each IDENTIFIER is Type[system/value] (any ontology type) or, for a work, system/value, as
    `mint` accepts it.
    """
    sources = [_lookup_source(text) for text in identifiers]
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415

    with Minter(connection_factory()) as minter:
        found = minter.lookup_ids(sources)
    echo_json({str(source): found[source] for source in sources if source in found})


def _lookup_source(text: str) -> SourceIdentifier:
    if "[" in text:
        return SourceIdentifier.parse(text)
    from idminter_pipeline.works.documents import work_document_id  # noqa: PLC0415

    return SourceIdentifier.parse(work_document_id(text))


def decode_request_line(line_number: int, raw: bytes) -> str:
    """A line of input as text, or an error naming the line and the bytes that are not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = raw[error.start : error.end]
        raise InvalidInputError(
            f"line {line_number}: not UTF-8 ({bad!r} at byte {error.start}): {excerpt(raw)}"
        ) from None


def parse_request_line(line_number: int, line: str) -> MintRequest:
    """One JSON line `{"source": "...", "predecessor": "..." | null}`, or an error naming it.

    Parsed strictly: a duplicate key (`"predecessor"` twice) is refused, never resolved by
    keeping the last one, and so are huge integers and deep nesting.
    """
    record = strict_json.loads(line, what=f"line {line_number}")
    if not isinstance(record, dict):
        raise InvalidInputError(
            f'line {line_number}: expected a JSON object with "source", got {excerpt(record)}'
        )
    unknown = sorted(set(record) - _REQUEST_FIELDS)
    if unknown:
        raise InvalidInputError(
            f"line {line_number}: unknown field(s) {excerpt(unknown)} in {excerpt(line)}"
        )
    if "source" not in record:
        raise InvalidInputError(f'line {line_number}: missing "source" in {excerpt(line)}')
    try:
        source = SourceIdentifier.parse(record["source"])
        predecessor = record.get("predecessor")
        if predecessor is not None:
            predecessor = SourceIdentifier.parse(predecessor)
    except InvalidSourceIdentifierError as error:
        raise InvalidInputError(f"line {line_number}: {error}") from None
    from idminter_pipeline.registry.minting import MintRequest  # noqa: PLC0415

    return MintRequest(source, predecessor)


@click.command("mint-ids")
@click.option(
    "--file",
    "input_file",
    type=click.File("rb"),
    default="-",
    show_default="stdin",
    help='JSON lines: {"source": "Work[system/value]", "predecessor": ... or null}.',
)
@click.option("--job-id", default=None, help="Recorded with every inheritance and mismatch.")
def mint_ids(input_file: IO[bytes], job_id: str | None) -> None:
    """Look up or mint canonical IDs for JSON-lines requests, in one transaction.

    Prints one JSON line per distinct source: {"source", "canonical_id", "outcome"}. Every line
    is checked before anything is written; on any error nothing is written. At most
    10,000 request lines per call.
    """
    requests = []
    for number, raw in enumerate(input_file, start=1):
        line = decode_request_line(number, raw)
        if not line.strip():
            continue
        if len(requests) == MAX_MINT_REQUESTS:
            raise InvalidInputError(
                f"line {number}: more than {MAX_MINT_REQUESTS:,} requests in one call; "
                "split the input into several calls"
            )
        requests.append(parse_request_line(number, line.rstrip("\r\n")))
    if not requests:
        return
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415

    with Minter(connection_factory()) as minter:
        results = minter.mint_ids(requests, job_id=job_id)
    for result in results.values():
        click.echo(
            json.dumps(
                {
                    "source": str(result.source),
                    "canonical_id": result.canonical_id,
                    "outcome": str(result.outcome),
                },
                ensure_ascii=False,
            )
        )


@click.command("aliases")
@click.argument("canonical_id")
def aliases(canonical_id: str) -> None:
    """Every source identifier mapped to CANONICAL_ID: original first, then aliases in order."""
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415

    with Minter(connection_factory()) as minter:
        found = minter.aliases(canonical_id)
    echo_json({"canonical_id": canonical_id, "sources": [alias.as_dict() for alias in found]})
