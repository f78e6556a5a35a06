"""Aliases: every source identifier that shares a canonical ID, original first (RFC 083).

`Minter.aliases` reads the mappings of one canonical ID with their provenance events
(`statements.ALIASES_SQL`); `aliases_from_rows` puts them in order without SQL. A mapping that
inherited its ID through a recorded event is an alias, in provenance sequence order (never by
timestamp alone). Mappings without such a record (minted before provenance existed, or legacy
rows) follow the RFC's rule: the earliest is the original. The `minting` package re-exports
`Alias` and `AliasStatus`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from idminter_pipeline.core.reports import field_values


class AliasStatus(StrEnum):
    ORIGINAL = "original"
    ALIAS = "alias"


@dataclass(frozen=True)
class Alias:
    """One source identifier mapped to a canonical ID, as `Minter.aliases` reports it.

    The parts are exactly as stored (a legacy row may carry trailing spaces), so `source` is the
    string form rather than a validated `SourceIdentifier`.
    """

    ontology_type: str
    source_system: str
    source_id: str
    status: AliasStatus
    created_at: datetime
    inherited_from: str | None = None
    provenance_seq: int | None = None
    job_id: str | None = None

    @property
    def source(self) -> str:
        return f"{self.ontology_type}[{self.source_system}/{self.source_id}]"

    def as_dict(self) -> dict[str, Any]:
        parts = {"ontology_type", "source_system", "source_id"}
        return {"source": self.source, **field_values(self, leave_out=parts)}


def aliases_from_rows(rows: Iterable[tuple[Any, ...]]) -> list[Alias]:
    """`ALIASES_SQL`'s rows as `Alias`es: the original first, then aliases in the order they
    inherited the ID."""
    # One row per mapping (the provenance event key is unique per successor and
    # predecessor, and a successor inherits once); keep the earliest event if not.
    by_key: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    for row in rows:
        key = (row[0], row[1], row[2])
        if key not in by_key or (row[4] is not None and (by_key[key][4] or 0) > row[4]):
            by_key[key] = row
    inherited = [row for row in by_key.values() if row[4] is not None]
    uninherited = sorted(
        (row for row in by_key.values() if row[4] is None), key=lambda r: (r[3], r[:3])
    )
    aliases: list[Alias] = []
    # Without a provenance record (rows minted before it existed, or legacy rows), the RFC's
    # rule applies: the earliest row is the original.
    for index, row in enumerate(uninherited):
        aliases.append(
            Alias(
                row[0],
                row[1],
                row[2],
                AliasStatus.ORIGINAL if index == 0 else AliasStatus.ALIAS,
                row[3],
            )
        )
    for row in sorted(inherited, key=lambda r: r[4]):
        aliases.append(
            Alias(
                row[0],
                row[1],
                row[2],
                AliasStatus.ALIAS,
                row[3],
                inherited_from=f"{row[5]}[{row[6]}/{row[7]}]",
                provenance_seq=row[4],
                job_id=row[8],
            )
        )
    return aliases
