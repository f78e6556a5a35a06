"""A legacy 1:1 registry (RFC 083, "Current schema") for the migration and reconciliation tests."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from db_helpers import create_database, drop_database, fetch_all

from idminter_pipeline.core.canonical_ids import FIRST_CHARACTERS, OTHER_CHARACTERS
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.invariants import GUARD_NAMES
from idminter_pipeline.registry.legacy_migration import Progress
from idminter_pipeline.registry.schema import apply_migrations

LEGACY_DDL = """CREATE TABLE `identifiers` (
  `CanonicalId` varchar(255) NOT NULL,
  `OntologyType` varchar(255) NOT NULL,
  `SourceId` varchar(255) NOT NULL,
  `SourceSystem` varchar(255) NOT NULL,
  PRIMARY KEY (`CanonicalId`),
  UNIQUE KEY `UniqueFromSource` (`OntologyType`,`SourceSystem`,`SourceId`)
) ENGINE=InnoDB DEFAULT CHARSET=latin1"""

INSERT_LEGACY = (
    "INSERT INTO {table} (CanonicalId, OntologyType, SourceId, SourceSystem) "
    "VALUES (%s, %s, %s, %s)"
)

# Rows the legacy registry really holds: non-ASCII latin1 text, and IDs minted under older rules
# (upper case, a leading digit, short, an excluded letter) that must migrate unchanged.
SPECIAL_ROWS = [
    ("a2b3c4d5", "Work", "Bücher Ærø ñ", "label-derived"),
    ("ABCD2345", "Work", "b1161044x", "sierra-system-number"),
    ("1bcdefgh", "Image", "V0012345", "miro-image-number"),
    ("xyz", "Work", "legacy-short", "calm-record-id"),
    ("olid1234", "Concept", "Müller, Hans", "label-derived"),
    ("q9w8e7r6", "Item", "i1234567 ", "sierra-system-number"),  # trailing space, legacy
]


def random_id(rng: random.Random) -> str:
    return rng.choice(FIRST_CHARACTERS) + "".join(rng.choice(OTHER_CHARACTERS) for _ in range(7))


def generated_rows(count: int, seed: int = 7) -> list[tuple[str, str, str, str]]:
    rng = random.Random(seed)
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(random_id(rng))
    return [
        (canonical, "Work", f"b{index:08d}", "sierra-system-number")
        for index, canonical in enumerate(sorted(ids, key=lambda _: rng.random()))
    ]


def create_legacy_table(
    settings: DatabaseSettings,
    rows: Sequence[tuple[str, str, str, str]],
    table: str = "identifiers",
) -> None:
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute(LEGACY_DDL.replace("`identifiers`", f"`{table}`"))
            for start in range(0, len(rows), 5000):
                cursor.executemany(INSERT_LEGACY.format(table=table), rows[start : start + 5000])
        conn.commit()
        # Statistics as a long-lived legacy table has them: filled in a moment, InnoDB's
        # background sampling may still count a handful of rows, and MySQL 9 then plans a look-up
        # of a few IDs as a scan of the table.
        with conn.cursor() as cursor:
            cursor.execute(f"ANALYZE TABLE `{table}`")
            cursor.fetchall()
    finally:
        conn.close()


def legacy_rows(settings: DatabaseSettings, table: str) -> set[tuple]:
    """Every row, as exact bytes (no collation can hide a difference)."""
    return set(
        fetch_all(
            settings,
            "SELECT CAST(CanonicalId AS BINARY), "
            "CAST(CONVERT(OntologyType USING utf8mb4) AS BINARY), "
            "CAST(CONVERT(SourceId USING utf8mb4) AS BINARY), "
            f"CAST(CONVERT(SourceSystem USING utf8mb4) AS BINARY) FROM {table}",
        )
    )


def copied_rows(settings: DatabaseSettings, table: str = "identifiers") -> set[tuple]:
    """Every row of the migrated copy, as exact bytes."""
    return set(
        fetch_all(
            settings,
            "SELECT CAST(CanonicalId AS BINARY), CAST(OntologyType AS BINARY), "
            f"CAST(SourceId AS BINARY), CAST(SourceSystem AS BINARY) FROM {table}",
        )
    )


def tables(settings: DatabaseSettings) -> set[str]:
    return {name for (name,) in fetch_all(settings, "SHOW TABLES")}


def triggers(settings: DatabaseSettings) -> set[str]:
    return {
        name
        for (name,) in fetch_all(
            settings,
            "SELECT trigger_name FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE()",
        )
    }


def migration_triggers(settings: DatabaseSettings) -> set[str]:
    """The legacy migration's own triggers left behind (the registry's invariant guards, which
    stay for good, are not among them)."""
    return triggers(settings) - set(GUARD_NAMES)


def scratch_database(server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A fresh database of its own (for a fixture: `yield from scratch_database(...)`)."""
    settings = create_database(server_settings, "legacy_")
    yield settings
    drop_database(settings)


def make_legacy_registry(
    settings: DatabaseSettings, rows: Sequence[tuple[str, str, str, str]]
) -> DatabaseSettings:
    create_legacy_table(settings, rows)
    apply_migrations(lambda: connect(settings))
    return settings


class LegacyWriter(threading.Thread):
    """A legacy minter writing to `identifiers` on its own autocommit connection while a migration
    runs: `write(cursor, n)` makes the n-th write (n from 1) and says whether to go on. It writes
    until `stop` is set (and at least `at_least` times) or `write` says it is done; `errors`
    holds what it raised, for the test to assert on."""

    def __init__(
        self,
        settings: DatabaseSettings,
        write: Callable[[Any, int], bool],
        *,
        at_least: int = 0,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.write = write
        self.at_least = at_least
        self.stop = threading.Event()
        self.writing = threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        conn = connect(self.settings)
        conn.autocommit(True)
        try:
            with conn.cursor() as cursor:
                n = 0
                while not self.stop.is_set() or n < self.at_least:
                    n += 1
                    if not self.write(cursor, n):
                        return
                    self.writing.set()
        except BaseException as error:  # surfaced by the test's assertion on `errors`
            self.errors.append(error)
        finally:
            conn.close()

    def start_with_the_copy(self, progress: Progress) -> None:
        """A migration progress callback: start writing once the first batch is copied."""
        if progress.phase == "copying" and progress.batches == 1:
            self.start()
            self.writing.wait(10)
