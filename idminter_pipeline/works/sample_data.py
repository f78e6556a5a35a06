"""Realistic sample works for local runs, tests and benchmarks (deterministic for a seed).

Works come in blocks of ten, in `indexed_at` order, the way the source index sees a migration:

| position | work |
|---|---|
| 0-3 | legacy Sierra works (`sierra-system-number/b...`), with Sierra items |
| 4-5 | legacy CALM works (`calm-record-id/<uuid>`) |
| 6-7 | Folio successors (`folio-instance`) naming Sierra works 0-1 of the block as predecessors |
| 8 | an Axiell Collections successor naming CALM work 4 as its predecessor |
| 9 | a METS work (odd blocks) or a Miro image work (even blocks) |

A Folio successor's item `n` names Sierra item `n` of its predecessor, where that work has one,
as its `predecessorIdentifier` (items keep their IDs across the migration). Every seventh
block's second Folio record has no predecessor (a genuinely new record), nor have its items. Works
carry items, images, contributors, subjects, genres and METS / Miro merge candidates drawn from
shared vocabularies, about six identifiers per work. `generate_works` streams: a work depends only
on the seed and its index, so millions cost no memory and any slice can be regenerated alone.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from idminter_pipeline.works.documents import SourceWork

DEFAULT_START = datetime(2026, 7, 30, 9, 0, tzinfo=UTC)
DEFAULT_SPACING = timedelta(milliseconds=1500)
BLOCK = 10
NEW_FOLIO_EVERY_BLOCKS = 7

_TOPICS = (
    "Anatomy",
    "Botany",
    "Cholera",
    "Dentistry",
    "Epidemiology",
    "Homeopathy",
    "Malaria",
    "Midwifery",
    "Nursing",
    "Obstetrics",
    "Pharmacy",
    "Physiology",
    "Public health",
    "Surgery",
    "Tuberculosis",
    "Vaccination",
    "Zoology",
    "Psychiatry",
    "Herbals",
    "Alchemy",
)
_PLACES = ("London", "Edinburgh", "Paris", "Leiden", "Calcutta", "Boston", "Vienna", "Padua")
_GENRES = ("Pamphlets", "Manuscripts", "Photographs", "Engravings", "Letters", "Posters")
_MESH = 400
_NAMES = 5000
_SURNAMES = ("Darwin", "Jenner", "Nightingale", "Lister", "Snow", "Harvey", "Hunter", "Paget")
_FORENAMES = ("Charles", "Edward", "Florence", "Joseph", "John", "William", "Mary", "Ada")


def sierra_check_digit(digits: str) -> str:
    """The Sierra record-number check digit (`x` for 10)."""
    total = sum(int(d) * weight for weight, d in enumerate(reversed(digits), start=2))
    remainder = total % 11
    return "x" if remainder == 10 else str(remainder)


def _sierra_number(prefix: str, number: int) -> str:
    digits = f"{number:07d}"
    return f"{prefix}{digits}{sierra_check_digit(digits)}"


def source_identifier(system: str, ontology: str, value: str) -> dict[str, Any]:
    """A `sourceIdentifier` object as the documents carry it."""
    return {"identifierType": {"id": system}, "ontologyType": ontology, "value": value}


def identifiable(system: str, ontology: str, value: str) -> dict[str, Any]:
    """An identifiable node's `id` object, before minting."""
    return {
        "sourceIdentifier": source_identifier(system, ontology, value),
        "otherIdentifiers": [],
        "identifiedType": "Identified",
        "type": "Identifiable",
    }


def _uuid(seed: int, *parts: object) -> str:
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"idminter-sample/{seed}/" + "/".join(map(str, parts)))
    )


def _contributors(rng: random.Random) -> list[dict[str, Any]]:
    contributors = []
    for _ in range(rng.choice((1, 1, 2))):
        name = rng.randrange(_NAMES)
        label = f"{_SURNAMES[name % len(_SURNAMES)]}, {_FORENAMES[name // 7 % len(_FORENAMES)]}"
        kind = "Organisation" if name % 9 == 0 else "Person"
        contributors.append(
            {
                "agent": {
                    "id": identifiable("lc-names", kind, f"n79{name:06d}"),
                    "label": label,
                    "type": kind,
                },
                "roles": [],
                "primary": not contributors,
            }
        )
    return contributors


def _subjects(rng: random.Random) -> list[dict[str, Any]]:
    topic = rng.choice(_TOPICS)
    place = rng.choice(_PLACES)
    subject: dict[str, Any] = {
        "id": identifiable("nlm-mesh", "Subject", f"D{rng.randrange(_MESH):06d}"),
        "label": f"{topic} - {place}",
        "concepts": [
            {"id": identifiable("label-derived", "Concept", topic.lower()), "label": topic},
        ],
    }
    if rng.random() < 0.4:
        subject["concepts"].append(
            {"id": identifiable("label-derived", "Place", place.lower()), "label": place}
        )
    return [subject]


def _genres(rng: random.Random) -> list[dict[str, Any]]:
    if rng.random() < 0.6:
        return []
    genre = rng.choice(_GENRES)
    return [
        {
            "label": genre,
            "concepts": [
                {"id": identifiable("label-derived", "Genre", genre.lower()), "label": genre}
            ],
        }
    ]


def _document(
    *,
    source: dict[str, Any],
    title: str,
    indexed_at: datetime,
    rng: random.Random,
    items: list[dict[str, Any]],
    images: list[dict[str, Any]],
    other_identifiers: list[dict[str, Any]],
    merge_candidates: list[dict[str, Any]],
    predecessor: dict[str, Any] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {"sourceIdentifier": source}
    if predecessor is not None or source["identifierType"]["id"] in (
        "folio-instance",
        "axiell-collections-id",
    ):
        state["predecessorIdentifier"] = predecessor
    modified = indexed_at - timedelta(seconds=rng.randrange(60, 600))
    state.update(
        {
            "sourceModifiedTime": modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "modifiedTime": (modified + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "mergeCandidates": merge_candidates,
            "internalWorkStubs": [],
            "removedInternalWorkStubs": [],
            "relations": {
                "ancestors": [],
                "children": [],
                "siblingsPreceding": [],
                "siblingsSucceeding": [],
            },
        }
    )
    return {
        "version": rng.randrange(1, 12),
        "type": "Visible",
        "indexed_at": indexed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": {
            "title": title,
            "otherIdentifiers": other_identifiers,
            "contributors": _contributors(rng),
            "subjects": _subjects(rng),
            "genres": _genres(rng),
            "items": items,
            "imageData": images,
        },
        "state": state,
    }


def _work_key(source: dict[str, Any]) -> str:
    return f"Work[{source['identifierType']['id']}/{source['value']}]"


def _sierra_bib(seed: int, block: int, position: int) -> int:
    return 1_000_000 + (seed % 1000) * 100_000 + block * 4 + position


def _calm_uuid(seed: int, block: int, position: int) -> str:
    return _uuid(seed, "calm", block, position)


def _sierra_item_count(seed: int, index: int, rng: random.Random | None = None) -> int:
    """How many items Sierra work `index` carries: its generator's first draw (`rng`, or a
    fresh one for a Folio successor asking which of its items have a Sierra predecessor)."""
    return (rng or random.Random(f"{seed}:{index}")).choice((1, 1, 2))


def _folio_items(
    seed: int, block: int, position: int, rng: random.Random, *, migrated: bool
) -> list[dict[str, Any]]:
    """A Folio record's items; a migrated record's keep the IDs of the Sierra items they
    replace (item `n` names item `n` of its Sierra predecessor, where that work has one)."""
    sierra_index = block * BLOCK + position - 6
    sierra_items = _sierra_item_count(seed, sierra_index) if migrated else 0
    bib = _sierra_bib(seed, block, position - 6)
    items = []
    for n in range(rng.choice((1, 2))):
        item = identifiable("folio-item", "Item", _uuid(seed, "folio-item", block, position, n))
        if n < sierra_items:
            item["predecessorIdentifier"] = source_identifier(
                "sierra-system-number", "Item", _sierra_number("i", bib * 2 + n)
            )
        items.append({"id": item, "title": f"v.{n + 1}", "locations": []})
    return items


def sample_work(
    index: int,
    *,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    spacing: timedelta = DEFAULT_SPACING,
) -> SourceWork:
    """Work number `index` of the sample set for `seed` (independent of every other index)."""
    block, position = divmod(index, BLOCK)
    rng = random.Random(f"{seed}:{index}")
    title_rng = random.Random(f"{seed}:{block}:title")
    title = f"{title_rng.choice(_TOPICS)} in {title_rng.choice(_PLACES)}, vol. {block}"
    indexed_at = start + spacing * index
    items: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    predecessor = None

    if position < 4:
        bib = _sierra_bib(seed, block, position)
        b_number = _sierra_number("b", bib)
        source = source_identifier("sierra-system-number", "Work", b_number)
        others.append(source_identifier("sierra-identifier", "Work", str(bib)))
        for n in range(_sierra_item_count(seed, index, rng)):
            items.append(
                {
                    "id": identifiable(
                        "sierra-system-number", "Item", _sierra_number("i", bib * 2 + n)
                    ),
                    "title": f"v.{n + 1}",
                    "locations": [],
                }
            )
        if position % 2 == 0:
            candidates.append({"id": identifiable("mets", "Work", b_number), "reason": "METS work"})
            images.append(
                {
                    "id": identifiable("mets-image", "Image", f"{b_number}/FILE_0001_OBJECTS"),
                    "version": 1,
                    "locations": [],
                }
            )
    elif position < 6:
        source = source_identifier("calm-record-id", "Work", _calm_uuid(seed, block, position))
        others.append(source_identifier("calm-ref-no", "Work", f"MS/{block}/{position}"))
        others.append(source_identifier("calm-altref-no", "Work", f"MS.{block}.{position}"))
        if rng.random() < 0.5:
            candidates.append(
                {
                    "id": identifiable("miro-image-number", "Work", f"L{block:07d}"),
                    "reason": "Miro/CALM work",
                }
            )
    elif position < 8:
        instance = _uuid(seed, "folio", block, position)
        source = source_identifier("folio-instance", "Work", instance)
        is_new = position == 7 and block % NEW_FOLIO_EVERY_BLOCKS == 0
        if not is_new:
            b_number = _sierra_number("b", _sierra_bib(seed, block, position - 6))
            predecessor = source_identifier("sierra-system-number", "Work", b_number)
            others.append(source_identifier("sierra-system-number", "Work", b_number))
            if (position - 6) % 2 == 0:
                candidates.append(
                    {"id": identifiable("mets", "Work", b_number), "reason": "METS work"}
                )
        items.extend(_folio_items(seed, block, position, rng, migrated=not is_new))
    elif position == 8:
        source = source_identifier(
            "axiell-collections-id", "Work", f"AC{seed % 1000:03d}{block:08d}"
        )
        predecessor = source_identifier("calm-record-id", "Work", _calm_uuid(seed, block, 4))
        others.append(predecessor)
    elif block % 2:
        b_number = _sierra_number("b", _sierra_bib(seed, block, 0))
        source = source_identifier("mets", "Work", b_number)
        images.extend(
            {
                "id": identifiable("mets-image", "Image", f"{b_number}/FILE_{n:04d}_OBJECTS"),
                "version": 1,
                "locations": [],
            }
            for n in range(2, 2 + rng.choice((1, 2)))
        )
    else:
        miro = f"V{(seed % 1000) * 100_000 + block:07d}"
        source = source_identifier("miro-image-number", "Work", miro)
        images.append(
            {"id": identifiable("miro-image-number", "Image", miro), "version": 1, "locations": []}
        )

    document = _document(
        source=source,
        title=title,
        indexed_at=indexed_at,
        rng=rng,
        items=items,
        images=images,
        other_identifiers=others,
        merge_candidates=candidates,
        predecessor=predecessor,
    )
    return SourceWork(_work_key(source), document)


def generate_works(
    count: int,
    *,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    spacing: timedelta = DEFAULT_SPACING,
    offset: int = 0,
) -> Iterator[SourceWork]:
    """`count` sample works from index `offset`, streamed in `indexed_at` order."""
    if count < 0:
        raise ValueError(f"count must be at least 0, got {count}")
    for index in range(offset, offset + count):
        yield sample_work(index, seed=seed, start=start, spacing=spacing)
