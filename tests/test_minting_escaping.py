"""Values with quotes and backslashes are stored verbatim whatever the session's SQL mode.

The minter spells its large IN-lists and VALUES lists out with pymysql's escaping for the
connection's current mode (`minting.statements._string_escaper`). With `NO_BACKSLASH_ESCAPES` a
backslash is an ordinary character and only quotes are doubled; that branch was untested.
"""

from __future__ import annotations

import pytest
from db_helpers import fetch_all
from minting_helpers import fill_pool
from pymysql.constants import SERVER_STATUS

from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest

AWKWARD = [
    "O'Brien",
    "back\\slash",
    "ends with a backslash\\",
    "\\'",
    "''",
    "\\\\'\\",
    "a\\nb",
    "%_",
    "quote'\\'mix",
    "Robert'); DROP TABLE identifiers;--",
]


def _no_backslash_escapes(settings):
    def factory():
        conn = connect(settings)
        with conn.cursor() as cursor:
            cursor.execute(
                "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')"
            )
        conn.commit()
        assert conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
        return conn

    return factory


@pytest.mark.parametrize("mode", ["NO_BACKSLASH_ESCAPES", "default"])
def test_awkward_values_are_stored_and_found_verbatim(registry, connect_registry, mode):
    fill_pool(registry, len(AWKWARD) + 2)
    factory = _no_backslash_escapes(registry) if mode != "default" else connect_registry
    sources = [SourceIdentifier("Work", "awkward'\\system", value) for value in AWKWARD]
    heirs = [SourceIdentifier("Image", "heir\\'s", value) for value in AWKWARD]
    with Minter(factory) as minter:
        minted = minter.mint_ids(
            [MintRequest(s) for s in sources]
            + [MintRequest(h, s) for h, s in zip(heirs, sources, strict=True)]
        )
        assert {r.outcome for s, r in minted.items() if s in sources} == {MintOutcome.MINTED}
        assert all(
            minted[h].canonical_id == minted[s].canonical_id
            for h, s in zip(heirs, sources, strict=True)
        )
        # Found again through the literal IN-lists, in both branches of the lookup statement.
        assert minter.lookup_ids(sources + heirs) == {
            s: minted[s].canonical_id for s in sources + heirs
        }
    # Read back with bound parameters on an ordinary session: byte for byte as given.
    stored = fetch_all(
        registry, "SELECT OntologyType, SourceSystem, SourceId, CanonicalId FROM identifiers"
    )
    assert sorted(stored) == sorted(
        (*source.as_key(), minted[source].canonical_id) for source in sources + heirs
    )
    # And an ordinary minter finds every one of them.
    with Minter(connect_registry) as plain:
        assert plain.lookup_ids(sources) == {s: minted[s].canonical_id for s in sources}
