"""Batch sizes given by callers: one rule for every batched operation.

A batch size below 1 is a mistake, never a request for a default: it is refused, naming the
value. A size above what an operation can take in one statement or transaction is lowered to its
maximum, and one below its useful minimum is raised to it (both documented with each command),
because those still mean "batches of about this size".
"""

from __future__ import annotations

from idminter_pipeline.errors import InvalidInputError
from idminter_pipeline.excerpts import excerpt


def bounded_batch_size(
    batch_size: object, *, minimum: int = 1, maximum: int, what: str = "batch size"
) -> int:
    """`batch_size` within [minimum, maximum]; `InvalidInputError` unless it is an integer >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise InvalidInputError(f"{what} must be an integer, got {excerpt(batch_size)}")
    if batch_size < 1:
        raise InvalidInputError(
            f"{what} {batch_size} is not allowed: give at least 1 (sizes above {maximum:,} are "
            f"lowered to {maximum:,})"
        )
    return max(minimum, min(batch_size, maximum))
