"""Works stores: where source works are read and identified works are written."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.settings import env_text, environment
from idminter_pipeline.works.stores.base import (
    FullScope,
    IdsScope,
    ScanPosition,
    StoredWork,
    WindowScope,
    WorkScope,
    WorksStore,
    WriteFailure,
    read_scope,
)
from idminter_pipeline.works.stores.sqlite import SqliteWorksStore, default_sqlite_path


def works_store_from_env(
    environ: Mapping[str, str] | None = None, *, existing: bool = False
) -> WorksStore:
    """Elasticsearch when `ELASTICSEARCH_URL` is set, else the embedded SQLite file
    (`WORKS_STORE_PATH`, by default `.local/works.sqlite3`).

    Opening a SQLite store creates a missing file (the embedded default starts empty). A command
    that only reads or repairs passes `existing=True`: a mistyped path is then refused, naming
    it, instead of being created and read as zero works."""
    env = environment(environ)
    if env.get("ELASTICSEARCH_URL"):
        # Imported here so the embedded default never needs the Elasticsearch client loaded.
        from idminter_pipeline.works.stores.elasticsearch import (  # noqa: PLC0415
            ElasticsearchWorksStore,
        )

        return ElasticsearchWorksStore.from_env(env)
    named = env_text("WORKS_STORE_PATH", environ=env)
    path = Path(named) if named else default_sqlite_path()
    if existing and not path.is_file():
        raise InvalidInputError(f"works store {path}: no such file (WORKS_STORE_PATH)")
    return SqliteWorksStore(path)


__all__ = [
    "FullScope",
    "IdsScope",
    "ScanPosition",
    "SqliteWorksStore",
    "StoredWork",
    "WindowScope",
    "WorkScope",
    "WorksStore",
    "WriteFailure",
    "read_scope",
    "works_store_from_env",
]
