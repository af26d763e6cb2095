"""One run per project at a time: a lock held by the kernel.

Input: the project root -> output: a held ``RunLock`` or ``LockHeld`` naming the holder. The lock
is ``flock`` on ``target/cadence.lock``: the kernel releases it when the holding process dies
(even by kill -9), so a stale lock is simply taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from cadence import artifacts
from cadence.errors import LockHeld

LOCK_FILE = "target/cadence.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    return f"pid {info.get('pid', '?')}, started {info.get('started', '?')}"


class RunLock:
    def __init__(self, root: Path, started: str) -> None:
        self.path = root / LOCK_FILE
        self.started = started
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0, poll_s: float = 0.2) -> RunLock:
        artifacts.tighten_target(self.path.parent.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, artifacts.FILE_MODE)
            os.fchmod(fd, artifacts.FILE_MODE)
        except OSError as exc:
            raise artifacts.write_error(self.path, exc, self.path.parent.parent) from None
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(self.path)
                    os.close(fd)
                    waited = f" after waiting {wait_s:g}s" if wait_s else ""
                    raise LockHeld(
                        f"another cadence run holds the project lock ({holder}){waited}",
                        file=LOCK_FILE,
                        hint="nothing was done; use --wait SECONDS to wait for it",
                    ) from None
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "started": self.started}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def current_holder(root: Path) -> str | None:
    """Who holds the lock now, or None when nobody does."""
    path = root / LOCK_FILE
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
