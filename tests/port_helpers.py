"""A registry as the reference port creates and fills it, for the drift and adoption tests.

The tables come from the RFC's "Proposed schema" DDL text itself (tests/fixtures, verbatim:
latin1, so a case-insensitive, accent-insensitive, PAD SPACE collation), applied by yoyo from a
migration named as the port names its own, so the history is the port's too. Rows are written
as the port writes them: a canonical_ids row, then the mapping.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from legacy_helpers import random_id

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect

RFC_DDL = (Path(__file__).parent / "fixtures" / "rfc083_proposed_schema.sql").read_text()
PORT_MIGRATION = "0001_create_identifiers_schema"

# (OntologyType, SourceSystem, SourceId, CanonicalId)
Row = tuple[str, str, str, str]

# What a port registry really holds. Keys the collation merged: the port registered
# b1161044x, and a work arriving as B1161044X was given that row's ID. Non-ASCII latin1 text.
# IDs minted under older rules (upper case, a leading digit, short) that must not change.
SPECIAL_ROWS: list[Row] = [
    ("Work", "sierra-system-number", "b1161044x", "ab2c3d4e"),
    ("Work", "folio-instance", "in00001161044", "ab2c3d4e"),  # an alias: inherited
    ("Work", "label-derived", "Bücher Ærø ñ", "a2b3c4d5"),
    ("Concept", "label-derived", "Müller, Hans", "mu11erha"),
    ("Concept", "label-derived", "José Saramago", "j0sesara"),
    ("Work", "sierra-system-number", "b2000001", "ABCD2345"),
    ("Image", "miro-image-number", "V0012345", "1bcdefgh"),
    ("Work", "calm-record-id", "legacy-short", "xyz"),
]
FREE_IDS = ["fr2ee3id", "fr2ee4id", "fr2ee5id"]


def generated_rows(count: int, seed: int = 29) -> list[Row]:
    rng = random.Random(seed)
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(random_id(rng))
    return [
        ("Work", "sierra-system-number", f"b{index:08d}", canonical)
        for index, canonical in enumerate(sorted(ids))
    ]


def create_port_registry(
    settings: DatabaseSettings, rows: Sequence[Row] = (), free_ids: Sequence[str] = FREE_IDS
) -> None:
    """The port's migration applied by yoyo (as the port applies it), then `rows` written and
    `free_ids` pre-generated."""
    from yoyo import get_backend, read_migrations  # noqa: PLC0415

    directory = Path(settings_tmp_dir(settings))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{PORT_MIGRATION}.sql").write_text(RFC_DDL)
    dsn = (
        f"mysql://{quote(settings.username, safe='')}:{quote(settings.password, safe='')}"
        f"@{settings.host}:{settings.port}/{settings.database}"
    )
    backend = get_backend(dsn)
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(directory))))
    backend.connection.close()
    write_port_rows(settings, rows, free_ids)


def settings_tmp_dir(settings: DatabaseSettings) -> str:
    import tempfile  # noqa: PLC0415

    return str(Path(tempfile.gettempdir()) / f"idminter-port-{settings.database}")


def write_port_rows(
    settings: DatabaseSettings, rows: Sequence[Row], free_ids: Sequence[str] = ()
) -> None:
    """Rows as the port writes them; each ID's later rows (aliases) a second apart."""
    conn = connect(settings)
    created = datetime(2026, 1, 12, 9, 0, 0)
    seen: dict[str, int] = {}
    try:
        with conn.cursor() as cursor:
            ids = list(dict.fromkeys(canonical for *_, canonical in rows))
            for start in range(0, len(ids), 5000):
                cursor.executemany(
                    "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)",
                    [(canonical, "assigned") for canonical in ids[start : start + 5000]],
                )
            if free_ids:
                cursor.executemany(
                    "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)",
                    [(canonical, "free") for canonical in free_ids],
                )
            values = []
            for ontology, system, source, canonical in rows:
                seen[canonical] = seen.get(canonical, -1) + 1
                values.append(
                    (
                        ontology,
                        system,
                        source,
                        canonical,
                        created + timedelta(seconds=seen[canonical]),
                    )
                )
            for start in range(0, len(values), 5000):
                cursor.executemany(
                    "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId, "
                    "CreatedAt) VALUES (%s, %s, %s, %s, %s)",
                    values[start : start + 5000],
                )
        conn.commit()
        with conn.cursor() as cursor:
            cursor.execute("ANALYZE TABLE identifiers, canonical_ids")
            cursor.fetchall()
    finally:
        conn.close()


def port_registry_rows(count: int = 10_000) -> list[Row]:
    return SPECIAL_ROWS + generated_rows(count)
