"""`make test-mysql`: the whole suite against a project-local MySQL 9.x from Debian's archive.

    python -m tools.test_mysql [--port N] [--keep] [pytest arguments...]
    python -m tools.test_mysql --stop
    python -m tools.test_mysql --install-only

1. installs MySQL (`idminter_pipeline.local_servers.mysql`: apt resolves the closure, the .debs are
   cached under .local/apt, unpacked into .local/mysql). When the archive cannot be reached and
   nothing is cached, it says so in one line and exits 0: a failed download is no code failure;
2. starts it as a project-local server (data in .local/mysql-server, this checkout's MySQL port,
   the one above its MariaDB's, and its own socket) and bootstraps `id_minter` exactly as on
   MariaDB;
3. creates a test administrator (a fresh random password each run) for what the application
   user may not do (manage users, read other sessions);
4. runs pytest with RDS_* pointing at it; tests that start private servers start MySQL ones
   (IDMINTER_TEST_SERVER_ENGINE=mysql);
5. stops the server and removes its data (about 1.2 GB, nothing worth keeping: every test
   database is dropped), pass or fail, and exits with pytest's status. `--keep` leaves the
   server running; `--stop` stops a server left running (what `.ci/run` does when it ends).

`--install-only` does step 1 alone (`.ci/run` runs it beside the MariaDB suite, so the download
is done when this suite starts).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
from contextlib import closing
from types import FrameType

from idminter_pipeline.core.settings import DatabaseSettings, local_database_port
from idminter_pipeline.local_servers.mariadb import (
    LocalDatabaseError,
    LocalServerPaths,
    admin_connection,
    ensure_server,
    stop_server,
)
from idminter_pipeline.local_servers.mysql import (
    DEBIAN_ARCHIVE,
    ArchiveUnreachable,
    MysqlInstall,
)

TEST_ADMIN_USER = "idminter_test_admin"
# What the tests' private-server fixtures read to start MySQL instead of MariaDB.
ENGINE_ENV = "IDMINTER_TEST_SERVER_ENGINE"


def _stop_and_remove(paths: LocalServerPaths) -> None:
    """Stop the server and remove its data: a later run initializes it afresh in seconds."""
    stop_server(paths)
    shutil.rmtree(paths.data_dir, ignore_errors=True)


def _exit_on_terminate(signum: int, frame: FrameType | None) -> None:
    # A CI runner ends a job with SIGTERM: leave through `finally`, which stops the server.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=local_database_port(mysql=True),
        help="the server's TCP port (default: this checkout's, the one above its MariaDB's)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the server running")
    parser.add_argument("--stop", action="store_true", help="stop a server left running, only")
    parser.add_argument("--install-only", action="store_true", help="download and unpack, only")
    parser.add_argument("--archive", default=DEBIAN_ARCHIVE, help="a Debian mirror's URL")
    options, pytest_args = parser.parse_known_args(argv)
    install = MysqlInstall.default(options.archive)
    if options.stop:
        _stop_and_remove(install.server_paths)
        return 0
    try:
        install.install()
    except ArchiveUnreachable as error:
        print(f"test-mysql skipped: MySQL could not be installed ({error})")
        return 0
    if options.install_only:
        print(f"MySQL unpacked in {install.tree}")
        return 0
    paths = install.server_paths
    settings = DatabaseSettings(port=options.port)
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    try:
        report = ensure_server(settings, paths, start_local=True)
        for line in report.lines()[:3]:
            print(line)
        admin_password = secrets.token_hex(16)
        with closing(admin_connection(paths)) as admin, admin.cursor() as cursor:
            for host in ("localhost", "127.0.0.1"):
                cursor.execute(
                    "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                    (TEST_ADMIN_USER, host, admin_password),
                )
                cursor.execute(
                    "ALTER USER %s@%s IDENTIFIED BY %s", (TEST_ADMIN_USER, host, admin_password)
                )
                cursor.execute(
                    "GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION",
                    (TEST_ADMIN_USER, host),
                )
            # A server for this run alone, its data removed afterwards: commits synced about
            # once a second, as the suite has them on this checkout's own server, and the
            # binary log (on by default in MySQL, and the triggers' tests need it) left to the
            # system to sync.
            cursor.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 2")
            cursor.execute("SET GLOBAL sync_binlog = 0")
    except LocalDatabaseError as error:
        print(f"error: {error}", file=sys.stderr)
        _stop_and_remove(paths)
        return 1
    env = {
        **os.environ,
        "RDS_PRIMARY_HOST": settings.host,
        "RDS_PORT": str(settings.port),
        "RDS_USERNAME": settings.username,
        "RDS_PASSWORD": settings.password,
        "IDMINTER_TEST_ADMIN_USER": TEST_ADMIN_USER,
        "IDMINTER_TEST_ADMIN_PASSWORD": admin_password,
        ENGINE_ENV: "mysql",
    }
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], env=env, check=False
        ).returncode
    finally:
        if not options.keep:
            _stop_and_remove(paths)


if __name__ == "__main__":
    sys.exit(main())
