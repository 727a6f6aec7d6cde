"""The SOCKS5 server handshake (RFC 1928, RFC 1929), sans I/O: byte-exact answers,
every way to fail, any split of the input, and hypothesis fuzz (nothing raises)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.service.socks5_codec import (
    MAX_MESSAGE,
    BadDatagram,
    Command,
    Failure,
    Reply,
    Request,
    Socks5Handshake,
    build_udp_datagram,
    ip_literal,
    parse_udp_datagram,
    reply,
)

V4_CONNECT = bytes([5, 1, 0, 1, 10, 147, 17, 5, 0, 80])
V6_CONNECT = bytes([5, 1, 0, 4]) + ipaddress.IPv6Address("fd00::5").packed + b"\x01\xbb"


def test_no_auth_connect_v4() -> None:
    h = Socks5Handshake()
    assert h.receive(b"\x05\x01\x00") == (b"\x05\x00", None)
    out, outcome = h.receive(V4_CONNECT + b"GET /")
    assert out == b""
    assert outcome == Request(Command.CONNECT, ipaddress.ip_address("10.147.17.5"), 80)
    assert h.done and h.leftover() == b"GET /"
    assert h.receive(b"more") == (b"", None)


def test_connect_v6_and_ip_literal_names() -> None:
    h = Socks5Handshake()
    out, outcome = h.receive(b"\x05\x02\x02\x00" + V6_CONNECT)
    assert out == b"\x05\x00"
    assert outcome == Request(Command.CONNECT, ipaddress.ip_address("fd00::5"), 443)
    for name, ip in ((b"10.0.0.1", "10.0.0.1"), (b"[fd00::1]", "fd00::1"), (b"fd00::2", "fd00::2")):
        h = Socks5Handshake()
        h.receive(b"\x05\x01\x00")
        _, outcome = h.receive(bytes([5, 1, 0, 3, len(name)]) + name + b"\x00\x16")
        assert outcome == Request(Command.CONNECT, ipaddress.ip_address(ip), 22)


def test_host_names_are_refused_no_dns() -> None:
    h = Socks5Handshake()
    h.receive(b"\x05\x01\x00")
    out, outcome = h.receive(bytes([5, 1, 0, 3, 11]) + b"example.com" + b"\x00\x50")
    assert out == reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED) == bytes([5, 8, 0, 1, 0, 0, 0, 0, 0, 0])
    assert isinstance(outcome, Failure) and h.done
    assert ip_literal(b"\xff") is None and ip_literal(b"[1.2.3.4") is None


def test_user_password() -> None:
    h = Socks5Handshake(("user", "pässword"))
    assert h.receive(b"\x05\x01\x02") == (b"\x05\x02", None)
    pw = "pässword".encode()
    out, outcome = h.receive(b"\x01\x04user" + bytes([len(pw)]) + pw + V4_CONNECT)
    assert out == b"\x01\x00" and isinstance(outcome, Request)


def test_wrong_password_and_missing_method() -> None:
    h = Socks5Handshake(("user", "secret"))
    h.receive(b"\x05\x01\x02")
    out, outcome = h.receive(b"\x01\x04user\x05wrong")
    assert out == b"\x01\x01" and isinstance(outcome, Failure)
    h = Socks5Handshake(("user", "secret"))
    out, outcome = h.receive(b"\x05\x01\x00")  # only "no auth" offered: refused
    assert out == b"\x05\xff" and isinstance(outcome, Failure)
    h = Socks5Handshake()
    out, outcome = h.receive(b"\x05\x01\x02")
    assert out == b"\x05\xff" and isinstance(outcome, Failure)


def test_other_failures() -> None:
    h = Socks5Handshake()
    out, outcome = h.receive(b"\x04\x01\x00\x50")  # SOCKS4
    assert out == b"" and isinstance(outcome, Failure)
    h = Socks5Handshake()
    h.receive(b"\x05\x01\x00")
    out, outcome = h.receive(bytes([5, 1, 0, 9, 0, 0]))
    assert out == reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED) and isinstance(outcome, Failure)
    h = Socks5Handshake()
    h.receive(b"\x05\x01\x00")
    out, outcome = h.receive(bytes([5, 9, 0, 1, 1, 2, 3, 4, 0, 1]))
    assert out == reply(Reply.COMMAND_NOT_SUPPORTED) and isinstance(outcome, Failure)
    h = Socks5Handshake()
    h.receive(b"\x05\x01\x00")
    _, outcome = h.receive(bytes([5, 3, 0, 1, 1, 2, 3, 4, 0, 1]))  # UDP ASSOCIATE parses
    assert outcome == Request(Command.UDP_ASSOCIATE, ipaddress.ip_address("1.2.3.4"), 1)


def test_reply_layout() -> None:
    bound = (ipaddress.ip_address("10.1.2.3"), 0x1234)
    assert reply(Reply.SUCCEEDED, bound) == bytes([5, 0, 0, 1, 10, 1, 2, 3, 0x12, 0x34])
    v6 = reply(Reply.SUCCEEDED, (ipaddress.ip_address("fd00::1"), 1))
    assert v6[:4] == b"\x05\x00\x00\x04" and len(v6) == 22


def test_every_split_gives_the_same_outcome() -> None:
    data = b"\x05\x01\x00" + V6_CONNECT
    for cut in range(1, len(data)):
        h = Socks5Handshake()
        out1, o1 = h.receive(data[:cut])
        out2, o2 = h.receive(data[cut:])
        assert out1 + out2 == b"\x05\x00"
        assert (o1 or o2) == Request(Command.CONNECT, ipaddress.ip_address("fd00::5"), 443)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_fuzz_never_raises_and_stays_bounded(chunks: list[bytes], auth: bool) -> None:
    h = Socks5Handshake(("u", "p") if auth else None)
    outcomes = []
    for chunk in chunks:
        out, outcome = h.receive(chunk)
        assert isinstance(out, bytes) and len(out) <= 22
        if outcome is not None:
            outcomes.append(outcome)
    assert len(outcomes) <= 1
    if not h.done:
        assert sum(map(len, chunks)) <= MAX_MESSAGE + 300


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_request_bytes(tail: bytes) -> None:
    h = Socks5Handshake()
    h.receive(b"\x05\x01\x00")
    _, outcome = h.receive(b"\x05" + tail)
    assert outcome is None or isinstance(outcome, (Request, Failure))


def test_udp_datagrams() -> None:
    ip = ipaddress.ip_address
    d = build_udp_datagram(ip("10.1.2.3"), 53, b"query")
    assert d == bytes([0, 0, 0, 1, 10, 1, 2, 3, 0, 53]) + b"query"
    assert parse_udp_datagram(d) == (ip("10.1.2.3"), 53, b"query")
    d6 = build_udp_datagram(ip("fd00::1"), 7, b"")
    assert parse_udp_datagram(d6) == (ip("fd00::1"), 7, b"")
    named = b"\x00\x00\x00\x03\x07fd00::9\x00\x07x"
    assert parse_udp_datagram(named) == (ip("fd00::9"), 7, b"x")
    for bad in (b"", b"\x00\x00\x01\x01" + bytes(6), b"\x00\x01\x00\x01" + bytes(6),
                b"\x00\x00\x00\x03\x0bexample.com\x00\x35", b"\x00\x00\x00\x05" + bytes(6),
                b"\x00\x00\x00\x01\x01\x02", b"\x00\x00\x00\x03"):  # fmt: skip
        with pytest.raises(BadDatagram):
            parse_udp_datagram(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_udp_datagram(data: bytes) -> None:
    try:
        _host, port, payload = parse_udp_datagram(data)
    except BadDatagram:
        return
    assert 0 <= port <= 0xFFFF and payload == data[len(data) - len(payload) :]
