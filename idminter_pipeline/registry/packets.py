"""Statements sized to the server: no statement the minter sends exceeds `max_allowed_packet`.

A server refuses a statement larger than its `max_allowed_packet` (16 MB by default on MariaDB,
64 MB on MySQL 8): MariaDB answers error 1153, MySQL may simply drop the connection ("server has
gone away", 2006/2013), which looks like an outage and would be retried, identically, until the
outage bound ran out. So the limit is read once per connection (`max_allowed_packet`, cached on
the connection object: the session value is fixed when the session starts) and every large
statement is built as several that each fit (`pack`). A normal batch is far below the limit and
stays one statement; the check costs one comparison of the statement's length.

A statement that cannot be split further and still does not fit is never sent: it raises
`StatementTooLargeError`, which is not an outage (`registry.outage.is_outage`), so nothing
retries it. The minter's rows are bounded (three parts of at most 255 characters, 1,020 bytes
each), so this can only happen on a server configured below `MIN_MAX_ALLOWED_PACKET`, which is
refused when the limit is read. The connection itself refuses any statement larger than its
session's limit before sending it (`registry.connection.RegistryConnection`), whoever built it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from idminter_pipeline.core.errors import RegistryUnavailableError, StatementTooLargeError
from idminter_pipeline.registry.connection import Connection, session_max_allowed_packet

T = TypeVar("T")

# The least max_allowed_packet the minter works with: one row of the largest source identifier
# (3 x 1,020 bytes, escaped: twice that) with its statement around it fits many times over.
# MySQL and MariaDB allow 1 KB; no real server runs that low.
MIN_MAX_ALLOWED_PACKET = 64 * 1024
# Room left in a packet for the command byte and what an estimate may miss.
PACKET_MARGIN_BYTES = 1024
# The text of a statement around its bound values (`packet_runs`): every such statement of the
# registry's is well below this.
STATEMENT_TEXT_BYTES = 2048


def max_allowed_packet(conn: Connection) -> int:
    """The server's `max_allowed_packet` for this session, read once and cached on `conn`;
    refused, naming it, below what the minter needs."""
    limit = session_max_allowed_packet(conn)
    if limit < MIN_MAX_ALLOWED_PACKET:
        raise RegistryUnavailableError(
            f"the registry server's max_allowed_packet is {limit:,} bytes; the minter needs at "
            f"least {MIN_MAX_ALLOWED_PACKET:,}: raise it in the server's configuration"
        )
    return limit


def statement_budget(conn: Connection) -> int:
    """The largest statement, in bytes, this connection may send."""
    return max_allowed_packet(conn) - PACKET_MARGIN_BYTES


def text_bytes(text: str) -> int:
    """`text`'s length in UTF-8 bytes (its length in characters when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def fits(statement: str, budget: int) -> bool:
    """Whether `statement` fits in `budget` bytes; only a large statement is measured."""
    return len(statement) * 4 <= budget or text_bytes(statement) <= budget


def pack(
    rows: Sequence[str], *, head: str, tail: str = "", separator: str = ",", budget: int
) -> list[str]:
    """`head + separator.join(rows) + tail`, as one statement if it fits in `budget` bytes, else
    as several, each with rows in the given order and as many as fit.

    Raises `StatementTooLargeError` if a single row does not fit with `head` and `tail`.
    """
    if not rows:
        return []
    whole = head + separator.join(rows) + tail
    if fits(whole, budget):
        return [whole]
    fixed = text_bytes(head) + text_bytes(tail)
    step = text_bytes(separator)
    statements: list[str] = []
    start, size = 0, fixed
    for index, row in enumerate(rows):
        row_size = text_bytes(row)
        if fixed + row_size > budget:
            raise StatementTooLargeError(fixed + row_size, budget + PACKET_MARGIN_BYTES)
        added = row_size + (step if index > start else 0)
        if index > start and size + added > budget:
            statements.append(head + separator.join(rows[start:index]) + tail)
            start, size, added = index, fixed, row_size
        size += added
    statements.append(head + separator.join(rows[start:]) + tail)
    return statements


def split_to_fit(
    items: Sequence[T], size: Callable[[T], int], *, fixed: int, budget: int
) -> list[Sequence[T]]:
    """`items` in order, cut into runs whose estimated bytes (`fixed` plus each item's `size`)
    fit in `budget`: one run when everything fits. For statements whose values are bound."""
    runs: list[Sequence[T]] = []
    start, total = 0, fixed
    for index, item in enumerate(items):
        item_size = size(item)
        if fixed + item_size > budget:
            raise StatementTooLargeError(fixed + item_size, budget + PACKET_MARGIN_BYTES)
        if index > start and total + item_size > budget:
            runs.append(items[start:index])
            start, total = index, fixed
        total += item_size
    if start < len(items):
        runs.append(items[start:])
    return runs


# What a bound string value adds to a statement at most: each byte escaped (doubled), its two
# quotes and the ", " that separates it from the next.
def bound_value_bytes(value: str) -> int:
    return 2 * text_bytes(value) + 4


def packet_runs(
    conn: Connection, values: Sequence[str], *, uses: int = 1, per_row: int = 0
) -> list[Sequence[str]]:
    """`values` in order, cut into runs that each fit one statement on `conn`: a statement that
    binds each value `uses` times (an IN list, or a VALUES row with `per_row` more bytes of
    other values). One run when all fit; none when there are no values."""
    if not values:
        return []
    return split_to_fit(
        values,
        lambda value: uses * bound_value_bytes(value) + per_row,
        fixed=STATEMENT_TEXT_BYTES,
        budget=statement_budget(conn),
    )


def rows_per_statement(conn: Connection, *, row_bytes: int, fixed: int) -> int:
    """How many rows of `row_bytes` each fit in one statement of `fixed` bytes more on `conn`."""
    return max(1, (statement_budget(conn) - fixed) // row_bytes)
