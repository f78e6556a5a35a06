"""The rules every part shares: canonical IDs, source identifiers, strict JSON, errors,
settings, limits and alerts. Nothing here imports Dagster, click or the registry client."""
