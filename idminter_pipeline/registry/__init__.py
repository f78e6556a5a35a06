"""The MySQL registry: connections, schema, and (in their own modules) minting and the pool."""
