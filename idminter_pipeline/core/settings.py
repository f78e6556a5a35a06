"""Configuration from environment variables, with defaults that reach the project-local database.

The variable names are the ones the catalogue pipeline already uses, so deployments need no
translation. Passwords are held in `DatabaseSettings` but never rendered: `repr` hides them and
`describe` leaves them out.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
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
# The registry connections every path together may hold: the defaults of the two paths (10
# Lambda invocations x 2, and Dagster's 40) with room for people and tools.
DEFAULT_MAX_CONNECTIONS = 64


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
    # The most registry connections every path together may hold (the port's name).
    max_connections: int = DEFAULT_MAX_CONNECTIONS

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
            max_connections=check_port_settings(env),
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
    """The two indices: `<prefix>-<date>`, each date its own suffix (the reference port's
    `ES_SOURCE_INDEX_DATE_SUFFIX`, `ES_TARGET_INDEX_DATE_SUFFIX`: in production the source and
    identified indices are rebuilt on different days) or else `PIPELINE_DATE`."""

    source_index_prefix: str = "works-source"
    target_index_prefix: str = "works-identified"
    pipeline_date: str | None = None
    source_date_suffix: str | None = None
    target_date_suffix: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ElasticsearchSettings:
        env = environment(environ)
        defaults = cls()
        return cls(
            source_index_prefix=env.get("ES_SOURCE_INDEX_PREFIX") or defaults.source_index_prefix,
            target_index_prefix=env.get("ES_TARGET_INDEX_PREFIX") or defaults.target_index_prefix,
            pipeline_date=env.get("PIPELINE_DATE") or None,
            source_date_suffix=env.get("ES_SOURCE_INDEX_DATE_SUFFIX") or None,
            target_date_suffix=env.get("ES_TARGET_INDEX_DATE_SUFFIX") or None,
        )

    @staticmethod
    def _index(prefix: str, date: str | None) -> str:
        return f"{prefix}-{date}" if date else prefix

    @property
    def source_index(self) -> str:
        return self._index(self.source_index_prefix, self.source_date_suffix or self.pipeline_date)

    @property
    def target_index(self) -> str:
        return self._index(self.target_index_prefix, self.target_date_suffix or self.pipeline_date)


# --- The Lambda's run reports and find-work batches (S3) -------------------------------------

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*")


def env_bucket(env: Mapping[str, str], name: str) -> str | None:
    """The S3 bucket name in variable `name` (None when unset or empty), or an error naming it."""
    text = (env.get(name) or "").strip()
    if not text:
        return None
    if not _BUCKET_NAME.fullmatch(text) or ".." in text:
        raise InvalidSettingError(name, text, "expected an S3 bucket name (3-63 of a-z 0-9 . -)")
    return text


def env_key_prefix(env: Mapping[str, str], name: str, default: str) -> str:
    """An S3 key prefix of safe characters and `/`-separated segments (no leading, trailing or
    doubled `/`, no `.`/`..` segment), or an error naming the variable."""
    text = env.get(name)
    if text is None or not text.strip():
        return default
    stripped = text.strip()
    segments = stripped.split("/")
    if not _KEY_PREFIX.fullmatch(stripped) or any(s in (".", "..") for s in segments):
        raise InvalidSettingError(
            name,
            text,
            "expected an S3 key prefix: segments of A-Z a-z 0-9 ! _ . * ' ( ) - joined by /",
        )
    return stripped


@dataclass(frozen=True)
class RunReportSettings:
    """Where the Lambda writes each Step Functions run's report, as the reference port does:
    `s3://S3_BUCKET/pipeline-PIPELINE_DATE/PIPELINE_STEP/S3_PREFIX/<job id>.json`. Without
    `S3_BUCKET` no report is written (`report_s3_uri` is null)."""

    bucket: str | None = None
    prefix: str = "dev"
    pipeline_date: str = "dev"
    step_label: str = "id_minter"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunReportSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            bucket=env_bucket(env, "S3_BUCKET"),
            prefix=env_key_prefix(env, "S3_PREFIX", defaults.prefix),
            pipeline_date=env_key_prefix(env, "PIPELINE_DATE", defaults.pipeline_date),
            step_label=env_key_prefix(env, "PIPELINE_STEP", defaults.step_label),
        )

    def report_key(self, job_id: str) -> str:
        return f"pipeline-{self.pipeline_date}/{self.step_label}/{self.prefix}/{job_id}.json"


# --- The reference port's settings -------------------------------------------------------------

# The port's settings this project has no use for, each refused (unless at a value that asks for
# nothing) naming what replaces it, so a deployment carried over from the port is never half
# understood.
_PORT_TABLE_NAMES = {
    "IDENTIFIERS_TABLE_NAME": "identifiers",
    "CANONICAL_IDS_TABLE_NAME": "canonical_ids",
}
_FALSE = ("", "false", "0", "no")


def check_port_settings(env: Mapping[str, str]) -> int:
    """Refuse each reference-port setting this project does not honour, naming its
    replacement; `RDS_MAX_CONNECTIONS`, which it does."""
    replica = (env.get("RDS_REPLICA_HOST") or "").strip()
    primary = (env.get("RDS_PRIMARY_HOST") or "").strip()
    if replica and replica != primary:
        raise InvalidSettingError(
            "RDS_REPLICA_HOST",
            replica,
            "every registry read goes to the writer, RDS_PRIMARY_HOST (a replica's lag could "
            "answer a lookup with a mapping that is not there yet); unset it",
        )
    for name, table in _PORT_TABLE_NAMES.items():
        value = (env.get(name) or "").strip()
        if value and value != table:
            raise InvalidSettingError(
                name,
                value,
                f"the schema's table is {table!r} (sql/ migrations); to use another registry, "
                "point IDENTIFIERS_DATABASE at its database",
            )
    if (env.get("ID_GENERATOR_DESIRED_FREE_IDS_COUNT") or "").strip():
        raise InvalidSettingError(
            "ID_GENERATOR_DESIRED_FREE_IDS_COUNT",
            env["ID_GENERATOR_DESIRED_FREE_IDS_COUNT"],
            "set IDMINTER_POOL_TARGET_FREE instead (the free IDs a pool top-up leaves)",
        )
    if (env.get("APPLY_MIGRATIONS") or "").strip().lower() not in _FALSE:
        raise InvalidSettingError(
            "APPLY_MIGRATIONS",
            env["APPLY_MIGRATIONS"],
            "migrations are applied by `idminter db migrate` (or the registry_schema asset), "
            "never by a minting process; unset it",
        )
    return env_int(env, "RDS_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, minimum=1, maximum=100_000)


# --- Find-work batches and the registry's connection budget -----------------------------------

# What one minter Lambda invocation holds at most: the minter's connection and a full run's
# checkpoints.
CONNECTIONS_PER_INVOCATION = 2
DEFAULT_LAMBDA_CONCURRENCY = 10
# Dagster's share: its run queue's limit (deploy/dagster.yaml: 20 runs) x 2 connections a run.
DEFAULT_DAGSTER_CONNECTIONS = 40


@dataclass(frozen=True)
class ConnectionBudget:
    """The registry connections each path may hold, which together must stay within
    `RDS_MAX_CONNECTIONS`: the minter Lambda's concurrency (every invocation, from the state
    machines or the queue) x `CONNECTIONS_PER_INVOCATION`, plus Dagster's share."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    lambda_concurrency: int = DEFAULT_LAMBDA_CONCURRENCY
    dagster_connections: int = DEFAULT_DAGSTER_CONNECTIONS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnectionBudget:
        env = os.environ if environ is None else environ
        budget = cls(
            max_connections=DatabaseSettings.from_env(env).max_connections,
            lambda_concurrency=env_int(
                env, "IDMINTER_LAMBDA_CONCURRENCY", DEFAULT_LAMBDA_CONCURRENCY, minimum=1
            ),
            dagster_connections=env_int(
                env, "IDMINTER_DAGSTER_REGISTRY_CONNECTIONS", DEFAULT_DAGSTER_CONNECTIONS, minimum=0
            ),
        )
        if budget.total > budget.max_connections:
            raise InvalidSettingError(
                "RDS_MAX_CONNECTIONS",
                str(budget.max_connections),
                f"the paths may hold {budget.total}: IDMINTER_LAMBDA_CONCURRENCY "
                f"{budget.lambda_concurrency} x {CONNECTIONS_PER_INVOCATION} + "
                f"IDMINTER_DAGSTER_REGISTRY_CONNECTIONS {budget.dagster_connections}; raise it or "
                "lower one of them",
            )
        return budget

    @property
    def lambda_connections(self) -> int:
        return self.lambda_concurrency * CONNECTIONS_PER_INVOCATION

    @property
    def total(self) -> int:
        return self.lambda_connections + self.dagster_connections


# At most one registry transaction's works (core.limits.MAX_BATCH_SIZE): a batch is minted in
# about a second per thousand sample works, far inside the Lambda's 300 s, in under 200 MB.
DEFAULT_FIND_WORK_BATCH_SIZE = 5_000
MAX_FIND_WORK_BATCH_SIZE = 5_000


@dataclass(frozen=True)
class FindWorkSettings:
    """Where the find-work step writes a run's batches (`IDMINTER_BATCHES_BUCKET`, under
    `IDMINTER_BATCHES_PREFIX`), at most how many works each holds, and how long an execution's
    hold on its window lasts if it never releases it."""

    bucket: str
    prefix: str = "find_work"
    batch_size: int = DEFAULT_FIND_WORK_BATCH_SIZE
    lock_seconds: int = 86_400

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FindWorkSettings:
        env = os.environ if environ is None else environ
        bucket = env_bucket(env, "IDMINTER_BATCHES_BUCKET")
        if bucket is None:
            raise InvalidSettingError(
                "IDMINTER_BATCHES_BUCKET", "", "the find-work step needs a bucket for its batches"
            )
        return cls(
            bucket=bucket,
            prefix=env_key_prefix(env, "IDMINTER_BATCHES_PREFIX", cls.prefix),
            batch_size=env_int(
                env,
                "IDMINTER_FIND_WORK_BATCH_SIZE",
                DEFAULT_FIND_WORK_BATCH_SIZE,
                minimum=1,
                maximum=MAX_FIND_WORK_BATCH_SIZE,
            ),
            lock_seconds=env_int(
                env, "IDMINTER_WINDOW_LOCK_SECONDS", cls.lock_seconds, minimum=60, maximum=604_800
            ),
        )
