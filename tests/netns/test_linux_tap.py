"""LinuxTap against the real kernel, each scenario in a fresh network namespace (root only).

Each scenario runs in a forked child that joined the test's namespace
(``Namespace.call``) and returns plain data; the test asserts on it. Only addresses
in 198.18.0.0/15 and fd00::/8 inside that namespace are used; the namespace has no
default route and is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import os
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import Tap, TapError, TapFactory
from ztone.osdep.linux.netlink import find_ip
from ztone.osdep.linux.stale import AliasMarker, process_start_time
from ztone.osdep.linux.tap import LinuxTap, LinuxTapFactory
from ztone.osdep.managed import managed_route
from ztone.service.frame_pump import FramePump

from .netns import Namespace


def _skip_reason() -> str | None:
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun does not exist"
    if find_ip() is None:
        return "the ip command (iproute2) is not installed"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))

NWID = 0x8056C2E21C000001
NAME = "ztmjfmfyq5"
MAC = 0x0289E9300C27  # the member MAC of 89e92ceee5 on NWID (spec A.5.1)
PEER_MAC = 0x0289E9300C28
MTU = 2800
TAP_V4 = InetAddress.parse("198.18.5.1/24")
PEER_V4 = ipaddress.IPv4Address("198.18.5.2")
TAP_V6 = InetAddress.parse("fd00:5::1/64")
ETH_IPV4, ETH_ARP, ETH_VLAN = 0x0800, 0x0806, 0x8100


def _ipj(*args: str) -> Any:
    out = subprocess.run(
        ["ip", "-j", *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    return json.loads(out) if out else []


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --- scenarios (run inside the namespace) --------------------------------------------


def _scenario_device_and_config() -> dict[str, Any]:
    r: dict[str, Any] = {}
    factory = LinuxTapFactory()
    tap = factory.create(NWID, MAC, MTU, f"ZeroTier One [{NWID:016x}]")
    r["name"] = tap.device_name
    r["link"] = _ipj("-d", "link", "show", "dev", tap.device_name)[0]
    r["add_v4"] = tap.link.add_ip(TAP_V4)
    r["add_v4_again"] = tap.link.add_ip(TAP_V4)
    r["add_v6"] = tap.link.add_ip(TAP_V6)
    r["add_bad_prefix"] = tap.link.add_ip(InetAddress.parse("198.18.9.1/33"))
    routes = {
        "gateway": managed_route(ipaddress.ip_network("198.19.7.0/24"), PEER_V4),
        "onlink6": managed_route(ipaddress.ip_network("fd00:6::/64")),
        "default": managed_route(ipaddress.ip_network("0.0.0.0/0"), PEER_V4),
        "metric": managed_route(ipaddress.ip_network("198.19.8.0/24"), PEER_V4, 77),
    }
    r["add_routes"] = {k: tap.link.add_route(v) for k, v in routes.items()}
    r["add_route_again"] = tap.link.add_route(routes["gateway"])
    r["add_route_unreachable"] = tap.link.add_route(
        managed_route(ipaddress.ip_network("198.19.9.0/24"), ipaddress.ip_address("198.19.200.1"))
    )
    r["addr"] = _ipj("addr", "show", "dev", tap.device_name)[0]
    r["routes4"] = _ipj("-4", "route", "show")
    r["routes6"] = _ipj("-6", "route", "show")
    r["ips"] = [str(a) for a in tap.link.ips()]
    groups: list[MulticastGroup] = []

    def have_all_nodes() -> bool:
        groups[:] = tap.link.multicast_groups()
        return any(g.mac == 0x333300000001 for g in groups)

    _wait_for(have_all_nodes, 3.0)
    r["groups"] = [(g.mac, g.adi) for g in groups]
    # Same IP, other prefix: replaced, not added beside.
    r["replace"] = tap.link.add_ip(InetAddress.parse("198.18.5.1/25"))
    r["ips_after_replace"] = [str(a) for a in tap.link.ips() if a.ip.version == 4]
    r["remove_absent_ip"] = tap.link.remove_ip(InetAddress.parse("198.18.5.9/24"))
    r["remove_absent_route"] = tap.link.remove_route(
        managed_route(ipaddress.ip_network("198.19.99.0/24"))
    )
    tap.link.set_mtu(1400)
    r["mtu_after"] = _ipj("link", "show", "dev", tap.device_name)[0]["mtu"]
    try:
        tap.link.set_mtu(70000)
        r["bad_mtu"] = "accepted"
    except TapError as e:
        r["bad_mtu"] = f"TapError: {e}"
    r["mtu_property"] = tap.link.mtu
    tap.close()
    r["links_after_close"] = [link["ifname"] for link in _ipj("link", "show")]
    r["routes4_after_close"] = _ipj("-4", "route", "show")
    r["routes6_after_close"] = _ipj("-6", "route", "show")
    r["ips_after_close"] = tap.link.ips()
    factory.close()
    return r


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int(x) for x in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _arp_reply(sender_mac: int, sender_ip: bytes, target_mac: int, target_ip: bytes) -> bytes:
    return (
        struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2)
        + sender_mac.to_bytes(6, "big")
        + sender_ip
        + target_mac.to_bytes(6, "big")
        + target_ip
    )


def _echo_reply_for(request: bytes) -> bytes:
    """The IPv4 ICMP echo reply to an echo request packet (addresses swapped)."""
    ihl = (request[0] & 15) * 4
    icmp = bytearray(request[ihl:])
    icmp[0] = 0
    icmp[2:4] = b"\0\0"
    icmp[2:4] = _checksum(bytes(icmp)).to_bytes(2, "big")
    header = bytearray(request[:20])
    header[8] = 64
    header[12:16], header[16:20] = request[16:20], request[12:16]
    header[10:12] = b"\0\0"
    header[10:12] = _checksum(bytes(header)).to_bytes(2, "big")
    return bytes(header) + bytes(icmp)


async def _frames_main() -> dict[str, Any]:
    r: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    factory = LinuxTapFactory()
    tap = factory.create(NWID, MAC, MTU, "test")
    frames: asyncio.Queue[tuple[int, int, int, bytes]] = asyncio.Queue()
    events: list[str] = []

    def on_frame(nwid: int, s: int, d: int, e: int, p: bytes) -> None:
        events.append("frame")
        frames.put_nowait((s, d, e, p))

    # The daemon's frame pump drives the port.
    pump = FramePump(loop, on_frame, lambda: events.append("batch end"))
    pump.attach(NWID, tap)

    def put(source: int, destination: int, ethertype: int, payload: bytes) -> None:
        pump.put(NWID, source, destination, ethertype, payload)
        pump.flush()

    tap.link.add_ip(TAP_V4)

    async def next_frame(
        match: Callable[[int, int, int, bytes], bool],
    ) -> tuple[int, int, int, bytes] | None:
        """The first frame from the host that ``match`` accepts, within 5 s."""
        deadline = loop.time() + 5.0
        while loop.time() < deadline:
            try:
                frame = await asyncio.wait_for(frames.get(), deadline - loop.time())
            except TimeoutError:
                return None
            if match(*frame):
                return frame
        return None

    ping = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ping.setblocking(False)
    ident, seq = 0x2A2A, 1
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ztone-tap-test"
    body = body[:2] + _checksum(body).to_bytes(2, "big") + body[4:]
    ping.sendto(body, (str(PEER_V4), 0))

    arp = await next_frame(
        lambda s, d, e, p: e == ETH_ARP and p[6:8] == b"\0\x01" and p[24:28] == PEER_V4.packed
    )
    r["arp_request"] = None if arp is None else (arp[0], arp[1], arp[2])
    put(PEER_MAC, MAC, ETH_ARP, _arp_reply(PEER_MAC, PEER_V4.packed, MAC, TAP_V4.ip.packed))

    echo = await next_frame(
        lambda s, d, e, p: e == ETH_IPV4 and p[9] == 1 and p[16:20] == PEER_V4.packed
    )
    r["echo_request"] = None if echo is None else (echo[0], echo[1], echo[2])
    if echo is not None:
        put(PEER_MAC, MAC, ETH_IPV4, _echo_reply_for(bytes(echo[3])))
        try:
            deadline = loop.time() + 3.0
            r["echo_reply"] = None
            while loop.time() < deadline:
                packet = await asyncio.wait_for(loop.sock_recv(ping, 2048), deadline - loop.time())
                ihl = (packet[0] & 15) * 4
                icmp = packet[ihl:]
                if icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq):
                    r["echo_reply"] = packet[12:16] == PEER_V4.packed
                    break
        except TimeoutError:
            r["echo_reply"] = None
    ping.close()
    r["neigh"] = _ipj("neigh", "show", "dev", tap.device_name)

    # 802.1Q: a tagged frame the host sends (through a packet socket) arrives as it is:
    # ethertype 0x8100, the tag at the start of the payload (no VLAN interpretation).
    tagged_arp = struct.pack("!HH", 10, ETH_ARP) + _arp_reply(MAC, bytes(4), PEER_MAC, bytes(4))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
        raw.bind((tap.device_name, 0))
        raw.send(PEER_MAC.to_bytes(6, "big") + MAC.to_bytes(6, "big") + b"\x81\x00" + tagged_arp)
    tagged = await next_frame(lambda s, d, e, p: e == ETH_VLAN)
    r["vlan_frame"] = None if tagged is None else (tagged[0], tagged[1], tagged[3] == tagged_arp)

    before = pump.frames_dropped
    put(PEER_MAC, MAC, ETH_IPV4, bytes(MTU + 1))
    r["oversize_dropped"] = pump.frames_dropped - before
    # each wakeup that delivered frames ended with one batch end, and only such wakeups
    r["batch_ends"] = (
        events[-1] == "batch end"
        and events[0] == "frame"
        and all(x != y for x, y in itertools.pairwise(events) if x == "batch end")
    )
    pump.detach(NWID)
    tap.close()
    put(PEER_MAC, MAC, ETH_IPV4, b"after close")  # ignored, no exception
    r["written_after_close"] = tap.device.write_batch([(PEER_MAC, MAC, ETH_IPV4, b"late")])
    factory.close()
    return r


def _scenario_frames() -> dict[str, Any]:
    return asyncio.run(_frames_main())


def _scenario_naming(home: str) -> dict[str, Any]:
    r: dict[str, Any] = {}
    factory = LinuxTapFactory()
    # Collision: the generated name is taken (here by a persistent tap nobody uses).
    subprocess.run(["ip", "tuntap", "add", "dev", NAME, "mode", "tap"], check=True, timeout=10)
    tap = factory.create(NWID, MAC, MTU, "x")
    r["collision"] = tap.device_name
    tap.close()
    # devicemap: used when no interface of that name exists.
    Path(home, "devicemap").write_text(f"{NWID:016x}=ztmapped0\n0123456789abcdef=other\n")
    mapped_factory = LinuxTapFactory(home)
    tap = mapped_factory.create(NWID, MAC, MTU, "x")
    r["devicemap"] = tap.device_name
    tap2 = mapped_factory.create(NWID, MAC, MTU, "x")  # ztmapped0 is taken now
    r["devicemap_taken"] = tap2.device_name
    tap2.close()
    tap.close()
    factory.close()
    mapped_factory.close()
    return r


def _tuntap(name: str, alias: str | None) -> None:
    subprocess.run(["ip", "tuntap", "add", "dev", name, "mode", "tap"], check=True, timeout=10)
    if alias is not None:
        subprocess.run(["ip", "link", "set", name, "alias", alias], check=True, timeout=10)


def _scenario_address_refresh() -> dict[str, Any]:
    """Addresses someone else adds show up once the listing is older than the refresh
    interval (here 0 s), read by a background thread while the caller gets the old one."""
    from ztone.osdep.linux import netlink  # noqa: PLC0415

    r: dict[str, Any] = {}
    factory = LinuxTapFactory()
    tap = factory.create(NWID, MAC, MTU, "x")
    tap.link.add_ip(TAP_V4)
    netlink.IPS_REFRESH_INTERVAL = 0.0

    def v4() -> list[str]:
        return [str(a) for a in tap.link.ips() if a.ip.version == 4]

    r["first"] = v4()
    other = "198.18.6.1/24"
    subprocess.run(["ip", "addr", "add", other, "dev", tap.device_name], check=True, timeout=10)
    r["at_once"] = v4()  # the listing it had
    r["seen"] = _wait_for(lambda: other in v4(), 5.0)
    tap.close()
    factory.close()
    return r


def _scenario_cleanup(parent_pid: int) -> dict[str, Any]:
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=10)
    dead = str(AliasMarker(NWID, gone.pid, 1))
    parent = str(AliasMarker(NWID, parent_pid, process_start_time(parent_pid) or -1))
    _tuntap("ztabcdefgh", dead)  # ztone's leftover: removed
    _tuntap("ztbcdefghi", None)  # zerotier-one's (same naming, no marker): kept
    _tuntap("other0", dead)  # not ztone naming: kept
    _tuntap("ztcdefghij", parent)  # another live ztone (the test runner): kept
    subprocess.run(  # ztone naming and marker, but not a tun device: kept
        ["ip", "link", "add", "ztdefghijk", "type", "veth", "peer", "name", "zpeer0"],
        check=True,
        timeout=10,
    )
    subprocess.run(["ip", "link", "set", "ztdefghijk", "alias", dead], check=True, timeout=10)
    factory = LinuxTapFactory()
    live = factory.create(NWID, MAC, MTU, "live")  # this process's live port: kept
    r: dict[str, Any] = {"live": live.device_name}
    r["removed"] = factory.cleanup_stale()
    r["links"] = sorted(link["ifname"] for link in _ipj("link", "show"))
    r["removed_again"] = factory.cleanup_stale()
    live.close()
    factory.close()
    return r


# --- tests ----------------------------------------------------------------------------


def test_device_addresses_routes_and_close(namespace: Namespace) -> None:
    r = namespace.call(_scenario_device_and_config, timeout=60)
    assert r["name"] == NAME
    link = r["link"]
    assert link["address"] == "02:89:e9:30:0c:27"
    assert link["mtu"] == MTU
    assert "UP" in link["flags"] and "MULTICAST" in link["flags"]
    assert link["linkinfo"]["info_kind"] == "tun"
    assert link["linkinfo"]["info_data"]["type"] == "tap"
    assert link["linkinfo"]["info_data"]["pi"] is False
    assert link["linkinfo"]["info_data"]["persist"] is False
    assert link["ifalias"].startswith(f"ztone:{NWID:016x}:")

    assert r["add_v4"] and r["add_v4_again"] and r["add_v6"]
    assert r["add_bad_prefix"] is False
    addrs = {(a["local"], a["prefixlen"]): a for a in r["addr"]["addr_info"]}
    assert ("198.18.5.1", 24) in addrs
    assert addrs[("198.18.5.1", 24)]["broadcast"] == "198.18.5.255"
    assert ("fd00:5::1", 64) in addrs
    assert "198.18.5.1/24" in r["ips"] and "fd00:5::1/64" in r["ips"]

    assert r["add_routes"] == {"gateway": True, "onlink6": True, "default": True, "metric": True}
    assert r["add_route_again"] is True
    assert r["add_route_unreachable"] is False
    by_dst = {rt["dst"]: rt for rt in r["routes4"]}
    for dst in ("198.19.7.0/24", "0.0.0.0/1", "128.0.0.0/1"):
        assert by_dst[dst]["gateway"] == "198.18.5.2"
        assert by_dst[dst]["metric"] == 5000
        assert by_dst[dst]["protocol"] == "static"
        assert by_dst[dst]["dev"] == NAME
    assert by_dst["198.19.8.0/24"]["metric"] == 77
    assert "default" not in by_dst  # the system default is never replaced
    assert "198.19.9.0/24" not in by_dst
    by_dst6 = {rt["dst"]: rt for rt in r["routes6"]}
    assert by_dst6["fd00:6::/64"]["dev"] == NAME
    assert by_dst6["fd00:6::/64"]["protocol"] == "static"

    groups = {tuple(g) for g in r["groups"]}
    assert (0x333300000001, 0) in groups  # IPv6 all-nodes, joined by the kernel
    assert (0x01005E000001, 0) in groups  # IPv4 all-hosts (IGMP)
    assert (0xFFFFFFFFFFFF, int(TAP_V4.ip)) in groups  # ARP group of 198.18.5.1
    assert (0x3333FF000001, 0) in groups  # solicited-node group of fd00:5::1

    assert r["replace"] is True
    assert r["ips_after_replace"] == ["198.18.5.1/25"]
    assert r["remove_absent_ip"] is False
    assert r["remove_absent_route"] is False
    assert r["mtu_after"] == 1400
    assert r["bad_mtu"].startswith("TapError")
    assert r["mtu_property"] == 1400

    assert r["links_after_close"] == ["lo"]
    assert r["routes4_after_close"] == []
    assert [rt for rt in r["routes6_after_close"] if rt.get("dev") != "lo"] == []
    assert r["ips_after_close"] == []
    assert namespace.link_names() == ["lo"]


def test_frames_both_ways_arp_and_ping(namespace: Namespace) -> None:
    r = namespace.call(_scenario_frames, timeout=60)
    assert r["arp_request"] == (MAC, 0xFFFFFFFFFFFF, ETH_ARP)
    assert r["echo_request"] == (MAC, PEER_MAC, ETH_IPV4)
    assert r["echo_reply"] is True, "the host stack did not accept the crafted echo reply"
    neighbours = {n["dst"]: n for n in r["neigh"]}
    assert neighbours[str(PEER_V4)]["lladdr"] == "02:89:e9:30:0c:28"
    assert r["vlan_frame"] == (MAC, PEER_MAC, True), "802.1Q frames pass through untouched"
    assert r["oversize_dropped"] == 1
    assert r["written_after_close"] == 1  # dropped: the device is closed
    assert r["batch_ends"] is True


def test_naming_collision_and_devicemap(namespace: Namespace) -> None:
    with tempfile.TemporaryDirectory() as home:
        r = namespace.call(_scenario_naming, home, timeout=60)
    assert r["collision"] == "ztmjfmfyq6"
    assert r["devicemap"] == "ztmapped0"
    # ztmapped0 exists now: back to the generated names (NAME is still taken).
    assert r["devicemap_taken"] == "ztmjfmfyq6"


def test_address_listing_refreshes_in_the_background(namespace: Namespace) -> None:
    r = namespace.call(_scenario_address_refresh, timeout=60)
    assert r["first"] == [str(TAP_V4)]
    assert r["at_once"] == [str(TAP_V4)]
    assert r["seen"] is True


def test_cleanup_stale_only_ztone_leftovers(namespace: Namespace) -> None:
    r = namespace.call(_scenario_cleanup, os.getpid(), timeout=60)
    assert r["removed"] == ["ztabcdefgh"]
    assert r["removed_again"] == []
    assert "ztabcdefgh" not in r["links"]
    for kept in ("ztbcdefghi", "other0", "ztcdefghij", "ztdefghijk", r["live"]):
        assert kept in r["links"]


def _protocol_check(tap: LinuxTap, factory: LinuxTapFactory) -> tuple[Tap, TapFactory]:
    """Never called: mypy checks that the Linux classes satisfy the protocols."""
    return tap, factory
