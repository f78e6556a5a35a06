"""Alerts in Dagster: the `alerts` resource and what a failed run says about its failure."""
