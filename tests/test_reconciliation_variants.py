"""The case/padding variant scan works in keyset batches, and still finds every group of variants
exactly once when its members are far apart in every order the registry has: against the real
server."""

import random

from db_helpers import fetch_all

from idminter_pipeline.core.canonical_ids import FIRST_CHARACTERS, OTHER_CHARACTERS
from idminter_pipeline.registry import reconciliation as rc
from idminter_pipeline.registry.connection import connect

GROUPS = 60
PLAIN = 400


def _random_ids(count, seed):
    rng = random.Random(seed)
    ids = set()
    while len(ids) < count:
        ids.add(
            rng.choice(FIRST_CHARACTERS) + "".join(rng.choice(OTHER_CHARACTERS) for _ in range(7))
        )
    return sorted(ids)


def _variant_groups():
    """GROUPS groups of (system, source id) spellings of one source: case, a leading space, and
    the source system's case."""
    groups = []
    for g in range(GROUPS):
        value = f"b{g:04d}x"
        if g % 3 == 0:
            groups.append(
                [("sierra-system-number", value), ("sierra-system-number", value.upper())]
            )
        elif g % 3 == 1:
            groups.append(
                [
                    ("sierra-system-number", value),
                    ("sierra-system-number", f" {value}"),
                    ("sierra-system-number", value.capitalize()),
                ]
            )
        else:
            groups.append([("sierra-system-number", value), ("Sierra-System-Number", value)])
    return groups


def _fill(settings):
    """Plain mappings fill the batches; the members of each group get canonical IDs a third of
    the key order apart, so with batches of 100 no two members of a group share a batch (and
    'B0000X' sorts far from 'b0000x' in the primary key too)."""
    groups = _variant_groups()
    members = [member for group in groups for member in group]
    ids = _random_ids(len(members) + PLAIN, seed=13)
    stride = len(ids) // 3
    chosen = []
    for g, group in enumerate(groups):
        chosen.extend(ids[(g + k * stride) % len(ids)] for k in range(len(group)))
    rest = [value for value in ids if value not in set(chosen)]
    mappings = [
        ("Work", system, source, canonical)
        for (system, source), canonical in zip(members, chosen, strict=True)
    ] + [("Work", "sierra-system-number", f"p{n}", canonical) for n, canonical in enumerate(rest)]
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)",
                [(canonical, "assigned") for canonical in ids],
            )
            cursor.executemany(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                "VALUES (%s, %s, %s, %s)",
                mappings,
            )
        conn.commit()
    finally:
        conn.close()
    return groups, dict(zip(members, chosen, strict=True))


def _batch_of(canonical, ordered, size=rc.MIN_BATCH_SIZE):
    return ordered.index(canonical) // size


def test_variants_straddling_batch_boundaries_are_each_found_once(registry):
    groups, canonical_of = _fill(registry)
    ordered = [value for (value,) in fetch_all(registry, "SELECT CanonicalId FROM identifiers")]
    ordered.sort()
    # The premise: every group's members are in different batches of idx_canonical.
    for group in groups:
        batches = {_batch_of(canonical_of[member], ordered) for member in group}
        assert len(batches) == len(group), group

    tiny = rc.reconcile(lambda: connect(registry), batch_size=1)  # clamped to the minimum, 100
    found = tiny.result(rc.CASE_OR_PADDING_VARIANTS)

    assert (found.status, found.count) == ("found", GROUPS)
    assert len(set(found.examples)) == len(found.examples) == rc.EXAMPLES
    # One batch for the whole table finds the very same groups.
    whole = rc.reconcile(lambda: connect(registry), batch_size=rc.MAX_BATCH_SIZE)
    assert whole.result(rc.CASE_OR_PADDING_VARIANTS).count == GROUPS
    assert whole.result(rc.CASE_OR_PADDING_VARIANTS).examples == found.examples
    # Each example is a whole group, members in primary-key order.
    expected = {
        " | ".join(f"Work[{system}/{source}]" for system, source in sorted(group))
        for group in groups
    }
    assert set(found.examples) <= expected
    # Plain mappings are never reported, and nothing was changed.
    assert not any("/p" in example for example in found.examples)
    assert tiny.changes == []
    assert set(tiny.scan_seconds) == {
        "canonical_ids",
        "mappings",
        "provenance",
        "shared_ids",
        "variants",
    }


def test_no_variants_means_no_finding(registry):
    conn = connect(registry)
    try:
        with conn.cursor() as cursor:
            ids = _random_ids(250, seed=2)
            cursor.executemany(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)",
                [(canonical, "assigned") for canonical in ids],
            )
            cursor.executemany(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                "VALUES (%s, %s, %s, %s)",
                [
                    ("Work", "sierra-system-number", f"b{n}x", canonical)
                    for n, canonical in enumerate(ids)
                ],
            )
        conn.commit()
    finally:
        conn.close()
    found = rc.reconcile(lambda: connect(registry), batch_size=100).result(
        rc.CASE_OR_PADDING_VARIANTS
    )
    assert (found.status, found.count, found.examples) == ("ok", 0, [])
