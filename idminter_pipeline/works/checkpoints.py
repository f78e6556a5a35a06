"""Checkpoints of full runs: `idminter mint --full --job-id J`, killed, resumes after its last
written batch when run again with the same job id.

They live in the registry database (`works_run_checkpoints`, migration 0005), not in a local
file: a Lambda or an ECS task that restarts runs on another machine, the registry is already
the one durable store every entry point reaches, and a row committed after each batch's write
survives any crash of the process. A checkpoint is only ever written after the batch it names
is in the works store, so resuming can repeat at most one batch (minting is idempotent), never
skip one.

While a run holds a job id it also holds a named lock on the registry (`GET_LOCK`), released
when its connection closes, even by a crash: two runs with one job id at once would each move
the other's checkpoint.

A lost connection (a restarted server, a failover, a secret rotation dropping sessions) is ridden
out as the minter rides it out (`registry.outage.ride_out`, the same bound): each read or write
is redone on a new connection, which first takes the job's lock again (another run that took the
job id meanwhile stops this one with `JobAlreadyRunningError`). Every statement is safe to redo:
recording a batch whose position is already recorded changes nothing, so a commit whose
acknowledgement was lost is not counted twice.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any, Self

import pymysql

from idminter_pipeline.core.errors import IdMinterError, InvalidInputError, RegistryUnavailableError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.job_ids import check_job_id
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.outage import ride_out
from idminter_pipeline.works.stores.base import ScanPosition

_LOCK_PREFIX = "idminter-full-run:"


class JobAlreadyRunningError(IdMinterError):
    """Another process holds the job id a full run asked for."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"another full run with job id {excerpt(job_id, 80)} is running; wait for it or "
            "use another --job-id"
        )


@dataclass(frozen=True)
class Checkpoint:
    """How far an unfinished full run got: totals of its earlier attempts, and where to go on."""

    job_id: str
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


def _lock_name(job_id: str) -> str:
    # Lock names are limited to 64 characters: name the job by a digest.
    return _LOCK_PREFIX + hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:40]


class FullRunCheckpoints:
    """The checkpoint of one full run, on a connection of its own (not the minter's: a
    checkpoint commits after the write, whatever the minter's transaction is doing)."""

    def __init__(
        self, connection_factory: ConnectionFactory, *, outage_seconds: float | None = None
    ) -> None:
        self._connect = connection_factory
        self._conn: Connection | None = None
        self._job_id: str | None = None
        self.outage_seconds = outage_seconds

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._connect()
            if self._job_id is not None:  # a new session after a lost one: take the job again
                try:
                    with conn.cursor() as cursor:
                        cursor.execute("SELECT GET_LOCK(%s, 0)", (_lock_name(self._job_id),))
                        (acquired,) = cursor.fetchone()
                except BaseException:
                    with contextlib.suppress(pymysql.err.Error):
                        conn.close()
                    raise
                if acquired != 1:
                    conn.close()
                    raise JobAlreadyRunningError(self._job_id)
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
                what="reading or recording the full run's checkpoint",
                bound_seconds=self.outage_seconds,
                before_retry=self._discard,
            )
        except pymysql.err.Error as error:  # not an outage: SQL errors, refused access
            raise RegistryUnavailableError(
                f"cannot read or record the full run's checkpoint in the registry: {error}"
            ) from error

    def _discard(self) -> None:
        if self._conn is not None:
            # A connection that is gone already took its lock with it.
            with contextlib.suppress(pymysql.err.Error):
                self._conn.close()
            self._conn = None

    def begin(self, job_id: str, store: str) -> Checkpoint | None:
        """Take the job id for this process; the checkpoint to resume from, or None to start at
        the beginning (a new job id, or one whose last run finished)."""
        check_job_id(job_id)
        (acquired,) = self._execute("SELECT GET_LOCK(%s, 0)", (_lock_name(job_id),))[0]
        if acquired != 1:
            raise JobAlreadyRunningError(job_id)
        self._job_id = job_id
        key = job_id.encode("utf-8")
        rows = self._execute(
            "SELECT Store, LastIndexedAtUs, LastWorkId, WorksRead, WorksWritten, WorksFailed, "
            "Batches, FinishedAt FROM works_run_checkpoints WHERE JobId = %s",
            (key,),
        )
        if not rows:
            # Idempotent: a redone insert whose first commit was applied finds its own row.
            self._execute(
                "INSERT INTO works_run_checkpoints (JobId, Store) VALUES (%s, %s) "
                "ON DUPLICATE KEY UPDATE JobId = JobId",
                (key, store),
            )
            return None
        stored, indexed_at_us, work_id, read, written, failed, batches, finished = rows[0]
        if stored != store:
            self.close()
            raise InvalidInputError(
                f"job id {excerpt(job_id, 80)} is a full run of {stored}, not of {store}: use "
                "another --job-id"
            )
        if finished is not None:
            self._execute(
                "UPDATE works_run_checkpoints SET LastIndexedAtUs = NULL, LastWorkId = NULL, "
                "WorksRead = 0, WorksWritten = 0, WorksFailed = 0, Batches = 0, "
                "StartedAt = CURRENT_TIMESTAMP(6), UpdatedAt = CURRENT_TIMESTAMP(6), "
                "FinishedAt = NULL WHERE JobId = %s",
                (key,),
            )
            return None
        if indexed_at_us is None:
            return None  # stopped before its first batch was written: nothing to resume
        position = ScanPosition(int(indexed_at_us), work_id)
        return Checkpoint(job_id, stored, position, read, written, failed, batches)

    def record(
        self, position: ScanPosition, *, works_read: int, works_written: int, works_failed: int
    ) -> None:
        """One more batch is written: it ended at `position`, with these counts."""
        if self._job_id is None:
            raise RuntimeError("record() before begin()")
        # Positions only move forward, so a row already at `position` has this batch: a redone
        # update (its first commit applied, the acknowledgement lost) must not count it twice.
        self._execute(
            "UPDATE works_run_checkpoints SET LastIndexedAtUs = %s, LastWorkId = %s, "
            "WorksRead = WorksRead + %s, WorksWritten = WorksWritten + %s, "
            "WorksFailed = WorksFailed + %s, Batches = Batches + 1, "
            "UpdatedAt = CURRENT_TIMESTAMP(6) WHERE JobId = %s "
            "AND NOT (LastIndexedAtUs <=> %s AND LastWorkId <=> %s)",
            (
                position.indexed_at_us,
                position.work_id,
                works_read,
                works_written,
                works_failed,
                self._job_id.encode("utf-8"),
                position.indexed_at_us,
                position.work_id,
            ),
        )

    def finish(self) -> None:
        """The run reached the end of the index: the next run with this job id starts over."""
        if self._job_id is None:
            raise RuntimeError("finish() before begin()")
        self._execute(
            "UPDATE works_run_checkpoints SET FinishedAt = CURRENT_TIMESTAMP(6), "
            "UpdatedAt = CURRENT_TIMESTAMP(6) WHERE JobId = %s",
            (self._job_id.encode("utf-8"),),
        )

    def close(self) -> None:
        """Release the job id (closing the connection releases its lock)."""
        self._job_id = None
        self._discard()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
