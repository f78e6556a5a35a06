"""Every environment variable the package reads is documented, with its default.

The variables are found by `ast` over idminter_pipeline/ (`environ.get`, `environ[...]`,
`... in os.environ`, `os.getenv`, `EnvVar`, the package's env helpers, module constants naming
them), so a new setting fails here until docs/configuration.md has a row for it.
"""

from __future__ import annotations

import re

import pytest
from docs_helpers import DOCS, environment_variables

CONFIGURATION = DOCS / "configuration.md"


def _documented() -> dict[str, str]:
    """Variable -> the default column of its table row."""
    rows = {}
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not line.startswith("|"):
            continue
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def test_the_finder_finds_the_variables_of_each_kind_of_read():
    found = environment_variables()
    # os.environ.get, env.get in from_env, env_int(env, NAME), EnvVar via a helper, a dict of
    # names iterated, `NAME in os.environ`: one of each, so a broken finder cannot pass.
    for name in (
        "IDMINTER_LOCAL_DIR",
        "RDS_PRIMARY_HOST",
        "RDS_PORT",
        "RDS_PASSWORD",
        "IDMINTER_POOL_TARGET_FREE",
        "IDMINTER_REGISTRY_OUTAGE_SECONDS",
    ):
        assert name in found, name


@pytest.mark.parametrize("variable", sorted(environment_variables()))
def test_every_variable_the_package_reads_is_documented_with_a_default(variable):
    documented = _documented()
    where = ", ".join(sorted(environment_variables()[variable]))
    assert variable in documented, f"{variable} (read in {where}) is not in {CONFIGURATION.name}"
    assert documented[variable], f"{variable}: the default column is empty"
