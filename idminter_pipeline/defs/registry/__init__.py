"""The registry in Dagster: its schema as an asset; the `registry_database` resource every domain
that reads or writes the registry uses is in `defs/resources.py`."""
