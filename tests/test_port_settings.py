"""The reference port's environment variables: each is honoured with the port's meaning, or
refused at start with one line naming this project's replacement; none is silently ignored."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import InvalidInputError, InvalidSettingError
from idminter_pipeline.core.settings import (
    DEFAULT_MAX_CONNECTIONS,
    DatabaseSettings,
    ElasticsearchSettings,
    RunReportSettings,
)


def test_source_and_target_index_dates_differ_as_in_production():
    settings = ElasticsearchSettings.from_env(
        {
            "PIPELINE_DATE": "2026-03-06",
            "ES_SOURCE_INDEX_DATE_SUFFIX": "2026-01-12",
            "ES_TARGET_INDEX_DATE_SUFFIX": "2026-03-06",
        }
    )
    assert settings.source_index == "works-source-2026-01-12"
    assert settings.target_index == "works-identified-2026-03-06"
    # Either suffix alone: the other index keeps PIPELINE_DATE.
    settings = ElasticsearchSettings.from_env(
        {"PIPELINE_DATE": "2026-03-06", "ES_SOURCE_INDEX_DATE_SUFFIX": "2026-01-12"}
    )
    assert (settings.source_index, settings.target_index) == (
        "works-source-2026-01-12",
        "works-identified-2026-03-06",
    )


def test_rds_max_connections_is_read_and_bounded():
    assert DatabaseSettings.from_env({}).max_connections == DEFAULT_MAX_CONNECTIONS
    assert DatabaseSettings.from_env({"RDS_MAX_CONNECTIONS": "24"}).max_connections == 24
    with pytest.raises(InvalidSettingError, match=r"RDS_MAX_CONNECTIONS '8\.5'"):
        DatabaseSettings.from_env({"RDS_MAX_CONNECTIONS": "8.5"})


def test_the_report_settings_are_the_ports():
    settings = RunReportSettings.from_env(
        {"S3_BUCKET": "platform-id-minter", "S3_PREFIX": "prod", "PIPELINE_DATE": "2026-03-06"}
    )
    assert settings.report_key("j1") == "pipeline-2026-03-06/id_minter/prod/j1.json"
    assert RunReportSettings.from_env({}).bucket is None
    with pytest.raises(InvalidSettingError, match=r"S3_BUCKET 'Not_A_Bucket'"):
        RunReportSettings.from_env({"S3_BUCKET": "Not_A_Bucket"})
    with pytest.raises(InvalidSettingError, match=r"S3_PREFIX '\.\./prod'"):
        RunReportSettings.from_env({"S3_PREFIX": "../prod"})


# At values that ask for nothing the port's settings are accepted: the port's own defaults.
ACCEPTED = {
    "RDS_REPLICA_HOST": "writer.example",  # the same host as RDS_PRIMARY_HOST
    "IDENTIFIERS_TABLE_NAME": "identifiers",
    "CANONICAL_IDS_TABLE_NAME": "canonical_ids",
    "APPLY_MIGRATIONS": "false",
}
REFUSED = {
    "RDS_REPLICA_HOST": ("reader.example", "RDS_PRIMARY_HOST"),
    "IDENTIFIERS_TABLE_NAME": ("identifiers_v2", "IDENTIFIERS_DATABASE"),
    "CANONICAL_IDS_TABLE_NAME": ("ids_pool", "IDENTIFIERS_DATABASE"),
    "ID_GENERATOR_DESIRED_FREE_IDS_COUNT": ("100000", "IDMINTER_POOL_TARGET_FREE"),
    "APPLY_MIGRATIONS": ("true", "idminter db migrate"),
}


def test_the_ports_settings_at_their_defaults_are_accepted():
    DatabaseSettings.from_env({"RDS_PRIMARY_HOST": "writer.example", **ACCEPTED})


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_port_setting_this_project_replaces_is_refused_naming_the_replacement(name):
    value, replacement = REFUSED[name]
    env = {"RDS_PRIMARY_HOST": "writer.example", name: value}
    with pytest.raises(InvalidSettingError) as raised:
        DatabaseSettings.from_env(env)
    message = str(raised.value)
    assert name in message and value in message and replacement in message


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_cli_and_the_lambda_refuse_it_at_start(name, monkeypatch, tmp_path):
    value, replacement = REFUSED[name]
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "works.sqlite3"))
    result = CliRunner().invoke(main, ["db", "status"])
    assert result.exit_code != 0
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error:") and name in line and replacement in line
    # Under the name the state machine matches (not retried: the configuration is wrong).
    with pytest.raises(InvalidInputError, match=name):
        handler({"sourceIdentifiers": ["sierra-system-number/b1"]}, None)
