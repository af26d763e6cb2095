"""The serve wing: per-visit segment lookups from snapshot files (SPEC §9).

Entered from one place each way: ``write_channel_snapshots`` (the run hook, after deliveries)
writes a served channel's audience to ``target/serve/<channel>.snap``; ``open_server`` (behind
``cadence serve``) answers HTTP lookups from those files and never opens the warehouse.

Input: the project's root and config (+ bind address, token) -> output: a ``Server`` ready to
``run(stop)``. Invariants: a bind address other than loopback needs a bearer token from the
environment; only channels with ``serve`` configured are served.
"""

from __future__ import annotations

import importlib.util
import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path

from cadence.errors import UsageError, did_you_mean
from cadence.load.projectconfig import ProjectConfig
from cadence.plan.schedule import parse_cadence
from cadence.serve.asgi import AsgiServer
from cadence.serve.http import Log, Server
from cadence.serve.service import Clock, Observer, ServedChannel, Service
from cadence.serve.snapshot import snapshot_path


def http_stack() -> str:
    """uvicorn when the ``cadence[serve]`` extra is installed (on a quiet machine: 35 µs of
    server CPU a request against 125 µs for the standard library's server, p99 1.5 ms against
    6.7 ms: docs/performance.md), else the standard library's."""
    return "uvicorn" if importlib.util.find_spec("uvicorn") is not None else "stdlib"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def served_channels(
    root: Path, config: ProjectConfig, wanted: Sequence[str] = ()
) -> list[ServedChannel]:
    """The channels to serve: ``wanted`` (each must have ``serve``), else every served one."""
    by_name = {c.name: c for c in config.channels}
    served = [c.name for c in config.channels if c.serve is not None]
    for name in wanted:
        if name not in by_name:
            guess = did_you_mean(name, list(by_name))
            raise UsageError(
                f"unknown channel '{name}'",
                hint=f"did you mean '{guess}'?" if guess else "channels: " + ", ".join(by_name),
            )
        if name not in served:
            raise UsageError(
                f"channel '{name}' is not served",
                hint=f"add `serve: true` to channel {name} in cadence.yml and run it once",
            )
    names = list(dict.fromkeys(wanted)) or served
    if not names:
        raise UsageError(
            "no channel is served",
            hint="add `serve: true` (or `serve: {columns: [...]}`) to a channel in cadence.yml",
        )
    return [
        ServedChannel(n, parse_cadence(by_name[n].cadence), snapshot_path(root, n)) for n in names
    ]


def open_server(
    root: Path,
    config: ProjectConfig,
    *,
    host: str,
    port: int,
    channels: Sequence[str],
    token_env: str | None,
    env: Mapping[str, str],
    clock: Clock,
    on_log: Log | None = None,
    poll_s: float = 0.02,
    log_every_s: float = 60.0,
    observer: Observer | None = None,
) -> Server | AsgiServer:
    """Validate the options and bind; raises ``UsageError`` (exit 2) for what the user can fix."""
    token = None
    if token_env is not None:
        token = env.get(token_env) or None
        if token is None:
            raise UsageError(
                f"--token-env {token_env}: the environment variable is not set or empty",
                hint=f"export {token_env}=<a long random secret> before cadence serve",
            )
    elif not is_loopback(host):
        raise UsageError(
            f"binding to {host} needs a bearer token",
            hint="pass --token-env NAME (a variable holding the token), or bind to 127.0.0.1",
        )
    service = Service(
        served_channels(root, config, channels),
        config.tz,
        clock,
        token=token,
        poll_s=poll_s,
        observer=observer,
    )
    front: type[Server] | type[AsgiServer] = AsgiServer if http_stack() == "uvicorn" else Server
    try:
        return front(service, host, port, poll_s=poll_s, log_every_s=log_every_s, on_log=on_log)
    except OSError as exc:
        service.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port, or stop what holds this one",
        ) from None


__all__ = ["AsgiServer", "Server", "Service", "http_stack", "open_server", "served_channels"]
