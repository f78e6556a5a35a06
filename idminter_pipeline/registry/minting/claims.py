"""The minter's claim of free IDs: from a random point of the registry's partition of the ID
space, wrapping around, never an ID a mapping already uses (docs/design/minting.md).

Claimed in index order from a random start to the partition's end, then, only if that was short,
from its beginning up to the start: IDs minted together or one call after another do not sort
together, and within one claim rows are locked in that one deterministic order (`SKIP LOCKED`:
no claim waits for another's rows). Each row comes with a probe for a mapping that already uses
it (a corrupted pool): such an ID is handed to `in_use` (which marks it assigned and reports it),
and the claim takes the shortfall after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from idminter_pipeline.core.canonical_ids import IdPartition, generate_canonical_id
from idminter_pipeline.core.errors import PoolExhaustedError
from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.minting.statements import (
    CLAIM_FREE_IDS_AFTER_SQL,
    CLAIM_FREE_IDS_SQL,
)

logger = logging.getLogger(__name__)


def claim_free_ids(
    conn: Connection,
    needed: int,
    partition: IdPartition,
    in_use: Callable[[list[str]], None],
) -> list[str]:
    """`needed` free IDs, locked by this transaction; `PoolExhaustedError` if there are fewer.
    One statement unless the range after the start runs short or holds IDs in use."""
    start = generate_canonical_id(partition)
    claimed: list[str] = []
    with conn.cursor() as cursor:
        for lower, upper in ((start, partition.upper), (partition.lower, start)):
            sql, after = CLAIM_FREE_IDS_SQL, lower
            while len(claimed) < needed:
                cursor.execute(sql, (after, upper, needed - len(claimed)))
                rows = cursor.fetchall()
                claimed += [canonical_id for canonical_id, used in rows if not used]
                used_ids = [canonical_id for canonical_id, used in rows if used]
                if not used_ids:
                    break
                # Some were in use: say so, and take the shortfall from after the last one seen.
                logger.warning(
                    "the pool offered %d canonical ID(s) that mappings already use; not handed "
                    "out, marked assigned (run `idminter reconcile`): %s",
                    len(used_ids),
                    ", ".join(sorted(used_ids)[:10]),
                )
                in_use(used_ids)
                sql, after = CLAIM_FREE_IDS_AFTER_SQL, rows[-1][0]
            if len(claimed) >= needed:
                break
    if len(claimed) < needed:
        raise PoolExhaustedError(needed, len(claimed))
    return claimed
