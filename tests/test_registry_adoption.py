"""Adopting a registry the reference port created (`idminter db adopt`): the RFC's latin1 tables
converted into this project's, online, with the legacy migration's guarantees."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable

import pymysql
import pytest
from click.testing import CliRunner
from db_helpers import clients_running, fetch_all, registry_factory, run_statements
from legacy_helpers import random_id, scratch_database, tables, triggers
from port_helpers import (
    FREE_IDS,
    PORT_MIGRATION,
    SPECIAL_ROWS,
    create_port_registry,
    port_registry_rows,
    write_port_rows,
)
from works_helpers import fill_pool, node, work

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import LegacyMigrationError, LegacyVerificationError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, connect
from idminter_pipeline.registry.invariants import MAPPING_GUARD_NAMES, POOL_GUARD_NAMES
from idminter_pipeline.registry.legacy_migration.adopt import (
    Variant,
    adopt,
    adoption_status,
    finalize_adoption,
    rollback_adoption,
    sync_adoption,
)
from idminter_pipeline.registry.legacy_migration.adopt.copy import ADOPT_TRIGGER_NAMES
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.registry.schema import (
    DriftKind,
    migration_status,
    rollback_migrations,
    schema_drift,
)
from idminter_pipeline.works.documents import IdentifiedWork
from idminter_pipeline.works.stores import SqliteWorksStore

ROWS = 10_000
B_LOWER = SourceIdentifier("Work", "sierra-system-number", "b1161044x")
B_UPPER = SourceIdentifier("Work", "sierra-system-number", "B1161044X")
VARIANT = Variant(B_UPPER.as_key(), B_LOWER.as_key(), "ab2c3d4e")

MAPPINGS_CHECKPOINT_MIGRATION = "0010_adoption_mapping_checkpoint"


@pytest.fixture
def port_database(server_settings):
    yield from scratch_database(server_settings)


@pytest.fixture
def port_registry(port_database):
    create_port_registry(port_database, port_registry_rows(ROWS))
    return port_database


def _port_rows(settings, mappings="identifiers", ids="canonical_ids"):
    """Every mapping and canonical ID as exact utf8mb4 bytes, whichever table holds them."""
    parts = ", ".join(
        f"CAST(CONVERT({c} USING utf8mb4) AS BINARY)"
        for c in ("OntologyType", "SourceSystem", "SourceId", "CanonicalId")
    )
    return (
        set(fetch_all(settings, f"SELECT {parts}, CAST(CreatedAt AS DATETIME(6)) FROM {mappings}")),
        set(
            fetch_all(
                settings,
                "SELECT CAST(CONVERT(CanonicalId USING utf8mb4) AS BINARY), "
                f"CAST(CONVERT(Status USING utf8mb4) AS BINARY) FROM {ids}",
            )
        ),
    )


def _show_create(settings, table):
    return fetch_all(settings, f"SHOW CREATE TABLE `{table}`")[0][1]


def _drift(settings):
    conn = connect(settings)
    try:
        return schema_drift(conn)
    finally:
        conn.close()


def _env(monkeypatch, settings, store_path=None):
    for name, value in {
        "RDS_PRIMARY_HOST": settings.host,
        "RDS_PORT": str(settings.port),
        "RDS_USERNAME": settings.username,
        "RDS_PASSWORD": settings.password,
        "IDENTIFIERS_DATABASE": settings.database,
    }.items():
        monkeypatch.setenv(name, value)
    if store_path is not None:
        monkeypatch.setenv("WORKS_STORE_PATH", str(store_path))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)


def _store_as_the_port_left_it(path):
    """Source works as the transformers send them (one in a case the port merged), and an
    identified document as the port wrote it (an item in a merged case)."""
    with SqliteWorksStore(path) as store:
        store.put_source(
            [
                work("sierra-system-number", "B1161044X"),  # the port gave it b1161044x's ID
                work("sierra-system-number", "b2000001"),  # exact
                work("sierra-system-number", "b00000007"),  # exact, generated
            ]
        )
        identified = {
            "state": {
                "sourceIdentifier": node("sierra-system-number", "Work", "b2000001")[
                    "sourceIdentifier"
                ],
                "canonicalId": "ABCD2345",
            },
            "data": {"items": [{"id": node("miro-image-number", "Image", "v0012345")}]},
        }
        store.write_identified(
            [IdentifiedWork("ABCD2345", "Work[sierra-system-number/b2000001]", identified)]
        )


def test_dry_run_reports_what_changes_and_exits_non_zero_for_a_decision(
    port_registry, tmp_path, monkeypatch
):
    store_path = tmp_path / "works.sqlite3"
    _store_as_the_port_left_it(store_path)
    _env(monkeypatch, port_registry, store_path)
    before = (tables(port_registry), _port_rows(port_registry))

    result = CliRunner().invoke(main, ["db", "adopt", "--dry-run", "--json"])
    assert result.exit_code == 3, result.output
    report = json.loads(result.output)
    assert report["port_tables"] is True
    assert report["mappings"] == ROWS + len(SPECIAL_ROWS)
    assert report["canonical_ids"] == {"assigned": ROWS + len(SPECIAL_ROWS) - 1, "free": 3}
    assert report["collation_change"]["identifiers.SourceId"] == (
        "latin1/latin1_swedish_ci -> utf8mb4/utf8mb4_bin"
    )
    findings = report["findings"]
    reencoded = findings["rows_reencoded_from_latin1"]
    assert reencoded["count"] == 3
    assert {row[3] for row in reencoded["examples"]} == {
        "Bücher Ærø ñ",
        "Müller, Hans",
        "José Saramago",
    }
    assert set(findings["ids_minted_under_older_rules"]["examples"]) >= {
        "ABCD2345",
        "1bcdefgh",
        "xyz",
    }
    assert findings["ids_not_fitting_varchar8_ascii"]["count"] == 0
    # The forms works use that the port resolved to another key's row: one in the source
    # works, one in an identified document.
    assert report["variants_in_use"] == [
        {
            "source": "Image[miro-image-number/v0012345]",
            "resolved_to": "Image[miro-image-number/V0012345]",
            "resolved_key": ["Image", "miro-image-number", "V0012345"],
            "canonical_id": "1bcdefgh",
        },
        {
            "source": "Work[sierra-system-number/B1161044X]",
            "resolved_to": "Work[sierra-system-number/b1161044x]",
            "resolved_key": ["Work", "sierra-system-number", "b1161044x"],
            "canonical_id": "ab2c3d4e",
        },
    ]
    assert report["needs_decision"] is True and report["blocking"] is False
    text = CliRunner().invoke(main, ["db", "adopt", "--dry-run"])
    assert text.exit_code == 3
    assert "A PERSON MUST DECIDE" in text.output
    # Nothing written.
    assert (tables(port_registry), _port_rows(port_registry)) == before

    listed = CliRunner().invoke(main, ["db", "adopt-variants"])
    assert listed.exit_code == 3
    assert [json.loads(line)["source"] for line in listed.output.splitlines()] == [
        "Image[miro-image-number/v0012345]",
        "Work[sierra-system-number/B1161044X]",
    ]


def test_a_swap_needs_the_decision_on_variants(port_registry, monkeypatch):
    _env(monkeypatch, port_registry)
    result = CliRunner().invoke(main, ["db", "adopt"])
    assert result.exit_code == 2
    assert "--register-variants FILE" in result.output and "--no-variants" in result.output
    assert "identifiers_new" not in tables(port_registry)


def _port_minter(written: list[str]) -> Callable[[Connection], None]:
    """The port keeps minting while the adoption runs: a claimed free ID, then its mapping, as
    the port writes them, and sometimes an alias of an existing ID (its predecessor rule). The
    guard triggers refuse it for the instant between the rename and the swap's record."""
    rng = random.Random(11)
    indexes = itertools.count(1)

    def mint(conn: Connection) -> None:
        index = next(indexes)
        canonical = random_id(rng)
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, 'assigned')",
                    (canonical,),
                )
                cursor.execute(
                    "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, "
                    "CanonicalId) VALUES ('Work', 'folio-instance', %s, %s)",
                    (f"in{index:08d}é", canonical),
                )
                if index % 5 == 0:
                    cursor.execute(
                        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, "
                        "CanonicalId) VALUES ('Item', 'folio-item', %s, %s)",
                        (f"it{index:08d}", canonical),
                    )
            conn.commit()
            written.append(canonical)
        except Exception as error:
            conn.rollback()
            # A deadlock with the adoption's re-copy is retried, as the port's callers do.
            retried = getattr(error, "args", (None,))[0] in (1205, 1213)
            if not retried and "written only by" not in str(error):
                raise
        time.sleep(0.002)

    return mint


def _port_lookups(conn: Connection, answers: list) -> None:
    """The port's lookups go on too, in its collation: B1161044X finds b1161044x's row."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT CanonicalId FROM identifiers WHERE OntologyType = 'Work' "
            "AND SourceSystem = 'sierra-system-number' AND SourceId IN ('B1161044X')"
        )
        answers.append(cursor.fetchall())
    conn.rollback()


def test_adoption_while_the_port_mints_and_looks_up(port_registry):
    written: list[str] = []
    answers: list = []

    def lookups(conn: Connection) -> None:
        _port_lookups(conn, answers)

    with clients_running(port_registry, _port_minter(written), lookups) as errors:
        held = adopt(registry_factory(port_registry), batch_size=1000, swap=False)
        assert held.status == "copied and verified; not swapped"
        # Held synced: the port is still live, writing; a sync catches the copy up.
        time.sleep(0.3)
        assert not errors, errors
        synced = sync_adoption(registry_factory(port_registry), batch_size=1000)
        assert synced.changes_applied > 0
        report = adopt(registry_factory(port_registry), batch_size=1000, variants=[VARIANT])
        time.sleep(0.2)
    assert not errors, errors
    assert report.status == "swapped", report
    assert report.verified and report.variants_registered == 1
    assert len(written) > 50
    # The port found b1161044x's ID for B1161044X throughout (the registered variant after
    # the swap), but for the instant between the rename and the registration.
    assert {rows for rows in answers} <= {(("ab2c3d4e",),), ()}
    assert sum(1 for rows in answers if rows) > len(answers) * 0.9

    # Every row the port ever wrote is in the adopted tables, byte for byte after re-encoding,
    # with its CreatedAt: no published ID changed. The port's tables are kept as they were.
    kept = _port_rows(port_registry, "identifiers_port", "canonical_ids_port")
    live = _port_rows(port_registry)
    assert kept[0] <= live[0] and kept[1] <= live[1]
    variant_row = (b"Work", b"sierra-system-number", b"B1161044X", b"ab2c3d4e")
    assert variant_row in {row[:4] for row in live[0]}
    assert _drift(port_registry).kind is DriftKind.NONE
    # The registry's invariant guards are on the live tables, not left behind on the kept ones.
    guarded = set(
        fetch_all(
            port_registry,
            "SELECT event_object_table, trigger_name FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE()",
        )
    )
    assert {("identifiers", n) for n in MAPPING_GUARD_NAMES} <= guarded
    assert {("canonical_ids", n) for n in POOL_GUARD_NAMES} <= guarded
    with pytest.raises(pymysql.err.OperationalError, match="mapping-undeletable"):
        run_statements(port_registry, "DELETE FROM identifiers WHERE SourceId = 'b1161044x'")
    history = {v for (v,) in fetch_all(port_registry, "SELECT migration_id FROM _yoyo_migration")}
    assert PORT_MIGRATION not in history
    assert not set(ADOPT_TRIGGER_NAMES) & triggers(port_registry)

    # This project's minter now works on it: exact lookups, the registered variant, published
    # IDs unchanged, the other variants (not registered) new.
    fill_pool(registry_factory(port_registry), 100)
    with Minter(registry_factory(port_registry)) as minter:
        assert minter.lookup_ids([B_LOWER, B_UPPER]) == {
            B_LOWER: "ab2c3d4e",
            B_UPPER: "ab2c3d4e",
        }
        minted = minter.mint_ids(
            [
                MintRequest(SourceIdentifier("Work", "sierra-system-number", "b1161044X")),
                MintRequest(SourceIdentifier("Concept", "label-derived", "Jose Saramago")),
                MintRequest(SourceIdentifier("Concept", "label-derived", "José Saramago")),
            ]
        )
    ids = {source: result.canonical_id for source, result in minted.items()}
    assert ids[SourceIdentifier("Concept", "label-derived", "José Saramago")] == "j0sesara"
    published = {row[3].decode() for row in kept[0]}
    new = {
        ids[SourceIdentifier("Work", "sierra-system-number", "b1161044X")],
        ids[SourceIdentifier("Concept", "label-derived", "Jose Saramago")],
    }
    assert len(new) == 2 and not new & published


def test_adoption_resumes_after_an_interruption_and_rolls_back(port_registry):
    batches = []

    def interrupt(progress):
        batches.append(progress.rows_copied)
        if len(batches) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adopt(registry_factory(port_registry), batch_size=1000, progress=interrupt, swap=False)
    state = fetch_all(port_registry, "SELECT Phase, RowsCopied FROM legacy_migration_state")
    assert state == [("copying", 3000)]
    # The port writes in between: logged, re-copied.
    write_port_rows(port_registry, [("Work", "calm-record-id", "late-ÆØ", "la7ee2ab")])
    expected = _port_rows(port_registry)
    report = adopt(registry_factory(port_registry), batch_size=1000, variants=[])
    assert report.status == "swapped"
    assert any("resuming after 3000" in message for message in report.messages)
    assert _port_rows(port_registry) == expected

    # This project's minter writes after the swap; a rollback copies that back.
    with Minter(registry_factory(port_registry)) as minter:
        minted = minter.mint_ids([MintRequest(SourceIdentifier("Work", "calm-record-id", "new-1"))])
    rolled = rollback_adoption(registry_factory(port_registry))
    assert rolled.rows_copied_back == 1
    assert _drift(port_registry).kind is DriftKind.PORT
    mappings, _ = _port_rows(port_registry)
    assert (
        b"Work",
        b"calm-record-id",
        b"new-1",
        minted[SourceIdentifier("Work", "calm-record-id", "new-1")].canonical_id.encode(),
    ) in {row[:4] for row in mappings}
    assert {"identifiers_new", "canonical_ids_new", "identifiers_port"} & tables(
        port_registry
    ) == set()
    assert PORT_MIGRATION in {
        v for (v,) in fetch_all(port_registry, "SELECT migration_id FROM _yoyo_migration")
    }

    # Adopted again, then finalized: the port's tables are gone for good.
    assert adopt(registry_factory(port_registry), batch_size=1000, variants=[]).status == "swapped"
    assert finalize_adoption(registry_factory(port_registry)).status == "finalized"
    assert {"identifiers_port", "canonical_ids_port"} & tables(port_registry) == set()
    with pytest.raises(LegacyMigrationError, match="nothing to roll back"):
        rollback_adoption(registry_factory(port_registry))


def _kill_adoption_sessions(settings):
    """Kill every idle session on the registry but this one: the adoption's, between batches."""
    killer = connect(settings)
    try:
        with killer.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
                "AND info IS NULL AND id <> CONNECTION_ID()"
            )
            for (pid,) in cursor.fetchall():
                cursor.execute(f"KILL {int(pid)}")
    finally:
        killer.close()


def test_an_adoption_killed_in_the_mappings_copy_resumes_at_its_checkpoint(
    port_registry, session_database
):
    def kill_after_two_mapping_batches(progress):
        if progress.phase == "copying mappings" and progress.rows_copied == 2000:
            _kill_adoption_sessions(port_registry)

    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
        adopt(
            registry_factory(port_registry),
            batch_size=1000,
            progress=kill_after_two_mapping_batches,
            swap=False,
        )
    every_id = ROWS + len(SPECIAL_ROWS) - 1 + len(FREE_IDS)
    # The canonical IDs' walk is done; the mappings' checkpoint and copy agree.
    assert fetch_all(
        port_registry,
        "SELECT Phase, CopyTable, RowsCopied, MappingsCopied FROM legacy_migration_state",
    ) == [("copying", "identifiers", every_id, 2000)]
    assert fetch_all(port_registry, "SELECT COUNT(*) FROM identifiers_new") == [(2000,)]
    assert fetch_all(port_registry, "SELECT COUNT(*) FROM canonical_ids_new") == [(every_id,)]
    # The port writes in between, before and after the checkpoint: logged, re-copied.
    write_port_rows(
        port_registry,
        [
            ("Work", "sierra-system-number", "b00000500é", "ea7ly2ab"),
            ("Work", "sierra-system-number", "b00009999Ø", "la7ee3ab"),
        ],
    )
    expected = _port_rows(port_registry)

    resumed = []
    report = adopt(
        registry_factory(port_registry), batch_size=1000, variants=[], progress=resumed.append
    )
    assert report.status == "swapped"
    assert any(
        f"resuming after {every_id} canonical IDs and 2000 mappings" in message
        for message in report.messages
    )
    # The canonical IDs are not walked again; the mappings' walk goes on after its checkpoint.
    assert not [p for p in resumed if p.phase == "copying"]
    walked = [p.rows_copied for p in resumed if p.phase == "copying mappings"]
    assert walked[0] == 3000 and walked[-1] == report.mappings_copied
    assert _port_rows(port_registry) == expected
    # The copy of the mappings got its secondary index and foreign key after the walk: the
    # adopted tables are what sql/ builds.
    for table in ("identifiers", "canonical_ids"):
        assert _show_create(port_registry, table) == _show_create(session_database, table)


def test_an_adoption_started_before_the_mappings_checkpoint_existed_resumes(port_registry):
    """A registry whose copy began with the checkpoint's migration pending: its status reads,
    and the next run applies that migration and resumes from the canonical IDs' cursor."""

    def interrupt(progress):
        if progress.rows_copied == 2000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adopt(registry_factory(port_registry), batch_size=1000, progress=interrupt, swap=False)
    # Down to and including the checkpoint's migration, whatever later migrations add.
    factory = registry_factory(port_registry)
    applied = [state.version for state in migration_status(factory) if state.applied]
    rollback_migrations(factory, count=len(applied) - applied.index(MAPPINGS_CHECKPOINT_MIGRATION))
    assert "MappingsCopied" not in {
        row[0] for row in fetch_all(port_registry, "SHOW COLUMNS FROM legacy_migration_state")
    }
    status = adoption_status(registry_factory(port_registry))
    assert (status["phase"], status["canonical_ids_copied"], status["mappings_copied"]) == (
        "copying",
        2000,
        0,
    )
    expected = _port_rows(port_registry)
    report = adopt(registry_factory(port_registry), batch_size=1000, variants=[])
    assert report.status == "swapped"
    assert any("resuming after 2000 canonical IDs" in message for message in report.messages)
    assert _port_rows(port_registry) == expected


@pytest.mark.parametrize(
    ("guard", "change"),
    [
        (
            "idminter_new_guard_bu",
            "UPDATE identifiers_new SET CanonicalId = 'xyz' WHERE SourceId = 'b1161044x'",
        ),
        (
            "idminter_new_guard_bu",
            "UPDATE identifiers_new SET CreatedAt = CreatedAt + INTERVAL 1 SECOND "
            "WHERE CanonicalId = 'ab2c3d4e'",
        ),
        (
            "idminter_new_ids_bu",
            "UPDATE canonical_ids_new SET Status = 'free' WHERE CanonicalId = 'ab2c3d4e'",
        ),
    ],
    ids=["a mapping's canonical ID", "a mapping's CreatedAt", "a canonical ID's status"],
)
def test_the_verification_refuses_a_copy_changed_behind_its_back(port_registry, guard, change):
    adopt(registry_factory(port_registry), batch_size=1000, swap=False)
    conn = connect(port_registry)
    try:
        with conn.cursor() as cursor:
            # Past the guard triggers, as only someone with DROP TRIGGER could.
            cursor.execute(f"DROP TRIGGER {guard}")
            cursor.execute(change)
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(LegacyVerificationError, match="NOT swapped") as error:
        adopt(registry_factory(port_registry), batch_size=1000, variants=[])
    assert "ab2c3d4e" in error.value.offending
    assert "identifiers_port" not in tables(port_registry)
    assert _drift(port_registry).kind is DriftKind.PORT


def test_dagster_adoption_asset_needs_the_decision_then_swaps_with_metadata(port_registry):
    import dagster as dg  # noqa: PLC0415

    from idminter_pipeline.defs.legacy.assets import registry_adoption  # noqa: PLC0415
    from idminter_pipeline.defs.resources import RegistryDatabase  # noqa: PLC0415

    resources = {"registry_database": RegistryDatabase.from_settings(port_registry)}
    undecided = dg.materialize([registry_adoption], resources=resources, raise_on_error=False)
    assert not undecided.success
    assert "identifiers_new" not in tables(port_registry)
    result = dg.materialize(
        [registry_adoption],
        resources=resources,
        run_config={"ops": {"registry_adoption": {"config": {"no_variants": True}}}},
    )
    metadata = result.asset_materializations_for_node("registry_adoption")[0].metadata
    assert metadata["status"].value == "swapped"
    assert metadata["verified"].value is True
    assert metadata["mappings"].value == ROWS + len(SPECIAL_ROWS)
    assert metadata["canonical_ids_copied"].value == ROWS + len(SPECIAL_ROWS) - 1 + len(FREE_IDS)
    assert metadata["variants_registered"].value == 0
    assert _drift(port_registry).kind is DriftKind.NONE
