"""The file destination (SPEC §7): DuckDB COPY to parquet/csv/jsonl, temp + fsync + rename, the
manifest last, deterministic export ids, owner-only files, paths that cannot escape, and exactly
once across disk full, permissions, a path that is a file and kill -9 at every step boundary."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
from pathlib import Path
from unittest import mock

import pytest
from activation_project import (
    CADENCE_YML,
    cadence,
    make_activation,
    manifests,
    query,
    rows_of,
    sent,
    set_people,
    set_unsubscribed,
)
from conftest import at

from cadence.activation import files
from cadence.project import Project


def yml(export: str, extra: str = "") -> str:
    return extra + CADENCE_YML.replace(
        "export: {format: parquet, columns: [email]}", f"export: {export}"
    )


def data_files(root: Path) -> list[Path]:
    return [
        p
        for p in (root / "exports").rglob("*")
        if p.is_file() and not p.name.endswith((".manifest.json", ".tmp"))
    ]


def check_manifests_match_files(root: Path) -> None:
    for m in manifests(root):
        data = Path(m["_path"]).with_name(m["file"])
        assert hashlib.sha256(data.read_bytes()).hexdigest() == m["sha256"]
        assert len(rows_of(m)) == m["rows"]
        first, last = m["change_range"]["first_seq"], m["change_range"]["last_seq"]
        if m["mode"] == "changes":
            assert m["rows"] == last - first + 1 == m["counts"]["entered"] + m["counts"]["exited"]
    data_files = [
        p
        for p in (root / "exports").rglob("*")
        if p.is_file() and not p.name.endswith(".manifest.json")
    ]
    assert len(data_files) == len(manifests(root)), "a data file without its manifest"
    assert not [p for p in (root / "exports").rglob("*.tmp")]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_each_format_with_its_manifest(make_project, cli, fmt):
    root = make_activation(
        make_project, [(1, 900), (2, 900)], cadence_yml=yml(f"{{format: {fmt}, columns: [email]}}")
    )
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    (m,) = manifests(root, "vip")
    assert m["file"] == f"email__vip__000000001-000000002.{fmt}"
    assert m["format"] == fmt and m["mode"] == "changes" and m["replace"] is False
    assert m["counts"] == {"entered": 2, "exited": 0} and m["rows"] == 2
    assert m["change_range"] == {"first_seq": 1, "last_seq": 2}
    assert m["published_at"] == "2026-01-01T06:00:00+00:00"
    assert {c["name"] for c in m["columns"]} == {"seq", "key", "change", "at", "email"}
    # the key keeps its column's type (people.id is an integer) in every format
    assert sorted(r[1:3] for r in rows_of(m)) == [(1, "entered"), (2, "entered")]
    check_manifests_match_files(root)


def test_full_mode_writes_the_audience(make_project, cli):
    root = make_activation(
        make_project, [(1, 900), (2, 900)], cadence_yml=yml("{mode: full, columns: [email]}")
    )
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(1, 900), (3, 900)])
    cli(root, "run", "--at", "2026-01-02T06:00")
    last = manifests(root, "vip")[-1]
    assert last["mode"] == "full" and last["counts"] == {"entered": 1, "exited": 1}
    assert rows_of(last) == [(1, "u1@x.test"), (3, "u3@x.test")]
    check_manifests_match_files(root)


def test_path_tokens_and_owner_only_files_under_umask_022(make_project, cli):
    root = make_activation(
        make_project,
        [(1, 900)],
        cadence_yml=yml('{path: "out/{channel}/{date}/{segment}-{run_at}-{export_id}.{format}"}'),
    )
    old = os.umask(0o022)
    try:
        assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    finally:
        os.umask(old)
    data = (
        root / "out/email/2026-01-01/vip-20260101T060000Z-email__vip__000000001-000000001.parquet"
    )
    assert data.is_file()
    for path in [data, data.with_name("email__vip__000000001-000000001.manifest.json")]:
        assert path.stat().st_mode & 0o777 == 0o600
    for folder in [root / "out", root / "out/email", root / "out/email/2026-01-01"]:
        assert folder.stat().st_mode & 0o777 == 0o700


def test_library_export_writes_owner_only_files_under_umask_022(make_project, cli):
    """``Project.export`` called from Python (no CLI to set the umask), with a leftover temp
    file of an earlier attempt that others could read: DuckDB's COPY replaces the file it is
    given with a new one made under the process umask, so cadence must not rely on the file
    it reserved."""
    root = make_activation(make_project, [(1, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(1, 900), (2, 900)])
    project = Project.load(root)
    old = os.umask(0o022)
    try:
        with mock.patch.object(Project, "_deliver_after_run", lambda self, e, s, r, n, *plan: r):
            project.run(at("2026-01-02T06:00"))  # built, not delivered
        folder = root / "exports" / "email" / "vip"
        leftover = folder / ".email__vip__000000002-000000002.parquet.tmp"
        leftover.write_bytes(b"half a file from a killed attempt")
        leftover.chmod(0o644)
        report = project.export(at("2026-01-02T06:01"))
    finally:
        os.umask(old)
    assert report.ok
    written = sorted(folder.iterdir())
    assert [p.name for p in written if "000000002" in p.name] == [
        "email__vip__000000002-000000002.manifest.json",
        "email__vip__000000002-000000002.parquet",
    ]
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o600, path
    check_manifests_match_files(root)


def test_paths_cannot_leave_the_project(make_project, cli, tmp_path):
    outside = tmp_path / "elsewhere"
    root = make_activation(
        make_project, [(1, 900)], cadence_yml=yml(f'{{path: "{outside}/{{export_id}}.parquet"}}')
    )
    result = cli(root, "run", "--at", "2026-01-01T06:00")
    assert result.exit_code == 1
    assert "resolves outside the project folder" in result.output
    assert not outside.exists()
    # a symlinked folder pointing out is no way around it
    root2 = make_activation(make_project, [(1, 900)], cadence_yml=yml('{path: "link/{export_id}"}'))
    outside.mkdir()
    (root2 / "link").symlink_to(outside)
    assert cli(root2, "run", "--at", "2026-01-01T06:00").exit_code == 1
    assert list(outside.iterdir()) == []
    # an absolute export_root allows it
    root3 = make_activation(
        make_project,
        [(1, 900)],
        cadence_yml=yml('{path: "{segment}/{export_id}.parquet"}', f"export_root: {outside}\n"),
    )
    assert cli(root3, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert (outside / "vip" / "email__vip__000000001-000000001.parquet").is_file()


def test_names_cannot_smuggle_path_parts(tmp_path):
    for bad in ("../x", "a/b", ".."):
        with pytest.raises(files.ExportPathError):
            files.render_path(
                "{segment}/{export_id}",
                root=tmp_path,
                export_root=None,
                channel="email",
                segment=bad,
                export="e",
                fmt="csv",
                planned_at=at("2026-01-01T06:00"),
            )


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("_hash_and_sync", OSError(errno.ENOSPC, "No space left on device"), "disk full writing"),
        ("_write_synced", OSError(errno.ENOSPC, "No space left on device"), "disk full writing"),
        ("_rename_durably", OSError(errno.EIO, "Input/output error"), "Input/output error"),
        ("_make_folders", PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
    ],
)
def test_disk_full_and_permissions_lose_nothing(
    make_project, cli, monkeypatch, target, error, message
):
    root = make_activation(make_project, [(1, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(1, 900), (2, 900)])
    project = Project.load(root)
    real = getattr(files, target)

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(files, target, failing)
    project.run(at("2026-01-02T06:00"))
    report = project.export(at("2026-01-02T06:01"))
    (vip,) = [d for d in report.deliveries if d.segment == "vip"]
    assert vip.status == "failed" and message in (vip.error or "")
    assert not report.ok
    monkeypatch.setattr(files, target, real)
    report = project.export(at("2026-01-02T06:02"))
    assert report.ok
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered")]
    check_manifests_match_files(root)


def test_a_failed_flush_of_the_data_file_fails_the_delivery(make_project, cli, monkeypatch):
    """A full disk found only when the data file is flushed (fdatasync) must still fail the
    delivery, with neither the file nor its manifest named."""
    root = make_activation(make_project, [(1, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(1, 900), (2, 900)])
    project = Project.load(root)
    real = os.fdatasync

    def flush(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".parquet.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(files.os, "fdatasync", flush)
    project.run(at("2026-01-02T06:00"))
    report = project.export(at("2026-01-02T06:01"))
    (vip,) = [d for d in report.deliveries if d.segment == "vip"]
    assert vip.status == "failed" and "disk full writing" in (vip.error or "")
    assert not list((root / "exports").rglob("*vip*000000002*"))  # no file, no manifest
    monkeypatch.setattr(files.os, "fdatasync", real)
    report = project.export(at("2026-01-02T06:02"))
    assert report.ok
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered")]
    check_manifests_match_files(root)


@pytest.mark.parametrize(
    "step",
    ["after_freeze", "after_plan", "after_synced", "after_data", "after_manifest", "after_send"],
)
def test_kill_9_at_every_step_boundary_sends_each_change_once(make_project, step):
    root = make_activation(make_project, [(1, 900), (2, 10)])
    assert cadence(root, "run", "--at", "2026-01-01T06:00").returncode == 0
    set_people(root, [(1, 900), (2, 900), (3, 900)])
    set_unsubscribed(root, [1])
    before = (len(manifests(root)), len(data_files(root)))
    killed = cadence(root, "run", "--at", "2026-01-02T06:00", fault=step)
    assert killed.returncode == -9, killed.stderr
    # what a reader sees right after the kill: every manifest names its complete file
    for m in manifests(root):
        data = Path(m["_path"]).with_name(m["file"])
        assert hashlib.sha256(data.read_bytes()).hexdigest() == m["sha256"], step
    seen = {
        "after_synced": (0, 0),  # both written and synced under temporary names only
        "after_data": (0, 1),  # the data file renamed in, its manifest not yet
        "after_manifest": (1, 1),
    }.get(step)
    if seen is not None:
        now = (len(manifests(root)), len(data_files(root)))
        assert (now[0] - before[0], now[1] - before[1]) == seen, step
    # more changes land before the next invocation
    set_people(root, [(2, 900), (3, 900), (4, 900)])
    again = cadence(root, "run", "--at", "2026-01-03T06:00")
    assert again.returncode == 0, again.stdout + again.stderr
    assert cadence(root, "export", "--at", "2026-01-03T06:05").returncode == 0
    vip = sent(root, "vip")
    assert len(vip) == len(set(vip)), f"sent twice: {vip}"
    entered = {k for k, c in vip if c == "entered"}
    exited = {k for k, c in vip if c == "exited"}
    assert entered - exited == {"2", "3", "4"} and exited <= entered
    regular = sent(root, "regular")
    assert regular == [("2", "entered"), ("2", "exited")]
    assert sorted(
        r[0]
        for r in query(
            root, "select key from _cadence.delivered where segment = 'vip' and not held_out"
        )
    ) == ["2", "3", "4"]
    check_manifests_match_files(root)
    statuses = [r[0] for r in query(root, "select status from _cadence.deliveries")]
    assert "started" not in statuses


def test_an_export_in_progress_is_named_as_an_export(make_project, cli, monkeypatch):
    """What `status` and a second invocation show while `cadence export` holds the project."""
    import json

    from cadence.activation import deliver
    from cadence.build.lock import HOLDER_FILE

    root = make_activation(make_project, [(1, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    seen = []
    real = deliver.deliver

    def watching(parsed, engine, now, channels, options=deliver.DeliveryOptions()):
        seen.append(json.loads((root / HOLDER_FILE).read_text())["command"])
        return real(parsed, engine, now, channels, options)

    monkeypatch.setattr(deliver, "deliver", watching)
    assert Project.load(root).export(at("2026-01-01T06:05")).ok
    assert seen == ["export"]


TYPED_SQL = (
    # an INTEGER key, a naive TIMESTAMP (the warehouse reads it as UTC) and a TIMESTAMPTZ
    "{{ config(channels=['email'], key='id') }}\n"
    "select cast(id as integer) as id, email,\n"
    "       timestamp '2026-01-01 03:30:00' + id * interval 1 minute as seen_at,\n"
    "       timestamptz '2026-01-01 04:00:00.25+01' as signed_up_at\n"
    "from {{ ref('people') }} where spend "
)
TYPED_FILES = {
    "models/vip.sql": TYPED_SQL + ">= 500\n",
    "models/regular.sql": TYPED_SQL + "< 500\n",
}


@pytest.mark.parametrize("mode", ["changes", "full"])
@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_times_are_instants_with_offsets_and_keys_keep_their_type(make_project, cli, fmt, mode):
    """SPEC §7 "Times carry their zone", read back as pyarrow and DuckDB see each format."""
    import duckdb
    import pyarrow.csv
    import pyarrow.json
    import pyarrow.parquet

    root = make_activation(
        make_project,
        [(1, 900), (2, 900)],
        cadence_yml=yml(f"{{format: {fmt}, mode: {mode}, columns: [seen_at, signed_up_at]}}"),
        extra=TYPED_FILES,
    )
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    (m,) = manifests(root, "vip")
    data = Path(m["_path"]).with_name(m["file"])
    types = {c["name"]: c["type"] for c in m["columns"]}
    zoned = "TIMESTAMP WITH TIME ZONE"
    assert types["key"] == "INTEGER"
    assert types["seen_at"] == types["signed_up_at"] == zoned
    assert types.get("at", zoned) == zoned

    reader = {"parquet": "read_parquet", "csv": "read_csv", "jsonl": "read_json"}[fmt]
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        found = con.execute(f"describe select * from {reader}('{data}')").fetchall()
        described = {r[0]: r[1] for r in found}
        first = con.execute(f"select * from {reader}('{data}') order by key").fetchone()
    assert described["key"] in ("INTEGER", "BIGINT")  # text formats: DuckDB's own guess
    assert {described[c] for c in ("seen_at", "signed_up_at")} == {zoned}
    row = dict(zip(types, first))
    assert row["key"] == 1
    assert row["seen_at"] == dt.datetime(2026, 1, 1, 3, 31, tzinfo=dt.timezone.utc)
    assert row["signed_up_at"] == dt.datetime(2026, 1, 1, 3, 0, 0, 250000, tzinfo=dt.timezone.utc)
    if mode == "changes":
        assert described["at"] == zoned
        assert row["at"] == dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone.utc)  # timezone: UTC

    if fmt == "parquet":
        schema = pyarrow.parquet.read_schema(data)
        assert str(schema.field("key").type) == "int32"
        for name in ["seen_at", "signed_up_at"] + (["at"] if mode == "changes" else []):
            assert schema.field(name).type.tz == "UTC", name
        return
    text = data.read_text()
    assert "2026-01-01T03:31:00+00:00" in text and "2026-01-01T03:00:00.250000+00:00" in text
    assert ("2026-01-01T06:00:00+00:00" in text) == (mode == "changes")
    table = (pyarrow.csv.read_csv if fmt == "csv" else pyarrow.json.read_json)(data)
    assert str(table.schema.field("key").type) == "int64"
    assert pyarrow.types.is_timestamp(table.schema.field("seen_at").type)


def test_a_key_recorded_as_text_that_no_longer_casts_keeps_the_file_as_text(make_project, cli):
    """Keys are recorded as text: when the key column changed type (a text id became an
    integer), exits of the old keys cannot be cast, so the whole file keeps keys as text."""
    root = make_activation(
        make_project,
        [(1, 900)],
        cadence_yml=yml("{format: parquet}"),
        extra={
            "models/vip.sql": "{{ config(channels=['email'], key='id') }}\n"
            "select 'old-' || id as id from {{ ref('people') }} where spend >= 500\n"
        },
    )
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    (root / "models/vip.sql").write_text(
        "{{ config(channels=['email'], key='id') }}\n"
        "select id from {{ ref('people') }} where spend >= 500\n"
    )
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    first, second = manifests(root, "vip")
    assert {c["name"]: c["type"] for c in first["columns"]}["key"] == "VARCHAR"
    assert {c["name"]: c["type"] for c in second["columns"]}["key"] == "VARCHAR"
    assert sorted(r[1:3] for r in rows_of(second)) == [("1", "entered"), ("old-1", "exited")]
