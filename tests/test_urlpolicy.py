"""Webhook URL policy (cadence/activation/urlpolicy.py): https, or http to loopback; addresses
that are not global need allow_private, on the literal host and after DNS resolution."""

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


def test_messages_show_no_credentials_or_query() -> None:
    assert safe_url("https://u:pw@hooks.example.com:8443/in?token=abc#x") == (
        "https://hooks.example.com:8443/in"
    )
    found = url_problem("https://u:topsecret@hooks.example.com/in", False)
    assert found is not None and "topsecret" not in found[0] + found[1]
