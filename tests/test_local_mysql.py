"""`make test-mysql`'s install, when Debian's archive cannot be reached: one line, exit 0 (a
failed download is not a code failure); a tree unpacked earlier is used as it is.

The suite itself runs on that MySQL under `make test-mysql` (docs/development.md, "Test servers:
MariaDB and MySQL").
"""

from __future__ import annotations

import shutil

import pytest
from db_helpers import free_port

from idminter_pipeline.local_servers.mysql import INSTALLED_MARKER, ArchiveUnreachable, MysqlInstall
from tools import test_mysql

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")


def _unreachable_archive() -> str:
    return f"http://127.0.0.1:{free_port()}/debian"  # nothing listens there


def test_an_unreachable_archive_is_one_line_and_exit_0(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path))
    archive = _unreachable_archive()
    assert test_mysql.main(["--archive", archive]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and not err, (out, err)
    assert out.startswith("test-mysql skipped: ") and archive in out
    assert "Could not connect" in out or "Connection refused" in out, out  # apt's reason
    assert not (tmp_path / "mysql").exists()  # nothing unpacked, no server folder
    assert not (tmp_path / "mysql-server").exists()


def test_an_unreachable_archive_keeps_a_tree_unpacked_before(tmp_path):
    install = MysqlInstall(tmp_path, _unreachable_archive())
    with pytest.raises(ArchiveUnreachable, match="cannot be reached"):
        install.install()
    mysqld = tmp_path / "mysql" / "usr" / "sbin" / "mysqld"
    mysqld.parent.mkdir(parents=True)
    mysqld.write_bytes(b"")
    (tmp_path / "mysql" / INSTALLED_MARKER).write_text("mysql-server-core_9.7.4-2_amd64.deb\n")
    engine = install.install()
    assert engine.tree == tmp_path / "mysql"
    assert mysqld.exists()  # not unpacked afresh, not removed
