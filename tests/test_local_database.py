"""The project-local server: a second one, on its own port and folder, started and stopped; each
checkout's on a port of its own, and never another checkout's server unless named."""

import os
import socket

import pytest
from db_helpers import free_port, mysql_under_test, private_mariadb, private_server_paths

from idminter_pipeline.core.errors import RegistryUnreachableError
from idminter_pipeline.core.settings import (
    LOCAL_PORT_BASE,
    LOCAL_PORT_PAIRS,
    DatabaseSettings,
    local_database_port,
)
from idminter_pipeline.local_servers.mariadb import (
    LocalDatabaseError,
    LocalServerPaths,
    ensure_server,
    server_status,
    stop_server,
)
from idminter_pipeline.registry.connection import connect


@pytest.mark.uses_database
@pytest.mark.skipif(os.geteuid() != 0, reason="starting a private server here needs root")
def test_start_is_idempotent_and_stop_stops(tmp_path):
    settings = DatabaseSettings(port=free_port())
    paths = private_server_paths(tmp_path / "server")
    try:
        started = ensure_server(settings, paths, start_local=True)
        assert started.kind == "local (started)"
        # pytest's tmp_path is private to root, so the mysql system user cannot reach it: the
        # server falls back to root and says so (tests/test_server_privileges.py covers mysql).
        assert started.system_user == "root"
        assert any(f"{paths.engine.name} runs as root" in line for line in started.lines())
        assert ("MariaDB" in started.version) is not mysql_under_test(), started.version
        again = ensure_server(settings, paths, start_local=True)
        assert again.kind == "local (already running)"
        conn = connect(settings)
        with conn.cursor() as cursor:
            cursor.execute("SELECT DATABASE(), CURRENT_USER()")
            database, user = cursor.fetchone()
        conn.close()
        assert database == "identifiers"
        assert user.startswith("id_minter@")
        reachable, lines = server_status(settings, paths)
        assert reachable
        assert any("running, pid" in line for line in lines)

        # Another checkout (another folder) whose port this one holds: refused, nothing started.
        other = private_server_paths(tmp_path / "other-checkout")
        with pytest.raises(LocalDatabaseError, match="is not this checkout's server"):
            ensure_server(settings, other, start_local=True)
        assert not other.data_dir.exists()
        # Named explicitly (RDS_PRIMARY_HOST, RDS_PORT), it is used as it is.
        assert ensure_server(settings, other, start_local=False).kind == "external"
        # This checkout's server asked for on another port says so rather than start a second.
        with pytest.raises(LocalDatabaseError, match=f"runs on port {settings.port}, not"):
            ensure_server(DatabaseSettings(port=free_port()), paths, start_local=True)
    finally:
        stopped = stop_server(paths)
    assert stopped
    # "Stopped" means exited: nothing listens on its port any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", settings.port), timeout=2).close()
    reachable, _ = server_status(settings, paths)
    assert not reachable
    assert stop_server(paths) is False


def test_each_checkout_has_its_own_port(tmp_path, monkeypatch):
    ports = {}
    for checkout in ("alice/catalogue", "bob/catalogue", "alice/catalogue-copy"):
        monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / checkout / ".local"))
        ports[checkout] = local_database_port()
        assert DatabaseSettings().port == ports[checkout]
        assert DatabaseSettings.from_env({}).port == ports[checkout]
        assert local_database_port(mysql=True) == ports[checkout] + 1
        assert local_database_port() == ports[checkout]  # stable
    assert len(set(ports.values())) == 3, ports
    for port in ports.values():
        # Even, in its range, below the ephemeral ports clients and private servers take.
        assert port % 2 == 0
        assert LOCAL_PORT_BASE <= port < LOCAL_PORT_BASE + 2 * LOCAL_PORT_PAIRS <= 32_768


def test_an_unreachable_configured_server_says_what_to_do(tmp_path):
    settings = DatabaseSettings(host="127.0.0.1", port=free_port(), password="secret-pw")
    with pytest.raises(LocalDatabaseError) as raised:
        ensure_server(settings, LocalServerPaths(tmp_path), start_local=False)
    message = str(raised.value)
    assert "not reachable" in message
    assert "unset RDS_PRIMARY_HOST" in message
    assert "secret-pw" not in message


def test_the_running_registry_is_reported(server_settings):
    report = ensure_server(server_settings)
    # This checkout's own server under `make test`; the one RDS_* names otherwise.
    assert report.kind in {"local (already running)", "external"}
    assert any(server_settings.describe() in line for line in report.lines())


def test_a_test_without_a_database_fixture_reaches_no_server(tmp_path):
    """`make test-mysql` leaves such tests to `make test`: one that reached a server anyway
    would test MariaDB alone without anyone knowing, so here it cannot reach one."""
    with pytest.raises(RegistryUnreachableError):
        connect(DatabaseSettings.from_env()).close()
    with pytest.raises(RuntimeError, match="mark it uses_database"), private_mariadb(tmp_path):
        pass
