"""What the minter would assign, read from the registry without writing to it (shadow mode).

`ReadOnlyMinter` answers `mint_ids` the way `Minter` does: the same request folding, cycle and
missing-predecessor refusals, and the same plan (`plan.BatchPlan`) for existing, inherited and
new sources. It only ever runs one plain `SELECT` per batch, a consistent non-locking read, so it
takes no row lock a minter could wait on. It claims no free ID: a source that would be minted
gets a placeholder (the caller's `placeholder(n)` for the n-th), and sources that would inherit
from it carry the same placeholder.

While a legacy migration holds at its synced phase (`idminter db migrate-legacy --hold-synced`)
the registry's `identifiers` is still the legacy table and the many-to-one copy is
`identifiers_new`: lookups read the copy, the registry this minter will use after the swap.
So do they while an adoption of the reference port's tables holds at its synced phase
(`idminter db adopt --hold-synced`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pymysql

from idminter_pipeline.core.errors import LegacyMigrationError
from idminter_pipeline.core.predecessor_cycles import reject_cycles
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.legacy_migration import (
    LIVE_TABLE,
    NEW_TABLE,
    Phase,
    RegistryShape,
    migration_phase,
    pending_changes,
    registry_shape,
)
from idminter_pipeline.registry.minting.chains import Inheritance
from idminter_pipeline.registry.minting.minter import fetch_mappings
from idminter_pipeline.registry.minting.plan import (
    BatchPlan,
    Key,
    MintRequest,
    MintResult,
    fold_requests,
    source_key,
)
from idminter_pipeline.registry.outage import ride_out
from idminter_pipeline.registry.schema import DriftKind, schema_drift, table_exists

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LookupTarget:
    """Which table a read-only minter reads, and how far the synced copy lags the legacy table."""

    table: str
    registry_shape: str
    migration_phase: str
    pending_legacy_changes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lookup_target(conn: Connection) -> LookupTarget:
    """The table holding the many-to-one registry: `identifiers` once migrated, or the synced
    copy while a legacy migration holds before its swap. Refuses a legacy registry with no
    verified copy, naming the command that makes one."""
    try:
        shape = registry_shape(conn)
        phase = migration_phase(conn)
        if shape is RegistryShape.MIGRATED and schema_drift(conn).kind is DriftKind.PORT:
            # The port's tables: shadow runs read the adoption's verified copy, held synced.
            if phase is Phase.COPIED and table_exists(conn, NEW_TABLE):
                return LookupTarget(NEW_TABLE, "port", phase.value, pending_changes(conn))
            raise LegacyMigrationError(
                "the registry's tables are the reference port's: run `idminter db adopt "
                "--hold-synced` first, so that shadow runs read a verified copy in this "
                "project's schema"
            )
        if shape is RegistryShape.MIGRATED:
            return LookupTarget(LIVE_TABLE, shape.value, phase.value)
        if (
            shape is RegistryShape.LEGACY
            and phase is Phase.COPIED
            and table_exists(conn, NEW_TABLE)
        ):
            return LookupTarget(NEW_TABLE, shape.value, phase.value, pending_changes(conn))
    finally:
        conn.rollback()
    if shape is RegistryShape.MISSING:
        raise LegacyMigrationError("the registry has no identifiers table: apply the schema first")
    raise LegacyMigrationError(
        f"the registry still holds the legacy identifiers table (migration phase {phase.value}): "
        "run `idminter db migrate-legacy --hold-synced` first, so that shadow runs read a "
        "verified copy in the new shape"
    )


class ReadOnlyMinter:
    """A stand-in for `Minter` that writes nothing (see the module's docstring)."""

    def __init__(
        self,
        connect: ConnectionFactory,
        *,
        placeholder: Callable[[int], str],
        outage_seconds: float | None = None,
    ) -> None:
        self._connect = connect
        self._conn: Connection | None = None
        self._placeholder = placeholder
        self.outage_seconds = outage_seconds
        self.target = self._with_connection(lookup_target, "reading the registry's shape")
        self.would_mint = 0
        # How many IDs the latest `mint_ids` call (the current batch) would mint.
        self.batch_would_mint = 0
        # The canonical ID each declaring source's predecessor has (or would have), by the
        # source's text form (works, items, images alike): what tells an expected ID difference
        # from another.
        self.predecessor_ids: dict[str, str] = {}

    # -- connection -------------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._connect()
            with conn.cursor() as cursor:
                # Plain consistent reads, each statement seeing the latest committed rows.
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            conn.commit()
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _with_connection(self, read: Any, what: str) -> Any:
        def attempt() -> Any:
            conn = self._connection()
            try:
                return read(conn)
            finally:
                with contextlib.suppress(pymysql.err.Error):
                    conn.rollback()

        return ride_out(
            attempt,
            what=what,
            bound_seconds=self.outage_seconds,
            before_retry=self._drop_connection,
        )

    def close(self) -> None:
        self._drop_connection()

    def __enter__(self) -> ReadOnlyMinter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reads ------------------------------------------------------------------------------

    def _fetch(self, keys: list[SourceIdentifier]) -> dict[Key, str]:
        if not keys:
            return {}
        # Cut to the server's packet like the minter's lookup: a batch with one huge work is
        # read in several statements instead of failing.
        return self._with_connection(
            lambda conn: fetch_mappings(conn, keys, table=self.target.table),
            f"looking up {len(keys):,} identifier(s)",
        )

    def inheritances(self, canonical_ids: Iterable[str]) -> list[Inheritance]:
        """No chains: succession only decides which work's document the store keeps under a
        shared ID (`works.succession`), and a read-only run writes nothing; it compares every
        work's IDs with the legacy output, a predecessor's as much as its successor's."""
        del canonical_ids
        return []

    def lookup_ids(self, sources: Iterable[SourceIdentifier]) -> dict[SourceIdentifier, str]:
        wanted = list(dict.fromkeys(sources))
        found = self._fetch(wanted)
        return {s: found[source_key(s)] for s in wanted if source_key(s) in found}

    def mint_ids(
        self, requests: Iterable[MintRequest], *, job_id: str | None = None
    ) -> dict[SourceIdentifier, MintResult]:
        """What `Minter.mint_ids` would answer, planned from one read; nothing is written."""
        del job_id  # nothing is recorded
        # Only the current batch's: the pipeline compares each batch right after planning it.
        self.predecessor_ids = {}
        self.batch_would_mint = 0
        predecessors = fold_requests(requests)
        if not predecessors:
            return {}
        reject_cycles(predecessors)
        batch = BatchPlan(predecessors)
        declared = [p for p in batch.declared if p is not None]
        batch.found = self._fetch(list(dict.fromkeys([*batch.sources, *declared])))
        batch.resolve_existing()
        batch.check_predecessors_exist()
        roots = batch.new_roots()
        placeholders = [self._placeholder(self.would_mint + n) for n in range(1, len(roots) + 1)]
        self.would_mint += len(roots)
        self.batch_would_mint = len(roots)
        batch.plan(roots, placeholders)
        results = batch.results()
        by_key = {source_key(source): result.canonical_id for source, result in results.items()}
        for source, predecessor in predecessors.items():
            if predecessor is not None:
                key = source_key(predecessor)
                predecessor_id = by_key.get(key) or batch.found.get(key)
                if predecessor_id is not None:
                    self.predecessor_ids[str(source)] = predecessor_id
        return results
