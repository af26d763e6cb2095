"""Templates in settings files: ``{{ env_var('X', 'default') }}`` in a value of cadence.yml,
dbt_project.yml or profiles.yml.

Input: a value's text, the file it is in, and (for dbt's files) the ``--vars`` given -> output:
the rendered text. It renders in a sandbox of its own that knows only ``env_var`` (and ``var``,
which reads ``--vars``: dbt renders its project and profile files before any other var is
known); every variable read is recorded as (name, digest of its value), never the value, so the
manifest cache can tell when it changed without holding it. A value whose only template code
is ``env_var()`` with literal arguments renders without importing Jinja (the same bytes). Used
by ``projectconfig`` and ``load.dbt`` (project, profile).
"""

from __future__ import annotations

import os
import re
from typing import Any

from cadence.errors import CadenceError
from cadence.load.digests import env_digest

PROJECT_FILE = "cadence.yml"


def shorten(text: str, limit: int = 60) -> str:
    """User text quoted in a message, cut so a 300-character value does not flood the terminal."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ``{{ env_var('NAME') }}`` or ``{{ env_var('NAME', 'default') }}`` with plain quoted names
_ENV_CALL = re.compile(
    r"""\{\{\s*env_var\(\s*(['"])([^'"\\{}]+)\1\s*(?:,\s*(['"])([^'"\\{}]*)\3\s*)?\)\s*\}\}"""
)


def _env_only(text: str, env_used: list[tuple[str, str | None]]) -> str | None:
    """``text`` rendered without importing Jinja when its only template code is ``env_var()``
    calls with literal arguments and each variable is set or has a default (what Jinja would
    output, byte for byte); None otherwise (Jinja renders it, and says what is wrong)."""
    if "\n" in text or "{%" in text or "{#" in text:
        return None  # Jinja drops a trailing newline and knows blocks and comments: its call
    out, at, seen = [], 0, []
    for call in _ENV_CALL.finditer(text):
        name, default = call.group(2), call.group(4)
        value = os.environ.get(name, default)
        if value is None:
            return None
        out += [text[at : call.start()], value]
        seen.append((name, env_digest(os.environ.get(name))))
        at = call.end()
    out.append(text[at:])
    if "{{" in "".join(out[::2]):  # template code the pattern did not take
        return None
    env_used += seen
    return "".join(out)


def render_env_string(
    text: str,
    env_used: list[tuple[str, str | None]],
    file: str = PROJECT_FILE,
    cli_vars: dict[str, Any] | None = None,
) -> str:
    """Render ``{{ env_var('X', 'default') }}`` in a value of cadence.yml (or, with ``file``, of
    dbt_project.yml or profiles.yml, where ``{{ var('x') }}`` reads the ``--vars`` given)."""
    if "{{" not in text and "{%" not in text:
        return text
    fast = _env_only(text, env_used)
    if fast is not None:
        return fast
    import jinja2.sandbox

    def env_var(name: Any = None, default: str | None = None) -> str:
        if not isinstance(name, str) or not name:
            raise CadenceError(
                "env_var() needs the name of an environment variable",
                file=file,
                hint="write {{ env_var('NAME', 'default') }}",
            )
        env_used.append((name, env_digest(os.environ.get(name))))
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise CadenceError(
                f"environment variable '{name}' is not set",
                file=file,
                hint=f"export {name}=... or give a default: env_var('{name}', 'value')",
            )
        return str(default)

    def var(name: Any = None, *default: Any) -> Any:
        if cli_vars is not None and name in cli_vars:
            return cli_vars[name]
        if default:
            return default[0]
        raise CadenceError(
            f"var '{name}' is not set here (only --vars is known when this file is read)",
            file=file,
            hint=f"pass --vars '{{{name}: ...}}' or give a default: var('{name}', 'value')",
        )

    names: dict[str, Any] = {"env_var": env_var}
    if cli_vars is not None:
        names["var"] = var
    try:
        return jinja2.sandbox.SandboxedEnvironment().from_string(text).render(**names)
    except CadenceError:
        raise
    except Exception as exc:  # noqa: BLE001 - a template in a settings file is user code
        raise CadenceError(
            f"invalid template in '{shorten(text)}': {type(exc).__name__}: {exc}",
            file=file,
            hint="write {{ env_var('NAME', 'default') }}",
        ) from None
