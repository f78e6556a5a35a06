DROP TABLE IF EXISTS retired_canonical_ids;
