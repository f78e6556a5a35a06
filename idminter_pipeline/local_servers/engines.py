"""How a project-local server is laid out and started: its folder (`LocalServerPaths`) and its
kind (`ServerEngine`: Debian's MariaDB here, MySQL 9 in `local_servers.mysql`).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from idminter_pipeline.core.errors import IdMinterError
from idminter_pipeline.core.settings import local_state_dir

# Unix socket paths are limited to 107 bytes; deep checkouts fall back to /tmp.
MAX_SOCKET_PATH = 100


class LocalDatabaseError(IdMinterError):
    """The local server could not be provided; the message says what to do instead."""


class ServerEngine(Protocol):
    """How one kind of server is initialized and started: Debian's MariaDB (`MARIADB`, the
    default) or the project-local MySQL of `local_servers.mysql` (`make test-mysql`).

    `server_command()` is the command line up to the server's options (installing the server if
    it can), `server_options()` what this kind needs beyond the common options, `initialize`
    creates the data directory, whose administrator `admin_user()` logs in over the socket with
    no password. `tree` is a folder of its own the server reads after it drops to its system
    user (None: the system's folders)."""

    name: str  # the server program, as messages and file names say it

    @property
    def tree(self) -> Path | None: ...
    def server_command(self) -> list[str]: ...
    def server_options(self) -> list[str]: ...
    def initialize(self, paths: LocalServerPaths, user_flag: list[str]) -> None: ...
    def admin_user(self) -> str: ...


class MariadbEngine:
    """Debian's mariadb-server, installed with apt-get when missing and root may."""

    name = "mariadbd"
    tree = None

    def server_command(self) -> list[str]:
        server = _binary("mariadbd", "mysqld")
        if server is None:
            _install_mariadb()
            server = _binary("mariadbd", "mysqld")
            if server is None:
                raise LocalDatabaseError("mariadb-server installed but mariadbd was not found")
        return [server]

    def server_options(self) -> list[str]:
        return ["--innodb-log-file-size=512M"]

    def initialize(self, paths: LocalServerPaths, user_flag: list[str]) -> None:
        _initialize(paths, user_flag)

    def admin_user(self) -> str:
        # `mariadb-install-db` lets the system user who ran it in by socket credentials.
        return pwd.getpwuid(os.geteuid()).pw_name


MARIADB = MariadbEngine()


@dataclass(frozen=True)
class LocalServerPaths:
    base: Path
    engine: ServerEngine = MARIADB

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def tmp_dir(self) -> Path:
        # On-disk temporary tables live here, not in a shared /tmp that others may clean.
        return self.base / "tmp"

    @property
    def pid_file(self) -> Path:
        return self.base / f"{self.engine.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.base / f"{self.engine.name}.log"

    @property
    def files_dir(self) -> Path:
        # secure_file_priv: the only folder INTO OUTFILE and LOAD DATA INFILE may use.
        return self.base / "files"

    @property
    def socket(self) -> Path:
        socket = self.base / f"{self.engine.name}.sock"
        if len(str(socket)) > MAX_SOCKET_PATH:
            digest = hashlib.sha256(str(self.base).encode()).hexdigest()[:12]
            return Path("/tmp") / f"idminter-{digest}.sock"
        return socket

    @classmethod
    def default(cls) -> LocalServerPaths:
        return cls(local_state_dir() / "mariadb")


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
            # Its own temporary folder, as the server has: bootstraps run side by side (parallel
            # test workers) and their temporary tables must not meet in a shared /tmp.
            f"--tmpdir={paths.tmp_dir}",
            *user_flag,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(paths.data_dir, ignore_errors=True)
        raise LocalDatabaseError(f"mariadb-install-db failed:\n{result.stderr[-2000:]}")
