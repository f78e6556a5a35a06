"""Works pipeline throughput on sample works: extract + mint + annotate + write.

Figures:
- documents: extraction + annotation alone (pure Python, no I/O), works per second;
- first run: every identifier new (claims from the pool, inheritances), works and identifiers
  per second, against the embedded SQLite store and the given registry;
- re-run: the same works again (the production case: almost every identifier exists).

Run alone: `python -m benchmarks.bench_works [--quick]` (uses a scratch database it drops).
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.registry.schema import apply_migrations
from idminter_pipeline.settings import DatabaseSettings
from idminter_pipeline.works.documents import annotate_work, extract_work
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE, WorksPipeline
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import FullScope, SqliteWorksStore

BENCHMARK = "works"


def _row(figure: str, value: float, unit: str, detail: str) -> dict[str, Any]:
    return {
        "benchmark": BENCHMARK,
        "figure": figure,
        "value": round(value, 1),
        "unit": unit,
        "detail": detail,
    }


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    count = 2_000 if quick else 20_000
    seed = uuid.uuid4().int % 10**6  # fresh identifiers even on a registry used before
    rows: list[dict[str, Any]] = []

    works = list(generate_works(count, seed=seed))
    started = time.perf_counter()
    for work in works:
        extracted = extract_work(work.document, document_id=work.id)
        annotate_work(work.document, extracted, dict.fromkeys(extracted.identifiers, "abcd2345"))
    elapsed = time.perf_counter() - started
    rows.append(_row("extract+annotate", count / elapsed, "works/s", f"{count} works, no I/O"))

    factory = lambda: connect(settings)  # noqa: E731
    apply_migrations(factory)
    top_up(factory, count * 8)
    with tempfile.TemporaryDirectory() as tmp, SqliteWorksStore(Path(tmp) / "w.sqlite3") as store:
        store.put_source(works)
        for label in ("first run (new IDs)", "re-run (existing IDs)"):
            with Minter(factory) as minter:
                summary = WorksPipeline(store, minter).run(FullScope())
            assert summary.failed == 0, summary.as_dict()["failures"][:3]
            seconds = summary.duration_seconds
            detail = (
                f"{summary.works_read} works, {summary.identifiers_found} identifiers "
                f"({summary.minted} minted, {summary.inherited} inherited, "
                f"{summary.existing} existing), {summary.mint_calls} transactions of "
                f"{DEFAULT_BATCH_SIZE} works, SQLite store"
            )
            rows.append(_row(f"{label}: works", summary.works_read / seconds, "works/s", detail))
            rows.append(
                _row(
                    f"{label}: identifiers",
                    summary.identifiers_found / seconds,
                    "identifiers/s",
                    detail,
                )
            )
    return rows


if __name__ == "__main__":
    base = DatabaseSettings.from_env()
    name = f"idminter_bench_works_{uuid.uuid4().hex[:8]}"
    admin = connect(base.with_database(""))
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        for result in run(base.with_database(name), quick="--quick" in sys.argv):
            print(
                f"{result['figure']:<36} {result['value']:>12,.1f} {result['unit']:<14} "
                f"{result['detail']}"
            )
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
