"""A registry restored to an earlier point: the published IDs put back before minting resumes.

The rehearsal: mint, take a dump with the server's own dump tool, mint more (published), load the
dump into a new database as a restore would, run `idminter db recover-published`, then mint again:
no ID published after the dump goes to another record. Without the recovery the restored pool
hands them out again (the control), and Dagster's works asset refuses to mint on the restored
registry until the recovery has run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster_helpers import works_resources
from db_helpers import create_database, drop_database, fetch_all
from works_helpers import fill_pool, node, si, work

from idminter_pipeline.cli import main
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.works.restore import RegistryRestoredError
from idminter_pipeline.works.stores import SqliteWorksStore

DUMP_TOOLS = ("mariadb-dump", "mysqldump")
POOL = 200


def _dump_tool() -> str:
    for tool in DUMP_TOOLS:
        if shutil.which(tool):
            return tool
    pytest.skip("no mariadb-dump or mysqldump on PATH (make db installs mariadb-client)")


@contextmanager
def _restored_from(dump: Path, server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A new database loaded from `dump` with `idminter db load-dump --restore`, dropped after."""
    restored = create_database(server_settings, "restored_")
    drop_database(restored)  # load-dump creates it
    try:
        loaded = CliRunner().invoke(
            main, ["db", "load-dump", str(dump), "--database", restored.database, "--restore"]
        )
        assert loaded.exit_code == 0, loaded.output
        yield restored
    finally:
        drop_database(restored)


def _dump(settings, path: Path, tmp_path: Path) -> None:
    options = tmp_path / "dump.cnf"
    options.write_text(f"[client]\npassword={settings.password}\n")
    options.chmod(0o600)
    with path.open("wb") as out:
        subprocess.run(
            [
                _dump_tool(),
                f"--defaults-extra-file={options}",
                f"--host={settings.host}",
                f"--port={settings.port}",
                f"--user={settings.username}",
                "--single-transaction",
                "--no-tablespaces",
                settings.database,
            ],
            stdout=out,
            check=True,
        )


def _mint(*ids: str) -> dict:
    result = CliRunner().invoke(main, ["mint", "--source-identifiers", *ids])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _ids_of(settings, values: list[str]) -> dict[str, str]:
    marks = ",".join(["%s"] * len(values))
    rows = fetch_all(
        settings,
        f"SELECT SourceId, CanonicalId FROM identifiers WHERE SourceId IN ({marks})",
        tuple(values),
    )
    return dict(rows)


@pytest.fixture
def restore(registry_env, connect_registry, server_settings, tmp_path, monkeypatch):
    """Production minted `before` (dumped), then `after` (published, not in the dump); the
    dump loaded into a new database, which the environment then points at."""
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "works.sqlite3"))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    fill_pool(connect_registry, POOL)
    before = [f"b{n}" for n in range(10)]
    after = [f"a{n}" for n in range(50)]
    later = [f"n{n}" for n in range(POOL - len(before))]
    with SqliteWorksStore(tmp_path / "works.sqlite3") as store:
        store.put_source(work("sierra-system-number", v) for v in before + after + later)
    _mint(*(f"sierra-system-number/{v}" for v in before))
    dump = tmp_path / "registry.sql"
    _dump(registry_env, dump, tmp_path)
    _mint(*(f"sierra-system-number/{v}" for v in after))
    published_after = _ids_of(registry_env, after)
    assert len(published_after) == 50
    restored = create_database(server_settings, "restored_")
    drop_database(restored)  # load-dump creates it
    result = CliRunner().invoke(
        main, ["db", "load-dump", str(dump), "--database", restored.database, "--restore"]
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("IDENTIFIERS_DATABASE", restored.database)
    yield {"settings": restored, "after": after, "later": later, "published": published_after}
    drop_database(restored)


def test_the_restored_registry_has_forgotten_what_was_published_after_the_dump(restore):
    assert _ids_of(restore["settings"], restore["after"]) == {}
    free = fetch_all(
        restore["settings"], "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free'"
    )
    assert set(restore["published"].values()) <= {row[0] for row in free}


def test_without_the_recovery_minting_hands_published_ids_to_new_records(restore):
    """The control: what the recovery prevents does happen without it."""
    _mint(*(f"sierra-system-number/{v}" for v in restore["later"][:180]))
    new_ids = set(_ids_of(restore["settings"], restore["later"][:180]).values())
    assert new_ids & set(restore["published"].values())


def test_the_dry_run_names_what_it_would_restore_and_writes_nothing(restore):
    result = CliRunner().invoke(main, ["db", "recover-published"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["applied"] is False
    assert report["mappings_to_restore"] == 50
    assert report["ids_to_reassign"] == 50
    assert report["conflicts"] == 0
    assert _ids_of(restore["settings"], restore["after"]) == {}


def test_after_the_recovery_no_published_id_is_reused(restore, monkeypatch):
    result = CliRunner().invoke(main, ["db", "recover-published", "--apply"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["mappings_restored"], report["ids_reassigned"]) == (50, 50)
    assert _ids_of(restore["settings"], restore["after"]) == restore["published"]
    # New records take other IDs (topped up past what the restored pool had left).
    settings = restore["settings"]
    fill_pool(lambda: connect(settings), 500)
    _mint(*(f"sierra-system-number/{v}" for v in restore["later"]))
    new_ids = set(_ids_of(settings, restore["later"]).values())
    assert len(new_ids) == len(restore["later"])
    assert not new_ids & set(restore["published"].values())
    # Records published after the restore point keep their IDs when minted again.
    _mint(*(f"sierra-system-number/{v}" for v in restore["after"]))
    assert _ids_of(settings, restore["after"]) == restore["published"]
    again = CliRunner().invoke(main, ["db", "recover-published", "--apply"])
    assert json.loads(again.stdout)["mappings_restored"] == 0


def test_a_record_minted_again_before_the_recovery_is_a_conflict(restore):
    """Minting resumed on the restored registry before the recovery: five records published
    after the dump were minted again, from the restored pool. Whichever got an ID other than the
    one it had published is a conflict, named, its mapping unchanged; every other record gets its
    published ID back; no ID ends up with two records. A record whose published ID one of them
    took has lost its evidence (the new document replaced its document under that ID): it is
    neither restored nor reported, which is why minting must wait for the recovery."""
    published = restore["published"]
    again = restore["after"][:5]
    _mint(*(f"sierra-system-number/{v}" for v in again))
    second_ids = _ids_of(restore["settings"], again)
    moved = {v for v in again if second_ids[v] != published[v]}
    taken = {v for v in restore["after"] if v not in again and published[v] in second_ids.values()}
    # One minted again may take another's published ID: that other's evidence is lost too.
    lost = {v for v in again if published[v] in {second_ids[o] for o in again if o != v}}
    assert moved  # the restored pool handed out at least one published ID again
    result = CliRunner().invoke(main, ["db", "recover-published", "--apply"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    conflicts = {c["source"]: c for c in report["conflict_examples"]}
    assert set(conflicts) == {f"Work[sierra-system-number/{v}]" for v in moved - lost}
    for value in moved - lost:
        conflict = conflicts[f"Work[sierra-system-number/{value}]"]
        assert conflict["published_id"] == published[value]
        assert conflict["registry"] == f"maps it to {second_ids[value]}"
    untouched = [v for v in restore["after"] if v not in again and v not in taken]
    assert report["mappings_restored"] == len(untouched)
    now = _ids_of(restore["settings"], restore["after"])
    assert {v: now[v] for v in again} == second_ids
    assert {v: now[v] for v in untouched} == {v: published[v] for v in untouched}
    assert not taken & set(now)
    shared = fetch_all(
        restore["settings"],
        "SELECT CanonicalId FROM identifiers GROUP BY CanonicalId HAVING COUNT(*) > 1",
    )
    assert shared == []


def test_dagster_refuses_to_mint_on_the_restored_registry_until_the_recovery_ran(
    restore, registry, tmp_path
):
    from idminter_pipeline.defs.works.jobs import mint_works_by_id_job  # noqa: PLC0415
    from idminter_pipeline.defs.works.runs import NEWEST_ASSIGNMENT_KEY  # noqa: PLC0415

    defs = dg.Definitions(
        jobs=[mint_works_by_id_job],
        resources=works_resources(
            restore["settings"], tmp_path / "works.sqlite3", tmp_path / "alerts.log"
        ),
    )
    with dg.instance_for_test() as instance:
        # What production's last run recorded: its newest assignment, read from the registry
        # as it was before the restore (the original database).
        (newest,) = fetch_all(registry, "SELECT MAX(AssignedAt) FROM canonical_ids")[0]
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "identified_works",
                partition="2026-07-30-09:00",
                metadata={NEWEST_ASSIGNMENT_KEY: dg.MetadataValue.text(newest.isoformat())},
            )
        )
        job = defs.resolve_job_def("mint_works_by_id")
        config = {"source_identifiers": [f"sierra-system-number/{restore['later'][0]}"]}
        refused = job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)
        assert not refused.success
        (failure,) = refused.get_step_failure_events()
        assert RegistryRestoredError.__name__ in str(failure.step_failure_data.error)
        assert _ids_of(restore["settings"], restore["later"][:1]) == {}
        assert CliRunner().invoke(main, ["db", "recover-published", "--apply"]).exit_code == 0
        allowed = job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)
        assert allowed.success
        assert len(_ids_of(restore["settings"], restore["later"][:1])) == 1


WINDOWS = {"2026-07-30-09:00": "b", "2026-07-30-09:15": "a", "2026-07-30-09:30": "n"}
WORKS_PER_WINDOW = 20


@pytest.mark.parametrize("published_by", ["a window", "a run that stopped", "the by-id job"])
def test_the_works_asset_refuses_a_restored_registry_until_the_recovery_ran(
    published_by, works_store_env, registry_env, server_settings, monkeypatch
):
    """The whole cycle in Dagster: `identified_works` mints a window; a dump is taken; a second
    run publishes more (a window, a window run stopped part-way by an exhausted pool, or the
    by-id job); the dump is restored; the third window's run fails before minting anything;
    `idminter db recover-published --apply`; the third window mints, and no ID published after
    the dump went to one of its records. Each run records the registry's newest assignment
    however it ended, which is what the refusal compares the restored registry with."""
    from idminter_pipeline.defs.works.assets import identified_works  # noqa: PLC0415
    from idminter_pipeline.defs.works.jobs import mint_works_by_id_job  # noqa: PLC0415

    store_path = works_store_env
    tmp_path = store_path.parent
    # A run that stops: the pool holds the first window's IDs and half the second's.
    fill_pool(
        lambda: connect(registry_env),
        WORKS_PER_WINDOW * 3 // 2 if published_by == "a run that stopped" else POOL,
    )
    values = {
        key: [f"{prefix}{n}" for n in range(WORKS_PER_WINDOW)] for key, prefix in WINDOWS.items()
    }
    with SqliteWorksStore(store_path) as store:
        store.put_source(
            work("sierra-system-number", value, indexed_at=f"{key[:10]}T{key[11:]}:30.000Z")
            for key, window_values in values.items()
            for value in window_values
        )
    restored = create_database(server_settings, "restored_")
    drop_database(restored)  # load-dump creates it
    first, second, third = WINDOWS

    def resources(settings) -> dict:
        return works_resources(settings, store_path, tmp_path / "alerts.log")

    def materialize(settings, partition: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [identified_works],
            partition_key=partition,
            resources=resources(settings),
            instance=instance,
            run_config={"ops": {"identified_works": {"config": {"batch_size": 5}}}},
            raise_on_error=False,
        )

    def publish_more() -> None:
        if published_by == "the by-id job":
            job = dg.Definitions(jobs=[mint_works_by_id_job], resources=resources(registry_env))
            ids = [f"sierra-system-number/{value}" for value in values[second]]
            result = job.resolve_job_def("mint_works_by_id").execute_in_process(
                run_config={"source_identifiers": ids}, instance=instance
            )
            assert result.success
        else:
            result = materialize(registry_env, second)
            assert result.success is (published_by == "a window")

    try:
        with dg.instance_for_test() as instance:
            assert materialize(registry_env, first).success
            dump = tmp_path / "registry.sql"
            _dump(registry_env, dump, tmp_path)
            publish_more()
            published = _ids_of(registry_env, values[second])
            assert 0 < len(published) <= WORKS_PER_WINDOW
            loaded = CliRunner().invoke(
                main, ["db", "load-dump", str(dump), "--database", restored.database, "--restore"]
            )
            assert loaded.exit_code == 0, loaded.output
            monkeypatch.setenv("IDENTIFIERS_DATABASE", restored.database)
            fill_pool(lambda: connect(restored), POOL)

            refused = materialize(restored, third)
            assert not refused.success
            (failure,) = refused.get_step_failure_events()
            assert RegistryRestoredError.__name__ in str(failure.step_failure_data.error)
            assert _ids_of(restored, values[third]) == {}

            recovered = CliRunner().invoke(main, ["db", "recover-published", "--apply"])
            assert recovered.exit_code == 0, recovered.output
            assert json.loads(recovered.stdout)["mappings_restored"] == len(published)
            assert materialize(restored, third).success
            minted = _ids_of(restored, values[third])
            assert len(minted) == WORKS_PER_WINDOW
            assert not set(minted.values()) & set(published.values())
            assert _ids_of(restored, values[second]) == published
    finally:
        drop_database(restored)


def test_the_dry_run_reports_what_applying_then_does(
    works_store_env, registry_env, server_settings, tmp_path, monkeypatch
):
    """An item on two works is published in both documents, which the recovery reads in
    different batches: the dry run counts its mapping and its ID once, as applying does."""
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415
    from idminter_pipeline.works.restore import recover_published  # noqa: PLC0415

    fill_pool(lambda: connect(registry_env), POOL)
    works = [work("sierra-system-number", f"s{n}", items=("shared", f"own{n}")) for n in range(4)]
    with SqliteWorksStore(works_store_env) as store:
        store.put_source(works)
    dump = tmp_path / "registry.sql"
    _dump(registry_env, dump, tmp_path)
    _mint(*(f"sierra-system-number/s{n}" for n in range(4)))
    with _restored_from(dump, server_settings) as restored:
        factory = lambda: connect(restored)  # noqa: E731
        reports = {}
        with SqliteWorksStore(works_store_env) as store, Minter(factory) as minter:
            for apply in (False, True):
                report = recover_published(store, minter, factory, apply=apply, batch_documents=1)
                reports[apply] = (report.mappings_restored, report.ids_reassigned)
        # Four works and their own items, and the shared item: nine mappings, nine IDs.
        assert reports[True] == (9, 9)
        assert reports[False] == reports[True]


def test_an_id_two_records_share_is_restored_to_both_whatever_batches_they_fall_in(
    works_store_env, registry_env, server_settings, tmp_path
):
    """An item that inherited another work's item's ID: both documents publish the one ID, read
    in different batches; the second is not a conflict with the first, restored a batch before."""
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415
    from idminter_pipeline.works.restore import recover_published  # noqa: PLC0415

    fill_pool(lambda: connect(registry_env), POOL)
    successor = work("sierra-system-number", "s1")
    item = {
        **node("folio-item", "Item", "b"),
        "predecessorIdentifier": si("folio-item", "Item", "a"),
    }
    successor.document["data"]["items"] = [{"id": item}]
    with SqliteWorksStore(works_store_env) as store:
        store.put_source([work("sierra-system-number", "s0", items=("a",)), successor])
    dump = tmp_path / "registry.sql"
    _dump(registry_env, dump, tmp_path)
    _mint("sierra-system-number/s0")
    _mint("sierra-system-number/s1")
    published = _ids_of(registry_env, ["a", "b"])
    assert published["a"] == published["b"]
    with _restored_from(dump, server_settings) as restored:
        factory = lambda: connect(restored)  # noqa: E731
        with SqliteWorksStore(works_store_env) as store, Minter(factory) as minter:
            report = recover_published(store, minter, factory, apply=True, batch_documents=1)
        assert report.conflicts == 0, report.conflict_examples
        assert (report.mappings_restored, report.ids_reassigned) == (4, 3)
        assert _ids_of(restored, ["a", "b"]) == published


@pytest.mark.parametrize("predecessor_minted", ["before the dump", "with its successor"])
def test_a_successor_published_after_the_restore_point_is_a_successor_again(
    predecessor_minted, works_store_env, registry_env, server_settings, tmp_path
):
    """A work minted after the dump inherited its predecessor's ID, and its item its
    predecessor's item's; the predecessor minted before the dump or with it (its document
    replaced by the successor's, so published only through it). The recovery registers what was
    forgotten and records both inheritances again with the order they had, so the successor
    keeps its rank, the predecessor and its item their IDs, and minting both again writes the
    successor's document, as before the restore, with nothing for repair-succession to do."""
    fill_pool(lambda: connect(registry_env), POOL)
    predecessor = work("sierra-system-number", "b1")
    predecessor.document["data"]["items"] = [{"id": node("sierra-system-number", "Item", "i1")}]
    successor = work("folio-instance", "f1", predecessor=("sierra-system-number", "b1"))
    item = {
        **node("folio-item", "Item", "fi1"),
        "predecessorIdentifier": si("sierra-system-number", "Item", "i1"),
    }
    successor.document["data"]["items"] = [{"id": item}]
    # A work minted after the dump that then names as its predecessor a record with another ID:
    # its provenance row (a mismatch) takes a Seq the recovery does not record again, so new
    # Seqs would not be the old ones.
    with SqliteWorksStore(works_store_env) as store:
        store.put_source([predecessor, successor, work("sierra-system-number", "b0")])
        store.put_source([work("folio-instance", "m1")])
    _mint("sierra-system-number/b0")
    if predecessor_minted == "before the dump":
        _mint("sierra-system-number/b1")
    dump = tmp_path / "registry.sql"
    _dump(registry_env, dump, tmp_path)
    _mint("folio-instance/m1")
    with SqliteWorksStore(works_store_env) as store:
        store.put_source([work("folio-instance", "m1", predecessor=("sierra-system-number", "b0"))])
    assert _mint("folio-instance/m1")["works_failed"] == 0
    assert fetch_all(
        registry_env,
        "SELECT COUNT(*) FROM identifier_provenance WHERE Kind = 'predecessor_mismatch'",
    ) == [(1,)]
    minted = _mint("sierra-system-number/b1", "folio-instance/f1")
    assert minted["works_written"] == 1, minted
    published = _ids_of(registry_env, ["b1", "f1", "i1", "fi1"])
    assert published["b1"] == published["f1"] and published["i1"] == published["fi1"]
    inherited = (
        "SELECT Seq, SuccessorSourceId, PredecessorSourceId, CanonicalId "
        "FROM identifier_provenance WHERE Kind = 'inherited' ORDER BY Seq"
    )
    provenance = fetch_all(registry_env, inherited)
    with _restored_from(dump, server_settings) as restored:
        env = {"IDENTIFIERS_DATABASE": restored.database}
        recovered = CliRunner().invoke(main, ["db", "recover-published", "--apply"], env=env)
        assert recovered.exit_code == 0, recovered.output
        report = json.loads(recovered.stdout)
        assert report["conflicts"] == 0, report
        forgotten = 3 if predecessor_minted == "before the dump" else 5  # with m1
        assert (report["mappings_restored"], report["inheritances_restored"]) == (forgotten, 2)
        assert _ids_of(restored, ["b1", "f1", "i1", "fi1"]) == published
        # The work's inheritance has the Seq it had: the successor's rank is unchanged.
        work_edge = [row for row in provenance if row[1] == "f1"]
        assert [row for row in fetch_all(restored, inherited) if row[1] == "f1"] == work_edge
        again = CliRunner().invoke(
            main,
            ["mint", "--source-identifiers", "folio-instance/f1", "sierra-system-number/b1"],
            env=env,
        )
        summary = json.loads(again.stdout)
        assert summary["works_failed"] == 0, summary
        assert (summary["works_written"], summary["works_superseded"]) == (1, 1), summary
        assert _ids_of(restored, ["b1", "f1", "i1", "fi1"]) == published
        repair = CliRunner().invoke(main, ["works", "repair-succession"], env=env)
        assert json.loads(repair.stdout)["documents"] == [], repair.stdout
