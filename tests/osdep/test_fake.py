"""OS-independent parts of the virtual port layer: the fake backend, names, managed policy."""

from __future__ import annotations

import ipaddress
import itertools
import sys

import pytest

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import FrameDevice, FrameDeviceError, LinkConfig, Tap, TapError, TapFactory
from ztone.osdep.factory import default_tap_factory
from ztone.osdep.fake import FakeTap, FakeTapFactory, Frame
from ztone.osdep.managed import (
    fork_default_route,
    is_default_route,
    is_managed_allowed,
    managed_route,
    plan_managed,
    route_gateway,
    route_network,
    upstream_sort_key,
)
from ztone.osdep.multicast import address_resolution_group, port_groups
from ztone.osdep.naming import (
    base32_5_to_8,
    choose_linux_device_name,
    is_linux_ztone_name,
    linux_device_name,
    parse_devicemap,
    read_devicemap,
)
from ztone.service.config import NetworkLocalSettings

NWID = 0x8056C2E21C000001
MAC = 0x0289E9300C27


def ia(text: str) -> InetAddress:
    return InetAddress.parse(text)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def _protocol_check(
    tap: FakeTap, factory: FakeTapFactory
) -> tuple[Tap, TapFactory, FrameDevice, LinkConfig]:
    """Never called: mypy checks that the fakes satisfy the protocols."""
    return tap, factory, tap.device, tap.link


# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nwid", "trial", "name"),
    [
        (0x8056C2E21C000001, 0, "ztmjfmfyq5"),  # the spec's example (C.5.2)
        (0x8056C2E21C000001, 1, "ztmjfmfyq6"),
        (0x1C33C1CED015C144, 0, "zt2lr5id4u"),
        (0xA09ACF0233E4B070, 0, "ztukusxmsd"),
        (0xFFFFFFFFFFFFFFFF, 0, "ztaaaaaaaa"),  # nwid ^ nwid >> 24 keeps 0 in the low 40 bits
        (0x000000FFFFFFFFFF, 0, "zt77776aaa"),
        (0x000000FFFFFF0000, 0, "zt77777777"),
        (0x000000FFFFFF0000, 1, "ztaaaaaaaa"),  # + trial wraps in 40 bits
    ],
)
def test_linux_device_names(nwid: int, trial: int, name: str) -> None:
    assert linux_device_name(nwid, trial) == name
    assert is_linux_ztone_name(name)


def test_base32_alphabet_and_shape() -> None:
    assert base32_5_to_8(bytes(5)) == "aaaaaaaa"
    assert base32_5_to_8(b"\xff" * 5) == "77777777"
    assert base32_5_to_8(b"\x08\x42\x10\x84\x21") == "bbbbbbbb"
    with pytest.raises(ValueError):
        base32_5_to_8(b"abcd")
    assert not is_linux_ztone_name("zt12345678")  # 0, 1, 8, 9 are not in the alphabet
    assert not is_linux_ztone_name("ztabcdefg")
    assert not is_linux_ztone_name("ztabcdefghi")
    assert not is_linux_ztone_name("eth0")


def test_devicemap_parsing_and_choice(tmp_path: object) -> None:
    text = "8056c2e21c000001=ztold0\r\n\nbroken\n0123456789abcdef==zzz==extra\n"
    mapping = parse_devicemap(text)
    assert mapping == {"8056c2e21c000001": "ztold0", "0123456789abcdef": "zzz"}
    taken: set[str] = set()
    assert choose_linux_device_name(NWID, taken.__contains__, mapping) == "ztold0"
    taken.add("ztold0")
    assert choose_linux_device_name(NWID, taken.__contains__, mapping) == "ztmjfmfyq5"
    taken.add("ztmjfmfyq5")
    assert choose_linux_device_name(NWID, taken.__contains__, mapping) == "ztmjfmfyq6"
    long_map = {f"{NWID:016x}": "a-very-long-interface-name"}
    assert choose_linux_device_name(NWID, set().__contains__, long_map) == "a-very-long-int"
    assert read_devicemap(None) == {}
    assert read_devicemap("/nonexistent/ztone-home") == {}


# --- the fake port ---------------------------------------------------------------------


def test_fake_factory_names_and_failures() -> None:
    factory = FakeTapFactory(existing_names={"ztukusxmsd"})
    a = factory.create(NWID, MAC, 2800, "A")
    b = factory.create(NWID, MAC, 2800, "B")
    c = factory.create(0xA09ACF0233E4B070, MAC, 2800, "C")
    assert a.device_name == "ztmjfmfyq5"
    assert b.device_name == "ztmjfmfyq6"  # the first name is taken by the open port a
    assert c.device_name == "ztukusxmse"  # ztukusxmsd exists on the "host"
    a.close()
    assert factory.create(NWID, MAC, 2800, "D").device_name == "ztmjfmfyq5"
    assert factory.taps_for(NWID) == [b, factory.created[-1]]
    with pytest.raises(TapError, match="injected"):
        FakeTapFactory(fail_create=True).create(NWID, MAC, 2800, "x")
    stale = FakeTapFactory(stale_names=["ztaaaaaaaa"])
    assert stale.cleanup_stale() == ["ztaaaaaaaa"]
    assert stale.cleanup_stale() == []


def test_fake_device_frames_both_ways() -> None:
    tap = FakeTapFactory().create(NWID, MAC, 1500, "x")
    device = tap.device
    assert device.read_batch(8) == []  # nothing yet: no waiting
    device.inject(0x0211, 0xFFFFFFFFFFFF, 0x0806, bytearray(b"arp"))
    device.inject(0x0211, MAC, 0x0800, b"ip")
    assert device.read_batch(1) == [(0x0211, 0xFFFFFFFFFFFF, 0x0806, b"arp")]
    got = device.read_batch(8)
    assert got == [(0x0211, MAC, 0x0800, b"ip")] and isinstance(got[0][3], bytes)
    assert device.write_batch([(MAC, 0x0211, 0x0800, b"x" * 1500), (MAC, 1, 2, b"y")]) == 0
    assert device.put_frames == [Frame(MAC, 0x0211, 0x0800, b"x" * 1500), Frame(MAC, 1, 2, b"y")]
    assert len(device.take_frames()) == 2 and device.put_frames == []
    device.fail.add("read")
    with pytest.raises(FrameDeviceError, match="injected"):
        device.read_batch(8)
    device.fail = {"write"}
    assert device.write_batch([(MAC, 1, 2, b"z")]) == 1
    assert device.dropped_frames == [Frame(MAC, 1, 2, b"z")]
    device.fail.clear()
    tap.close()
    assert device.closed and device.read_batch(8) == []
    assert device.write_batch([(MAC, 0x0211, 0x0800, b"late")]) == 1
    with pytest.raises(TapError, match="closed"):
        device.inject(1, 2, 3, b"")


def test_fake_ips_routes_groups_and_close() -> None:
    factory = FakeTapFactory()
    tap = factory.create(NWID, MAC, 2800, "x")
    link = tap.link
    assert link.add_ip(ia("198.18.5.1/24")) and link.add_ip(ia("198.18.5.1/24"))
    assert link.add_ip(ia("fd00:5::1/64"))
    assert link.add_ip(ia("198.18.5.1/25"))  # same IP, other prefix: replaces
    assert link.ips() == [ia("198.18.5.1/25"), ia("fd00:5::1/64")]
    assert not link.remove_ip(ia("198.18.5.1/24"))
    route = managed_route(net("198.19.0.0/16"), ipaddress.ip_address("198.18.5.2"))
    assert link.add_route(route) and link.add_route(route)
    assert link.routes == [route]
    assert not link.remove_route(managed_route(net("198.19.0.0/16")))
    link.join(0x333300000001)
    link.join(0x333300000001)
    assert link.multicast_groups() == [
        MulticastGroup(0x333300000001, 0),
        MulticastGroup(0x3333FF000001, 0),
        MulticastGroup(0xFFFFFFFFFFFF, 0xC6120501),
    ]
    link.leave(0x333300000001)
    assert MulticastGroup(0x333300000001, 0) not in link.multicast_groups()
    link.fail.update({"add_ip", "add_route", "set_mtu"})
    assert not link.add_ip(ia("198.18.6.1/24"))
    assert not link.add_route(managed_route(net("198.20.0.0/16")))
    with pytest.raises(TapError):
        link.set_mtu(1400)
    link.fail.clear()
    link.set_mtu(1400)
    assert link.mtu == 1400 and link.mtu_history == [2800, 1400]
    tap.close()
    assert tap.closed and factory.open == {}
    assert link.ips() == [] and link.routes == [] and link.multicast_groups() == []
    assert not link.add_ip(ia("198.18.5.1/24"))
    tap.close()  # twice is fine


def test_address_resolution_groups() -> None:
    assert address_resolution_group(ia("10.147.17.5/24")) == MulticastGroup(
        0xFFFFFFFFFFFF, 0x0A931105
    )
    assert address_resolution_group(ia("fd80:56c2:e21c:0:199:9389:e92c:eee5/88")) == (
        MulticastGroup(0x3333FF2CEEE5, 0)
    )
    groups = port_groups([0x01005E000001, 0x01005E000001], [ia("10.0.0.1/8"), ia("10.0.0.1/24")])
    assert groups == [
        MulticastGroup(0x01005E000001, 0),
        MulticastGroup(0xFFFFFFFFFFFF, 0x0A000001),
    ]


# --- managed IP / route policy (C.5.3) ---------------------------------------------------

KINDS: dict[str, list[str]] = {
    "private": ["10.1.2.3/24", "172.16.0.1/12", "192.168.1.1/24", "198.18.5.1/24", "fd00::5/88"],
    "pseudoprivate": ["6.1.2.3/8", "28.0.0.1/8", "240.0.0.1/4"],
    "shared-as-private": ["100.64.1.1/10", "192.0.2.1/24"],
    "global": ["1.2.3.4/24", "9.9.9.0/24", "2001:db8::1/64", "2a00::/16"],
    "default": ["0.0.0.0/0", "::/0"],
    "never": ["169.254.1.1/16", "fe80::1/64", "127.0.0.1/8", "224.0.0.0/4", "0.1.2.3/8", "::1/128"],
}


def _expected(kind: str, managed: bool, global_: bool, default: bool) -> bool:
    if not managed:
        return False
    return {
        "private": True,
        "pseudoprivate": True,
        "shared-as-private": True,
        "global": global_,
        "default": default,
        "never": False,
    }[kind]


@pytest.mark.parametrize(
    ("managed", "global_", "default"), list(itertools.product([False, True], repeat=3))
)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_policy_table(kind: str, managed: bool, global_: bool, default: bool) -> None:
    policy = NetworkLocalSettings(
        allow_managed=managed, allow_global=global_, allow_default=default
    )
    want = _expected(kind, managed, global_, default)
    for text in KINDS[kind]:
        assert is_managed_allowed(policy, ia(text)) is want, text
        # The same verdict for the address as a managed IP and its network as a route.
        network = ipaddress.ip_network(text, strict=False)
        ips, _ = plan_managed([ia(text)], [], policy)
        assert (ips == [ia(text)]) is want
        _, routes = plan_managed(
            [ia("198.18.1.1/32"), ia("fd00:1::1/128")], [managed_route(network)], policy
        )
        assert bool(routes) is want, f"route {network}"


def test_whitelist() -> None:
    policy = NetworkLocalSettings(managed_whitelist=[net("10.0.0.0/8"), net("fd00:1::/32")])
    assert is_managed_allowed(policy, ia("10.1.2.3/24"))
    assert is_managed_allowed(policy, ia("10.1.2.3/8"))
    assert not is_managed_allowed(policy, ia("10.1.2.3/4"))  # wider than the whitelist entry
    assert not is_managed_allowed(policy, ia("192.168.1.1/24"))
    assert is_managed_allowed(policy, ia("fd00:1:2::1/64"))
    assert not is_managed_allowed(policy, ia("fd00:2::1/64"))
    everything = NetworkLocalSettings(managed_whitelist=[net("0.0.0.0/0")], allow_default=True)
    assert is_managed_allowed(everything, ia("192.168.1.1/24"))
    assert is_managed_allowed(everything, ia("0.0.0.0/0"))
    assert not is_managed_allowed(everything, ia("fd00::1/64"))  # other family
    # The whitelist narrows; it does not override scope rules.
    assert not is_managed_allowed(everything, ia("169.254.0.1/16"))
    assert not is_managed_allowed(
        NetworkLocalSettings(managed_whitelist=[net("0.0.0.0/0")]), ia("1.2.3.4/24")
    )


def test_plan_ips_sorted_as_upstream() -> None:
    policy = NetworkLocalSettings()
    ips, _ = plan_managed(
        [
            ia("fd00::1/64"),
            ia("10.0.0.9/24"),
            ia("10.1.0.5/24"),
            ia("10.0.0.9/24"),
            ia("10.2.0.1/16"),
            ia("1.2.3.4/24"),  # global: not allowed by default
        ],
        [],
        policy,
    )
    # IPv4 first; then by prefix length; then by the address read little-endian.
    assert ips == [ia("10.2.0.1/16"), ia("10.1.0.5/24"), ia("10.0.0.9/24"), ia("fd00::1/64")]
    assert upstream_sort_key(ia("10.1.0.5/24")) < upstream_sort_key(ia("10.0.0.9/24"))


def test_plan_routes() -> None:
    gw = ipaddress.ip_address("10.0.0.1")
    routes: list[Route] = [
        managed_route(net("10.0.0.0/24"), None, 0),  # implied by 10.0.0.9/24: left out
        managed_route(net("192.168.0.0/16"), gw, 0),
        managed_route(
            net("192.168.0.0/16"), ipaddress.ip_address("10.0.0.2"), 0
        ),  # same target: first wins
        managed_route(net("172.16.0.0/12"), ipaddress.ip_address("10.0.0.9"), 0),  # via my own IP
        managed_route(net("172.20.0.0/16"), ipaddress.ip_address("10.0.0.77"), 0),  # via a tap IP
        managed_route(net("10.9.0.0/16"), None, 5),  # on-link, metric kept
        managed_route(net("fd01::/64"), None, 0),  # no IPv6 address at all: no source, left out
        managed_route(net("8.8.8.0/24"), gw, 0),  # global: needs allowGlobal
        managed_route(net("0.0.0.0/0"), gw, 0),  # default: needs allowDefault
        managed_route(net("10.0.0.0/16"), None, 0),  # contains 10.0.0.9 but other length: kept
    ]
    ips, planned = plan_managed(
        [ia("10.0.0.9/24")], routes, NetworkLocalSettings(), tap_ips=[ia("10.0.0.77/24")]
    )
    assert ips == [ia("10.0.0.9/24")]
    assert planned == [
        managed_route(net("10.0.0.0/16"), None, 0),
        managed_route(net("10.9.0.0/16"), None, 5),
        managed_route(net("192.168.0.0/16"), gw, 0),
    ]
    _, everything = plan_managed(
        [ia("10.0.0.9/24")],
        routes,
        NetworkLocalSettings(allow_global=True, allow_default=True),
    )
    # On-link first, then gateway routes; each in zerotier-one's target order (by
    # prefix length, then the address read little-endian).
    targets = [str(r.target) for r in everything]
    assert targets == [
        "10.0.0.0/16",
        "10.9.0.0/16",
        "0.0.0.0/0",
        "172.20.0.0/16",
        "192.168.0.0/16",
        "8.8.8.0/24",
    ]
    assert [r.via is None for r in everything] == [True, True, False, False, False, False]
    # A non-allowed config IP still counts as mine for the route checks.
    _, planned = plan_managed(
        [ia("1.2.3.4/24")], [managed_route(net("10.5.0.0/16"), ipaddress.ip_address("1.2.3.4"), 0)],
        NetworkLocalSettings(),
    )  # fmt: skip
    assert planned == []
    _, planned = plan_managed(
        [ia("1.2.3.4/24")], [managed_route(net("10.5.0.0/16"), None, 0)], NetworkLocalSettings()
    )
    assert planned == [managed_route(net("10.5.0.0/16"))]
    # Nothing at all when allowManaged is off.
    assert plan_managed([ia("10.0.0.9/24")], routes, NetworkLocalSettings(allow_managed=False)) == (
        [],
        [],
    )


def test_default_route_helpers() -> None:
    assert fork_default_route(net("0.0.0.0/0")) == [net("0.0.0.0/1"), net("128.0.0.0/1")]
    assert fork_default_route(net("::/0")) == [net("::/1"), net("8000::/1")]
    assert fork_default_route(net("10.0.0.0/8")) == [net("10.0.0.0/8")]
    assert is_default_route(managed_route(net("::/0"), ipaddress.ip_address("fd00::1")))
    assert not is_default_route(managed_route(net("0.0.0.0/1")))


# --- platform selection -------------------------------------------------------------------


def test_default_factory_per_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZTONE_TAP_BACKEND", raising=False)
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(TapError, match="no virtual network backend for darwin"):
        default_tap_factory()
    monkeypatch.setattr(sys, "platform", "linux")
    factory = default_tap_factory()  # ip (iproute2) is only run when a port needs it
    assert type(factory).__name__ == "LinuxTapFactory"


def test_routes_are_the_configs_route_type() -> None:
    """osdep takes the network config's Route as is: target ``ip/bits``, gateway ``ip/0``."""
    route = Route(ia("10.1.2.3/16"), ia("10.1.0.1/0"), flags=0, metric=7)
    assert route_network(route) == net("10.1.0.0/16")  # host bits cleared
    assert route_gateway(route) == ipaddress.ip_address("10.1.0.1")
    assert route_gateway(Route(ia("fd00::/64"))) is None
    assert managed_route(net("10.1.0.0/16"), ipaddress.ip_address("10.1.0.1"), 7) == Route(
        ia("10.1.0.0/16"), ia("10.1.0.1/0"), 0, 7
    )
    _, planned = plan_managed([ia("10.1.0.9/24")], [route], NetworkLocalSettings())
    assert planned == [route]  # the config's own object, no copy in another type
