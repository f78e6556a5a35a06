"""Reconciliation in Dagster: `registry_reconciliation`, its checks, job, schedule and failure
alert."""
