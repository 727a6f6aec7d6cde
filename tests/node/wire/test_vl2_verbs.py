"""The VL2 verb payload codecs and derived addresses (PROTOCOL-NETWORK-SERVICE A.5,
PROTOCOL-CORE §6.7-§6.15), on their own: layouts, round trips, the inline COM,
truncation, and random bytes."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.network import vector_identities
from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.com import CertificateOfMembership
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.mac import BROADCAST, MAC
from ztone.node.wire.vl2_verbs import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    EXT_FRAME_FLAG_COM,
    MCFRAME_FLAG_COM,
    MCFRAME_FLAG_GATHER_LIMIT,
    MCFRAME_FLAG_SOURCE_MAC,
    ConfigRequest,
    Frame,
    MulticastGroup,
    address_resolution_group,
    arp_request_target,
    ndp_emulated_advertisement,
    parse_config_request,
    parse_ext_frame,
    parse_frame,
    parse_gather,
    parse_gather_results,
    parse_multicast_frame,
    parse_multicast_like,
    rfc4193_address,
    serialize_config_request,
    serialize_ext_frame,
    serialize_frame,
    serialize_gather,
    serialize_gather_results,
    serialize_multicast_frame,
    serialize_multicast_likes,
    sixplane_address,
)

IDS = vector_identities()
CTRL = IDS[0]
NWID = (int(CTRL.address) << 24) | 0x000042
MEMBER = IDS[2]
COM = CertificateOfMembership.make(1_700_000_000_000, 7_200_000, NWID, MEMBER).sign(CTRL)
MAC_A = 0x32AABBCCDDEE
MAC_B = 0x321122334455
GROUP = MulticastGroup(0x333300000001, 0)


def parse_com(data: bytes | bytearray | memoryview, offset: int) -> tuple[
        CertificateOfMembership | None, int]:  # fmt: skip
    return CertificateOfMembership.parse(data, offset)


# --- derived addresses -----------------------------------------------------------------


def test_rfc4193_and_sixplane() -> None:
    nwid, address = 0x1FAD486CAFE468E2, 0x4B3BACDDB4
    assert str(rfc4193_address(nwid, address)) == "fd1f:ad48:6caf:e468:e299:934b:3bac:ddb4/88"
    # 6PLANE: the network id folded to 32 bits (0x1fad486c ^ 0xafe468e2 = 0xb049208e)
    assert str(sixplane_address(nwid, address)) == "fcb0:4920:8e4b:3bac:ddb4::1/40"


def test_address_resolution_groups() -> None:
    v4 = ipaddress.IPv4Address("198.19.0.7")
    assert address_resolution_group(v4) == MulticastGroup(BROADCAST, int(v4))
    v6 = ipaddress.IPv6Address("fd00::12:3456")
    assert address_resolution_group(v6) == MulticastGroup(0x3333FF123456, 0)
    assert str(MulticastGroup(0x3333FF123456, 0)) == "33:33:ff:12:34:56/00000000"


def test_arp_request_target() -> None:
    arp = bytearray(28)
    arp[0:8] = bytes.fromhex("0001080006040001")
    arp[24:28] = bytes((198, 19, 0, 9))
    assert arp_request_target(ETHERTYPE_ARP, arp) == 0xC6130009
    assert arp_request_target(ETHERTYPE_IPV4, arp) is None
    reply = bytearray(arp)
    reply[7] = 2
    assert arp_request_target(ETHERTYPE_ARP, reply) is None
    assert arp_request_target(ETHERTYPE_ARP, arp[:27]) is None


# --- FRAME / EXT_FRAME -----------------------------------------------------------------


def test_frame_layout() -> None:
    wire = serialize_frame(NWID, ETHERTYPE_IPV4, b"payload")
    assert wire == NWID.to_bytes(8, "big") + b"\x08\x00payload"
    assert parse_frame(wire) == Frame(NWID, ETHERTYPE_IPV4, b"payload")
    with pytest.raises(MalformedPacket):
        parse_frame(wire[:9])


def test_ext_frame_layout_and_roundtrip() -> None:
    wire = serialize_ext_frame(NWID, 0x10, MAC_B, MAC_A, ETHERTYPE_IPV6, b"data")
    assert wire[8] == 0x10 and wire[9:15] == MAC_B.to_bytes(6, "big")
    assert wire[15:21] == MAC_A.to_bytes(6, "big") and wire[21:23] == b"\x86\xdd"
    ext = parse_ext_frame(wire, parse_com)
    assert (ext.nwid, ext.flags, ext.com, ext.destination, ext.source, ext.ethertype,
            ext.payload) == (NWID, 0x10, None, MAC_B, MAC_A, ETHERTYPE_IPV6, b"data")  # fmt: skip


def test_ext_frame_inline_com() -> None:
    plain = serialize_ext_frame(NWID, 0, MAC_B, MAC_A, ETHERTYPE_IPV4, b"x")
    wire = plain[:8] + bytes((EXT_FRAME_FLAG_COM,)) + COM.serialize() + plain[9:]
    ext = parse_ext_frame(wire, parse_com)
    assert ext.com == COM and ext.source == MAC_A and ext.payload == b"x"
    skipped = parse_ext_frame(wire, lambda data, pos: (None, pos + len(COM.serialize())))
    assert skipped.com is None and skipped.source == MAC_A
    for cut in range(9 + len(COM.serialize()) + 14):
        with pytest.raises(MalformedPacket):
            parse_ext_frame(wire[:cut], parse_com)


# --- MULTICAST_LIKE / GATHER / gather results ------------------------------------------


def test_multicast_likes_split_and_parse() -> None:
    groups = [MulticastGroup(0x01005E000000 | i, i) for i in range(100)]
    payloads = serialize_multicast_likes(NWID, groups, budget=18 * 30)
    assert [len(p) // 18 for p in payloads] == [30, 30, 30, 10]
    got = [entry for p in payloads for entry in parse_multicast_like(p)]
    assert got == [(NWID, g) for g in groups]
    assert parse_multicast_like(payloads[0] + b"\x00" * 17) == parse_multicast_like(payloads[0])


def test_gather_layout_with_and_without_com() -> None:
    wire = serialize_gather(NWID, GROUP, 32, None)
    assert len(wire) == 23 and wire[8] == 0
    g = parse_gather(wire, parse_com)
    assert (g.nwid, g.flags, g.group, g.limit, g.com) == (NWID, 0, GROUP, 32, None)
    with_com = serialize_gather(NWID, GROUP, 32, COM.serialize())
    assert with_com[8] == 0x01
    assert parse_gather(with_com, parse_com).com == COM
    for cut in range(23):
        with pytest.raises(MalformedPacket):
            parse_gather(wire[:cut], parse_com)


def test_gather_results() -> None:
    addresses = [0x1122334455, 0xA49ECF6441]
    blob = serialize_gather_results(7, addresses)
    assert blob == bytes.fromhex("00000007 0002 1122334455 a49ecf6441")
    assert parse_gather_results(b"xx" + blob, 2) == (7, [Address(a) for a in addresses])
    for cut in range(2, len(blob) + 2):
        with pytest.raises(MalformedPacket):
            parse_gather_results((b"xx" + blob)[:cut], 2)


# --- MULTICAST_FRAME -------------------------------------------------------------------


BOTH = MCFRAME_FLAG_GATHER_LIMIT | MCFRAME_FLAG_SOURCE_MAC


@pytest.mark.parametrize("flags", [0, MCFRAME_FLAG_GATHER_LIMIT, MCFRAME_FLAG_SOURCE_MAC, BOTH])
def test_multicast_frame_roundtrip(flags: int) -> None:
    source = MAC_A if flags & MCFRAME_FLAG_SOURCE_MAC else None
    wire = serialize_multicast_frame(NWID, flags, 16, source, GROUP, ETHERTYPE_IPV6, b"mc")
    extra = (4 if flags & MCFRAME_FLAG_GATHER_LIMIT else 0) + (6 if source else 0)
    assert len(wire) == 9 + extra + 12 + 2
    mf = parse_multicast_frame(wire, parse_com)
    assert (mf.nwid, mf.flags, mf.com, mf.source, mf.group, mf.ethertype, mf.payload) == (
        NWID, flags, None, source, GROUP, ETHERTYPE_IPV6, b"mc")  # fmt: skip
    assert mf.gather_limit == (16 if flags & MCFRAME_FLAG_GATHER_LIMIT else 0)
    for cut in range(len(wire) - 2):
        with pytest.raises(MalformedPacket):
            parse_multicast_frame(wire[:cut], parse_com)


def test_multicast_frame_inline_com() -> None:
    plain = serialize_multicast_frame(NWID, MCFRAME_FLAG_SOURCE_MAC, 0, MAC_A, GROUP,
                                      ETHERTYPE_IPV4, b"p")  # fmt: skip
    flags = MCFRAME_FLAG_SOURCE_MAC | MCFRAME_FLAG_COM
    wire = plain[:8] + bytes((flags,)) + COM.serialize() + plain[9:]
    mf = parse_multicast_frame(wire, parse_com)
    assert mf.com == COM and mf.source == MAC_A and mf.group == GROUP and mf.payload == b"p"


def test_multicast_frame_payload_capped() -> None:
    wire = serialize_multicast_frame(NWID, 0, 0, None, GROUP, ETHERTYPE_IPV4, bytes(20_000))
    assert len(parse_multicast_frame(wire, parse_com).payload) == 10_000


# --- NETWORK_CONFIG_REQUEST ------------------------------------------------------------


def test_config_request_roundtrip_and_old_form() -> None:
    wire = serialize_config_request(NWID, b"meta", 5, 1_700_000_000_000)
    assert wire[8:10] == b"\x00\x04" and wire[10:14] == b"meta"
    assert parse_config_request(wire) == ConfigRequest(NWID, b"meta", 5, 1_700_000_000_000)
    # without revision and timestamp (older senders) both read as 0
    assert parse_config_request(wire[:14]) == ConfigRequest(NWID, b"meta", 0, 0)
    for cut in range(14):
        with pytest.raises(MalformedPacket):
            parse_config_request(wire[:cut])


# --- NDP emulation ---------------------------------------------------------------------


def _icmpv6_sum(src: bytes, dst: bytes, message: bytes) -> int:
    data = src + dst + len(message).to_bytes(4, "big") + b"\x00\x00\x00\x3a" + message
    data += b"\x00" * (len(data) % 2)
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _solicitation(target: bytes) -> bytes:
    icmp = b"\x87\x00\x00\x00" + bytes(4) + target
    return b"\x60\x00\x00\x00" + len(icmp).to_bytes(2, "big") + b"\x3a\xff" + bytes(32) + icmp


def test_ndp_emulated_advertisement_for_a_member() -> None:
    me, other = 0x4B3BACDDB4, 0xA49ECF6441
    mine = rfc4193_address(NWID, me)
    target = rfc4193_address(NWID, other).ip.packed
    got = ndp_emulated_advertisement(NWID, me, [mine], _solicitation(target))
    assert got is not None
    mac, ipv6 = got
    assert mac == int(MAC.from_address(other, NWID))
    assert ipv6[6] == 58 and ipv6[8:24] == target and ipv6[24:40] == mine.ip.packed
    icmp = ipv6[40:]
    assert icmp[0] == 136 and icmp[8:24] == target and icmp[26:32] == mac.to_bytes(6, "big")
    assert _icmpv6_sum(target, mine.ip.packed, icmp) == 0xFFFF  # the checksum is right
    # my own address, a non-member address, and a non-solicitation: no answer
    assert ndp_emulated_advertisement(NWID, me, [mine], _solicitation(mine.ip.packed)) is None
    stranger = ipaddress.IPv6Address("fd00::1").packed
    assert ndp_emulated_advertisement(NWID, me, [mine], _solicitation(stranger)) is None
    assert ndp_emulated_advertisement(NWID, me, [mine], _solicitation(target)[:63]) is None


def test_ndp_emulated_advertisement_sixplane() -> None:
    me, other = 0x4B3BACDDB4, 0xA49ECF6441
    mine = sixplane_address(NWID, me)
    target = sixplane_address(NWID, other).ip.packed
    got = ndp_emulated_advertisement(NWID, me, [InetAddress.parse("198.19.0.1/24"), mine],
                                     _solicitation(target))  # fmt: skip
    assert got is not None and got[0] == int(MAC.from_address(other, NWID))


# --- fuzz ------------------------------------------------------------------------------


@given(st.binary(max_size=400))
def test_random_payloads_raise_only_malformed(data: bytes) -> None:
    for parse in (parse_frame, parse_config_request):
        try:
            parse(data)
        except MalformedPacket:
            pass
    for parse_with_com in (parse_ext_frame, parse_gather, parse_multicast_frame):
        try:
            parse_with_com(data, parse_com)
        except MalformedPacket:
            pass
    try:
        parse_gather_results(data, 0)
    except MalformedPacket:
        pass
    assert len(parse_multicast_like(data)) == len(data) // 18
    arp_request_target(ETHERTYPE_ARP, data)
    ndp_emulated_advertisement(NWID, 1, [rfc4193_address(NWID, 1)], data)


@given(st.integers(0, (1 << 64) - 1), st.binary(max_size=300), st.integers(0, (1 << 64) - 1),
       st.integers(0, (1 << 64) - 1))  # fmt: skip
def test_config_request_roundtrip(nwid: int, meta: bytes, rev: int, ts: int) -> None:
    wire = serialize_config_request(nwid, meta, rev, ts)
    assert parse_config_request(wire) == ConfigRequest(nwid, meta, rev, ts)
