"""Webhook URL policy (cadence/outbound/urlpolicy.py): https, or http to loopback; addresses
that are not public unicast need allow_private, and multicast, broadcast and unspecified ones
are refused whatever it says; on the literal host and after DNS resolution."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from cadence.outbound.urlpolicy import resolve, safe_url, url_problem


@pytest.mark.parametrize(
    ("url", "allow_private", "problem"),
    [
        ("https://hooks.example.com/in", False, None),
        ("http://127.0.0.1:8788/hooks", False, None),
        ("http://localhost:8788/hooks", False, None),
        ("http://[::1]:8788/hooks", False, None),
        ("http://hooks.example.com/in", False, "http is only allowed to loopback"),
        ("http://10.0.0.5/in", True, "http is only allowed to loopback"),
        ("ftp://hooks.example.com/in", False, "must use https"),
        ("hooks.example.com/in", False, "must use https"),
        ("https://10.0.0.5/in", False, "private"),
        ("https://10.0.0.5/in", True, None),
        ("https://169.254.169.254/latest", False, "private, link-local"),
        ("https://[::ffff:192.168.1.1]/in", False, "private"),
        ("https://[fe80::1]/in", False, "private"),
        # not public unicast: refused like private addresses, admitted by allow_private
        ("https://240.0.0.1/in", False, "reserved"),
        ("https://240.0.0.1/in", True, None),
        ("https://100.64.0.1/in", False, "private"),  # shared (carrier-grade NAT)
        ("https://192.0.2.10/in", False, "private"),  # documentation
        ("https://198.18.0.1/in", False, "private"),  # benchmarking
        ("https://[fec0::1]/in", False, "private"),  # site-local
        ("https://[2001:db8::1]/in", False, "private"),  # documentation
        ("https://[::a00:1]/in", False, "private"),  # IPv4-compatible (reserved ::/8)
        ("https://[fe80::1]/in", True, None),
        # no one receiver's: refused whatever allow_private says
        ("https://224.0.0.1/in", False, "not a unicast address"),
        ("https://239.255.255.250/in", True, "not a unicast address"),
        ("https://[ff02::1]/in", True, "not a unicast address"),
        ("https://[ff0e::1]/in", False, "not a unicast address"),  # global-scope multicast
        ("https://0.0.0.0/in", True, "not a unicast address"),  # reaches this machine
        ("https://0.1.2.3/in", True, "not a unicast address"),
        ("https://[::]/in", True, "not a unicast address"),
        ("https://[::ffff:0.0.0.0]/in", True, "not a unicast address"),
        ("https://[::ffff:224.0.0.1]/in", True, "not a unicast address"),
        ("https://255.255.255.255/in", True, "not a unicast address"),
        ("http://0.0.0.0:8788/in", True, "not a unicast address"),
        ("https://93.184.216.34/in", False, None),
        ("https://[2606:4700::1111]/in", False, None),
        ("https://user:pw@hooks.example.com/in", False, "credentials"),
        ("https:///in", False, "no host"),
        ("https://hooks.example.com:99999/in", False, "not a valid URL"),
    ],
)
def test_url_policy(url: str, allow_private: bool, problem: str | None) -> None:
    found = url_problem(url, allow_private)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found[0], found


def test_resolution_checks_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "public.example": ["93.184.216.34"],
        "mixed.example": ["93.184.216.34", "192.168.0.10"],
        "local.example": ["127.0.0.1"],
    }

    def fake(host: str, port: int, *args: Any, **kw: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    assert resolve("https://public.example/in", False) == ("93.184.216.34",)
    with pytest.raises(ValueError, match="192.168.0.10 is a private"):
        resolve("https://mixed.example/in", False)
    assert resolve("https://mixed.example/in", True) == ("93.184.216.34", "192.168.0.10")
    assert resolve("http://local.example/in", False) == ("127.0.0.1",)
    with pytest.raises(ValueError, match="cannot resolve"):
        resolve("https://nowhere.example/in", False)


@pytest.mark.parametrize(
    "answer", ["224.0.0.251", "0.0.0.0", "255.255.255.255", "ff02::fb", "::", "ff05::1:3"]
)
def test_a_name_resolving_to_no_one_receivers_address_is_refused_even_when_private_is_allowed(
    monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    family = socket.AF_INET6 if ":" in answer else socket.AF_INET

    def fake(host: str, port: int, *args: Any, **kw: Any) -> list[Any]:
        return [(family, socket.SOCK_STREAM, 6, "", (answer, port)), *public(port)]

    def public(port: int) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(ValueError, match="not a unicast address"):
        resolve("https://hooks.example/in", True)


def test_a_refused_url_says_what_to_write() -> None:
    multicast = url_problem("https://239.1.2.3/in", True)
    assert multicast is not None and "allow_private" not in multicast[1]
    private = url_problem("https://10.1.2.3/in", False)
    assert private is not None and "allow_private" in private[1]


def test_messages_show_no_credentials_or_query() -> None:
    assert safe_url("https://u:pw@hooks.example.com:8443/in?token=abc#x") == (
        "https://hooks.example.com:8443/in"
    )
    found = url_problem("https://u:topsecret@hooks.example.com/in", False)
    assert found is not None and "topsecret" not in found[0] + found[1]
