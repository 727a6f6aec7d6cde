"""Property tests for every wire codec of the core.

For each: round-trip, every truncated prefix of a valid encoding raises
``MalformedPacket``, and random bytes raise nothing but ``MalformedPacket``.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.crypto.armor import PeerKey, armor, dearmor
from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.fragment import Fragment, Reassembler, is_fragment, parse_fragment, split
from ztone.node.wire.hello import Hello, MoonRecord, OkHello, make_hello_packet, parse_hello
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress, parse_inet, serialize_inet
from ztone.node.wire.mac import MAC
from ztone.node.wire.packet import (
    build_packet,
    compress,
    parse_header,
    uncompress,
    verb_of,
)

IDENT = Identity.from_string(
    "8e4df28b72:0:ac3d46abe0c21f3cfe7a6c8d6a85cfcffcb82fbd55af6a4d6350657c68200843fa2e16f9418bbd"
    "9702cae365f2af5fb4c420908b803a681d4daef6114d78a2d7:bd8dd6e4ce7022d2f812797a80c6ee8ad180dc4ebf"
    "301dec8b06d1be08832bddd63a2f1cfa7b2c504474c75bdc8898ba476ef92e8e2d0509f8441985171ff16e"
)
KEY = PeerKey(bytes(range(48)))

addresses = st.integers(min_value=1, max_value=(1 << 40) - 1).filter(lambda a: a >> 32 != 0xFF)
ipv4 = st.integers(0, (1 << 32) - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, (1 << 128) - 1).map(ipaddress.IPv6Address)
inets = st.builds(InetAddress, st.one_of(ipv4, ipv6), st.integers(0, 0xFFFF))
key_bytes = st.binary(min_size=1, max_size=12).filter(
    lambda k: not any(b in k for b in b"\x00\r\n=")
)


def _all_prefixes_raise(blob: bytes, parse: object) -> None:
    assert callable(parse)
    for n in range(len(blob)):
        with pytest.raises(MalformedPacket):
            parse(blob[:n])


@given(addresses)
def test_address_roundtrip(a: int) -> None:
    addr = Address(a)
    assert Address.from_bytes5(addr.to_bytes5()) == addr
    assert Address.parse(str(addr)) == addr
    _all_prefixes_raise(addr.to_bytes5(), Address.from_bytes5)


@given(st.integers(0, (1 << 48) - 1), st.integers(0, (1 << 64) - 1), addresses)
def test_mac_roundtrip(m: int, nwid: int, a: int) -> None:
    mac = MAC(m)
    assert MAC.from_bytes6(mac.to_bytes6()) == mac
    assert MAC.parse(str(mac)) == mac
    derived = MAC.from_address(a, nwid)
    assert derived.to_address(nwid) == a
    assert derived.is_zerotier_member(nwid)
    assert not derived.is_multicast
    _all_prefixes_raise(mac.to_bytes6(), MAC.from_bytes6)


@given(st.one_of(st.none(), inets))
def test_inetaddress_roundtrip(addr: InetAddress | None) -> None:
    blob = serialize_inet(addr)
    assert parse_inet(blob) == (addr, len(blob))
    assert parse_inet(blob + b"junk") == (addr, len(blob))
    _all_prefixes_raise(blob, parse_inet)
    if addr is not None:
        assert InetAddress.parse(str(addr)) == addr


@given(st.binary(max_size=64))
def test_inetaddress_random(data: bytes) -> None:
    try:
        parse_inet(data)
    except MalformedPacket:
        pass


@given(st.lists(st.tuples(key_bytes, st.binary(max_size=40)), max_size=8))
def test_dictionary_roundtrip(entries: list[tuple[bytes, bytes]]) -> None:
    d = Dictionary()
    for k, v in entries:
        d.add(k, v)
    blob = d.serialize()
    assert b"\x00" not in blob
    parsed = Dictionary.parse(blob)
    assert list(parsed) == entries
    for k, _ in entries:
        assert parsed.get(k) == next(ev for ek, ev in entries if ek == k)  # first match wins


@given(st.binary(max_size=200))
def test_dictionary_random_never_raises(data: bytes) -> None:
    d = Dictionary.parse(data)
    Dictionary.parse(d.serialize())  # serializing what we read is always readable


@given(st.integers(0, (1 << 64) - 1), st.integers(-(1 << 63), (1 << 63) - 1))
def test_dictionary_integers(u: int, i: int) -> None:
    d = Dictionary()
    d.add("u", u)
    d.add("i", i)
    p = Dictionary.parse(d.serialize())
    assert p.get_u64("u") == u
    assert p.get_i64("i") == i
    assert len(p.require("u")) == 16


def test_identity_prefixes() -> None:
    for private in (False, True):
        blob = IDENT.serialize(private)
        parsed, end = Identity.parse(blob)
        assert parsed == IDENT and end == len(blob)
        assert (parsed.secret is not None) == private
        _all_prefixes_raise(blob, Identity.parse)


@given(st.binary(max_size=160))
def test_identity_random(data: bytes) -> None:
    try:
        Identity.parse(data)
    except MalformedPacket:
        pass


@given(st.text(max_size=300))
def test_identity_string_random(text: str) -> None:
    try:
        Identity.from_string(text)
    except ValueError:
        pass


@given(
    st.binary(min_size=8, max_size=8),
    addresses,
    addresses,
    st.integers(0, 31),
    st.binary(max_size=2000),
)
def test_packet_roundtrip(pid: bytes, dst: int, src: int, verb: int, payload: bytes) -> None:
    packet = build_packet(pid, dst, src, verb, payload)
    header = parse_header(packet)
    assert header.packet_id.to_bytes(8, "big") == pid
    assert (header.destination, header.source) == (dst, src)
    assert verb_of(packet) == verb
    compressed = compress(bytearray(packet))
    assert len(compressed) <= len(packet)
    assert uncompress(compressed) == packet
    _all_prefixes_raise(bytes(packet[:28]), parse_header)


@given(st.binary(min_size=28, max_size=400))
def test_uncompress_random(data: bytes) -> None:
    packet = bytearray(data)
    packet[27] |= 0x80
    try:
        uncompress(packet)
    except MalformedPacket:
        pass


@settings(max_examples=50)
@given(st.binary(min_size=28, max_size=1500), st.sampled_from([0, 1, 3]))
def test_armor_roundtrip_and_random_dearmor(data: bytes, suite: int) -> None:
    packet = bytearray(data)
    packet[18] = 0
    plain = bytes(packet)
    armor(packet, KEY, suite)
    assert dearmor(packet, KEY)
    assert packet[27:] == plain[27:]
    assert dearmor(bytearray(data), KEY) in (True, False)  # random bytes: no exception


@given(st.binary(max_size=40))
def test_dearmor_short_random(data: bytes) -> None:
    assert dearmor(bytearray(data), KEY) is False or len(data) >= 28


@given(
    st.integers(0, (1 << 64) - 1),
    addresses,
    st.integers(2, 7),
    st.integers(0, 7),
    st.binary(min_size=1, max_size=100),
)
def test_fragment_roundtrip(pid: int, dst: int, total: int, hops: int, data: bytes) -> None:
    frag = Fragment(pid, Address(dst), total, 1, hops, data)
    blob = frag.serialize()
    assert is_fragment(blob)
    assert parse_fragment(blob) == frag
    _all_prefixes_raise(blob[:17], parse_fragment)


@settings(max_examples=50)
@given(st.binary(min_size=1433, max_size=9928), st.randoms(use_true_random=False))
def test_split_and_reassemble_any_order(data: bytes, rnd: object) -> None:
    packet = bytearray(data)
    packet[13] = 0x11  # a source address can never start with 0xff
    packet[18] |= 0x40
    pieces = split(packet, 1432)
    head, frags = pieces[0], [parse_fragment(p) for p in pieces[1:]]
    order: list[Fragment | bytes] = [head, *frags]
    rnd.shuffle(order)  # type: ignore[attr-defined]
    r = Reassembler()
    results = []
    for item in order:
        out = r.add_head(0, item) if isinstance(item, bytes) else r.add_fragment(0, item)
        if out is not None:
            results.append(out)
    assert results == [bytes(packet)]
    assert r.pending() == 0


@given(st.lists(st.binary(min_size=17, max_size=64), max_size=60))
def test_reassembler_random_fragments(datagrams: list[bytes]) -> None:
    r = Reassembler()
    for d in datagrams:
        blob = bytearray(d)
        blob[13] = 0xFF
        try:
            r.add_fragment(0, parse_fragment(blob))
        except MalformedPacket:
            pass
    assert r.pending() <= 32


def _hello() -> Hello:
    return Hello(
        12,
        (1, 14, 1),
        123456,
        IDENT.public_only(),
        InetAddress.parse("198.18.0.1/9993"),
        7,
        8,
        (MoonRecord(127, 5, 0), MoonRecord(127, 6, 9)),
    )


def test_hello_prefixes() -> None:
    wire = make_hello_packet(bytes(8), Address(0x1122334455), KEY, _hello())
    assert parse_hello(wire, KEY) == _hello()
    for n in range(len(wire)):
        # a prefix fails the MAC check, or (without key) parses only what is there
        with pytest.raises(MalformedPacket):
            parse_hello(wire[:n], KEY)
    for n in range(112):
        with pytest.raises(MalformedPacket):
            parse_hello(wire[:n], None)


@given(st.binary(max_size=300))
def test_hello_random(data: bytes) -> None:
    for key in (None, KEY):
        try:
            parse_hello(data, key)
        except MalformedPacket:
            pass


@given(
    st.integers(0, (1 << 64) - 1),
    st.one_of(st.none(), inets),
    st.binary(max_size=300),
)
def test_ok_hello_roundtrip(ts: int, ext: InetAddress | None, worlds: bytes) -> None:
    ok = OkHello(ts, 12, (1, 14, 1), ext, worlds)
    blob = ok.serialize()
    assert OkHello.parse(blob) == ok
    for n in range(13):
        with pytest.raises(MalformedPacket):
            OkHello.parse(blob[:n])


@given(st.binary(max_size=300))
def test_ok_hello_random(data: bytes) -> None:
    try:
        OkHello.parse(data)
    except MalformedPacket:
        pass
