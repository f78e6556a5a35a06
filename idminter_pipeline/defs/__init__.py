"""The Dagster layer: a folder per domain, one file per Dagster kind, over the domain modules.

`idminter_pipeline.definitions` merges each domain's `defs` into the one `Definitions`.
"""
