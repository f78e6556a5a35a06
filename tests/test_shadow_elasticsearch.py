"""`idminter shadow --reference-index` against a real Elasticsearch cluster (skipped, saying why,
when `ELASTICSEARCH_URL` is unset): works minted into Elasticsearch, the identified index copied
to a reference index with planted differences, nothing written to any index."""

import json
import os
import uuid

import pytest
from click.testing import CliRunner
from works_helpers import fill_pool, work

from idminter_pipeline.cli import main
from idminter_pipeline.core.settings import ElasticsearchSettings
from idminter_pipeline.works.stores.elasticsearch import (
    ElasticsearchWorksStore,
    elasticsearch_client,
)

pytestmark = pytest.mark.elasticsearch
SIERRA = "sierra-system-number"
REFERENCE_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "state": {
            "properties": {"sourceIdentifier": {"properties": {"value": {"type": "keyword"}}}}
        }
    },
}


@pytest.fixture
def es_env(registry_env, connect_registry, monkeypatch, tmp_path):
    url = os.environ.get("ELASTICSEARCH_URL")
    if not url:
        pytest.skip("ELASTICSEARCH_URL not set: the Elasticsearch reference needs a real cluster")
    suffix = uuid.uuid4().hex[:8]
    for name, value in {
        "ES_SOURCE_INDEX_PREFIX": f"test-shadow-source-{suffix}",
        "ES_TARGET_INDEX_PREFIX": f"test-shadow-identified-{suffix}",
        "PIPELINE_DATE": "2026-07-30",
        "IDMINTER_LOCAL_DIR": str(tmp_path / "local"),
    }.items():
        monkeypatch.setenv(name, value)
    fill_pool(connect_registry, 200)
    store = ElasticsearchWorksStore(elasticsearch_client(url), ElasticsearchSettings.from_env())
    store.ensure_indices()
    reference = f"test-shadow-legacy-{suffix}"
    store.client.indices.create(index=reference, mappings=REFERENCE_MAPPINGS)
    yield store, reference
    store.client.indices.delete(
        index=[store.source_index, store.target_index, reference], ignore_unavailable=True
    )
    store.close()


def test_the_reference_index_is_compared_and_nothing_is_written(es_env):
    store, reference = es_env
    works = [work(SIERRA, f"b{n}", items=(f"i-{n}",)) for n in (1, 2, 3)]
    store.put_source(works)
    minted = CliRunner().invoke(main, ["mint", "--full"])
    assert minted.exit_code == 0, minted.output
    store.refresh()
    hits = store.client.search(index=store.target_index, size=100)["hits"]["hits"]
    by_work = {}
    for hit in hits:
        source = hit["_source"]["state"]["sourceIdentifier"]["value"]
        by_work[source] = (hit["_id"], hit["_source"])
    planted_item = by_work["b2"][1]
    original_item = planted_item["data"]["items"][0]["id"]["canonicalId"]
    planted_item["data"]["items"][0]["id"]["canonicalId"] = "zzitem02"
    moved_root = by_work["b3"][1]
    original_root = by_work["b3"][0]
    moved_root["state"]["canonicalId"] = "legacyb3"
    for source, (canonical_id, document) in by_work.items():
        key = "legacyb3" if source == "b3" else canonical_id
        store.client.index(index=reference, id=key, document=document)
    store.client.indices.refresh(index=reference)
    counts_before = (store.count_source(), store.count_identified())

    result = CliRunner().invoke(main, ["shadow", "--full", "--reference-index", reference])

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["agree"] == 1
    assert report["counts"]["differ_unexpected"] == 2
    assert {
        (d["work"], d["path"], d["ours"], d["theirs"]) for d in report["unexpected_differences"]
    } == {
        (
            "Work[sierra-system-number/b2]",
            "data.items[0].id.canonicalId",
            original_item,
            "zzitem02",
        ),
        ("Work[sierra-system-number/b3]", "state.canonicalId", original_root, "legacyb3"),
    }
    store.refresh()
    assert (store.count_source(), store.count_identified()) == counts_before
    assert store.client.count(index=reference)["count"] == 3
