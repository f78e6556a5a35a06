"""`idminter works generate|load` and `idminter mint`."""

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner
from db_helpers import fetch_all
from works_helpers import fill_pool

from idminter_pipeline.cli import main
from idminter_pipeline.works.documents import Stage
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import SqliteWorksStore


@pytest.fixture
def works_env(works_store_env, connect_registry):
    fill_pool(connect_registry, 3_000)
    return works_store_env


def _json(result):
    assert result.output, result
    return json.loads(result.stdout)


def test_generate_fills_the_store_deterministically(works_env):
    runner = CliRunner()
    result = runner.invoke(main, ["works", "generate", "--count", "25", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert _json(result)["generated"] == 25
    with SqliteWorksStore(works_env) as store:
        stored = [work.decoded() for work in store.read_all()]
    assert stored == list(generate_works(25, seed=4))
    again = runner.invoke(main, ["works", "generate", "--count", "25", "--seed", "4"])
    assert _json(again)["source_works"] == 25


def test_load_reads_ndjson_documents_and_hits(works_env, tmp_path):
    works = list(generate_works(3, seed=1))
    file = tmp_path / "works.ndjson"
    file.write_text(
        json.dumps(works[0].document)
        + "\n\n"
        + json.dumps({"_id": works[1].id, "_source": works[1].document})
        + "\n"
        + json.dumps(works[2].document)
        + "\n"
    )
    result = CliRunner().invoke(main, ["works", "load", str(file)])
    assert result.exit_code == 0, result.output
    assert _json(result)["loaded"] == 3
    with SqliteWorksStore(works_env) as store:
        assert sorted(w.id for w in store.read_all()) == sorted(w.id for w in works)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2 is not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object, got array"),
        (
            '{"indexed_at": "2026-07-30T10:00:00Z", "state": {}}',
            "line 2: no state.sourceIdentifier",
        ),
        (
            '{"state": {"sourceIdentifier": {"identifierType": {"id": "s"}, '
            '"ontologyType": "Work", "value": "v"}}}',
            "line 2: Work[s/v] has no indexed_at",
        ),
    ],
)
def test_load_refuses_a_bad_line_naming_it_and_writes_nothing(works_env, tmp_path, line, message):
    file = tmp_path / "bad.ndjson"
    good = next(iter(generate_works(1)))
    file.write_text(json.dumps(good.document) + "\n" + line + "\n")
    result = CliRunner().invoke(main, ["works", "load", str(file)])
    assert result.exit_code == 2
    assert message in result.stderr
    with SqliteWorksStore(works_env) as store:
        assert store.count_source() == 0


def test_mint_scopes_print_the_summary(works_env, registry_env):
    runner = CliRunner()
    runner.invoke(main, ["works", "generate", "--count", "30", "--seed", "2"])
    works = list(generate_works(30, seed=2))
    by_ids = runner.invoke(
        main,
        [
            "mint",
            "--source-identifiers",
            works[0].id,
            works[1].id.removeprefix("Work[")[:-1],
            "--job-id",
            "cli-job",
        ],
    )
    assert by_ids.exit_code == 0, by_ids.output
    summary = _json(by_ids)
    assert summary["processed"] == [works[0].id, works[1].id]
    assert summary["job_id"] == "cli-job" and summary["works_read"] == 2
    assert summary["failures_by_stage"] == dict.fromkeys(map(str, Stage), 0)
    window = runner.invoke(
        main,
        [
            "mint",
            "--window-start",
            "2026-07-30T09:00:00Z",
            "--window-end",
            "2026-07-30T09:00:13.5Z",
        ],
    )
    assert _json(window)["works_read"] == 10
    first_full = _json(runner.invoke(main, ["mint", "--full"]))
    assert first_full["minted"] > 0 and first_full["inherited"] > 0
    report = _json(runner.invoke(main, ["mint", "--full"]))
    superseded = report["works_superseded"]
    assert superseded > 0  # the predecessors whose successors hold their documents
    assert report["works_written"] == report["processed"] == 30 - superseded
    assert report["inherited"] == 0 and report["minted"] == 0  # a re-run mints nothing new
    rows = fetch_all(registry_env, "SELECT COUNT(*) FROM identifiers")[0][0]
    assert rows == report["identifiers_found"]


def test_mint_exits_1_when_a_work_failed(works_env):
    result = CliRunner().invoke(main, ["mint", "--source-identifiers", "sierra-system-number/none"])
    assert result.exit_code == 1
    assert _json(result)["failures"][0]["stage"] == "read"


@pytest.mark.parametrize(
    "args",
    [
        ["mint"],
        ["mint", "--full", "--window-start", "2026-07-30T09:00:00Z"],
        ["mint", "--full", "--source-identifiers", "a/b"],
        ["mint", "--window-start", "2026-07-30T09:00:00Z"],
        ["mint", "stray"],
    ],
)
def test_mint_needs_exactly_one_scope(works_env, args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "scope" in result.output or "window" in result.output or "unexpected" in result.output


def test_mint_rejects_a_malformed_identifier(works_env):
    result = CliRunner().invoke(main, ["mint", "--source-identifiers", "b1161044x"])
    assert result.exit_code == 2
    assert "'b1161044x'" in result.stderr


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            '{"indexed_at": "2026-07-30T10:00:00Z", "state": {"sourceIdentifier": {"identifierType"'
            ': {"id": "s"}, "ontologyType": "Work", "value": "v", "value": "w"}}}',
            "duplicate key 'value'",
        ),
        ('{"indexed_at": "2026-07-30T10:00:00Z", "n": NaN}', "NaN is not a JSON value"),
        ('{"indexed_at": "2026-07-30T10:00:00Z", "n": 1e999}', "beyond the range of a double"),
        ('{"indexed_at": "2026-07-30T10:00:00Z", "n": ' + "9" * 101 + "}", "101 digits"),
        ('{"a": ' * 101 + "1" + "}" * 101, "nested deeper than 100 levels"),
    ],
)
def test_load_refuses_what_strict_json_refuses_naming_line_and_reason(
    works_env, tmp_path, line, reason
):
    file = tmp_path / "bad.ndjson"
    good = next(iter(generate_works(1)))
    file.write_text(json.dumps(good.document) + "\n" + line + "\n")
    result = CliRunner().invoke(main, ["works", "load", str(file)])
    assert result.exit_code == 2, result.output
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith(f"error: {file} line 2 is not valid JSON (")
    assert reason in message
    with SqliteWorksStore(works_env) as store:
        assert store.count_source() == 0


def test_load_refuses_bytes_that_are_not_utf8_naming_the_line(works_env, tmp_path):
    file = tmp_path / "bad.ndjson"
    good = next(iter(generate_works(1)))
    file.write_bytes(json.dumps(good.document).encode() + b'\n{"title": "\xff"}\n')
    result = CliRunner().invoke(main, ["works", "load", str(file)])
    assert result.exit_code == 2
    assert f"{file} line 2 is not valid JSON (not UTF-8" in result.stderr


@pytest.mark.parametrize("size", ["0", "-5"])
def test_a_batch_size_below_one_is_refused_naming_it(works_env, size):
    CliRunner().invoke(main, ["works", "generate", "--count", "3"])
    result = CliRunner().invoke(main, ["mint", "--full", "--batch-size", size])
    assert result.exit_code == 2
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith(f"error: batch size {size} is not allowed")
    with SqliteWorksStore(works_env) as store:
        assert store.count_identified() == 0


def test_a_large_batch_size_is_lowered_not_refused(works_env):
    CliRunner().invoke(main, ["works", "generate", "--count", "3"])
    result = CliRunner().invoke(main, ["mint", "--full", "--batch-size", "999999"])
    assert result.exit_code == 0, result.output
    assert _json(result)["batch_size"] == 5000


@pytest.mark.parametrize("command", [["works", "generate", "--count", "3"], ["mint", "--full"]])
def test_a_store_path_under_proc_is_one_error_line(works_env, monkeypatch, command):
    monkeypatch.setenv("WORKS_STORE_PATH", "/proc/idminter/works.sqlite3")
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith("error: cannot open the works store /proc/idminter/works.sqlite3")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_works_generate_on_a_full_disk_is_one_error_line_naming_the_store(works_env, tmp_path):
    """A real process whose file system refuses to grow the store file past 256 KB
    (RLIMIT_FSIZE, as a full disk would)."""
    limit = 256 * 1024

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from idminter_pipeline.cli import main; main()",
            *["works", "generate", "--count", "2000"],
        ],
        env={**os.environ, "WORKS_STORE_PATH": str(works_env)},
        capture_output=True,
        text=True,
        preexec_fn=limited,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith(f"error: cannot write to the works store {works_env}: ")
    assert "Traceback" not in result.stderr


def test_repair_succession_is_a_dry_run_unless_applied(works_env, registry_env):
    """A store written before succession ranks: a late update of a predecessor sits over its
    successor's document. The repair lists it, and with --apply rewrites it."""
    runner = CliRunner()
    assert runner.invoke(main, ["works", "generate", "--count", "10", "--seed", "2"]).exit_code == 0
    assert runner.invoke(main, ["mint", "--full"]).exit_code == 0
    works = list(generate_works(10, seed=2))
    successor, predecessor = works[6], works[0]  # Folio 6 inherited Sierra 0's ID
    [(canonical_id,)] = fetch_all(
        registry_env,
        "SELECT CanonicalId FROM identifiers WHERE OntologyType = 'Work' "
        "AND SourceSystem = 'sierra-system-number' AND SourceId = %s",
        (predecessor.document["state"]["sourceIdentifier"]["value"],),
    )
    with sqlite3.connect(works_env) as db:  # what the store looked like before ranks
        db.execute(
            "UPDATE identified_works SET source_id = ?, document = ?, succession_rank = 0 "
            "WHERE canonical_id = ?",
            (predecessor.id, json.dumps(predecessor.document), canonical_id),
        )
    db.close()

    dry = runner.invoke(main, ["works", "repair-succession"])
    assert dry.exit_code == 0, dry.output
    report = _json(dry)
    assert report["applied"] is False and report["documents_of_an_older_record"] == 1
    [listed] = report["documents"]
    assert (listed["canonicalId"], listed["holder"], listed["stored"]) == (
        canonical_id,
        successor.id,
        predecessor.id,
    )
    with SqliteWorksStore(works_env) as store:
        assert store.identified_holders([canonical_id])[canonical_id].source_id == predecessor.id

    applied = _json(runner.invoke(main, ["works", "repair-succession", "--apply"]))
    assert (applied["applied"], applied["rewritten"], applied["failed"]) == (True, 1, 0)
    with SqliteWorksStore(works_env) as store:
        assert store.identified_holders([canonical_id])[canonical_id].source_id == successor.id
    again = _json(runner.invoke(main, ["works", "repair-succession"]))
    assert again["documents"] == [] and again["chains_checked"] == report["chains_checked"]


@pytest.mark.parametrize("command", [["mint", "--full"], ["works", "repair-succession", "--apply"]])
def test_a_bad_succession_precedence_is_one_error_line_and_nothing_written(
    works_env, registry_env, command
):
    runner = CliRunner()
    assert runner.invoke(main, ["works", "generate", "--count", "10", "--seed", "2"]).exit_code == 0
    result = runner.invoke(main, command, env={"IDMINTER_SUCCESSION_PRECEDENCE": "folio/x,sierra"})
    assert result.exit_code != 0 and "Traceback" not in result.output
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith("error: IDMINTER_SUCCESSION_PRECEDENCE: ") and "folio/x" in message
    assert fetch_all(registry_env, "SELECT COUNT(*) FROM identifiers")[0][0] == 0
    with SqliteWorksStore(works_env) as store:
        assert store.count_identified() == 0


def test_repair_succession_refuses_a_missing_store_and_creates_nothing(
    registry_env, tmp_path, monkeypatch
):
    missing = tmp_path / "no-such-folder" / "works.sqlite3"
    monkeypatch.setenv("WORKS_STORE_PATH", str(missing))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    result = CliRunner().invoke(main, ["works", "repair-succession", "--apply"])
    assert result.exit_code == 2, result.output
    assert f"error: works store {missing}: no such file" in result.output
    assert not missing.parent.exists()
