"""The code location's `Definitions`: every domain folder of `defs/`, loaded as Dagster's `dg`
projects load theirs (`load_from_defs_folder`, configured by the package's `dg.toml`, which
travels with the installed package)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
