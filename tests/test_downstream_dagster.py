"""The downstream topic resource in Dagster: `identified_works` announces what it wrote."""

import uuid

import dagster as dg
import pytest
from dagster_helpers import works_resources
from sns_helpers import canonical_ids_of, subscribed_topic
from works_helpers import fill_pool

from idminter_pipeline.defs.works.assets import identified_works
from idminter_pipeline.defs.works.resources import (
    DownstreamTopicResource,
)
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import SqliteWorksStore


@pytest.fixture
def topic(aws_env):
    return subscribed_topic(f"identified-{uuid.uuid4().hex[:8]}")


def test_unset_topic_means_no_notifier():
    assert DownstreamTopicResource().notifier() is None


def test_the_dagster_asset_announces_its_window(topic, registry, connect_registry, tmp_path):
    fill_pool(connect_registry, 2_000)
    works = list(generate_works(12, seed=9))
    with SqliteWorksStore(tmp_path / "works.sqlite3") as store:
        store.put_source(works)
    resources = works_resources(
        registry,
        tmp_path / "works.sqlite3",
        tmp_path / "alerts.log",
        downstream=DownstreamTopicResource(sns_topic_arn=topic.topic_arn),
    )
    result = dg.materialize(
        [identified_works], partition_key="2026-07-30-09:00", resources=resources
    )
    assert result.success
    metadata = result.asset_materializations_for_node("identified_works")[0].metadata
    # Works 0 and 4 are superseded by their successors 6 and 8 (works.succession): their one
    # document is the successor's, announced once, by the successor.
    assert (metadata["works_written"].value, metadata["works_superseded"].value) == (10, 2)
    assert metadata["works_notified"].value == 10
    expected = canonical_ids_of(connect_registry, [w.id for w in works]).values()
    assert sorted(topic.received()) == sorted(set(expected)) and len(set(expected)) == 10
