"""The TCP header codec (RFC 9293 §3.1, options of RFC 9293 §3.2 and RFC 7323 §2).

Layout (big-endian)::

    0  source port (2)        2  destination port (2)
    4  sequence number (4)    8  acknowledgment number (4)
    12 data offset (high 4 bits, in 32-bit words; low 4 bits reserved)
    13 flags: CWR ECE URG ACK PSH RST SYN FIN (bit 7 .. bit 0)
    14 window (2, unscaled)   16 checksum (2)   18 urgent pointer (2)
    20 options (data offset * 4 - 20 bytes), then the payload

Options: kind 0 ends the list, kind 1 is one byte of padding, every other kind is
``kind, length (incl. these two bytes), value``. Understood: 2 MSS (length 4, 16-bit
value), 3 window scale (length 3, shift; above 14 means 14, RFC 7323 §2.3), 4 SACK
permitted (length 2), 8 timestamps (length 10, two 32-bit values); others are skipped.

The checksum is the internet checksum over a pseudo header and the segment: for IPv4
(RFC 9293 §3.1) source and destination addresses, a zero byte, protocol 6 and the
16-bit TCP length; for IPv6 (RFC 8200 §8.1) the two addresses, the 32-bit length and
next header 6. Either sums to ``sum(addresses) + 6 + length`` in one's complement
arithmetic, which is what :func:`pseudo_sum` computes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ztone.errors import MalformedPacket
from ztone.util.inet_checksum import inet_sum_function

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

HEADER_LEN = 20
MAX_WSCALE = 14
"""RFC 7323 §2.3: a larger shift is taken as 14."""

_HEADER = struct.Struct("!HHIIBBHHH")
_inet_sum = inet_sum_function()


@dataclass(slots=True)
class TcpSegment:
    """One TCP segment, decoded. ``window`` is the raw 16-bit field (unscaled);
    ``mss``/``wscale``/``sack_permitted``/``timestamps`` are the options present
    (meaningful on a SYN only, except timestamps)."""

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: bytes = b""
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    timestamps: tuple[int, int] | None = None
    """RFC 7323 (TSval, TSecr) when present; the engine does not send them."""

    def seg_len(self) -> int:
        """The sequence space the segment occupies (RFC 9293 §3.4): payload + SYN + FIN."""
        return len(self.payload) + (self.flags & SYN and 1) + (self.flags & FIN and 1)

    def describe(self) -> str:
        """A short human-readable form (for logs and test failures)."""
        names = "".join(
            c
            for c, f in zip("FSRPAUEC", (1, 2, 4, 8, 16, 32, 64, 128), strict=True)
            if self.flags & f
        )
        return (
            f"{self.src_port}>{self.dst_port} [{names}] seq={self.seq} ack={self.ack} "
            f"win={self.window} len={len(self.payload)}"
        )


def pseudo_sum(src_ip: bytes, dst_ip: bytes, length: int) -> int:
    """The folded one's complement sum of the pseudo header (not complemented)."""
    if len(src_ip) != len(dst_ip) or len(src_ip) not in (4, 16):
        raise MalformedPacket("TCP pseudo header needs two IPv4 or two IPv6 addresses")
    return _inet_sum(src_ip + dst_ip, 6 + length)


def parse_tcp(data: bytes, src_ip: bytes, dst_ip: bytes) -> TcpSegment:
    """Decode ``data`` (an IP payload) sent from ``src_ip`` to ``dst_ip`` (4 or 16 bytes
    each). Verifies the checksum, the data offset and the options' lengths.

    Raises :class:`MalformedPacket` (and nothing else) for any bad input.
    """
    n = len(data)
    if n < HEADER_LEN:
        raise MalformedPacket(f"TCP segment of {n} bytes is shorter than its header")
    if n > 0xFFFFFFF0:
        raise MalformedPacket("TCP segment too long")
    if _inet_sum(data, pseudo_sum(src_ip, dst_ip, n)) != 0xFFFF:
        raise MalformedPacket("TCP checksum mismatch")
    src_port, dst_port, seq, ack, offset, flags, window, _csum, _urg = _HEADER.unpack_from(data)
    hlen = (offset >> 4) * 4
    if hlen < HEADER_LEN or hlen > n:
        raise MalformedPacket(f"TCP data offset {hlen} outside 20..{n}")
    seg = TcpSegment(
        src_port, dst_port, seq, ack, flags, window, bytes(data[hlen:]) if hlen < n else b""
    )
    if hlen > HEADER_LEN:
        _parse_options(data, hlen, seg)
    return seg


def _parse_options(data: bytes, end: int, seg: TcpSegment) -> None:
    i = HEADER_LEN
    while i < end:
        kind = data[i]
        if kind == 0:
            return
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            raise MalformedPacket(f"TCP option {kind} has no length byte")
        length = data[i + 1]
        if length < 2 or i + length > end:
            raise MalformedPacket(f"TCP option {kind} has bad length {length}")
        if kind == 2:
            if length != 4:
                raise MalformedPacket(f"TCP MSS option of length {length}")
            seg.mss = data[i + 2] << 8 | data[i + 3]
        elif kind == 3:
            if length != 3:
                raise MalformedPacket(f"TCP window scale option of length {length}")
            seg.wscale = min(data[i + 2], MAX_WSCALE)
        elif kind == 4:
            if length != 2:
                raise MalformedPacket(f"TCP SACK-permitted option of length {length}")
            seg.sack_permitted = True
        elif kind == 8:
            if length != 10:
                raise MalformedPacket(f"TCP timestamps option of length {length}")
            seg.timestamps = (
                int.from_bytes(data[i + 2 : i + 6], "big"),
                int.from_bytes(data[i + 6 : i + 10], "big"),
            )
        i += length


def _options(seg: TcpSegment) -> bytes:
    out = bytearray()
    if seg.mss is not None:
        out += struct.pack("!BBH", 2, 4, seg.mss)
    if seg.sack_permitted:
        out += b"\x04\x02" if seg.wscale is not None or seg.timestamps else b"\x01\x01\x04\x02"
    if seg.timestamps is not None:
        if not seg.sack_permitted:
            out += b"\x01\x01"
        out += struct.pack("!BBII", 8, 10, *seg.timestamps)
    if seg.wscale is not None:
        out += struct.pack("!BBBB", 1, 3, 3, seg.wscale)
    while len(out) & 3:
        out += b"\x00"
    return bytes(out)


def build_tcp(seg: TcpSegment, src_ip: bytes, dst_ip: bytes) -> bytes:
    """The segment's bytes: header, options (MSS, SACK permitted, timestamps, window
    scale, each present when set; padded to 32 bits) and payload, with the checksum."""
    opts = (
        _options(seg)
        if (seg.mss is not None or seg.wscale is not None or seg.sack_permitted or seg.timestamps)
        else b""
    )
    hlen = HEADER_LEN + len(opts)
    payload = seg.payload
    length = hlen + len(payload)
    fields = (seg.src_port, seg.dst_port, seg.seq, seg.ack, (hlen >> 2) << 4, seg.flags, seg.window)
    total = _inet_sum(_HEADER.pack(*fields, 0, 0), pseudo_sum(src_ip, dst_ip, length))
    if opts:
        total = _inet_sum(opts, total)
    csum = ~_inet_sum(payload, total) & 0xFFFF
    return b"".join((_HEADER.pack(*fields, csum, 0), opts, payload))


def reset_for(seg: TcpSegment) -> TcpSegment | None:
    """The RST answering ``seg`` when it reached no connection (RFC 9293 §3.10.7.1):
    ``<SEQ=SEG.ACK><CTL=RST>`` if it carried an ACK, else
    ``<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>``. None when ``seg`` is itself a RST."""
    if seg.flags & RST:
        return None
    if seg.flags & ACK:
        return TcpSegment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
    return TcpSegment(
        seg.dst_port, seg.src_port, 0, (seg.seq + seg.seg_len()) & 0xFFFFFFFF, RST | ACK, 0
    )
