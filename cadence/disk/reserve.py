"""Space kept free for the record of a failure: a full disk must not stop a run saying so.

Input: a project root -> output: ``target/reserve`` (``RESERVE_BYTES`` of zeros, owner-only),
kept by every run that builds (``keep``) and given back (``release``) when the warehouse refuses
to record a run, so the few bytes that remember its failures (``record.unrecorded``) and its
results still fit on a disk the run itself filled. Invariants: nothing here raises (a reserve
that cannot be made is simply not there, and the run goes on); the file holds no data.
"""

from __future__ import annotations

import os
from pathlib import Path

from cadence.disk import artifacts
from cadence.errors import CadenceError

RESERVE_FILE = f"{artifacts.TARGET}/reserve"  # in a cadence project (artifacts.target_dir)
RESERVE_NAME = "reserve"
RESERVE_BYTES = 256 * 1024


def keep(root: Path) -> None:
    """Make the reserve when it is missing (one ``stat`` when it is there)."""
    path = artifacts.target_dir(root) / RESERVE_NAME
    try:
        if os.stat(path).st_size >= RESERVE_BYTES:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:  # zeros written, not a sparse file: the blocks are really held
        artifacts.write_bytes(path, bytes(RESERVE_BYTES), root, durable=False)
    except CadenceError:
        pass  # no room for it now: the next run that builds tries again


def release(root: Path) -> bool:
    """Free the reserve for what must be written now; True when there was one."""
    try:
        os.unlink(artifacts.target_dir(root) / RESERVE_NAME)
    except OSError:
        return False
    return True
