"""`idminter` in a real process that SIGKILLs itself at its n-th batch write.

`IDMINTER_TEST_KILL_AT_WRITE=n python tests/works_crash.py mint ...`: the n-th call of the
embedded store's `write_identified` kills the process before writing, after the batch's mint
committed, the worst moment for a crash. Used by tests/test_works_robustness.py.
"""

import os
import signal
import sys

from idminter_pipeline.cli import main
from idminter_pipeline.works.stores.sqlite import SqliteWorksStore

_write = SqliteWorksStore.write_identified
_writes = 0


def _write_or_die(self, works):
    global _writes  # noqa: PLW0603 (one counter for the process)
    _writes += 1
    if str(_writes) == os.environ.get("IDMINTER_TEST_KILL_AT_WRITE"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _write(self, works)


SqliteWorksStore.write_identified = _write_or_die  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
