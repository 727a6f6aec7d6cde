"""The rules evaluator (PROTOCOL-NETWORK-SERVICE A.4.3-A.4.5): matches, actions,
capabilities, verdicts, and a differential test against a deliberately naive evaluator.
The rule table's wire codec is tested in ``tests/node/wire/test_rules.py``."""

from __future__ import annotations

import ipaddress
import itertools
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ztone.node.vl2.filter import (
    FilterAction,
    FilterDecision,
    FilterVerdict,
    FrameContext,
    Verdict,
    filter_frame,
    filter_with_capabilities,
    ndp_emulation_owns,
)
from ztone.node.wire.frame_fields import ipv6_payload
from ztone.node.wire.rules import (
    CHAR_BROADCAST,
    CHAR_INBOUND,
    CHAR_MULTICAST,
    CHAR_SENDER_IP_AUTHENTICATED,
    CHAR_SENDER_MAC_AUTHENTICATED,
    CHAR_TCP_ACK,
    CHAR_TCP_FIN,
    CHAR_TCP_NS,
    CHAR_TCP_SYN,
    DEFAULT_RULES,
    Rule,
    RuleType,
    adhoc_port_range_rules,
    parse_rules,
    serialize_rules,
)

T = RuleType
T_ = TypeVar("T_")
V = FilterVerdict
M40 = (1 << 40) - 1
M64 = (1 << 64) - 1

NWID = 0x1FAD486CAFE468E2
ME = 0x4B3BACDDB4
PEER = 0xA49ECF6441
OTHER = 0x1122334455
MAC_ME = 0x32AABBCCDDEE
MAC_PEER = 0x32112233445A
BCAST = 0xFFFFFFFFFFFF
MCAST = 0x333300000001


# ------------------------------------------------------------------ frame builders


def ipv4(
    proto: int,
    l4: bytes,
    src: str = "10.1.2.3",
    dst: str = "10.9.8.7",
    tos: int = 0,
    options: bytes = b"",
) -> bytes:
    ihl = 5 + len(options) // 4
    header = struct.pack(
        ">BBHHHBBH4s4s",
        0x40 | ihl,
        tos,
        20 + len(options) + len(l4),
        0,
        0,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + options + l4


def ipv6(
    next_header: int,
    rest: bytes,
    src: str = "fd00::1",
    dst: str = "fd00::2",
    traffic_class: int = 0,
) -> bytes:
    first = (6 << 28) | (traffic_class << 20)
    return (
        struct.pack(">IHBB", first, len(rest), next_header, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + rest
    )


def ext_header(next_header: int, units: int = 0) -> bytes:
    """An IPv6 extension header of (units + 1) * 8 bytes."""
    return bytes((next_header, units)) + bytes(6 + 8 * units)


def tcp(sport: int = 40000, dport: int = 80, flags: int = CHAR_TCP_SYN, ns: bool = False) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 0, (5 << 4) | int(ns), flags, 1024, 0, 0)


def udp(sport: int = 5000, dport: int = 53, body: bytes = b"hello") -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(body), 0) + body


def icmp(icmp_type: int = 8, code: int = 0) -> bytes:
    return bytes((icmp_type, code, 0, 0)) + b"\x00\x01\x00\x01" + b"ping"


def arp(sender_ip: str = "10.1.2.3", target_ip: str = "10.9.8.7") -> bytes:
    return (
        struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1)
        + MAC_ME.to_bytes(6, "big")
        + ipaddress.IPv4Address(sender_ip).packed
        + bytes(6)
        + ipaddress.IPv4Address(target_ip).packed
    )


def ndp(icmp_type: int, target: str = "fd00::99", src: str = "fe80::1") -> bytes:
    body = bytes((icmp_type, 0, 0, 0)) + bytes(4) + ipaddress.IPv6Address(target).packed
    return ipv6(58, body, src=src, dst="ff02::1:ff00:99")


TCP4 = ipv4(6, tcp())
UDP4 = ipv4(17, udp())
ICMP4 = ipv4(1, icmp())
TCP6 = ipv6(6, tcp(dport=443))
UDP6 = ipv6(17, udp(dport=53))
ICMP6 = ipv6(58, icmp(128))
ARP = arp()


def ctx(
    payload: bytes = TCP4,
    ethertype: int = 0x0800,
    *,
    inbound: bool = False,
    peer: int = PEER,
    mac_source: int = MAC_ME,
    mac_dest: int = MAC_PEER,
    **kw: object,
) -> FrameContext:
    return FrameContext(
        network_id=NWID,
        our_address=ME,
        peer=peer,
        inbound=inbound,
        mac_source=mac_source,
        mac_dest=mac_dest,
        ethertype=ethertype,
        payload=payload,
        **kw,  # type: ignore[arg-type]
    )


def no_random() -> int:
    raise AssertionError("the PRNG must not be consulted")


def fixed(*values: int) -> Callable[[], int]:
    it = iter(values)
    return lambda: next(it)


def run(rules: Sequence[Rule], c: FrameContext, prng: Callable[[], int] = no_random) -> V:
    return filter_frame(rules, c, prng).verdict


R = Rule.make
ACCEPT = R(T.ACTION_ACCEPT)
DROP = R(T.ACTION_DROP)


# -------------------------------------------------------------------- match table


@dataclass(frozen=True)
class Case:
    name: str
    rule: Rule
    context: FrameContext
    matches: bool
    hard: bool = False  # the result ignores the NOT bit
    prng: tuple[int, ...] = ()


V4_ET = 0x0800
V6_ET = 0x86DD
ARP_ET = 0x0806

MATCH_CASES: list[Case] = [
    # ZeroTier addresses (outbound: source = me, dest = peer; inbound: the reverse)
    Case("zt-src", R(T.MATCH_SOURCE_ZEROTIER_ADDRESS, zt=ME), ctx(), True),
    Case("zt-src-no", R(T.MATCH_SOURCE_ZEROTIER_ADDRESS, zt=PEER), ctx(), False),
    Case("zt-src-in", R(T.MATCH_SOURCE_ZEROTIER_ADDRESS, zt=PEER), ctx(inbound=True), True),
    Case("zt-dst", R(T.MATCH_DEST_ZEROTIER_ADDRESS, zt=PEER), ctx(), True),
    Case("zt-dst-no", R(T.MATCH_DEST_ZEROTIER_ADDRESS, zt=OTHER), ctx(), False),
    Case("zt-dst-null", R(T.MATCH_DEST_ZEROTIER_ADDRESS, zt=0), ctx(peer=0), True),
    # VLAN
    Case("vlan-id", R(T.MATCH_VLAN_ID, vlan_id=0), ctx(), True),
    Case("vlan-id-no", R(T.MATCH_VLAN_ID, vlan_id=5), ctx(), False),
    Case("vlan-id-set", R(T.MATCH_VLAN_ID, vlan_id=5), ctx(vlan_id=5), True),
    Case("vlan-pcp", R(T.MATCH_VLAN_PCP, vlan_pcp=0), ctx(vlan_pcp=3), True),
    Case("vlan-pcp-no", R(T.MATCH_VLAN_PCP, vlan_pcp=3), ctx(vlan_pcp=3), False),
    Case("vlan-dei", R(T.MATCH_VLAN_DEI, vlan_dei=0), ctx(), True),
    Case("vlan-dei-no", R(T.MATCH_VLAN_DEI, vlan_dei=1), ctx(vlan_dei=1), False),
    # MACs
    Case("mac-src", R(T.MATCH_MAC_SOURCE, mac=MAC_ME), ctx(), True),
    Case("mac-src-no", R(T.MATCH_MAC_SOURCE, mac=MAC_PEER), ctx(), False),
    Case("mac-dst", R(T.MATCH_MAC_DEST, mac=MAC_PEER), ctx(), True),
    Case("mac-dst-no", R(T.MATCH_MAC_DEST, mac=BCAST), ctx(), False),
    # IPv4 addresses
    Case("v4-src", R(T.MATCH_IPV4_SOURCE, ip=bytes((10, 0, 0, 0)), ip_bits=8), ctx(), True),
    Case(
        "v4-src-no",
        R(T.MATCH_IPV4_SOURCE, ip=bytes((192, 168, 0, 0)), ip_bits=16),
        ctx(),
        False,
    ),
    Case("v4-src-exact", R(T.MATCH_IPV4_SOURCE, ip=bytes((10, 1, 2, 3)), ip_bits=32), ctx(), True),
    Case("v4-src-any", R(T.MATCH_IPV4_SOURCE, ip=bytes((1, 2, 3, 4)), ip_bits=0), ctx(), True),
    Case("v4-dst", R(T.MATCH_IPV4_DEST, ip=bytes((10, 9, 8, 0)), ip_bits=24), ctx(), True),
    Case("v4-dst-no", R(T.MATCH_IPV4_DEST, ip=bytes((10, 1, 2, 3)), ip_bits=32), ctx(), False),
    Case(
        "v4-on-v6",
        R(T.MATCH_IPV4_SOURCE, ip=bytes(4), ip_bits=0),
        ctx(TCP6, V6_ET),
        False,
        hard=True,
    ),
    Case(
        "v4-short",
        R(T.MATCH_IPV4_DEST, ip=bytes(4), ip_bits=0),
        ctx(TCP4[:19]),
        False,
        hard=True,
    ),
    # IPv6 addresses
    Case(
        "v6-src",
        R(T.MATCH_IPV6_SOURCE, ip=ipaddress.IPv6Address("fd00::").packed, ip_bits=8),
        ctx(TCP6, V6_ET),
        True,
    ),
    Case(
        "v6-src-no",
        R(T.MATCH_IPV6_SOURCE, ip=ipaddress.IPv6Address("2001:db8::").packed, ip_bits=32),
        ctx(TCP6, V6_ET),
        False,
    ),
    Case(
        "v6-dst",
        R(T.MATCH_IPV6_DEST, ip=ipaddress.IPv6Address("fd00::2").packed, ip_bits=128),
        ctx(TCP6, V6_ET),
        True,
    ),
    Case(
        "v6-dst-host-bits-quirk",  # rule address not masked: never matches
        R(T.MATCH_IPV6_DEST, ip=ipaddress.IPv6Address("fd00::2").packed, ip_bits=64),
        ctx(TCP6, V6_ET),
        False,
    ),
    Case(
        "v6-on-v4",
        R(T.MATCH_IPV6_SOURCE, ip=bytes(16), ip_bits=0),
        ctx(),
        False,
        hard=True,
    ),
    # TOS / traffic class
    Case(
        "tos-v4",
        R(T.MATCH_IP_TOS, tos_mask=0xFC, start=0xB8, end=0xB8),
        ctx(ipv4(6, tcp(), tos=0xBA)),
        True,
    ),
    Case("tos-v4-no", R(T.MATCH_IP_TOS, tos_mask=0xFF, start=1, end=255), ctx(), False),
    Case(
        "tos-v6",
        R(T.MATCH_IP_TOS, tos_mask=0xFF, start=0x20, end=0x30),
        ctx(ipv6(6, tcp(), traffic_class=0x28), V6_ET),
        True,
    ),
    Case("tos-arp", R(T.MATCH_IP_TOS, tos_mask=0, start=0, end=255), ctx(ARP, ARP_ET), False, True),
    # IP protocol
    Case("proto-v4", R(T.MATCH_IP_PROTOCOL, ip_protocol=6), ctx(), True),
    Case("proto-v4-no", R(T.MATCH_IP_PROTOCOL, ip_protocol=17), ctx(), False),
    Case(
        "proto-v6-ext",
        R(T.MATCH_IP_PROTOCOL, ip_protocol=17),
        ctx(ipv6(0, ext_header(60, 1) + ext_header(17) + udp()), V6_ET),
        True,
    ),
    Case(
        "proto-v6-fragment-stops",
        R(T.MATCH_IP_PROTOCOL, ip_protocol=44),
        ctx(ipv6(44, ext_header(17) + udp()), V6_ET),
        True,
    ),
    Case(
        "proto-v6-broken-ext",
        R(T.MATCH_IP_PROTOCOL, ip_protocol=17),
        ctx(ipv6(43, bytes((17, 9)) + bytes(6)), V6_ET),
        False,
        hard=True,
    ),
    Case("proto-arp", R(T.MATCH_IP_PROTOCOL, ip_protocol=0), ctx(ARP, ARP_ET), False, True),
    # Ethertype
    Case("ethertype", R(T.MATCH_ETHERTYPE, ethertype=0x0800), ctx(), True),
    Case("ethertype-no", R(T.MATCH_ETHERTYPE, ethertype=0x86DD), ctx(), False),
    # ICMP
    Case("icmp-type", R(T.MATCH_ICMP, icmp_type=8), ctx(ICMP4), True, hard=True),
    Case("icmp-type-no", R(T.MATCH_ICMP, icmp_type=0), ctx(ICMP4), False, hard=True),
    Case("icmp-code", R(T.MATCH_ICMP, icmp_type=8, icmp_code=0, icmp_flags=1), ctx(ICMP4), True),
    Case(
        "icmp-code-no",
        R(T.MATCH_ICMP, icmp_type=8, icmp_code=3, icmp_flags=1),
        ctx(ICMP4),
        False,
    ),
    Case("icmp-not-icmp", R(T.MATCH_ICMP, icmp_type=8), ctx(), False, hard=True),
    Case("icmp6", R(T.MATCH_ICMP, icmp_type=128), ctx(ICMP6, V6_ET), True, hard=True),
    Case(
        "icmp6-code",
        R(T.MATCH_ICMP, icmp_type=128, icmp_code=1, icmp_flags=1),
        ctx(ipv6(58, icmp(128, 1)), V6_ET),
        True,
    ),
    Case("icmp-arp", R(T.MATCH_ICMP, icmp_type=0), ctx(ARP, ARP_ET), False, hard=True),
    # ports
    Case("dport", R(T.MATCH_IP_DEST_PORT_RANGE, start=80, end=80), ctx(), True),
    Case("dport-no", R(T.MATCH_IP_DEST_PORT_RANGE, start=81, end=90), ctx(), False),
    Case("sport", R(T.MATCH_IP_SOURCE_PORT_RANGE, start=1024, end=65535), ctx(), True),
    Case("sport-udp", R(T.MATCH_IP_SOURCE_PORT_RANGE, start=5000, end=5000), ctx(UDP4), True),
    Case("sport-no", R(T.MATCH_IP_SOURCE_PORT_RANGE, start=0, end=1023), ctx(UDP4), False),
    Case("port-icmp-soft", R(T.MATCH_IP_DEST_PORT_RANGE, start=0, end=65535), ctx(ICMP4), False),
    Case(
        "port-arp", R(T.MATCH_IP_DEST_PORT_RANGE, start=0, end=65535), ctx(ARP, ARP_ET), False, True
    ),
    Case(
        "port-v6",
        R(T.MATCH_IP_DEST_PORT_RANGE, start=443, end=443),
        ctx(TCP6, V6_ET),
        True,
    ),
    Case(
        "port-v6-zero-quirk",
        R(T.MATCH_IP_DEST_PORT_RANGE, start=0, end=10),
        ctx(ipv6(17, udp(dport=0)), V6_ET),
        False,
    ),
    Case(
        "port-v4-zero",
        R(T.MATCH_IP_DEST_PORT_RANGE, start=0, end=10),
        ctx(ipv4(17, udp(dport=0))),
        True,
    ),
    Case(
        "port-v6-broken",
        R(T.MATCH_IP_DEST_PORT_RANGE, start=0, end=65535),
        ctx(ipv6(0, b"\x11"), V6_ET),
        False,
        hard=True,
    ),
    # characteristics
    Case("char-syn", R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_TCP_SYN), ctx(), True),
    Case("char-ack-no", R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_TCP_ACK), ctx(), False),
    Case(
        "char-ns",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_TCP_NS),
        ctx(ipv4(6, tcp(ns=True))),
        True,
    ),
    Case(
        "char-v6-tcp",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_TCP_FIN),
        ctx(ipv6(0, ext_header(6) + tcp(flags=CHAR_TCP_FIN)), V6_ET),
        True,
    ),
    Case("char-udp-no-flags", R(T.MATCH_CHARACTERISTICS, characteristics=0xFFF), ctx(UDP4), False),
    Case("char-inbound", R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_INBOUND), ctx(), False),
    Case(
        "char-inbound-in",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_INBOUND),
        ctx(inbound=True),
        True,
    ),
    Case(
        "char-multicast",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_MULTICAST),
        ctx(mac_dest=MCAST),
        True,
    ),
    Case(
        "char-broadcast-no",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_BROADCAST),
        ctx(mac_dest=MCAST),
        False,
    ),
    Case(
        "char-broadcast",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_BROADCAST | CHAR_MULTICAST),
        ctx(mac_dest=BCAST),
        True,
    ),
    Case(
        "char-ip-auth",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_SENDER_IP_AUTHENTICATED),
        ctx(ip_owned=lambda ip: ip == bytes((10, 1, 2, 3))),
        True,
    ),
    Case(
        "char-ip-auth-no",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_SENDER_IP_AUTHENTICATED),
        ctx(ip_owned=lambda ip: False),
        False,
    ),
    Case(
        "char-ip-auth-arp",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_SENDER_IP_AUTHENTICATED),
        ctx(ARP, ARP_ET, ip_owned=lambda ip: ip == bytes((10, 1, 2, 3))),
        True,
    ),
    Case(
        "char-ip-auth-ndp-ns",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_SENDER_IP_AUTHENTICATED),
        ctx(ndp(135), V6_ET),
        True,
    ),
    Case(
        "char-ip-auth-ndp-na",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_SENDER_IP_AUTHENTICATED),
        ctx(ndp(136), V6_ET, ip_owned=lambda ip: ip == ipaddress.IPv6Address("fd00::99").packed),
        True,
    ),
    Case(
        "char-mac-auth",
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_SENDER_MAC_AUTHENTICATED),
        ctx(mac_owned=lambda mac: mac == MAC_ME),
        True,
    ),
    # frame size (payload length)
    Case("size", R(T.MATCH_FRAME_SIZE_RANGE, start=len(TCP4), end=len(TCP4)), ctx(), True),
    Case("size-no", R(T.MATCH_FRAME_SIZE_RANGE, start=0, end=len(TCP4) - 1), ctx(), False),
    # random
    Case("random", R(T.MATCH_RANDOM, probability=5), ctx(), True, prng=(5,)),
    Case("random-no", R(T.MATCH_RANDOM, probability=5), ctx(), False, prng=(6,)),
    Case(
        "random-low-32-bits", R(T.MATCH_RANDOM, probability=5), ctx(), True, prng=((7 << 32) | 5,)
    ),
    Case("random-always", R(T.MATCH_RANDOM, probability=0xFFFFFFFF), ctx(), True, prng=(M64,)),
    # tags: both present
    Case(
        "tags-diff",
        R(T.MATCH_TAGS_DIFFERENCE, tag_id=1, tag_value=3),
        ctx(our_tags={1: 10}, peer_tags={1: 7}),
        True,
    ),
    Case(
        "tags-diff-no",
        R(T.MATCH_TAGS_DIFFERENCE, tag_id=1, tag_value=2),
        ctx(our_tags={1: 7}, peer_tags={1: 10}),
        False,
    ),
    Case(
        "tags-and",
        R(T.MATCH_TAGS_BITWISE_AND, tag_id=1, tag_value=0b0100),
        ctx(our_tags={1: 0b0110}, peer_tags={1: 0b1100}),
        True,
    ),
    Case(
        "tags-or",
        R(T.MATCH_TAGS_BITWISE_OR, tag_id=1, tag_value=0b1110),
        ctx(our_tags={1: 0b0110}, peer_tags={1: 0b1100}),
        True,
    ),
    Case(
        "tags-and-no",
        R(T.MATCH_TAGS_BITWISE_AND, tag_id=1, tag_value=0b0110),
        ctx(our_tags={1: 0b0110}, peer_tags={1: 0b1100}),
        False,
    ),
    Case(
        "tags-or-no",
        R(T.MATCH_TAGS_BITWISE_OR, tag_id=1, tag_value=0b0110),
        ctx(our_tags={1: 0b0110}, peer_tags={1: 0b1100}),
        False,
    ),
    Case(
        "tags-xor",
        R(T.MATCH_TAGS_BITWISE_XOR, tag_id=1, tag_value=0b1010),
        ctx(our_tags={1: 0b0110}, peer_tags={1: 0b1100}),
        True,
    ),
    Case(
        "tags-xor-no",
        R(T.MATCH_TAGS_BITWISE_XOR, tag_id=1, tag_value=0),
        ctx(our_tags={1: 0b0110}, peer_tags={1: 0b1100}),
        False,
    ),
    Case(
        "tags-equal",
        R(T.MATCH_TAGS_EQUAL, tag_id=1, tag_value=4),
        ctx(our_tags={1: 4}, peer_tags={1: 4}),
        True,
    ),
    Case(
        "tags-equal-no",
        R(T.MATCH_TAGS_EQUAL, tag_id=1, tag_value=4),
        ctx(our_tags={1: 4}, peer_tags={1: 5}),
        False,
    ),
    Case(
        "tags-no-local",
        R(T.MATCH_TAGS_EQUAL, tag_id=1, tag_value=4),
        ctx(peer_tags={1: 4}),
        False,
        hard=True,
    ),
    Case(
        "tags-no-remote-in",
        R(T.MATCH_TAGS_EQUAL, tag_id=1, tag_value=4),
        ctx(inbound=True, our_tags={1: 4}),
        False,
        hard=True,
    ),
    Case(
        "tags-no-remote-out",
        R(T.MATCH_TAGS_EQUAL, tag_id=1, tag_value=4),
        ctx(our_tags={1: 4}),
        True,
        hard=True,
    ),
    # tag sender / receiver
    Case(
        "sender-in",
        R(T.MATCH_TAG_SENDER, tag_id=2, tag_value=9),
        ctx(inbound=True, peer_tags={2: 9}, our_tags={2: 1}),
        True,
    ),
    Case(
        "sender-in-no",
        R(T.MATCH_TAG_SENDER, tag_id=2, tag_value=9),
        ctx(inbound=True, peer_tags={2: 8}),
        False,
    ),
    Case(
        "sender-in-missing",
        R(T.MATCH_TAG_SENDER, tag_id=2, tag_value=9),
        ctx(inbound=True, our_tags={2: 9}),
        False,
        hard=True,
    ),
    Case(
        "sender-out",
        R(T.MATCH_TAG_SENDER, tag_id=2, tag_value=9),
        ctx(our_tags={2: 9}, peer_tags={2: 1}),
        True,
    ),
    Case(
        "sender-out-missing",
        R(T.MATCH_TAG_SENDER, tag_id=2, tag_value=9),
        ctx(peer_tags={2: 9}),
        False,
        hard=True,
    ),
    Case(
        "receiver-out",
        R(T.MATCH_TAG_RECEIVER, tag_id=2, tag_value=9),
        ctx(peer_tags={2: 9}),
        True,
    ),
    Case(
        "receiver-out-no",
        R(T.MATCH_TAG_RECEIVER, tag_id=2, tag_value=9),
        ctx(peer_tags={2: 1}, our_tags={2: 9}),
        False,
    ),
    Case(
        "receiver-out-missing",
        R(T.MATCH_TAG_RECEIVER, tag_id=2, tag_value=9),
        ctx(),
        True,
        hard=True,
    ),
    Case(
        "receiver-in",
        R(T.MATCH_TAG_RECEIVER, tag_id=2, tag_value=9),
        ctx(inbound=True, our_tags={2: 9}),
        True,
    ),
    Case(
        "receiver-in-missing",
        R(T.MATCH_TAG_RECEIVER, tag_id=2, tag_value=9),
        ctx(inbound=True, peer_tags={2: 9}),
        False,
        hard=True,
    ),
    # integer range: 16-bit big-endian at idx 0 is read at offset idx + 6 (quirk)
    Case(
        "int-be",
        R(T.MATCH_INTEGER_RANGE, start=0x4006, end=0x4006, idx=2, int_format=15),
        ctx(bytes(range(20))),
        False,
    ),
    Case(
        "int-be-quirk-offset",
        R(T.MATCH_INTEGER_RANGE, start=0x0809, end=0x0809, idx=2, int_format=15),
        ctx(bytes(range(20))),
        True,
    ),
    Case(
        "int-le",
        R(T.MATCH_INTEGER_RANGE, start=0x0302, end=0x0302, idx=2, int_format=0x80 | 15),
        ctx(bytes(range(20))),
        True,
    ),
    Case(
        "int-le-12-bits",  # top 12 bits of the little-endian word 0x0302 << 48
        R(T.MATCH_INTEGER_RANGE, start=0x030, end=0x030, idx=2, int_format=0x80 | 11),
        ctx(bytes(range(20))),
        True,
    ),
    Case(
        "int-past-end-is-zero",
        R(T.MATCH_INTEGER_RANGE, start=0, end=0, idx=19, int_format=31),
        ctx(bytes(range(20))),
        True,
    ),
    Case(
        "int-range",
        R(T.MATCH_INTEGER_RANGE, start=0x10, end=0x20, idx=0, int_format=7),
        ctx(bytes(7) + b"\x15"),
        True,
    ),
    # unknown MATCH types follow the network's flag
    Case("unknown-match", Rule(20), ctx(), False),
    Case("unknown-match-flag", Rule(52, raw=b"xyz"), ctx(unsupported_match_result=True), True),
]


@pytest.mark.parametrize("case", MATCH_CASES, ids=lambda c: c.name)
def test_match(case: Case) -> None:
    prng = fixed(*case.prng) if case.prng else no_random
    verdict = run([case.rule, ACCEPT], case.context, prng)
    assert verdict == (V.ACCEPT if case.matches else V.NO_MATCH)
    negated = replace(case.rule, t=case.rule.t | 0x80)
    prng = fixed(*case.prng) if case.prng else no_random
    expected = case.matches if case.hard else not case.matches
    assert run([negated, ACCEPT], case.context, prng) == (V.ACCEPT if expected else V.NO_MATCH)


def test_every_match_type_has_a_matching_and_a_failing_case() -> None:
    seen: dict[int, set[bool]] = {}
    for c in MATCH_CASES:
        seen.setdefault(c.rule.t & 0x3F, set()).add(c.matches)
    for kind in RuleType:
        if kind >= 16:
            assert seen.get(kind) == {True, False}, kind.name


# ---------------------------------------------------------------------------- actions


def test_empty_table_is_no_match_and_drops() -> None:
    assert run([], ctx()) == V.NO_MATCH
    assert filter_with_capabilities([], [], ctx(), no_random).accept == Verdict.DROP


def test_default_rules_accept_everything() -> None:
    for payload, et in ((TCP4, V4_ET), (ARP, ARP_ET), (b"", 0x1234), (TCP6, V6_ET)):
        for inbound in (False, True):
            d = filter_with_capabilities(
                DEFAULT_RULES, [], ctx(payload, et, inbound=inbound), no_random
            )
            assert (d.accept, d.actions) == (Verdict.ACCEPT, ())


def test_accept_drop_break_and_unknown_actions() -> None:
    assert run([ACCEPT, DROP], ctx()) == V.ACCEPT
    assert run([DROP, ACCEPT], ctx()) == V.DROP
    assert run([R(T.ACTION_BREAK), ACCEPT], ctx()) == V.NO_MATCH
    assert run([Rule(7), Rule(15, raw=b"\x01"), ACCEPT], ctx()) == V.ACCEPT  # unknown: no-ops
    # NOT/OR bits on an action change nothing
    assert run([Rule(0x80 | T.ACTION_DROP), ACCEPT], ctx()) == V.DROP
    # an action whose matches fail is skipped and the next rule starts afresh
    no = R(T.MATCH_ETHERTYPE, ethertype=1)
    assert run([no, DROP, ACCEPT], ctx()) == V.ACCEPT
    assert run([no, R(T.ACTION_BREAK), ACCEPT], ctx()) == V.ACCEPT


def test_priority_accepts_with_bucket_zero() -> None:
    r = filter_frame([R(T.ACTION_PRIORITY), DROP], ctx(), no_random)
    assert (r.verdict, r.qos_bucket) == (V.ACCEPT, 0)


def test_tee_and_watch() -> None:
    tee = R(T.ACTION_TEE, address=OTHER, flags=7, length=10)
    r = filter_frame([tee, ACCEPT], ctx(), no_random)
    assert r.verdict == V.ACCEPT
    assert r.tee == FilterAction(T.ACTION_TEE, OTHER, 10, 0x02, 7)
    # length 0 or beyond the frame: the whole payload
    r = filter_frame([replace(tee, length=0), ACCEPT], ctx(), no_random)
    assert r.tee is not None and r.tee.length == len(TCP4)
    r = filter_frame([replace(tee, length=9999), ACCEPT], ctx(), no_random)
    assert r.tee is not None and r.tee.length == len(TCP4)
    watch = R(T.ACTION_WATCH, address=OTHER)
    r = filter_frame([watch, ACCEPT], ctx(inbound=True), no_random)
    assert r.tee == FilterAction(T.ACTION_WATCH, OTHER, len(TCP4), 0x1C)
    # the last TEE wins; the address is the low 40 bits of the u64
    r = filter_frame(
        [tee, R(T.ACTION_TEE, address=(0xAB << 40) | PEER + 1), ACCEPT], ctx(), no_random
    )
    assert r.tee is not None and r.tee.target == PEER + 1
    # TEE to the source, to the destination, or (outbound) to me: no-ops
    for target in (ME, PEER):
        r = filter_frame([R(T.ACTION_TEE, address=target), ACCEPT], ctx(), no_random)
        assert (r.verdict, r.tee) == (V.ACCEPT, None)


def test_forwarding_to_me_inbound_super_accepts() -> None:
    for kind in (T.ACTION_TEE, T.ACTION_WATCH, T.ACTION_REDIRECT):
        assert run([R(kind, address=ME), DROP], ctx(inbound=True)) == V.SUPER_ACCEPT
        assert run([R(kind, address=ME), DROP], ctx()) == V.DROP
    # a TEE-to-me whose matches failed still makes a later ACCEPT a super-accept
    no = R(T.MATCH_ETHERTYPE, ethertype=1)
    assert run([no, R(T.ACTION_TEE, address=ME), ACCEPT], ctx(inbound=True)) == V.SUPER_ACCEPT
    assert run([no, R(T.ACTION_TEE, address=ME), ACCEPT], ctx()) == V.ACCEPT


def test_redirect() -> None:
    r = filter_frame([R(T.ACTION_REDIRECT, address=OTHER), DROP], ctx(), no_random)
    assert (r.verdict, r.zt_dest) == (V.REDIRECT, OTHER)
    d = filter_with_capabilities([R(T.ACTION_REDIRECT, address=OTHER)], [], ctx(), no_random)
    assert d.accept == Verdict.DROP
    assert d.actions == (FilterAction(T.ACTION_REDIRECT, OTHER, len(TCP4), 0x04),)
    d = filter_with_capabilities(
        [R(T.ACTION_REDIRECT, address=OTHER)], [], ctx(inbound=True), no_random
    )
    assert d.actions[0].ext_flags == 0x0A and d.accept == Verdict.DROP
    # redirecting to the null address (outbound, known destination) just accepts
    d = filter_with_capabilities([R(T.ACTION_REDIRECT, address=0)], [], ctx(), no_random)
    assert (d.accept, d.verdict, d.actions) == (Verdict.ACCEPT, V.REDIRECT, ())


def test_and_or_not_semantics() -> None:
    yes = R(T.MATCH_ETHERTYPE, ethertype=0x0800)
    no = R(T.MATCH_ETHERTYPE, ethertype=0x86DD)
    c = ctx()
    assert run([yes, yes, ACCEPT], c) == V.ACCEPT
    assert run([yes, no, ACCEPT], c) == V.NO_MATCH
    assert run([no, replace(yes, t=yes.t | 0x40), ACCEPT], c) == V.ACCEPT  # OR rescues
    assert run([no, replace(no, t=no.t | 0x40), ACCEPT], c) == V.NO_MATCH
    assert run([replace(no, t=no.t | 0x80), ACCEPT], c) == V.ACCEPT  # NOT
    assert run([no, replace(no, t=no.t | 0xC0), ACCEPT], c) == V.ACCEPT  # OR NOT
    # (yes OR no) AND no -> false; evaluation is strictly left to right
    assert run([yes, replace(no, t=no.t | 0x40), no, ACCEPT], c) == V.NO_MATCH
    # an AND after a failed set is not evaluated (no PRNG draw); an OR is
    rnd = R(T.MATCH_RANDOM, probability=0xFFFFFFFF)
    assert run([no, rnd, ACCEPT], c, no_random) == V.NO_MATCH
    assert run([no, replace(rnd, t=rnd.t | 0x40), ACCEPT], c, fixed(1)) == V.ACCEPT


def test_skip_drop_after_lenient_tag_match() -> None:
    tag = R(T.MATCH_TAGS_EQUAL, tag_id=1, tag_value=4)
    c = ctx(our_tags={1: 4})  # outbound, receiver's tag unknown: lenient
    assert run([tag, DROP, ACCEPT], c) == V.ACCEPT  # the DROP is skipped once
    assert run([tag, DROP, DROP], c) == V.DROP
    recv = R(T.MATCH_TAG_RECEIVER, tag_id=1, tag_value=4)
    assert run([recv, DROP, ACCEPT], ctx()) == V.ACCEPT
    # a lenient NOT match is still a hard yes
    assert run([replace(tag, t=tag.t | 0x80), DROP, ACCEPT], c) == V.ACCEPT


def test_tag_rules_lenient_when_super_accepting() -> None:
    no = R(T.MATCH_ETHERTYPE, ethertype=1)
    tee_me = R(T.ACTION_TEE, address=ME)
    c = ctx(inbound=True, our_tags={1: 4})
    tag = R(T.MATCH_TAGS_EQUAL, tag_id=1, tag_value=4)
    assert run([tag, ACCEPT], c) == V.NO_MATCH
    assert run([no, tee_me, tag, ACCEPT], c) == V.SUPER_ACCEPT
    sender = R(T.MATCH_TAG_SENDER, tag_id=9, tag_value=9)
    assert run([no, tee_me, sender, DROP, ACCEPT], c) == V.SUPER_ACCEPT


def test_adhoc_rules() -> None:
    rules = adhoc_port_range_rules(8000, 8100)
    assert len(rules) == 14
    syn6 = ctx(ipv6(6, tcp(dport=8050)), V6_ET)
    assert run(rules, syn6) == V.ACCEPT
    assert run(rules, ctx(ipv6(6, tcp(dport=22)), V6_ET)) == V.DROP  # SYN, wrong port
    assert run(rules, ctx(ipv6(6, tcp(dport=22, flags=CHAR_TCP_ACK)), V6_ET)) == V.ACCEPT
    assert run(rules, ctx(ipv6(6, tcp(dport=22, flags=0x12)), V6_ET)) == V.ACCEPT  # SYN+ACK
    assert run(rules, ctx(ICMP6, V6_ET)) == V.ACCEPT
    assert run(rules, ctx(TCP4)) == V.DROP
    assert run(rules, ctx(ipv6(17, udp(dport=8100)), V6_ET)) == V.ACCEPT
    assert parse_rules(serialize_rules(rules))[0] == rules


# --------------------------------------------------------------------- capabilities


def test_capabilities_after_no_match() -> None:
    base = [R(T.MATCH_ETHERTYPE, ethertype=0x0806), ACCEPT]
    web = [R(T.MATCH_IP_DEST_PORT_RANGE, start=80, end=80), ACCEPT]
    ssh = [R(T.MATCH_IP_DEST_PORT_RANGE, start=22, end=22), ACCEPT]
    dropper = [DROP, ACCEPT]  # a DROP only ends its own capability
    d = filter_with_capabilities(base, [(1, dropper), (5, ssh), (9, web)], ctx(), no_random)
    assert (d.accept, d.capability_id, d.verdict) == (Verdict.ACCEPT, 9, V.ACCEPT)
    d = filter_with_capabilities(base, [(1, dropper), (5, ssh)], ctx(), no_random)
    assert (d.accept, d.capability_id) == (Verdict.DROP, None)
    # base DROP is final; base ACCEPT never looks at capabilities
    d = filter_with_capabilities([DROP], [(9, web)], ctx(), no_random)
    assert (d.accept, d.verdict) == (Verdict.DROP, V.DROP)
    d = filter_with_capabilities([ACCEPT], [(9, [DROP])], ctx(), no_random)
    assert (d.accept, d.capability_id) == (Verdict.ACCEPT, None)


def test_capability_super_accept_only_counts_inbound() -> None:
    cap = [(3, [R(T.ACTION_TEE, address=ME), ACCEPT])]
    inbound = filter_with_capabilities([], cap, ctx(inbound=True), no_random)
    assert inbound.accept == Verdict.SUPER_ACCEPT
    assert filter_with_capabilities([], cap, ctx(), no_random).accept == Verdict.ACCEPT
    watched = filter_with_capabilities(
        [R(T.ACTION_WATCH, address=ME)], [], ctx(inbound=True), no_random
    )
    assert watched.accept == Verdict.SUPER_ACCEPT


def test_capability_tee_order_and_no_tee() -> None:
    base = [R(T.ACTION_TEE, address=OTHER, length=4)]  # arms a TEE, then no match
    cap = [(2, [R(T.ACTION_WATCH, address=OTHER + 1), ACCEPT])]
    d = filter_with_capabilities(base, cap, ctx(), no_random)
    assert d.accept == Verdict.ACCEPT
    assert d.actions == (
        FilterAction(T.ACTION_WATCH, OTHER + 1, len(TCP4), 0x16),
        FilterAction(T.ACTION_TEE, OTHER, 4, 0x02),
    )
    d = filter_with_capabilities(base, cap, ctx(), no_random, no_tee=True)
    assert (d.accept, d.actions) == (Verdict.ACCEPT, ())
    d = filter_with_capabilities(base, cap, ctx(inbound=True), no_random)
    assert [a.ext_flags for a in d.actions] == [0x1C, 0x08]
    # a TEE armed by a pass that drops is never sent
    d = filter_with_capabilities([*base, DROP], cap, ctx(), no_random)
    assert d == FilterDecision(Verdict.DROP, V.DROP)


def test_capability_redirect() -> None:
    cap = [(4, [R(T.ACTION_REDIRECT, address=OTHER)])]
    d = filter_with_capabilities([], cap, ctx(), no_random)
    assert (d.accept, d.capability_id, d.verdict) == (Verdict.DROP, 4, V.REDIRECT)
    assert d.actions == (FilterAction(T.ACTION_REDIRECT, OTHER, len(TCP4), 0x04),)


def test_ndp_emulation_owns() -> None:
    six = bytes.fromhex("fc1fad486c4b3bacddb4000000000001")
    rfc = bytes.fromhex("fd1fad486cafe468e2994b3bacddb400")
    assert ndp_emulation_owns(six[:5] + bytes(11), six, None)
    assert not ndp_emulation_owns(six[:4] + bytes(12), six, None)
    assert ndp_emulation_owns(rfc[:11] + bytes(5), None, rfc)
    assert not ndp_emulation_owns(rfc[:10] + bytes(6), six, rfc)
    assert not ndp_emulation_owns(bytes(4), six, rfc)


# ---------------------------------------------------------------- naive evaluator
#
# A deliberately plain transliteration of A.4.3/A.4.4 that recomputes every match
# from the raw payload bytes with no shared parsing. Decisions shared with the
# implementation (documented there): TCP flag bytes past the payload read as 0;
# IPv4 prefix lengths above 32 shift modulo 32 and IPv6 ones above 128 modulo 64
# (x86-64 behaviour of the reference); the IPv6 prefix test compares the masked
# packet address with the unmasked rule address.


def naive_v6_walk(p: bytes) -> tuple[int, int] | None:
    if len(p) < 40:
        return None

    def step(pos: int, nh: int) -> tuple[int, int] | None:
        if nh not in (0, 43, 60, 135):
            return pos, nh
        if pos + 8 > len(p):
            return None
        after = pos + 8 + 8 * p[pos + 1]
        if after > len(p):
            return None
        return step(after, p[pos])

    return step(40, p[6])


def naive_v4_contains(rule_ip: bytes, bits: int, addr: bytes) -> bool:
    if bits == 0:
        return True
    if bits <= 32:
        net = ipaddress.IPv4Network((rule_ip, bits), strict=False)
        return ipaddress.IPv4Address(addr) in net
    s = (32 - bits) % 32
    return int.from_bytes(addr, "big") >> s == int.from_bytes(rule_ip, "big") >> s


def naive_v6_contains(rule_ip: bytes, bits: int, addr: bytes) -> bool:
    if bits <= 128:
        mask = ((1 << bits) - 1) << (128 - bits)
    else:
        mask = (M64 << 64) | ((M64 << ((128 - bits) % 64)) & M64)
    return int.from_bytes(addr, "big") & mask == int.from_bytes(rule_ip, "big")


def at(p: bytes, i: int) -> int:
    return p[i] if i < len(p) else 0


@dataclass
class NaiveState:
    set_matches: bool = True
    skip_drop: bool = False
    super_accept: bool = False


def naive_match(
    rule: Rule, c: FrameContext, st_: NaiveState, prng: Callable[[], int]
) -> tuple[bool, bool]:
    """(result, hard)"""
    p = c.payload
    n = len(p)
    et = c.ethertype
    kind = rule.t & 63
    src = c.peer if c.inbound else c.our_address
    dst = c.our_address if c.inbound else c.peer
    is4 = et == 0x0800 and n >= 20
    is6 = et == 0x86DD and n >= 40
    HN = (False, True)
    HY = (True, True)

    def soft(b: bool) -> tuple[bool, bool]:
        return b, False

    if kind == 24:
        return soft(rule.zt == src)
    if kind == 25:
        return soft(rule.zt == dst)
    if kind == 26:
        return soft(rule.vlan_id == c.vlan_id)
    if kind == 27:
        return soft(rule.vlan_pcp == 0)
    if kind == 28:
        return soft(rule.vlan_dei == 0)
    if kind == 29:
        return soft(rule.mac == c.mac_source)
    if kind == 30:
        return soft(rule.mac == c.mac_dest)
    if kind in (31, 32):
        if not is4:
            return HN
        off = 12 if kind == 31 else 16
        return soft(naive_v4_contains(rule.ip, rule.ip_bits, p[off : off + 4]))
    if kind in (33, 34):
        if not is6:
            return HN
        off = 8 if kind == 33 else 24
        return soft(naive_v6_contains(rule.ip, rule.ip_bits, p[off : off + 16]))
    if kind == 35:
        if is4:
            v = p[1]
        elif is6:
            v = (p[0] & 0x0F) << 4 | p[1] >> 4
        else:
            return HN
        v &= rule.tos_mask
        return soft(rule.start <= v <= rule.end)
    if kind == 36:
        if is4:
            return soft(p[9] == rule.ip_protocol)
        if et == 0x86DD:
            w = naive_v6_walk(p)
            return HN if w is None else soft(w[1] == rule.ip_protocol)
        return HN
    if kind == 37:
        return soft(rule.ethertype == et)
    if kind == 38:
        if is4:
            if p[9] != 1:
                return HN
            pos = (p[0] & 15) * 4
        elif et == 0x86DD:
            w = naive_v6_walk(p)
            if w is None or w[1] != 58:
                return HN
            pos = w[0]
        else:
            return HN
        if n < pos + 2 or p[pos] != rule.icmp_type:
            return HN
        if rule.icmp_flags & 1:
            return soft(p[pos + 1] == rule.icmp_code)
        return HY
    if kind in (39, 40):
        if is4:
            pos, proto, six = (p[0] & 15) * 4, p[9], False
        elif et == 0x86DD:
            w = naive_v6_walk(p)
            if w is None:
                return HN
            pos, proto, six = w[0], w[1], True
        else:
            return HN
        if proto not in (6, 17, 132, 136) or not n > pos + 4:
            return soft(False)
        port = struct.unpack(">H", p[pos + (2 if kind == 40 else 0) :][:2])[0]
        if six and port == 0:
            return soft(False)
        return soft(rule.start <= port <= rule.end)
    if kind == 41:
        cf = 0
        if c.inbound:
            cf |= 1 << 63
        if c.mac_dest & (1 << 40):
            cf |= 1 << 62
        if c.mac_dest == BCAST:
            cf |= 1 << 61
        ip: bytes | None = None
        if is4:
            ip = p[12:16]
        elif is6:
            if n >= 64 and p[6] == 58 and p[40] == 135:
                cf |= 1 << 60
            elif n >= 64 and p[6] == 58 and p[40] == 136:
                ip = p[48:64]
            else:
                ip = p[8:24]
        elif et == 0x0806 and n >= 28:
            ip = p[14:18]
        if ip is not None and c.ip_owned is not None and c.ip_owned(ip):
            cf |= 1 << 60
        if c.mac_owned is not None and c.mac_owned(c.mac_source):
            cf |= 1 << 59
        if is4 and p[9] == 6:
            h = (p[0] & 15) * 4
            cf |= at(p, h + 13) | (at(p, h + 12) & 15) << 8
        elif et == 0x86DD:
            w = naive_v6_walk(p)
            if w is not None and w[1] == 6 and n > w[0] + 14:
                cf |= p[w[0] + 13] | (p[w[0] + 12] & 15) << 8
        return soft(cf & rule.characteristics != 0)
    if kind == 42:
        return soft(rule.start <= n <= rule.end)
    if kind == 43:
        return soft(prng() % (1 << 32) <= rule.probability)
    if 44 <= kind <= 48:
        if rule.tag_id not in c.our_tags:
            return HN
        mine = c.our_tags[rule.tag_id]
        if rule.tag_id not in c.peer_tags:
            if c.inbound and not st_.super_accept:
                return HN
            st_.skip_drop = True
            return HY
        theirs = c.peer_tags[rule.tag_id]
        v = rule.tag_value
        return soft(
            {
                44: abs(mine - theirs) <= v,
                45: mine & theirs == v,
                46: mine | theirs == v,
                47: mine ^ theirs == v,
                48: mine == v == theirs,
            }[kind]
        )
    if kind in (49, 50):
        if st_.super_accept:
            st_.skip_drop = True
            return HY
        about_peer = (kind == 49 and c.inbound) or (kind == 50 and not c.inbound)
        if about_peer:
            if rule.tag_id in c.peer_tags:
                return soft(c.peer_tags[rule.tag_id] == rule.tag_value)
            if kind == 50:
                st_.skip_drop = True
                return HY
            return HN
        if rule.tag_id in c.our_tags:
            return soft(c.our_tags[rule.tag_id] == rule.tag_value)
        return HN
    if kind == 51:
        bits = (rule.int_format & 63) + 1
        nbytes = -(-bits // 8)
        value = 0
        if rule.int_format & 0x80:
            if rule.idx + nbytes <= n:
                word = int.from_bytes(p[rule.idx : rule.idx + nbytes], "little") << (
                    64 - 8 * nbytes
                )
                value = word >> (64 - bits)
        else:
            first = rule.idx + 8 - nbytes
            if first + nbytes <= n:
                value = int.from_bytes(p[first : first + nbytes], "big") % (1 << bits)
        top = (rule.start + (rule.end - rule.start) % (1 << 32)) % (1 << 64)
        return soft(rule.start <= value <= top)
    return soft(c.unsupported_match_result)


NaiveOut = tuple[V, int, tuple[int, int, int, int] | None, int | None]


def naive_filter(rules: Sequence[Rule], c: FrameContext, prng: Callable[[], int]) -> NaiveOut:
    me = c.our_address
    src = c.peer if c.inbound else c.our_address
    dst = c.our_address if c.inbound else c.peer
    s = NaiveState()
    cc: tuple[int, int, int, int] | None = None
    for rule in rules:
        kind = rule.t & 63
        if kind < 16:
            target = rule.address % (1 << 40)
            if not s.set_matches:
                if c.inbound and kind in (2, 3, 4) and target == me:
                    s.super_accept = True
                s.set_matches = True
                continue
            if kind == 6:
                return V.ACCEPT, dst, cc, 0
            if kind == 0:
                if s.skip_drop:
                    s.skip_drop = False
                    continue
                return V.DROP, dst, cc, None
            if kind == 1:
                return (V.SUPER_ACCEPT if s.super_accept else V.ACCEPT), dst, cc, None
            if kind == 5:
                return V.NO_MATCH, dst, cc, None
            if kind in (2, 3, 4):
                if target == src:
                    continue
                if target == me:
                    if c.inbound:
                        return V.SUPER_ACCEPT, dst, cc, None
                    continue
                if target == dst:
                    continue
                if kind == 4:
                    return V.REDIRECT, target, cc, None
                n = len(c.payload)
                flags = {(2, False): 2, (3, False): 0x16, (2, True): 8, (3, True): 0x1C}
                cc = (
                    kind,
                    target,
                    n if rule.length == 0 else min(n, rule.length),
                    flags[kind, c.inbound],
                )
            continue
        is_or = bool(rule.t & 0x40)
        if not s.set_matches and not is_or:
            continue
        result, hard = naive_match(rule, c, s, prng)
        if not hard and rule.t & 0x80:
            result = not result
        s.set_matches = (s.set_matches or result) if is_or else (s.set_matches and result)
    return V.NO_MATCH, dst, cc, None


def naive_decide(
    rules: Sequence[Rule],
    caps: Sequence[tuple[int, Sequence[Rule]]],
    c: FrameContext,
    prng: Callable[[], int],
    no_tee: bool,
) -> tuple[int, list[tuple[int, int, int, int]], int | None]:
    dest = c.our_address if c.inbound else c.peer
    tee_ok = c.inbound or not no_tee
    verdict, final, cc, _ = naive_filter(rules, c, prng)
    sends: list[tuple[int, int, int, int]] = []
    accept = 0
    cap_id = None
    if verdict == V.DROP:
        return 0, [], None
    if verdict == V.NO_MATCH:
        for cid, crules in caps:
            v2, f2, cc2, _ = naive_filter(crules, c, prng)
            if v2 in (V.ACCEPT, V.SUPER_ACCEPT, V.REDIRECT):
                accept = 2 if (c.inbound and v2 == V.SUPER_ACCEPT) else 1
                cap_id, final = cid, f2
                if cc2 is not None and cc2[1] != 0 and tee_ok:
                    sends.append(cc2)
                break
    else:
        accept = 2 if verdict == V.SUPER_ACCEPT else 1
    if not accept:
        return 0, [], None
    if cc is not None and cc[1] != 0 and tee_ok:
        sends.append(cc)
    if final not in (dest, 0):
        sends.append((4, final, len(c.payload), 0x0A if c.inbound else 0x04))
        accept = 0
    return accept, sends, cap_id


# ------------------------------------------------------------ differential strategies

ADDRS = [ME, PEER, OTHER, 0, (0xFF << 40) | OTHER]
MACS = [MAC_ME, MAC_PEER, BCAST, MCAST, 0]
V4_POOL = ["10.1.2.3", "10.9.8.7", "192.168.1.1", "0.0.0.0", "255.255.255.255"]
V6_POOL = ["fd00::1", "fd00::2", "fe80::1", "::", "::ffff:10.1.2.3", "2001:db8::99"]
V4_PACKED = [ipaddress.IPv4Address(a).packed for a in V4_POOL]
V6_PACKED = [ipaddress.IPv6Address(a).packed for a in V6_POOL]
PORTS = [0, 22, 53, 80, 443, 8000, 65535]
PROTOS = [1, 1, 6, 6, 17, 17, 58, 58, 132, 136, 0, 44, 50, 255]
ETHERTYPES = [0x0800, 0x86DD, 0x0806, 0x1234]
KINDS = [*range(0, 8), *range(20, 56)]
TYPE_FLAGS = [0, 0, 0x80, 0x40, 0xC0]
CHAR_BITS = [*range(12), 59, 60, 61, 62, 63]
PRNG_POOL = [0, 1, 1 << 31, M64, 0xFFFFFFFF, 5 << 32]


class Entropy:
    """Choices read from a hypothesis-drawn byte string (past its end: all zeros).

    One ``binary`` draw per example instead of ~100 small draws keeps thousands of
    examples affordable, and hypothesis still shrinks the bytes (towards zeros, i.e.
    towards the first choice everywhere)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def num(self, lo: int, hi: int) -> int:
        span = hi - lo
        if span <= 0:
            return lo
        width = (span.bit_length() + 7) // 8
        chunk = self.data[self.pos : self.pos + width]
        self.pos += width
        return lo + int.from_bytes(chunk, "big") % (span + 1)


def num(e: Entropy, lo: int, hi: int) -> int:
    return e.num(lo, hi)


def pick(e: Entropy, seq: Sequence[T_]) -> T_:
    return seq[e.num(0, len(seq) - 1)]


def blob(e: Entropy, max_size: int) -> bytes:
    return bytes(e.num(0, 255) for _ in range(e.num(0, max_size)))


def l4_payload(draw: Entropy, proto: int) -> bytes:
    sport, dport = pick(draw, PORTS), pick(draw, PORTS)
    if proto == 6:
        return tcp(sport, dport, num(draw, 0, 255), bool(num(draw, 0, 1)))
    if proto in (17, 132, 136):
        return udp(sport, dport, blob(draw, 8))
    if proto in (1, 58):
        return icmp(pick(draw, [0, 3, 8, 128, 129, 135, 136]), num(draw, 0, 3))
    return blob(draw, 24)


def frame_of(draw: Entropy) -> tuple[int, bytes]:
    kind = pick(draw, ["v4", "v4", "v6", "v6", "arp", "ndp", "garbage"])
    if kind == "v4":
        proto = pick(draw, PROTOS)
        opts = pick(draw, [b"", b"\x01\x01\x01\x00", bytes(8)])
        l4 = l4_payload(draw, proto)
        frame = ipv4(proto, l4, pick(draw, V4_POOL), pick(draw, V4_POOL), num(draw, 0, 255), opts)
        if num(draw, 0, 9) == 0:  # corrupt the IHL
            frame = bytes((0x40 | num(draw, 0, 15),)) + frame[1:]
        et = 0x0800
    elif kind == "v6":
        proto = pick(draw, PROTOS)
        chain = [pick(draw, [0, 43, 60, 135, 44]) for _ in range(num(draw, 0, 3))]
        rest = l4_payload(draw, proto)
        nh = proto
        for h in reversed(chain):
            rest = ext_header(nh, num(draw, 0, 2)) + rest
            nh = h
        frame = ipv6(nh, rest, pick(draw, V6_POOL), pick(draw, V6_POOL), num(draw, 0, 255))
        et = 0x86DD
    elif kind == "arp":
        frame = arp(pick(draw, V4_POOL), pick(draw, V4_POOL))
        et = 0x0806
    elif kind == "ndp":
        frame = ndp(pick(draw, [135, 136, 128]), pick(draw, V6_POOL))
        et = 0x86DD
    else:
        frame = blob(draw, 120)
        et = pick(draw, ETHERTYPES)
    cut = num(draw, 0, 5)
    if cut == 0:
        frame = frame[: num(draw, 0, len(frame))]
    elif cut == 1:  # just short of the end: the length checks' boundaries
        frame = frame[: max(0, len(frame) - num(draw, 0, 24))]
    return et, frame


def ip_rule(draw: Entropy, t: int, v6: bool) -> Rule:
    ip = pick(draw, V6_PACKED if v6 else V4_PACKED)
    limit = 128 if v6 else 32
    bits = num(draw, 0, limit) if num(draw, 0, 3) else num(draw, 0, 255)
    if num(draw, 0, 1):  # mask the rule address (as a sensible controller would)
        b = min(bits, limit)
        mask = (((1 << b) - 1) << (limit - b)) if b else 0
        ip = (int.from_bytes(ip, "big") & mask).to_bytes(len(ip), "big")
    return Rule(t, ip=ip, ip_bits=bits)


def rule_of(draw: Entropy) -> Rule:
    kind = pick(draw, KINDS)
    t = kind | pick(draw, TYPE_FLAGS)
    if kind in (2, 3, 4):
        return Rule(
            t,
            address=pick(draw, ADDRS),
            flags=num(draw, 0, 3),
            length=pick(draw, [0, 1, 20, 60, 5000]),
        )
    if kind in (24, 25):
        return Rule(t, zt=pick(draw, ADDRS) & M40)
    if kind == 26:
        return Rule(t, vlan_id=num(draw, 0, 3))
    if kind == 27:
        return Rule(t, vlan_pcp=num(draw, 0, 3))
    if kind == 28:
        return Rule(t, vlan_dei=num(draw, 0, 3))
    if kind in (29, 30):
        return Rule(t, mac=pick(draw, MACS))
    if kind in (31, 32, 33, 34):
        return ip_rule(draw, t, kind >= 33)
    if kind == 35:
        a, b = num(draw, 0, 255), num(draw, 0, 255)
        return Rule(t, tos_mask=num(draw, 0, 255), start=min(a, b), end=max(a, b))
    if kind == 36:
        return Rule(t, ip_protocol=pick(draw, PROTOS))
    if kind == 37:
        return Rule(t, ethertype=pick(draw, ETHERTYPES))
    if kind == 38:
        return Rule(
            t,
            icmp_type=pick(draw, [0, 8, 128, 135]),
            icmp_code=num(draw, 0, 1),
            icmp_flags=num(draw, 0, 3),
        )
    if kind in (39, 40):
        a, b = pick(draw, PORTS), pick(draw, PORTS)
        return Rule(t, start=min(a, b), end=max(a, b))
    if kind == 41:
        chars = 0
        for _ in range(num(draw, 0, 3)):
            chars |= 1 << pick(draw, CHAR_BITS)  # OR, not +: a bit may be drawn twice
        return Rule(t, characteristics=chars)
    if kind == 42:
        a, b = num(draw, 0, 120), num(draw, 0, 120)
        return Rule(t, start=min(a, b), end=max(a, b))
    if kind == 43:
        return Rule(t, probability=pick(draw, [0, 1 << 31, 0xFFFFFFFF]))
    if 44 <= kind <= 50:
        return Rule(t, tag_id=num(draw, 0, 3), tag_value=num(draw, 0, 7))
    if kind == 51:
        start = num(draw, 0, 300)
        end = num(draw, start, start + 300) if num(draw, 0, 1) else num(draw, 0, M64)
        return Rule(t, start=start, end=end, idx=num(draw, 0, 60), int_format=num(draw, 0, 255))
    return Rule(t)  # DROP, ACCEPT, BREAK, PRIORITY, unknown action/match types


def table_of(draw: Entropy) -> list[Rule]:
    rules = [rule_of(draw) for _ in range(num(draw, 0, 14))]
    if num(draw, 0, 1):  # usually end on a decision
        rules.append(Rule(pick(draw, [T.ACTION_ACCEPT, T.ACTION_DROP])))
    return rules


def tags_of(draw: Entropy) -> dict[int, int]:
    return {num(draw, 0, 3): num(draw, 0, 7) for _ in range(num(draw, 0, 3))}


def context_of(draw: Entropy) -> FrameContext:
    et, frame = frame_of(draw)
    pool = V4_PACKED + V6_PACKED
    ip_bits = num(draw, 0, (1 << len(pool)) - 1) if num(draw, 0, 2) else -1
    owned = {ip for i, ip in enumerate(pool) if ip_bits >= 0 and ip_bits >> i & 1}
    mac_bits = num(draw, 0, (1 << len(MACS)) - 1) if num(draw, 0, 2) else -1
    owned_macs = {m for i, m in enumerate(MACS) if mac_bits >= 0 and mac_bits >> i & 1}
    return FrameContext(
        network_id=NWID,
        our_address=ME,
        peer=pick(draw, ADDRS) & M40,
        inbound=bool(num(draw, 0, 1)),
        mac_source=pick(draw, MACS),
        mac_dest=pick(draw, MACS),
        ethertype=et,
        payload=frame,
        vlan_id=pick(draw, [0, 0, 1]),
        our_tags=tags_of(draw),
        peer_tags=tags_of(draw),
        unsupported_match_result=bool(num(draw, 0, 1)),
        ip_owned=(lambda ip: ip in owned) if ip_bits >= 0 else None,
        mac_owned=(lambda mac: mac in owned_macs) if mac_bits >= 0 else None,
    )


def cycling(values: list[int]) -> Callable[[], int]:
    it: Iterator[int] = itertools.cycle(values)
    return lambda: next(it)


def prng_of(draw: Entropy) -> list[int]:
    return [pick(draw, PRNG_POOL) for _ in range(num(draw, 1, 4))]


entropy = st.binary(min_size=2048, max_size=2048).map(Entropy)


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entropy)
def test_differential_filter_frame(e: Entropy) -> None:
    rules, c, rand = table_of(e), context_of(e), prng_of(e)
    note(f"rules={rules}\ncontext={c}\nprng={rand}")
    got = filter_frame(rules, c, cycling(rand))
    tee = got.tee
    got_t = (
        got.verdict,
        got.zt_dest,
        None if tee is None else (int(tee.kind), tee.target, tee.length, tee.ext_flags),
        got.qos_bucket,
    )
    assert got_t == naive_filter(rules, c, cycling(rand))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entropy)
def test_differential_with_capabilities(e: Entropy) -> None:
    rules = table_of(e)
    caps = [(num(e, 0, 99), table_of(e)) for _ in range(num(e, 0, 3))]
    c, rand, no_tee = context_of(e), prng_of(e), bool(num(e, 0, 1))
    note(f"rules={rules}\ncaps={caps}\ncontext={c}\nprng={rand}\nno_tee={no_tee}")
    d = filter_with_capabilities(rules, caps, c, cycling(rand), no_tee=no_tee)
    sends = [(int(a.kind), a.target, a.length, a.ext_flags) for a in d.actions]
    assert (d.accept, sends, d.capability_id) == naive_decide(rules, caps, c, cycling(rand), no_tee)


@given(st.binary(min_size=40, max_size=120))
def test_ipv6_walk_agrees(data: bytes) -> None:
    assert ipv6_payload(data) == naive_v6_walk(data)


BOUNDARY_FRAMES: list[tuple[int, bytes]] = [
    (V4_ET, TCP4),
    (V4_ET, ipv4(6, tcp(flags=0xFF, ns=True), options=bytes(8))),
    (V4_ET, UDP4),
    (V4_ET, ICMP4),
    (V4_ET, ipv4(132, udp(dport=0))),
    (V6_ET, TCP6),
    (V6_ET, ipv6(0, ext_header(43, 1) + ext_header(6) + tcp(flags=0x3F, ns=True))),
    (V6_ET, ipv6(60, ext_header(17, 2) + udp(sport=0, dport=7))),
    (V6_ET, ipv6(135, ext_header(58) + icmp(128, 1))),
    (V6_ET, ndp(135)),
    (V6_ET, ndp(136)),
    (ARP_ET, ARP),
]


def _probe_rules() -> list[Rule]:
    probes = [
        *(R(T.MATCH_IP_PROTOCOL, ip_protocol=p) for p in (1, 6, 17, 58, 132, 60)),
        *(R(T.MATCH_ICMP, icmp_type=t) for t in (8, 128, 135)),
        *(R(T.MATCH_ICMP, icmp_type=t, icmp_code=1, icmp_flags=1) for t in (8, 128)),
        R(T.MATCH_IP_SOURCE_PORT_RANGE, start=0, end=65535),
        R(T.MATCH_IP_DEST_PORT_RANGE, start=0, end=65535),
        R(T.MATCH_IP_DEST_PORT_RANGE, start=80, end=80),
        R(T.MATCH_CHARACTERISTICS, characteristics=0xFFF),
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_SENDER_IP_AUTHENTICATED),
        R(T.MATCH_IPV4_SOURCE, ip=bytes(4), ip_bits=0),
        R(T.MATCH_IPV4_DEST, ip=bytes((10, 9, 8, 7)), ip_bits=32),
        R(T.MATCH_IPV6_SOURCE, ip=bytes(16), ip_bits=0),
        R(T.MATCH_IPV6_DEST, ip=ipaddress.IPv6Address("fd00::2").packed, ip_bits=128),
        R(T.MATCH_IP_TOS, tos_mask=0, start=0, end=0),
        R(T.MATCH_FRAME_SIZE_RANGE, start=20, end=48),
    ]
    for idx in (0, 6, 12, 33, 40, 56):
        for fmt in (7, 15, 31, 63, 0x80 | 7, 0x80 | 11, 0x80 | 63):
            probes.append(R(T.MATCH_INTEGER_RANGE, start=1, end=M64, idx=idx, int_format=fmt))
    return probes


PROBES = _probe_rules()


@pytest.mark.parametrize(
    ("et", "frame"),
    BOUNDARY_FRAMES,
    ids=lambda v: f"{v:04x}" if isinstance(v, int) else str(len(v)),
)
def test_differential_every_truncation(et: int, frame: bytes) -> None:
    """Every prefix of some real frames against every length-sensitive match, both
    directions, with and without NOT: the boundaries random frames rarely hit."""
    for n in range(len(frame) + 1):
        for inbound in (False, True):
            c = ctx(frame[:n], et, inbound=inbound, ip_owned=lambda ip: ip[-1] in (3, 0x99))
            for probe in PROBES:
                for rule in (probe, replace(probe, t=probe.t | 0x80)):
                    got = filter_frame([rule, ACCEPT], c, no_random)
                    want = naive_filter([rule, ACCEPT], c, no_random)
                    assert (got.verdict, got.zt_dest) == want[:2], (n, inbound, rule)


def _context_probes() -> list[Rule]:
    probes = list(PROBES)
    for bits in (33, 40, 50, 63, 64, 100, 200, 255):
        probes.append(R(T.MATCH_IPV4_SOURCE, ip=bytes((10, 200, 0, 0)), ip_bits=bits))
        probes.append(R(T.MATCH_IPV4_DEST, ip=bytes((10, 9, 8, 6)), ip_bits=bits))
    for bits in (0, 8, 127, 128, 129, 150, 191, 192, 193, 255):
        probes.append(R(T.MATCH_IPV6_SOURCE, ip=bytes((0xFD,)) + bytes(15), ip_bits=bits))
        probes.append(
            R(T.MATCH_IPV6_DEST, ip=ipaddress.IPv6Address("fd00::2").packed, ip_bits=bits)
        )
    for bit in (*range(12), 59, 60, 61, 62, 63):
        probes.append(R(T.MATCH_CHARACTERISTICS, characteristics=1 << bit))
    for kind in range(44, 51):
        for tag_id, value in ((1, 4), (1, 0), (2, 7), (3, 3)):
            probes.append(R(kind, tag_id=tag_id, tag_value=value))
    for addr in (ME, PEER, OTHER, 0):
        probes.append(R(T.MATCH_SOURCE_ZEROTIER_ADDRESS, zt=addr))
        probes.append(R(T.MATCH_DEST_ZEROTIER_ADDRESS, zt=addr))
    for mac in (MAC_ME, MAC_PEER, BCAST):
        probes.append(R(T.MATCH_MAC_SOURCE, mac=mac))
        probes.append(R(T.MATCH_MAC_DEST, mac=mac))
    probes += [R(T.MATCH_VLAN_ID, vlan_id=v) for v in (0, 1)]
    probes += [R(T.MATCH_VLAN_PCP, vlan_pcp=v) for v in (0, 1)]
    probes += [R(T.MATCH_VLAN_DEI, vlan_dei=v) for v in (0, 1)]
    probes += [R(T.MATCH_ETHERTYPE, ethertype=e) for e in (V4_ET, V6_ET, ARP_ET)]
    probes += [Rule(20), Rule(63)]
    return probes


@pytest.mark.parametrize("inbound", [False, True])
def test_differential_probe_contexts(inbound: bool) -> None:
    """Each match alone (and NOTed, and after a TEE-to-me that super-accepts inbound)
    over whole frames in many contexts."""
    tee_me = [R(T.MATCH_ETHERTYPE, ethertype=1), R(T.ACTION_TEE, address=ME)]
    contexts_ = [
        ctx(
            frame,
            et,
            inbound=inbound,
            peer=peer,
            mac_dest=mac_dest,
            our_tags=ours,
            peer_tags=theirs,
            unsupported_match_result=flag,
            ip_owned=lambda ip: ip[-1] in (3, 0x99),
            mac_owned=lambda mac: mac == MAC_ME,
        )
        for et, frame in BOUNDARY_FRAMES
        for peer in (PEER, 0)
        for mac_dest in (MAC_PEER, BCAST, MCAST)
        for ours, theirs, flag in (({1: 4, 2: 7}, {1: 4}, False), ({}, {1: 0, 3: 3}, True))
    ]
    for c in contexts_:
        for probe in _context_probes():
            for rule in (probe, replace(probe, t=probe.t | 0x80)):
                for prefix in ([], tee_me):
                    rules = [*prefix, rule, DROP, ACCEPT]
                    got = filter_frame(rules, c, no_random)
                    want = naive_filter(rules, c, no_random)
                    assert (got.verdict, got.zt_dest) == want[:2], (c, rule)
