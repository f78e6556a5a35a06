"""Batch lookup: mixed ontology types, grouping and chunking, the primary key, PAD SPACE."""

import pytest
from explain_plans import explain
from minting_helpers import fill_pool, register, statements_sent, work

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest, collation_key
from idminter_pipeline.registry.minting.statements import keyed_select


def test_lookup_returns_only_existing_ids_across_ontology_types(registry, minter):
    """Notebook, "Batch lookup": two found, an Image under a Work's key and a new one not."""
    register(
        registry,
        {
            ("Work", "sierra-system-number", "1001768"): "nvkdnjxp",
            ("Work", "sierra-system-number", "1007167"): "swbrj79k",
            ("Work", "sierra-system-number", "1007828"): "a2345bcd",
        },
    )
    batch = [
        work("sierra-system-number", "1001768"),
        work("sierra-system-number", "1007167"),
        SourceIdentifier("Image", "sierra-system-number", "1007828"),
        work("axiell-collections-id", "DOES-NOT-EXIST"),
    ]
    assert minter.lookup_ids(batch) == {batch[0]: "nvkdnjxp", batch[1]: "swbrj79k"}


def test_lookup_chunks_and_groups_return_every_key(registry, connect_registry):
    mappings = {}
    for i in range(40):
        ontology = ("Work", "Image", "Concept")[i % 3]
        mappings[(ontology, f"system-{i % 4}", f"v{i:03d}")] = f"abcd{i:04d}".translate(
            str.maketrans("01", "xy")
        )
    register(registry, mappings)
    wanted = [SourceIdentifier(*key) for key in mappings] + [work("system-0", "absent")]
    with Minter(connect_registry, lookup_chunk_size=3) as minter:
        found = minter.lookup_ids(wanted)
        sql, branches = keyed_select(
            minter.connection, wanted, chunk_size=minter.lookup_chunk_size, lock=False
        )
    assert found == {SourceIdentifier(*key): cid for key, cid in mappings.items()}
    # 12 (OntologyType, SourceSystem) groups, each split into chunks of at most 3 values.
    assert len(branches) > 12
    assert sql.count("UNION ALL") == len(branches) - 1


def test_chunk_size_is_clamped(connect_registry):
    assert Minter(connect_registry, lookup_chunk_size=0).lookup_chunk_size == 1
    assert Minter(connect_registry, lookup_chunk_size=10**9).lookup_chunk_size == 999


def test_every_lookup_branch_uses_the_primary_key(registry, conn, minter):
    fill_pool(registry, 1)
    with conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('abcdefgh', 'assigned')"
        )
        rows = [(("Work", "Image")[i % 2], "sys", f"value-{i}", "abcdefgh") for i in range(3000)]
        rows += [("Concept", f"sys-{i % 5}", f"value-{i}", "abcdefgh") for i in range(100)]
        # Rows no branch asks for, so the lookup covers a small part of the table, as it does
        # in production: when it covers the whole table, MySQL 9's cost model rightly prefers
        # one covering scan of idx_canonical to a thousand primary-key ranges.
        ballast = [("Agent", "sys", f"other-{i}", "abcdefgh") for i in range(40_000)]
        cursor.executemany(
            "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
            "VALUES (%s, %s, %s, %s)",
            rows + ballast,
        )
        cursor.execute("ANALYZE TABLE identifiers")
        cursor.fetchall()
    conn.commit()
    # Two groups of 1,500 keys (two chunks each at the default 999) and five small groups.
    keys = [SourceIdentifier(*row[:3]) for row in rows]
    for lock in (False, True):
        sql, branches = keyed_select(conn, keys, chunk_size=minter.lookup_chunk_size, lock=lock)
        plan = explain(conn, sql)
        on_table = [step for step in plan if step.table == "identifiers"]
        assert len(on_table) == len(branches) == 9, plan
        for step in on_table:
            assert step.key == "PRIMARY", step
            assert step.access in ("range", "const", "eq_ref", "ref"), step


def test_lookup_is_one_select_and_one_commit_whatever_the_size(registry, minter):
    register(registry, {("Work", "s", f"v{i}"): f"abcd{c}" for i, c in enumerate("efghjk")})
    conn = minter.connection
    for size in (1, 6, 5000):
        keys = [work("s", f"v{i}") for i in range(size)]
        count, found = statements_sent(conn, lambda keys=keys: minter.lookup_ids(keys))
        assert count == 2
        assert len(found) == min(size, 6)


def test_lookup_of_nothing_sends_nothing(minter):
    conn = minter.connection
    assert statements_sent(conn, lambda: None) == (0, None)  # calibration
    assert statements_sent(conn, lambda: minter.lookup_ids([])) == (0, {})


def test_lookup_refuses_what_is_not_a_source_identifier(minter):
    with pytest.raises(InvalidInputError, match="'Work\\[s/v\\]'"):
        minter.lookup_ids(["Work[s/v]"])


def test_collation_key_mirrors_pad_space_only():
    assert collation_key("Work", "s", "b1  ") == collation_key("Work", "s", "b1")
    assert collation_key("Work", "s", "B1") != collation_key("Work", "s", "b1")
    assert collation_key("Work", "s", "b1\t") != collation_key("Work", "s", "b1")
    assert collation_key("Work", "s", " b1") != collation_key("Work", "s", "b1")
    assert collation_key("Work", "s", "b1\u00a0") != collation_key("Work", "s", "b1")


def test_a_legacy_row_with_trailing_spaces_answers_the_request(registry, minter, conn):
    """utf8mb4_bin is PAD SPACE: the server finds 'b1 ' for 'b1'; the minter must not drop it."""
    register(registry, {("Work", "sierra-system-number", "b1 "): "legacyid"})
    fill_pool(registry, 3)
    source = work("sierra-system-number", "b1")
    assert minter.lookup_ids([source]) == {source: "legacyid"}
    result = minter.mint_ids([MintRequest(source)])
    assert result[source].canonical_id == "legacyid"
    assert result[source].outcome is MintOutcome.EXISTING
    with conn.cursor() as cursor:
        cursor.execute("SELECT SourceId FROM identifiers")
        assert cursor.fetchall() == (("b1 ",),)
    # A successor of the padded legacy row inherits its ID.
    successor = work("axiell-collections-id", "AC-1")
    inherited = minter.mint_ids([MintRequest(successor, source)])
    assert inherited[successor].canonical_id == "legacyid"
