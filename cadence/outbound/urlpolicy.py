"""Webhook URL policy: which receivers cadence may POST to (SPEC §7).

Input: a webhook ``url`` and its ``allow_private`` flag -> output: a problem (message, hint) or
None; and, when delivering, the resolved addresses to connect to.

Invariants: only https, or http to loopback (127.0.0.0/8, ::1, localhost); an address that is
not one receiver's (multicast, broadcast, unspecified, 0.0.0.0/8: 0.0.0.0 reaches this machine)
is refused whatever ``allow_private`` says; any other address that is not public unicast
(private, link-local, site-local, shared, reserved, documentation ...; IPv4-mapped IPv6 as its
IPv4 address) needs ``allow_private``. Checked on the literal host when the project loads and on
every address DNS returns when delivering (connections then go to those checked addresses
only). Messages never show a URL's credentials, query or fragment.
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


THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # "this host": 0.0.0.0 connects to itself
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _not_a_receiver(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address no single receiver has: multicast, broadcast, unspecified, this network."""
    if ip.is_multicast or ip.is_unspecified:
        return True
    return isinstance(ip, ipaddress.IPv4Address) and (ip in THIS_NETWORK or ip == BROADCAST)


def _not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Not a public unicast address: private, link-local, site-local, shared, reserved ...
    (each test on its own: which ranges ``is_global`` covers differs between Python versions)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return True
    return not ip.is_global or ip.is_private or ip.is_reserved or ip.is_link_local


def _address_problem(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, scheme: str, allow_private: bool
) -> str | None:
    if ip.is_loopback:
        return None
    if _not_a_receiver(ip):
        return f"{ip} is not a unicast address (multicast, broadcast or unspecified)"
    if scheme == "http":
        return f"http is only allowed to loopback, and {ip} is not loopback"
    if _not_public(ip) and not allow_private:
        return f"{ip} is a private, link-local or reserved address"
    return None


PRIVATE_HINT = (
    "set allow_private: true on the export if this receiver is meant to be on your own network"
)
NOT_A_RECEIVER_HINT = "write the address (or a name) of the one host that receives the webhook"


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
    if _not_a_receiver(ip):
        hint = NOT_A_RECEIVER_HINT
    elif parts.scheme == "https":
        hint = PRIVATE_HINT
    else:
        hint = "use https for a receiver elsewhere"
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
