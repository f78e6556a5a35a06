"""The works pipeline's batch sizes, in a module that imports nothing: `idminter mint --help`
shows the default without importing the pipeline (the registry client, pymysql and tenacity).
`works.pipeline` re-exports them under the same names."""

from __future__ import annotations

DEFAULT_BATCH_SIZE = 500
MIN_BATCH_SIZE = 1
MAX_BATCH_SIZE = 5_000
