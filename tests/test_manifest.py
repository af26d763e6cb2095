"""The manifest cache (issue: cheap when idle): an unchanged project loads without rendering,
a change re-renders only what it affects, a corrupt or stale cache is rebuilt silently."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cadence.load import parser
from cadence.plan import manifest
from cadence.project import Project


def project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text("name: m\ntimezone: UTC\nvars: {n: 1}\n")
    for name in ("a", "b", "c"):
        (root / "models" / f"{name}.sql").write_text(f"select {{{{ var('n') }}}} as {name}\n")
    (root / "models" / "d.sql").write_text("select 'dflt' as d\n")
    return root


def env_model(root: Path) -> Path:
    """Model d reads an env var: it is rendered again on every load (its value is not cached)."""
    (root / "models" / "d.sql").write_text(
        "select '{{ env_var('CADENCE_TEST_X', 'dflt') }}' as d\n"
    )
    return root


def documents(root: Path) -> tuple[dict, dict, bytes]:
    """The cache file's two JSON documents and its text blob (see manifest.read)."""
    head, body = (root / manifest.CACHE_FILE).read_bytes().split(b"\n", 1)
    first, second = (int(n) for n in head.split()[4:6])
    return (
        json.loads(body[:first]),
        json.loads(body[first : first + second]),
        body[first + second :],
    )


def write_documents(
    root: Path, document: dict, later: dict, blob: bytes, version: bytes = b""
) -> None:
    """A cache file as cadence writes one, with the user's key: valid but for its content."""
    first, second = json.dumps(document).encode(), json.dumps(later).encode()
    key = manifest._key()
    head = b" ".join(
        (
            manifest.MAGIC,
            version or manifest._version(),
            manifest._checksum(key, first),
            manifest._checksum(key, second + blob),
            str(len(first)).encode(),
            str(len(second)).encode(),
        )
    )
    (root / manifest.CACHE_FILE).write_bytes(head + b"\n" + first + second + blob)


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = parser._parse_model

    def spy(source_file, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(name)
        return real(source_file, name, *args, **kwargs)

    monkeypatch.setattr(parser, "_parse_model", spy)
    return calls


def test_unchanged_project_loads_from_cache_without_rendering(
    tmp_path: Path, rendered: list[str]
) -> None:
    root = project(tmp_path)
    Project.load(root)
    assert sorted(rendered) == ["a", "b", "c", "d"]
    rendered.clear()
    loaded = Project.load(root)
    assert rendered == []
    assert [m.name for m in loaded.parsed.models] == ["a", "b", "c", "d"]


def test_one_changed_model_is_the_only_one_rendered_again(
    tmp_path: Path, rendered: list[str]
) -> None:
    root = project(tmp_path)
    Project.load(root)
    rendered.clear()
    (root / "models" / "b.sql").write_text("select 2 as b_changed_and_longer\n")
    loaded = Project.load(root)
    assert rendered == ["b"]
    assert "b_changed_and_longer" in loaded.parsed.model("b").rendered


def test_same_size_edit_right_after_caching_is_seen(tmp_path: Path, rendered: list[str]) -> None:
    root = project(tmp_path)
    Project.load(root)
    path = root / "models" / "a.sql"
    stat = path.stat()
    path.write_text(path.read_text().replace(" as a", " as z"))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    rendered.clear()
    assert " as z" in Project.load(root).parsed.model("a").rendered
    assert rendered == ["a"]


def test_cadence_yml_change_renders_everything_again(tmp_path: Path, rendered: list[str]) -> None:
    root = project(tmp_path)
    Project.load(root)
    rendered.clear()
    (root / "cadence.yml").write_text("name: m\ntimezone: UTC\nvars: {n: 22}\n")
    loaded = Project.load(root)
    assert sorted(rendered) == ["a", "b", "c", "d"]
    assert "select 22 as a" in loaded.parsed.model("a").rendered


def test_env_var_change_invalidates_the_models_reading_it(
    tmp_path: Path, rendered: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = env_model(project(tmp_path))
    assert "dflt" in Project.load(root).parsed.model("d").rendered
    rendered.clear()
    monkeypatch.setenv("CADENCE_TEST_X", "set")
    loaded = Project.load(root)
    assert rendered == ["d"]
    assert "'set'" in loaded.parsed.model("d").rendered
    rendered.clear()
    assert "'set'" in Project.load(root).parsed.model("d").rendered
    assert rendered == ["d"]  # rendered on every load, the others come from the cache


@pytest.mark.parametrize("garbage", [b"", b"not a pickle", b"\x80\x04\x95junk"])
def test_corrupt_cache_is_rebuilt_silently(
    tmp_path: Path, rendered: list[str], garbage: bytes
) -> None:
    root = project(tmp_path)
    Project.load(root)
    (root / manifest.CACHE_FILE).write_bytes(garbage)
    rendered.clear()
    loaded = Project.load(root)
    assert sorted(rendered) == ["a", "b", "c", "d"]
    assert len(loaded.parsed.models) == 4
    assert manifest.cache_stats(root) == {"exists": True, "fresh": True}


def test_new_and_deleted_files_are_seen(tmp_path: Path) -> None:
    root = project(tmp_path)
    Project.load(root)
    (root / "models" / "c.sql").unlink()
    (root / "models" / "e.sql").write_text("select 1 as e\n")
    assert [m.name for m in Project.load(root).parsed.models] == ["a", "b", "d", "e"]


def test_copy_keeping_size_and_mtime_is_seen(tmp_path: Path, rendered: list[str]) -> None:
    """`cp -p` / `touch -r` of an old file: same size, same (old) mtime, different content."""
    root = project(tmp_path)
    path = root / "models" / "a.sql"
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # long before the cache is written
    Project.load(root)
    path.write_text(path.read_text().replace(" as a", " as z"))  # same size
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    rendered.clear()
    assert " as z" in Project.load(root).parsed.model("a").rendered
    assert rendered == ["a"]


def test_cache_is_data_only_and_holds_no_env_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Env values are kept as digests: cadence.yml is parsed again on every load, and a model
    whose SQL, config or description reads one is kept without what it rendered (SPEC §6)."""
    monkeypatch.setenv("CADENCE_TEST_TOKEN", "s3cr3t-token-value")
    monkeypatch.setenv("CADENCE_TEST_X", "s3cr3t-x")
    root = env_model(project(tmp_path))
    (root / "cadence.yml").write_text(
        "name: m\ntimezone: UTC\nvars: {n: 1}\n"
        "warehouse: {path: \"{{ env_var('CADENCE_TEST_TOKEN') }}.duckdb\"}\n"
    )
    (root / "models" / "e.sql").write_text(
        "{% if env_var('CADENCE_TEST_X') %}select 1 as e{% endif %}\n"
    )
    Project.load(root)
    data = (root / manifest.CACHE_FILE).read_bytes()
    assert b"s3cr3t-token-value" not in data and b"s3cr3t-x" not in data
    document, _later, _blob = documents(root)
    env = dict(document["tables"]["Manifest"][1][0][0])  # plain JSON: the env column
    assert set(env) == {"CADENCE_TEST_TOKEN", "CADENCE_TEST_X"}
    assert not {"s3cr3t-token-value", "s3cr3t-x"} & set(env.values())
    assert not list((root / "target").glob("*.pickle"))
    # the cached load still sees the value (cadence.yml is read again, models by digest)
    again = Project.load(root)
    assert again.parsed.config.warehouse.path == "s3cr3t-token-value.duckdb"
    assert "s3cr3t-x" in again.parsed.model("d").rendered


def test_edited_cache_is_not_trusted(tmp_path: Path, rendered: list[str]) -> None:
    root = project(tmp_path)
    Project.load(root)
    cache = root / manifest.CACHE_FILE
    cache.write_bytes(cache.read_bytes().replace(b"select 1 as a", b"select 666 as a"))
    rendered.clear()
    loaded = Project.load(root)
    assert "666" not in loaded.parsed.model("a").rendered
    assert sorted(rendered) == ["a", "b", "c", "d"]


def test_planted_cache_with_a_valid_shape_but_foreign_key_is_ignored(
    tmp_path: Path, rendered: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-user"))
    Project.load(root)  # written with another user's key
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "me"))
    rendered.clear()
    Project.load(root)
    assert sorted(rendered) == ["a", "b", "c", "d"]
    assert oct((tmp_path / "me" / "cadence" / "manifest.key").stat().st_mode & 0o777) == "0o600"


def test_cache_with_unknown_classes_is_ignored(tmp_path: Path) -> None:
    root = project(tmp_path)
    Project.load(root)
    document, later, blob = documents(root)
    document["tables"]["Popen"] = [1, [[["id"]]]]
    document["root"] = 0
    write_documents(root, document, later, blob)
    assert manifest.read(root) is None
    assert len(Project.load(root).parsed.models) == 4


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    "source", ["tests/projects/shop", "examples/jaffle_shop", "examples/routing"]
)
def test_a_project_from_the_cache_equals_the_project_from_its_files(
    tmp_path: Path, source: str
) -> None:
    """Every field of every value round-trips, the lazily decoded ones included."""
    import shutil

    root = tmp_path / "p"
    shutil.copytree(
        EXAMPLES.parent / source, root, ignore=shutil.ignore_patterns("target", "*.duckdb*")
    )
    fresh = Project.load(root, use_cache=False)
    Project.load(root)  # writes the cache
    cached = Project.load(root)
    assert manifest.cache_stats(root) == {"exists": True, "fresh": True}
    assert cached.parsed.models and cached.parsed.models == fresh.parsed.models
    assert cached.parsed == fresh.parsed
    assert cached.dag == fresh.dag
    assert cached.cadences == fresh.cadences
    assert cached.parsed.view_hashes == fresh.parsed.view_hashes


def test_deciding_what_is_due_reads_only_the_first_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """The idle cron path decodes neither SQL nor tests; the first model built decodes them."""
    from cadence.load import cachefile
    from cadence.plan.due import parse_at

    root = project(tmp_path)
    (root / "models" / "v.sql").write_text("{{ config(materialized='view') }}\nselect 1 as v\n")
    (root / "models" / "t.sql").write_text(
        "{{ config(cadence='daily at 05:00') }}\nselect 1 as t\n"
    )
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    decoded: list[int] = []
    real = cachefile._Pending._decode

    def spy(self):  # type: ignore[no-untyped-def]
        decoded.append(1)
        return real(self)

    monkeypatch.setattr(cachefile._Pending, "_decode", spy)
    loaded = Project.load(root)
    plan = loaded.plan(parse_at("2026-01-02T06:01", loaded.tz))
    assert {d.name for d in plan.decisions} == {"a", "b", "c", "d", "t", "v"}
    assert not plan.to_build() and decoded == []
    assert loaded.parsed.model("a").rendered == "select 1 as a\n"
    assert decoded == [1]
    assert loaded.parsed.model("b").raw_sql == "select {{ var('n') }} as b\n"
    assert decoded == [1]  # once for the whole project


@pytest.mark.parametrize("part", ["document", "rest"])
def test_a_changed_byte_in_either_part_of_the_cache_is_never_used(
    tmp_path: Path, rendered: list[str], part: str
) -> None:
    root = project(tmp_path)
    Project.load(root)
    cache = root / manifest.CACHE_FILE
    data = bytearray(cache.read_bytes())
    head_end = data.index(b"\n") + 1
    first = int(bytes(data[:head_end]).split()[4])
    where = head_end + (first // 2 if part == "document" else first + 10)
    data[where] ^= 0x01
    cache.write_bytes(bytes(data))
    assert manifest.read(root) is None
    rendered.clear()
    loaded = Project.load(root)
    assert sorted(rendered) == ["a", "b", "c", "d"]
    assert loaded.parsed.model("a").rendered == "select 1 as a\n"
    assert manifest.cache_stats(root) == {"exists": True, "fresh": True}  # rewritten


def test_a_cache_of_another_format_or_layout_is_rebuilt(
    tmp_path: Path, rendered: list[str]
) -> None:
    """The version names the format and a digest of every cached class's fields and types."""
    root = project(tmp_path)
    Project.load(root)
    document, later, blob = documents(root)
    version = manifest._version()
    assert version.split(b"/")[2] == manifest._codec().schema.encode()
    changed = version[:-1] + (b"1" if version.endswith(b"0") else b"0")
    for other in (b"0.1.0/7", changed, b"9.9.9/" + version.split(b"/", 1)[1]):
        write_documents(root, document, later, blob, version=other)
        assert manifest.read(root) is None
        rendered.clear()
        Project.load(root)
        assert sorted(rendered) == ["a", "b", "c", "d"]


def test_same_size_same_mtime_edit_of_a_yaml_file_is_seen(tmp_path: Path) -> None:
    root = project(tmp_path)
    yml = root / "models" / "_models.yml"
    yml.write_text("models:\n  - name: a\n    description: first\n")
    os.utime(yml, ns=(1_000_000_000, 1_000_000_000))
    assert Project.load(root).parsed.model("a").description == "first"
    yml.write_text("models:\n  - name: a\n    description: other\n")  # same size
    os.utime(yml, ns=(1_000_000_000, 1_000_000_000))
    assert Project.load(root).parsed.model("a").description == "other"


def test_lazy_fields_are_decoded_once_across_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    root = project(tmp_path)
    Project.load(root)
    loaded = Project.load(root)
    models = list(loaded.parsed.models) * 50
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda m: m.rendered, models))
    assert texts[:4] == [
        "select 1 as a\n",
        "select 1 as b\n",
        "select 1 as c\n",
        "select 'dflt' as d\n",
    ]


def test_a_copied_project_reads_its_own_files_not_the_originals(tmp_path):
    """The cache holds absolute paths (a source's external location, the root): a copy of the
    project (cache included) loads afresh, so a run of the copy reads the copy's files."""
    original = project(tmp_path / "original")
    (original / "models" / "s.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    tables:\n"
        "      - {name: e, external_location: data/e.csv}\n"
    )
    Project.load(original)  # writes the cache
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    parsed = Project.load(copy).parsed
    assert parsed.root == str(copy)
    assert parsed.sources[0].location == str(copy / "data" / "e.csv")


def test_no_env_value_is_written_under_target_except_compiled_sql(
    make_project, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §6: a secret read by a model's SQL, a description or a singular test is in no file
    under target/ but compiled/ (which keeps dbt's behaviour: the SQL as it ran), whether the
    project was loaded from its files or from the cache."""
    secrets = {"CADENCE_TEST_SQL": "s3cr3t-in-sql", "CADENCE_TEST_DOC": "s3cr3t-in-doc"}
    secrets["CADENCE_TEST_TEST"] = "s3cr3t-in-test"
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    root = make_project(
        {
            "models/m.sql": "{{ config(channels=['email'], key='id') }}\n"
            "select 1 as id, '{{ env_var('CADENCE_TEST_SQL') }}' as token\n",
            "models/n.sql": "select 2 as id\n",
            "models/props.yml": """
                version: 2
                models:
                  - name: n
                    description: "{{ env_var('CADENCE_TEST_DOC') }}"
            """,
            "tests/t.sql": "select * from {{ ref('m') }} "
            "where token = '{{ env_var('CADENCE_TEST_TEST') }}' and false\n",
        }
    )
    for at in ("2026-03-02T05:00", "2026-03-03T05:00"):  # the second loads from the cache
        assert cli(root, "run", "--at", at).exit_code == 0
        assert cli(root, "run", "--due", "--at", at).exit_code == 0
    holding = [
        str(path.relative_to(root))
        for path in (root / "target").rglob("*")
        if path.is_file()
        and any(value.encode() in path.read_bytes() for value in secrets.values())
    ]
    assert holding == ["target/compiled/models/m.sql"]
    monkeypatch.setenv("CADENCE_TEST_SQL", "another")  # a cached load renders it again
    assert "'another'" in Project.load(root).parsed.model("m").rendered


def test_a_run_dependent_view_is_cached_and_the_idle_plan_decodes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    from cadence.load import cachefile
    from cadence.plan.due import parse_at

    root = project(tmp_path)
    (root / "models" / "v.sql").write_text(
        "{{ config(materialized='view') }}\nselect '{{ run_started_at }}' as v\n"
    )
    (root / "models" / "t.sql").write_text(
        "{{ config(cadence='daily at 05:00') }}\nselect * from {{ ref('v') }}\n"
    )
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    decoded: list[int] = []
    real = cachefile._Pending._decode

    def spy(self):  # type: ignore[no-untyped-def]
        decoded.append(1)
        return real(self)

    monkeypatch.setattr(cachefile._Pending, "_decode", spy)
    loaded = Project.load(root)
    assert manifest.cache_stats(root) == {"exists": True, "fresh": True}
    assert loaded.parsed.model("v").run_dependent == "run_started_at"
    idle = loaded.plan(parse_at("2026-01-02T06:01", loaded.tz))
    assert not idle.to_build() and decoded == []
    assert "it depends on the run (run_started_at)" in idle.get("v").reason
    due = loaded.plan(parse_at("2026-01-03T05:00", loaded.tz))
    assert [d.name for d in due.to_build()] == ["v", "t"]


def test_a_project_copied_with_its_cache_writes_into_its_own_folder(tmp_path: Path, cli) -> None:
    """`cp -a project copy`: the copy's runs write the copy's target/, never the original's."""
    import shutil

    original = project(tmp_path / "original")
    assert cli(original, "run", "--at", "2026-01-02T06:00").exit_code == 0
    before = (original / "target" / "run_results.json").read_bytes()
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    assert cli(copy, "run", "--at", "2026-01-02T07:00").exit_code == 0
    assert (original / "target" / "run_results.json").read_bytes() == before
    assert '"at":"2026-01-02T07:00:00' in (copy / "target" / "run_results.json").read_text()
    assert Project.load(copy).parsed.root == str(copy)
    assert manifest.cache_stats(copy) == {"exists": True, "fresh": True}


WH_YML = 'name: m\ntimezone: UTC\nvars: {n: 1}\nwarehouse: {path: "%s"}\n'


def test_a_cached_load_reads_cadence_yml_without_yaml_or_jinja(tmp_path: Path) -> None:
    """Issue 21: the cache keeps cadence.yml as parsed YAML (the template, never what the
    environment gives it), and a cached load validates it and substitutes the environment
    without importing PyYAML or Jinja."""
    import subprocess
    import sys

    root = project(tmp_path)
    template = "{{ env_var('CADENCE_TEST_WH', 'fallback.duckdb') }}"
    (root / "cadence.yml").write_text(WH_YML % template)
    Project.load(root)  # writes the cache
    assert b"CADENCE_TEST_WH" in (root / manifest.CACHE_FILE).read_bytes()
    code = (
        "import sys\nfrom cadence.project import Project\n"
        f"p = Project.load({str(root)!r})\n"
        "print(p.parsed.config.warehouse.path)\n"
        "print(sorted(m for m in ('yaml', 'jinja2') if m in sys.modules))\n"
    )
    repo = str(Path(__file__).resolve().parents[1])

    def load(value: str | None) -> list[str]:
        env = {**os.environ, "PYTHONPATH": repo}
        env.pop("CADENCE_TEST_WH", None)
        if value is not None:
            env["CADENCE_TEST_WH"] = value
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout.split("\n")[:2]

    assert load(None) == ["fallback.duckdb", "[]"]
    # a new value is a change (the variable's digest): rendered from the files once, then cached
    assert load("s3cr3t/wh.duckdb")[0] == "s3cr3t/wh.duckdb"
    assert load("s3cr3t/wh.duckdb") == ["s3cr3t/wh.duckdb", "[]"]
    assert b"s3cr3t" not in (root / manifest.CACHE_FILE).read_bytes()


@pytest.mark.parametrize(
    "template",
    [
        "{{ env_var('CADENCE_TEST_WH') }}",
        '{{env_var("CADENCE_TEST_WH")}}/w.duckdb',
        "a/{{ env_var('CADENCE_TEST_UNSET', 'd.duckdb') }}",
        "{{ env_var('CADENCE_TEST_UNSET', '') }}x.duckdb",
        "{{ env_var('CADENCE_TEST_WH') | upper }}",  # a filter: Jinja renders it
        "{{- env_var('CADENCE_TEST_WH') -}}",  # whitespace control: Jinja's
        "p/{# note #}{{ env_var('CADENCE_TEST_WH') }}",
        "{{ env_var('CADENCE_TEST_WH') }}{{ env_var('CADENCE_TEST_WH', 'x') }}",
    ],
)
def test_cadence_yml_renders_the_same_from_the_cache_as_from_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    """The warehouse path (and the env vars it read) from a cached load, rendered without
    Jinja where it can be, equals Jinja's rendering of the file itself."""
    monkeypatch.setenv("CADENCE_TEST_WH", "wh")
    monkeypatch.delenv("CADENCE_TEST_UNSET", raising=False)
    root = project(tmp_path)
    (root / "cadence.yml").write_text(WH_YML % template.replace('"', '\\"'))
    fresh = Project.load(root, use_cache=False).parsed.config
    cached = Project.load(root).parsed.config
    again = Project.load(root).parsed.config  # from the cache
    assert manifest.cache_stats(root)["fresh"]
    assert cached == fresh == again
