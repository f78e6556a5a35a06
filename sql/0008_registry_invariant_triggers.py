"""The registry's invariant guards: triggers refusing any change that would move a published ID
(idminter_pipeline/registry/invariants.py, docs/design/registry-invariants.md).

A Python migration because the guards on `identifiers` belong on the RFC 083 table only: a
registry still holding the legacy 1:1 table under that name gets them from the legacy
migration's swap instead. Creating a trigger with the binary log on needs
log_bin_trust_function_creators = 1 (deploy/registry-grants.sql).
"""

from yoyo import step

from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.invariants import (
    GUARD_NAMES,
    drop_guards,
    install_mapping_guards,
    install_pool_guards,
)
from idminter_pipeline.registry.legacy_migration.state import RegistryShape, registry_shape

__depends__ = {"0007_registry_invariants"}


def apply(conn: Connection) -> None:
    install_pool_guards(conn)
    if registry_shape(conn) is RegistryShape.MIGRATED:
        install_mapping_guards(conn)


def rollback(conn: Connection) -> None:
    drop_guards(conn, GUARD_NAMES)


steps = [step(apply, rollback)]
