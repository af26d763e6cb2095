"""One run per project at a time: a lock held by the kernel.

Input: the project root -> output: a held ``RunLock`` or ``LockHeld`` naming the holder. The lock
is ``flock`` on ``target/cadence.lock``: the kernel releases it when the holding process dies
(even by kill -9), so a stale lock is simply taken over. Who holds it (pid, wall-clock start,
the ``--at`` time of a replay) is written after taking the lock to ``target/cadence.lock.json``
by temp file, fsync and rename (and removed by the holder before it unlocks), so a reader
never sees an empty or half-written file; a reader that finds no info, or that of a dead
process (killed), asks again for a moment instead of printing an unknown holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from cadence.disk import artifacts
from cadence.errors import LockHeld

LOCK_FILE = "target/cadence.lock"  # in a cadence project; artifacts.target_dir in general
HOLDER_FILE = "target/cadence.lock.json"
LOCK_NAME, HOLDER_NAME = "cadence.lock", "cadence.lock.json"


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(root: Path) -> dict[str, object] | None:
    try:
        info = json.loads(artifacts.read_regular(artifacts.target_dir(root) / HOLDER_NAME))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and _alive(info.get("pid")) else None


def describe_holder(info: dict[str, object]) -> str:
    text = f"pid {info['pid']}, started {info.get('started')}"
    if info.get("at"):
        text += f", replaying --at {info['at']}"
    return text


UNKNOWN = "another process, which has not said who it is"
PATIENCE_S = 1.0  # how long a holder may take between taking the lock and saying who it is


def holder_info(root: Path) -> str:
    info = _read_holder(root)
    return describe_holder(info) if info is not None else UNKNOWN


class RunLock:
    """``started``: the wall-clock start (ISO text); ``at``: the ``--at`` time of a replay."""

    def __init__(
        self, root: Path, started: str, at: str | None = None, command: str = "run"
    ) -> None:
        self.root = root
        self.path = artifacts.target_dir(root) / LOCK_NAME
        self.started = started
        self.at = at
        self.command = command
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0, poll_s: float = 0.2) -> RunLock:
        artifacts.tighten_target(self.root)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, artifacts.FILE_MODE)
            os.fchmod(fd, artifacts.FILE_MODE)
        except OSError as exc:
            raise artifacts.write_error(self.path, exc, self.root) from None
        deadline = time.monotonic() + max(wait_s, 0.0)
        unknown_until: float | None = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                info = _read_holder(self.root)
                if info is None:
                    # the holder is between taking the lock and writing its info (or is
                    # releasing it): ask again shortly rather than print an unknown holder
                    if unknown_until is None:
                        unknown_until = time.monotonic() + PATIENCE_S
                    if time.monotonic() < unknown_until:
                        time.sleep(0.01)
                        continue
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = describe_holder(info) if info is not None else UNKNOWN
                    if wait_s:
                        raise LockHeld(
                            "another cadence run holds the project lock "
                            f"({holder}) after waiting {wait_s:g}s",
                            file=artifacts.shown(self.root, LOCK_NAME),
                            hint="nothing was done; the next run builds what is still due",
                        ) from None
                    raise LockHeld(
                        f"another cadence run holds the project lock ({holder})",
                        file=artifacts.shown(self.root, LOCK_NAME),
                        hint="nothing was done; use --wait SECONDS to wait for it",
                    ) from None
                time.sleep(poll_s)
        self._fd = fd
        try:
            self._write_holder()
        except BaseException:
            self.release()
            raise
        return self

    def _write_holder(self) -> None:
        info = {"pid": os.getpid(), "started": self.started, "at": self.at}
        info["command"] = self.command
        artifacts.write_bytes(
            artifacts.target_dir(self.root) / HOLDER_NAME, json.dumps(info).encode(), self.root
        )

    def release(self) -> None:
        if self._fd is not None:
            try:
                # while still holding the lock: no one else writes the holder file now
                (artifacts.target_dir(self.root) / HOLDER_NAME).unlink(missing_ok=True)
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
    path = artifacts.target_dir(root) / LOCK_NAME
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        deadline = time.monotonic() + PATIENCE_S
        while _read_holder(root) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return holder_info(root)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
