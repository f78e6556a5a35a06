"""Resources of the works pipeline: the works store, the churn guard's policy and the downstream
topic.

The store is the embedded SQLite file by default, and Elasticsearch when `ELASTICSEARCH_URL` is
set; credentials (`ES_API_KEY`, or `ES_USERNAME` / `ES_PASSWORD`) reach the resource through
`EnvVar`, so the UI and run config show variable names, never values.
"""

import os
from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from idminter_pipeline.core.settings import ElasticsearchSettings
from idminter_pipeline.works.churn_guard import (
    DEFAULT_MAX_NEW_SHARE,
    DEFAULT_MIN_NEW_WORKS,
    ChurnGuardPolicy,
)
from idminter_pipeline.works.downstream import TOPIC_ARN_ENV, SnsNotifier
from idminter_pipeline.works.stores import SqliteWorksStore, WorksStore
from idminter_pipeline.works.stores.elasticsearch import (
    ElasticsearchWorksStore,
    elasticsearch_client,
)
from idminter_pipeline.works.stores.sqlite import default_sqlite_path


class WorksStoreResource(dg.ConfigurableResource):
    """Where source works are read and identified works written."""

    sqlite_path: str | None = None
    elasticsearch_url: str | None = None
    elasticsearch_api_key: str | None = None
    elasticsearch_username: str | None = None
    elasticsearch_password: str | None = None
    source_index_prefix: str = "works-source"
    target_index_prefix: str = "works-identified"
    pipeline_date: str | None = None
    source_index_date_suffix: str | None = None
    target_index_date_suffix: str | None = None

    def open(self) -> WorksStore:
        """A store to use and close (`with resource.open() as store:`)."""
        if self.elasticsearch_url:
            client = elasticsearch_client(
                self.elasticsearch_url,
                api_key=self.elasticsearch_api_key,
                username=self.elasticsearch_username,
                password=self.elasticsearch_password,
            )
            return ElasticsearchWorksStore(
                client,
                ElasticsearchSettings(
                    source_index_prefix=self.source_index_prefix,
                    target_index_prefix=self.target_index_prefix,
                    pipeline_date=self.pipeline_date,
                    source_date_suffix=self.source_index_date_suffix,
                    target_date_suffix=self.target_index_date_suffix,
                ),
            )
        return SqliteWorksStore(self.sqlite_path or default_sqlite_path())


class ChurnGuardResource(dg.ConfigurableResource):
    """Per source system, the share of a batch allowed to mint new work IDs without a
    predecessor (see `idminter_pipeline.works.churn_guard`)."""

    enabled: bool = True
    max_new_share: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_NEW_SHARE))
    min_new_works: int = DEFAULT_MIN_NEW_WORKS

    def policy(self) -> ChurnGuardPolicy:
        return ChurnGuardPolicy(
            max_new_share=dict(self.max_new_share),
            min_new_works=self.min_new_works,
            enabled=self.enabled,
        )


def works_store_kind(environ: Mapping[str, str] | None = None) -> str:
    """The store this deployment uses, as a Dagster kind: what `works_store_from_env` builds."""
    env = os.environ if environ is None else environ
    return "elasticsearch" if env.get("ELASTICSEARCH_URL") else "sqlite"


def _secret(name: str) -> str | None:
    return dg.EnvVar(name) if os.environ.get(name) else None  # type: ignore[return-value]


def works_store_from_env() -> WorksStoreResource:
    settings = ElasticsearchSettings.from_env()
    return WorksStoreResource(
        sqlite_path=os.environ.get("WORKS_STORE_PATH") or None,
        elasticsearch_url=_secret("ELASTICSEARCH_URL"),
        elasticsearch_api_key=_secret("ES_API_KEY"),
        elasticsearch_username=_secret("ES_USERNAME"),
        elasticsearch_password=_secret("ES_PASSWORD"),
        source_index_prefix=settings.source_index_prefix,
        target_index_prefix=settings.target_index_prefix,
        pipeline_date=settings.pipeline_date,
        source_index_date_suffix=settings.source_date_suffix,
        target_index_date_suffix=settings.target_date_suffix,
    )


def churn_guard_from_env() -> ChurnGuardResource:
    policy = ChurnGuardPolicy.from_env()
    return ChurnGuardResource(
        enabled=policy.enabled,
        max_new_share=dict(policy.max_new_share),
        min_new_works=policy.min_new_works,
    )


class DownstreamTopicResource(dg.ConfigurableResource):
    """The SNS topic told about every written work (`{"default": "<canonicalId>"}`, the format
    the matcher reads); unset means no notification."""

    sns_topic_arn: str | None = None

    def notifier(self) -> SnsNotifier | None:
        return SnsNotifier(self.sns_topic_arn) if self.sns_topic_arn else None


def downstream_from_env() -> DownstreamTopicResource:
    return DownstreamTopicResource(sns_topic_arn=_secret(TOPIC_ARN_ENV))
