"""The Stack on a virtual Ethernet segment: ARP, NDP, ping, UDP, bounds, fuzz."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.errors import LocalUsageError
from ztone.netstack import arp, icmp, ndp
from ztone.netstack.ethernet import (
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ipv6_multicast_mac,
)
from ztone.netstack.ipv4 import PROTO_ICMP, build_ipv4, parse_ipv4
from ztone.netstack.ipv6 import PROTO_ICMPV6, build_ipv6, parse_ipv6
from ztone.netstack.stack import Stack, StackLimits
from ztone.netstack.udp import UdpDatagram, build_udp
from ztone.util.inet_checksum import inet_sum_pure

from .link import Segment

MAC_A, MAC_B, MAC_X = 0x32AA00000001, 0x32AA00000002, 0x32AA000000FF
IF_A4 = ipaddress.IPv4Interface("198.18.1.1/24")
IF_B4 = ipaddress.IPv4Interface("198.18.1.2/24")
IF_A6 = ipaddress.IPv6Interface("fd00:1::1/88")
IF_B6 = ipaddress.IPv6Interface("fd00:1::2/88")


def make(mac: int, *ifaces: ipaddress.IPv4Interface | ipaddress.IPv6Interface, seed: int = 0,
         limits: StackLimits | None = None) -> Stack:  # fmt: skip
    stack = Stack(mac, 2800, rand=random.Random(seed).getrandbits, limits=limits)
    for iface in ifaces:
        stack.add_address(iface)
    return stack


def pair() -> tuple[Stack, Stack, Segment]:
    a = make(MAC_A, IF_A4, IF_A6, seed=1)
    b = make(MAC_B, IF_B4, IF_B6, seed=2)
    return a, b, Segment(a, b)


def echo_request_v4(src: bytes, dst: bytes, seq: int) -> bytes:
    body = struct.pack("!HH", 77, seq) + b"payload"
    return build_ipv4(src, dst, PROTO_ICMP, icmp.build_icmp4(icmp.Icmp(8, 0, body)), ident=seq)


def test_configuration_and_multicast_macs() -> None:
    a = make(MAC_A, IF_A4, IF_A6)
    assert a.addresses() == [IF_A4, IF_A6]
    macs = a.multicast_macs()
    assert BROADCAST_MAC in macs and 0x333300000001 in macs
    assert 0x3333FF000001 in macs  # solicited-node of fd00:1::1
    a.remove_address(IF_A6)
    assert 0x3333FF000001 not in a.multicast_macs()
    with pytest.raises(LocalUsageError):
        Stack(0x010000000001, 2800, rand=random.Random().getrandbits)
    with pytest.raises(LocalUsageError):
        a.set_mtu(100)


def test_arp_request_is_answered_and_ping_v4_after_resolution() -> None:
    a, b, seg = pair()
    replies: list[bytes] = []
    seg.taps.append(lambda f: replies.append(f[3]) if f[0] == MAC_B and f[2] == 0x0800 else None)
    sock = a.udp_bind(4000)
    sock.sendto(b"hello", (IF_B4.ip, 9), seg.now)  # to a closed port: ARP, then unreachable
    seg.run(lambda: a.counters.frames_in >= 2)
    assert b.counters.arp_out == 1 and a.counters.arp_out == 1  # request, reply
    assert b.counters.udp_no_socket == 1 and b.counters.icmp_unreachable_out == 1
    # B learned A from A's request for B's address; A's ping then needs no ARP
    a.receive_frame(
        (MAC_X, MAC_A, ETHERTYPE_IPV4, echo_request_v4(IF_B4.ip.packed, IF_A4.ip.packed, 1)),
        seg.now,
    )
    out = a.take_frames()
    assert len(out) == 1 and out[0][1] == MAC_B
    reply = parse_ipv4(out[0][3])
    assert reply.src == IF_A4.ip.packed and reply.dst == IF_B4.ip.packed
    assert icmp.parse_icmp4(reply.payload) == icmp.Icmp(
        0, 0, struct.pack("!HH", 77, 1) + b"payload"
    )


def test_neighbour_solicitation_answered_and_ping_v6() -> None:
    a, b, seg = pair()
    sock_b = b.udp_bind(7)
    sock_a = a.udp_bind()
    sock_a.sendto(b"over v6", (IF_B6.ip, 7), seg.now)
    seg.run(lambda: sock_b.readable > 0)
    data, source = sock_b.recvfrom() or (b"", None)
    assert data == b"over v6" and source == (IF_A6.ip, sock_a.port)
    assert a.counters.ndp_out >= 1 and b.counters.ndp_out >= 1
    assert sock_b in b.changed()
    # echo: B answers A's ICMPv6 echo request
    body = struct.pack("!HH", 1, 2) + b"v6"
    req = icmp.build_icmp6(icmp.Icmp(128, 0, body), IF_A6.ip.packed, IF_B6.ip.packed)
    b.receive_frame(
        (
            MAC_A,
            MAC_B,
            ETHERTYPE_IPV6,
            build_ipv6(IF_A6.ip.packed, IF_B6.ip.packed, PROTO_ICMPV6, req),
        ),
        seg.now,
    )
    (frame,) = b.take_frames()
    pkt = parse_ipv6(frame[3])
    assert frame[1] == MAC_A and icmp.parse_icmp6(pkt.payload, pkt.src, pkt.dst) == icmp.Icmp(
        129, 0, body
    )


def test_udp_both_ways_and_queue_bound() -> None:
    a = make(MAC_A, IF_A4, seed=1)
    b = make(MAC_B, IF_B4, seed=2, limits=StackLimits(udp_queue=4))
    seg = Segment(a, b)
    sa, sb = a.udp_bind(1000), b.udp_bind(2000)
    for i in range(10):
        sa.sendto(b"%d" % i, (IF_B4.ip, 2000), seg.now)
    seg.run(lambda: b.counters.udp_in >= 10)
    got = [sb.recvfrom() for _ in range(5)]
    assert [g[0] for g in got if g] == [b"0", b"1", b"2", b"3"] and got[4] is None
    assert sb.dropped == 6 and b.counters.udp_queue_full == 6
    sb.sendto(b"back", (IF_A4.ip, 1000), seg.now)
    seg.run(lambda: sa.readable > 0)
    assert sa.recvfrom() == (b"back", (IF_B4.ip, 2000))
    sb.close()
    with pytest.raises(LocalUsageError):
        sb.sendto(b"x", (IF_A4.ip, 1000), seg.now)


def test_udp_bind_and_send_errors() -> None:
    a = make(MAC_A, IF_A4)
    s = a.udp_bind(53)
    with pytest.raises(LocalUsageError):
        a.udp_bind(53)
    with pytest.raises(LocalUsageError):
        a.udp_bind(54, address=ipaddress.IPv4Address("198.18.9.9"))
    with pytest.raises(LocalUsageError):
        s.sendto(b"x", (ipaddress.IPv4Address("203.0.113.1"), 53), 0.0)  # no route
    with pytest.raises(LocalUsageError):
        s.sendto(b"x", (IF_B6.ip, 53), 0.0)  # no IPv6 address
    with pytest.raises(LocalUsageError):
        s.sendto(bytes(2800), (IF_B4.ip, 53), 0.0)  # larger than the MTU
    assert 49152 <= a.udp_bind().port <= 65535


def test_gateway_route_resolves_the_gateway() -> None:
    a = make(MAC_A, IF_A4)
    a.add_route(ipaddress.IPv4Network("198.19.0.0/16"), IF_B4.ip)
    s = a.udp_bind(1)
    s.sendto(b"x", (ipaddress.IPv4Address("198.19.3.4"), 5), 0.0)
    (frame,) = a.take_frames()
    request = arp.parse_arp(frame[3])
    assert frame[1] == BROADCAST_MAC and request.target_ip == IF_B4.ip.packed
    a.receive_frame((MAC_B, MAC_A, ETHERTYPE_ARP, arp.build_arp(
        arp.Arp(arp.REPLY, MAC_B, IF_B4.ip.packed, MAC_A, IF_A4.ip.packed))), 0.1)  # fmt: skip
    (frame,) = a.take_frames()
    assert frame[1] == MAC_B and parse_ipv4(frame[3]).dst == bytes([198, 19, 3, 4])


def test_unanswered_resolution_gives_up_and_drops() -> None:
    a = make(MAC_A, IF_A4, limits=StackLimits(pending_per_neighbour=3))
    s = a.udp_bind(1)
    for _ in range(5):
        s.sendto(b"x", (IF_B4.ip, 5), 0.0)
    requests = len(a.take_frames())
    now = 0.0
    for _ in range(10):
        deadline = a.deadline()
        if deadline is None:
            break
        now = deadline
        a.poll(now)
        requests += len(a.take_frames())
    assert requests == 3 and a.deadline() is None
    assert a.counters.unresolved == 5  # 2 over the hold bound, then 3 when it gave up


def test_neighbour_cache_is_bounded_under_an_arp_flood() -> None:
    a = make(MAC_A, IF_A4, limits=StackLimits(neighbours=64))
    rng = random.Random(5)
    for i in range(10_000):
        mac = 0x020000000000 | rng.getrandbits(40)
        req = arp.Arp(arp.REQUEST, mac, rng.getrandbits(32).to_bytes(4, "big"), 0, IF_A4.ip.packed)
        a.receive_frame((mac, BROADCAST_MAC, ETHERTYPE_ARP, arp.build_arp(req)), float(i))
    assert len(a.take_frames()) == 10_000  # every request answered
    ping = echo_request_v4(IF_B4.ip.packed, IF_A4.ip.packed, 3)
    a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV4, ping), 10_000.0)
    (frame,) = a.take_frames()  # B was never seen: an ARP request, the reply is held
    assert frame[2] == ETHERTYPE_ARP
    assert a.neighbour_entries == 64


def test_frames_not_for_us_are_counted() -> None:
    a = make(MAC_A, IF_A4)
    ping = echo_request_v4(IF_B4.ip.packed, IF_A4.ip.packed, 3)
    a.receive_frame((MAC_B, MAC_X, ETHERTYPE_IPV4, ping), 0.0)
    a.receive_frame(
        (MAC_B, MAC_A, ETHERTYPE_IPV4, echo_request_v4(IF_A4.ip.packed, IF_B4.ip.packed, 1)), 0.0
    )
    a.receive_frame((MAC_B, MAC_A, 0x88B5, b"x"), 0.0)
    a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV4, ping[:-1]), 0.0)
    c = a.counters
    assert (c.not_for_us, c.unknown_ethertype, c.malformed) == (2, 1, 1)
    assert a.take_frames() == []


def test_ns_from_wrong_hop_limit_is_ignored() -> None:
    a = make(MAC_A, IF_A6)
    target = IF_A6.ip.packed
    body = ndp.neighbor_body(ndp.NeighborMessage(135, 0, target, MAC_B))
    dst = ndp.solicited_node(target)
    msg = icmp.build_icmp6(icmp.Icmp(135, 0, body), IF_B6.ip.packed, dst)
    for hops, answered in ((64, False), (255, True)):
        pkt = build_ipv6(IF_B6.ip.packed, dst, PROTO_ICMPV6, msg, hop_limit=hops)
        a.receive_frame((MAC_B, ipv6_multicast_mac(dst), ETHERTYPE_IPV6, pkt), 0.0)
        assert bool(a.take_frames()) is answered


FRAME_KINDS = st.sampled_from([ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_ARP, 0x1234])


@settings(max_examples=400)
@given(st.lists(st.tuples(FRAME_KINDS, st.binary(max_size=200), st.booleans()), max_size=8))
def test_receive_frame_never_raises(frames: list[tuple[int, bytes, bool]]) -> None:
    a = make(MAC_A, IF_A4, IF_A6)
    a.udp_bind(53)
    for i, (ethertype, payload, broadcast) in enumerate(frames):
        a.receive_frame(
            (MAC_B, BROADCAST_MAC if broadcast else MAC_A, ethertype, payload), float(i)
        )
        a.poll(float(i))
    a.take_frames()


@settings(max_examples=200)
@given(st.binary(max_size=64), st.integers(0, 255), st.sampled_from([4, 6]))
def test_well_formed_ip_with_random_payload_never_raises(body: bytes, proto: int, v: int) -> None:
    a = make(MAC_A, IF_A4, IF_A6)
    a.udp_bind(53)
    if v == 4:
        pkt = build_ipv4(IF_B4.ip.packed, IF_A4.ip.packed, proto, body, ident=1)
        a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV4, pkt), 0.0)
    else:
        pkt = build_ipv6(IF_B6.ip.packed, IF_A6.ip.packed, proto, body)
        a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV6, pkt), 0.0)
    # a valid UDP datagram with random contents as well
    u = build_udp(UdpDatagram(9, 53, body), IF_B4.ip.packed, IF_A4.ip.packed)
    a.receive_frame(
        (MAC_B, MAC_A, ETHERTYPE_IPV4, build_ipv4(IF_B4.ip.packed, IF_A4.ip.packed, 17, u, 2)), 0.0
    )
    a.take_frames()


def test_6plane_addresses_on_an_on_link_route() -> None:
    """ZeroTier's 6plane: each member holds its own /80 of the network's /40, which the
    network config routes on-link; NDP resolves across the /80s."""
    a6 = ipaddress.IPv6Interface("fcf9:4c4e:6d00:0000:0001::1/80")
    b6 = ipaddress.IPv6Interface("fcf9:4c4e:6d00:0000:0002::1/80")
    plane = ipaddress.IPv6Network("fcf9:4c4e:6d00::/40")
    a, b = make(MAC_A, a6, seed=1), make(MAC_B, b6, seed=2)
    with pytest.raises(LocalUsageError):
        a.udp_bind().sendto(b"x", (b6.ip, 9), 0.0)  # no route yet
    a.add_route(plane, None)
    b.add_route(plane, None)
    seg = Segment(a, b)
    sa, sb = a.udp_bind(), b.udp_bind(9)
    sa.sendto(b"6plane", (b6.ip, 9), seg.now)
    seg.run(lambda: sb.readable > 0)
    assert sb.recvfrom() == (b"6plane", (a6.ip, sa.port))
    assert b.neighbour_entries == 1 and a.neighbour_entries == 1


def ipv4_fragment(payload: bytes, ident: int, offset: int, more: bool, proto: int = 17) -> bytes:
    """An IPv4 fragment (B -> A) carrying ``payload`` at byte ``offset``."""
    pkt = bytearray(build_ipv4(IF_B4.ip.packed, IF_A4.ip.packed, proto, payload, ident=ident))
    pkt[6:8] = ((0x2000 if more else 0) | offset // 8).to_bytes(2, "big")
    pkt[10:12] = b"\0\0"
    pkt[10:12] = (~inet_sum_pure(bytes(pkt[:20])) & 0xFFFF).to_bytes(2, "big")
    return bytes(pkt)


def ipv6_fragment(payload: bytes, ident: int, offset: int, more: bool, nh: int = 17) -> bytes:
    header = struct.pack("!BBHI", nh, 0, offset | int(more), ident)
    return build_ipv6(IF_B6.ip.packed, IF_A6.ip.packed, 44, header + payload)


def test_fragments_are_reassembled_in_any_order() -> None:
    a = make(MAC_A, IF_A4, IF_A6)
    sock = a.udp_bind(53)
    body = bytes(range(256)) * 24  # 6144 bytes: more than one 2800-byte MTU
    u4 = build_udp(UdpDatagram(9, 53, body), IF_B4.ip.packed, IF_A4.ip.packed)
    u6 = build_udp(UdpDatagram(9, 53, body), IF_B6.ip.packed, IF_A6.ip.packed)
    cuts = [(0, 2400), (2400, 4800), (4800, len(u4))]
    for start, end in reversed(cuts):  # last fragment first
        more = end < len(u4)
        a.receive_frame(
            (MAC_B, MAC_A, ETHERTYPE_IPV4, ipv4_fragment(u4[start:end], 7, start, more)), 0.0
        )
        a.receive_frame(
            (MAC_B, MAC_A, ETHERTYPE_IPV6, ipv6_fragment(u6[start:end], 7, start, more)), 0.0
        )
    assert sock.recvfrom() == (body, (IF_B4.ip, 9))
    assert sock.recvfrom() == (body, (IF_B6.ip, 9))
    c = a.counters
    assert (c.fragments, c.reassembled, c.reassembly_dropped) == (6, 2, 0)


def test_incomplete_and_overlapping_fragments_are_dropped() -> None:
    a = make(MAC_A, IF_A4, IF_A6)
    sock = a.udp_bind(53)
    u = build_udp(UdpDatagram(9, 53, bytes(3000)), IF_B4.ip.packed, IF_A4.ip.packed)
    a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV4, ipv4_fragment(u[:1600], 1, 0, True)), 0.1)
    assert a.deadline() == 0.1 + 10.0
    a.poll(5.0)
    assert a.counters.reassembly_dropped == 0
    a.poll(0.1 + 10.0)  # the reassembly timeout, exactly at the deadline
    assert a.counters.reassembly_dropped == 1 and a.deadline() is None
    a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV4, ipv4_fragment(u[:1600], 2, 0, True)), 11.0)
    a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV4, ipv4_fragment(u[800:], 2, 800, False)), 11.0)
    assert a.counters.reassembly_dropped == 2 and sock.readable == 0


def test_fragment_flood_stays_within_the_reassembly_bounds() -> None:
    limits = StackLimits(reassembly_datagrams=8, reassembly_bytes=20_000)
    a = make(MAC_A, IF_A4, limits=limits)
    rng = random.Random(3)
    for i in range(10_000):
        frag = ipv4_fragment(
            rng.randbytes(1600), rng.getrandbits(16), 8 * rng.getrandbits(10), True
        )
        a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV4, frag), i * 1e-3)
        assert a.reassembly_pending <= 8 and a.reassembly_buffered <= 20_000
    assert a.counters.fragments == 10_000 and a.counters.reassembled == 0


@settings(max_examples=300)
@given(
    st.integers(0, 255),
    st.binary(max_size=80),
    st.sampled_from([255, 64]),
    st.sampled_from(["unicast", "solicited", "all-nodes"]),
)
def test_valid_icmpv6_of_any_kind_never_raises(
    kind: int, body: bytes, hops: int, where: str
) -> None:
    a = make(MAC_A, IF_A6)
    src = IF_B6.ip.packed
    dst = {
        "unicast": IF_A6.ip.packed,
        "solicited": ndp.solicited_node(IF_A6.ip.packed),
        "all-nodes": ipaddress.IPv6Address("ff02::1").packed,
    }[where]
    if kind in (135, 136) and len(body) >= 20 and body[4] != 0xFF:
        body = body[:4] + IF_A6.ip.packed + body[20:]  # often about our address
    msg = icmp.build_icmp6(icmp.Icmp(kind, 0, body), src, dst)
    mac = MAC_A if where == "unicast" else ipv6_multicast_mac(dst)
    a.receive_frame((MAC_B, mac, ETHERTYPE_IPV6, build_ipv6(src, dst, 58, msg, hops)), 0.0)
    a.poll(0.0)
    a.take_frames()


@settings(max_examples=300)
@given(st.integers(0, 3), st.integers(0, 2**48 - 1), st.binary(min_size=4, max_size=4),
       st.booleans())  # fmt: skip
def test_valid_arp_of_any_content_never_raises(
    op: int, mac: int, sender: bytes, ours: bool
) -> None:
    a = make(MAC_A, IF_A4)
    target = IF_A4.ip.packed if ours else IF_B4.ip.packed
    payload = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac.to_bytes(6, "big") + sender
    payload += bytes(6) + target
    a.receive_frame((mac, BROADCAST_MAC, ETHERTYPE_ARP, payload), 0.0)
    a.poll(0.0)
    assert a.neighbour_entries <= 1
    a.take_frames()


@pytest.mark.parametrize("start", [0.0, 0.1, 1e6 + 0.3])
def test_learned_neighbour_is_refreshed_then_forgotten(start: float) -> None:
    """Also at times where ``start + ttl - start != ttl`` in floating point: each poll at
    the deadline must do what is due (no endless polls at the same time)."""
    a = make(MAC_A, IF_A4, limits=StackLimits(neighbour_ttl=30.0))
    request = arp.Arp(arp.REQUEST, MAC_B, IF_B4.ip.packed, 0, IF_A4.ip.packed)
    a.receive_frame((MAC_B, BROADCAST_MAC, ETHERTYPE_ARP, arp.build_arp(request)), start)
    a.take_frames()
    assert a.neighbour_entries == 1 and a.deadline() == start + 30.0
    probes = []
    now = start
    for _ in range(10):
        deadline = a.deadline()
        if deadline is None:
            break
        now = deadline
        a.poll(now)
        probes += [arp.parse_arp(f[3]) for f in a.take_frames()]
    # three unicast probes to B's MAC, no answer: forgotten
    assert [p.target_ip for p in probes] == [IF_B4.ip.packed] * 3
    assert a.neighbour_entries == 0 and now == start + 30.0 + 3.0
