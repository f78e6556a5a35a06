"""idminter-pipeline: stable public identifiers for catalogue records (RFC 083)."""

__version__ = "0.1.0"
