"""Works stores: where source works are read and identified works are written."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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


def works_store_from_env(environ: Mapping[str, str] | None = None) -> WorksStore:
    """Elasticsearch when `ELASTICSEARCH_URL` is set, else the embedded SQLite file
    (`WORKS_STORE_PATH`, by default `.local/works.sqlite3`)."""
    env = os.environ if environ is None else environ
    if env.get("ELASTICSEARCH_URL"):
        # Imported here so the embedded default never needs the Elasticsearch client loaded.
        from idminter_pipeline.works.stores.elasticsearch import (  # noqa: PLC0415
            ElasticsearchWorksStore,
        )

        return ElasticsearchWorksStore.from_env(env)
    path = env.get("WORKS_STORE_PATH")
    return SqliteWorksStore(Path(path) if path else default_sqlite_path())


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
