"""The VL1 verb payload codecs (PROTOCOL-CORE §6.3-§6.6, §6.16, §6.19), on their own.

Offsets are absolute packet offsets (the payload starts at 28), so every packet here
is a 28-byte header of zeros followed by the payload.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.network import vector_identities
from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.verbs import (
    IDX_ERROR_PAYLOAD,
    IDX_OK_PAYLOAD,
    InRe,
    PushedPath,
    Rendezvous,
    in_re_payload,
    parse_error_code,
    parse_in_re,
    parse_ok_whois,
    parse_push_direct_paths,
    parse_rendezvous,
    parse_user_message,
    parse_whois,
    serialize_push_direct_paths,
)

HEADER = bytes(28)
IDS = vector_identities()


def packet(payload: bytes) -> bytes:
    return HEADER + payload


def endpoint(text: str) -> InetAddress:
    return InetAddress.parse(text)


# --- OK / ERROR ------------------------------------------------------------------------


def test_in_re_layout_and_roundtrip() -> None:
    head = in_re_payload(0x01, 0x1122334455667788)
    assert head == bytes.fromhex("011122334455667788")
    assert parse_in_re(packet(head)) == InRe(0x01, 0x1122334455667788)
    # the in-re verb keeps its low 5 bits only (the flag bits of a verb byte are dropped)
    assert parse_in_re(packet(bytes((0xE4,)) + bytes(8))).verb == 0x04
    assert IDX_OK_PAYLOAD == 37 and IDX_ERROR_PAYLOAD == 38


def test_error_code_follows_the_in_re() -> None:
    p = packet(in_re_payload(0x0B, 7) + b"\x06" + bytes.fromhex("1fad486cafe468e2"))
    assert parse_error_code(p) == 0x06
    assert p[IDX_ERROR_PAYLOAD:] == bytes.fromhex("1fad486cafe468e2")


@pytest.mark.parametrize("cut", range(IDX_OK_PAYLOAD))
def test_in_re_truncated(cut: int) -> None:
    with pytest.raises(MalformedPacket):
        parse_in_re(packet(in_re_payload(1, 2))[:cut])


def test_error_code_truncated() -> None:
    with pytest.raises(MalformedPacket):
        parse_error_code(packet(in_re_payload(1, 2)))


# --- WHOIS -----------------------------------------------------------------------------


def test_whois_addresses_and_trailing_bytes() -> None:
    p = packet(bytes.fromhex("1122334455 a49ecf6441 0102"))
    assert parse_whois(p) == [Address(0x1122334455), Address(0xA49ECF6441)]
    assert parse_whois(packet(b"")) == []


def test_ok_whois_takes_the_first_identity() -> None:
    first, second = IDS[0].public_only(), IDS[1].public_only()
    p = packet(in_re_payload(0x04, 9) + first.serialize() + second.serialize())
    got = parse_ok_whois(p)
    assert got == first and got.secret is None


def test_ok_whois_truncated_identity() -> None:
    blob = in_re_payload(0x04, 9) + IDS[0].public_only().serialize()
    with pytest.raises(MalformedPacket):
        parse_ok_whois(packet(blob[:-1]))


# --- RENDEZVOUS ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["198.18.0.7/9993", "2001:db8::5/40000"])
def test_rendezvous_layout_and_roundtrip(where: str) -> None:
    r = Rendezvous(Address(0x1122334455), endpoint(where), 0)
    wire = r.serialize()
    ip = r.endpoint.ip.packed
    assert wire[0] == 0 and wire[1:6] == bytes.fromhex("1122334455")
    assert int.from_bytes(wire[6:8], "big") == r.endpoint.port
    assert wire[8] == len(ip) and wire[9:] == ip
    assert parse_rendezvous(packet(wire)) == r


def test_rendezvous_bad_address_length() -> None:
    wire = bytearray(Rendezvous(Address(1), endpoint("198.18.0.7/9993")).serialize())
    wire[8] = 6
    with pytest.raises(MalformedPacket):
        parse_rendezvous(packet(bytes(wire) + bytes(2)))
    good = Rendezvous(Address(1), endpoint("198.18.0.7/9993")).serialize()
    for cut in range(len(good)):
        with pytest.raises(MalformedPacket):
            parse_rendezvous(packet(good[:cut]))


# --- PUSH_DIRECT_PATHS -----------------------------------------------------------------


def test_push_direct_paths_record_layout() -> None:
    (payload,) = serialize_push_direct_paths([endpoint("198.18.0.9/9993")])
    # count 1 | flags 0 | ext length 0 | type 4 | length 6 | 198.18.0.9 | port 9993
    assert payload == bytes.fromhex("0001 00 0000 04 06 c6120009 2709")
    assert parse_push_direct_paths(packet(payload)) == [PushedPath(0, endpoint("198.18.0.9/9993"))]


def test_push_direct_paths_splits_under_1200_bytes() -> None:
    eps = [InetAddress(ipaddress.IPv6Address(0x20010DB8 << 96 | i), 9993) for i in range(200)]
    payloads = serialize_push_direct_paths(eps)
    assert len(payloads) > 1
    assert all(28 + len(p) < 1200 for p in payloads)
    got = [x.endpoint for p in payloads for x in parse_push_direct_paths(packet(p))]
    assert got == eps


def test_push_direct_paths_skips_extensions_and_unknown_kinds() -> None:
    records = (
        b"\x01" + b"\x00\x02" + b"xy" + b"\x04\x06" + bytes((198, 18, 0, 1)) + b"\x27\x09"
        + b"\x00" + b"\x00\x00" + b"\x07\x03" + b"abc"  # an address type from the future
        + b"\x00" + b"\x00\x00" + b"\x06\x04" + b"wxyz"  # IPv6 too short to be one
    )  # fmt: skip
    got = parse_push_direct_paths(packet(b"\x00\x03" + records))
    assert got == [PushedPath(1, endpoint("198.18.0.1/9993")), PushedPath(0, None),
                   PushedPath(0, None)]  # fmt: skip


def test_push_direct_paths_truncated() -> None:
    (payload,) = serialize_push_direct_paths([endpoint("198.18.0.9/9993")])
    for cut in range(len(payload)):
        with pytest.raises(MalformedPacket):
            parse_push_direct_paths(packet(payload[:cut]))


# --- USER_MESSAGE ----------------------------------------------------------------------


def test_user_message() -> None:
    assert parse_user_message(packet(bytes.fromhex("00000000000003e8") + b"hi")) == (1000, b"hi")
    with pytest.raises(MalformedPacket):
        parse_user_message(packet(bytes(7)))


# --- fuzz ------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_random_payloads_raise_only_malformed(data: bytes) -> None:
    p = packet(data)
    for parse in (parse_in_re, parse_error_code, parse_ok_whois, parse_rendezvous,
                  parse_push_direct_paths, parse_user_message):  # fmt: skip
        try:
            parse(p)
        except MalformedPacket:
            pass
    assert len(parse_whois(p)) == len(data) // 5


@given(st.lists(st.tuples(st.booleans(), st.integers(0, (1 << 128) - 1), st.integers(0, 65535)),
                max_size=120))  # fmt: skip
def test_push_direct_paths_roundtrip(specs: list[tuple[bool, int, int]]) -> None:
    eps = [
        InetAddress(ipaddress.IPv6Address(n) if v6 else ipaddress.IPv4Address(n & 0xFFFFFFFF), port)
        for v6, n, port in specs
    ]
    got = [x.endpoint for p in serialize_push_direct_paths(eps)
           for x in parse_push_direct_paths(packet(p))]  # fmt: skip
    assert got == eps
