"""Run-config types the launchpad checks before a run exists.

Dagster validates run config against its schema when a run is launched, but the schema of a
pythonic `dg.Config` carries no bounds: a pydantic constraint such as `Field(ge=1)` is only
checked when the step starts, so `batch_size: -1` becomes a failed run. `PositiveInt` is an
`Int` whose bound Dagster checks while it resolves the run config, before the run is created:
the launchpad refuses the launch and names the field and the value.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

# Dagster has no public hook for a bounded scalar; a scalar type with a `post_process` is how its
# own builtin types (Float, Enum) coerce and check values. Dagster is pinned
# (pyproject.toml), and tests/test_dagster_config.py proves the launch is refused.
from dagster._config.config_type import ConfigScalar, ConfigScalarKind
from dagster._config.errors import PostProcessingError

from idminter_pipeline.core.excerpts import excerpt


class PositiveInt(ConfigScalar):
    """An integer config value of at least 1 (batch sizes, targets, writers)."""

    def __init__(self) -> None:
        super().__init__(
            key="PositiveInt",
            given_name="PositiveInt",
            scalar_kind=ConfigScalarKind.INT,
            description="A whole number of at least 1.",
        )

    def post_process(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PostProcessingError(
                f"expected a whole number of at least 1, got {excerpt(value)}"
            )
        return value


def positive_int_field(default: int | None, description: str) -> dg.Field:
    """A field holding a `PositiveInt`; with default None it may also be left null (unset)."""
    if default is None:
        return dg.Field(
            dg.Noneable(PositiveInt()),
            default_value=None,
            is_required=False,
            description=description,
        )
    return dg.Field(PositiveInt(), default_value=default, description=description)
