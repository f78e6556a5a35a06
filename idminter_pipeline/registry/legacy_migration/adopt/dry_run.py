"""The adoption's dry run, and the case variants works really use: what adopting changes.

The port's collation (latin1_swedish_ci) matched keys loosely: a request differing only in
case, in trailing spaces or (for some letters) in accents found the stored row. After adoption
lookups are exact. The dry run counts, with examples, the rows whose matching changes and the
rows re-encoded from latin1; `find_variants` looks up the source identifiers the works stores
really use and names each that the port resolved to another key's row (a variant): if nobody
registers it, adopting would give that work a new canonical ID. Registering is the operator's
decision (`idminter db adopt --register-variants FILE` or `--no-variants`); the dry run exits
non-zero while variants are found and undecided. Reads only; writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.legacy_migration.adopt.copy import (
    IDS,
    KEPT_IDS,
    KEPT_MAPPINGS,
    MAPPINGS,
    as_utf8_bin,
    is_port_registry,
)
from idminter_pipeline.registry.legacy_migration.adopt.run import Variant
from idminter_pipeline.registry.legacy_migration.dry_run import CANONICAL_ID_PATTERN, Finding
from idminter_pipeline.registry.legacy_migration.state import (
    DEFAULT_BATCH_SIZE,
    EXAMPLES,
    SOURCE_PARTS,
    Phase,
    clamp_batch_size,
    column_collation,
    execute,
    read_state,
    state_available,
)
from idminter_pipeline.registry.legacy_migration.verify import as_legacy_key
from idminter_pipeline.registry.schema import table_exists

Key = tuple[str, str, str]
# Keys per variant look-up statement (a derived table joined to the port's primary key).
VARIANT_LOOKUP_CHUNK = 500


@dataclass
class AdoptionDryRun:
    port_tables: bool
    phase: str
    mappings: int
    canonical_ids: dict[str, int]
    batch_size: int
    batches: int
    collation_change: dict[str, str]
    findings: dict[str, Finding]
    keys_checked_in_stores: int | None
    variants_in_use: list[dict[str, str]] = field(default_factory=list)
    blocking: bool = False  # would stop the adoption
    needs_decision: bool = False  # variants in use: a person decides whether to register them

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "findings"},
            "findings": {name: f.as_dict() for name, f in self.findings.items()},
        }


def _any_part(condition: str) -> str:
    return " OR ".join(f"({condition.format(part=part)})" for part in SOURCE_PARTS)


def adoption_dry_run(
    connect: ConnectionFactory,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    store_keys: Iterable[Key] | None = None,
) -> AdoptionDryRun:
    """What adopting the port's tables would copy and change; `store_keys` (the source
    identifiers the works stores use) are looked up for variants. Reads only."""
    batch_size = clamp_batch_size(batch_size)
    conn = connect()
    try:
        execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        state = read_state(conn) if state_available(conn) else None
        phase = (state.phase if state else Phase.NONE).value
        if not is_port_registry(conn):
            conn.rollback()
            return AdoptionDryRun(False, phase, 0, {}, batch_size, 0, {}, {}, None)
        mappings = int(execute(conn, f"SELECT COUNT(*) FROM {MAPPINGS}")[0][0])
        ids = {
            str(s): int(n)
            for s, n in execute(conn, f"SELECT Status, COUNT(*) FROM {IDS} GROUP BY Status")
        }
        collation_change = {
            f"{table}.{column}": column_collation(conn, table, column).replace(" COLLATE ", "/")
            + f" -> {target}"
            for table, column, target in (
                (MAPPINGS, "SourceId", "utf8mb4/utf8mb4_bin"),
                (MAPPINGS, "CanonicalId", "ascii/ascii_bin"),
                (IDS, "CanonicalId", "ascii/ascii_bin"),
            )
        }
        findings = _findings(conn)
        variants: list[Variant] = []
        checked = None
        if store_keys is not None:
            checked, variants = find_variants(conn, store_keys)
        conn.rollback()
        blocking = findings["ids_not_fitting_varchar8_ascii"].count > 0
        return AdoptionDryRun(
            port_tables=True,
            phase=phase,
            mappings=mappings,
            canonical_ids=ids,
            batch_size=batch_size,
            # The canonical IDs' walk, then the mappings' own.
            batches=-(-sum(ids.values()) // batch_size) + -(-mappings // batch_size),
            collation_change=collation_change,
            findings=findings,
            keys_checked_in_stores=checked,
            variants_in_use=[variant.as_dict() for variant in variants],
            blocking=blocking,
            needs_decision=bool(variants),
        )
    finally:
        conn.close()


def _findings(conn: Connection) -> dict[str, Finding]:
    non_ascii = _any_part("LENGTH(CONVERT({part} USING utf8mb4)) <> CHAR_LENGTH({part})")
    cased = _any_part(
        "CAST(UPPER(CONVERT({part} USING utf8mb4)) AS BINARY) <> "
        "CAST(LOWER(CONVERT({part} USING utf8mb4)) AS BINARY)"
    )
    padded = _any_part("CAST({part} AS BINARY) LIKE '%% ' OR CAST({part} AS BINARY) LIKE ' %%'")
    id_utf8 = "CONVERT(CanonicalId USING utf8mb4) COLLATE utf8mb4_bin"
    old_rules = f"NOT ({id_utf8} REGEXP '{CANONICAL_ID_PATTERN}')"
    unfit = (
        "(CHAR_LENGTH(CanonicalId) > 8 OR CAST(CanonicalId AS BINARY) <> "
        "CAST(CONVERT(CanonicalId USING ascii) AS BINARY))"
    )
    counts = execute(
        conn,
        f"SELECT COALESCE(SUM({non_ascii}), 0), COALESCE(SUM({cased}), 0), "
        f"COALESCE(SUM({padded}), 0) FROM {MAPPINGS}",
    )[0]
    id_counts = execute(
        conn,
        f"SELECT COALESCE(SUM({old_rules}), 0), COALESCE(SUM({unfit}), 0) FROM {IDS}",
    )[0]
    n_non_ascii, n_cased, n_padded = (int(v) for v in counts)
    n_old, n_unfit = (int(v) for v in id_counts)

    def rows_where(condition: str, count: int) -> list[Any]:
        if not count:
            return []
        parts = ", ".join(as_utf8_bin(part) for part in SOURCE_PARTS)
        return [
            list(row)
            for row in execute(
                conn,
                f"SELECT CanonicalId, {parts} FROM {MAPPINGS} WHERE {condition} "
                f"ORDER BY CanonicalId LIMIT {EXAMPLES}",
            )
        ]

    def ids_where(condition: str, count: int) -> list[Any]:
        if not count:
            return []
        return [
            value
            for (value,) in execute(
                conn, f"SELECT CanonicalId FROM {IDS} WHERE {condition} LIMIT {EXAMPLES}"
            )
        ]

    return {
        "rows_reencoded_from_latin1": Finding(
            n_non_ascii,
            rows_where(non_ascii, n_non_ascii),
            "copied as the same characters in utf8mb4; the port's collation also matched "
            "them with other accents (e vs é), after adoption only the exact text does",
        ),
        "keys_matched_case_insensitively": Finding(
            n_cased,
            rows_where(cased, n_cased),
            "the port matched these with any case (B1161044X found b1161044x); after "
            "adoption only the exact case does: see variants_in_use for forms works use",
        ),
        "keys_with_leading_or_trailing_spaces": Finding(
            n_padded,
            rows_where(padded, n_padded),
            "copied unchanged; this project refuses input with such spaces, so only the "
            "exact stored value finds them",
        ),
        "ids_minted_under_older_rules": Finding(
            n_old,
            ids_where(old_rules, n_old),
            "copied unchanged: published IDs never change",
        ),
        "ids_not_fitting_varchar8_ascii": Finding(
            n_unfit,
            ids_where(unfit, n_unfit),
            "blocks the adoption: the new CanonicalId column is VARCHAR(8) ascii",
        ),
    }


def find_variants(
    conn: Connection, keys: Iterable[Key], *, table: str | None = None
) -> tuple[int, list[Variant]]:
    """The keys (as works use them) that the port's table holds only under another form its
    collation matched: (keys checked, variants). Reads the port's table (`identifiers`
    before the swap, `identifiers_port` after it, until finalize)."""
    if table is None:
        table = KEPT_MAPPINGS if table_exists(conn, KEPT_MAPPINGS) else MAPPINGS
    checked = 0
    variants: list[Variant] = []
    batch: list[Key] = []
    seen: set[Key] = set()
    for key in keys:
        if key in seen:
            continue
        seen.add(key)
        batch.append(key)
        if len(batch) == VARIANT_LOOKUP_CHUNK:
            variants += _variants_in(conn, table, batch)
            checked += len(batch)
            batch = []
    if batch:
        variants += _variants_in(conn, table, batch)
        checked += len(batch)
    conn.rollback()
    return checked, sorted(variants, key=lambda v: v.source)


def _variants_in(conn: Connection, table: str, keys: Sequence[Key]) -> list[Variant]:
    requested = " UNION ALL ".join(
        "SELECT %s AS o, %s AS s, %s AS v" if i == 0 else "SELECT %s, %s, %s"
        for i in range(len(keys))
    )
    # Compared in the port's own collation (the derived table's would be the connection's).
    collation = column_collation(conn, table, "SourceId")
    rows = execute(
        conn,
        f"SELECT r.o, r.s, r.v, {', '.join(as_utf8_bin(f'i.{part}') for part in SOURCE_PARTS)}, "
        f"i.CanonicalId FROM ({requested}) r JOIN {table} i "
        f"ON i.OntologyType = {as_legacy_key('r.o', collation)} "
        f"AND i.SourceSystem = {as_legacy_key('r.s', collation)} "
        f"AND i.SourceId = {as_legacy_key('r.v', collation)}",
        [value for requested_key in keys for value in requested_key],
    )
    variants = []
    for o, s, v, stored_o, stored_s, stored_v, canonical in rows:
        if (o, s, v) != (stored_o, stored_s, stored_v):
            variants.append(Variant((o, s, v), (stored_o, stored_s, stored_v), str(canonical)))
    return variants


def assigned_canonical_ids(
    connect: ConnectionFactory, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[str]:
    """Every assigned ID of the port's canonical_ids, in keyset batches (its collation's order),
    each batch a short read of its own."""
    conn = connect()
    try:
        table = KEPT_IDS if table_exists(conn, KEPT_IDS) else IDS
        after: str | None = None
        while True:
            rows = execute(
                conn,
                f"SELECT CanonicalId FROM {table} WHERE Status = 'assigned' "
                + ("AND CanonicalId > %s " if after is not None else "")
                + f"ORDER BY CanonicalId LIMIT {int(batch_size)}",
                (after,) if after is not None else None,
            )
            conn.rollback()
            if not rows:
                return
            yield from (str(value) for (value,) in rows)
            after = rows[-1][0]
    finally:
        conn.close()
