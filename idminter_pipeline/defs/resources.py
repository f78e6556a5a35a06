"""Dagster resources. Secrets are read through `EnvVar`, so the UI shows names, never values."""

from __future__ import annotations

import dagster as dg

from idminter_pipeline.core.settings import DatabaseSettings, env_text
from idminter_pipeline.registry.connection import Connection, ConnectionFactory, connect

# The concurrency pool of every asset and op that writes to the registry: the instance's
# `concurrency > pools` bounds how many run at once (deploy/dagster.yaml).
REGISTRY_POOL = "registry"


class RegistryDatabase(dg.ConfigurableResource):
    """The registry (Aurora MySQL in production, the project-local MariaDB by default)."""

    host: str
    port: int
    username: str
    password: str
    database: str
    secret_name: str | None = None
    aws_region: str | None = None

    def settings(self) -> DatabaseSettings:
        return DatabaseSettings(**{name: getattr(self, name) for name in _DATABASE_FIELDS})

    def connect(self) -> Connection:
        return connect(self.settings())

    def connection_factory(self) -> ConnectionFactory:
        settings = self.settings()
        return lambda: connect(settings)

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> RegistryDatabase:
        return cls(**{name: getattr(settings, name) for name in _DATABASE_FIELDS})


# What the resource holds of `DatabaseSettings` (not the connect timeout).
_DATABASE_FIELDS = ("host", "port", "username", "password", "database", "secret_name", "aws_region")


def env_var(name: str, default: str | None = None) -> str | None:
    """`EnvVar(name)` when the variable is set (not empty), so the UI and run config show its
    name, never its value; else `default`."""
    return dg.EnvVar(name) if env_text(name) else default  # type: ignore[return-value]


def registry_database_from_env() -> RegistryDatabase:
    defaults = DatabaseSettings.from_env()
    return RegistryDatabase(
        host=defaults.host,
        port=defaults.port,
        username=env_var("RDS_USERNAME", defaults.username),
        password=env_var("RDS_PASSWORD", defaults.password),
        database=defaults.database,
        secret_name=defaults.secret_name,
        aws_region=defaults.aws_region,
    )
