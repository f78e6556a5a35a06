"""Configuration from environment variables, with defaults that reach the project-local database.

The variable names are the ones the catalogue pipeline already uses, so deployments need no
translation. Passwords are held in `DatabaseSettings` but never rendered: `repr` hides them and
`describe` leaves them out.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from idminter_pipeline.core.errors import InvalidSettingError

# Each checkout's project-local servers (`idminter_pipeline.local_servers`) listen on ports of
# their own, derived from the folder holding their data, so two clones on one machine never share
# a database: MariaDB on an even port from 20000 to 29998, MySQL (`make test-mysql`) on the odd
# one above it. The range is below Linux's ephemeral ports (32768-60999), which the tests'
# private servers and every client connection take, and away from MySQL's usual 3306.
LOCAL_PORT_BASE = 20_000
LOCAL_PORT_PAIRS = 5_000
LOCAL_DATABASE_USER = "id_minter"
LOCAL_DATABASE_PASSWORD = "id_minter"  # a throwaway local default; production uses secrets
DEFAULT_DATABASE_NAME = "identifiers"


MAX_PORT = 65_535


def environment(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """`environ` when given (a test's, a Lambda's), else the process environment."""
    return os.environ if environ is None else environ


def env_text(
    name: str, default: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The text of variable `name`; `default` when it is unset or empty."""
    return environment(environ).get(name) or default


def env_int(
    env: Mapping[str, str] | None,
    name: str,
    default: int,
    *,
    minimum: int,
    maximum: int | None = None,
) -> int:
    """The integer in variable `name` (default when unset or empty), or an error naming both.

    Only decimal integers are accepted: `3391.0` or `0x0d3f` are refused, not rounded or guessed.
    """
    text = environment(env).get(name)
    if text is None or not text.strip():
        return default
    stripped = text.strip()
    digits = stripped.removeprefix("-").removeprefix("+")
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        raise InvalidSettingError(name, text, f"expected a whole number {bounds}")
    value = int(stripped)
    if value < minimum or (maximum is not None and value > maximum):
        raise InvalidSettingError(name, text, f"expected a whole number {bounds}")
    return value


def env_seconds(
    env: Mapping[str, str] | None, name: str, default: float, *, maximum: float
) -> float:
    """The number of seconds in variable `name`, from 0 to `maximum` (fractions allowed;
    default when unset or empty), or an error naming both."""
    text = environment(env).get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= maximum:
        raise InvalidSettingError(name, text, f"expected seconds from 0 to {maximum:g}")
    return value


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def env_flag(name: str, environ: Mapping[str, str] | None = None, *, default: bool = False) -> bool:
    """Whether switch `name` is on: 1/true/yes/on, or 0/false/no/off (any case; `default` when
    unset or empty); anything else is refused, naming it."""
    text = environment(environ).get(name, "").strip()
    if not text:
        return default
    if text.lower() in FALSE_WORDS:
        return False
    if text.lower() in TRUE_WORDS:
        return True
    raise InvalidSettingError(name, text, "expected 1, true, yes or on (or 0, false, no, off)")


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def local_state_dir() -> Path:
    """Git-ignored folder for the local database, Dagster home and sample stores."""
    return Path(env_text("IDMINTER_LOCAL_DIR") or project_root() / ".local")


def local_database_port(*, mysql: bool = False) -> int:
    """This checkout's project-local server port: stable for its folder, another for another."""
    folder = str(local_state_dir().resolve()).encode()
    pair = int.from_bytes(hashlib.sha256(folder).digest()[:4], "big") % LOCAL_PORT_PAIRS
    return LOCAL_PORT_BASE + 2 * pair + (1 if mysql else 0)


@dataclass(frozen=True)
class DatabaseSettings:
    host: str = "127.0.0.1"
    port: int = field(default_factory=local_database_port)
    username: str = LOCAL_DATABASE_USER
    password: str = field(default=LOCAL_DATABASE_PASSWORD, repr=False)
    database: str = DEFAULT_DATABASE_NAME
    # When set, username and password come from this AWS Secrets Manager secret on every connect.
    secret_name: str | None = None
    aws_region: str | None = None
    connect_timeout: int = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DatabaseSettings:
        env = environment(environ)
        defaults = cls()
        return cls(
            host=env.get("RDS_PRIMARY_HOST") or defaults.host,
            port=env_int(env, "RDS_PORT", defaults.port, minimum=1, maximum=MAX_PORT),
            username=env.get("RDS_USERNAME") or defaults.username,
            password=env.get("RDS_PASSWORD", defaults.password),
            database=env.get("IDENTIFIERS_DATABASE") or defaults.database,
            secret_name=env.get("RDS_SECRET_NAME") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    def with_database(self, database: str) -> DatabaseSettings:
        return DatabaseSettings(**{**self.__dict__, "database": database})

    def as_environment(self) -> dict[str, str]:
        """The variables `from_env` reads these settings back from, for a child process (a CLI
        run, a worker, a container). The password is in it: never log the result."""
        return {
            "RDS_PRIMARY_HOST": self.host,
            "RDS_PORT": str(self.port),
            "RDS_USERNAME": self.username,
            "RDS_PASSWORD": self.password,
            "IDENTIFIERS_DATABASE": self.database,
        }

    def describe(self) -> str:
        """Where this connects, for logs and errors: never the password."""
        who = f"secret {self.secret_name!r}" if self.secret_name else f"user {self.username!r}"
        return f"{self.host}:{self.port}/{self.database} as {who}"


@dataclass(frozen=True)
class ElasticsearchSettings:
    source_index_prefix: str = "works-source"
    target_index_prefix: str = "works-identified"
    pipeline_date: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ElasticsearchSettings:
        env = environment(environ)
        defaults = cls()
        return cls(
            source_index_prefix=env.get("ES_SOURCE_INDEX_PREFIX") or defaults.source_index_prefix,
            target_index_prefix=env.get("ES_TARGET_INDEX_PREFIX") or defaults.target_index_prefix,
            pipeline_date=env.get("PIPELINE_DATE") or None,
        )

    def _index(self, prefix: str) -> str:
        return f"{prefix}-{self.pipeline_date}" if self.pipeline_date else prefix

    @property
    def source_index(self) -> str:
        return self._index(self.source_index_prefix)

    @property
    def target_index(self) -> str:
        return self._index(self.target_index_prefix)
