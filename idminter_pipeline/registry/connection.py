"""Connections to the registry database, with credentials from settings or AWS Secrets Manager.

With `RDS_SECRET_NAME` set, the secret is read on every connect (never cached), because Secrets
Manager rotates it: a connect refused with "access denied" is tried once with the `AWSPENDING`
version (the rotation may have switched the database user first) and then once more with a fresh
`AWSCURRENT` (the rotation may have finished in between).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import pymysql
import pymysql.cursors
from pymysql.constants import ER
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from idminter_pipeline.core import strict_json
from idminter_pipeline.core.errors import (
    RegistryUnavailableError,
    RegistryUnreachableError,
    StatementTooLargeError,
)
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import DatabaseSettings

logger = logging.getLogger(__name__)
# botocore logs whole response bodies at DEBUG, and a GetSecretValue body is the secret itself:
# keep that logger above DEBUG whatever the application's logging configuration says.
logging.getLogger("botocore.parsers").setLevel(logging.INFO)

Connection = pymysql.connections.Connection
ConnectionFactory = Callable[[], Connection]

# Where the session's max_allowed_packet is cached on a connection (one value per session).
MAX_ALLOWED_PACKET_ATTRIBUTE = "_idminter_max_allowed_packet"
# A statement of at least this many bytes (counted as 4 per character until measured) on a
# connection whose limit is not known yet has the limit read first. Smaller statements are sent
# without it: no server runs below this, and most connections (the sensor's, a checkpoint's)
# never send anything larger, so they never spend a statement on it.
UNSIZED_STATEMENT_BYTES = 16 * 1024


def session_max_allowed_packet(conn: Connection) -> int:
    """The session's `max_allowed_packet`, read once per connection and cached on it."""
    cached = getattr(conn, MAX_ALLOWED_PACKET_ATTRIBUTE, None)
    if cached is not None:
        return int(cached)
    with conn.cursor() as cursor:
        cursor.execute("SELECT @@SESSION.max_allowed_packet")
        (value,) = cursor.fetchone()
    setattr(conn, MAX_ALLOWED_PACKET_ATTRIBUTE, int(value))
    return int(value)


_PREFERRED_TLS: list[ssl.SSLContext] = []


def _preferred_tls_context(
    create: Callable[[dict[str, Any]], ssl.SSLContext],
) -> ssl.SSLContext:
    """pymysql's context for its "preferred" TLS mode, built once per process (an SSLContext
    is safe to share between connections and threads)."""
    if not _PREFERRED_TLS:
        _PREFERRED_TLS.append(create({}))
    return _PREFERRED_TLS[0]


class RegistryConnection(pymysql.connections.Connection):
    """A pymysql connection that never sends a statement larger than the server accepts. Sent,
    such a statement gets error 1153, or the server drops the connection instead ("gone away",
    2006/2013: MySQL does, and so does MariaDB for a statement sent in several packets), which
    would be taken for an outage and sent again until the outage bound ran out. Refused here, it
    raises `StatementTooLargeError`, which is not an outage.

    The limit is the session's (`session_max_allowed_packet`): the minter reads it when it sets
    its session up (`registry.packets`), so its statements are cut to fit; any other connection
    reads it before its first large statement, so a statement nobody sized (a pool top-up batch
    on a small-packet server) fails at once, naming the limit, instead of riding out an outage.
    """

    def _create_ssl_ctx(self, sslp: dict[str, Any] | ssl.SSLContext) -> ssl.SSLContext:
        # With no TLS option given, pymysql offers TLS when the server supports it (its
        # "preferred" mode) with a context that verifies nothing, yet it builds that context
        # for every connection, loading the system's CA certificates each time: about 65 ms of
        # CPU per connection. Every such context is the same, so one serves them all.
        if sslp == {}:
            return _preferred_tls_context(super()._create_ssl_ctx)
        return super()._create_ssl_ctx(sslp)

    def query(self, sql: str | bytes, unbuffered: bool = False) -> int:
        limit = getattr(self, MAX_ALLOWED_PACKET_ATTRIBUTE, None)
        # Only a large statement is measured: the test costs one length comparison.
        if len(sql) * 4 >= (limit if limit is not None else UNSIZED_STATEMENT_BYTES):
            if limit is None:
                limit = session_max_allowed_packet(self)
            size = len(sql.encode(self.encoding) if isinstance(sql, str) else sql)
            if size >= limit:
                raise StatementTooLargeError(size, limit)
        return super().query(sql, unbuffered)


# Strict mode turns silent truncation into errors on both MySQL 8 and MariaDB; UTC keeps
# TIMESTAMP columns comparable across servers and clients in any zone.
SESSION_SETUP = (
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'"
)

_UNREACHABLE_CODES = frozenset({2002, 2003, 2006, 2013})


def _is_unreachable(error: BaseException) -> bool:
    return isinstance(error, pymysql.err.OperationalError) and error.args[0] in _UNREACHABLE_CODES


def _is_access_denied(error: BaseException) -> bool:
    return (
        isinstance(error, pymysql.err.OperationalError) and error.args[0] == ER.ACCESS_DENIED_ERROR
    )


def _secrets_client_config() -> Any:
    """An unreachable Secrets Manager fails a connect in seconds, not after botocore's default
    60-second connect timeout times its retries."""
    import botocore.config  # noqa: PLC0415  (imported with boto3, only when a secret is read)

    return botocore.config.Config(
        connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}
    )


@cache
def _secrets_client(region: str | None) -> Any:
    import boto3  # noqa: PLC0415  (only deployments with RDS_SECRET_NAME pay for the import)

    return boto3.client("secretsmanager", region_name=region, config=_secrets_client_config())


def _get_secret_value(secret_name: str, stage: str, region: str | None) -> Any:
    """The GetSecretValue response, or one line naming the secret, the endpoint and the cause."""
    import botocore.exceptions  # noqa: PLC0415  (imported with boto3, only when a secret is read)

    endpoint = f"Secrets Manager (region {region or 'unset'})"
    try:
        client = _secrets_client(region)
        endpoint = client.meta.endpoint_url
        return client.get_secret_value(SecretId=secret_name, VersionStage=stage)
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        reason = f"{details.get('Code', 'error')}: {excerpt(details.get('Message', ''))}"
    except (botocore.exceptions.BotoCoreError, ValueError) as error:
        # No credentials, no region, an unreachable endpoint, an endpoint botocore cannot even
        # build: its one-line message, not the traceback of its HTTP stack.
        reason = f"{type(error).__name__}: {excerpt(str(error))}"
    raise RegistryUnavailableError(
        f"cannot read secret {excerpt(secret_name)} ({stage}) from {endpoint}: {reason}"
    )


def read_secret_credentials(
    secret_name: str, *, stage: str = "AWSCURRENT", region: str | None = None
) -> tuple[str, str]:
    """`(username, password)` from a Secrets Manager secret in the RDS JSON format."""
    response = _get_secret_value(secret_name, stage, region)
    try:
        # Strictly: a secret naming "password" twice must not silently mean the last one.
        secret = strict_json.loads(response["SecretString"], what=f"secret {secret_name!r}")
        return secret["username"], secret["password"]
    except (KeyError, TypeError, ValueError):
        # Never what the secret holds, not even in a chained exception (a JSON error quotes
        # the text it could not parse).
        raise RegistryUnavailableError(
            f"secret {excerpt(secret_name)} ({stage}) is not JSON with 'username' and "
            "'password' keys, each given once"
        ) from None


def _open(settings: DatabaseSettings, username: str, password: str) -> Connection:
    return RegistryConnection(
        host=settings.host,
        port=settings.port,
        user=username,
        password=password,
        database=settings.database or None,
        charset="utf8mb4",
        autocommit=False,
        connect_timeout=settings.connect_timeout,
        init_command=SESSION_SETUP,
    )


def _open_with_secret(settings: DatabaseSettings) -> Connection:
    assert settings.secret_name is not None
    name, region = settings.secret_name, settings.aws_region
    username, password = read_secret_credentials(name, region=region)
    try:
        return _open(settings, username, password)
    except pymysql.err.OperationalError as error:
        if not _is_access_denied(error):
            raise
    logger.info("access denied with %s AWSCURRENT; trying AWSPENDING", name)
    try:
        username, password = read_secret_credentials(name, stage="AWSPENDING", region=region)
        return _open(settings, username, password)
    except pymysql.err.OperationalError as error:
        if not _is_access_denied(error):
            raise
    except Exception as error:  # no AWSPENDING version outside a rotation
        logger.info("no usable AWSPENDING version of %s: %s", name, type(error).__name__)
    logger.info("trying a fresh AWSCURRENT of %s", name)
    username, password = read_secret_credentials(name, region=region)
    return _open(settings, username, password)


@retry(
    retry=retry_if_exception(_is_unreachable),
    stop=stop_after_attempt(4),
    wait=wait_exponential_jitter(multiplier=0.2, max=3, jitter=0.2),
    reraise=True,
)
def _connect_with_retries(settings: DatabaseSettings) -> Connection:
    if settings.secret_name:
        return _open_with_secret(settings)
    return _open(settings, settings.username, settings.password)


def connect(settings: DatabaseSettings | None = None) -> Connection:
    """A new connection (autocommit off, utf8mb4, strict mode, UTC), or a clear error."""
    settings = settings or DatabaseSettings.from_env()
    try:
        return _connect_with_retries(settings)
    except pymysql.err.OperationalError as error:
        code, message = (*error.args, "")[:2]
        # An unreachable server is an outage callers ride out (registry.outage); refused
        # credentials are not.
        unavailable = (
            RegistryUnreachableError if _is_unreachable(error) else RegistryUnavailableError
        )
        raise unavailable(
            f"cannot connect to the registry at {settings.describe()}: ({code}) {message}"
        ) from None


def connection_factory(settings: DatabaseSettings | None = None) -> ConnectionFactory:
    settings = settings or DatabaseSettings.from_env()
    return lambda: connect(settings)


@contextmanager
def connection(settings: DatabaseSettings | None = None) -> Iterator[Connection]:
    """A connection that is closed on exit (rolled back if not committed)."""
    conn = connect(settings)
    try:
        yield conn
    finally:
        conn.close()
