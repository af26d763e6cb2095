"""Snapshot files: what is written is what a lookup answers, atomically, privately."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from pathlib import Path

import pytest

from cadence.serve import snapshot
from cadence.serve.snapshot import (
    Audience,
    Member,
    Snapshot,
    SnapshotError,
    encode,
    write_snapshot,
)

AT = dt.datetime(2026, 3, 1, 9, 15, tzinfo=dt.timezone.utc)
SEGMENTS = ("vip", "browsing", "lapsed")


def _members() -> list[Member]:
    return [
        Member("c1", ("vip", "browsing")),
        Member("c2", ("lapsed",), ("vip",)),
        Member("c3", (), ("browsing",)),
        Member("ü/ß key", ("browsing",)),
    ]


def test_lookup_answers_what_was_written(tmp_path: Path) -> None:
    written = write_snapshot(tmp_path / "web.snap", "web", SEGMENTS, _members(), AT)
    snap = Snapshot.open(written.path)
    try:
        assert snap.lookup("c1").segments == ("vip", "browsing")
        assert snap.lookup("c2")[1:3] == (("lapsed",), ("vip",))
        assert snap.lookup("c3")[1:3] == ((), ("browsing",))
        assert snap.lookup("ü/ß key").segments == ("browsing",)
        assert snap.lookup("nobody")[1:3] == ((), ())
        assert snap.lookup("c")[1:3] == ((), ())  # a prefix of a key is not the key
        assert snap.version == written.version and snap.keys == 4 == written.keys
        assert snap.published_at == AT and snap.channel == "web"
        assert snap.meta["sizes"] == {"vip": 1, "browsing": 2, "lapsed": 1}
        assert snap.meta["held_out"] == {"vip": 1, "browsing": 1, "lapsed": 0}
    finally:
        snap.close()


def test_attributes_are_stored_only_when_given(tmp_path: Path) -> None:
    members = [
        Member("c1", ("vip",), attributes={"first_name": "Ada", "ltv": 812.5}),
        Member("c2", ("vip",)),
    ]
    path = write_snapshot(tmp_path / "w.snap", "web", ("vip",), members, AT, ["first_name"]).path
    snap = Snapshot.open(path)
    assert dict(snap.lookup("c1").attributes) == {"first_name": "Ada", "ltv": 812.5}
    assert dict(snap.lookup("c2").attributes) == {}
    assert snap.meta["columns"] == ["first_name"]
    snap.close()


@pytest.mark.parametrize("fmt", [1, 2])
def test_colliding_hashes_are_told_apart_by_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: int
) -> None:
    real = snapshot._DIGESTS[fmt]

    def colliding(data: bytes) -> bytes:
        return real(b"same" if data.startswith(b"x") else data)

    monkeypatch.setattr(snapshot, "FORMAT", fmt)  # format 1: what earlier cadence wrote
    monkeypatch.setitem(snapshot._DIGESTS, fmt, colliding)
    members = [Member(f"x{i}", (SEGMENTS[i % 3],)) for i in range(5)] + [Member("y", ("vip",))]
    path = write_snapshot(tmp_path / "c.snap", "web", SEGMENTS, members, AT).path
    snap = Snapshot.open(path)
    assert snap.format == fmt
    assert len({int(h) for h in snap._hashes}) == 2  # five rows share one hash
    for i in range(5):
        assert snap.lookup(f"x{i}").segments == (SEGMENTS[i % 3],)
    assert snap.lookup("x9").segments == ()  # same hash, no such key
    assert snap.lookup("y").segments == ("vip",)
    snap.close()


def test_a_format_1_file_of_an_earlier_cadence_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [Member(f"cust_{i}", (SEGMENTS[i % 3],)) for i in range(300)]
    monkeypatch.setattr(snapshot, "FORMAT", 1)
    path = write_snapshot(tmp_path / "old.snap", "web", SEGMENTS, members, AT).path
    monkeypatch.undo()
    snap = Snapshot.open(path)
    assert snap.format == 1 and snapshot.FORMAT == 2
    assert [int(h) for h in snap._hashes] == sorted(snapshot.key_hash(m.key, 1) for m in members)
    assert all(snap.lookup(m.key).segments == m.segments for m in members)
    assert snap.lookup("cust_300").segments == ()
    snap.close()


def _sorted_audience(members: list[Member]) -> Audience:
    """What a warehouse hands over: rows ordered by the format-2 hash, the hashes as bytes."""
    ordered = sorted(members, key=lambda m: snapshot.key_hash(m.key))
    plain = Audience.of(ordered, SEGMENTS)
    hashes = b"".join(snapshot.key_hash(m.key).to_bytes(8, "big") for m in ordered)
    return Audience(plain.keys, plain.members, plain.holdout, plain.attributes, hashes)


def test_hashes_sorted_by_the_warehouse_give_the_same_file() -> None:
    members = [Member(f"k{i}", (SEGMENTS[i % 3],), (SEGMENTS[(i + 1) % 3],)) for i in range(500)]
    assert encode("web", SEGMENTS, _sorted_audience(members), AT) == encode(
        "web", SEGMENTS, members, AT
    )


def test_hashes_out_of_order_or_not_md5_are_refused() -> None:
    members = [Member(f"k{i}", ("vip",)) for i in range(200)]
    good = _sorted_audience(members)
    backwards = Audience(
        good.keys[::-1],
        good.members[::-1],
        good.holdout[::-1],
        None,
        b"".join(good.hashes[i : i + 8] for i in range(len(good.hashes) - 8, -1, -8)),  # type: ignore[index]
    )
    with pytest.raises(ValueError, match="ordered"):
        encode("web", SEGMENTS, backwards, AT)
    other = [hashlib.sha256(k.encode()).digest()[:8] for k in good.keys]
    ordered = sorted(range(len(other)), key=other.__getitem__)
    wrong = Audience(
        [good.keys[i] for i in ordered],
        [good.members[i] for i in ordered],
        [good.holdout[i] for i in ordered],
        None,
        b"".join(other[i] for i in ordered),
    )
    with pytest.raises(ValueError, match="not its md5"):
        encode("web", SEGMENTS, wrong, AT)
    with pytest.raises(ValueError, match="8 bytes"):
        encode("web", SEGMENTS, Audience(good.keys, good.members, good.holdout, None, b"x"), AT)


def test_an_empty_audience_answers_nobody(tmp_path: Path) -> None:
    written = write_snapshot(tmp_path / "e.snap", "web", SEGMENTS, [], AT)
    snap = Snapshot.open(written.path)
    assert written.keys == 0 == snap.keys
    assert snap.lookup("c1")[1:3] == ((), ())
    assert snap.meta["sizes"] == {"vip": 0, "browsing": 0, "lapsed": 0}
    snap.close()
    empty = Audience([], [], [], None, b"")
    assert encode("web", SEGMENTS, empty, AT)[1] == written.version


def test_many_segments_use_wider_masks(tmp_path: Path) -> None:
    names = tuple(f"s{i}" for i in range(130))
    members = [Member("k", ("s0", "s64", "s129"), ("s65",)), Member("j", ("s1",))]
    snap = Snapshot.open(write_snapshot(tmp_path / "m.snap", "web", names, members, AT).path)
    assert snap.lookup("k")[1:3] == (("s0", "s64", "s129"), ("s65",))
    assert snap.lookup("j").segments == ("s1",)
    snap.close()


def test_large_snapshot_finds_every_key(tmp_path: Path) -> None:
    members = [
        Member(f"cust_{i}", tuple(s for b, s in enumerate(SEGMENTS) if i >> b & 1))
        for i in range(20_000)
    ]
    snap = Snapshot.open(write_snapshot(tmp_path / "l.snap", "web", SEGMENTS, members, AT).path)
    assert snapshot.bucket_bits(20_000) > 0
    assert all(snap.lookup(m.key).segments == m.segments for m in members)
    assert snap.lookup("cust_20000").segments == ()
    snap.close()


def test_version_names_the_content() -> None:
    a = encode("web", SEGMENTS, _members(), AT)
    assert encode("web", SEGMENTS, list(reversed(_members())), AT)[:2] == a[:2]
    assert encode("web", SEGMENTS, _members()[1:], AT)[1] != a[1]
    assert encode("web", SEGMENTS, _members(), AT + dt.timedelta(minutes=15))[1] != a[1]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        encode("web", SEGMENTS, [Member("a", ("vip",)), Member("a", ("lapsed",))], AT)
    with pytest.raises(ValueError, match="not in"):
        encode("web", SEGMENTS, [Member("a", ("nope",))], AT)


def test_written_files_are_private_and_leave_no_temporary(tmp_path: Path) -> None:
    os.umask(0o022)
    path = tmp_path / "target" / "serve" / "web.snap"
    write_snapshot(path, "web", SEGMENTS, _members(), AT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["web.snap"]


def test_a_failed_write_keeps_the_last_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "web.snap"
    first = write_snapshot(path, "web", SEGMENTS, _members(), AT)

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot.os, "write", full)
    with pytest.raises(OSError):
        write_snapshot(path, "web", SEGMENTS, _members()[:1], AT + dt.timedelta(hours=1))
    monkeypatch.undo()
    assert Snapshot.open(path).version == first.version
    assert [p.name for p in tmp_path.iterdir()] == ["web.snap"]


def test_an_open_snapshot_keeps_answering_after_a_rename(tmp_path: Path) -> None:
    path = tmp_path / "web.snap"
    write_snapshot(path, "web", SEGMENTS, _members(), AT)
    old = Snapshot.open(path)
    write_snapshot(path, "web", SEGMENTS, [Member("c1", ("lapsed",))], AT + dt.timedelta(hours=1))
    new = Snapshot.open(path)
    assert old.lookup("c1").segments == ("vip", "browsing")
    assert new.lookup("c1").segments == ("lapsed",)
    assert not old.same_file(path.stat()) and new.same_file(path.stat())
    old.close()
    new.close()


@pytest.mark.parametrize("damage", ["truncate", "magic", "format", "missing"])
def test_damaged_files_are_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "web.snap"
    data = bytearray(encode("web", SEGMENTS, _members(), AT)[0])
    if damage == "truncate":
        data = data[: len(data) - 20]
    elif damage == "magic":
        data[:8] = b"NOTASNAP"
    elif damage == "format":
        data[8:12] = (99).to_bytes(4, "little")
    if damage != "missing":
        path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        Snapshot.open(path)


def test_a_write_killed_midway_leaves_the_old_file_and_its_leftover_is_removed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "web.snap"
    first = write_snapshot(path, "web", SEGMENTS, _members(), AT)
    data = encode("web", SEGMENTS, _members()[:2], AT)[0]
    (tmp_path / ".web.snap.99999.tmp").write_bytes(data[: len(data) // 2])  # killed mid-write
    assert Snapshot.open(path).version == first.version  # readers never see the part
    second = write_snapshot(path, "web", SEGMENTS, _members()[:2], AT)
    assert Snapshot.open(path).version == second.version != first.version
    assert [p.name for p in tmp_path.iterdir()] == ["web.snap"]
