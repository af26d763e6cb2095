"""Channel settings in cadence.yml (SPEC §7): audience rules, destinations, serving; every bad
value is an error naming cadence.yml:line, unknown keys with "did you mean"."""

from __future__ import annotations

import pytest

from cadence.errors import CadenceError
from cadence.load.channelconfig import DEFAULT_EXPORT_PATH, ExportConfig, check_path_template
from cadence.load.loader import load_files


def config_of(tmp_path, channels: str, extra: str = ""):
    (tmp_path / "cadence.yml").write_text(
        f"name: p\ntimezone: UTC\n{extra}channels:\n" + channels
    )
    return load_files(tmp_path).config


def errors_of(tmp_path, channels: str, extra: str = "") -> str:
    with pytest.raises(CadenceError) as info:
        config_of(tmp_path, channels, extra)
    return info.value.render()


def test_full_channel_settings_are_parsed(tmp_path):
    config = config_of(
        tmp_path,
        """\
  email:
    cadence: "daily at 05:00"
    suppress: [unsubscribed, bounced]
    priority: [vip, regular]
    max_change: 0.25
    export: {format: csv, mode: full, columns: [email], path: "out/{segment}/{export_id}.csv"}
    serve: {columns: [first_name]}
  routing:
    cadence: "every 5 minutes"
    export: {kind: webhook, url: "https://example.com/h", secret_env: HOOK_SECRET,
             batch_size: 50, allow_private: true, timeout_s: 2.5, max_attempts: 3}
    serve: true
  web: "every 15 minutes"
""",
        extra="export_root: /srv/exports\n",
    )
    email, routing, web = config.channels
    assert email.suppress == ("unsubscribed", "bounced")
    assert email.priority == ("vip", "regular")
    assert email.max_change == 0.25
    assert email.export == ExportConfig(
        kind="file", format="csv", path="out/{segment}/{export_id}.csv", mode="full",
        columns=("email",), line=email.export.line,
    )
    assert email.serve == ("first_name",)
    assert routing.export is not None and routing.export.kind == "webhook"
    assert (routing.export.url, routing.export.secret_env, routing.export.batch_size) == (
        "https://example.com/h", "HOOK_SECRET", 50,
    )
    assert routing.export.allow_private and routing.export.timeout_s == 2.5
    assert routing.export.max_attempts == 3
    assert routing.serve == ()
    assert web.serve is None and web.export is None and web.suppress == ()
    assert config.export_root == "/srv/exports"


def test_export_defaults(tmp_path):
    (email,) = config_of(tmp_path, '  email: {cadence: "daily at 05:00", export: {}}\n').channels
    assert email.export is not None
    assert (email.export.kind, email.export.format, email.export.mode) == (
        "file", "parquet", "changes",
    )
    assert email.export.path == DEFAULT_EXPORT_PATH


@pytest.mark.parametrize("value", ["true", "unsubscribed", "{a: 1}", "[1, 2]"])
def test_suppress_must_be_a_list_of_names(tmp_path, value):
    text = errors_of(tmp_path, f'  email:\n    cadence: "daily at 05:00"\n    suppress: {value}\n')
    assert "cadence.yml:6:" in text
    assert "suppress must be a list of model or seed names" in text


def test_unknown_keys_say_did_you_mean(tmp_path):
    text = errors_of(
        tmp_path,
        '  email:\n    cadence: "daily at 05:00"\n    supress: [x]\n'
        "    export: {format: parquet, colums: [a]}\n",
    )
    assert "cadence.yml:6:" in text and "'supress'" in text and "suppress" in text
    assert "cadence.yml:7:" in text and "'colums'" in text and "columns" in text


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ("{format: xlsx}", "invalid format 'xlsx'"),
        ("{mode: delta}", "invalid mode 'delta'"),
        ('{path: "exports/{segment}.parquet"}', "must contain {export_id}"),
        ('{path: "../{export_id}.parquet"}', "must not contain '..'"),
        ('{path: "x/{user}/{export_id}"}', "unknown token {user}"),
        ("{kind: webhook}", "a webhook needs a url"),
        ("{kind: webhook, url: 'https://x', batch_size: 0}", "batch_size must be a whole number"),
        ("{kind: webhook, url: 'https://x', secret_env: 'whsec_abc=='}", "secret_env must name"),
        ("{kind: webhook, url: 'https://x', format: csv}", "unknown webhook export key 'format'"),
        ("[parquet]", "export must be a mapping"),
        ("{columns: [email, change]}", "column 'change' is a name cadence gives its own field"),
        ("{kind: webhook, url: 'https://x', columns: [Key]}", "column 'Key' is a name cadence"),
    ],
)
def test_bad_exports_name_the_line(tmp_path, export, message):
    text = errors_of(tmp_path, f'  email:\n    cadence: "daily at 05:00"\n    export: {export}\n')
    assert "cadence.yml:6:" in text, text
    assert message in text, text


def test_bad_max_change_serve_and_export_root(tmp_path):
    text = errors_of(
        tmp_path,
        '  email:\n    cadence: "daily at 05:00"\n    max_change: -1\n    serve: yes please\n',
        extra="export_root: relative/dir\n",
    )
    assert "max_change must be a fraction above 0" in text
    assert "serve must be true, false or {columns: [...]}" in text
    assert "export_root must be an absolute folder path" in text


def test_path_template_check():
    assert check_path_template(DEFAULT_EXPORT_PATH) is None
    assert check_path_template("a/{date}/{run_at}-{export_id}.{format}") is None
    assert "must not contain" in (check_path_template("a/../{export_id}") or "")


@pytest.mark.parametrize("column", ["segment", "key", "held_out"])
def test_served_columns_may_not_take_the_audience_names(tmp_path, column):
    """A served column named like the audience's own fields would be ambiguous in its SQL (a
    column `segment` was answered with the segment's name): refused, naming the line."""
    text = errors_of(
        tmp_path, f'  web:\n    cadence: "every 15 minutes"\n    serve: {{columns: [{column}]}}\n'
    )
    assert "cadence.yml:6:" in text, text
    assert f"column '{column}' is a name cadence gives its own field" in text
    assert f"{column} as {column}_value" in text


def test_freshness_objectives_and_alerts_are_parsed(tmp_path):
    config = config_of(
        tmp_path,
        """\
  email:
    cadence: "daily at 05:00"
    freshness: {warn_after: "30 minutes", error_after: {count: 2, period: hour}}
    on_stale_source: deliver
  web: "hourly"
""",
        "alerts: {webhook: {url: 'https://ops.example.com/a', secret_env: ALERT_SECRET}}\n",
    )
    email, web = config.channels
    assert (email.freshness.warn_after_s, email.freshness.error_after_s) == (1800, 7200)
    assert email.hold_on_stale_source is False
    assert web.freshness is None and web.hold_on_stale_source is True
    assert config.alerts.url == "https://ops.example.com/a"
    assert config.alerts.secret_env == "ALERT_SECRET"


@pytest.mark.parametrize(
    ("channels", "extra", "expected"),
    [
        ('  email: {cadence: hourly,\n    freshness: {warn_after: "soon"}}\n', "",
         ["cadence.yml:5", "warn_after 'soon' is not a duration"]),
        ('  email: {cadence: hourly,\n    freshness: {warn_after: 2 hours, error_after: 1 hour}}\n',
         "", ["cadence.yml:5", "warn_after (2 hours) is later than error_after"]),
        ('  email: {cadence: hourly, freshness: {warn_afte: 1 hour}}\n', "",
         ["cadence.yml:4", "did you mean 'warn_after'"]),
        ("  email: {cadence: hourly, on_stale_source: skip}\n", "",
         ["cadence.yml:4", "invalid on_stale_source 'skip'"]),
        ("  email: hourly\n", "alerts: {webhook: {url: 'http://example.com/a', secret_env: S}}\n",
         ["cadence.yml:3", "alerts webhook:"]),
        ("  email: hourly\n", "alerts: {webhook: {url: 'https://example.com/a'}}\n",
         ["cadence.yml:3", "secret_env must name an environment variable"]),
    ],
)
def test_bad_freshness_and_alerts_name_the_line(tmp_path, channels, extra, expected):
    text = errors_of(tmp_path, channels, extra)
    for part in expected:
        assert part in text, text
