"""Channel settings of cadence.yml: cadence, audience rules (suppress, priority, max_change),
destinations (``export``) and serving (``serve``).

Input: the raw ``channels:`` mapping (with line numbers) -> output: ``ChannelConfig`` values.
Invariants: every value is type-checked here, once; an unknown key is an error naming
cadence.yml:line with a "did you mean"; names that reach file paths (channels) are plain
identifiers, so they cannot smuggle ``/`` or ``..`` into an export path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cadence.errors import CadenceError, ErrorCollector, unknown_key_error
from cadence.load.freshness import Objective, parse_objective, parse_on_stale_source
from cadence.load.yamlfile import line_of
from cadence.outbound.urlpolicy import url_problem

PROJECT_FILE = "cadence.yml"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CHANNEL_KEYS = (
    "cadence",
    "kind",
    "description",
    "export",
    "suppress",
    "priority",
    "max_change",
    "serve",
    "owner",
    "freshness",
    "on_stale_source",
)
FILE_EXPORT_KEYS = ("kind", "format", "path", "mode", "columns")
WEBHOOK_EXPORT_KEYS = (
    "kind",
    "url",
    "secret_env",
    "batch_size",
    "allow_private",
    "timeout_s",
    "max_attempts",
    "columns",
)
EXPORT_KINDS = ("file", "webhook")
FILE_FORMATS = ("parquet", "csv", "jsonl")
EXPORT_MODES = ("changes", "full")
SERVE_KEYS = ("columns",)
# the audience's own columns and the fields of every delivered change: a segment column of the
# same name would be ambiguous in the audience SQL and in what a destination receives
RESERVED_COLUMNS = ("segment", "key", "held_out", "change", "at", "seq")
DEFAULT_EXPORT_PATH = "exports/{channel}/{segment}/{export_id}.{format}"


@dataclass(frozen=True)
class ExportConfig:
    """Where a channel's changes go: a file (``kind: file``, the default) or a webhook."""

    kind: str = "file"  # file | webhook
    format: str = "parquet"  # file: parquet | csv | jsonl
    path: str = DEFAULT_EXPORT_PATH  # file: template with {channel} {segment} {export_id} ...
    mode: str = "changes"  # file: changes | full
    columns: tuple[str, ...] = ()
    url: str | None = None  # webhook
    secret_env: str | None = None  # webhook: the env var holding the whsec_ secret
    batch_size: int = 100
    allow_private: bool = False
    timeout_s: float = 10.0
    max_attempts: int = 5
    line: int | None = None
    # where ``columns`` is written (for errors found when delivering); not part of the value
    columns_line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    cadence: str
    kind: str | None = None
    description: str | None = None
    export: ExportConfig | None = None
    suppress: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    max_change: float | None = None
    serve: tuple[str, ...] | None = None  # None: not served; (): served without columns
    line: int | None = None
    freshness: Objective | None = None  # None: the default (second- and fourth-latest tick)
    hold_on_stale_source: bool = True  # on_stale_source: hold (default) | deliver
    # where each audience setting is written (for errors found after parsing: unknown models)
    key_lines: tuple[tuple[str, int | None], ...] = ()

    def line_of(self, key: str) -> int | None:
        return dict(self.key_lines).get(key, self.line)


def _err(message: str, line: int | None, hint: str) -> CadenceError:
    return CadenceError(message, file=PROJECT_FILE, line=line, hint=hint)


def _names(spec: dict[str, Any], key: str, channel: str, errors: ErrorCollector) -> tuple[str, ...]:
    """A list of model/seed names (``suppress``, ``priority``): a list of strings, nothing else."""
    value = spec.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        errors.add(
            _err(
                f"channel '{channel}': {key} must be a list of model or seed names, got {value!r}",
                line_of(spec, key),
                f"write {key}: [unsubscribed]" if key == "suppress" else f"write {key}: [seg_a]",
            )
        )
        return ()
    return tuple(value)


def _columns(spec: dict[str, Any], what: str, errors: ErrorCollector) -> tuple[str, ...]:
    value = spec.get("columns")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        errors.add(
            _err(
                f"{what}: columns must be a list of column names",
                line_of(spec, "columns"),
                "write columns: [email, first_name]",
            )
        )
        return ()
    taken = [v for v in value if v.lower() in RESERVED_COLUMNS]
    if taken:
        errors.add(
            _err(
                f"{what}: column '{taken[0]}' is a name cadence gives its own field "
                f"({', '.join(RESERVED_COLUMNS)})",
                line_of(spec, "columns"),
                f"rename it in the model, e.g. `{taken[0]} as {taken[0]}_value`, and list that",
            )
        )
        return ()
    return tuple(value)


def _choice(
    spec: dict[str, Any],
    key: str,
    allowed: tuple[str, ...],
    default: str,
    what: str,
    errors: ErrorCollector,
) -> str:
    value = spec.get(key, default)
    if value not in allowed:
        errors.add(
            _err(
                f"{what}: invalid {key} {value!r}",
                line_of(spec, key),
                "use one of: " + ", ".join(allowed),
            )
        )
        return default
    return str(value)


def _number(
    spec: dict[str, Any],
    key: str,
    default: float,
    what: str,
    errors: ErrorCollector,
    *,
    integer: bool = False,
    minimum: float = 0.0,
) -> Any:
    value = spec.get(key, default)
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or value <= minimum - 1e-12:
        errors.add(
            _err(
                f"{what}: {key} must be a {'whole ' if integer else ''}number "
                f"of at least {minimum:g}, got {value!r}",
                line_of(spec, key),
                f"write {key}: {default:g}",
            )
        )
        return default
    return value


def parse_export(
    raw: Any, channel: str, line: int | None, errors: ErrorCollector
) -> ExportConfig | None:
    what = f"channel '{channel}' export"
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.add(
            _err(
                f"{what} must be a mapping",
                line,
                "write export: {format: parquet} or export: {kind: webhook, url: ..., "
                "secret_env: NAME}",
            )
        )
        return None
    kind = _choice(raw, "kind", EXPORT_KINDS, "file", what, errors)
    allowed = WEBHOOK_EXPORT_KEYS if kind == "webhook" else FILE_EXPORT_KEYS
    for key in raw:
        if key not in allowed:
            errors.add(
                unknown_key_error(
                    str(key),
                    allowed,
                    what=f"{kind} export",
                    file=PROJECT_FILE,
                    line=line_of(raw, key),
                )
            )
    columns = _columns(raw, what, errors)
    where = line_of(raw) or line
    if kind == "webhook":
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            errors.add(
                _err(f"{what}: a webhook needs a url", where, "write url: https://example.com/hook")
            )
            url = None
        secret_env = raw.get("secret_env")
        if not (isinstance(secret_env, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", secret_env)):
            errors.add(
                _err(
                    f"{what}: secret_env must name an environment variable"
                    + ("" if secret_env is not None else " (webhooks are always signed)"),
                    line_of(raw, "secret_env") or where,
                    "write secret_env: ROUTING_WEBHOOK_SECRET (the secret itself stays in the "
                    "environment, never in cadence.yml)",
                )
            )
            secret_env = None
        allow_private = raw.get("allow_private", False)
        if not isinstance(allow_private, bool):
            errors.add(
                _err(
                    f"{what}: allow_private must be true or false",
                    line_of(raw, "allow_private"),
                    "write allow_private: true",
                )
            )
            allow_private = False
        url_error = url_problem(url, allow_private) if url else None
        if url_error is not None:
            errors.add(_err(f"{what}: {url_error[0]}", line_of(raw, "url") or where, url_error[1]))
        return ExportConfig(
            kind="webhook",
            columns=columns,
            url=url,
            secret_env=secret_env,
            batch_size=int(_number(raw, "batch_size", 100, what, errors, integer=True, minimum=1)),
            allow_private=allow_private,
            timeout_s=float(_number(raw, "timeout_s", 10.0, what, errors, minimum=0.001)),
            max_attempts=int(
                _number(raw, "max_attempts", 5, what, errors, integer=True, minimum=1)
            ),
            line=where,
            columns_line=line_of(raw, "columns") or where,
        )
    fmt = _choice(raw, "format", FILE_FORMATS, "parquet", what, errors)
    path = raw.get("path", DEFAULT_EXPORT_PATH)
    if not isinstance(path, str) or not path.strip():
        errors.add(
            _err(
                f"{what}: path must be a text template",
                line_of(raw, "path"),
                f'write path: "{DEFAULT_EXPORT_PATH}"',
            )
        )
        path = DEFAULT_EXPORT_PATH
    else:
        problem = check_path_template(path)
        if problem:
            errors.add(
                _err(
                    f"{what}: {problem}",
                    line_of(raw, "path"),
                    f'write path: "{DEFAULT_EXPORT_PATH}"',
                )
            )
            path = DEFAULT_EXPORT_PATH
    return ExportConfig(
        kind="file",
        format=fmt,
        path=path,
        mode=_choice(raw, "mode", EXPORT_MODES, "changes", what, errors),
        columns=columns,
        line=where,
        columns_line=line_of(raw, "columns") or where,
    )


PATH_TOKENS = ("channel", "segment", "export_id", "run_at", "date", "format")


def check_path_template(path: str) -> str | None:
    """Why an export path template is unusable (None when fine)."""
    for token in re.findall(r"{([^{}]*)}", path):
        if token not in PATH_TOKENS:
            return (
                f"unknown token {{{token}}} in path (tokens: "
                + ", ".join("{" + t + "}" for t in PATH_TOKENS)
                + ")"
            )
    if "{export_id}" not in path:
        return "path must contain {export_id} (a retried delivery rewrites the same file)"
    if ".." in path.replace("\\", "/").split("/"):
        return "path must not contain '..'"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "path must not contain control characters (a NUL byte, a newline, a tab)"
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if name.lower().endswith(MANIFEST_SUFFIX):
        return (
            f"the file name must not end in '{MANIFEST_SUFFIX}': each export's manifest is "
            f"written beside it as <export_id>{MANIFEST_SUFFIX}"
        )
    return None


MANIFEST_SUFFIX = ".manifest.json"


def _serve(
    raw: Any, channel: str, line: int | None, errors: ErrorCollector
) -> tuple[str, ...] | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return ()
    if isinstance(raw, dict):
        for key in raw:
            if key not in SERVE_KEYS:
                errors.add(
                    unknown_key_error(
                        str(key),
                        SERVE_KEYS,
                        what="serve",
                        file=PROJECT_FILE,
                        line=line_of(raw, key),
                    )
                )
        return _columns(raw, f"channel '{channel}' serve", errors)
    errors.add(
        _err(
            f"channel '{channel}': serve must be true, false or {{columns: [...]}}",
            line,
            "write serve: true, or serve: {columns: [first_name]}",
        )
    )
    return None


def parse_channels(
    raw: Any, top: dict[str, Any], errors: ErrorCollector
) -> tuple[ChannelConfig, ...]:
    """Validate the ``channels:`` mapping of cadence.yml."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        errors.add(
            _err(
                "'channels' must be a mapping of channel name to settings",
                line_of(top, "channels"),
                'write channels: {email: {cadence: "daily at 05:00"}}',
            )
        )
        return ()
    out = []
    for name, spec in raw.items():
        line = line_of(raw, name)
        if not NAME_RE.match(str(name)):
            errors.add(
                _err(
                    f"invalid channel name '{name}'",
                    line,
                    "use letters, digits and underscores (no '/', '.' or spaces)",
                )
            )
            continue
        if isinstance(spec, str):
            spec = {"cadence": spec}
        if not isinstance(spec, dict):
            errors.add(
                _err(
                    f"channel '{name}' must be a mapping",
                    line,
                    "write " + f'{name}: {{cadence: "every 15 minutes"}}',
                )
            )
            continue
        for key in spec:
            if key not in CHANNEL_KEYS:
                errors.add(
                    unknown_key_error(
                        key,
                        CHANNEL_KEYS,
                        what="channel",
                        file=PROJECT_FILE,
                        line=line_of(spec, key),
                    )
                )
        if "cadence" not in spec:
            errors.add(
                _err(
                    f"channel '{name}' has no cadence",
                    line,
                    'add cadence: "every 15 minutes" (or "on demand")',
                )
            )
            continue
        max_change = spec.get("max_change")
        if max_change is not None and (
            isinstance(max_change, bool)
            or not isinstance(max_change, (int, float))
            or max_change <= 0
        ):
            errors.add(
                _err(
                    f"channel '{name}': max_change must be a fraction above 0, got {max_change!r}",
                    line_of(spec, "max_change"),
                    "write max_change: 0.2 (hold back a delivery changing more than 20%)",
                )
            )
            max_change = None
        out.append(
            ChannelConfig(
                name=str(name),
                cadence=str(spec["cadence"]),
                kind=None if spec.get("kind") is None else str(spec.get("kind")),
                description=None if spec.get("description") is None else str(spec["description"]),
                export=parse_export(
                    spec.get("export"), str(name), line_of(spec, "export") or line, errors
                ),
                suppress=_names(spec, "suppress", str(name), errors),
                priority=_names(spec, "priority", str(name), errors),
                max_change=None if max_change is None else float(max_change),
                serve=_serve(spec.get("serve"), str(name), line_of(spec, "serve") or line, errors),
                line=line_of(spec, "cadence") or line,
                freshness=parse_objective(
                    spec.get("freshness"),
                    f"channel '{name}'",
                    line_of(spec, "freshness") or line,
                    errors,
                ),
                hold_on_stale_source=parse_on_stale_source(
                    spec.get("on_stale_source"),
                    f"channel '{name}'",
                    line_of(spec, "on_stale_source") or line,
                    errors,
                ),
                key_lines=tuple(
                    (k, line_of(spec, k)) for k in ("suppress", "priority", "export") if k in spec
                ),
            )
        )
    return tuple(out)
