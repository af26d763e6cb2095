"""The reference docs stay in sync with the code: every command, option, config key and test kind
the code accepts is named in docs/reference/. The lists are read from the code itself, so adding a
command, option or key without documenting it makes these tests fail."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cadence.cli import main
from cadence.load import channelconfig, config, parser, projectconfig

DOCS = Path(__file__).resolve().parent.parent / "docs"
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def _commands() -> list[str]:
    """Command names as the top-level --help lists them."""
    text = _help()
    section = text.split("Commands:", 1)[1]
    names = [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.strip()]
    assert names, text
    return names


def _long_options(text: str) -> set[str]:
    """Long options of an --help text (from its Options: section)."""
    return set(LONG_OPTION.findall(text.split("Options:", 1)[1]))


def _named_as_option(option: str, doc: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(option) + r"(?![\w-])", doc) is not None


CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _named_in_code(word: str, doc: str) -> bool:
    """``word`` appears inside an inline code span (`key`, `key: 4`, `+key`)."""
    pattern = re.compile(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])")
    return any(pattern.search(span) for span in CODE_SPAN.findall(doc))


COMMANDS = _commands()


def test_help_lists_every_registered_command() -> None:
    assert sorted(COMMANDS) == sorted(n for n, c in main.commands.items() if not c.hidden)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented(command: str) -> None:
    doc = _text("reference/cli.md")
    assert re.search(rf"^#+ `cadence {re.escape(command)}\b", doc, re.M), (
        f"docs/reference/cli.md has no heading for `cadence {command}`")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_long_option_is_documented(command: str) -> None:
    doc = _text("reference/cli.md")
    options = _long_options(_help(*([command] if command else [])))
    assert options
    if command:  # each command's own options are documented in its own section
        match = re.search(rf"^## `cadence {re.escape(command)}`.*?(?=^## |\Z)", doc, re.M | re.S)
        assert match, f"no section '## `cadence {command}`' in docs/reference/cli.md"
        shared = {"--help", "--project-dir", "--debug", "--vars", "--target", "--profiles-dir"}
        missing = sorted(o for o in options - shared if not _named_as_option(o, match.group(0)))
        missing += sorted(o for o in options & shared if not _named_as_option(o, doc))
        assert not missing, f"cadence {command}: options missing from its section: {missing}"
        return
    missing = sorted(o for o in options if not _named_as_option(o, doc))
    assert not missing, f"cadence {command} --help options missing from docs/reference/cli.md: {missing}"


def test_help_options_match_click_params() -> None:
    """The --help parsing above sees every visible long option click knows about."""
    for name, cmd in main.commands.items():
        declared = {o for p in cmd.params if isinstance(p, click.Option) and not p.hidden
                    for o in p.opts + p.secondary_opts if o.startswith("--")}
        assert declared <= _long_options(_help(name)) | {"--help"}, name


@pytest.mark.parametrize(
    ("what", "keys"),
    [
        ("projectconfig.TOP_KEYS", projectconfig.TOP_KEYS),
        ("projectconfig.WAREHOUSE_KEYS", projectconfig.WAREHOUSE_KEYS),
        ("channelconfig.CHANNEL_KEYS", channelconfig.CHANNEL_KEYS),
        ("channelconfig.FILE_EXPORT_KEYS", channelconfig.FILE_EXPORT_KEYS),
        ("channelconfig.WEBHOOK_EXPORT_KEYS", channelconfig.WEBHOOK_EXPORT_KEYS),
        ("channelconfig.SERVE_KEYS", channelconfig.SERVE_KEYS),
        ("config.HOLDOUT_KEYS", config.HOLDOUT_KEYS),
        ("config.MODEL_CONFIG_KEYS", config.MODEL_CONFIG_KEYS),
        ("config.DBT_PASSTHROUGH_KEYS", config.DBT_PASSTHROUGH_KEYS),
    ],
)
def test_every_config_key_is_documented(what: str, keys: tuple[str, ...]) -> None:
    assert keys, what
    doc = _text("reference/config.md")
    missing = sorted({k for k in keys if not _named_in_code(k, doc)})
    assert not missing, f"{what} keys missing from docs/reference/config.md: {missing}"


def test_every_generic_test_is_documented() -> None:
    assert parser.GENERIC_TESTS
    doc = _text("reference/tests.md")
    missing = [k for k in parser.GENERIC_TESTS if not re.search(rf"^#+ `{re.escape(k)}`", doc, re.M)]
    assert not missing, f"test kinds without a section in docs/reference/tests.md: {missing}"


def test_checks_can_fail() -> None:
    """The matchers reject what is not there, so the tests above are not vacuous."""
    cli_doc = _text("reference/cli.md")
    config_doc = _text("reference/config.md")
    assert not _named_as_option("--no-such-option", cli_doc)
    assert not _named_as_option("--thread", cli_doc)  # only --threads is documented
    assert not _named_in_code("no_such_key", config_doc)
    assert _named_in_code("threads", "`threads: 4`")
    assert not _named_in_code("threads", "threads, unquoted")
    assert not _named_in_code("threads", "`a`, threads, `b`")  # between two code spans


def test_docs_pages_exist_and_link() -> None:
    index = _text("index.md")
    for page in ("quickstart.md", "concepts.md", "state.md", "reference/cli.md",
                 "reference/config.md", "reference/tests.md", "reference/errors.md"):
        assert (DOCS / page).is_file(), page
        assert page in index, f"docs/index.md does not link {page}"


def test_env_values_in_the_docs_site_are_documented(
    make_project: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model page of ``cadence docs`` shows compiled SQL with env_var() values in it, as
    target/compiled/ does (SPEC §6 keeps dbt's behaviour for compiled SQL); the docs say so
    where they say it of target/compiled/."""
    monkeypatch.setenv("CADENCE_DOC_REGION", "eu-west-7")
    root = make_project({"models/m.sql": "select '{{ env_var('CADENCE_DOC_REGION') }}' as r\n"})
    assert cli(root, "docs", "--at", "2026-03-02T05:00").exit_code == 0
    assert "eu-west-7" in (root / "target" / "docs" / "models" / "m.html").read_text()
    env_row = next(r for r in _text("reference/config.md").splitlines() if "`env_var(" in r)
    assert "target/compiled/" in env_row and "cadence docs" in env_row
    site = _text("reference/cli.md").split("## `cadence docs`", 1)[1].split("\n## ", 1)[0]
    assert "env_var()" in site and "target/compiled/" in site
