"""VL2 on the simulator: a root, a controller and members of one private network.

The controller runs the real controller core (``ztone.controller.core``) over an
in-memory store. Frames enter as a tap would hand them to the core
(``on_tap_frame``) and leave as ``DeliverFrame`` events the test collects.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ztone.controller.core import answer_request, make_revocation
from ztone.controller.objects import apply_member_post, apply_network_post, init_network
from ztone.crypto import c25519
from ztone.crypto.backend import DEFAULT, Backend
from ztone.node.actions import ControllerAnswer
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.mac import BROADCAST, MAC

from .network import SimNetwork, SimNode, make_planet, vector_identities

IDS = vector_identities()
ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD


@dataclass
class MemoryController:
    identity: Identity
    net: SimNetwork
    networks: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    authorized_at: dict[tuple[int, int], int] = field(default_factory=dict)

    def request(self, now: int, nwid: int, identity: Identity,
                metadata: Dictionary) -> ControllerAnswer:  # fmt: skip
        address = int(identity.address)
        answer = answer_request(
            now=now, controller=self.identity, nwid=nwid, network=self.networks.get(nwid),
            member=self.members.get((nwid, address)), requester=identity, metadata=metadata,
            members=[m for (n, _), m in self.members.items() if n == nwid],
            rand64=lambda: self.net.rng.getrandbits(64),
        )  # fmt: skip
        if answer.member is not None:
            self.members[(nwid, address)] = answer.member
        return ControllerAnswer(answer.config, answer.error)

    def rate_gate(self, nwid: int, member: int, now: int) -> bool:
        return True

    def recently_authorized(self, nwid: int, member: int, now: int) -> bool:
        t = self.authorized_at.get((nwid, member))
        return t is not None and now - t < 180_000

    def note_authorized(self, nwid: int, member: int, now: int) -> None:
        self.authorized_at[(nwid, member)] = now

    def authorize(self, nwid: int, address: int, authorized: bool, now: int) -> None:
        current = self.members[(nwid, address)]
        self.members[(nwid, address)] = apply_member_post(current, {"authorized": authorized}, now)


def _eth_payload_ipv4(src: str, dst: str, data: bytes) -> bytes:
    header = bytearray(20)
    header[0] = 0x45
    header[2:4] = (20 + len(data)).to_bytes(2, "big")
    header[8] = 64
    header[9] = 17
    header[12:16] = ipaddress.IPv4Address(src).packed
    header[16:20] = ipaddress.IPv4Address(dst).packed
    return bytes(header) + data


def _arp_request(sender_mac: int, sender_ip: str, target_ip: str) -> bytes:
    return (
        b"\x00\x01\x08\x00\x06\x04\x00\x01"
        + sender_mac.to_bytes(6, "big")
        + ipaddress.IPv4Address(sender_ip).packed
        + bytes(6)
        + ipaddress.IPv4Address(target_ip).packed
    )


def build(
    loss: float = 0.0,
    seed: int = 3,
    ctmd: int | None = None,
    crypto: Backend = DEFAULT,
    fast_path: bool | None = None,
) -> tuple[SimNetwork, MemoryController, int]:
    net = SimNetwork(
        seed=seed, loss=loss, max_delay=20 if loss else 5, crypto=crypto, fast_path=fast_path
    )
    signing = c25519.generate(lambda n: bytes([9]) * n)
    planet = make_planet([(IDS[0], "198.18.0.10")], signing)
    net.add_node("root", IDS[0], "198.18.0.10", planet)
    ctrl = net.add_node("ctrl", IDS[1], "198.18.0.11", planet)
    controller = MemoryController(IDS[1], net)
    ctrl.node.controller = controller
    ctrl.controller = controller  # the host side: answers ConfigRequested
    nwid = (int(IDS[1].address) << 24) | 0x000042
    body: dict[str, Any] = {
        "name": "simnet",
        "private": True,
        "v4AssignMode": {"zt": True},
        "v6AssignMode": {"rfc4193": True, "6plane": False, "zt": False},
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": "198.19.0.0/24", "via": None}],
    }
    network = apply_network_post(init_network(nwid, net.now), body, net.now)
    if ctmd is not None:  # not settable through the API upstream either; read by B.2 step 11
        network["certificateTimeoutWindowSize"] = ctmd
    controller.networks[nwid] = network
    net.add_node("a", IDS[2], "198.18.0.12", planet)
    net.add_node("b", IDS[3], "198.18.0.13", planet)
    return net, controller, nwid


def _status(sim: SimNode, nwid: int) -> str:
    views = [v for v in sim.node.network_views() if v.nwid == nwid]
    return views[0].status if views else "-"


def _ipv4(sim: SimNode, nwid: int) -> str:
    view = next(v for v in sim.node.network_views() if v.nwid == nwid)
    return next(str(a.ip) for a in view.assigned_addresses if a.ip.version == 4)


def join_and_authorize(net: SimNetwork, controller: MemoryController, nwid: int) -> None:
    a, b = net.nodes["a"], net.nodes["b"]
    assert net.run(60_000, lambda: a.node.online and b.node.online)
    for sim in (a, b):
        sim.node.join(net.now, nwid)
        net._drain(sim)
    assert net.run(30_000, lambda: _status(a, nwid) == "ACCESS_DENIED" == _status(b, nwid))
    for sim in (a, b):
        controller.authorize(nwid, int(sim.identity.address), True, net.now)
    assert net.run(30_000, lambda: _status(a, nwid) == "OK" == _status(b, nwid))


def _subscribe_arp_and_v6(sim: SimNode, net: SimNetwork, nwid: int) -> None:
    ip = ipaddress.IPv4Address(_ipv4(sim, nwid))
    sim.node.multicast_subscribe(net.now, nwid, BROADCAST, int(ip))
    sim.node.multicast_subscribe(net.now, nwid, 0x333300000001, 0)
    net._drain(sim)


def test_members_get_configs_and_exchange_frames() -> None:
    net, controller, nwid = build()
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    va = next(v for v in a.node.network_views() if v.nwid == nwid)
    assert va.name == "simnet" and va.type == "PRIVATE" and va.mtu == 2800
    vb = next(v for v in b.node.network_views() if v.nwid == nwid)
    # Worked out by hand (PROTOCOL-NETWORK-SERVICE A.5.1, B.3). Network 2d299c6c91000042;
    # pool 198.19.0.10-.250 has len 240. a = 1e26eb3bf1: 0x26eb3bf1 = 652950513,
    # % 240 = 33 -> .43; b = b5f5a2c9ae: 0xf5a2c9ae = 4121086382, % 240 = 62 -> .72.
    # rfc4193 = fd | nwid | 99 93 | address.
    assert sorted(str(x) for x in va.assigned_addresses) == [
        "198.19.0.43/24",
        "fd2d:299c:6c91:0:4299:931e:26eb:3bf1/88",
    ]
    assert sorted(str(x) for x in vb.assigned_addresses) == [
        "198.19.0.72/24",
        "fd2d:299c:6c91:0:4299:93b5:f5a2:c9ae/88",
    ]
    assert [str(r.target) for r in va.routes] == ["198.19.0.0/24"]
    a_ip, b_ip = _ipv4(a, nwid), _ipv4(b, nwid)
    assert (a_ip, b_ip) == ("198.19.0.43", "198.19.0.72")
    for sim in (a, b):
        _subscribe_arp_and_v6(sim, net, nwid)
    net.run(2_000)
    a_mac, b_mac = (
        MAC.from_address(int(a.identity.address), nwid),
        MAC.from_address(int(b.identity.address), nwid),
    )
    # ARP request by broadcast with ADI = target IP: reaches b (and not via plain broadcast)
    a.node.on_tap_frame(net.now, nwid, int(a_mac), BROADCAST, ETH_ARP,
                        _arp_request(int(a_mac), a_ip, b_ip))  # fmt: skip
    net._drain(a)
    assert net.run(10_000, lambda: any(f.ethertype == ETH_ARP for f in b.delivered))
    arp = next(f for f in b.delivered if f.ethertype == ETH_ARP)
    assert arp.source == int(a_mac) and arp.destination == BROADCAST
    # unicast IPv4 both ways
    a.node.on_tap_frame(net.now, nwid, int(a_mac), int(b_mac), ETH_IPV4,
                        _eth_payload_ipv4(a_ip, b_ip, b"ping"))  # fmt: skip
    net._drain(a)
    assert net.run(10_000, lambda: any(f.payload.endswith(b"ping") for f in b.delivered))
    b.node.on_tap_frame(net.now, nwid, int(b_mac), int(a_mac), ETH_IPV4,
                        _eth_payload_ipv4(b_ip, a_ip, b"pong"))  # fmt: skip
    net._drain(b)
    assert net.run(10_000, lambda: any(f.payload.endswith(b"pong") for f in a.delivered))
    got = next(f for f in a.delivered if f.payload.endswith(b"pong"))
    assert got.source == int(b_mac) and got.destination == int(a_mac)
    # IPv6 multicast to ff02::1 (33:33:00:00:00:01): gathered and replicated to b
    a.node.on_tap_frame(net.now, nwid, int(a_mac), 0x333300000001, ETH_IPV6,
                        bytes(40) + b"v6 multicast")  # fmt: skip
    net._drain(a)
    assert net.run(10_000, lambda: any(f.payload.endswith(b"v6 multicast") for f in b.delivered))
    # NDP emulation: a neighbor solicitation for b's rfc4193 address is answered locally
    b6 = next(x for x in vb.assigned_addresses if x.ip.version == 6).ip.packed
    ns = bytearray(64)
    ns[0], ns[6], ns[40] = 0x60, 58, 135
    ns[48:64] = b6
    a.node.on_tap_frame(net.now, nwid, int(a_mac), 0x3333FF000000 | int.from_bytes(b6[13:], "big"),
                        ETH_IPV6, bytes(ns))  # fmt: skip
    net._drain(a)
    na = [f for f in a.delivered if f.ethertype == ETH_IPV6 and f.payload[40] == 136]
    assert na and na[0].source == int(b_mac) and na[0].payload[48:64] == b6
    # Its ICMPv6 checksum is right (RFC 4443 2.3): the one's-complement sum of the
    # pseudo-header (source, destination, length, next header 58) and the message,
    # checksum included, is 0xffff.
    ip6 = na[0].payload
    length = int.from_bytes(ip6[4:6], "big")
    message = ip6[40 : 40 + length]
    words = ip6[8:40] + length.to_bytes(4, "big") + b"\x00\x00\x00\x3a" + message
    words += b"\x00" * (len(words) % 2)
    total = sum(int.from_bytes(words[i : i + 2], "big") for i in range(0, len(words), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    assert ip6[6] == 58 and total == 0xFFFF


def test_frames_flow_with_loss() -> None:
    net, controller, nwid = build(loss=0.15, seed=5)
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    a_mac = MAC.from_address(int(a.identity.address), nwid)
    b_mac = MAC.from_address(int(b.identity.address), nwid)
    a_ip, b_ip = _ipv4(a, nwid), _ipv4(b, nwid)
    for i in range(40):
        a.node.on_tap_frame(net.now, nwid, int(a_mac), int(b_mac), ETH_IPV4,
                            _eth_payload_ipv4(a_ip, b_ip, b"n%d" % i))  # fmt: skip
        net._drain(a)
        net.run(500)
    got = {f.payload[20:] for f in b.delivered if f.ethertype == ETH_IPV4}
    assert len(got) >= 25, len(got)  # most of 40 datagrams through 15% loss each way


def test_revoked_member_stops_receiving() -> None:
    net, controller, nwid = build()
    join_and_authorize(net, controller, nwid)
    a, b, ctrl = net.nodes["a"], net.nodes["b"], net.nodes["ctrl"]
    a_mac = MAC.from_address(int(a.identity.address), nwid)
    b_mac = MAC.from_address(int(b.identity.address), nwid)
    a_ip, b_ip = _ipv4(a, nwid), _ipv4(b, nwid)

    def send_b_to_a(tag: bytes) -> None:
        b.node.on_tap_frame(net.now, nwid, int(b_mac), int(a_mac), ETH_IPV4,
                            _eth_payload_ipv4(b_ip, a_ip, tag))  # fmt: skip
        net._drain(b)

    send_b_to_a(b"before")
    assert net.run(10_000, lambda: any(f.payload.endswith(b"before") for f in a.delivered))
    controller.authorize(nwid, int(b.identity.address), False, net.now)
    revocation = make_revocation(IDS[1], nwid, int(b.identity.address), net.now, 7)
    ctrl.node.send_revocation(net.now, [int(a.identity.address), int(b.identity.address)],
                              revocation)  # fmt: skip
    net._drain(ctrl)
    net.run(5_000)
    send_b_to_a(b"after")
    net.run(20_000)
    assert not any(f.payload.endswith(b"after") for f in a.delivered)
    assert a.node.counters["rx_frame_not_member"] > 0


def test_expired_com_stops_frames() -> None:
    net, controller, nwid = build(ctmd=300_000)
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    a_mac = MAC.from_address(int(a.identity.address), nwid)
    b_mac = MAC.from_address(int(b.identity.address), nwid)
    a_ip, b_ip = _ipv4(a, nwid), _ipv4(b, nwid)
    # b is deauthorized without a revocation: its COM just ages while a's is renewed
    controller.authorize(nwid, int(b.identity.address), False, net.now)
    net.run(420_000)
    assert _status(b, nwid) == "ACCESS_DENIED"
    b.node.on_tap_frame(net.now, nwid, int(b_mac), int(a_mac), ETH_IPV4,
                        _eth_payload_ipv4(b_ip, a_ip, b"stale"))  # fmt: skip
    net._drain(b)
    net.run(20_000)
    assert not any(f.payload.endswith(b"stale") for f in a.delivered)
