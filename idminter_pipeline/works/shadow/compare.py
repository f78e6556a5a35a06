"""Comparing what this minter would write with what the legacy minter wrote, work by work.

Pure functions over two JSON documents: ours (the annotated document `idminter shadow` builds,
carrying the IDs this minter would assign) and theirs (the legacy minter's document for the
same `state.sourceIdentifier`). Every work lands in exactly one `Category`:

- `would_mint`: some identifier of the work is not registered, so this minter would mint a new
  ID for it (the document carries a placeholder there, never a real-looking ID);
- `not_in_reference`: the legacy minter has not written the work yet (lag, not a difference);
- `agree`: the documents are equal, every canonical ID included;
- `differ_expected`: every difference is a canonical ID (the root's `state.canonicalId`, an
  item's, an image's, any node's) where ours is the canonical ID of the predecessor that node's
  source inherits from: the inheritance RFC 083 introduces, on every node that names one;
- `differ_unexpected`: anything else, each difference named by its JSON path (a work this
  minter would fail counts here too, at the path `(work)`).

Equal documents are recognised by one dict comparison (C speed); the walk that names paths only
runs for documents that differ.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from idminter_pipeline.core.errors import MalformedWorkError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.works.documents import parse_bare_identifier

# What a would-mint identifier carries instead of an ID: canonical IDs are 8 ASCII letters and
# digits, so a value with a colon can never be mistaken for one.
WOULD_MINT_PREFIX = "would-mint:"
WHOLE_WORK_PATH = "(work)"
# Differences named per work; the count of differing works is always complete.
MAX_PATHS_PER_WORK = 50
_VALUE_EXCERPT = 120


class Category(StrEnum):
    AGREE = "agree"
    DIFFER_EXPECTED = "differ_expected"
    DIFFER_UNEXPECTED = "differ_unexpected"
    NOT_IN_REFERENCE = "not_in_reference"
    WOULD_MINT = "would_mint"


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the two documents differ: its JSON path and both values (excerpted)."""

    work: str
    path: str
    ours: Any
    theirs: Any

    def as_dict(self) -> dict[str, Any]:
        return {"work": self.work, "path": self.path, "ours": self.ours, "theirs": self.theirs}


@dataclass(frozen=True, slots=True)
class WorkComparison:
    work: str
    category: Category
    differences: tuple[Difference, ...] = ()


def would_mint_placeholder(number: int) -> str:
    """The stand-in for the `number`th ID a shadow run would mint."""
    return f"{WOULD_MINT_PREFIX}{number}"


def is_placeholder(value: object) -> bool:
    return isinstance(value, str) and value.startswith(WOULD_MINT_PREFIX)


def _shown(value: Any) -> Any:
    """A value as a report shows it: scalars as they are (long strings excerpted), containers
    by their JSON type and size."""
    if isinstance(value, str):
        return value if len(value) <= _VALUE_EXCERPT else excerpt(value, _VALUE_EXCERPT)
    if isinstance(value, dict):
        return f"<object with {len(value)} key(s)>"
    if isinstance(value, list):
        return f"<array of {len(value)}>"
    return value


_MISSING = object()


def _differences(ours: Any, theirs: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """Every path where the two values differ, depth first (iterative: documents may nest
    deeply). An absent key is reported with `None` on its side."""
    stack: list[tuple[Any, Any, str]] = [(ours, theirs, path)]
    while stack:
        left, right, where = stack.pop()
        if left == right:
            continue
        if isinstance(left, dict) and isinstance(right, dict):
            children = []
            for key in sorted(left.keys() | right.keys(), reverse=True):
                child = f"{where}.{key}" if where else str(key)
                children.append((left.get(key, _MISSING), right.get(key, _MISSING), child))
            stack.extend(children)
        elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
            stack.extend(
                (a, b, f"{where}[{i}]")
                for i, (a, b) in reversed(list(enumerate(zip(left, right, strict=True))))
            )
        else:
            yield (
                where,
                None if left is _MISSING else left,
                None if right is _MISSING else right,
            )


def contains_placeholder(document: Any) -> bool:
    """Whether any `canonicalId` of the annotated document is a would-mint placeholder."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if is_placeholder(value.get("canonicalId")):
                return True
            stack.extend(v for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, dict | list))
    return False


def inherited_ids(document: Any, predecessor_ids: Mapping[str, str]) -> dict[str, str]:
    """The JSON path of each `canonicalId` in `document` whose node's source inherits, with the
    predecessor's canonical ID: the only value an expected difference may have there. Paths
    are written as `_differences` writes them; only run for documents that differ."""
    found: dict[str, str] = {}
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            if "sourceIdentifier" in value:
                try:
                    source = parse_bare_identifier(value["sourceIdentifier"], path, "shadow")
                except MalformedWorkError:
                    source = None
                inherited = predecessor_ids.get(str(source)) if source is not None else None
                if inherited is not None:
                    found[f"{path}.canonicalId" if path else "canonicalId"] = inherited
            stack.extend(
                (child, f"{path}.{key}" if path else str(key))
                for key, child in value.items()
                if isinstance(child, dict | list)
            )
        elif isinstance(value, list):
            stack.extend(
                (child, f"{path}[{index}]")
                for index, child in enumerate(value)
                if isinstance(child, dict | list)
            )
    return found


def compare_work(
    work: str,
    ours: dict[str, Any],
    theirs: dict[str, Any] | None,
    *,
    predecessor_ids: Mapping[str, str] | None = None,
    may_mint: bool = True,
) -> WorkComparison:
    """The category of one work, and its differences when unexpected.

    `predecessor_ids` maps a source's text form (`Item[folio-item/...]`) to the canonical ID
    this minter finds (or would give) the predecessor it declares, for every source of the
    work's batch that declares one. `may_mint=False` says no ID of the work's batch would be
    minted, which spares looking for placeholders.
    """
    # Equal documents first: the common case, and one a placeholder can never reach (no
    # reference document holds one).
    if theirs is not None and ours == theirs:
        return WorkComparison(work, Category.AGREE)
    if may_mint and contains_placeholder(ours):
        return WorkComparison(work, Category.WOULD_MINT)
    if theirs is None:
        return WorkComparison(work, Category.NOT_IN_REFERENCE)
    found = list(_differences(ours, theirs, ""))
    if predecessor_ids:
        inherited = inherited_ids(ours, predecessor_ids)
        if inherited and all(
            path in inherited and inherited[path] == mine for path, mine, _ in found
        ):
            return WorkComparison(
                work,
                Category.DIFFER_EXPECTED,
                tuple(
                    Difference(work, path, mine, legacy)
                    for path, mine, legacy in found[:MAX_PATHS_PER_WORK]
                ),
            )
    return WorkComparison(
        work,
        Category.DIFFER_UNEXPECTED,
        tuple(
            Difference(work, path, _shown(mine), _shown(legacy))
            for path, mine, legacy in found[:MAX_PATHS_PER_WORK]
        ),
    )


def failed_work(
    work: str, stage: str, detail: str, theirs: dict[str, Any] | None
) -> WorkComparison:
    """A work this minter would fail: an unexpected difference of the whole work."""
    legacy = None if theirs is None else (theirs.get("state") or {}).get("canonicalId")
    return WorkComparison(
        work,
        Category.DIFFER_UNEXPECTED,
        (Difference(work, WHOLE_WORK_PATH, f"would fail at {stage}: {detail}", legacy),),
    )
