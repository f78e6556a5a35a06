"""Checkpoints of works runs: a run killed part-way resumes after its last written batch.

Two kinds of run keep one:

- a full run (`idminter mint --full --job-id J`, the Lambda's `full: true` with a `jobId`),
  keyed by its job id: run again with that job id, it resumes;
- a window run (a Dagster partition of `identified_works`, `idminter mint --window-start/
  --window-end`), keyed by the window itself (`WindowScope.describe()`), not by a run id: any
  later run of the same window (a Dagster retry or re-execution, a new run of the partition, the
  CLI) resumes it. Only an unfinished checkpoint is resumed. A window whose run went to its end
  starts over (a deliberate re-run, a backfill to re-mint, does the whole window), and so does
  one whose earlier attempt failed works (so the window's `no_failed_works` check judges every
  work of it) or that was read from another works store.

They live in the registry database (`works_run_checkpoints`, migrations 0005 and 0012), not in
a local file: a Lambda or an ECS task that restarts runs on another machine, the registry is already
the one durable store every entry point reaches, and a row committed after each batch's write
survives any crash of the process. A checkpoint is only ever written after the batch it names
is in the works store, so resuming can repeat at most one batch (minting is idempotent), never
skip one. A window run records its batches together at most every
`IDMINTER_WINDOW_CHECKPOINT_SECONDS` (10 s by default): each record is a durable commit, which a
day of 96 short windows would otherwise pay several times a window for nothing; a window
shorter than that writes no checkpoint, and a killed one redoes at most that much.

While a run holds a job id or a window it also holds a named lock on the registry (`GET_LOCK`),
released when its connection closes, even by a crash: two runs with one job id at once would
each move the other's checkpoint. A second run of a window being run (a backfill over a
scheduled run) mints the whole window without a checkpoint: minting is idempotent
(`works.pipeline`).

A lost connection (a restarted server, a failover, a secret rotation dropping sessions) is ridden
out as the minter rides it out (`registry.outage.ride_out`, the same bound): each read or write
is redone on a new connection, which first takes the run's lock again (another run that took
the job id or window meanwhile stops this one with `CheckpointHeldError`). Every statement is
safe to redo: recording a batch whose position is already recorded changes nothing, so a commit
whose acknowledgement was lost is not counted twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import pymysql

from idminter_pipeline.core.errors import IdMinterError, InvalidInputError, RegistryUnavailableError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.job_ids import check_job_id
from idminter_pipeline.core.settings import env_int
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.outage import ride_out
from idminter_pipeline.works.stores.base import ScanPosition, WindowScope

FULL_RUN = "full"
WINDOW_RUN = "window"
_LOCK_PREFIXES = {FULL_RUN: "idminter-full-run:", WINDOW_RUN: "idminter-window-run:"}


class CheckpointHeldError(IdMinterError):
    """Another process holds the checkpoint a run asked for."""


class JobAlreadyRunningError(CheckpointHeldError):
    """Another process holds the job id a full run asked for."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"another full run with job id {excerpt(job_id, 80)} is running; wait for it or "
            "use another --job-id"
        )


class WindowAlreadyRunningError(CheckpointHeldError):
    """Another process is running the window and holds its checkpoint."""

    def __init__(self, window: str) -> None:
        self.window = window
        super().__init__(f"another run of the window {window} holds its checkpoint")


@dataclass(frozen=True)
class Checkpoint:
    """How far an unfinished run got: totals of its earlier attempts, and where to go on. `key`
    is the full run's job id or the window's scope."""

    key: str
    store: str
    position: ScanPosition
    works_read: int
    works_written: int
    works_failed: int
    batches: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "after": self.position.describe(),
            "works_read": self.works_read,
            "works_written": self.works_written,
            "works_failed": self.works_failed,
            "batches": self.batches,
        }


WINDOW_CHECKPOINT_SECONDS_ENV = "IDMINTER_WINDOW_CHECKPOINT_SECONDS"
DEFAULT_WINDOW_CHECKPOINT_SECONDS = 10


def window_checkpoint_seconds(environ: Mapping[str, str] | None = None) -> int:
    """How often a window run records its checkpoint: each commit is a durable write, which a
    day of short windows would pay once a window for nothing; a killed window redoes at most
    this many seconds of batches (0: every batch)."""
    return env_int(
        environ, WINDOW_CHECKPOINT_SECONDS_ENV, DEFAULT_WINDOW_CHECKPOINT_SECONDS, minimum=0
    )


@dataclass
class _Pending:
    """Batches written and not recorded yet: where the last ended, and their counts."""

    position: ScanPosition | None = None
    works_read: int = 0
    works_written: int = 0
    works_failed: int = 0
    batches: int = 0

    def add(self, position: ScanPosition, read: int, written: int, failed: int) -> None:
        self.position = position
        self.works_read += read
        self.works_written += written
        self.works_failed += failed
        self.batches += 1


# Lock names are server-wide and at most 64 characters: the run is named by a digest of the
# registry database and its key, so registries sharing a server (a fork, the tests' databases)
# never hold each other's runs.
_LOCK_NAME = "CONCAT(%s, LEFT(SHA2(CONCAT_WS(CHAR(0), DATABASE(), %s), 256), 40))"
_TAKE_LOCK = f"SELECT GET_LOCK({_LOCK_NAME}, 0)"
_RELEASE_LOCK = f"SELECT RELEASE_LOCK({_LOCK_NAME})"


def _lock_params(kind: str, key: str) -> tuple[str, str]:
    return _LOCK_PREFIXES[kind], key


def _held_error(kind: str, key: str) -> CheckpointHeldError:
    return JobAlreadyRunningError(key) if kind == FULL_RUN else WindowAlreadyRunningError(key)


class RunCheckpoints:
    """The checkpoint of one run at a time (a full run, or a window after another), on a
    connection of its own (not the minter's: a checkpoint commits after the write, whatever the
    minter's transaction is doing)."""

    def __init__(
        self,
        connection_factory: ConnectionFactory,
        *,
        outage_seconds: float | None = None,
        window_every_seconds: int | None = None,
    ) -> None:
        self._connect = connection_factory
        self._conn: Connection | None = None
        # The run held: (kind, key).
        self._held: tuple[str, str] | None = None
        self.outage_seconds = outage_seconds
        self.window_every_seconds = (
            window_checkpoint_seconds() if window_every_seconds is None else window_every_seconds
        )
        self._store = ""
        # Whether the held run's row holds this run's progress (a full run's from `begin`, a
        # window's once resumed or first recorded); a window's row that this run does not
        # resume is left as it is until the run records its first batches over it.
        self._row_is_ours = False
        self._pending = _Pending()
        self._recorded_at = 0.0

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._connect()
            if self._held is not None:  # a new session after a lost one: take the run again
                try:
                    with conn.cursor() as cursor:
                        cursor.execute(_TAKE_LOCK, _lock_params(*self._held))
                        (acquired,) = cursor.fetchone()
                except BaseException:
                    with contextlib.suppress(pymysql.err.Error):
                        conn.close()
                    raise
                if acquired != 1:
                    conn.close()
                    raise _held_error(*self._held)
            self._conn = conn
        return self._conn

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        def attempt() -> list[tuple[Any, ...]]:
            conn = self._connection()
            try:
                with conn.cursor() as cursor:
                    cursor.execute(sql, params)
                    rows = list(cursor.fetchall())
                conn.commit()
            except BaseException:
                self._discard()
                raise
            return rows

        try:
            return ride_out(
                attempt,
                what="reading or recording the run's checkpoint",
                bound_seconds=self.outage_seconds,
                before_retry=self._discard,
            )
        except pymysql.err.Error as error:  # not an outage: SQL errors, refused access
            raise RegistryUnavailableError(
                f"cannot read or record the run's checkpoint in the registry: {error}"
            ) from error

    def _discard(self) -> None:
        if self._conn is not None:
            # A connection that is gone already took its lock with it.
            with contextlib.suppress(pymysql.err.Error):
                self._conn.close()
            self._conn = None

    def _take(self, kind: str, key: str) -> None:
        """Hold the run for this process (released with `release`, or with the connection)."""
        if self._held is not None:
            raise RuntimeError("a checkpoint is already held: release() it first")
        (acquired,) = self._execute(_TAKE_LOCK, _lock_params(kind, key))[0]
        if acquired != 1:
            raise _held_error(kind, key)
        self._held = (kind, key)

    def _row(self) -> tuple[Any, ...] | None:
        """The held run's row, inserted when it has none."""
        kind, key = self._key()
        select = (
            "SELECT Store, LastIndexedAtUs, LastWorkId, WorksRead, WorksWritten, WorksFailed, "
            "Batches, FinishedAt FROM works_run_checkpoints WHERE RunKind = %s AND JobId = %s"
        )
        rows = self._execute(select, (kind, key))
        return rows[0] if rows else None

    def _insert(self, store: str) -> None:
        # Idempotent: a redone insert whose first commit was applied finds its own row.
        self._execute(
            "INSERT INTO works_run_checkpoints (RunKind, JobId, Store) VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE JobId = JobId",
            (*self._key(), store),
        )

    def _start_over(self, store: str) -> None:
        self._execute(
            "UPDATE works_run_checkpoints SET Store = %s, LastIndexedAtUs = NULL, "
            "LastWorkId = NULL, WorksRead = 0, WorksWritten = 0, WorksFailed = 0, Batches = 0, "
            "StartedAt = CURRENT_TIMESTAMP(6), UpdatedAt = CURRENT_TIMESTAMP(6), "
            "FinishedAt = NULL WHERE RunKind = %s AND JobId = %s",
            (store, *self._key()),
        )

    def _key(self) -> tuple[str, bytes]:
        if self._held is None:
            raise RuntimeError("no checkpoint is held: begin() first")
        kind, key = self._held
        return kind, key.encode("utf-8")

    def begin(self, job_id: str, store: str) -> Checkpoint | None:
        """Take the job id for this process; the checkpoint to resume from, or None to start at
        the beginning (a new job id, or one whose last run finished)."""
        check_job_id(job_id)
        self._take(FULL_RUN, job_id)
        self._started(store, row_is_ours=True)
        row = self._row()
        if row is None:
            self._insert(store)
            return None
        stored, indexed_at_us, work_id, read, written, failed, batches, finished = row
        if stored != store:
            self.close()
            raise InvalidInputError(
                f"job id {excerpt(job_id, 80)} is a full run of {stored}, not of {store}: use "
                "another --job-id"
            )
        if finished is not None:
            self._start_over(store)
            return None
        if indexed_at_us is None:
            return None  # stopped before its first batch was written: nothing to resume
        position = ScanPosition(int(indexed_at_us), work_id)
        return Checkpoint(job_id, stored, position, read, written, failed, batches)

    def begin_window(self, scope: WindowScope, store: str) -> Checkpoint | None:
        """Take the window for this process (`WindowAlreadyRunningError` when another run
        holds it); the checkpoint to resume from, or None to do the whole window: none was
        kept, the last run finished the window, failed works of it, or read another store."""
        key = scope.describe()
        self._take(WINDOW_RUN, key)
        self._started(store, row_is_ours=False)
        row = self._row()
        if row is None:
            return None
        stored, indexed_at_us, work_id, read, written, failed, batches, finished = row
        if finished is not None:
            return None
        if stored != store or failed or indexed_at_us is None:
            return None  # started over once this run records its first batches
        self._row_is_ours = True
        position = ScanPosition(int(indexed_at_us), work_id)
        return Checkpoint(key, stored, position, read, written, failed, batches)

    def _started(self, store: str, *, row_is_ours: bool) -> None:
        self._store = store
        self._row_is_ours = row_is_ours
        self._pending = _Pending()
        self._recorded_at = time.monotonic()

    def record(
        self, position: ScanPosition, *, works_read: int, works_written: int, works_failed: int
    ) -> None:
        """One more batch is written: it ended at `position`, with these counts. A full run
        records each batch; a window's batches are recorded together at most every
        `window_every_seconds` (a killed window redoes at most that much), so a short window
        writes no checkpoint at all."""
        self._key()
        self._pending.add(position, works_read, works_written, works_failed)
        kind, _ = self._held or ("", "")
        every = self.window_every_seconds if kind == WINDOW_RUN else 0
        if time.monotonic() - self._recorded_at >= every:
            self._record_pending()

    def _record_pending(self) -> None:
        kind, key = self._key()
        pending = self._pending
        if self._row_is_ours and pending.position is not None:
            # Positions only move forward, so a row already at `position` has these batches: a
            # redone update (its first commit applied, the acknowledgement lost) must not count
            # them twice.
            self._execute(
                "UPDATE works_run_checkpoints SET LastIndexedAtUs = %s, LastWorkId = %s, "
                "WorksRead = WorksRead + %s, WorksWritten = WorksWritten + %s, "
                "WorksFailed = WorksFailed + %s, Batches = Batches + %s, "
                "UpdatedAt = CURRENT_TIMESTAMP(6) WHERE RunKind = %s AND JobId = %s "
                "AND NOT (LastIndexedAtUs <=> %s AND LastWorkId <=> %s)",
                (
                    pending.position.indexed_at_us,
                    pending.position.work_id,
                    pending.works_read,
                    pending.works_written,
                    pending.works_failed,
                    pending.batches,
                    kind,
                    key,
                    pending.position.indexed_at_us,
                    pending.position.work_id,
                ),
            )
        elif not self._row_is_ours and pending.position is not None:
            # A window's first record: its row, new or started over, holds exactly this run's
            # batches (absolute figures, so redoing the statement changes nothing).
            indexed_at_us = pending.position.indexed_at_us if pending.position else None
            work_id = pending.position.work_id if pending.position else None
            figures = (
                self._store,
                indexed_at_us,
                work_id,
                pending.works_read,
                pending.works_written,
                pending.works_failed,
                pending.batches,
            )
            self._execute(
                "INSERT INTO works_run_checkpoints (RunKind, JobId, Store, LastIndexedAtUs, "
                "LastWorkId, WorksRead, WorksWritten, WorksFailed, Batches) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
                "Store = %s, LastIndexedAtUs = %s, LastWorkId = %s, WorksRead = %s, "
                "WorksWritten = %s, WorksFailed = %s, Batches = %s, "
                "StartedAt = CURRENT_TIMESTAMP(6), UpdatedAt = CURRENT_TIMESTAMP(6), "
                "FinishedAt = NULL",
                (kind, key, *figures, *figures),
            )
            self._row_is_ours = True
        self._pending = _Pending()
        self._recorded_at = time.monotonic()

    def finish(self) -> None:
        """The run reached the end of its scope: the next run of it starts over. A window run
        that recorded nothing writes nothing: no row, a finished one, or one this run did not
        resume (failed works, another store) each start the next run over too."""
        if self._row_is_ours:
            self._record_pending()
            self._execute(
                "UPDATE works_run_checkpoints SET FinishedAt = CURRENT_TIMESTAMP(6), "
                "UpdatedAt = CURRENT_TIMESTAMP(6) WHERE RunKind = %s AND JobId = %s",
                self._key(),
            )

    def release(self) -> None:
        """Let other runs take the held run (a multi-window run goes on to its next window on
        the same connection)."""
        if self._held is None:
            return
        held, self._held = self._held, None
        self._row_is_ours = False
        if self._conn is None:
            return  # a lost session took its lock with it
        # Not ridden out: a run stopping because the registry is gone must not wait for it
        # here. Dropping the session releases the lock as surely.
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(_RELEASE_LOCK, _lock_params(*held))
                cursor.fetchall()
        except pymysql.err.Error:
            self._discard()

    def close(self) -> None:
        """Release the held run, then close the connection. Released explicitly: the server
        frees a closed connection's locks a moment later, which a run started right after (a
        retry, the next run of a schedule) could take for another run holding them."""
        self.release()
        self._discard()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
