"""A project-local MariaDB server, so a fresh machine can run the pipeline and its tests.

`ensure_server` is idempotent: when the configured settings (RDS_* or the local defaults) already
reach a server it uses that one; otherwise it installs Debian's `mariadb-server` if it is missing
(root only), initializes a data directory under `.local/mariadb`, starts `mariadbd` on a private
port and socket, and creates the `id_minter` user and `identifiers` database. When it cannot, it
raises `LocalDatabaseError` whose message says exactly what to do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from idminter_pipeline.errors import IdMinterError
from idminter_pipeline.settings import (
    LOCAL_DATABASE_PASSWORD,
    LOCAL_DATABASE_USER,
    DatabaseSettings,
    local_state_dir,
)

STARTUP_TIMEOUT_SECONDS = 60
SHUTDOWN_TIMEOUT_SECONDS = 60
# Unix socket paths are limited to 107 bytes; deep checkouts fall back to /tmp.
MAX_SOCKET_PATH = 100


class LocalDatabaseError(IdMinterError):
    """The local server could not be provided; the message says what to do instead."""


@dataclass(frozen=True)
class ServerReport:
    kind: str  # "external", "local (already running)" or "local (started)"
    settings: DatabaseSettings
    version: str
    socket: Path | None = None

    def lines(self) -> list[str]:
        lines = [
            f"registry database: {self.kind}, {self.version}",
            f"  reach it at {self.settings.describe()}",
        ]
        if self.socket is not None:
            lines.append(f"  unix socket {self.socket}")
        if self.kind.startswith("local"):
            lines.append(
                "  the defaults need no environment; elsewhere set RDS_PRIMARY_HOST, RDS_PORT, "
                "RDS_USERNAME, RDS_PASSWORD and IDENTIFIERS_DATABASE"
            )
        return lines


@dataclass(frozen=True)
class LocalServerPaths:
    base: Path

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def tmp_dir(self) -> Path:
        # On-disk temporary tables live here, not in a shared /tmp that others may clean.
        return self.base / "tmp"

    @property
    def pid_file(self) -> Path:
        return self.base / "mariadbd.pid"

    @property
    def log_file(self) -> Path:
        return self.base / "mariadbd.log"

    @property
    def socket(self) -> Path:
        socket = self.base / "mariadbd.sock"
        if len(str(socket)) > MAX_SOCKET_PATH:
            digest = hashlib.sha256(str(self.base).encode()).hexdigest()[:12]
            return Path("/tmp") / f"idminter-{digest}.sock"
        return socket

    @classmethod
    def default(cls) -> LocalServerPaths:
        return cls(local_state_dir() / "mariadb")


def _server_version(settings: DatabaseSettings) -> str | None:
    """The server's version if these settings connect, else None."""
    try:
        conn = pymysql.connect(
            host=settings.host,
            port=settings.port,
            user=settings.username,
            password=settings.password,
            connect_timeout=3,
        )
    except pymysql.err.MySQLError:
        return None
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            return str(cursor.fetchone()[0])
    finally:
        conn.close()


def _binary(*names: str) -> str | None:
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if candidate and Path(candidate).is_file():
                return candidate
    return None


def _install_mariadb() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LocalDatabaseError(
            "MariaDB is not installed and this process cannot install it. Either run, as root:\n"
            "    apt-get update && apt-get install -y mariadb-server\n"
            "or point RDS_PRIMARY_HOST, RDS_PORT, RDS_USERNAME and RDS_PASSWORD at a MySQL 8 "
            "or MariaDB server (for example `docker compose up -d mysql`)."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "mariadb-server", "mariadb-client"],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalDatabaseError(
                f"`{' '.join(command)}` failed ({result.returncode}):\n{result.stderr[-2000:]}"
            )


def _pid(paths: LocalServerPaths) -> int | None:
    try:
        pid = int(paths.pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass
    return pid


def _client_sql(paths: LocalServerPaths, sql: str) -> None:
    client = _binary("mariadb", "mysql")
    if client is None:
        raise LocalDatabaseError("the mariadb client is missing: apt-get install mariadb-client")
    result = subprocess.run(
        [client, "--no-defaults", f"--socket={paths.socket}", "-u", "root", "-e", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LocalDatabaseError(f"bootstrapping the local server failed: {result.stderr.strip()}")


def _initialize(paths: LocalServerPaths, user_flag: list[str]) -> None:
    install_db = _binary("mariadb-install-db", "mysql_install_db")
    if install_db is None:
        raise LocalDatabaseError("mariadb-install-db is missing: apt-get install mariadb-server")
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={paths.data_dir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            *user_flag,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(paths.data_dir, ignore_errors=True)
        raise LocalDatabaseError(f"mariadb-install-db failed:\n{result.stderr[-2000:]}")


def _start(paths: LocalServerPaths, port: int) -> None:
    server = _binary("mariadbd", "mysqld")
    if server is None:
        _install_mariadb()
        server = _binary("mariadbd", "mysqld")
        if server is None:
            raise LocalDatabaseError("mariadb-server installed but mariadbd was not found")
    user_flag = ["--user=root"] if os.geteuid() == 0 else []
    if not (paths.data_dir / "mysql").is_dir():
        _initialize(paths, user_flag)
    paths.socket.unlink(missing_ok=True)
    paths.tmp_dir.mkdir(parents=True, exist_ok=True)
    command = [
        server,
        "--no-defaults",
        f"--datadir={paths.data_dir}",
        f"--socket={paths.socket}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--pid-file={paths.pid_file}",
        f"--tmpdir={paths.tmp_dir}",
        f"--log-error={paths.log_file}",
        "--skip-name-resolve",
        "--max-connections=500",
        "--innodb-buffer-pool-size=2G",
        "--innodb-log-file-size=512M",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_bin",
        *user_flag,
    ]
    with open(os.devnull, "wb") as devnull:
        subprocess.Popen(command, stdout=devnull, stderr=devnull, start_new_session=True)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not paths.socket.exists():
        if time.monotonic() > deadline:
            tail = paths.log_file.read_text()[-2000:] if paths.log_file.exists() else ""
            raise LocalDatabaseError(
                f"mariadbd did not start within {STARTUP_TIMEOUT_SECONDS}s; its log:\n{tail}"
            )
        time.sleep(0.2)


def _bootstrap(paths: LocalServerPaths, settings: DatabaseSettings) -> None:
    user, password = settings.username, settings.password.replace("'", "''")
    statements = [f"CREATE DATABASE IF NOT EXISTS `{settings.database}`"]
    for host in ("localhost", "127.0.0.1"):
        statements += [
            f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}'",
            # Everything on this private server: the tests create a database per session.
            f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}' WITH GRANT OPTION",
        ]
    _client_sql(paths, "; ".join(statements))


def ensure_server(
    settings: DatabaseSettings | None = None,
    paths: LocalServerPaths | None = None,
    *,
    start_local: bool | None = None,
) -> ServerReport:
    """Reach the configured server, or start the project-local one; see the module docstring.

    `start_local` defaults to true unless RDS_PRIMARY_HOST or RDS_PORT names another server.
    """
    settings = settings or DatabaseSettings.from_env()
    paths = paths or LocalServerPaths.default()
    if start_local is None:
        start_local = "RDS_PRIMARY_HOST" not in os.environ and "RDS_PORT" not in os.environ
    version = _server_version(settings)
    if version is not None:
        local = _pid(paths) is not None and settings.host in ("127.0.0.1", "localhost")
        kind = "local (already running)" if local else "external"
        return ServerReport(kind, settings, version, paths.socket if local else None)
    if not start_local:
        raise LocalDatabaseError(
            f"the configured registry at {settings.describe()} is not reachable. Start it, fix "
            "the RDS_* settings, or unset RDS_PRIMARY_HOST and RDS_PORT to use a project-local "
            "MariaDB instead."
        )
    if settings.username != LOCAL_DATABASE_USER or settings.password != LOCAL_DATABASE_PASSWORD:
        raise LocalDatabaseError(
            "the local server is created with the default credentials: unset RDS_USERNAME and "
            "RDS_PASSWORD, or create that user yourself"
        )
    if _pid(paths) is None:
        _start(paths, settings.port)
    _bootstrap(paths, settings)
    version = _server_version(settings)
    if version is None:
        raise LocalDatabaseError(
            f"the local server started but {settings.describe()} cannot log in; "
            f"see {paths.log_file}"
        )
    return ServerReport("local (started)", settings, version, paths.socket)


def stop_server(paths: LocalServerPaths | None = None) -> bool:
    """Stop the project-local server; False if it was not running."""
    paths = paths or LocalServerPaths.default()
    pid = _pid(paths)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT_SECONDS
    while _pid(paths) is not None or _process_alive(pid):
        if time.monotonic() > deadline:
            raise LocalDatabaseError(f"mariadbd (pid {pid}) did not stop; see {paths.log_file}")
        time.sleep(0.2)
    return True


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is gone as far as the server is concerned.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def server_status(
    settings: DatabaseSettings | None = None, paths: LocalServerPaths | None = None
) -> tuple[bool, list[str]]:
    """Whether the configured registry is reachable, and lines describing it."""
    settings = settings or DatabaseSettings.from_env()
    paths = paths or LocalServerPaths.default()
    version = _server_version(settings)
    pid = _pid(paths)
    lines = [f"configured registry: {settings.describe()}"]
    lines.append(f"  reachable: {'yes, ' + version if version else 'no'}")
    lines.append(
        f"  project-local mariadbd: {'running, pid ' + str(pid) if pid else 'not running'}"
        f" (data in {paths.data_dir})"
    )
    return version is not None, lines
