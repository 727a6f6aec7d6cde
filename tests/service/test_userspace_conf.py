"""No-root mode's local.conf keys: parsed leniently (a bad value leaves out only its
front-end, with a message naming the key path), never stopping the daemon."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from ztone.service.config import LocalConf
from ztone.service.userspace_conf import (
    format_endpoint,
    parse_endpoint,
    parse_userspace_settings,
)

NWID = "8056c2e21c000001"


def test_defaults() -> None:
    s = parse_userspace_settings({})
    assert s.port_backend == "auto" and s.socks5 is None and s.forwards == [] and not s.problems
    assert s.backend_for(1) == "auto"


def test_full_example() -> None:
    s = parse_userspace_settings({
        "portBackend": "tap",
        "socks5": {"enabled": True, "port": 1081, "username": "u", "password": "p"},
        "networks": {NWID: {
            "portBackend": "userspace",
            "socks5": {"bind": "::1", "port": 1082},
            "forwards": [
                {"direction": "in", "proto": "tcp", "listenPort": 2222, "to": "127.0.0.1:22"},
                {"direction": "out", "listen": "127.0.0.1:8080", "to": "[fd00::5]:80"},
                {"direction": "out", "listen": "127.0.0.1/8081", "to": "10.1.2.3/80"},
            ],
        }},
    })  # fmt: skip
    assert s.problems == []
    nwid = int(NWID, 16)
    assert s.port_backend == "tap" and s.backend_for(2) == "tap"
    assert s.backend_for(nwid) == "userspace"
    assert s.socks5 is not None and s.socks5.port == 1081 and s.socks5.auth == ("u", "p")
    assert str(s.network_socks5[nwid].bind) == "::1"
    fin, fout, fout2 = s.forwards
    assert (fin.direction, fin.listen_port, format_endpoint(fin.to)) == ("in", 2222, "127.0.0.1:22")
    assert fout.to == (ipaddress.ip_address("fd00::5"), 80) and fout.listen is not None
    assert fout2.to == (ipaddress.ip_address("10.1.2.3"), 80)
    assert fin.describe() == "overlay tcp/2222 -> 127.0.0.1:22"


BAD: list[tuple[dict[str, Any], str]] = [
    ({"portBackend": "tun"}, 'settings.portBackend: expected one of "auto", "tap", "userspace"'),
    ({"socks5": 5}, "settings.socks5: expected a JSON object, got 5"),
    ({"socks5": {"port": "x"}}, 'settings.socks5.port: expected an integer from 1 to 65535, got "x"'),  # noqa: E501
    ({"socks5": {"port": 0}}, "settings.socks5.port: expected an integer from 1 to 65535, got 0"),
    ({"socks5": {"bind": "localhost"}}, 'settings.socks5.bind: expected an IP address, got "localhost"'),  # noqa: E501
    ({"socks5": {"enabled": 1}}, "settings.socks5.enabled: expected true or false, got 1"),
    ({"socks5": {"prot": 1}}, "settings.socks5.prot"),
    ({"socks5": {"maxConnections": 0}}, "settings.socks5.maxConnections: expected an integer"),
    ({"networks": []}, "settings.networks: expected a JSON object, got []"),
    ({"networks": {"xyz": {}}}, "settings.networks.xyz: invalid key: expected a network ID"),
    ({"networks": {NWID: {"portBackend": "x"}}}, f"settings.networks.{NWID}.portBackend: expected one of"),  # noqa: E501
    ({"networks": {NWID: {"forwards": [{"direction": "in", "to": "127.0.0.1:22"}]}}},
     f'settings.networks.{NWID}.forwards[0]: a forward "in" needs "listenPort"'),
    ({"networks": {NWID: {"forwards": [{"direction": "out", "listenPort": 5, "to": "1.2.3.4:5"}]}}},
     f'settings.networks.{NWID}.forwards[0]: a forward "out" needs "listen"'),
    ({"networks": {NWID: {"forwards": [{"direction": "in", "listenPort": 5, "to": "host:22"}]}}},
     f'settings.networks.{NWID}.forwards[0].to: expected an endpoint "ip:port"'),
    ({"networks": {NWID: {"forwards": [{"direction": "in", "listenPort": 5, "to": "1.2.3.4:22",
                                        "proto": "udp"}]}}},
     f'settings.networks.{NWID}.forwards[0].proto: expected "tcp"'),
    ({"networks": {NWID: {"forwards": [{"direction": "up", "listenPort": 5, "to": "1.2.3.4:22"}]}}},
     f'settings.networks.{NWID}.forwards[0].direction: expected "in" or "out"'),
    ({"networks": {NWID: {"forwards": [{}] * 65}}}, f"settings.networks.{NWID}.forwards: more than 64"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("settings", "message"), BAD)
def test_bad_values_are_reported_and_left_out(settings: dict[str, Any], message: str) -> None:
    s = parse_userspace_settings(settings, "/h/local.conf")
    assert s.problems, settings
    assert s.problems[0].startswith("/h/local.conf: " + message), s.problems
    assert s.forwards == [] and s.socks5 is None and s.port_backend == "auto"


def test_one_bad_forward_keeps_the_others() -> None:
    s = parse_userspace_settings({"socks5": {"port": 1080}, "networks": {NWID: {"forwards": [
        {"direction": "in", "listenPort": 70000, "to": "127.0.0.1:22"},
        {"direction": "in", "listenPort": 7, "to": "127.0.0.1:7"},
    ]}}})  # fmt: skip
    assert len(s.problems) == 1 and len(s.forwards) == 1 and s.socks5 is not None


def test_local_conf_accepts_the_keys_without_warning_and_never_fails_on_them() -> None:
    conf = LocalConf.from_json({"settings": {"portBackend": 5, "socks5": "x", "networks": 1}})
    assert conf.warnings == []


@pytest.mark.parametrize(
    ("text", "ip", "port"),
    [("1.2.3.4:80", "1.2.3.4", 80), ("[fd00::1]:22", "fd00::1", 22), ("fd00::1/22", "fd00::1", 22),
     (" 10.0.0.1/65535 ", "10.0.0.1", 65535)],
)  # fmt: skip
def test_endpoints(text: str, ip: str, port: int) -> None:
    assert parse_endpoint(text) == (ipaddress.ip_address(ip), port)


@pytest.mark.parametrize("text", ["", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:65536", "fd00::1:x",
                                  "[fd00::1]22", "host:80", "1.2.3.4:+8", "1.2.3.4:٣"])  # fmt: skip
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_every_problem_of_a_server_is_named() -> None:
    s = parse_userspace_settings(
        {"socks5": {"port": 0, "bind": "localhost", "usernme": "u", "idleTimeout": "60"}},
        "/h/local.conf",
    )
    assert s.socks5 is None
    assert s.problems == [
        '/h/local.conf: settings.socks5.bind: expected an IP address, got "localhost"',
        "/h/local.conf: settings.socks5.port: expected an integer from 1 to 65535, got 0",
        '/h/local.conf: settings.socks5.idleTimeout: expected an integer from 1 to 86400, got "60"',
        "/h/local.conf: settings.socks5.usernme: unknown key",
    ]
