"""Works pipeline benchmark: the per-document path against its floor, and the reference port.

Workload: the works `idminter works generate --count 5000 --seed 83` makes (`--quick`: 1,000),
in the embedded SQLite store, minted in transactions of 500 works against a scratch registry.

Figures, each a median over runs that alternate (the machine is shared and noisy: read the
ratios, not single timings):

- first run / re-run: `WorksPipeline.run(FullScope())` as `idminter mint --full` runs it (with the
  collector settings of the CLI's entry point, `batch_run_collector`), on an emptied registry
  (every identifier new) and again (every identifier registered, the production case);
- floor: the same documents through a script that does only what no works run can avoid, with
  the garbage collector off: read each batch from the store, parse every document (orjson),
  find every `sourceIdentifier` node without validating anything, look them all up with one
  bare grouped SELECT per batch, set `canonicalId`, serialize every document again and write it.
  On a first run it also claims free IDs, inserts the mappings and marks the IDs assigned (bare
  statements, no inheritance or race handling). The pipeline's figure is reported as a ratio of
  this floor (target: at most 1.5x, every validation kept);
- documents: extraction and annotation alone (no I/O) of the same documents, decoded per batch
  outside the clock, next to the public reference port's (`catalogue_graph/src/id_minter`,
  `extract_source_identifiers` + `embed_canonical_ids`) when `IDMINTER_REFERENCE_CHECKOUT` names
  a checkout of wellcomecollection/catalogue-pipeline (target: at most half its time). Without
  it that comparison is skipped, and the output says so.

- CLI start-up: `idminter --help` and every command's `--help` (target: under 200 ms),
  `idminter mint-ids` on empty input, and `idminter mint` on an empty window (its fixed cost;
  target: under 150 ms beyond the interpreter), whole processes next to a bare interpreter.

Documents are streamed into the store and decoded a batch at a time: nothing keeps every parsed
work alive while the clock runs (that slowed what it measured).

Run alone: `python -m benchmarks.bench_works [--quick]` (on a scratch database it drops).
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from pymysql.converters import escape_string

from benchmarks.minting_workload import reset_run
from benchmarks.support import figure_row, standalone_main
from idminter_pipeline.cli import COMMAND_NAMES
from idminter_pipeline.core.gc_settings import batch_run_collector
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import CONCEPT_SUBTYPES
from idminter_pipeline.registry.connection import Connection, connect
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.documents import (
    IdentifierCache,
    annotate_work,
    extract_work,
)
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE, WorksPipeline
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import FullScope, SqliteWorksStore

BENCHMARK = "works"
SEED = 83
REFERENCE_ENV = "IDMINTER_REFERENCE_CHECKOUT"
TARGET_FLOOR_RATIO = 1.5
TARGET_REFERENCE_SHARE = 0.5
_BARE_KEYS = frozenset({"sourceIdentifier", "otherIdentifiers", "predecessorIdentifier"})
_SCAN = (
    "SELECT indexed_at_us, id, CAST(document AS BLOB) FROM source_works "
    "WHERE (indexed_at_us, id) > (?, ?) ORDER BY indexed_at_us, id LIMIT ?"
)


def _row(figure: str, value: float, unit: str, detail: str) -> dict[str, Any]:
    return figure_row(BENCHMARK, figure, value, unit, detail, rounded=True)


# -- the floor -----------------------------------------------------------------------------------


def _stored_batches(store_path: Path, batch_size: int) -> Iterator[list[tuple[str, bytes]]]:
    """(id, stored text) of every source work in scan order, a batch at a time."""
    db = sqlite3.connect(store_path)
    try:
        after: tuple[int, str] = (-1, "")
        while rows := db.execute(_SCAN, (*after, batch_size)).fetchall():
            yield [(work_id, content) for _, work_id, content in rows]
            after = (rows[-1][0], rows[-1][1])
    finally:
        db.close()


def _nodes(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    stack: list[Any] = [document]
    while stack:
        value = stack.pop()
        if type(value) is dict:
            if "sourceIdentifier" in value:
                found.append(value)
            stack.extend(
                child
                for key, child in value.items()
                if type(child) in (dict, list) and key not in _BARE_KEYS
            )
        else:
            stack.extend(child for child in value if type(child) in (dict, list))
    return found


def _key(node: dict[str, Any]) -> tuple[str, str, str]:
    si = node["sourceIdentifier"]
    ontology = si["ontologyType"]
    return (
        "Concept" if ontology in CONCEPT_SUBTYPES else ontology,
        si["identifierType"]["id"],
        si["value"],
    )


def _bare_lookup(cursor: Any, keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for ontology, system, value in keys:
        groups[(ontology, system)].append(value)
    branches = []
    for number, ((ontology, system), values) in enumerate(groups.items()):
        listed = "','".join([escape_string(v) for v in values])
        branches.append(
            f"(SELECT {number}, SourceId, CanonicalId FROM identifiers WHERE OntologyType = "
            f"'{escape_string(ontology)}' AND SourceSystem = '{escape_string(system)}' "
            f"AND SourceId IN ('{listed}'))"
        )
    names = list(groups)
    cursor.execute(" UNION ALL ".join(branches))
    return {(*names[g], value): cid for g, value, cid in cursor.fetchall()}


def _bare_claim(cursor: Any, new: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    cursor.execute(
        "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' "
        "ORDER BY Status, CanonicalId LIMIT %s FOR UPDATE SKIP LOCKED",
        (len(new),),
    )
    claimed = [row[0] for row in cursor.fetchall()]
    new.sort()
    rows = ",".join(
        f"('{escape_string(o)}','{escape_string(s)}','{escape_string(v)}','{cid}')"
        for (o, s, v), cid in zip(new, claimed, strict=True)
    )
    cursor.execute(
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
        f"VALUES {rows} ON DUPLICATE KEY UPDATE CanonicalId = CanonicalId"
    )
    listed = "','".join(sorted(claimed))
    cursor.execute(
        f"UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId IN ('{listed}')"
    )
    return dict(zip(new, claimed, strict=True))


def floor_run(store_path: Path, conn: Connection, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """The floor of one works run; returns how many works it wrote."""
    was_enabled = gc.isenabled()
    gc.disable()
    out = sqlite3.connect(store_path)
    written = 0
    try:
        for batch in _stored_batches(store_path, batch_size):
            documents = [(work_id, orjson.loads(content)) for work_id, content in batch]
            found = [(work_id, doc, _nodes(doc)) for work_id, doc in documents]
            keys = {_key(node) for _, _, nodes in found for node in nodes}
            with conn.cursor() as cursor:
                ids = _bare_lookup(cursor, keys)
                if len(ids) < len(keys):
                    ids.update(_bare_claim(cursor, [k for k in keys if k not in ids]))
            conn.commit()
            rows = []
            for work_id, doc, nodes in found:
                for node in nodes:
                    node["canonicalId"] = ids[_key(node)]
                text = orjson.dumps(doc).decode()
                rows.append((doc["state"]["canonicalId"], work_id, text))
            with out:
                out.executemany(
                    "INSERT INTO identified_works (canonical_id, source_id, document) "
                    "VALUES (?, ?, ?) ON CONFLICT (canonical_id) DO UPDATE SET "
                    "source_id = excluded.source_id, document = excluded.document",
                    rows,
                )
            written += len(rows)
    finally:
        out.close()
        if was_enabled:
            gc.enable()
    return written


# -- extraction and annotation, ours and the reference port's -----------------------------------


def _reference_embedder() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    checkout = os.environ.get(REFERENCE_ENV)
    if not checkout:
        return None
    source = Path(checkout) / "catalogue_graph" / "src"
    if not (source / "id_minter" / "embedder.py").is_file():
        raise SystemExit(
            f"{REFERENCE_ENV}={checkout} is not a catalogue-pipeline checkout "
            "(no catalogue_graph/src/id_minter/embedder.py)"
        )
    sys.path.insert(0, str(source))
    from id_minter.embedder import (  # noqa: PLC0415  (someone else's code, only when asked)
        embed_canonical_ids,
        extract_source_identifiers,
    )

    return extract_source_identifiers, embed_canonical_ids


def _extract_and_annotate(batch: list[tuple[str, dict[str, Any]]]) -> None:
    """Ours, as the pipeline does it: every check, a cache per batch, canonical IDs keyed by the
    identifiers extraction made, annotation in place."""
    cache: IdentifierCache = {}
    extracted = [extract_work(doc, document_id=work_id, cache=cache) for work_id, doc in batch]
    ids = dict.fromkeys(cache.values(), "abcd2345")  # what minting would answer
    for work in extracted:
        annotate_work(work, ids)


def _reference_extract_and_embed(
    documents: list[dict[str, Any]],
    embedder: tuple[Callable[..., Any], Callable[..., Any]],
    id_map: dict[Any, str],
) -> int:
    """The reference's, as its transformer does it; returns how many works it refused (it
    raises on a `null` `predecessorIdentifier`, and its transformer reports and skips the work)."""
    extract, embed = embedder
    refused = 0
    for doc in documents:
        try:
            extract(doc)
        except Exception:  # its transformer's own handling: report and skip the work
            refused += 1
            continue
        embed(doc, id_map)
    return refused


def _compare_documents(
    store_path: Path, embedder: tuple[Callable[..., Any], Callable[..., Any]] | None
) -> tuple[dict[str, float], int]:
    """One pass over every batch: wall and CPU seconds of ours and of the reference, which take
    turns going first batch by batch, each on a copy decoded just before its clock starts (so
    both find their documents equally fresh in the CPU's caches; decoding is not timed). CPU time
    is reported too: other processes on a shared machine move it less."""
    totals: dict[str, float] = defaultdict(float)
    refused = 0
    for number, batch in enumerate(_stored_batches(store_path, DEFAULT_BATCH_SIZE)):
        sides = ["ours", "reference"] if embedder is not None else ["ours"]
        if number % 2:
            sides.reverse()
        for side in sides:
            if side == "ours":
                ours = [(work_id, orjson.loads(content)) for work_id, content in batch]
                wall, cpu = time.perf_counter(), time.process_time()
                _extract_and_annotate(ours)
            else:
                assert embedder is not None
                theirs = [orjson.loads(content) for _, content in batch]
                id_map: dict[Any, str] = {}
                for doc in theirs:
                    with contextlib.suppress(TypeError):
                        id_map.update((request[0], "abcd2345") for request in embedder[0](doc))
                theirs = [orjson.loads(content) for _, content in batch]
                wall, cpu = time.perf_counter(), time.process_time()
                refused += _reference_extract_and_embed(theirs, embedder, id_map)
            totals[f"{side} wall"] += time.perf_counter() - wall
            totals[f"{side} cpu"] += time.process_time() - cpu
    return totals, refused


def _documents_rows(store_path: Path, count: int, repeats: int) -> list[dict[str, Any]]:
    embedder = _reference_embedder()
    samples: dict[str, list[float]] = defaultdict(list)
    refused = 0
    with batch_run_collector():  # the same collector settings for both
        for _ in range(repeats):
            totals, refused = _compare_documents(store_path, embedder)
            for name, seconds in totals.items():
                samples[name].append(seconds)
    median_ms = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    ours_ms = median_ms["ours wall"]
    rows = [
        _row(
            "extract+annotate",
            count / (ours_ms / 1000),
            "works/s",
            f"{count} works, no I/O, median of {repeats}: {ours_ms:.0f} ms "
            f"({median_ms['ours cpu']:.0f} ms CPU)",
        )
    ]
    if embedder is None:
        note = (
            f"reference port comparison skipped: set {REFERENCE_ENV} to a catalogue-pipeline "
            "checkout"
        )
        print(f"   {note}", flush=True)
        rows[0]["detail"] += f"; {note}"
        return rows
    reference_ms = median_ms["reference wall"]
    cpu_ratio = median_ms["ours cpu"] / median_ms["reference cpu"]
    rows.append(
        _row(
            "reference extract+annotate",
            reference_ms,
            "ms",
            f"{count} works, catalogue-pipeline id_minter.embedder (extract_source_identifiers + "
            f"embed_canonical_ids), median of {repeats}, taking turns with ours batch by batch "
            f"({median_ms['reference cpu']:.0f} ms CPU); it refuses {refused} works (null "
            "predecessorIdentifier) and skips them",
        )
    )
    rows.append(
        _row(
            "extract+annotate vs reference",
            ours_ms / reference_ms,
            "x",
            f"ours {ours_ms:.0f} ms / reference {reference_ms:.0f} ms (CPU time: "
            f"{cpu_ratio:.3f}x); target at most {TARGET_REFERENCE_SHARE}x, every check kept",
        )
    )
    return rows


# -- CLI start-up --------------------------------------------------------------------------------


# The CLI as its entry point runs it, but imported from the working directory's checkout (the
# venv's `idminter` script imports whichever checkout the venv was installed from).
_CLI = "from idminter_pipeline.cli import main; main()"


def _startup_rows(
    repeats: int, settings: DatabaseSettings, store_path: Path
) -> list[dict[str, Any]]:
    """Whole processes, as a script calling the CLI in a loop sees them, next to a bare
    interpreter, alternating: `idminter --help` and every command's `--help` (target: under
    200 ms), `idminter mint-ids` on empty input (no database), and `idminter mint` on an empty
    window (connects, finds no work, prints its summary: the command's fixed cost; target: under
    150 ms beyond the bare interpreter)."""
    cli = [sys.executable, "-c", _CLI]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "idminter --help": [*cli, "--help"],
        **{f"idminter {name} --help": [*cli, name, "--help"] for name in COMMAND_NAMES},
        "idminter mint-ids < /dev/null": [*cli, "mint-ids"],
        "idminter mint (empty window)": [
            *cli,
            "mint",
            "--window-start",
            "1990-01-01T00:00:00Z",
            "--window-end",
            "1990-01-01T00:15:00Z",
        ],
    }
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "IDMINTER_DOWNSTREAM_", "RDS_"))
    }
    # An installed package runs from compiled bytecode: let the first run write it (a shell with
    # PYTHONDONTWRITEBYTECODE set would otherwise compile every module in every process).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        RDS_PRIMARY_HOST=settings.host,
        RDS_PORT=str(settings.port),
        RDS_USERNAME=settings.username,
        RDS_PASSWORD=settings.password,
        IDENTIFIERS_DATABASE=settings.database,
        WORKS_STORE_PATH=str(store_path),
    )
    samples: dict[str, list[float]] = defaultdict(list)
    # CPU time (user + system) of each process too: on a shared machine it moves far less than
    # wall time, which waits for the other tenants' processes.
    cpu: dict[str, list[float]] = defaultdict(list)
    for command in commands.values():  # a warm-up round, untimed
        subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=True, env=env)
    for _ in range(repeats):
        for name, command in commands.items():
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, check=True, env=env
            )
            samples[name].append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime)
    bare = statistics.median(samples["python -c pass"]) * 1000
    bare_cpu = statistics.median(cpu["python -c pass"]) * 1000
    rows = []
    for name in commands:
        median = statistics.median(samples[name]) * 1000
        median_cpu = statistics.median(cpu[name]) * 1000
        if name.startswith("python"):
            detail = f"the interpreter alone, median of {repeats}; CPU {median_cpu:.0f} ms"
        else:
            target = "150 ms beyond the interpreter" if "mint (" in name else "200 ms"
            detail = (
                f"whole process, median of {repeats}; {median - bare:.0f} ms beyond the "
                f"interpreter; CPU {median_cpu:.0f} ms ({median_cpu - bare_cpu:.0f} beyond); "
                f"target under {target}"
            )
        rows.append(_row(f"CLI start-up: {name}", median, "ms", detail))
    return rows


# -- runs ----------------------------------------------------------------------------------------


def _pipeline_run(store: SqliteWorksStore, settings: DatabaseSettings) -> float:
    gc.collect()
    started = time.perf_counter()
    with batch_run_collector(), Minter(lambda: connect(settings)) as minter:
        summary = WorksPipeline(store, minter).run(FullScope())
    elapsed = time.perf_counter() - started
    if summary.failed:
        raise RuntimeError(f"the benchmark's works failed: {summary.as_dict()['failures'][:3]}")
    return elapsed


def _floor(store_path: Path, settings: DatabaseSettings) -> float:
    gc.collect()
    conn = connect(settings)
    try:
        started = time.perf_counter()
        floor_run(store_path, conn)
        return time.perf_counter() - started
    finally:
        conn.close()


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    count = 1_000 if quick else 5_000
    repeats = 3 if quick else 7
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "works.sqlite3"
        with SqliteWorksStore(store_path) as store:
            store.put_source(generate_works(count, seed=SEED))  # streamed, nothing kept
        rows.extend(_documents_rows(store_path, count, repeats))
        rows.extend(_startup_rows(repeats + 2, settings, store_path))

        # About 4.3 distinct identifiers per work; the pool must hold them all on a first run.
        free_ids = count * 6
        samples: dict[str, list[float]] = defaultdict(list)
        with SqliteWorksStore(store_path) as store:
            for repeat in range(repeats):
                order = ("pipeline", "floor") if repeat % 2 == 0 else ("floor", "pipeline")
                for kind in order:
                    reset_run(settings, store_path, free_ids)
                    if kind == "pipeline":
                        samples["first pipeline"].append(_pipeline_run(store, settings))
                    else:
                        samples["first floor"].append(_floor(store_path, settings))
            reset_run(settings, store_path, free_ids)
            _pipeline_run(store, settings)  # the registry as the pipeline leaves it
            for repeat in range(repeats):
                order = ("pipeline", "floor") if repeat % 2 == 0 else ("floor", "pipeline")
                for kind in order:
                    if kind == "pipeline":
                        samples["re pipeline"].append(_pipeline_run(store, settings))
                    else:
                        samples["re floor"].append(_floor(store_path, settings))

    for label, key in (("first run (new IDs)", "first"), ("re-run (existing IDs)", "re")):
        ours = statistics.median(samples[f"{key} pipeline"])
        floor = statistics.median(samples[f"{key} floor"])
        detail = (
            f"{count} works (seed {SEED}), transactions of {DEFAULT_BATCH_SIZE}, SQLite store; "
            f"median of {repeats} alternating runs"
        )
        rows.append(
            _row(f"{label}: works", count / ours, "works/s", f"{ours * 1000:.0f} ms; {detail}")
        )
        rows.append(
            _row(f"{label}: floor", floor * 1000, "ms", f"bare script, collector off; {detail}")
        )
        rows.append(
            _row(
                f"{label}: pipeline vs floor",
                ours / floor,
                "x",
                f"pipeline {ours * 1000:.0f} ms / floor {floor * 1000:.0f} ms; target at most "
                f"{TARGET_FLOOR_RATIO}x, every validation kept",
            )
        )
    return rows


if __name__ == "__main__":
    standalone_main(run, BENCHMARK)
