"""A project-local MariaDB server, so a fresh machine can run the pipeline and its tests.

`ensure_server` is idempotent. A server the RDS_* settings name is used as it is. Otherwise the
server is this checkout's own: it installs Debian's `mariadb-server` if it is missing (root only),
initializes a data directory under `.local/mariadb`, starts `mariadbd` on this checkout's port
(`local_database_port`, derived from the folder) and a private socket, and creates the `id_minter`
user and `identifiers` database. A server on that port that is not this checkout's (another
clone's) is never used unless the RDS_* settings name it. When it cannot, it raises
`LocalDatabaseError` whose message says exactly what to do.

The server is locked down as far as a development server can be:

- started by root, `mariadbd` runs as Debian's unprivileged `mysql` user (its folder handed to it),
  unless it cannot reach the folder (a checkout under a private home): then as root, saying so;
- `secure_file_priv` is a private folder, so `SELECT ... INTO OUTFILE` and `LOAD DATA INFILE`
  cannot touch any other file;
- `id_minter` gets only what the pipeline, `make run` and the tests need (`LOCAL_PRIVILEGES`) on
  the registry database, on its copies (`identifiers_*`: the runbooks load dumps into
  `identifiers_shadow` and `identifiers_restored`) and on the per-session test and benchmark
  databases (pattern grants for `idminter_test_*` and `idminter_bench_*`): nothing on `*.*`, no
  GRANT OPTION;
- the bootstrap runs over the root socket with pymysql, values bound as parameters; the one
  identifier that cannot be a parameter (the database name) is checked against a strict pattern
  before anything runs, then quoted.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import (
    LOCAL_DATABASE_PASSWORD,
    LOCAL_DATABASE_USER,
    DatabaseSettings,
    env_text,
)
from idminter_pipeline.local_servers.engines import LocalDatabaseError, LocalServerPaths

STARTUP_TIMEOUT_SECONDS = 60
SHUTDOWN_TIMEOUT_SECONDS = 60
# Debian's system account for the server; root starts mariadbd as this user.
SERVER_SYSTEM_USER = "mysql"
# Hosts at which this checkout's server can answer (it binds to 127.0.0.1 only).
_LOOPBACK = ("127.0.0.1", "localhost")

# Names the bootstrap writes into SQL: the database name is an identifier (never a bound
# parameter), so it must match this before anything runs. 64 is the server's limit for database
# names, 32 MySQL 8.0's for user names.
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_USER_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
MAX_PASSWORD_LENGTH = 128

# Everything `id_minter` may do, and only on its own databases: rows (SELECT, INSERT, UPDATE,
# DELETE); schema migrations and their rollbacks (CREATE, DROP, ALTER, INDEX, REFERENCES for
# foreign keys); the legacy migration (TRIGGER for its change log, LOCK TABLES for the swap);
# reconciliation's scratch tables (CREATE TEMPORARY TABLES). CREATE and DROP on a pattern also
# let the tests create and drop their per-session databases. Production splits this into a
# runtime and a migration role (docs/deploy/database-accounts.md).
LOCAL_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, TRIGGER"
)
# Databases the tests and benchmarks create, one per session or run (`\_` is a literal `_`
# in a GRANT's database name, `%` any text).
SCRATCH_DATABASE_PATTERNS = (r"idminter\_test\_%", r"idminter\_bench\_%")


@dataclass(frozen=True)
class ServerReport:
    kind: str  # "external", "local (already running)" or "local (started)"
    settings: DatabaseSettings
    version: str
    socket: Path | None = None
    system_user: str | None = None  # the account the local server runs as
    server_name: str = "mariadbd"  # the server program, as the lines name it

    def lines(self) -> list[str]:
        lines = [
            f"registry database: {self.kind}, {self.version}",
            f"  reach it at {self.settings.describe()}",
        ]
        if self.socket is not None:
            lines.append(f"  unix socket {self.socket}")
        if self.system_user == "root":
            # A checkout in a private (0700) folder, as many home folders are: not an error.
            lines.append(
                f"  {self.server_name} runs as root (the system user {SERVER_SYSTEM_USER!r} "
                "cannot enter this checkout's private folder)"
            )
        elif self.system_user is not None:
            lines.append(f"  {self.server_name} runs as system user {self.system_user!r}")
        if self.kind.startswith("local"):
            lines.append(
                "  this checkout's own server; another server only when RDS_PRIMARY_HOST and "
                "RDS_PORT name it"
            )
        return lines


def server_version(settings: DatabaseSettings) -> str | None:
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


def process_user(pid: int) -> str | None:
    """The name of the user a process runs as (its effective uid), if it is visible."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[2])
            try:
                return pwd.getpwuid(uid).pw_name
            except KeyError:
                return str(uid)
    return None


def _pid(paths: LocalServerPaths) -> int | None:
    try:
        pid = int(paths.pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass
    return pid


def _own_port(paths: LocalServerPaths) -> int | None:
    """The port this checkout's server (the one in `paths`) listens on, if it runs."""
    if _pid(paths) is None or not paths.socket.exists():
        return None
    try:
        conn = admin_connection(paths)
    except LocalDatabaseError:
        return None
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT @@port")
            (port,) = cursor.fetchone()
        return int(port)
    finally:
        conn.close()


def check_local_settings(settings: DatabaseSettings) -> None:
    """Refuse names and passwords the bootstrap cannot use safely, before anything runs."""
    if not _DATABASE_NAME.fullmatch(settings.database):
        raise InvalidSettingError(
            "IDENTIFIERS_DATABASE",
            settings.database,
            "the project-local server's database name must be 1 to 64 ASCII letters, digits "
            "or underscores",
        )
    if not _USER_NAME.fullmatch(settings.username):
        raise InvalidSettingError(
            "RDS_USERNAME",
            settings.username,
            "the project-local server's user name must be 1 to 32 ASCII letters, digits or "
            "underscores",
        )
    password = settings.password
    if not password or len(password) > MAX_PASSWORD_LENGTH or not password.isprintable():
        # Never echo a password, not even an excerpt of it.
        raise InvalidSettingError(
            "RDS_PASSWORD",
            f"<{len(password)} characters, not shown>",
            f"the project-local server's password must be 1 to {MAX_PASSWORD_LENGTH} printable "
            "characters",
        )


def quote_database_name(name: str) -> str:
    """`name` as a backquoted identifier; only names `check_local_settings` accepts."""
    if not _DATABASE_NAME.fullmatch(name):
        raise InvalidSettingError("IDENTIFIERS_DATABASE", name, "not a safe database name")
    return f"`{name}`"


def _grant_pattern(name: str) -> str:
    """A GRANT's database name matching exactly `name` (`_` is a wildcard there)."""
    return quote_database_name(name).replace("_", "\\_")


def _copies_pattern(name: str) -> str:
    """A GRANT's database name matching `name_` and anything after it: the registry's copies."""
    return _grant_pattern(f"{name}_")[:-1] + "%`"


def _server_account(paths: LocalServerPaths) -> pwd.struct_passwd | None:
    """The system account the server should run as: `mysql` when root can hand it the folder."""
    if os.geteuid() != 0:
        return None  # the server runs as the user who starts it
    try:
        account = pwd.getpwnam(SERVER_SYSTEM_USER)
    except KeyError:
        return None
    # The account must reach the server's folder (and its installed tree, if it has one of its
    # own): a checkout under a private home it cannot.
    folders = [paths.base.parent, *([paths.engine.tree] if paths.engine.tree else [])]
    reachable = subprocess.run(
        ["sh", "-c", 'for f; do test -x "$f" || exit 1; done', "sh", *map(str, folders)],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        check=False,
    )
    return account if reachable.returncode == 0 else None


def _hand_over(paths: LocalServerPaths, account: pwd.struct_passwd) -> None:
    """Give the server's folder to its system account (data from an older bootstrap included)."""
    for directory, _, files in os.walk(paths.base):
        os.chown(directory, account.pw_uid, account.pw_gid, follow_symlinks=False)
        for name in files:
            path = os.path.join(directory, name)
            os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)


def admin_connection(paths: LocalServerPaths) -> pymysql.connections.Connection:
    """The server's administrator over its socket, with no password (`ServerEngine.admin_user`:
    for MariaDB the system user who ran `mariadb-install-db`, by socket credentials)."""
    try:
        return pymysql.connect(
            unix_socket=str(paths.socket),
            user=paths.engine.admin_user(),
            autocommit=True,
            connect_timeout=10,
            ssl_disabled=True,  # a local socket: TLS would protect nothing and cost a handshake
        )
    except pymysql.err.MySQLError as error:
        raise LocalDatabaseError(
            f"cannot log in to the local server as its administrator over {paths.socket}: "
            f"{excerpt(str(error))}"
        ) from None


def local_admin_connection_for(
    settings: DatabaseSettings, paths: LocalServerPaths | None = None
) -> pymysql.connections.Connection | None:
    """The project-local server's administrator, when that server is the one `settings` reach;
    else None. For what the application user may not do (see another session's transactions,
    manage users): tests and benchmarks, never the minter."""
    paths = paths or LocalServerPaths.default()
    if _own_port(paths) != settings.port:
        return None
    try:
        return admin_connection(paths)
    except LocalDatabaseError:
        return None


def _start(paths: LocalServerPaths, port: int) -> None:
    """Start the server, as `SERVER_SYSTEM_USER` when started by root and that user can."""
    engine = paths.engine
    server = engine.server_command()
    for folder in (paths.base, paths.tmp_dir, paths.files_dir):
        folder.mkdir(parents=True, exist_ok=True)
    paths.files_dir.chmod(0o700)
    account = _server_account(paths)
    if account is not None:
        _hand_over(paths, account)
        runs_as = account.pw_name
    else:
        runs_as = pwd.getpwuid(os.geteuid()).pw_name
    user_flag = [f"--user={runs_as}"] if os.geteuid() == 0 else []
    if not (paths.data_dir / "mysql").is_dir():
        engine.initialize(paths, user_flag)
    paths.socket.unlink(missing_ok=True)
    command = [
        *server,
        "--no-defaults",
        f"--datadir={paths.data_dir}",
        f"--socket={paths.socket}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--pid-file={paths.pid_file}",
        f"--tmpdir={paths.tmp_dir}",
        f"--log-error={paths.log_file}",
        f"--secure-file-priv={paths.files_dir}",
        "--skip-name-resolve",
        "--max-connections=500",
        "--innodb-buffer-pool-size=2G",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_bin",
        *engine.server_options(),
        *user_flag,
    ]
    with open(os.devnull, "wb") as devnull:
        subprocess.Popen(command, stdout=devnull, stderr=devnull, start_new_session=True)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    # The socket file appears before the server listens on it (MySQL recovering from a crash
    # refuses connections there for a while): wait until it accepts one.
    while not _accepts_connections(paths.socket):
        if time.monotonic() > deadline:
            tail = paths.log_file.read_text()[-2000:] if paths.log_file.exists() else ""
            raise LocalDatabaseError(
                f"{engine.name} did not start within {STARTUP_TIMEOUT_SECONDS}s; its log:\n{tail}"
            )
        time.sleep(0.2)


def _accepts_connections(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def bootstrap_server(paths: LocalServerPaths, settings: DatabaseSettings) -> None:
    """Create the registry database and the application user with least privilege (idempotent).

    An existing user keeps nothing beyond `LOCAL_PRIVILEGES` on its own databases: what an older
    bootstrap granted server-wide (ALL ON *.* WITH GRANT OPTION) is revoked first.
    """
    check_local_settings(settings)
    user, password = settings.username, settings.password
    database = quote_database_name(settings.database)
    grants_on = [
        _grant_pattern(settings.database),
        _copies_pattern(settings.database),
        *(f"`{p}`" for p in SCRATCH_DATABASE_PATTERNS),
    ]
    conn = admin_connection(paths)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE IF NOT EXISTS {database} "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
            for host in ("localhost", "127.0.0.1"):
                cursor.execute(
                    "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password)
                )
                cursor.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
                # Only server-wide privileges, where an older bootstrap granted ALL, and only
                # when there are some: the database grants stay in place, and on MySQL a REVOKE
                # ON *.* briefly hides them from clients connecting meanwhile (a 1044).
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s"
                    " AND (PRIVILEGE_TYPE <> 'USAGE' OR IS_GRANTABLE = 'YES')",
                    (f"'{user}'@'{host}'",),
                )
                (server_wide,) = cursor.fetchone()
                if server_wide:
                    cursor.execute("REVOKE ALL PRIVILEGES ON *.* FROM %s@%s", (user, host))
                    cursor.execute("REVOKE GRANT OPTION ON *.* FROM %s@%s", (user, host))
                for target in grants_on:
                    # `%` in a GRANT pattern is the server's wildcard: doubled for pymysql.
                    on = target.replace("%", "%%")
                    cursor.execute(f"GRANT {LOCAL_PRIVILEGES} ON {on}.* TO %s@%s", (user, host))
    except pymysql.err.MySQLError as error:
        raise LocalDatabaseError(
            f"bootstrapping the local server failed: {excerpt(str(error))}"
        ) from None
    finally:
        conn.close()


def ensure_server(
    settings: DatabaseSettings | None = None,
    paths: LocalServerPaths | None = None,
    *,
    start_local: bool | None = None,
) -> ServerReport:
    """Reach the configured server, or start the project-local one; see the module docstring.

    `start_local` defaults to true unless RDS_PRIMARY_HOST or RDS_PORT names another server.
    With it, only the server in `paths` is used: another on the same port is refused, named.
    """
    settings = settings or DatabaseSettings.from_env()
    paths = paths or LocalServerPaths.default()
    if start_local is None:
        start_local = not (env_text("RDS_PRIMARY_HOST") or env_text("RDS_PORT"))
    own_port = _own_port(paths)
    version = server_version(settings)
    if version is not None:
        pid = _pid(paths)
        if pid is not None and own_port == settings.port and settings.host in _LOOPBACK:
            return ServerReport(
                "local (already running)",
                settings,
                version,
                paths.socket,
                process_user(pid),
                paths.engine.name,
            )
        if not start_local:
            return ServerReport("external", settings, version)
        raise LocalDatabaseError(
            f"{settings.host}:{settings.port} answers ({version}) but is not this checkout's "
            f"server (that one keeps its data in {paths.data_dir}): another checkout's, or "
            "another program's. This checkout uses another server only when told to: set "
            "RDS_PRIMARY_HOST and RDS_PORT to use that one, or stop it."
        )
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
    # Before anything starts or runs: a name that is not safe in SQL stops here, named.
    check_local_settings(settings)
    if own_port is not None and own_port != settings.port:
        raise LocalDatabaseError(
            f"this checkout's {paths.engine.name} runs on port {own_port}, not on "
            f"{settings.port}, the port this checkout's folder gives: restart it with "
            "`idminter db server stop` (make db-stop), then `idminter db server start`"
        )
    if _pid(paths) is None:
        _start(paths, settings.port)
    bootstrap_server(paths, settings)
    version = server_version(settings)
    if version is None:
        raise LocalDatabaseError(
            f"the local server started but {settings.describe()} cannot log in; "
            f"see {paths.log_file}"
        )
    pid = _pid(paths)
    user = process_user(pid) if pid is not None else None
    return ServerReport("local (started)", settings, version, paths.socket, user, paths.engine.name)


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
            raise LocalDatabaseError(
                f"{paths.engine.name} (pid {pid}) did not stop; see {paths.log_file}"
            )
        time.sleep(0.2)
    # Started by this very process (a test's private server): reap it, so no <defunct> entry
    # lingers in `ps` after "stopped".
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True


def _process_alive(pid: int) -> bool:
    """Whether any thread of process `pid` still runs. A zombie still answers kill(0), and so
    does a main thread that ended before the server's other threads: only a process whose every
    thread has ended is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            # `pid (comm) S ...`: the state follows the last `)`, as comm may hold spaces.
            state = (task / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


def server_status(
    settings: DatabaseSettings | None = None, paths: LocalServerPaths | None = None
) -> tuple[bool, list[str]]:
    """Whether the configured registry is reachable, and lines describing it."""
    settings = settings or DatabaseSettings.from_env()
    paths = paths or LocalServerPaths.default()
    version = server_version(settings)
    pid = _pid(paths)
    lines = [f"configured registry: {settings.describe()}"]
    lines.append(f"  reachable: {'yes, ' + version if version else 'no'}")
    running = f"running, pid {pid}" if pid else "not running"
    lines.append(f"  project-local {paths.engine.name}: {running} (data in {paths.data_dir})")
    return version is not None, lines
