"""`idminter lookup | mint-ids | aliases` against the real registry."""

import json

import pytest
from click.testing import CliRunner
from minting_helpers import fill_pool, register, registry_state

from idminter_pipeline.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_lookup_prints_found_identifiers(registry_env, runner):
    register(registry_env, {("Work", "sierra-system-number", "b1"): "abcdefgh"})
    result = runner.invoke(
        main, ["lookup", "Work[sierra-system-number/b1]", "Work[axiell-collections-id/none]"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"Work[sierra-system-number/b1]": "abcdefgh"}


def test_lookup_refuses_a_malformed_identifier(registry_env, runner):
    result = runner.invoke(main, ["lookup", "Work[no-slash]"])
    assert result.exit_code == 2
    assert "Work[no-slash]" in result.stderr


def test_mint_ids_from_stdin_then_again_from_a_file(registry_env, runner, tmp_path):
    register(registry_env, {("Work", "sierra-system-number", "b1"): "abcdefgh"})
    fill_pool(registry_env, 5)
    text = "\n".join(
        [
            '{"source": "Work[axiell-collections-id/AC-1]", '
            '"predecessor": "Work[sierra-system-number/b1]"}',
            '{"source": "Work[axiell-collections-id/AC-2]", "predecessor": null}',
            "",
            '{"source": "Work[axiell-collections-id/AC-2]"}',
            '{"source": "Work[sierra-system-number/b1]"}',
        ]
    )
    first = runner.invoke(main, ["mint-ids", "--job-id", "job-7"], input=text)
    assert first.exit_code == 0, first.output
    lines = _lines(first.stdout)
    assert [(x["source"], x["outcome"]) for x in lines] == [
        ("Work[axiell-collections-id/AC-1]", "inherited"),
        ("Work[axiell-collections-id/AC-2]", "minted"),
        ("Work[sierra-system-number/b1]", "existing"),
    ]
    assert lines[0]["canonical_id"] == "abcdefgh"
    path = tmp_path / "requests.jsonl"
    path.write_text(text, encoding="utf-8")
    again = runner.invoke(main, ["mint-ids", "--file", str(path)])
    assert again.exit_code == 0, again.output
    assert {x["canonical_id"] for x in _lines(again.stdout)} == {x["canonical_id"] for x in lines}
    assert {x["outcome"] for x in _lines(again.stdout)} == {"existing"}


@pytest.mark.parametrize(
    ("bad_line", "named"),
    [
        ("not json", "line 2 is not valid JSON"),
        ('["Work[s/x]"]', "line 2: expected a JSON object"),
        ('{"source": 7}', "line 2"),
        ('{"source": "Work[s/x]", "predecessor": 3}', "line 2"),
        ('{"source": "Work[s/x ]"}', "'Work[s/x ]'"),
        ('{"source": "Person[s/x]"}', "Person"),
        ('{"predecessor": "Work[s/x]"}', 'missing "source"'),
        ('{"source": "Work[s/x]", "pred": null}', "unknown field"),
    ],
)
def test_mint_ids_refuses_a_bad_line_and_writes_nothing(registry_env, runner, bad_line, named):
    fill_pool(registry_env, 5)
    before = registry_state(registry_env)
    text = '{"source": "Work[s/good]"}\n' + bad_line + "\n"
    result = runner.invoke(main, ["mint-ids"], input=text)
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert result.stderr.count("\n") == 1  # one clear error line
    assert result.stdout == ""
    assert registry_state(registry_env) == before


def test_mint_ids_failure_in_the_registry_writes_nothing(registry_env, runner):
    before = registry_state(registry_env)
    result = runner.invoke(
        main, ["mint-ids"], input='{"source": "Work[s/a]", "predecessor": "Work[s/missing]"}\n'
    )
    assert result.exit_code == 1
    assert "Work[s/missing]" in result.stderr
    assert registry_state(registry_env) == before


def test_aliases_prints_original_and_aliases(registry_env, runner):
    register(registry_env, {("Work", "sierra-system-number", "b1"): "abcdefgh"})
    runner.invoke(
        main,
        ["mint-ids", "--job-id", "j"],
        input='{"source": "Work[axiell/AC-1]", "predecessor": "Work[sierra-system-number/b1]"}',
    )
    result = runner.invoke(main, ["aliases", "abcdefgh"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["canonical_id"] == "abcdefgh"
    assert [(s["source"], s["status"], s["inherited_from"]) for s in payload["sources"]] == [
        ("Work[sierra-system-number/b1]", "original", None),
        ("Work[axiell/AC-1]", "alias", "Work[sierra-system-number/b1]"),
    ]
    assert payload["sources"][1]["job_id"] == "j"
    assert "T" in payload["sources"][0]["created_at"]


def test_aliases_refuses_a_malformed_id(registry_env, runner):
    result = runner.invoke(main, ["aliases", "NOT-AN-ID"])
    assert result.exit_code == 2
    assert "NOT-AN-ID" in result.stderr
