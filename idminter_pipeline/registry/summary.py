"""A short description of what a registry holds, for `idminter db status` and the local run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from idminter_pipeline.registry.connection import Connection


@dataclass(frozen=True)
class RegistrySummary:
    database: str
    server_version: str
    tables: list[str]
    free_ids: int
    assigned_ids: int
    mappings: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def registry_summary(conn: Connection) -> RegistrySummary:
    """Counts by full scans: meant for operators and local runs, not for sensors."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT DATABASE(), VERSION()")
        database, version = cursor.fetchone()
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "ORDER BY table_name"
        )
        tables = [name for (name,) in cursor.fetchall()]
        free = assigned = mappings = 0
        if "canonical_ids" in tables:
            cursor.execute("SELECT Status, COUNT(*) FROM canonical_ids GROUP BY Status")
            counts = dict(cursor.fetchall())
            free, assigned = counts.get("free", 0), counts.get("assigned", 0)
        if "identifiers" in tables:
            cursor.execute("SELECT COUNT(*) FROM identifiers")
            (mappings,) = cursor.fetchone()
    conn.rollback()
    return RegistrySummary(database, version, tables, free, assigned, mappings)
