"""Typed errors. Each carries the offending data so callers (CLI, Lambda, Dagster) can report it.

Messages never include credentials: anything built from connection settings goes through
`core.settings.DatabaseSettings.describe`, which leaves the password out. Nor do they echo an
offending value whole: each goes through `excerpts.excerpt` (its first 200 characters and its full
length), so a 10 MB input gives an error of a few hundred bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from idminter_pipeline.core.excerpts import excerpt

# Every module raises these errors, so this one imports nothing of the package's but `excerpts`
# (which imports nothing), not even for type hints (that made an import cycle with
# source_identifiers). The predecessor errors carry `SourceIdentifier`s, typed `object` here:
# they are shown with `str` and handed back as given.


class IdMinterError(Exception):
    """Base class for every error this package raises on purpose."""


class InvalidInputError(IdMinterError, ValueError):
    """Input that is rejected before anything is written."""


class InvalidSourceIdentifierError(InvalidInputError):
    """A source identifier, or one of its parts, breaks the registry's rules."""

    def __init__(self, value: object, reason: str, *, part: str | None = None) -> None:
        self.value = value
        self.reason = reason
        self.part = part
        where = f" ({part})" if part else ""
        super().__init__(f"invalid source identifier{where} {excerpt(value)}: {reason}")


class InvalidCanonicalIdError(InvalidInputError):
    """A canonical ID that does not follow the public ID format."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid canonical ID {excerpt(value)}: {reason}")


class InvalidJobIdError(InvalidInputError):
    """A job id the registry's `JobId` columns cannot store exactly (see `job_ids`)."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid job id {excerpt(value)}: {reason}")


class InvalidSettingError(InvalidInputError):
    """A configuration value (an environment variable) that cannot be used as it is."""

    def __init__(self, name: str, value: object, reason: str) -> None:
        self.name = name
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {name} {excerpt(value)}: {reason}")


class MintingError(IdMinterError):
    """A mint call that was refused; nothing it asked for was committed."""


class MissingPredecessorError(MintingError):
    """Predecessors that are neither registered nor minted in the same call."""

    def __init__(self, missing: Sequence[tuple[object, object]]) -> None:
        self.missing = list(missing)
        shown = ", ".join(f"{source} <- {predecessor}" for source, predecessor in self.missing[:5])
        more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
        super().__init__(
            f"{len(self.missing)} predecessor(s) not found in the registry: {shown}{more}"
        )


class ConflictingPredecessorsError(MintingError, InvalidInputError):
    """One source given two different predecessors in the same call."""

    def __init__(self, source: object, predecessors: Sequence[object]) -> None:
        self.source = source
        self.predecessors = list(predecessors)
        names = ", ".join(str(p) for p in self.predecessors)
        super().__init__(f"{source} is given conflicting predecessors: {names}")


# A cycle is named by its first members (each source identifier is at most three 255-character
# parts); the error still carries all of them.
_SHOWN_CYCLE_MEMBERS = 10


class PredecessorCycleError(MintingError, InvalidInputError):
    """Predecessor declarations that loop back on themselves (a self-predecessor included)."""

    def __init__(self, cycle: Sequence[object]) -> None:
        self.cycle = list(cycle)
        shown = self.cycle[:_SHOWN_CYCLE_MEMBERS]
        path = " -> ".join(str(s) for s in shown)
        if len(self.cycle) > len(shown):
            path += f" -> ... ({len(self.cycle) - len(shown):,} more)"
        super().__init__(f"predecessor cycle: {path} -> {self.cycle[0]}")


class ChainTooDeepError(MintingError, InvalidInputError):
    """Sources that would inherit past the deepest record an inheritance chain may have."""

    def __init__(self, too_deep: Sequence[tuple[object, object, str, int]], limit: int) -> None:
        # (source, its predecessor, the chain's canonical ID, the depth it would have)
        self.too_deep = list(too_deep)
        self.limit = limit
        shown = "; ".join(
            f"{source} <- {predecessor} would be record {depth:,} of the chain of {canonical_id}"
            for source, predecessor, canonical_id, depth in self.too_deep[:5]
        )
        more = f" and {len(self.too_deep) - 5} more" if len(self.too_deep) > 5 else ""
        super().__init__(
            f"{len(self.too_deep)} source(s) would inherit past the deepest record of an "
            f"inheritance chain (depth {limit}, the original record being 0): {shown}{more}"
        )

    @staticmethod
    def describe(predecessor: object, canonical_id: str, depth: int, limit: int) -> str:
        """What one refused source is told."""
        return (
            f"inheriting from {predecessor} would make this record depth {depth:,} of the "
            f"inheritance chain of {canonical_id}; a chain holds records up to depth {limit} "
            "(its succession rank cannot order a deeper one); it fails until a person decides "
            "(mint it without a predecessor, or shorten the chain)"
        )


class PoolExhaustedError(MintingError):
    """The free-ID pool holds fewer IDs than a mint call needs."""

    def __init__(self, needed: int, available: int) -> None:
        self.needed = needed
        self.available = available
        super().__init__(
            f"free-ID pool exhausted: this call needs {needed} new IDs but only {available} "
            "are free; top the pool up (`idminter pool top-up`) and retry"
        )


class RegistryUnavailableError(IdMinterError):
    """The registry database cannot be reached or refused our credentials."""


class RegistryUnreachableError(RegistryUnavailableError):
    """The registry's server did not answer a connect (refused, timed out, went away): an outage
    that may end by itself, so callers ride it out (`registry.outage`). Refused credentials and
    unreadable secrets stay plain `RegistryUnavailableError`s."""


class RegistryOutageError(RegistryUnavailableError):
    """The registry stayed unreachable for longer than the outage bound; nothing more was done."""

    def __init__(self, bound_seconds: float, what: str, attempts: int, last_error: str) -> None:
        self.bound_seconds = bound_seconds
        self.what = what
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"the registry stayed unreachable for longer than the outage bound of "
            f"{bound_seconds:g}s while {what} ({attempts} attempt(s); the bound is "
            f"IDMINTER_REGISTRY_OUTAGE_SECONDS); last error: {last_error}"
        )


class StatementTooLargeError(IdMinterError):
    """A statement that cannot be split to fit the server's `max_allowed_packet` (see
    `registry.packets`). Never sent, and never taken for an outage: sending it again could only
    fail again."""

    def __init__(self, statement_bytes: int, max_allowed_packet: int) -> None:
        self.statement_bytes = statement_bytes
        self.max_allowed_packet = max_allowed_packet
        super().__init__(
            f"a registry statement of {statement_bytes:,} bytes cannot be split to fit the "
            f"server's max_allowed_packet of {max_allowed_packet:,} bytes; raise "
            "max_allowed_packet"
        )


class SchemaMigrationError(IdMinterError):
    """Schema migrations could not be applied or rolled back."""


class SchemaDriftError(SchemaMigrationError, RegistryUnavailableError):
    """A registry whose tables, character sets, collations, columns or migration history are not
    this project's: `differences` names each, `resolution` the command that resolves them. The
    registry is unusable until then, so the Lambda reports it as `RegistryUnavailableError` (the
    state machine's retries then outlast an adoption's swap)."""

    def __init__(self, differences: Sequence[str], resolution: str) -> None:
        self.differences = list(differences)
        self.resolution = resolution
        shown = "; ".join(self.differences[:2])
        more = f" (and {len(self.differences) - 2} more)" if len(self.differences) > 2 else ""
        super().__init__(
            f"the registry's schema is not this project's: {shown}{more}; run `{resolution}`"
        )


class AlertDeliveryError(IdMinterError):
    """One or more alert channels failed; the others were still tried."""

    def __init__(self, title: str, failures: dict[str, str], delivered: Sequence[str] = ()) -> None:
        self.title = title
        self.failures = dict(failures)
        self.delivered = list(delivered)
        failed = "; ".join(f"{name}: {reason}" for name, reason in self.failures.items())
        sent = ", ".join(self.delivered) or "none"
        super().__init__(f"alert {excerpt(title)} not delivered to {failed} (delivered to: {sent})")


class PoolTopUpError(IdMinterError):
    """A free-ID pool top-up stopped before reaching its target."""


class PoolTopUpIncompleteError(PoolTopUpError):
    """Redrawing duplicates hit the round bound before the pool reached its target."""

    def __init__(self, target: int, free: int, rounds: int, added: int, duplicates: int) -> None:
        self.target = target
        self.free = free
        self.rounds = rounds
        self.added = added
        self.duplicates = duplicates
        super().__init__(
            f"pool top-up stopped after {rounds} rounds at {free} free IDs (target {target}): "
            f"added {added}, {duplicates} draws were IDs that already exist; the ID space may "
            "be nearly full or max_rounds too small"
        )


class PoolTopUpBusyError(PoolTopUpError):
    """Another top-up held the pool lock for longer than this one would wait."""

    def __init__(self, lock_name: str, waited_seconds: float) -> None:
        self.lock_name = lock_name
        self.waited_seconds = waited_seconds
        super().__init__(
            f"another pool top-up holds lock {lock_name!r}; gave up after {waited_seconds:g}s"
        )


class InvalidPoolSettingsError(InvalidInputError):
    """Pool sizes or watermarks that contradict each other."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        self.setting = setting
        self.value = value
        self.reason = reason
        super().__init__(f"invalid pool setting {setting}={excerpt(value)}: {reason}")


class MalformedWorkError(InvalidInputError):
    """A work document (or one of its identifiable nodes) the pipeline cannot process.

    It fails that work only: `stage` says where (`extract`, `mint`, `write`), `work_id` names the
    work as `Work[system/value]` (or the store's document id when the document has none).
    """

    def __init__(self, work_id: str, stage: str, detail: str) -> None:
        self.work_id = work_id
        self.stage = stage
        self.detail = detail
        super().__init__(f"{work_id} ({stage}): {detail}")


class WorksStoreError(IdMinterError):
    """The works store (Elasticsearch or the embedded SQLite file) refused or cannot be reached."""


class RegistryContentionError(MintingError):
    """Deadlocks or lock-wait timeouts persisted past the retry budget (an unreachable registry
    is `RegistryOutageError`)."""

    def __init__(self, attempts: int, code: int | None, detail: str) -> None:
        self.attempts = attempts
        self.code = code
        self.detail = detail
        super().__init__(
            f"registry transaction failed {attempts} times (last error {code}: {detail}); "
            "nothing was committed, retry later"
        )


class LegacyMigrationError(IdMinterError):
    """The legacy 1:1 registry cannot be migrated, swapped, rolled back or finalized as asked."""

    def __init__(self, message: str, *, offending: Sequence[object] = ()) -> None:
        self.offending = list(offending)
        shown = ", ".join(excerpt(value) for value in self.offending[:10])
        more = f" and {len(self.offending) - 10} more" if len(self.offending) > 10 else ""
        super().__init__(f"{message}: {shown}{more}" if self.offending else message)


class LegacyVerificationError(LegacyMigrationError):
    """The copy does not match the legacy table, so the tables were not swapped."""


class DownstreamNotificationError(IdMinterError):
    """The downstream topic refused a whole publish call (missing topic, no permission, endpoint
    unreachable): it concerns every work of the run, so the run stops; what was written stays."""

    def __init__(self, topic_arn: str, detail: str) -> None:
        self.topic_arn = topic_arn
        self.detail = detail
        super().__init__(f"cannot publish to {topic_arn}: {detail}")


class ObjectStorageError(IdMinterError):
    """An S3 object (a find-work batch, a run report) could not be read or written for a reason
    retrying can cure (throttling, a server error, the network). A missing, forbidden or malformed
    object is `InvalidInputError`: retrying gives the same answer."""
