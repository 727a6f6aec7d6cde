"""Command wrappers: paths, logging, parsing of illumos output (no root needed)."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from ztone.osdep.base import FrameDevice, LinkConfig, Tap, TapError, TapFactory
from ztone.osdep.illumos.commands import (
    CommandError,
    CommandPaths,
    RouteCommand,
    Runner,
    _parsable_fields,
    format_mac,
    parse_ifconfig,
    parse_mac,
    parse_netstat_groups,
)
from ztone.osdep.illumos.link import address_resolution_group, multicast_mac
from ztone.osdep.illumos.preflight import _missing_privileges, parse_ppriv_effective
from ztone.osdep.illumos.tap import IllumosTap, IllumosTapFactory, backend_mac

IFCONFIG_A = """\
lo0: flags=2001000849<UP,LOOPBACK,RUNNING,MULTICAST,IPv4,VIRTUAL> mtu 8232 index 1
\tinet 127.0.0.1 netmask ff000000
ztmjfmfyq50: flags=1000843<UP,BROADCAST,RUNNING,MULTICAST,IPv4> mtu 2800 index 3
\tinet 0.0.0.0 netmask 0
\tether 82:aa:bb:cc:dd:ee
ztmjfmfyq50:1: flags=1000843<UP,BROADCAST,RUNNING,MULTICAST,IPv4> mtu 2800 index 3
\tinet 10.147.17.5 netmask ffffff00 broadcast 10.147.17.255
ztmjfmfyq50: flags=2000841<UP,RUNNING,MULTICAST,IPv6> mtu 2800 index 3
\tinet6 fe80::80aa:bbff:fecc:ddee/10
ztmjfmfyq50:1: flags=2000841<UP,RUNNING,MULTICAST,IPv6> mtu 2800 index 3
\tinet6 fd80:56c2:e21c:0:199:9389:e92c:eee5/88
"""


def test_parse_ifconfig() -> None:
    found = parse_ifconfig(IFCONFIG_A)
    mine = [(a.lif, str(a.ip), a.prefixlen) for a in found if a.interface == "ztmjfmfyq50"]
    assert mine == [
        ("ztmjfmfyq50", "0.0.0.0", 0),
        ("ztmjfmfyq50:1", "10.147.17.5", 24),
        ("ztmjfmfyq50", "fe80::80aa:bbff:fecc:ddee", 10),
        ("ztmjfmfyq50:1", "fd80:56c2:e21c:0:199:9389:e92c:eee5", 88),
    ]
    assert found[1].mtu == 2800 and "IPv4" in found[1].flags


def test_parse_netstat_groups() -> None:
    text = """
Group Memberships: IPv4
Interface Group                RefCnt
--------- -------------------- ------
lo0       224.0.0.1                 1
ztmjfmfyq50 224.0.0.251             1

Group Memberships: IPv6
 If       Group                   RefCnt
------ --------------------------- ------
ztmjfmfyq50 ff02::1:ffcc:ddee          1
"""
    groups = parse_netstat_groups(text)
    assert groups["ztmjfmfyq50"] == {
        ipaddress.ip_address("224.0.0.251"),
        ipaddress.ip_address("ff02::1:ffcc:ddee"),
    }
    assert multicast_mac(ipaddress.IPv4Address("224.0.0.251")) == 0x01005E0000FB
    assert multicast_mac(ipaddress.IPv6Address("ff02::1:ffcc:ddee")) == 0x3333FFCCDDEE


def test_groups_and_macs() -> None:
    assert address_resolution_group(ipaddress.IPv4Address("10.0.0.1")).adi == 0x0A000001
    assert address_resolution_group(ipaddress.IPv6Address("fd00::1:2:3")).mac == 0x3333FF020003
    assert backend_mac(0x82AABBCCDDEE) == 0x86AABBCCDDEE
    assert format_mac(0x020A00000001) == "2:a:0:0:0:1"
    assert parse_mac("2:a:0:0:0:1") == 0x020A00000001


def test_dladm_parsable_escapes() -> None:
    assert _parsable_fields(r"net0:vnic:9000:stub\:1\\x") == ["net0", "vnic", "9000", "stub:1\\x"]


def test_route_argv() -> None:
    net4 = ipaddress.IPv4Network("10.99.0.0/16")
    gw4 = ipaddress.IPv4Address("10.147.17.1")
    assert RouteCommand.argv_tail(net4, gw4, "zt0", False) == [
        "-net", "10.99.0.0/16", "10.147.17.1", "-ifp", "zt0"]  # fmt: skip
    host = ipaddress.IPv4Network("1.2.3.4/32")
    assert RouteCommand.argv_tail(host, gw4, "zt0", True)[:2] == ["-host", "1.2.3.4"]
    assert "-interface" in RouteCommand.argv_tail(host, gw4, "zt0", True)
    net6 = ipaddress.IPv6Network("fd00:aa::/64")
    assert RouteCommand.argv_tail(net6, ipaddress.IPv6Address("fd00::1"), "zt0", False) == [
        "-inet6", "fd00:aa::/64", "fd00::1", "-ifp", "zt0"]  # fmt: skip


def test_paths_from_env() -> None:
    default = CommandPaths.from_env({})
    assert default.dladm == "/usr/sbin/dladm" and default.svcs == "/usr/bin/svcs"
    sim = CommandPaths.from_env({"ZTONE_ILLUMOS_SBIN": "/sim", "ZTONE_ROUTE": "/x/route"})
    assert sim.dladm == "/sim/dladm" and sim.route == "/x/route"


def test_runner_logs_and_raises(caplog: pytest.LogCaptureFixture) -> None:
    runner = Runner(timeout=10)
    with caplog.at_level(logging.DEBUG, logger="ztone.osdep.illumos.commands"):
        ok = runner.run(["sh", "-c", "echo out; echo warn >&2"])
        assert ok.ok and ok.stdout == "out\n"
        with pytest.raises(CommandError) as info:
            runner.run(["sh", "-c", "echo 'dladm: invalid link name' >&2; exit 1"])
    assert isinstance(info.value, TapError)
    assert "exited 1: dladm: invalid link name" in str(info.value)
    assert any("exit 1" in r.message and "invalid link name" in r.message for r in caplog.records)
    missing = runner.run(["/nonexistent/dladm"], check=False)
    assert missing.returncode == 127


def test_ppriv_parsing() -> None:
    text = "123:\tpython3.13\nflags = <none>\n\tE: basic,net_rawaccess\n\tI: basic\n"
    effective = parse_ppriv_effective(text)
    assert effective == {"basic", "net_rawaccess"}
    assert _missing_privileges(effective) == ["sys_dl_config", "sys_ip_config"]
    assert _missing_privileges({"all"}) == []


def _protocol_check(
    tap: IllumosTap, factory: IllumosTapFactory
) -> tuple[Tap, TapFactory, FrameDevice, LinkConfig]:
    """Never called: mypy checks that the illumos classes satisfy the protocols."""
    return tap, factory, tap.device, tap.link
