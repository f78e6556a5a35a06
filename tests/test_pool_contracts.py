"""Contracts of the pool that the suite left unchecked: the insert's retry bound, the settings'
defaults as the docs state them (docs/configuration.md, docs/design/pool.md), and the bulk ID
generator itself (guarded by a short timeout, so a generator that never returns fails here at
once instead of hanging the pool tests)."""

from __future__ import annotations

import re
from pathlib import Path

import pymysql
import pytest
from minting_helpers import session_counters

from idminter_pipeline.core.canonical_ids import (
    FIRST_CHARACTERS,
    ID_SPACE_SIZE,
    OTHER_CHARACTERS,
    _spell,
    generate_canonical_ids_bulk,
    is_canonical_id,
)
from idminter_pipeline.core.settings import project_root
from idminter_pipeline.registry import pool
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.pool.top_up import _insert_batch

DOCS = Path(project_root(), "docs")
CONFIGURATION = (DOCS / "configuration.md").read_text(encoding="utf-8")
POOL_DESIGN = (DOCS / "design" / "pool.md").read_text(encoding="utf-8")


def test_a_pool_insert_waiting_on_a_lock_is_tried_five_times_then_fails(registry):
    holder = connect(registry)
    writer = connect(registry)
    try:
        with holder.cursor() as cursor:  # an uncommitted insert holds the key
            cursor.execute("INSERT INTO canonical_ids (CanonicalId) VALUES ('heldabcd')")
        with writer.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        before = session_counters(writer, ("Com_insert",))["Com_insert"]
        with pytest.raises(pymysql.err.OperationalError) as caught:
            _insert_batch(writer, ["heldabcd", "otherabc"])
        # Counted by the server: every attempt ran the INSERT once.
        attempts = session_counters(writer, ("Com_insert",))["Com_insert"] - before
    finally:
        holder.rollback()
        holder.close()
        writer.close()
    assert caught.value.args[0] == 1205
    assert attempts == pool.INSERT_MAX_ATTEMPTS == 5
    assert re.search(r"at most 5 attempts\s+per batch", POOL_DESIGN)


def _documented_tuning_defaults() -> dict[str, str]:
    """`IDMINTER_POOL_*` variable -> its default as docs/configuration.md states it."""
    rows = re.findall(
        r"^\| `(IDMINTER_POOL_[A-Z_]+)` \| ([^|]+) \|", CONFIGURATION, flags=re.MULTILINE
    )
    return {variable: default.strip() for variable, default in rows}


def test_pool_settings_defaults_are_the_ones_the_docs_state():
    documented = _documented_tuning_defaults()
    defaults = pool.PoolSettings()
    for field, variable in pool.POOL_ENV.items():
        assert variable in documented, f"{variable} is not in docs/configuration.md"
        stated = float(documented[variable].replace(",", ""))
        assert getattr(defaults, field) == stated, (field, documented[variable])
    assert defaults.batch_size == pool.DEFAULT_BATCH_SIZE == 50_000
    assert pool.MAX_BATCH_SIZE == 100_000 and re.search(r"clamped\s+to\s+100,000", POOL_DESIGN)


@pytest.mark.parametrize("field", sorted(pool.POOL_ENV))
def test_each_pool_variable_sets_its_own_setting(field):
    values = {
        "target_free": "900000",
        "low_watermark": "200000",
        "critical_watermark": "10000",
        "batch_size": "20000",
        "max_rounds": "3",
        "forecast_horizon_hours": "6.5",
    }
    settings = pool.PoolSettings.from_env({pool.POOL_ENV[field]: values[field]})
    assert getattr(settings, field) == float(values[field])
    others = {k: v for k, v in settings.as_dict().items() if k != field}
    assert others == {k: v for k, v in pool.PoolSettings().as_dict().items() if k != field}


# Generating a thousand IDs takes milliseconds: ten seconds only catches a generator that never
# returns (it would otherwise hang every pool test until pytest's own ten-minute timeout).
GENERATOR_TIMEOUT = 10


@pytest.mark.timeout(GENERATOR_TIMEOUT)
def test_the_bulk_generator_returns_exactly_the_count_asked_for():
    for count in (0, 1, 2, 7, 1000):
        ids = generate_canonical_ids_bulk(count)
        assert isinstance(ids, list) and len(ids) == count
        assert all(is_canonical_id(value) for value in ids)


@pytest.mark.timeout(GENERATOR_TIMEOUT)
def test_the_bulk_generator_spells_the_whole_id_space_in_order():
    every_head = [f + o for f in FIRST_CHARACTERS for o in OTHER_CHARACTERS]
    assert _spell(0, every_head) == FIRST_CHARACTERS[0] + OTHER_CHARACTERS[0] * 7 == "aaaaaaaa"
    assert _spell(1, every_head) == "aaaaaaab"
    assert _spell(len(OTHER_CHARACTERS), every_head) == "aaaaaaba"
    last = FIRST_CHARACTERS[-1] + OTHER_CHARACTERS[-1] * 7
    assert _spell(ID_SPACE_SIZE - 1, every_head) == last == "z9999999"
    third = 31**7
    assert _spell(third, every_head) == "baaaaaaa"
    # Draws are independent: two calls do not repeat each other.
    first, second = generate_canonical_ids_bulk(500), generate_canonical_ids_bulk(500)
    assert len(set(first) | set(second)) >= 998


@pytest.mark.timeout(GENERATOR_TIMEOUT * 6)
def test_a_top_up_whose_generator_returns_nothing_fails_at_once(registry, connect_registry):
    with pytest.raises(RuntimeError, match="returned no IDs"):
        pool.top_up(connect_registry, 10, generate=lambda n: [])
