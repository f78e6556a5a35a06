"""Dagster resources. Secrets are read through `EnvVar`, so the UI shows names, never values."""

from __future__ import annotations

import os

import dagster as dg

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import Connection, ConnectionFactory, connect


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
        return DatabaseSettings(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            database=self.database,
            secret_name=self.secret_name,
            aws_region=self.aws_region,
        )

    def connect(self) -> Connection:
        return connect(self.settings())

    def connection_factory(self) -> ConnectionFactory:
        settings = self.settings()
        return lambda: connect(settings)

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> RegistryDatabase:
        return cls(
            host=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            database=settings.database,
            secret_name=settings.secret_name,
            aws_region=settings.aws_region,
        )


def _env_or_default(name: str, default: str) -> str:
    # EnvVar when the variable is set, so its value never shows in the UI or run config.
    return dg.EnvVar(name) if name in os.environ else default  # type: ignore[return-value]


def registry_database_from_env() -> RegistryDatabase:
    defaults = DatabaseSettings.from_env()
    return RegistryDatabase(
        host=defaults.host,
        port=defaults.port,
        username=_env_or_default("RDS_USERNAME", defaults.username),
        password=_env_or_default("RDS_PASSWORD", defaults.password),
        database=defaults.database,
        secret_name=defaults.secret_name,
        aws_region=defaults.aws_region,
    )
