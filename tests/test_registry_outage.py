"""Registry outages: the bound and its one clear error, and a COMMIT whose acknowledgement was lost.

Riding out a real 30-second outage of a private server is in `test_reliability_outage.py`. Here
the "outage" is a port nothing listens on (every connect is refused at once), so an outage longer
than the bound is certain; and the lost acknowledgement is a real COMMIT on the real server whose
answer never reaches the client.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest
from db_helpers import fetch_all
from minting_helpers import check_invariants, fill_pool, pool_counts, register, work

from idminter_pipeline.core.errors import InvalidInputError, RegistryOutageError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest
from idminter_pipeline.registry.outage import (
    DEFAULT_OUTAGE_SECONDS,
    OUTAGE_ENV,
    is_outage,
    outage_bound,
)
from idminter_pipeline.registry.pool import pool_health, top_up

VENV_BIN = Path(sys.executable).parent


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def unreachable() -> DatabaseSettings:
    return DatabaseSettings(port=_closed_port(), connect_timeout=2)


def test_the_bound_comes_from_the_parameter_then_the_environment_then_60_seconds():
    assert DEFAULT_OUTAGE_SECONDS == 60
    assert outage_bound(None, {}) == 60
    assert outage_bound(None, {OUTAGE_ENV: ""}) == 60
    assert outage_bound(None, {OUTAGE_ENV: " 45 "}) == 45
    assert outage_bound(None, {OUTAGE_ENV: "0.5"}) == 0.5
    assert outage_bound(0, {OUTAGE_ENV: "45"}) == 0
    assert outage_bound(90, {OUTAGE_ENV: "45"}) == 90


@pytest.mark.parametrize("raw", ["abc", "-1", "nan", "inf", "3601", "1e9", "60s"])
def test_a_bad_bound_is_refused_naming_it(raw):
    with pytest.raises(InvalidInputError) as caught:
        outage_bound(None, {OUTAGE_ENV: raw})
    assert OUTAGE_ENV in str(caught.value)
    assert repr(raw) in str(caught.value)


@pytest.mark.parametrize("value", [-1, float("nan"), True, "60"])
def test_a_bad_bound_parameter_is_refused_naming_it(value):
    with pytest.raises(InvalidInputError, match="outage_seconds"):
        outage_bound(value)


def test_every_outage_code_the_docs_list_is_one():
    from idminter_pipeline.core.settings import project_root  # noqa: PLC0415

    outages = (project_root() / "docs" / "design" / "outages.md").read_text(encoding="utf-8")
    listed = re.search(r"codes ((?:\d{4},\s+)*\d{4})\)", outages)
    assert listed is not None
    codes = [int(code) for code in re.findall(r"\d{4}", listed[1])]
    assert codes == [2002, 2003, 2005, 2006, 2013, 2014, 2055, 1053, 1927, 1290, 1836]
    for code in codes:
        assert is_outage(pymysql.err.OperationalError(code, "the server is away"))
    for code in (1040, 1044, 1045, 1062, 1146, 1205, 1213, 2000, 2015):
        assert not is_outage(pymysql.err.OperationalError(code, "not an outage"))


def test_only_errors_that_mean_the_server_is_away_are_outages():
    assert is_outage(pymysql.err.OperationalError(2003, "Can't connect"))
    assert is_outage(pymysql.err.OperationalError(2013, "Lost connection"))
    assert is_outage(pymysql.err.OperationalError(1290, "--read-only"))
    assert is_outage(pymysql.err.InterfaceError(0, ""))
    assert not is_outage(pymysql.err.OperationalError(1045, "Access denied"))
    assert not is_outage(pymysql.err.OperationalError(1213, "Deadlock"))
    assert not is_outage(pymysql.err.ProgrammingError(1064, "syntax"))
    assert not is_outage(ValueError("bad input"))


@pytest.mark.slow(seconds=12)
def test_an_outage_longer_than_the_bound_fails_each_entry_point_with_one_clear_error(unreachable):
    factory = lambda: connect(unreachable)  # noqa: E731
    with Minter(factory, outage_seconds=1) as minter:
        with pytest.raises(RegistryOutageError) as minting:
            minter.mint_ids([MintRequest(work("s", "b1"))])
        with pytest.raises(RegistryOutageError) as lookup:
            minter.lookup_ids([work("s", "b1")])
        # It reconnected between attempts rather than giving up at the first refusal.
        assert minter.stats.reconnects >= 2
        assert minter.stats.attempts >= 4
    with pytest.raises(RegistryOutageError) as topping:
        top_up(factory, 10, outage_seconds=1)
    with pytest.raises(RegistryOutageError) as health:
        pool_health(factory, outage_seconds=1)
    for caught, what in [
        (minting, "minting 1 identifier(s)"),
        (lookup, "looking up 1 identifier(s)"),
        (topping, "topping the pool up to 10 free IDs"),
        (health, "reading pool health"),
    ]:
        error = caught.value
        assert error.bound_seconds == 1
        assert error.attempts >= 2
        assert f"outage bound of 1s while {what}" in str(error)
        assert "(2003)" in error.last_error and str(unreachable.port) in error.last_error


def test_the_cli_prints_one_error_line_naming_the_bound_and_the_last_error(unreachable):
    env = {
        **os.environ,
        "RDS_PRIMARY_HOST": "127.0.0.1",
        "RDS_PORT": str(unreachable.port),
        OUTAGE_ENV: "2",
    }
    result = subprocess.run(
        [str(VENV_BIN / "idminter"), "mint-ids"],
        input='{"source": "Work[sierra-system-number/b1]"}\n',
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "outage bound of 2s while minting 1 identifier(s)" in errors[0]
    assert OUTAGE_ENV in errors[0]
    where = f"last error: cannot connect to the registry at 127.0.0.1:{unreachable.port}"
    assert where in errors[0]
    assert "Traceback" not in result.stderr


def _losing_the_acknowledgement_of_the_first_mint(settings: DatabaseSettings):
    """A connection factory whose first connection's first COMMIT is applied by the server, and
    then the connection drops before the client reads the answer."""
    state = {"connections": 0, "lost": 0}

    def factory():
        conn = connect(settings)
        state["connections"] += 1
        if state["connections"] == 1:
            real_commit = conn.commit
            commits = []

            def commit():
                commits.append(1)
                # The first COMMIT ends the minter's session setup; the second is the mint's.
                if len(commits) == 2:
                    real_commit()  # the server has committed ...
                    state["lost"] += 1
                    conn._force_close()  # ... and the answer never arrives
                    raise pymysql.err.OperationalError(
                        2013, "Lost connection to server during query"
                    )
                return real_commit()

            conn.commit = commit
        return conn

    return factory, state


def _provenance(settings):
    return fetch_all(
        settings,
        "SELECT Kind, SuccessorSourceId, CanonicalId, SeenCount FROM identifier_provenance "
        "ORDER BY Seq",
    )


def test_a_commit_whose_acknowledgement_was_lost_returns_the_committed_ids_once(registry):
    fill_pool(registry, 10)
    register(registry, {("Work", "sierra", "b1"): "abcdefgh"})
    requests = [
        MintRequest(SourceIdentifier("Image", "axiell", "AC-1"), work("sierra", "b1")),
        MintRequest(work("folio", "in1"), SourceIdentifier("Image", "axiell", "AC-1")),
        MintRequest(work("mets", "new")),
        MintRequest(work("sierra", "b1")),
    ]
    factory, state = _losing_the_acknowledgement_of_the_first_mint(registry)
    with Minter(factory) as minter:
        results = minter.mint_ids(requests, job_id="lost-ack")
        assert state["lost"] == 1
        assert minter.stats.retries == 1 and minter.stats.reconnects == 1
        stats = minter.stats
    minted_id = results[work("mets", "new")].canonical_id
    assert {str(s): (r.canonical_id, r.outcome) for s, r in results.items()} == {
        "Image[axiell/AC-1]": ("abcdefgh", MintOutcome.INHERITED),
        "Work[folio/in1]": ("abcdefgh", MintOutcome.INHERITED),
        "Work[mets/new]": (minted_id, MintOutcome.MINTED),
        "Work[sierra/b1]": ("abcdefgh", MintOutcome.EXISTING),
    }
    assert (stats.minted, stats.inherited, stats.existing) == (1, 2, 1)
    # One provenance row per inheritance, seen once: the retry wrote nothing again.
    assert _provenance(registry) == [
        ("inherited", "AC-1", "abcdefgh", 1),
        ("inherited", "in1", "abcdefgh", 1),
    ]
    assert pool_counts(registry) == {"free": 9, "assigned": 2}
    # A fresh minter sees what the client was told.
    with Minter(lambda: connect(registry)) as again:
        assert {s: r.canonical_id for s, r in again.mint_ids(requests).items()} == {
            s: r.canonical_id for s, r in results.items()
        }
    check_invariants(registry)


def test_a_commit_that_never_reached_the_server_is_redone(registry):
    """The session is killed before its COMMIT: nothing was applied, and the retry mints."""
    fill_pool(registry, 10)
    source = work("mets", "new")
    killer = connect(registry)

    class KilledBeforeCommit(Minter):
        killed = False

        def _mint(self, conn, *args, **kwargs):
            results = super()._mint(conn, *args, **kwargs)
            if not self.killed:
                KilledBeforeCommit.killed = True
                with killer.cursor() as cursor:
                    cursor.execute("KILL CONNECTION %s", (conn.thread_id(),))
            return results

    try:
        with KilledBeforeCommit(lambda: connect(registry)) as minter:
            results = minter.mint_ids([MintRequest(source)], job_id="killed")
            assert minter.stats.reconnects == 1
    finally:
        killer.close()
    assert results[source].outcome is MintOutcome.MINTED
    assert fetch_all(registry, "SELECT CanonicalId FROM identifiers") == [
        (results[source].canonical_id,)
    ]
    assert pool_counts(registry) == {"free": 9, "assigned": 1}
    check_invariants(registry)


def test_outage_output_of_the_cli_is_json_free_of_partial_results(unreachable, tmp_path):
    """Nothing is printed as minted when the call fails: stdout stays empty."""
    path = tmp_path / "requests.jsonl"
    path.write_text(
        "\n".join(json.dumps({"source": f"Work[sierra-system-number/b{i}]"}) for i in range(3))
    )
    env = {**os.environ, "RDS_PORT": str(unreachable.port), OUTAGE_ENV: "0"}
    result = subprocess.run(
        [str(VENV_BIN / "idminter"), "mint-ids", "--file", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert "outage bound of 0s while minting 3 identifier(s) (1 attempt(s)" in result.stderr
