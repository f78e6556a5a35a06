"""The reconciliation's variant scan: source identifiers equal but for case or padding.

The legacy registry matched such identifiers as one; the RFC 083 registry keeps them apart, so
reconciliation reports each group of them (`case_or_padding_variants`) for a person to look at.
Variants sort far apart in the primary key and no index brings them together, so
`find_case_or_padding_variants` counts hashes of the folded keys batch by batch into session
temporary tables, which play the index's part, and reads the groups back in hash order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.reconciliation.keyset import (
    execute,
    keyset_ranges,
    range_condition,
    range_params,
)

logger = logging.getLogger(__name__)


# Session temporary tables of the variant scan.
VARIANT_COUNTS = "idminter_variant_counts"
VARIANT_SHARED = "idminter_variant_shared"
VARIANT_ROWS = "idminter_variant_rows"
VARIANT_TABLES = {
    VARIANT_COUNTS: "FoldHash BIGINT UNSIGNED NOT NULL, N INT UNSIGNED NOT NULL, "
    "PRIMARY KEY (FoldHash)",
    VARIANT_SHARED: "FoldHash BIGINT UNSIGNED NOT NULL, PRIMARY KEY (FoldHash)",
    VARIANT_ROWS: "Id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, FoldHash BIGINT UNSIGNED NOT NULL, "
    "OntologyType VARCHAR(255) NOT NULL, SourceSystem VARCHAR(255) NOT NULL, "
    "SourceId VARCHAR(255) NOT NULL, PRIMARY KEY (Id), INDEX idx_fold_hash (FoldHash)",
}


def _variant_groups(rows: Sequence[Sequence[object]]) -> list[str]:
    """Rows (hash, three folded parts, three parts), in hash order, as the groups of more than
    one row that share hash and folded parts: `Type[system/value] | Type[system/VALUE]`."""
    by_fold: dict[tuple[object, ...], list[str]] = {}
    for row in rows:
        ontology_type, source_system, source_id = row[4:7]
        by_fold.setdefault(tuple(row[:4]), []).append(
            f"{ontology_type}[{source_system}/{source_id}]"
        )
    return [" | ".join(members) for members in by_fold.values() if len(members) > 1]


@contextmanager
def _temporary_tables(conn: Connection, tables: dict[str, str]) -> Iterator[None]:
    """Session temporary tables (InnoDB, utf8mb4_bin), dropped afterwards.

    Created and dropped in autocommit mode: MySQL with GTIDs and statement-based binary logs
    refuses CREATE/DROP TEMPORARY TABLE inside a transaction.
    """

    def run_autocommitted(statements: list[str]) -> None:
        conn.commit()
        conn.autocommit(True)
        try:
            for statement in statements:
                execute(conn, statement)
        finally:
            conn.autocommit(False)

    drops = [f"DROP TEMPORARY TABLE IF EXISTS {name}" for name in tables]
    run_autocommitted(
        drops
        + [
            f"CREATE TEMPORARY TABLE {name} ({columns}) ENGINE=InnoDB "
            "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
            for name, columns in tables.items()
        ]
    )
    try:
        yield
    finally:
        conn.rollback()
        run_autocommitted(drops)


def find_case_or_padding_variants(
    conn: Connection, *, batch_size: int, found: Callable[[Sequence[str]], None]
) -> None:
    """Groups of mappings whose source identifiers are equal once each part is trimmed of
    spaces and lower-cased, each counted once, in keyset batches.

    Variants sort far apart in the primary key ('ABC' and 'abc' under utf8mb4_bin), so no
    batch of the table can see a group whole, and no index orders the table by the folded
    key (adding one would mean altering `identifiers`, a 50-million-row table the minter
    writes all day, for a routine check). Instead the folded key's 64-bit hash is counted
    batch by batch into a session temporary table keyed by that hash, which plays the
    index's part; groups are then read back batch by batch in hash order. Each statement
    touches one batch of rows; the server keeps the temporary tables on disk as needed, and
    they vanish with the session, also when a run is interrupted.

    1. counts: per batch of `identifiers` (keyset on idx_canonical), add each row's hash;
    2. hashes seen more than once, per batch of the counts table;
    3. only if there are any: per batch of `identifiers`, the rows with such a hash;
    4. per batch of those rows in hash order, the rows grouped by the folded parts themselves
       (so two keys that merely share a hash are never reported as variants).

    `found` is given each batch's groups, as `Type[system/value] | Type[system/VALUE]` strings.
    """
    groups_found = 0
    folded = [f"LOWER(TRIM(i.{part}))" for part in ("OntologyType", "SourceSystem", "SourceId")]
    # The first 64 bits of a SHA-256: SHA2() exists on MariaDB, MySQL 8.0 and 9.x (MD5() is an
    # optional component since MySQL 9.6).
    fold_hash = (
        "CAST(CONV(LEFT(SHA2(CONCAT_WS(CHAR(31 USING utf8mb4), "
        f"{', '.join(folded)}), 256), 16), 16, 10) AS UNSIGNED)"
    )
    with _temporary_tables(conn, VARIANT_TABLES):
        for lower, upper in keyset_ranges(conn, "identifiers", "CanonicalId", batch_size):
            execute(
                conn,
                f"INSERT INTO {VARIANT_COUNTS} (FoldHash, N) SELECT {fold_hash}, 1 "
                f"FROM identifiers i WHERE {range_condition('i.CanonicalId', lower)} "
                "ON DUPLICATE KEY UPDATE N = N + 1",
                range_params(lower, upper),
            )
            conn.commit()
        shared = 0
        for lower, upper in keyset_ranges(conn, VARIANT_COUNTS, "FoldHash", batch_size):
            with conn.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {VARIANT_SHARED} (FoldHash) SELECT FoldHash "
                    f"FROM {VARIANT_COUNTS} WHERE {range_condition('FoldHash', lower)} "
                    "AND N > 1",
                    range_params(lower, upper),
                )
                shared += cursor.rowcount
            conn.commit()
        if not shared:
            return
        for lower, upper in keyset_ranges(conn, "identifiers", "CanonicalId", batch_size):
            execute(
                conn,
                f"INSERT INTO {VARIANT_ROWS} (FoldHash, OntologyType, SourceSystem, SourceId) "
                f"SELECT s.FoldHash, i.OntologyType, i.SourceSystem, i.SourceId "
                f"FROM identifiers i JOIN {VARIANT_SHARED} s ON s.FoldHash = {fold_hash} "
                f"WHERE {range_condition('i.CanonicalId', lower)}",
                range_params(lower, upper),
            )
            conn.commit()
        # The batch bound is a hash, and a hash's rows fall in one batch: a group is seen
        # whole, exactly once. Its rows come back one by one and are joined here: a group of
        # long identifiers is longer than GROUP_CONCAT keeps (group_concat_max_len, 1 KB by
        # default, at most max_allowed_packet), which would cut it without an error.
        for lower, upper in keyset_ranges(conn, VARIANT_ROWS, "FoldHash", batch_size):
            rows = execute(
                conn,
                f"SELECT i.FoldHash, {', '.join(folded)}, i.OntologyType, i.SourceSystem, "
                f"i.SourceId FROM {VARIANT_ROWS} i "
                f"WHERE {range_condition('i.FoldHash', lower)} "
                "ORDER BY i.FoldHash, i.OntologyType, i.SourceSystem, i.SourceId",
                range_params(lower, upper),
            )
            conn.commit()
            groups = _variant_groups(rows)
            found(groups)
            groups_found += len(groups)
    logger.info("variant scan: %s hashes shared, %s groups", shared, groups_found)
