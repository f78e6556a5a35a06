"""A database account behind a Secrets Manager secret, rotated as Secrets Manager rotates it.

Secrets Manager rotates a database secret in four steps (its RDS rotation functions): put the
new password as `AWSPENDING`, set it on the database (`ALTER USER`), test it, then move
`AWSCURRENT` to it. `RotatingAccount` does the first two in `start_rotation` and the fourth in
`finish_rotation`, on a real account of the test server, with moto's Secrets Manager; each ends
the account's open sessions, so the process under test has to connect again at the worst moment
(an idle timeout, a failover or a connection pool would make it do so in production).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import pymysql
from db_helpers import secret_settings, server_admin_connection

from idminter_pipeline.core.settings import DatabaseSettings

HOSTS = ("localhost", "127.0.0.1")


@dataclass
class RotatingAccount:
    settings: DatabaseSettings  # the secret's settings (RDS_SECRET_NAME), as deployments use
    user: str
    secret_name: str
    secret_arn: str
    server: DatabaseSettings
    secrets: object
    admin: pymysql.connections.Connection  # may alter users and end their sessions

    def _admin(self, sql: str, params: tuple = ()) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(sql, params)

    def start_rotation(self) -> str:
        """Steps one and two: the new password as AWSPENDING, then on the database; the open
        sessions are ended, so every process reconnects while AWSCURRENT is stale."""
        password = f"pw-{uuid.uuid4().hex}"
        token = str(uuid.uuid4())
        self.secrets.put_secret_value(
            SecretId=self.secret_name,
            ClientRequestToken=token,
            SecretString=json.dumps({"username": self.user, "password": password}),
            VersionStages=["AWSPENDING"],
        )
        for host in HOSTS:
            self._admin("ALTER USER %s@%s IDENTIFIED BY %s", (self.user, host, password))
        self.end_sessions()
        return token

    def finish_rotation(self, token: str) -> None:
        """Step four: AWSCURRENT moves to the new version (AWSPENDING goes with it)."""
        versions = self.secrets.describe_secret(SecretId=self.secret_name)["VersionIdsToStages"]
        (current,) = [v for v, stages in versions.items() if "AWSCURRENT" in stages]
        self.secrets.update_secret_version_stage(
            SecretId=self.secret_name,
            VersionStage="AWSCURRENT",
            MoveToVersionId=token,
            RemoveFromVersionId=current,
        )
        self.secrets.update_secret_version_stage(
            SecretId=self.secret_name, VersionStage="AWSPENDING", RemoveFromVersionId=token
        )
        self.end_sessions()

    def end_sessions(self) -> int:
        with self.admin.cursor() as cursor:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (self.user,)
            )
            ids = [row[0] for row in cursor.fetchall()]
            for session in ids:
                # A session may have ended by itself meanwhile (unknown thread id).
                with suppress(pymysql.err.OperationalError):
                    cursor.execute("KILL %s", (session,))
        return len(ids)

    def environment(self) -> dict[str, str]:
        return {
            "RDS_PRIMARY_HOST": self.settings.host,
            "RDS_PORT": str(self.settings.port),
            "IDENTIFIERS_DATABASE": self.settings.database,
            "RDS_SECRET_NAME": self.secret_name,
            "RDS_USERNAME": "",
            "RDS_PASSWORD": "",
        }


@contextmanager
def rotating_account(database: DatabaseSettings, secrets: object) -> Iterator[RotatingAccount]:
    """A new account with every privilege on `database`, its password in a new secret; dropped
    on exit."""
    user = f"idminter_rot_{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    conn = server_admin_connection(database)
    try:
        with conn.cursor() as cursor:
            for host in HOSTS:
                cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
                cursor.execute(f"GRANT ALL ON `{database.database}`.* TO %s@%s", (user, host))
        name = f"idminter/registry-{uuid.uuid4().hex}"
        arn = secrets.create_secret(
            Name=name, SecretString=json.dumps({"username": user, "password": password})
        )["ARN"]
        yield RotatingAccount(
            secret_settings(database, name), user, name, arn, database, secrets, conn
        )
    finally:
        with conn.cursor() as cursor:
            for host in HOSTS:
                cursor.execute("DROP USER IF EXISTS %s@%s", (user, host))
        conn.close()
