"""The registry in Dagster: its schema as an asset and the check that it is this project's; the
`registry_database` resource every domain that reads or writes the registry uses is in
`defs/resources.py`."""
