"""The legacy migration's dry run: what a migration would copy, and which legacy rows look wrong.

It reads the legacy table with a handful of set-based statements and writes nothing. Each
`Finding` counts the rows with one kind of problem, shows a few of them and says what the
migration will do about them; two kinds (IDs the new ASCII column cannot hold, source keys that
would collide under utf8mb4_bin) would stop it, so the report says it is `blocking`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from idminter_pipeline.core.source_identifiers import REGISTERED_ONTOLOGY_TYPES
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.legacy_migration.state import (
    DEFAULT_BATCH_SIZE,
    EXAMPLES,
    LIVE_TABLE,
    Phase,
    RegistryShape,
    clamp_batch_size,
    execute,
    read_state,
    registry_shape,
    scalar,
)

# Today's public format (core.canonical_ids), as a regular expression both servers run.
CANONICAL_ID_PATTERN = "^[a-hjkmnp-z][a-hjkmnp-z2-9]{7}$"
BAD_SOURCE_PART_PATTERN = "^[[:space:]]|[[:space:]]$|[[:cntrl:]]"


@dataclass
class Finding:
    """One kind of problem a dry run looks for: how many rows have it, and a few of them."""

    count: int
    examples: list[Any]
    consequence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DryRunReport:
    shape: str
    phase: str
    legacy_rows: int
    already_copied: int
    would_copy: int
    batch_size: int
    batches: int
    ontology_types: dict[str, int]
    findings: dict[str, Finding]
    blocking: bool  # a finding that would stop the migration

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "findings"},
            "findings": {name: f.as_dict() for name, f in self.findings.items()},
        }


def _examples(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
    return [row[0] if len(row) == 1 else list(row) for row in execute(conn, sql, params)]


def dry_run(connect: ConnectionFactory, *, batch_size: int = DEFAULT_BATCH_SIZE) -> DryRunReport:
    """What a migration would copy and which legacy rows look wrong. Reads only; writes nothing."""
    batch_size = clamp_batch_size(batch_size)
    conn = connect()
    try:
        execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        shape = registry_shape(conn)
        state = read_state(conn)
        phase = state.phase if state else Phase.NONE
        source = LIVE_TABLE if shape is RegistryShape.LEGACY else None
        if source is None:
            conn.rollback()
            return DryRunReport(
                shape.value, phase.value, 0, 0, 0, batch_size, 0, {}, {}, blocking=False
            )
        legacy_rows = int(scalar(conn, f"SELECT COUNT(*) FROM {source}"))
        already = state.rows_copied if state and state.phase is Phase.COPYING else 0
        would_copy = max(legacy_rows - already, 0)
        ontology_types = {
            str(name): int(n)
            for name, n in execute(
                conn, f"SELECT OntologyType, COUNT(*) FROM {source} GROUP BY OntologyType"
            )
        }
        id_utf8 = "CONVERT(CanonicalId USING utf8mb4) COLLATE utf8mb4_bin"
        unfit = (
            "(CHAR_LENGTH(CanonicalId) > 8 OR CAST(CanonicalId AS BINARY) <> "
            "CAST(CONVERT(CanonicalId USING ascii) AS BINARY))"
        )
        nonconforming = f"NOT ({id_utf8} REGEXP '{CANONICAL_ID_PATTERN}')"
        bad_parts = " OR ".join(
            f"{part} = '' OR {part} REGEXP '{BAD_SOURCE_PART_PATTERN}'"
            for part in ("OntologyType", "SourceSystem", "SourceId")
        )
        counts = execute(
            conn,
            f"SELECT COALESCE(SUM({unfit}), 0), COALESCE(SUM({nonconforming}), 0), "
            f"COALESCE(SUM({bad_parts}), 0) FROM {source}",
        )[0]
        n_unfit, n_nonconforming, n_bad_parts = (int(v) for v in counts)
        utf8_key = ", ".join(
            f"CONVERT({part} USING utf8mb4) COLLATE utf8mb4_bin"
            for part in ("OntologyType", "SourceSystem", "SourceId")
        )
        collisions_sql = (
            f"SELECT {utf8_key}, COUNT(*) FROM {source} GROUP BY {utf8_key} HAVING COUNT(*) > 1"
        )
        n_collisions = int(scalar(conn, f"SELECT COUNT(*) FROM ({collisions_sql}) c") or 0)
        unknown_types = sorted(set(ontology_types) - set(REGISTERED_ONTOLOGY_TYPES))
        n_unknown = sum(ontology_types[t] for t in unknown_types)

        def rows_where(condition: str) -> list[Any]:
            return _examples(
                conn,
                f"SELECT CanonicalId, OntologyType, SourceSystem, SourceId FROM {source} "
                f"WHERE {condition} ORDER BY CanonicalId LIMIT {EXAMPLES}",
            )

        findings = {
            "ids_not_fitting_varchar8_ascii": Finding(
                n_unfit,
                rows_where(unfit) if n_unfit else [],
                "blocks the migration: the new CanonicalId column is VARCHAR(8) ascii",
            ),
            "ids_breaking_current_format": Finding(
                n_nonconforming,
                rows_where(nonconforming) if n_nonconforming else [],
                "migrates unchanged: published IDs never change",
            ),
            "source_parts_padded_empty_or_control": Finding(
                n_bad_parts,
                rows_where(bad_parts) if n_bad_parts else [],
                "migrates unchanged; new input with such values is refused, so these rows can "
                "only be matched by exactly the stored value (reconcile lists padding variants)",
            ),
            "sources_colliding_under_utf8mb4_bin": Finding(
                n_collisions,
                _examples(conn, f"{collisions_sql} LIMIT {EXAMPLES}") if n_collisions else [],
                "blocks the migration: two legacy rows would become one key",
            ),
            "unregistered_ontology_types": Finding(
                n_unknown,
                unknown_types[:EXAMPLES],
                "migrates unchanged; the minter refuses new requests with these types",
            ),
        }
        conn.rollback()
        return DryRunReport(
            shape=shape.value,
            phase=phase.value,
            legacy_rows=legacy_rows,
            already_copied=already,
            would_copy=would_copy,
            batch_size=batch_size,
            batches=-(-would_copy // batch_size),
            ontology_types=ontology_types,
            findings=findings,
            blocking=n_unfit > 0 or n_collisions > 0,
        )
    finally:
        conn.close()
