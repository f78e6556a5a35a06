"""Shadow mode: what this minter would assign, compared with the legacy minter's output.

`shadow_run` reads a scope of works, plans their IDs from the registry without writing
(`registry.minting.read_only.ReadOnlyMinter`), builds the annotated documents and compares each
with the reference document of the same `state.sourceIdentifier` (`reference`), sorting every
work into one category (`compare.Category`). Nothing is written to the registry or to any store.
"""

from idminter_pipeline.works.shadow.compare import Category, Difference, WorkComparison
from idminter_pipeline.works.shadow.reference import (
    ElasticsearchReference,
    Reference,
    SqliteReference,
)
from idminter_pipeline.works.shadow.run import ShadowReport, shadow_run

__all__ = [
    "Category",
    "Difference",
    "ElasticsearchReference",
    "Reference",
    "ShadowReport",
    "SqliteReference",
    "WorkComparison",
    "shadow_run",
]
