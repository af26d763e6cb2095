"""Webhook URL policy: which receivers cadence may POST to (SPEC §7).

Input: a webhook ``url`` and its ``allow_private`` flag -> output: a problem (message, hint) or
None; and, when delivering, the resolved addresses to connect to.

Invariants: only https, or http to loopback (127.0.0.0/8, ::1, localhost); an address that is
not global (private, link-local, shared, reserved; IPv4-mapped IPv6 included) needs
``allow_private``, checked on the literal host when the project loads and on every address DNS
returns when delivering (connections then go to those checked addresses only). Messages never
show a URL's credentials, query or fragment.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _address_problem(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, scheme: str, allow_private: bool
) -> str | None:
    if ip.is_loopback:
        return None
    if scheme == "http":
        return f"http is only allowed to loopback, and {ip} is not loopback"
    if not ip.is_global and not allow_private:
        return f"{ip} is a private, link-local or reserved address"
    return None


PRIVATE_HINT = (
    "set allow_private: true on the export if this receiver is meant to be on your own network"
)


def safe_url(url: str) -> str:
    """The URL without credentials, query or fragment (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def url_problem(url: str, allow_private: bool) -> tuple[str, str] | None:
    """What is wrong with a webhook URL without resolving it, as (message, hint); None: fine
    so far (names are checked again after DNS resolution, when delivering)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"webhook url is not a valid URL ({exc})", "write url: https://host/path"
    del port
    if parts.scheme not in ("https", "http"):
        return (
            f"webhook url must use https, not '{parts.scheme or '(none)'}'",
            "write url: https://host/path (http only to 127.0.0.1, ::1 or localhost)",
        )
    if not parts.hostname:
        return "webhook url has no host", "write url: https://host/path"
    if parts.username is not None or parts.password is not None:
        return (
            "webhook url must not carry credentials",
            "receivers authenticate cadence by the webhook-signature; put the secret in the "
            "environment variable named by secret_env",
        )
    ip = _address(parts.hostname)
    if ip is None:
        if parts.scheme == "http" and parts.hostname.lower() != "localhost":
            return (
                f"http is only allowed to loopback, not '{parts.hostname}'",
                "use https, or http://127.0.0.1 for a receiver on this machine",
            )
        return None
    problem = _address_problem(ip, parts.scheme, allow_private)
    if problem is None:
        return None
    hint = PRIVATE_HINT if parts.scheme == "https" else "use https for a receiver elsewhere"
    return f"webhook url: {problem}", hint


def resolve(url: str, allow_private: bool) -> tuple[str, ...]:
    """The checked addresses to connect to; ValueError naming the address that is refused."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"cannot resolve '{host}': {exc}") from None
    addresses: list[str] = []
    for info in infos:
        text = str(info[4][0])
        ip = _address(text)
        if ip is None:
            continue
        problem = _address_problem(ip, parts.scheme, allow_private)
        if problem is not None:
            raise ValueError(f"'{host}' resolves to {problem}")
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise ValueError(f"'{host}' resolves to no address")
    return tuple(addresses)


__all__ = ["PRIVATE_HINT", "resolve", "safe_url", "url_problem"]
