"""Which release the code location runs, as Dagster shows it: the package version and the
release tag (`IDMINTER_RELEASE`) in every asset's definition metadata, on each asset's page in
the UI, and in the `Definitions`' own metadata (which the UI does not show)."""

from idminter_pipeline.core.release import package_version, release_tag


def release_metadata() -> dict[str, str]:
    return {"version": package_version(), "release": release_tag()}
