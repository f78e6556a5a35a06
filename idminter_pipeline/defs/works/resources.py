"""Resources of the works pipeline: the works store, the churn guard's policy and the downstream
topic.

The store is the embedded SQLite file by default, and Elasticsearch when `ELASTICSEARCH_URL` is
set; credentials (`ES_API_KEY`, or `ES_USERNAME` / `ES_PASSWORD`) reach the resource through
`EnvVar`, so the UI and run config show variable names, never values.
"""

from collections.abc import Mapping

import dagster as dg
from elasticsearch import Elasticsearch
from pydantic import Field

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.settings import ElasticsearchSettings, env_text
from idminter_pipeline.defs.resources import env_var
from idminter_pipeline.works.churn_guard import (
    DEFAULT_MAX_NEW_NODE_SHARE,
    DEFAULT_MAX_NEW_SHARE,
    DEFAULT_MIN_NEW_WORKS,
    ChurnGuardPolicy,
)
from idminter_pipeline.works.downstream import TOPIC_ARN_ENV, SnsNotifier
from idminter_pipeline.works.impact import (
    DEFAULT_MAX_UNCARRIED,
    ImpactThresholds,
    elasticsearch_candidate,
    sqlite_candidate,
)
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

    def open(self, *, read_only: bool = False) -> WorksStore:
        """A store to use and close (`with resource.open() as store:`); `read_only=True` for a
        reader that must leave a SQLite file as it is (an Elasticsearch store is only read by
        such a reader anyway)."""
        if self.elasticsearch_url:
            return ElasticsearchWorksStore(
                self.elasticsearch(needed_by="the works store"),
                ElasticsearchSettings(
                    source_index_prefix=self.source_index_prefix,
                    target_index_prefix=self.target_index_prefix,
                    pipeline_date=self.pipeline_date,
                    source_date_suffix=self.source_index_date_suffix,
                    target_date_suffix=self.target_index_date_suffix,
                ),
            )
        return SqliteWorksStore(self.sqlite_path or default_sqlite_path(), read_only=read_only)

    def elasticsearch(self, *, needed_by: str) -> Elasticsearch:
        """A client for the works store's cluster, with its credentials; `needed_by` names what
        needs one when ELASTICSEARCH_URL is unset."""
        if not self.elasticsearch_url:
            raise InvalidInputError(
                f"{needed_by} names an Elasticsearch index, but ELASTICSEARCH_URL is unset"
            )
        return elasticsearch_client(
            self.elasticsearch_url,
            api_key=self.elasticsearch_api_key,
            username=self.elasticsearch_username,
            password=self.elasticsearch_password,
        )


class ChurnGuardResource(dg.ConfigurableResource):
    """Per source system, the share of a batch allowed to mint new work IDs without a
    predecessor; per ontology type, the share of the nodes of already-minted works allowed to
    mint new IDs (see `idminter_pipeline.works.churn_guard`)."""

    enabled: bool = True
    max_new_share: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_NEW_SHARE))
    min_new_works: int = DEFAULT_MIN_NEW_WORKS
    max_new_node_share: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_NEW_NODE_SHARE)
    )

    def policy(self) -> ChurnGuardPolicy:
        return ChurnGuardPolicy(
            max_new_share=dict(self.max_new_share),
            min_new_works=self.min_new_works,
            enabled=self.enabled,
            max_new_node_share=dict(self.max_new_node_share),
        )


def works_store_kind(environ: Mapping[str, str] | None = None) -> str:
    """The store this deployment uses, as a Dagster kind: what `works_store_from_env` builds."""
    return "elasticsearch" if env_text("ELASTICSEARCH_URL", environ=environ) else "sqlite"


def works_store_from_env() -> WorksStoreResource:
    settings = ElasticsearchSettings.from_env()
    return WorksStoreResource(
        sqlite_path=env_text("WORKS_STORE_PATH"),
        elasticsearch_url=env_var("ELASTICSEARCH_URL"),
        elasticsearch_api_key=env_var("ES_API_KEY"),
        elasticsearch_username=env_var("ES_USERNAME"),
        elasticsearch_password=env_var("ES_PASSWORD"),
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
        max_new_node_share=dict(policy.max_new_node_share),
    )


class DownstreamTopicResource(dg.ConfigurableResource):
    """The SNS topic told about every written work (`{"default": "<canonicalId>"}`, the format
    the matcher reads); unset means no notification."""

    sns_topic_arn: str | None = None

    def notifier(self) -> SnsNotifier | None:
        return SnsNotifier(self.sns_topic_arn) if self.sns_topic_arn else None


def downstream_from_env() -> DownstreamTopicResource:
    return DownstreamTopicResource(sns_topic_arn=env_var(TOPIC_ARN_ENV))


CANDIDATE_PATH_ENV = "IDMINTER_IMPACT_CANDIDATE_PATH"
CANDIDATE_INDEX_ENV = "IDMINTER_IMPACT_CANDIDATE_INDEX"


class ImpactCandidateResource(dg.ConfigurableResource):
    """A reindex candidate (its source works: one of a SQLite store or an index on the works
    store's cluster) and the thresholds its identity impact must stay within
    (`idminter_pipeline.works.impact`)."""

    sqlite_path: str | None = None
    elasticsearch_index: str | None = None
    max_uncarried: int | None = DEFAULT_MAX_UNCARRIED
    max_new: int | None = None

    def thresholds(self) -> ImpactThresholds:
        return ImpactThresholds(max_uncarried=self.max_uncarried, max_new=self.max_new)

    def open(self, works_store: WorksStoreResource) -> WorksStore:
        """The candidate's store (`with resource.open(works_store) as candidate:`)."""
        if bool(self.sqlite_path) == bool(self.elasticsearch_index):
            raise InvalidInputError(
                f"the impact check needs exactly one candidate: set {CANDIDATE_PATH_ENV} (a "
                f"SQLite works store) or {CANDIDATE_INDEX_ENV} (an Elasticsearch index)"
            )
        if self.sqlite_path:
            return sqlite_candidate(self.sqlite_path, named_by=CANDIDATE_PATH_ENV)
        client = works_store.elasticsearch(needed_by=CANDIDATE_INDEX_ENV)
        published = ElasticsearchSettings(
            source_index_prefix=works_store.source_index_prefix,
            target_index_prefix=works_store.target_index_prefix,
            pipeline_date=works_store.pipeline_date,
        )
        return elasticsearch_candidate(client, str(self.elasticsearch_index), published)


def impact_candidate_from_env() -> ImpactCandidateResource:
    thresholds = ImpactThresholds.from_env()
    return ImpactCandidateResource(
        sqlite_path=env_text(CANDIDATE_PATH_ENV),
        elasticsearch_index=env_text(CANDIDATE_INDEX_ENV),
        max_uncarried=thresholds.max_uncarried,
        max_new=thresholds.max_new,
    )
