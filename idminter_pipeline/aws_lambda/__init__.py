"""The Lambda front door: event parsing, dispatch to the works pipeline, and outcomes."""
