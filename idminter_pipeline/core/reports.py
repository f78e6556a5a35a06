"""Reports as plain data (printed JSON, Dagster metadata), read off their dataclass fields.

A report's `as_dict` is mostly its fields under their own names: `field_values` gives them in
declaration order, so a report names only what differs (a key renamed for readers, a field left
out, a figure derived from the others) and a field added later is reported without a second list
to keep in step.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def reported(value: object) -> object:
    """`value` as plain data: an object by its own `as_dict`, another dataclass by its fields,
    an enum member by its value, a list or tuple item by item; anything else as it is."""
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return field_values(value)
    if isinstance(value, list | tuple):
        return [reported(item) for item in value]
    return value


def field_values(
    report: DataclassInstance,
    *,
    renamed: Mapping[str, str] | None = None,
    leave_out: Collection[str] = (),
) -> dict[str, Any]:
    """Each field of `report` but those in `leave_out`, in declaration order, under its own
    name or the one `renamed` gives it, its value `reported`."""
    names = renamed or {}
    return {
        names.get(f.name, f.name): reported(getattr(report, f.name))
        for f in fields(report)
        if f.name not in leave_out
    }
