"""Inheritance chains: which source inherited a canonical ID from which, read from provenance.

A successor shares its predecessor's canonical ID (RFC 083), so every source of one chain
competes for that ID's single identified document. `identifier_provenance` records each
inheritance (`Kind = 'inherited'`) under the shared canonical ID, indexed by
`(CanonicalId, Seq)`: one statement reads the chains of a batch's canonical IDs. An inheritance
counts only while the successor's mapping still holds that canonical ID (joined on the
`identifiers` primary key), so re-pointing or deleting a mapping by hand takes it out of its
chain (docs/design/succession.md).

This module only reads; deciding which source of a chain owns the document is
`works.succession`'s, without SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.minting.plan import Key, collation_key

# Canonical IDs per statement: a batch of the default 500 works is one statement; the largest
# batch (5,000) is a few, in one transaction.
CANONICAL_IDS_PER_STATEMENT = 1_000

_INHERITANCES_SQL = (
    "SELECT p.CanonicalId, p.Seq, p.SuccessorOntologyType, p.SuccessorSourceSystem, "
    "p.SuccessorSourceId, p.PredecessorOntologyType, p.PredecessorSourceSystem, "
    "p.PredecessorSourceId "
    "FROM identifier_provenance p JOIN identifiers i "
    "ON i.OntologyType = p.SuccessorOntologyType AND i.SourceSystem = p.SuccessorSourceSystem "
    "AND i.SourceId = p.SuccessorSourceId AND i.CanonicalId = p.CanonicalId "
    "WHERE p.Kind = 'inherited' AND p.CanonicalId IN ({marks})"
)
# Works' chains only: items, images and concepts inherit too (any node may name a predecessor),
# but only works have identified documents to own, so a walk over every chain skips theirs.
_CHAINED_IDS_SQL = (
    "SELECT DISTINCT CanonicalId FROM identifier_provenance "
    "WHERE Kind = 'inherited' AND CanonicalId > %s "
    "AND SuccessorOntologyType = 'Work' AND PredecessorOntologyType = 'Work' "
    "ORDER BY CanonicalId LIMIT %s"
)


@dataclass(frozen=True, slots=True)
class Inheritance:
    """`successor` took `canonical_id` from `predecessor`; `seq` orders inheritances."""

    canonical_id: str
    seq: int
    successor: Key
    predecessor: Key


def _inheritance(row: Sequence[Any]) -> Inheritance:
    return Inheritance(
        row[0],
        int(row[1]),
        collation_key(row[2], row[3], row[4]),
        collation_key(row[5], row[6], row[7]),
    )


def read_inheritances(conn: Connection, canonical_ids: Sequence[str]) -> list[Inheritance]:
    """Every live inheritance recorded under `canonical_ids` (bound parameters, no formatting
    of values)."""
    wanted = sorted(set(canonical_ids))
    found: list[Inheritance] = []
    with conn.cursor() as cursor:
        for start in range(0, len(wanted), CANONICAL_IDS_PER_STATEMENT):
            chunk = wanted[start : start + CANONICAL_IDS_PER_STATEMENT]
            cursor.execute(_INHERITANCES_SQL.format(marks=",".join(["%s"] * len(chunk))), chunk)
            found.extend(_inheritance(row) for row in cursor.fetchall())
    return found


def read_chained_ids(conn: Connection, after: str, limit: int) -> list[str]:
    """The next `limit` canonical IDs, in order after `after`, that some work inherited from
    a work."""
    with conn.cursor() as cursor:
        cursor.execute(_CHAINED_IDS_SQL, (after, limit))
        return [row[0] for row in cursor.fetchall()]
