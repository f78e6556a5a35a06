"""Shadow benchmark: `idminter shadow` against a `mint` re-run of the same works, through the CLI.

Workload: the works `idminter works generate --count 5000 --seed 83` makes (`--quick`: 1,000),
in the embedded SQLite store, minted once by `idminter mint --full` against a scratch registry.
A copy of that store is the reference (the legacy minter's output), with planted differences:
nested item IDs, a document field and root IDs changed on works without a predecessor
(unexpected), and root IDs changed on successors (expected: ours is the predecessor's ID).

Checked before anything is timed: the shadow run reports exactly the planted unexpected
differences (work and JSON path) and expected ones, and leaves every registry row (pool
included), the store's tables and the reference's bytes as they were.

Timed, alternating, each a whole process (start-up included): `idminter shadow --full
--reference REF` and `idminter mint --full` (a re-run: every identifier registered, the
production case). Figure: the shadow run's median as a ratio of the mint re-run's (target: at
most 1.5x).

Run alone: `python -m benchmarks.bench_shadow [--quick]` (on a scratch database it drops).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.minting_workload import fill_pool
from benchmarks.support import figure_row, standalone_main
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import SqliteWorksStore

BENCHMARK = "shadow"
SEED = 83
TARGET_RATIO = 1.5
PLANTED_PER_KIND = 5


def _row(figure: str, value: float, unit: str, detail: str) -> dict[str, Any]:
    return figure_row(BENCHMARK, figure, value, unit, detail, rounded=True)


def _env(settings: DatabaseSettings, store_path: Path, local: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"ELASTICSEARCH_URL", "RDS_SECRET_NAME"}
    }
    env.update(
        {
            **settings.as_environment(),
            "WORKS_STORE_PATH": str(store_path),
            "IDMINTER_LOCAL_DIR": str(local),
        }
    )
    return env


def _cli(args: list[str], env: dict[str, str], *, expect: int = 0) -> tuple[float, Any]:
    idminter = str(Path(sys.executable).parent / "idminter")
    started = time.perf_counter()
    done = subprocess.run([idminter, *args], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != expect:
        raise RuntimeError(
            f"idminter {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]!r}"
        )
    return elapsed, json.loads(done.stdout)


def _rows(path: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """source id -> (canonical id, document) of the reference's identified table."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT canonical_id, source_id, document FROM identified_works")
        found = {source: (cid, json.loads(text)) for cid, source, text in rows}
    db.close()
    return found


def _plant(reference: Path) -> tuple[set[tuple[str, str]], set[str]]:
    """Change the reference; the (work, path) pairs a shadow run must report as unexpected,
    and the successors whose root ID it must report as an expected difference."""
    rows = _rows(reference)
    unexpected: set[tuple[str, str]] = set()
    expected: set[str] = set()
    updates: list[tuple[str, str, str, str]] = []  # new canonical id, document, old id, source
    plain = sorted(
        source
        for source, (_, document) in rows.items()
        if "predecessorIdentifier" not in document["state"] and document["data"].get("items")
    )
    successors = sorted(
        source for source, (_, doc) in rows.items() if "predecessorIdentifier" in doc["state"]
    )
    for n, source in enumerate(plain[: PLANTED_PER_KIND * 3]):
        canonical_id, document = rows[source]
        kind = n % 3
        if kind == 0:
            document["data"]["items"][0]["id"]["canonicalId"] = f"zzitem{n:02d}"
            unexpected.add((source, "data.items[0].id.canonicalId"))
            updates.append((canonical_id, json.dumps(document), canonical_id, source))
        elif kind == 1:
            document["version"] = -1
            unexpected.add((source, "version"))
            updates.append((canonical_id, json.dumps(document), canonical_id, source))
        else:
            legacy_id = f"zzroot{n:02d}"
            document["state"]["canonicalId"] = legacy_id
            unexpected.add((source, "state.canonicalId"))
            updates.append((legacy_id, json.dumps(document), canonical_id, source))
    for n, source in enumerate(successors[:PLANTED_PER_KIND]):
        canonical_id, document = rows[source]
        legacy_id = f"zzsucc{n:02d}"
        document["state"]["canonicalId"] = legacy_id
        expected.add(source)
        updates.append((legacy_id, json.dumps(document), canonical_id, source))
    with sqlite3.connect(reference) as db:
        for new_id, text, old_id, source in updates:
            db.execute("DELETE FROM identified_works WHERE canonical_id = ?", (old_id,))
            db.execute(
                "INSERT INTO identified_works (canonical_id, source_id, document) VALUES (?, ?, ?)",
                (new_id, source, text),
            )
    db.close()
    return unexpected, expected


def _registry_digest(settings: DatabaseSettings) -> str:
    conn = connect(settings)
    digest = hashlib.sha256()
    try:
        with conn.cursor() as cursor:
            for table in ("canonical_ids", "identifiers", "identifier_provenance"):
                cursor.execute(f"SELECT * FROM {table}")
                for row in sorted(map(repr, cursor.fetchall())):
                    digest.update(row.encode())
        conn.rollback()
    finally:
        conn.close()
    return digest.hexdigest()


def _store_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with sqlite3.connect(path) as db:
        for table in ("source_works", "identified_works"):
            for row in db.execute(f"SELECT * FROM {table} ORDER BY 1"):
                digest.update(repr(row).encode())
    db.close()
    return digest.hexdigest()


def _check_report(
    report: dict[str, Any], unexpected: set[tuple[str, str]], expected: set[str]
) -> None:
    found = {(d["work"], d["path"]) for d in report["unexpected_differences"]}
    if found != unexpected or report["counts"]["differ_unexpected"] != len(unexpected):
        raise RuntimeError(
            f"shadow reported {sorted(found - unexpected)[:5]} unplanted and missed "
            f"{sorted(unexpected - found)[:5]}"
        )
    found_expected = {d["work"] for d in report["expected_differences"]}
    if found_expected != expected:
        raise RuntimeError(f"expected differences {sorted(found_expected ^ expected)[:5]}")
    if report["counts"]["would_mint"]:
        raise RuntimeError(f"{report['counts']['would_mint']} works would mint after a mint run")


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    count = 1_000 if quick else 5_000
    repeats = 3 if quick else 5
    fill_pool(settings, count * 6)
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "works.sqlite3"
        reference = Path(tmp) / "legacy-identified.sqlite3"
        env = _env(settings, store_path, Path(tmp) / "local")
        with SqliteWorksStore(store_path) as store:
            store.put_source(generate_works(count, seed=SEED))
        _cli(["mint", "--full"], env)
        shutil.copyfile(store_path, reference)
        unexpected, expected = _plant(reference)

        registry_before, store_before = _registry_digest(settings), _store_digest(store_path)
        reference_before = reference.read_bytes()
        shadow_args = ["shadow", "--full", "--reference", str(reference)]
        _, report = _cli(shadow_args, env, expect=1)
        _check_report(report, unexpected, expected)
        if (_registry_digest(settings), _store_digest(store_path)) != (
            registry_before,
            store_before,
        ) or reference.read_bytes() != reference_before:
            raise RuntimeError("the shadow run changed the registry, the store or the reference")

        samples: dict[str, list[float]] = {"shadow": [], "mint": []}
        for repeat in range(repeats):
            order = ("shadow", "mint") if repeat % 2 == 0 else ("mint", "shadow")
            for kind in order:
                if kind == "shadow":
                    elapsed, _ = _cli(shadow_args, env, expect=1)
                else:
                    elapsed, _ = _cli(["mint", "--full"], env)
                samples[kind].append(elapsed)

    shadow = statistics.median(samples["shadow"])
    mint = statistics.median(samples["mint"])
    detail = (
        f"{count} works (seed {SEED}), SQLite store, whole CLI processes; median of {repeats} "
        "alternating runs"
    )
    planted = f"{len(unexpected)} unexpected and {len(expected)} expected differences planted"
    return [
        _row("shadow run", shadow * 1000, "ms", f"idminter shadow --full; {planted}; {detail}"),
        _row("mint re-run", mint * 1000, "ms", f"idminter mint --full, IDs existing; {detail}"),
        _row(
            "shadow vs mint re-run",
            shadow / mint,
            "x",
            f"shadow {shadow * 1000:.0f} ms / mint {mint * 1000:.0f} ms; target at most "
            f"{TARGET_RATIO}x; reported exactly the planted differences, wrote nothing",
        ),
    ]


if __name__ == "__main__":
    standalone_main(run, BENCHMARK)
