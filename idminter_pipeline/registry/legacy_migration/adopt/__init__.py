"""Adopting a registry the reference port created: the legacy migration's "adopt" source kind.

The port creates the RFC's tables as the RFC prints them (`DEFAULT CHARSET=latin1`, so
latin1_swedish_ci: case-insensitive, some accents merged, PAD SPACE), with yoyo history
`0001_create_identifiers_schema`. This project's tables are utf8mb4_bin / ascii_bin, exact. The
adoption rebuilds both tables while the port keeps minting, with the legacy migration's
machinery and guarantees:

1. this project's migrations are applied beside the port's (0001 leaves the port's two tables
   as they are; later ones add their own tables, and 0003 a nullable column to canonical_ids);
2. `identifiers_new` and `canonical_ids_new` are created with exactly what sql/ builds, and
   triggers on the port's two tables log the CanonicalId of every write into the legacy change
   log (`legacy_migration_changes`), from before the first row is read;
3. the copy walks the port's `canonical_ids` primary key in batches (keyset), then the port's
   mappings along their own primary key (so they are read and inserted in primary-key order,
   as a plain copy would), each batch committed with its walk's checkpoint in
   `legacy_migration_state`, so an interrupted run resumes after the last batch of either;
4. catch-up passes re-copy logged IDs (`copy.apply_changes` with this kind's re-copy);
5. guard triggers keep the copies written by the migration alone; a chunked, set-based
   comparison proves the copies equal to the port's tables in both directions (mappings byte
   for byte after conversion, with their CreatedAt; canonical IDs with their Status);
6. the rest of the log is applied and re-checked under `LOCK TABLES`, the four tables are
   swapped with one `RENAME TABLE`, and variants the operator chose to register are written
   before the guard triggers come off (so no other writer can mint them first).

The port's tables are kept as `identifiers_port` and `canonical_ids_port` until `finalize`;
`rollback` swaps them back (copying back what this project's minter wrote since, if the port's
tables can hold it). The port's yoyo history row goes at the swap and comes back on rollback.

The package's modules follow those phases; each imports only the ones before it:

- `copy`: table names, the new tables' DDL, the triggers, the keyset copy and the re-copy of
  logged IDs (steps 1 to 4);
- `verify`: step 5 and the row-by-row re-checks of the catch-up and the lock;
- `run`: `adopt` (steps in order, resumable), the swap, `sync_adoption`, `finalize_adoption`,
  `rollback_adoption`, `adoption_status`, and the variants registered at the swap;
- `dry_run`: what adopting would change, and `find_variants` (reads only).
"""

from idminter_pipeline.registry.legacy_migration.adopt.dry_run import (
    AdoptionDryRun,
    adoption_dry_run,
    assigned_canonical_ids,
    find_variants,
)
from idminter_pipeline.registry.legacy_migration.adopt.run import (
    AdoptionReport,
    AdoptionSync,
    Variant,
    adopt,
    adoption_status,
    finalize_adoption,
    parse_variant,
    read_variants,
    rollback_adoption,
    sync_adoption,
)

__all__ = [
    "AdoptionDryRun",
    "AdoptionReport",
    "AdoptionSync",
    "Variant",
    "adopt",
    "adoption_dry_run",
    "adoption_status",
    "assigned_canonical_ids",
    "finalize_adoption",
    "find_variants",
    "parse_variant",
    "read_variants",
    "rollback_adoption",
    "sync_adoption",
]
