"""The Dagster instance files pass Dagster's own config validation."""

from pathlib import Path

import pytest
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_mysql import DagsterMySQLStorage

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("folder", [ROOT / "deploy" / "local", ROOT / "deploy"])
def test_instance_config_is_valid(folder):
    config, custom_class = dagster_instance_config(str(folder))
    assert custom_class is None
    assert config["storage"]


def test_production_pieces_validate_against_their_classes():
    config, _ = dagster_instance_config(str(ROOT / "deploy"))
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    assert validate_config(EcsRunLauncher.config_type(), launcher["config"]).success
    storage = validate_config(DagsterMySQLStorage.config_type(), config["storage"]["mysql"])
    assert storage.success, storage.errors
    logs = validate_config(S3ComputeLogManager.config_type(), config["compute_logs"]["config"])
    assert logs.success, logs.errors
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "idminter/pool-replenishment", "limit": 1} in limits
