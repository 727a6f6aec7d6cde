"""The TCP header codec: hand-made bytes, round trips, truncations, hostile bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.errors import MalformedPacket
from ztone.netstack.tcp_segment import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    TcpSegment,
    build_tcp,
    parse_tcp,
    reset_for,
)

SRC4, DST4 = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
SRC6 = bytes.fromhex("fd00000000000000000000000000000a")
DST6 = bytes.fromhex("fd00000000000000000000000000000b")


def _word_sum(data: bytes) -> int:
    """RFC 1071 the slow, obvious way (independent of ztone's inet_sum)."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _hand_made(src: bytes, dst: bytes, header_wo_csum: bytes, payload: bytes) -> bytes:
    length = len(header_wo_csum) + len(payload)
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, length)
    else:
        pseudo = src + dst + struct.pack("!I3xB", length, 6)
    csum = ~_word_sum(pseudo + header_wo_csum + payload) & 0xFFFF
    return header_wo_csum[:16] + struct.pack("!H", csum) + header_wo_csum[18:] + payload


@pytest.mark.parametrize(("src", "dst"), [(SRC4, DST4), (SRC6, DST6)])
def test_syn_with_options_matches_hand_made_bytes(src: bytes, dst: bytes) -> None:
    # MSS 1460, NOP, window scale 7 (the order build_tcp uses), data offset 7 words.
    options = bytes([2, 4, 0x05, 0xB4, 1, 3, 3, 7])
    header = struct.pack("!HHIIBBHHH", 40000, 80, 0xFFFFFF00, 0, 7 << 4, SYN, 65535, 0, 0)
    expected = _hand_made(src, dst, header + options, b"")
    seg = TcpSegment(40000, 80, 0xFFFFFF00, 0, SYN, 65535, mss=1460, wscale=7)
    assert build_tcp(seg, src, dst) == expected
    assert parse_tcp(expected, src, dst) == seg


@pytest.mark.parametrize(("src", "dst"), [(SRC4, DST4), (SRC6, DST6)])
def test_data_segment_matches_hand_made_bytes(src: bytes, dst: bytes) -> None:
    payload = b"GET / HTTP/1.0\r\n\r\n!"  # odd length: the checksum pads with a zero
    header = struct.pack("!HHIIBBHHH", 1234, 80, 7, 99, 5 << 4, ACK | PSH, 512, 0, 0)
    expected = _hand_made(src, dst, header, payload)
    seg = TcpSegment(1234, 80, 7, 99, ACK | PSH, 512, payload)
    assert build_tcp(seg, src, dst) == expected
    assert parse_tcp(expected, src, dst) == seg


def test_options_are_parsed_whatever_their_order() -> None:
    # Timestamps, SACK permitted, an unknown option 30 of length 4, window scale 20
    # (taken as 14), MSS, then end of list.
    options = (bytes([8, 10]) + struct.pack("!II", 5, 6) + bytes([4, 2, 30, 4, 0, 0, 3, 3, 20])
               + bytes([2, 4, 0x10, 0x00, 0]))  # fmt: skip
    assert len(options) % 4 == 0
    header = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, (5 + len(options) // 4) << 4, SYN, 9, 0, 0)
    seg = parse_tcp(_hand_made(SRC4, DST4, header + options, b""), SRC4, DST4)
    assert seg.mss == 4096 and seg.wscale == 14 and seg.sack_permitted
    assert seg.timestamps == (5, 6)


def test_every_truncation_raises() -> None:
    seg = TcpSegment(1, 2, 3, 4, SYN | ACK, 5, b"xyz", mss=1000, wscale=2, sack_permitted=True,
                     timestamps=(1, 2))  # fmt: skip
    data = build_tcp(seg, SRC4, DST4)
    assert parse_tcp(data, SRC4, DST4) == seg
    for n in range(len(data)):
        with pytest.raises(MalformedPacket):
            parse_tcp(data[:n], SRC4, DST4)


def test_bad_checksum_bad_offset_bad_options_raise() -> None:
    good = build_tcp(TcpSegment(1, 2, 3, 4, ACK, 5, b"ab"), SRC4, DST4)
    flipped = bytearray(good)
    flipped[-1] ^= 1
    with pytest.raises(MalformedPacket, match="checksum"):
        parse_tcp(bytes(flipped), SRC4, DST4)
    with pytest.raises(MalformedPacket, match="checksum"):
        parse_tcp(good, DST4, SRC6[:4])  # other pseudo header
    with pytest.raises(MalformedPacket):
        parse_tcp(good, SRC4, DST6)  # mixed families
    for offset in (4, 15):  # below 5 words; past the end
        header = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, offset << 4, ACK, 5, 0, 0)
        with pytest.raises(MalformedPacket, match="offset"):
            parse_tcp(_hand_made(SRC4, DST4, header, b""), SRC4, DST4)
    for options in (
        bytes([2, 4, 1, 0]) + bytes([2, 3, 1, 0]),  # MSS of length 3
        bytes([1, 1, 1, 9]),  # no length byte
        bytes([7, 1, 0, 0]),  # length below 2
        bytes([7, 9, 0, 0]),  # past the header
        bytes([3, 4, 1, 0]),
    ):  # window scale length 4
        header = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, (5 + len(options) // 4) << 4, SYN, 5,
                             0, 0)  # fmt: skip
        with pytest.raises(MalformedPacket):
            parse_tcp(_hand_made(SRC4, DST4, header + options, b""), SRC4, DST4)


def test_reset_for_follows_rfc_9293_closed_state() -> None:
    with_ack = TcpSegment(5000, 80, 100, 777, ACK | PSH, 10, b"abc")
    assert reset_for(with_ack) == TcpSegment(80, 5000, 777, 0, RST, 0)
    syn = TcpSegment(5000, 80, 0xFFFFFFFF, 0, SYN, 10)
    assert reset_for(syn) == TcpSegment(80, 5000, 0, 0, RST | ACK, 0)  # SEQ+1 wraps
    fin_data = TcpSegment(5000, 80, 10, 0, FIN, 10, b"abcd")
    assert reset_for(fin_data) == TcpSegment(80, 5000, 0, 15, RST | ACK, 0)
    assert reset_for(TcpSegment(5000, 80, 1, 2, RST | ACK, 0)) is None


segments = st.builds(
    TcpSegment,
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF), st.integers(0, 0xFFFF),
    st.binary(max_size=3000), st.none() | st.integers(0, 0xFFFF),
    st.none() | st.integers(0, 14), st.booleans(),
    st.none() | st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(segments, st.booleans())
def test_round_trip(seg: TcpSegment, v6: bool) -> None:
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    data = build_tcp(seg, src, dst)
    assert _word_sum(_pseudo(src, dst, len(data)) + data) == 0xFFFF
    assert parse_tcp(data, src, dst) == seg


def _pseudo(src: bytes, dst: bytes, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, 6, length)
    return src + dst + struct.pack("!I3xB", length, 6)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.booleans(), st.booleans())
def test_hostile_bytes_raise_only_malformed(data: bytes, v6: bool, fix_checksum: bool) -> None:
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    if fix_checksum and len(data) >= 20:
        # Make the checksum right so the header and option checks are reached.
        body = data[:16] + b"\x00\x00" + data[18:]
        csum = ~_word_sum(_pseudo(src, dst, len(body)) + body) & 0xFFFF
        data = body[:16] + struct.pack("!H", csum) + body[18:]
    try:
        seg = parse_tcp(data, src, dst)
    except MalformedPacket:
        return
    assert build_tcp(seg, src, dst)  # what parsed can be built again
