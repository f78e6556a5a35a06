"""`idminter db load-dump`: a legacy registry dumped with the server's own dump tool and loaded
into a scratch database, plain or gzipped, row for row; a database holding tables is refused."""

import gzip
import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from db_helpers import create_database, drop_database
from legacy_helpers import SPECIAL_ROWS, generated_rows, legacy_rows, make_legacy_registry

from idminter_pipeline.cli import main

DUMP_TOOLS = ("mariadb-dump", "mysqldump")


def _dump_tool():
    for name in DUMP_TOOLS:
        if found := shutil.which(name):
            return found
    pytest.skip("no mariadb-dump or mysqldump on PATH (make db installs mariadb-client)")
    return None


@pytest.fixture
def production(legacy_database):
    return make_legacy_registry(legacy_database, SPECIAL_ROWS + generated_rows(300))


@pytest.fixture
def scratch(server_settings):
    settings = create_database(server_settings, "dump_")
    yield settings
    drop_database(settings)


def _dump(settings, path, tmp_path):
    options = tmp_path / "dump.cnf"
    options.write_text(
        f"[client]\nhost={settings.host}\nport={settings.port}\nuser={settings.username}\n"
        f'password="{settings.password}"\n'
    )
    with path.open("wb") as out:
        subprocess.run(
            [
                _dump_tool(),
                f"--defaults-extra-file={options}",
                "--single-transaction",
                "--skip-triggers",
                settings.database,
                "identifiers",
            ],
            stdout=out,
            check=True,
        )


def _env(monkeypatch, settings):
    for name, value in {
        "RDS_PRIMARY_HOST": settings.host,
        "RDS_PORT": str(settings.port),
        "RDS_USERNAME": settings.username,
        "RDS_PASSWORD": settings.password,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RDS_SECRET_NAME", raising=False)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_dump_loads_row_for_row(production, scratch, tmp_path, monkeypatch, compressed):
    dump = tmp_path / "identifiers.sql"
    _dump(production, dump, tmp_path)
    if compressed:
        packed = tmp_path / "identifiers.sql.gz"
        packed.write_bytes(gzip.compress(dump.read_bytes()))
        dump = packed
    _env(monkeypatch, scratch)
    result = CliRunner().invoke(
        main, ["db", "load-dump", str(dump), "--database", scratch.database]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tables"] == {"identifiers": len(SPECIAL_ROWS) + 300}
    assert legacy_rows(scratch, "identifiers") == legacy_rows(production, "identifiers")


def test_a_database_that_holds_tables_is_refused(production, tmp_path, monkeypatch):
    dump = tmp_path / "identifiers.sql"
    _dump(production, dump, tmp_path)
    before = legacy_rows(production, "identifiers")
    _env(monkeypatch, production)
    result = CliRunner().invoke(
        main, ["db", "load-dump", str(dump), "--database", production.database]
    )
    assert result.exit_code == 2
    assert "already holds tables" in result.output
    assert legacy_rows(production, "identifiers") == before


@pytest.mark.parametrize("name", ["bad-name", "x; DROP DATABASE y", ""])
def test_a_bad_database_name_is_refused_naming_it(production, tmp_path, monkeypatch, name):
    dump = tmp_path / "identifiers.sql"
    dump.write_text("SELECT 1;\n")
    _env(monkeypatch, production)
    result = CliRunner().invoke(main, ["db", "load-dump", str(dump), "--database", name])
    assert result.exit_code == 2
    assert "error: --database" in result.output


def test_a_database_the_account_may_not_create_is_one_error_line(production, tmp_path, monkeypatch):
    """`id_minter` may create only the registry's scratch copies and the tests' databases."""
    dump = tmp_path / "identifiers.sql"
    _dump(production, dump, tmp_path)
    _env(monkeypatch, production)
    result = CliRunner().invoke(
        main, ["db", "load-dump", str(dump), "--database", "not_a_scratch_copy"]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"error: --database not_a_scratch_copy: the server refuses {production.username} "
    )
    assert "Access denied" in line and len(line) < 1_000
