"""Serve snapshots: one compact, memory-mapped file per served channel.

Input: a channel's audience as plain values (segment names; per key the segments it is delivered
in, the segments it is held out of, optional attributes), as ``Member`` values or as the columns
of an ``Audience`` (the run's way, already hashed and sorted by the warehouse) -> output: a
file under ``target/serve/<channel>.snap`` that ``Snapshot.open`` maps and answers lookups from
without parsing it.

Format (version 2, little-endian; every section 8-byte aligned)::

    header   magic "CADSNAP\\0", format u32, mask_words u32, n_keys u64, meta_len u64,
             bucket_bits u32, 0 u32, then the offsets of meta, buckets, hashes, members,
             holdout, offsets, blob (u64 each)
    meta     JSON: channel, version, published_at, segments, sizes, held_out, columns
    buckets  (2**bucket_bits + 1) x u32: first row whose hash has those top bits (narrows the
             binary search to a few rows)
    hashes   n_keys x u64, sorted: the first 8 bytes of md5(key), big-endian as an int (format 1,
             still read: blake2b with an 8-byte digest). md5 because SQL engines have it:
             the run computes and sorts the hashes in the warehouse (``KEY_HASH_SQL``)
    members  n_keys x mask_words x u64: bit i set = delivered in segments[i]
    holdout  n_keys x mask_words x u64: bit i set = held out of segments[i]
    offsets  (n_keys + 1) x u64 into blob
    blob     per key: u32 length of the key, the key (UTF-8), its attributes as JSON (or nothing)

Invariants: rows are ordered by hash, so keys whose hashes collide sit next to each other
and a lookup confirms the key itself before answering; ``version`` is a digest of the channel,
publish time and every section, so two files with the same version answer the same; a file is
written under a temporary name, fsynced, renamed over the old one and the folder fsynced: a
reader sees the old or the new snapshot, never a part. Files are 0600, the folder 0700.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import mmap
import os
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, islice
from operator import itemgetter, le
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from cadence.disk import artifacts
from cadence.errors import CadenceError

MAGIC = b"CADSNAP\0"
FORMAT = 2
READS = (1, 2)
HEADER = struct.Struct("<8sIIQQII7Q")
SERVE_DIR = Path("target") / "serve"  # in a cadence project (artifacts.target_dir)
SUFFIX = ".snap"
_KEY_LEN = struct.Struct("<I")
_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


class SnapshotError(CadenceError):
    """A snapshot file that is missing, truncated or of another format."""


@dataclass(frozen=True)
class Member:
    """One key of a channel's audience: where it is delivered, where it is held out."""

    key: str
    segments: tuple[str, ...] = ()
    holdout: tuple[str, ...] = ()
    attributes: Mapping[str, Any] | None = None


class Answer(NamedTuple):
    """What a snapshot says about one key (empty tuples for a key it does not hold).

    A named tuple rather than a frozen dataclass: it is built once per request on the hot path,
    and a tuple is several times cheaper to make; it is just as immutable.
    """

    key: str
    segments: tuple[str, ...]
    holdout: tuple[str, ...]
    attributes: Mapping[str, Any] = _NO_ATTRIBUTES


@dataclass(frozen=True)
class Written:
    path: Path
    version: str
    keys: int


def _md5_8(raw: bytes) -> bytes:
    return hashlib.md5(raw).digest()[:8]


def _blake2b_8(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=8).digest()


# the 8 digest bytes a format sorts keys by (a key is its UTF-8 bytes)
_DIGESTS = {1: _blake2b_8, 2: _md5_8}


def KEY_HASH_SQL(key: str) -> str:  # noqa: N802 - reads as the SQL constant it stands for
    """SQL of a key's format-2 hash as 16 lowercase hex digits (DuckDB and Spark alike), which
    sort as the numbers do; ``key`` is a varchar expression."""
    return f"substr(md5({key}), 1, 16)"


def key_hash(key: str, fmt: int = FORMAT) -> int:
    """The 64-bit hash a snapshot of format ``fmt`` sorts keys by."""
    return int.from_bytes(_DIGESTS[fmt](key.encode()), "big")


def snapshot_path(root: Path, channel: str) -> Path:
    return artifacts.target_dir(root) / "serve" / f"{channel}{SUFFIX}"


def bucket_bits(n: int) -> int:
    """Top hash bits of the bucket index: about 8 to 16 rows a bucket, at most 2**16 buckets."""
    return max(0, min(16, n.bit_length() - 4))


def _align(n: int) -> int:
    return (n + 7) & ~7


def _bits(names: Sequence[str], index: Mapping[str, int]) -> int:
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"segments {sorted(unknown)} are not in {list(index)}")
    mask = 0
    for name in names:
        mask |= 1 << index[name]
    return mask


@dataclass(frozen=True)
class Audience:
    """A channel's audience as columns, one entry per key: the fast way into ``encode``.

    ``members[i]`` has bit ``j`` set when ``keys[i]`` is delivered in ``segments[j]``, ``holdout``
    likewise for held out; ``attributes`` (or None) holds each key's attributes (or None).
    ``hashes`` (or None): the keys are already ordered by hash, and these are the hashes, 8
    big-endian bytes a key (``bytes.fromhex`` of the ``KEY_HASH_SQL`` column): a warehouse that
    sorted a million keys saves ``encode`` hashing and sorting them in Python."""

    keys: Sequence[str]
    members: Sequence[int]
    holdout: Sequence[int]
    attributes: Sequence[Mapping[str, Any] | None] | None = None
    hashes: bytes | None = None

    @classmethod
    def of(cls, members: Iterable[Member], segments: Sequence[str]) -> Audience:
        """The columns of a list of ``Member`` (segment names become bits)."""
        index = {name: i for i, name in enumerate(segments)}
        listed = list(members)
        masks: dict[tuple[str, ...], int] = {}

        def bits(names: tuple[str, ...]) -> int:
            mask = masks.get(names)
            if mask is None:
                mask = masks[names] = _bits(names, index)
            return mask

        attributes = tuple(m.attributes for m in listed)
        return cls(
            tuple(m.key for m in listed),
            tuple(bits(m.segments) for m in listed),
            tuple(bits(m.holdout) for m in listed),
            attributes if any(attributes) else None,
        )


def _gather(values: Sequence[Any], order: Sequence[int]) -> Sequence[Any]:
    """``[values[i] for i in order]``, in C."""
    if isinstance(order, range) and order == range(len(values)):
        return values
    if len(order) < 2:
        return [values[i] for i in order]
    return itemgetter(*order)(values)  # type: ignore[no-any-return]


def _words(masks: Sequence[int], order: Sequence[int], words: int) -> array:
    """The masks of the rows in ``order`` as ``words`` native u64 per row."""
    ordered = _gather(masks, order)
    if words == 1:
        return array("Q", ordered)
    out = array("Q", bytes(8 * words * len(order)))
    for w in range(words):
        out[w::words] = array("Q", [m >> (64 * w) & 0xFFFFFFFFFFFFFFFF for m in ordered])
    return out


def _counts(masks: array, words: int, n_segments: int) -> list[int]:
    """How many rows have each bit set, from byte histograms of the mask words."""
    raw = memoryview(masks).cast("B")
    out = [0] * n_segments
    stride = 8 * words
    for at in range((n_segments + 7) // 8):
        byte = at if sys.byteorder == "little" else (at // 8) * 8 + 7 - at % 8
        histogram = Counter(raw[byte::stride].tobytes())
        for j in range(8 * at, min(8 * at + 8, n_segments)):
            bit = 1 << (j - 8 * at)
            out[j] = sum(n for value, n in histogram.items() if value & bit)
    return out


def encode(
    channel: str,
    segments: Sequence[str],
    members: Iterable[Member] | Audience,
    published_at: dt.datetime,
    columns: Sequence[str] = (),
) -> tuple[bytes, str, int]:
    """The bytes of a snapshot, its version and its key count (pure). Column by column: a few
    passes over each column, one sort (by key hash), the file joined once."""
    index = {name: i for i, name in enumerate(segments)}
    if len(index) != len(segments):
        raise ValueError(f"duplicate segment names in {list(segments)}")
    words = max(1, (len(segments) + 63) // 64)
    table = members if isinstance(members, Audience) else Audience.of(members, segments)
    n = len(table.keys)
    if not len(table.members) == len(table.holdout) == n:
        raise ValueError("an audience needs one member mask and one holdout mask per key")
    for masks in (table.members, table.holdout):
        if n and (min(masks) < 0 or max(masks) >> len(segments)):
            raise ValueError(f"a mask names a segment beyond the {len(segments)} segments")
    raw_keys = [k.encode() for k in table.keys]
    if len(set(raw_keys)) != n:
        seen: set[bytes] = set()
        twice = next(k for k in raw_keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"key {twice.decode()!r} appears twice")
    # every per-key step below loops in C (map, join, itemgetter, array): no Python bytecode
    # per key except the sort's key lookups
    if table.hashes is None:
        digests = b"".join(map(_DIGESTS[FORMAT], raw_keys))
    elif len(table.hashes) == 8 * n:
        digests = table.hashes
    else:
        raise ValueError("an audience's hashes need 8 bytes a key")
    unsorted = array("Q", digests)
    if sys.byteorder == "little":
        unsorted.byteswap()  # a digest is a big-endian number
    all_hashes = unsorted.tolist()
    del unsorted
    if table.hashes is None:
        # rows whose hashes collide keep any order: a lookup compares the key of every such row
        order: Sequence[int] = sorted(range(n), key=all_hashes.__getitem__)
        sorted_hashes = _gather(all_hashes, order)
    else:
        order, sorted_hashes = range(n), all_hashes
        if not all(map(le, all_hashes, islice(all_hashes, 1, None))):
            raise ValueError("an audience with hashes must be ordered by them")
        for row in range(0, n, max(1, n // 64)):  # a warehouse hashing otherwise is caught here
            if digests[8 * row : 8 * row + 8] != _DIGESTS[FORMAT](raw_keys[row]):
                raise ValueError(f"the hash given for key {table.keys[row]!r} is not its md5")
    del all_hashes, digests
    hashes = array("Q", sorted_hashes)
    bits = bucket_bits(n)
    shift = 64 - bits
    buckets = array(
        "I", [bisect.bisect_left(sorted_hashes, top << shift) for top in range(1 << bits)] + [n]
    )
    del sorted_hashes
    member_masks = _words(table.members, order, words)
    holdout_masks = _words(table.holdout, order, words)
    sorted_keys = _gather(raw_keys, order)
    del raw_keys
    lengths = list(map(len, sorted_keys))
    pack = _KEY_LEN.pack
    attributes = table.attributes
    if attributes is None:
        blob = b"".join(chain.from_iterable(zip(map(pack, lengths), sorted_keys)))
        sizes_of: Iterable[int] = map((4).__add__, lengths)
    else:
        dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
        tails = [dumps(a).encode() if a else b"" for a in _gather(attributes, order)]
        blob = b"".join(chain.from_iterable(zip(map(pack, lengths), sorted_keys, tails)))
        sizes_of = map(sum, zip(map((4).__add__, lengths), map(len, tails)))
    offsets = array("Q", accumulate(sizes_of, initial=0))
    del sorted_keys, lengths
    sizes = dict(zip(segments, _counts(member_masks, words, len(segments))))
    held = dict(zip(segments, _counts(holdout_masks, words, len(segments))))
    arrays = (buckets, hashes, member_masks, holdout_masks, offsets)
    if sys.byteorder != "little":  # arrays are native-endian; the format is little-endian
        for a in arrays:
            a.byteswap()
    sections: list[bytes] = [a.tobytes() for a in arrays] + [blob]

    digest = hashlib.sha256(f"{channel}\0{published_at.isoformat()}\0".encode())
    digest.update(json.dumps([list(segments), list(columns)]).encode())
    for s in sections:
        digest.update(struct.pack("<Q", len(s)))
        digest.update(s)
    version = digest.hexdigest()[:16]
    meta = json.dumps(
        {
            "channel": channel,
            "version": version,
            "published_at": published_at.isoformat(),
            "segments": list(segments),
            "sizes": sizes,
            "held_out": held,
            "columns": list(columns),
            "keys": n,
        },
        separators=(",", ":"),
    ).encode()

    offset = _align(HEADER.size)
    starts = []
    parts: list[bytes] = []
    for part in [meta, *sections]:
        starts.append(offset)
        parts.append(part)
        offset += len(part)
        if offset != _align(offset):
            parts.append(bytes(_align(offset) - offset))
            offset = _align(offset)
    header = HEADER.pack(MAGIC, FORMAT, words, n, len(meta), bits, 0, *starts)
    data = b"".join([header, bytes(_align(HEADER.size) - HEADER.size), *parts])
    return data, version, n


def write_snapshot(
    path: Path,
    channel: str,
    segments: Sequence[str],
    members: Iterable[Member] | Audience,
    published_at: dt.datetime,
    columns: Sequence[str] = (),
) -> Written:
    """Write a snapshot atomically (temporary name, fsync, rename, fsync of the folder).

    Only one writer runs at a time (the run lock), so temporary files of earlier writers are
    leftovers of a killed process and are removed first."""
    data, version, keys = encode(channel, segments, members, published_at, columns)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    for stale in folder.glob(f".{path.name}.*.tmp"):  # left by a writer killed mid-write
        stale.unlink(missing_ok=True)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return Written(path, version, keys)


class Snapshot:
    """A snapshot file mapped read-only. ``Snapshot.open(path)``; ``lookup(key)``; ``close()``.

    Opening reads the header and the JSON meta only; a lookup is a binary search over the mapped
    hash array. The object is safe to share between threads; close it only when no lookup runs.
    """

    def __init__(self, path: Path, stat: os.stat_result, mm: mmap.mmap) -> None:
        self.path = path
        self.stat = stat
        self._mm = mm
        magic, fmt, words, n, meta_len, bits, _, *starts = HEADER.unpack_from(mm, 0)
        if sys.byteorder != "little":
            raise SnapshotError("serving snapshots needs a little-endian machine")
        if magic != MAGIC:
            raise SnapshotError(f"{path.name} is not a cadence snapshot")
        if fmt not in READS:
            raise SnapshotError(
                f"{path.name} has snapshot format {fmt}; this cadence reads formats "
                + ", ".join(map(str, READS)),
                hint="run the channel's segments again to rewrite it",
            )
        meta_at, buckets_at, hashes_at, members_at, holdout_at, offsets_at, blob_at = starts
        width = n * words * 8
        n_buckets = (1 << bits) + 1
        ends = [
            (meta_at, meta_len),
            (buckets_at, n_buckets * 4),
            (hashes_at, n * 8),
            (members_at, width),
            (holdout_at, width),
            (offsets_at, (n + 1) * 8),
        ]
        if any(start + size > len(mm) for start, size in ends) or blob_at > len(mm):
            raise SnapshotError(f"{path.name} is truncated")
        if blob_at + struct.unpack_from("<Q", mm, offsets_at + n * 8)[0] > len(mm):
            raise SnapshotError(f"{path.name} is truncated")
        self.meta: dict[str, Any] = json.loads(bytes(mm[meta_at : meta_at + meta_len]))
        self.channel: str = self.meta["channel"]
        self.version: str = self.meta["version"]
        self.published_at = dt.datetime.fromisoformat(self.meta["published_at"])
        self.segments: tuple[str, ...] = tuple(self.meta["segments"])
        self.keys: int = n
        self._words = words
        self.format: int = fmt
        self._digest = _DIGESTS[fmt]
        view = memoryview(mm)
        self._view = view
        self._bits = bits
        self._shift = 64 - bits
        self._buckets = view[buckets_at : buckets_at + n_buckets * 4].cast("I")
        self._hashes = view[hashes_at : hashes_at + n * 8].cast("Q")
        self._members = view[members_at : members_at + width].cast("Q")
        self._holdout = view[holdout_at : holdout_at + width].cast("Q")
        self._offsets = view[offsets_at : offsets_at + (n + 1) * 8].cast("Q")
        self._blob_at = blob_at
        self._tables: list[list[tuple[str, ...]]] | None = None

    @classmethod
    def open(cls, path: Path) -> Snapshot:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise SnapshotError(f"no snapshot at {path}") from None
        try:
            stat = os.fstat(fd)
            if stat.st_size < HEADER.size:
                raise SnapshotError(f"{path.name} is truncated")
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        try:
            return cls(path, stat, mm)
        except BaseException:
            mm.close()
            raise

    def _decode(self, mask: int) -> tuple[str, ...]:
        """Segment names of a mask, a byte at a time from per-byte tables (built on first use)."""
        if not mask:
            return ()
        if self._tables is None:  # two threads may both build it: same result
            n = len(self.segments)
            self._tables = [
                [
                    tuple(
                        self.segments[8 * b + j] for j in range(8) if v >> j & 1 and 8 * b + j < n
                    )
                    for v in range(256)
                ]
                for b in range((len(self.segments) + 7) // 8)
            ]
        names: tuple[str, ...] = ()
        for table in self._tables:
            names += table[mask & 0xFF]
            mask >>= 8
            if not mask:
                break
        return names

    def _mask(self, masks: memoryview, row: int) -> int:
        if self._words == 1:
            return int(masks[row])
        at = row * self._words
        return sum(int(masks[at + w]) << (64 * w) for w in range(self._words))

    def find(self, key: str) -> int:
        """The row of ``key``, or -1 when the snapshot does not hold it."""
        raw = key.encode()
        h = int.from_bytes(self._digest(raw), "big")
        hashes = self._hashes
        if self._bits:
            top = h >> self._shift
            row = bisect.bisect_left(hashes, h, self._buckets[top], self._buckets[top + 1])
        else:
            row = bisect.bisect_left(hashes, h)
        n, offsets, view, base, size_of = (
            self.keys,
            self._offsets,
            self._view,
            self._blob_at,
            _KEY_LEN.unpack_from,
        )
        while row < n and hashes[row] == h:
            start = base + offsets[row]
            size = size_of(view, start)[0]
            if view[start + 4 : start + 4 + size] == raw:
                return row
            row += 1
        return -1

    def masks(self, row: int) -> tuple[int, int]:
        """The member and holdout masks of a row (bit i: ``segments[i]``)."""
        if self._words == 1:
            return self._members[row], self._holdout[row]
        return self._mask(self._members, row), self._mask(self._holdout, row)

    def attributes(self, row: int) -> Mapping[str, Any]:
        """The attributes stored with a row (empty when none)."""
        start, end = self._blob_at + self._offsets[row], self._blob_at + self._offsets[row + 1]
        at = start + 4 + _KEY_LEN.unpack_from(self._view, start)[0]
        return json.loads(bytes(self._view[at:end])) if at < end else _NO_ATTRIBUTES

    def lookup(self, key: str) -> Answer:
        """Segments and holdout of ``key``; empty for a key the snapshot does not hold."""
        row = self.find(key)
        if row < 0:
            return Answer(key, (), ())
        member, held = self.masks(row)
        return Answer(key, self._decode(member), self._decode(held), self.attributes(row))

    def same_file(self, stat: os.stat_result) -> bool:
        """Whether ``stat`` (of the snapshot's path) still names the file this maps."""
        return (stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_size) == (
            self.stat.st_ino,
            self.stat.st_dev,
            self.stat.st_mtime_ns,
            self.stat.st_size,
        )

    def close(self) -> None:
        for view in (
            self._buckets,
            self._hashes,
            self._members,
            self._holdout,
            self._offsets,
            self._view,
        ):
            view.release()
        self._mm.close()
