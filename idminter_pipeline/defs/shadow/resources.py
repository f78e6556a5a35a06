"""The shadow comparison's reference: the legacy minter's output, read and never written.

`IDMINTER_SHADOW_REFERENCE_PATH` names a SQLite works store whose identified table holds it;
`IDMINTER_SHADOW_REFERENCE_INDEX` an Elasticsearch index on the works store's cluster (its URL
and credentials are the works store resource's).
"""

import dagster as dg

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.settings import env_text
from idminter_pipeline.defs.works.resources import WorksStoreResource
from idminter_pipeline.works.shadow import ElasticsearchReference, Reference, SqliteReference

REFERENCE_PATH_ENV = "IDMINTER_SHADOW_REFERENCE_PATH"
REFERENCE_INDEX_ENV = "IDMINTER_SHADOW_REFERENCE_INDEX"


class ShadowReferenceResource(dg.ConfigurableResource):
    """Where the legacy minter's identified works are: one of a SQLite file or an index."""

    sqlite_path: str | None = None
    elasticsearch_index: str | None = None

    def open(self, works_store: WorksStoreResource) -> Reference:
        """The reference to compare with (`with resource.open(works_store) as reference:`)."""
        if bool(self.sqlite_path) == bool(self.elasticsearch_index):
            raise InvalidInputError(
                f"the shadow comparison needs exactly one reference: set {REFERENCE_PATH_ENV} "
                f"(a SQLite works store) or {REFERENCE_INDEX_ENV} (an Elasticsearch index)"
            )
        if self.sqlite_path:
            return SqliteReference(self.sqlite_path)
        client = works_store.elasticsearch(needed_by=REFERENCE_INDEX_ENV)
        return ElasticsearchReference(client, str(self.elasticsearch_index))


def shadow_reference_from_env() -> ShadowReferenceResource:
    return ShadowReferenceResource(
        sqlite_path=env_text(REFERENCE_PATH_ENV),
        elasticsearch_index=env_text(REFERENCE_INDEX_ENV),
    )
