"""Segmentation offload for the Linux TAP: cut the host's TCP super-packets.

With ``TUNSETOFFLOAD`` (``TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6``, see
:mod:`ztone.osdep.linux.tun`) the host's TCP stack hands the TAP one large frame for
up to 64 KiB of a connection's data instead of one frame per MTU-sized segment, and
leaves the checksums to the reader. The ZeroTier wire still carries ordinary
frames, so the reader cuts each such frame into the segments the kernel's own
software segmentation (``tcp_gso_segment``) would have sent.

A read from the TAP (``IFF_VNET_HDR``) is the 10-byte ``virtio_net_hdr`` (host byte
order: little-endian here) followed by the Ethernet frame::

    0  flags        u8   1 = NEEDS_CSUM: the checksum at csum_start + csum_offset is
                         a partial sum (pseudo header) still to be finished
    1  gso_type     u8   0 none, 1 TCPV4, 4 TCPV6 (UDP, ECN and others are not asked for)
    2  hdr_len      u16  a hint only; the headers themselves are read
    4  gso_size     u16  the TCP payload of every segment but the last
    6  csum_start   u16  offset from the start of the Ethernet frame
    8  csum_offset  u16  offset of the checksum field from csum_start
   10  Ethernet header (14) | IPv4 (20-60) or IPv6 (40) header | TCP header (20-60) | data

Each segment k (0-based) of a super-packet with ``D`` data bytes is a copy of the
headers followed by data bytes ``[k * gso_size, min((k + 1) * gso_size, D))``, with:

* IPv4: total length of the segment, identification ``id + k`` (mod 2^16), header
  checksum recomputed; options are copied to every segment;
* IPv6: payload length of the segment (no extension headers: the next header must
  be TCP);
* TCP: sequence number ``seq + k * gso_size`` (mod 2^32); FIN and PSH only on the
  last segment, CWR only on the first; the full checksum (pseudo header, header,
  data) computed for the segment.

Anything else is dropped by the caller (and counted): a frame over 64 KiB, an
ethertype that does not match the GSO type, lengths that disagree with the frame,
an IPv4 fragment, IPv6 extension headers, no TCP, a TCP header out of range, SYN
or RST, no data, ``gso_size`` 0 or segments over :data:`MAX_SEGMENT`. The port's
own MTU is applied after the cut by the frame pump, as for every frame.
``_speedups.Dataplane.tx_burst`` (``src/ztone/_dp_tso.h``) cuts exactly the same
way; this module is its reference.
"""

from __future__ import annotations

import struct

from ztone.util.inet_checksum import InetSum, inet_sum_function

VNET_HDR_LEN = 10
GSO_TCPV4 = 1
GSO_TCPV6 = 4
MAX_FRAME = 14 + 65535
"""Largest super-frame accepted: an Ethernet header and a 64 KiB IP packet."""
MAX_SEGMENT = 10000
"""Largest segment (IP packet) cut: ZeroTier's largest network MTU (``ZT_MAX_MTU``)."""

_VNET = struct.Struct("<BBHHHH")
_FIN = 0x01
_SYN = 0x02
_RST = 0x04
_PSH = 0x08
_CWR = 0x80


def _checksum(data: bytes | bytearray | memoryview, initial: int, inet_sum: InetSum) -> bytes:
    """The complemented sum as the two bytes of a checksum field."""
    return (~inet_sum(data, initial) & 0xFFFF).to_bytes(2, "big")


def segment(
    vnet: bytes | bytearray | memoryview,
    frame: bytes | bytearray | memoryview,
    inet_sum: InetSum | None = None,
) -> list[bytes] | None:
    """The IP packets (Ethernet payloads) of the segments of a GSO ``frame`` read
    after the ``virtio_net_hdr`` ``vnet``, in order; None when it is malformed.

    Never raises for any bytes; the Ethernet header is the caller's (the same for
    every segment).
    """
    if inet_sum is None:
        inet_sum = inet_sum_function()
    if len(vnet) != VNET_HDR_LEN:
        return None
    _, gso_type, _, gso_size, _, _ = _VNET.unpack(vnet)
    n = len(frame)
    if n > MAX_FRAME or n < 14 + 40 or gso_size == 0:
        return None
    f = bytes(frame)
    ethertype = f[12] << 8 | f[13]
    ip = 14
    if gso_type == GSO_TCPV4:
        ip_hl = (f[ip] & 0x0F) * 4
        if (
            ethertype != 0x0800
            or f[ip] >> 4 != 4
            or ip_hl < 20
            or (f[ip + 2] << 8 | f[ip + 3]) != n - ip
            or f[ip + 9] != 6
            or (f[ip + 6] & 0x3F)  # MF or a fragment offset
            or f[ip + 7]
        ):
            return None
    elif gso_type == GSO_TCPV6:
        ip_hl = 40
        if (
            ethertype != 0x86DD
            or f[ip] >> 4 != 6
            or (f[ip + 4] << 8 | f[ip + 5]) != n - ip - 40
            or f[ip + 6] != 6
        ):
            return None
    else:
        return None
    t = ip + ip_hl
    if n < t + 20:
        return None
    tcp_hl = (f[t + 12] >> 4) * 4
    flags = f[t + 13]
    data_at = t + tcp_hl
    if tcp_hl < 20 or data_at >= n or flags & (_SYN | _RST):
        return None
    if ip_hl + tcp_hl + gso_size > MAX_SEGMENT:
        return None
    ip_header = bytearray(f[ip:t])
    tcp_header = bytearray(f[t:data_at])
    seq = int.from_bytes(f[t + 4 : t + 8], "big")
    ident = f[ip + 4] << 8 | f[ip + 5]
    addresses = f[ip + 12 : ip + 20] if gso_type == GSO_TCPV4 else f[ip + 8 : ip + 40]
    view = memoryview(f)
    out: list[bytes] = []
    for k, at in enumerate(range(data_at, n, gso_size)):
        chunk = view[at : min(at + gso_size, n)]
        first, last = k == 0, at + gso_size >= n
        tcp_len = tcp_hl + len(chunk)
        if gso_type == GSO_TCPV4:
            ip_header[2:4] = (ip_hl + tcp_len).to_bytes(2, "big")
            ip_header[4:6] = ((ident + k) & 0xFFFF).to_bytes(2, "big")
            ip_header[10:12] = b"\x00\x00"
            ip_header[10:12] = _checksum(ip_header, 0, inet_sum)
        else:
            ip_header[4:6] = tcp_len.to_bytes(2, "big")
        tcp_header[4:8] = ((seq + k * gso_size) & 0xFFFFFFFF).to_bytes(4, "big")
        keep = 0xFF
        if not last:
            keep &= ~(_FIN | _PSH)
        if not first:
            keep &= ~_CWR
        tcp_header[13] = flags & keep
        tcp_header[16:18] = b"\x00\x00"
        pseudo = inet_sum(addresses, 6 + tcp_len)
        tcp_header[16:18] = _checksum(chunk, inet_sum(tcp_header, pseudo), inet_sum)
        out.append(bytes(ip_header) + bytes(tcp_header) + chunk)
    return out


__all__ = ["GSO_TCPV4", "GSO_TCPV6", "MAX_FRAME", "MAX_SEGMENT", "segment"]
