"""Which SQL texts DuckDB's parser has already accepted as one query (SPEC §6), remembered
across runs, so a model whose compiled SQL did not change is not parsed again every minute.

Input: the project root and the SQL texts checked during a run -> output: ``OneQuery``,
whose ``known(sql)`` says the parser accepted exactly that text before, and whose ``save()``
writes ``target/one_query.txt`` at the end of the run.

Invariants: an entry is the HMAC-SHA256 of the SQL text under cadence's per-user cache key
(``load.inputs.cache_key``), so only this user's cadence can make one: a file planted in
target/, edited, or copied from another machine or user vouches for nothing. Without a key
(no home folder to keep one in) nothing is remembered. Only text the parser accepted is ever
added; a refused text is checked, and refused, every time. The first line names the DuckDB
version whose parser judged: under another version every text is judged again. Data only,
owner-only, written atomically and only when the run added an entry; a file that cannot be
read or does not parse is ignored (every check runs, as without it).
"""

from __future__ import annotations

import hmac
import threading
from pathlib import Path

from cadence.disk import artifacts
from cadence.errors import CadenceError
from cadence.load.inputs import cache_key

NAME = "one_query.txt"
_MAGIC = "cadence-one-query 1"
_DOMAIN = b"cadence one query\0"  # the key's other uses (cache, wake file) sign other things
_LIMIT = 100_000  # entries kept: those this run used first, then the newest of the rest


class OneQuery:
    """The accepted texts of one project; thread-safe (a parallel build checks from threads)."""

    def __init__(self, root: Path | None, key: bytes, version: str, known: list[str]) -> None:
        self._root, self._key, self._version = root, key, version
        self._known = set(known)
        self._order = known  # as read: the entries the last run used come first
        self._used: dict[str, None] = {}
        self._added = False
        self._lock = threading.Lock()

    @classmethod
    def read(cls, root: Path | None, version: str) -> OneQuery:
        key = cache_key()
        known: list[str] = []
        if root is not None and key:
            try:
                data = artifacts.read_regular(artifacts.target_dir(root) / NAME)
                lines = data.decode("ascii").split("\n")
            except (OSError, UnicodeDecodeError, ValueError):
                lines = []
            if lines and lines[0] == f"{_MAGIC} {version}":
                known = [e for e in lines[1:] if len(e) == 64]
        return cls(root, key, version, known)

    def _digest(self, sql: str) -> str:
        payload = _DOMAIN + sql.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, payload, "sha256").hexdigest()

    def known(self, sql: str) -> bool:
        if not self._key:
            return False
        entry = self._digest(sql)
        if entry not in self._known:
            return False
        with self._lock:
            self._used[entry] = None
        return True

    def add(self, sql: str) -> None:
        """``sql`` was just accepted by the parser."""
        if not self._key:
            return
        entry = self._digest(sql)
        with self._lock:
            self._used[entry] = None
            if entry not in self._known:
                self._known.add(entry)
                self._added = True

    def save(self) -> None:
        """Keep the entries for the next run, when this one added any; a file that cannot be
        written is left alone (it is only a saving)."""
        with self._lock:
            if not self._added or self._root is None:
                return
            entries = list(self._used)
            used = set(entries)
            entries += [e for e in self._order if e not in used]
            self._added = False
        text = "\n".join([f"{_MAGIC} {self._version}", *entries[:_LIMIT]]) + "\n"
        try:
            artifacts.write_text(
                artifacts.target_dir(self._root) / NAME, text, self._root, durable=False
            )
        except CadenceError:
            pass
