"""`idminter works show` (one work diagnosed) and `idminter lookup`'s identifier forms."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from db_helpers import fetch_all
from works_helpers import fill_pool, si, work

from idminter_pipeline.cli import main
from idminter_pipeline.works.stores import SqliteWorksStore


@pytest.fixture
def works_env(registry_env, connect_registry, tmp_path, monkeypatch):
    path = tmp_path / "works.sqlite3"
    monkeypatch.setenv("WORKS_STORE_PATH", str(path))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    fill_pool(connect_registry, 1_000)
    return path


def _run(*args):
    return CliRunner().invoke(main, list(args))


def _minted_chain(works_env):
    """A Sierra work, then its Folio successor (which keeps the Sierra ID and owns the document)."""
    sierra = work("sierra-system-number", "b1000001", items=("i-old",))
    folio = work(
        "folio-instance",
        "f-1",
        indexed_at="2026-07-30T10:00:00.000Z",
        predecessor=("sierra-system-number", "b1000001"),
        items=("i-new",),
    )
    # Its item keeps the Sierra item's ID.
    folio.document["data"]["items"][0]["id"]["predecessorIdentifier"] = si(
        "folio-item", "Item", "i-old"
    )
    with SqliteWorksStore(works_env) as store:
        store.put_source([sierra])
    first = _run("mint", "--source-identifiers", sierra.id, "--job-id", "job-a")
    assert first.exit_code == 0, first.output
    with SqliteWorksStore(works_env) as store:
        store.put_source([folio])
    second = _run("mint", "--source-identifiers", folio.id, "--job-id", "job-b")
    assert second.exit_code == 0, second.output
    return sierra, folio


def test_show_names_the_chain_its_holder_and_the_provenance(works_env, registry):
    started = datetime.now(UTC).replace(tzinfo=None)
    sierra, folio = _minted_chain(works_env)
    ended = datetime.now(UTC).replace(tzinfo=None)
    result = _run("works", "show", folio.id)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (canonical_id,) = {
        row[0]
        for row in fetch_all(
            registry, "SELECT CanonicalId FROM identifiers WHERE SourceId IN ('b1000001', 'f-1')"
        )
    }
    assert report["work"] == folio.id
    assert report["canonical_id"] == canonical_id
    identifiers = {entry["path"]: entry for entry in report["source_document"]["identifiers"]}
    assert identifiers["state.sourceIdentifier"]["canonical_id"] == canonical_id
    assert identifiers["state.predecessorIdentifier"]["source"] == sierra.id
    assert identifiers["state.predecessorIdentifier"]["canonical_id"] == canonical_id
    assert identifiers["data.items[0].id.sourceIdentifier"]["source"] == "Item[folio-item/i-new]"
    item_id = identifiers["data.items[0].id.sourceIdentifier"]["canonical_id"]
    assert item_id is not None
    assert identifiers["data.items[0].id.predecessorIdentifier"] == {
        "path": "data.items[0].id.predecessorIdentifier",
        "source": "Item[folio-item/i-old]",
        "canonical_id": item_id,
    }
    registry = {row["source"]: row for row in report["registry"]}
    assert registry[sierra.id]["status"] == "original"
    assert registry[folio.id]["status"] == "alias"
    assert registry[folio.id]["inherited_from"] == sierra.id
    assert registry[folio.id]["job_id"] == "job-b"
    # When: the registry's time, in UTC (the session's time zone), to the microsecond.
    inherited_at = datetime.fromisoformat(registry[folio.id]["created_at"])
    assert started - timedelta(seconds=5) <= inherited_at <= ended + timedelta(seconds=5)
    assert report["succession"]["holder"] == folio.id
    assert report["succession"]["members"] == [folio.id, sierra.id]
    assert report["succession"]["conflict"] is None
    held = report["identified_document"]
    assert held["held_by"] == folio.id
    assert held["document"]["state"]["canonicalId"] == canonical_id


def test_show_accepts_every_form_mint_accepts_and_a_canonical_id(works_env):
    _sierra, folio = _minted_chain(works_env)
    by_bracket = json.loads(_run("works", "show", folio.id).stdout)
    by_short = json.loads(_run("works", "show", "folio-instance/f-1").stdout)
    assert by_short == by_bracket
    by_id = _run("works", "show", by_bracket["canonical_id"])
    assert by_id.exit_code == 0, by_id.output
    report = json.loads(by_id.stdout)
    assert report["work"] is None
    assert report["succession"]["holder"] == folio.id
    assert report["identified_document"]["held_by"] == folio.id


def test_show_reads_only(works_env, registry):
    _minted_chain(works_env)
    before_rows = fetch_all(registry, "SELECT * FROM identifiers ORDER BY SourceId")
    before_pool = fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'")
    digest = hashlib.sha256(works_env.read_bytes()).hexdigest()
    assert _run("works", "show", "folio-instance/f-1").exit_code == 0
    assert fetch_all(registry, "SELECT * FROM identifiers ORDER BY SourceId") == before_rows
    assert (
        fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'")
        == before_pool
    )
    assert hashlib.sha256(works_env.read_bytes()).hexdigest() == digest


def test_show_of_a_work_nobody_knows_is_one_error_line(works_env):
    with SqliteWorksStore(works_env):
        pass
    result = _run("works", "show", "sierra-system-number/b9999999")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: 'sierra-system-number/b9999999' is known neither to the registry nor to the works "
        "store (give Work[system/value], system/value or a canonical ID)"
    ]


def test_show_of_a_malformed_identifier_names_it(works_env):
    with SqliteWorksStore(works_env):
        pass
    result = _run("works", "show", "no-slash-here" + "x" * 500)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "no-slash-here" in line and len(line) < 400


def test_lookup_accepts_the_short_work_form(works_env):
    _sierra, folio = _minted_chain(works_env)
    short = _run("lookup", "folio-instance/f-1", "Item[folio-item/i-new]")
    assert short.exit_code == 0, short.output
    found = json.loads(short.stdout)
    bracket = json.loads(_run("lookup", folio.id).stdout)
    assert found[folio.id] == bracket[folio.id]
    assert "Item[folio-item/i-new]" in found


def test_a_malformed_subject_is_named_even_without_a_works_store(
    registry_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "missing.sqlite3"))
    result = _run("works", "show", "no slash here")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid source identifier 'no slash here'")
    assert not (tmp_path / "missing.sqlite3").exists()


def test_the_runbooks_succession_conflict_is_resolved_by_its_own_steps(works_env):
    """docs/operations/tasks.md, 'Resolve a succession conflict', step by step on the command
    line: the mapping is re-pointed with `db retire-mapping` (the database refuses deleting it
    by hand)."""
    _sierra, folio = _minted_chain(works_env)
    rival = work(
        "axiell-collections-id",
        "x-1",
        indexed_at="2026-07-30T11:00:00.000Z",
        predecessor=("sierra-system-number", "b1000001"),
    )
    with SqliteWorksStore(works_env) as store:
        store.put_source([rival])
    assert _run("mint", "--source-identifiers", rival.id).exit_code == 0
    before = json.loads(_run("works", "show", folio.id).stdout)["succession"]
    assert before["holder"] == rival.id and before["conflict"] is not None

    # 3. The other record's source loses its predecessor reference; 4. its mapping is retired.
    del rival.document["state"]["predecessorIdentifier"]
    with SqliteWorksStore(works_env) as store:
        store.put_source([rival])
    retired = _run("db", "retire-mapping", rival.id, "--reason", "not the successor of b1000001")
    assert retired.exit_code == 0, retired.output
    assert json.loads(retired.stdout)["still_mapped_by"] == 2
    # 5. Both minted again: no conflict; 6. the kept record was not the tie rule's holder.
    again = _run("mint", "--source-identifiers", folio.id, rival.id)
    assert json.loads(again.stdout)["succession_conflicts"] == []
    assert _run("works", "repair-succession", "--apply").exit_code == 0

    after = json.loads(_run("works", "show", folio.id).stdout)
    assert after["succession"]["conflict"] is None
    assert after["succession"]["holder"] == folio.id
    assert after["identified_document"]["held_by"] == folio.id
    own = json.loads(_run("lookup", rival.id).stdout)[rival.id]
    assert own != after["canonical_id"]
