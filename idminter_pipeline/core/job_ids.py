"""Job ids: the run or caller recorded with every inheritance and mismatch (`JobId` columns).

A job id comes from a command line (`--job-id`), a Lambda event or a Dagster run. It is stored
as given or refused: the columns are `VARCHAR(255) utf8mb4` (migration 0002), so an id longer
than that, or holding what no utf8mb4 column can store (an unpaired surrogate, which is how
Python carries command-line bytes that are not UTF-8), is refused before anything is written.
"""

from __future__ import annotations

import unicodedata

from idminter_pipeline.core.errors import InvalidJobIdError

MAX_JOB_ID_LENGTH = 255


def check_job_id(job_id: object) -> None:
    """Raise `InvalidJobIdError` naming `job_id` unless the registry can store it exactly."""
    if job_id is None:
        return
    if not isinstance(job_id, str):
        raise InvalidJobIdError(job_id, f"expected a string, got {type(job_id).__name__}")
    if not job_id:
        raise InvalidJobIdError(job_id, "must not be empty")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidJobIdError(
            job_id, f"is {len(job_id):,} characters long; at most {MAX_JOB_ID_LENGTH} fit"
        )
    for position, character in enumerate(job_id):
        category = unicodedata.category(character)
        if category == "Cs":
            raise InvalidJobIdError(
                job_id,
                f"is not valid UTF-8 (unpaired surrogate U+{ord(character):04X} at position "
                f"{position}; a command-line byte that is not UTF-8 arrives as one)",
            )
        if category == "Cc":
            raise InvalidJobIdError(
                job_id, f"contains control character U+{ord(character):04X} at position {position}"
            )
