"""Which release is running: the package's version and the build's release tag.

The version is the installed distribution's (`pyproject.toml`). The release tag says which build
of it is deployed: the images take it at build time (`--build-arg IDMINTER_RELEASE=<git
commit or tag>`), and it reaches the environment as `IDMINTER_RELEASE`; a source checkout
without it reports `unreleased`. `idminter --version`, every Dagster asset's metadata and
the Lambda's run-summary log line all show it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.core.settings import env_text

RELEASE_ENV = "IDMINTER_RELEASE"
UNRELEASED = "unreleased"
DISTRIBUTION = "idminter-pipeline"
# A git commit, a tag or an image tag: printable, no spaces, short enough for a log field.
_RELEASE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}")


def package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on PYTHONPATH, never installed
        return "0+source"


def release_tag(environ: Mapping[str, str] | None = None) -> str:
    """`IDMINTER_RELEASE`, or `unreleased`; `InvalidSettingError` for a value that is not a tag."""
    text = (env_text(RELEASE_ENV, environ=environ) or "").strip()
    if not text:
        return UNRELEASED
    if not _RELEASE_PATTERN.fullmatch(text):
        raise InvalidSettingError(
            RELEASE_ENV, text, "expected a git commit, tag or image tag (letters, digits, ._/+-)"
        )
    return text


def describe_release() -> str:
    return f"{package_version()} (release {release_tag()})"
