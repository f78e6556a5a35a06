"""Input validation: a catalogue of malformed, unstorable and contradictory requests, through the
Python API and through `idminter mint-ids` (JSON that would crash a parser, duplicate keys, 10 MB
lines, bytes that are not UTF-8, job ids no column can store), and work documents.

Every rejected case must (1) fail with a clear error that names the offending value, (2) print
nothing on stdout and one `error:` line on stderr (CLI), and (3) leave the registry exactly as
it was: a full snapshot of every registry table is compared before and after. Each case's input
also carries a valid new source, so "unchanged" proves the valid part was not written either.

Some awkward values are not errors: SQL metacharacters, backslashes, LIKE wildcards, quotes,
emoji, decomposed accents, case and 255-character parts are stored verbatim (accepted and
exact), and checked byte for byte in the registry. A work document without `state` fails that
work by name in the pipeline, and `idminter works load` refuses the file naming the line.

Decisions recorded here:
- trailing/leading whitespace (NBSP included) is rejected, never trimmed: the key columns are
  PAD SPACE, so `b1 ` would silently become the existing `b1`;
- ontology types are case-sensitive and never normalized (`work[...]` is rejected);
- a misspelled field (`predecesor`) is rejected: ignoring it would drop the predecessor;
- `idminter mint-ids` takes at most `MAX_MINT_REQUESTS` (10,000) request lines per call (see
  `test_oversized_batches_...`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_process import MAX_ERROR_BYTES, TEN_MB, one_error_line, process_env, run_idminter
from click.testing import CliRunner
from db_helpers import fetch_all
from registry_invariants import check_registry, registry_snapshot

from benchmarks.minting_workload import fill_pool
from idminter_pipeline.cli import main
from idminter_pipeline.cli.minting import MAX_MINT_REQUESTS
from idminter_pipeline.core.errors import (
    ConflictingPredecessorsError,
    InvalidInputError,
    InvalidJobIdError,
    MalformedWorkError,
    MissingPredecessorError,
    PoolExhaustedError,
    PredecessorCycleError,
)
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.works.documents import SourceWork, Stage, extract_work
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.stores import FullScope, SqliteWorksStore

VENV_BIN = Path(sys.executable).parent
EXISTING = "Work[sierra-system-number/b1]"
VALID_NEW = "Work[axiell-collections-id/AC-valid-companion]"
LONG = "x" * 256
VALID = '{"source": "Work[axiell-collections-id/AC-valid]"}'


def _line(source: object, predecessor: object = None, **extra: object) -> str:
    document: dict[str, object] = {"source": source, **extra}
    if predecessor is not None:
        document["predecessor"] = predecessor
    return json.dumps(document)


@dataclass(frozen=True)
class Case:
    """Input lines for `mint-ids` (a valid new source is prepended) and what the error names."""

    lines: list[str]
    names: list[str]
    exit_code: int = 2
    companion: bool = True
    extra_args: list[str] = field(default_factory=list)


def _p(case_id: str, *lines: str, names: str | list[str], **kwargs: object) -> object:
    return pytest.param(
        Case(list(lines), [names] if isinstance(names, str) else names, **kwargs), id=case_id
    )


CATALOGUE = [
    # Empty and whitespace parts.
    _p(
        "empty-source-id", _line("Work[sierra-system-number/]"), names="Work[sierra-system-number/]"
    ),
    _p("empty-source-system", _line("Work[/b2]"), names="Work[/b2]"),
    _p(
        "empty-ontology-type", _line("[sierra-system-number/b2]"), names="[sierra-system-number/b2]"
    ),
    _p("whitespace-only-id", _line("Work[sierra-system-number/   ]"), names="/   ]"),
    _p("leading-space", _line("Work[sierra-system-number/ b2]"), names="/ b2]"),
    # PAD SPACE would make this the existing b1: it must be refused, not answered with b1's ID.
    _p("trailing-space-equals-existing", _line(EXISTING[:-1] + " ]"), names="b1 ]"),
    _p("trailing-nbsp", _line("Work[sierra-system-number/b2\u00a0]"), names="b2\\xa0"),
    _p("space-in-source-system", _line("Work[sierra system/b2]"), names="sierra system"),
    # Lengths and characters the columns cannot hold.
    _p("source-id-over-255", _line(f"Work[sierra-system-number/{LONG}]"), names=LONG[:40]),
    _p("source-system-over-255", _line(f"Work[{LONG}/b2]"), names="256 characters"),
    _p("unpaired-surrogate", _line("Work[sierra-system-number/b\ud8002]"), names="\\ud800"),
    _p("nul-byte", _line("Work[sierra-system-number/b\x002]"), names="\\x00"),
    _p("tab-control-character", _line("Work[sierra-system-number/b\t2]"), names="\\t"),
    _p("newline-in-value", _line("Work[sierra-system-number/b\n2]"), names="\\n"),
    # Malformed `Type[system/value]` strings.
    _p("no-brackets", _line("Work sierra-system-number/b2"), names="Work sierra-system-number/b2"),
    _p("no-slash", _line("Work[sierra-system-number-b2]"), names="Work[sierra-system-number-b2]"),
    _p("unclosed-bracket", _line("Work[sierra-system-number/b2"), names="/b2"),
    _p("nested-brackets", _line("Work[[sierra/b2]]"), names="Work[[sierra/b2]]"),
    _p("empty-string", _line(""), names="''"),
    # Unknown ontology types, never normalized.
    _p("unknown-ontology-type", _line("Widget[sierra-system-number/b2]"), names="Widget"),
    _p("concept-subtype", _line("Person[lc-names/n123]"), names=["Person", "Concept"]),
    _p("lower-case-type", _line("work[sierra-system-number/b2]"), names="work"),
    # Predecessor contradictions.
    _p(
        "self-predecessor",
        _line("Work[axiell-collections-id/AC-9]", "Work[axiell-collections-id/AC-9]"),
        names="Work[axiell-collections-id/AC-9]",
    ),
    _p(
        "two-line-cycle",
        _line("Work[axiell-collections-id/AC-9]", "Work[folio-instance/in9]"),
        _line("Work[folio-instance/in9]", "Work[axiell-collections-id/AC-9]"),
        names=["Work[axiell-collections-id/AC-9]", "Work[folio-instance/in9]"],
    ),
    _p(
        "conflicting-predecessors",
        _line("Work[axiell-collections-id/AC-9]", EXISTING),
        _line("Work[axiell-collections-id/AC-9]", "Work[sierra-system-number/b7]"),
        names=["Work[axiell-collections-id/AC-9]", EXISTING, "Work[sierra-system-number/b7]"],
    ),
    _p(
        "missing-predecessor",
        _line("Work[axiell-collections-id/AC-9]", "Work[sierra-system-number/b404]"),
        names="Work[sierra-system-number/b404]",
        exit_code=1,
    ),
    # Missing, null and wrongly typed fields; lines that are not objects or not JSON.
    _p("null-source", _line(None), names="None"),
    _p("missing-source", json.dumps({"predecessor": EXISTING}), names='"source"'),
    _p("numeric-source", _line(123), names="identifier 123"),
    _p("list-source", _line([EXISTING]), names=EXISTING),
    _p("numeric-predecessor", _line("Work[axiell-collections-id/AC-9]", 5), names="identifier 5"),
    _p(
        "object-predecessor",
        _line("Work[axiell-collections-id/AC-9]", {"ontologyType": "Work", "value": "b1"}),
        names="ontologyType",
    ),
    _p(
        "misspelled-field",
        _line("Work[axiell-collections-id/AC-9]", predecesor=EXISTING),
        names="predecesor",
    ),
    _p("line-is-an-array", json.dumps([EXISTING]), names=EXISTING),
    _p("line-is-a-string", json.dumps(EXISTING), names=EXISTING),
    _p("not-json", "{source: Work[sierra-system-number/b2]}", names="{source: Work"),
    _p(
        "job-id-too-long",
        _line("Work[axiell-collections-id/AC-9]"),
        names="j" * 40,
        extra_args=["--job-id", "j" * 256],
    ),
]

# Stored exactly as given: a new mapping, byte for byte, and nothing else changes.
VERBATIM = [
    pytest.param("b1'; DROP TABLE identifiers; --", id="sql-injection"),
    pytest.param('b1" OR "1"="1', id="double-quotes"),
    pytest.param("a\\b\\", id="backslashes"),
    pytest.param("b%", id="like-percent"),
    pytest.param("b_", id="like-underscore"),
    pytest.param("B1", id="case-differs-from-existing"),
    pytest.param("b😀1", id="four-byte-emoji"),
    pytest.param("caf\u00e9", id="precomposed-accent"),
    pytest.param("cafe\u0301", id="decomposed-accent"),
    pytest.param("a/b]c[d", id="slash-and-brackets-in-value"),
    pytest.param("y" * 255, id="exactly-255-characters"),
]


@pytest.fixture
def seeded(registry_env: DatabaseSettings) -> DatabaseSettings:
    """A registry with one existing mapping (EXISTING) and plenty of free IDs."""
    fill_pool(registry_env, 200)
    minter = Minter(lambda: connect(registry_env))
    minter.mint_ids([MintRequest(SourceIdentifier.parse(EXISTING))])
    minter.close()
    return registry_env


def _mint_cli(text: str, *args: str) -> object:
    return CliRunner().invoke(main, ["mint-ids", *args], input=text)


def _assert_one_error_line(stdout: str, stderr: str, names: list[str]) -> None:
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for name in names:
        assert name in lines[0], f"{name!r} not named in {lines[0]!r}"
    assert "Traceback" not in stderr


def test_the_catalogue_has_at_least_25_rejected_cases():
    assert len(CATALOGUE) >= 25
    assert len(VERBATIM) >= 10


@pytest.mark.parametrize("case", CATALOGUE)
def test_cli_rejects_and_writes_nothing(seeded, case: Case):
    before = registry_snapshot(seeded)
    lines = ([_line(VALID_NEW)] if case.companion else []) + case.lines
    result = _mint_cli("\n".join(lines) + "\n", *case.extra_args)
    assert result.exit_code == case.exit_code, result.output
    _assert_one_error_line(result.stdout, result.stderr, case.names)
    assert registry_snapshot(seeded) == before


@pytest.mark.parametrize("source_id", VERBATIM)
def test_cli_stores_awkward_values_verbatim(seeded, source_id: str):
    source = f"Work[sierra-system-number/{source_id}]"
    before = registry_snapshot(seeded)
    result = _mint_cli(_line(source) + "\n")
    assert result.exit_code == 0, result.output
    (answer,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert answer["source"] == source
    assert answer["outcome"] == "minted"
    rows = fetch_all(
        seeded,
        "SELECT SourceId, CanonicalId FROM identifiers WHERE OntologyType = 'Work' "
        "AND SourceSystem = 'sierra-system-number' AND CanonicalId = %s",
        (answer["canonical_id"],),
    )
    assert rows == [(source_id, answer["canonical_id"])]
    after = registry_snapshot(seeded)
    assert len(after["identifiers"]) == len(before["identifiers"]) + 1
    assert set(before["identifiers"]) <= set(after["identifiers"])
    # The same text again is the same source: it is found, not minted twice.
    again = _mint_cli(_line(source) + "\n")
    assert json.loads(again.stdout)["outcome"] == "existing"
    assert json.loads(again.stdout)["canonical_id"] == answer["canonical_id"]
    check_registry(seeded).assert_ok()


def test_like_wildcards_and_case_never_match_other_keys(seeded):
    sources = [f"Work[sierra-system-number/{v}]" for v in ("b_1", "bx1", "b%", "bzz", "B1")]
    result = _mint_cli("".join(_line(s) + "\n" for s in sources))
    assert result.exit_code == 0, result.output
    answers = {a["source"]: a for a in map(json.loads, result.stdout.splitlines())}
    assert set(answers) == set(sources)
    assert {a["outcome"] for a in answers.values()} == {"minted"}
    assert len({a["canonical_id"] for a in answers.values()}) == len(sources)


def test_oversized_batches_are_refused_and_the_limit_itself_is_accepted(seeded):
    """`mint-ids` takes at most MAX_MINT_REQUESTS request lines: one call is one transaction,
    and the minter's statement count is constant up to 10,000 identifiers. The Python API has
    no limit of its own (the works pipeline clamps its batches), so the CLI enforces it."""
    fill_pool(seeded, MAX_MINT_REQUESTS)
    lines = [_line(f"Work[axiell-collections-id/AC-{n}]") for n in range(MAX_MINT_REQUESTS + 1)]
    before = registry_snapshot(seeded)
    refused = _mint_cli("\n".join(lines) + "\n")
    assert refused.exit_code == 2, refused.output
    _assert_one_error_line(
        refused.stdout, refused.stderr, [f"line {MAX_MINT_REQUESTS + 1}", "10,000 requests"]
    )
    assert registry_snapshot(seeded) == before

    # Blank lines are not requests; exactly the limit goes through in one call.
    accepted = _mint_cli("\n\n".join(lines[:MAX_MINT_REQUESTS]) + "\n")
    assert accepted.exit_code == 0, accepted.stderr
    answers = [json.loads(line) for line in accepted.stdout.splitlines()]
    assert len(answers) == MAX_MINT_REQUESTS
    assert {a["outcome"] for a in answers} == {"minted"}


def _mint_ids_file(path: Path) -> subprocess.CompletedProcess:
    """`idminter mint-ids --file PATH` in a real process."""
    return subprocess.run(
        [str(VENV_BIN / "idminter"), "mint-ids", "--file", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_invalid_utf8_in_a_file_is_refused(seeded, tmp_path):
    before = registry_snapshot(seeded)
    path = tmp_path / "requests.jsonl"
    path.write_bytes(_line(VALID_NEW).encode() + b'\n{"source": "Work[sierra/b\xff\xfe]"}\n')
    result = _mint_ids_file(path)
    assert result.returncode == 2, result.stderr
    _assert_one_error_line(result.stdout, result.stderr, ["line 2", "\\xff\\xfe"])
    assert registry_snapshot(seeded) == before


def test_a_real_process_rejects_a_bad_line_among_many(seeded, tmp_path):
    before = registry_snapshot(seeded)
    lines = [_line(f"Work[axiell-collections-id/AC-{n}]") for n in range(500)]
    lines.insert(250, _line("Work[sierra-system-number/b\x002]"))
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = _mint_ids_file(path)
    assert result.returncode == 2, result.stderr
    _assert_one_error_line(result.stdout, result.stderr, ["\\x00"])
    assert registry_snapshot(seeded) == before


@pytest.mark.parametrize(
    ("line", "names"),
    [
        pytest.param(
            '{"source": "Work[sierra-system-number/b2]", "n": ' + "9" * 5_000 + "}",
            ["line 2", "5,000 digits"],
            id="5000-digit-integer",
        ),
        pytest.param(
            "[" * 100_000 + "]" * 100_000, ["line 2", "nested deeper than 100"], id="deep"
        ),
    ],
)
def test_json_that_crashed_the_parser_is_one_error_line(seeded, line, names):
    before = registry_snapshot(seeded)
    result = run_idminter(["mint-ids"], process_env(seeded), f"{VALID}\n{line}\n".encode())
    assert result.returncode == 2
    one_error_line(result, *names)
    assert registry_snapshot(seeded) == before


def test_an_argument_that_is_not_utf8_is_refused(seeded):
    before = registry_snapshot(seeded)
    stdin = (
        b'{"source": "Work[folio-instance/in2]", "predecessor": "Work[sierra-system-number/b1]"}\n'
    )
    result = run_idminter(["mint-ids", "--job-id", b"\xff"], process_env(seeded), stdin)
    assert result.returncode == 2
    one_error_line(result, "not valid UTF-8", "b'\\xff'")
    assert registry_snapshot(seeded) == before


def test_a_duplicate_key_is_refused_naming_it_not_resolved_silently(seeded):
    line = (
        '{"source": "Work[folio-instance/in2]", '
        '"predecessor": "Work[sierra-system-number/b1]", "predecessor": null}'
    )
    before = registry_snapshot(seeded)
    result = CliRunner().invoke(main, ["mint-ids"], input=f"{VALID}\n{line}\n")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "line 2" in result.stderr and "duplicate key 'predecessor'" in result.stderr
    assert registry_snapshot(seeded) == before


@pytest.mark.parametrize(
    ("line", "names"),
    [
        pytest.param(
            '{"source": "Work[sierra-system-number/' + "x" * TEN_MB + ']"}',
            ["line 2", "characters in all"],
            id="10mb-source-id",
        ),
        pytest.param("{" + "x" * TEN_MB, ["line 2", "is not valid JSON"], id="10mb-not-json"),
        pytest.param(
            '{"source": "Work[s/x]", "' + "k" * TEN_MB + '": 1}',
            ["line 2", "unknown field"],
            id="10mb-unknown-field",
        ),
        pytest.param('"' + "s" * TEN_MB + '"', ["line 2", "expected a JSON object"], id="10mb-str"),
    ],
)
def test_a_10mb_line_gives_an_error_of_a_few_hundred_bytes(seeded, line, names):
    before = registry_snapshot(seeded)
    result = CliRunner().invoke(main, ["mint-ids"], input=f"{VALID}\n{line}\n")
    assert result.exit_code == 2
    assert len(result.stderr) < MAX_ERROR_BYTES, len(result.stderr)
    assert result.stderr.count("\n") == 1
    for name in names:
        assert name in result.stderr
    assert registry_snapshot(seeded) == before


def test_a_10mb_line_that_is_not_utf8_gives_a_short_error(seeded, tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(VALID.encode() + b"\n" + b"\xff" * TEN_MB + b"\n")
    result = run_idminter(["mint-ids", "--file", str(path)], process_env(seeded))
    assert result.returncode == 2
    one_error_line(result, "line 2", "not UTF-8", "bytes in all")


# --- the Python API ----------------------------------------------------------------------------


def _sid(text: str) -> SourceIdentifier:
    return SourceIdentifier.parse(text)


A = "Work[axiell-collections-id/AC-1]"
B = "Work[folio-instance/in1]"
C = "Image[mets-image/c1]"


@pytest.mark.parametrize(
    ("requests", "error", "names"),
    [
        pytest.param([MintRequest(_sid(A), _sid(A))], PredecessorCycleError, [A], id="self"),
        pytest.param(
            [
                MintRequest(_sid(A), _sid(B)),
                MintRequest(_sid(B), _sid(C)),
                MintRequest(_sid(C), _sid(A)),
            ],
            PredecessorCycleError,
            [A, B, C],
            id="three-cycle",
        ),
        pytest.param(
            [MintRequest(_sid(A), _sid(EXISTING)), MintRequest(_sid(A), _sid(B))],
            ConflictingPredecessorsError,
            [A, EXISTING, B],
            id="conflicting",
        ),
        pytest.param(
            [MintRequest(_sid(C)), MintRequest(_sid(A), _sid(B))],
            MissingPredecessorError,
            [A, B],
            id="missing-predecessor",
        ),
        pytest.param([MintRequest(A)], InvalidInputError, [A], id="string-source"),  # type: ignore[arg-type]
        pytest.param(
            [MintRequest(_sid(A), B)],  # type: ignore[arg-type]
            InvalidInputError,
            [B],
            id="string-predecessor",
        ),
        pytest.param([(A, None)], InvalidInputError, [A], id="tuple-instead-of-request"),
        pytest.param(A, InvalidInputError, [A], id="a-bare-string"),
    ],
)
def test_api_rejects_and_writes_nothing(seeded, requests, error, names):
    before = registry_snapshot(seeded)
    minter = Minter(lambda: connect(seeded))
    with pytest.raises(error) as raised:
        minter.mint_ids(
            [MintRequest(_sid(VALID_NEW)), *requests] if isinstance(requests, list) else requests
        )
    minter.close()
    for name in names:
        assert name in str(raised.value)
    assert registry_snapshot(seeded) == before


def test_api_pool_exhaustion_names_the_counts_and_writes_nothing(seeded):
    (free,) = fetch_all(seeded, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'")[0]
    before = registry_snapshot(seeded)
    wanted = [MintRequest(_sid(f"Work[axiell-collections-id/AC-{n}]")) for n in range(free + 5)]
    minter = Minter(lambda: connect(seeded))
    with pytest.raises(PoolExhaustedError) as raised:
        minter.mint_ids(wanted)
    minter.close()
    assert (raised.value.needed, raised.value.available) == (free + 5, free)
    assert f"needs {free + 5}" in str(raised.value)
    assert registry_snapshot(seeded) == before


@pytest.mark.parametrize(
    ("job_id", "reason"),
    [
        ("job-\udcff", "not valid UTF-8"),
        ("job\x00", "control character U+0000"),
        ("", "must not be empty"),
        ("j" * 256, "256 characters"),
        (7, "expected a string"),
    ],
)
def test_job_ids_the_registry_cannot_store_are_refused_before_writing(seeded, job_id, reason):
    before = registry_snapshot(seeded)
    requests = [
        MintRequest(
            SourceIdentifier.parse("Work[folio-instance/in2]"),
            SourceIdentifier.parse("Work[sierra-system-number/b1]"),
        )
    ]
    with Minter(lambda: connect(seeded)) as minter, pytest.raises(InvalidJobIdError) as raised:
        minter.mint_ids(requests, job_id=job_id)  # type: ignore[arg-type]
    assert reason in str(raised.value)
    assert raised.value.value == job_id
    assert registry_snapshot(seeded) == before


# --- work documents ------------------------------------------------------------------------------

NO_STATE_ID = "Work[sierra-system-number/b-no-state]"
NO_STATE = {"indexed_at": "2026-07-30T09:00:00Z", "data": {"title": "no state"}}


def test_a_work_document_without_state_fails_by_name_and_writes_nothing(seeded, tmp_path):
    with pytest.raises(MalformedWorkError) as raised:
        extract_work(NO_STATE, document_id=NO_STATE_ID)
    assert NO_STATE_ID in str(raised.value)
    assert "state" in str(raised.value)

    store = SqliteWorksStore(tmp_path / "works.sqlite3")
    store.put_source([SourceWork(NO_STATE_ID, NO_STATE)])
    before = registry_snapshot(seeded)
    with Minter(lambda: connect(seeded)) as minter:
        summary = WorksPipeline(store, minter).run(FullScope(), job_id="bad-input")
    store.close()
    assert summary.failed == 1
    (failure,) = summary.failures
    assert (failure.work_id, failure.stage) == (NO_STATE_ID, Stage.EXTRACT)
    assert "state" in failure.detail
    assert summary.works_written == 0
    assert registry_snapshot(seeded) == before


def test_loading_a_document_without_state_names_the_line_and_loads_nothing(
    seeded, tmp_path, monkeypatch
):
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "works.sqlite3"))
    path = tmp_path / "works.jsonl"
    path.write_text(json.dumps(NO_STATE) + "\n")
    result = CliRunner().invoke(main, ["works", "load", str(path)])
    assert result.exit_code == 2, result.output
    _assert_one_error_line(result.stdout, result.stderr, [f"{path} line 1", "state"])
    store = SqliteWorksStore(tmp_path / "works.sqlite3")
    assert store.count_source() == 0
    store.close()
