"""The API's ``authCheck`` (ztone.service.api.routes.authorized, C.2.2) on its own.

Requests are built directly (any source address); the control object holds only
what authentication reads.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from ztone.service.api.http import Request
from ztone.service.api.routes import authorized, bearer_token_valid, ip_allowed, is_loopback

TOKEN = "0123456789abcdefghijklmn"
METRICS = "zyxwvutsrqponmlkjihgfedc"


@dataclass
class Tokens:
    auth_token: str = TOKEN
    metrics_token: str = METRICS
    allow_management_from: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )


def req(path: str, ip: str = "127.0.0.1", headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None) -> Request:  # fmt: skip
    return Request("GET", path, query or {}, headers or {}, b"", ipaddress.ip_address(ip))


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bEaReR {TOKEN}", True),
        (f"  Bearer   {TOKEN}  ", True),
        (f"Bearer {TOKEN} extra", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer", False),
        (f"Bearer {TOKEN.upper()}", False),
        ("", False),
    ],
)
def test_bearer_token(header: str, ok: bool) -> None:
    assert bearer_token_valid(header, TOKEN) is ok


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [("127.0.0.1", True), ("127.255.0.9", True), ("::1", True), ("::ffff:127.0.0.2", True),
     ("::ffff:10.0.0.1", False), ("10.0.0.1", False), ("::2", False)],
)  # fmt: skip
def test_loopback(ip: str, loopback: bool) -> None:
    assert is_loopback(ipaddress.ip_address(ip)) is loopback


def test_management_networks_match_by_family_and_mapped_ipv4() -> None:
    nets = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64")]
    assert ip_allowed(ipaddress.ip_address("10.0.0.7"), nets)
    assert ip_allowed(ipaddress.ip_address("::ffff:10.0.0.7"), nets)
    assert ip_allowed(ipaddress.ip_address("fd00::7"), nets)
    assert not ip_allowed(ipaddress.ip_address("10.0.1.7"), nets)
    assert not ip_allowed(ipaddress.ip_address("fd01::7"), nets)
    assert not ip_allowed(ipaddress.ip_address("10.0.0.7"), [])


def test_without_an_auth_token_only_open_paths_answer() -> None:
    control = Tokens(auth_token="")
    assert not authorized(control, req("/status", headers={"x-zt1-auth": ""}))
    assert not authorized(control, req("/status", query={"auth": ""}))
    assert authorized(control, req("/health"))
    assert authorized(control, req("/app"))
    assert authorized(control, req("/application"))  # a prefix match, as upstream
    # /metrics still takes the metrics token
    assert authorized(control, req("/metrics", headers={"x-zt1-auth": METRICS}))


def test_metrics_without_a_metrics_token() -> None:
    control = Tokens(metrics_token="")
    assert not authorized(control, req("/metrics", headers={"x-zt1-auth": ""}))
    assert authorized(control, req("/metrics", ip="198.18.0.9", query={"auth": TOKEN}))


def test_open_paths_still_need_an_allowed_address() -> None:
    control = Tokens()
    for path in ("/health", "/sso", "/app/index.html"):
        assert authorized(control, req(path))
        assert not authorized(control, req(path, ip="198.18.0.9"))


def test_only_the_first_token_source_counts() -> None:
    control = Tokens()
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert not authorized(control, req("/peer", headers={"x-zt1-auth": "", **bearer}))
    assert not authorized(control, req("/peer", headers=bearer, query={"auth": ""}))
    assert authorized(control, req("/peer", headers={"x-zt1-auth": TOKEN}, query={"auth": "x"}))
