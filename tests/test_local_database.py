"""The project-local server: a second one, on its own port and folder, started and stopped."""

import os

import pytest
from db_helpers import free_port, mysql_under_test, private_server_paths

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.local_servers.mariadb import (
    LocalDatabaseError,
    LocalServerPaths,
    ensure_server,
    server_status,
    stop_server,
)
from idminter_pipeline.registry.connection import connect


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
    finally:
        stopped = stop_server(paths)
    assert stopped
    reachable, _ = server_status(settings, paths)
    assert not reachable
    assert stop_server(paths) is False


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
    assert report.kind in {"local (already running)", "external"}
    assert any(server_settings.describe() in line for line in report.lines())
