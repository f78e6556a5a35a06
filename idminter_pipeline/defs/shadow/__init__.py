"""Shadow mode in Dagster: `shadow_comparison`, partitioned like `identified_works`, compares
each window with the legacy minter's output before cutover; its job and its schedule."""
