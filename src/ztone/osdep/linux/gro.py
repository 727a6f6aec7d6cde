"""Receive coalescing for the Linux TAP: consecutive TCP segments as one GSO frame.

The frames a network delivers to the host in one burst are often consecutive
segments of one TCP connection. Written one by one, the host's TCP stack handles
(and acknowledges) each; written as one large frame with a ``virtio_net_hdr``
that says "TCP GSO, segment size N" (the TAP is opened with ``IFF_VNET_HDR``),
the stack handles them as the kernel's own GRO would have merged them: one pass
through IP and TCP, one ACK for the lot. Nothing changes on the ZeroTier wire or
in what the host's applications receive; it is what a NIC with GRO does.

Segments are merged only when the kernel's GRO would merge them (``tcp_gro_receive``):
same Ethernet header, IPv4 without options or fragmentation (or IPv6 without
extension headers), same addresses, TOS/traffic class, TTL/hop limit, ports, ACK
number, window, TCP options; flags ACK (PSH only on the last); in-sequence; every
segment but the last exactly as long as the first; at most 64 KiB. Each merged
segment's TCP checksum is verified first (the merged frame's checksum is then left
to the kernel as already checked, ``VIRTIO_NET_HDR_F_NEEDS_CSUM``), so a segment
the host would have dropped is never slipped in; it goes alone, as is.
"""

from __future__ import annotations

import struct

from ztone.util.inet_checksum import InetSum, inet_sum_function

VNET_HDR_LEN = 10
"""``sizeof(struct virtio_net_hdr)``: the TAP's default with ``IFF_VNET_HDR``."""
VNET_NONE = bytes(VNET_HDR_LEN)
F_NEEDS_CSUM = 1
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
MAX_MERGED = 65535
"""Largest merged IP packet (IPv4 total length / IPv6 payload length are 16 bits)."""

_VNET = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
_ETH_IPV4 = b"\x08\x00"
_ETH_IPV6 = b"\x86\xdd"
_ACK = 0x10
_PSH = 0x08

Frame = tuple[bytes, bytes]
"""(14-byte Ethernet header, payload)."""
Write = tuple[bytes, bytes, bytes]
"""(virtio_net_hdr, Ethernet header, payload): one write to the TAP."""


def _segment(ethertype: bytes, p: bytes) -> tuple[bytes, int, int, int, int, int] | None:
    """(flow key, seq, payload length, TCP flags, IP header length, TCP header length)
    of a TCP segment that may be merged, else None."""
    n = len(p)
    if ethertype == _ETH_IPV4:
        if n < 40 or p[0] != 0x45 or p[9] != 6 or (p[6] & 0x3F) or p[7]:
            return None  # options, not TCP, MF or a fragment offset
        if (p[2] << 8 | p[3]) != n:
            return None
        ip_hl = 20
        ip_key = p[1:2] + p[6:7] + p[8:9] + p[12:20]  # TOS, DF, TTL, addresses
    elif ethertype == _ETH_IPV6:
        if n < 60 or p[0] >> 4 != 6 or p[6] != 6 or (p[4] << 8 | p[5]) != n - 40:
            return None  # extension headers (or not TCP) are never merged
        ip_hl = 40
        ip_key = p[0:4] + p[7:40]  # traffic class + flow label, hop limit, addresses
    else:
        return None
    tcp_hl = (p[ip_hl + 12] >> 4) * 4
    flags = p[ip_hl + 13]
    if tcp_hl < 20 or n <= ip_hl + tcp_hl or flags & ~_PSH != _ACK:
        return None  # no payload, or SYN/FIN/RST/URG/ECE/CWR
    t = ip_hl
    key = ip_key + p[t : t + 4] + p[t + 8 : t + 13] + p[t + 14 : t + 16] + p[t + 18 : t + tcp_hl]
    seq = int.from_bytes(p[t + 4 : t + 8], "big")
    return key, seq, n - ip_hl - tcp_hl, flags, ip_hl, tcp_hl


def _pseudo_sum(p: bytes, ip_hl: int, tcp_len: int, inet_sum: InetSum) -> int:
    """The pseudo header's sum (addresses, protocol 6, TCP length)."""
    if ip_hl == 20:
        return inet_sum(p[12:20], 6 + tcp_len)
    return inet_sum(p[8:40], 6 + tcp_len)


def _checksum_ok(p: bytes, ip_hl: int, inet_sum: InetSum) -> bool:
    tcp_len = len(p) - ip_hl
    return inet_sum(memoryview(p)[ip_hl:], _pseudo_sum(p, ip_hl, tcp_len, inet_sum)) == 0xFFFF


def _merge(
    eh: bytes,
    run: list[bytes],
    ip_hl: int,
    tcp_hl: int,
    mss: int,
    last_flags: int,
    inet_sum: InetSum,
) -> Write:
    first = run[0]
    hl = ip_hl + tcp_hl
    body = b"".join([memoryview(x)[hl:] for x in run])
    total = hl + len(body)
    ip = bytearray(first[:ip_hl])
    if ip_hl == 20:
        ip[2:4] = total.to_bytes(2, "big")
        ip[10:12] = b"\x00\x00"
        ip[10:12] = (~inet_sum(ip, 0) & 0xFFFF).to_bytes(2, "big")
        gso = GSO_TCPV4
    else:
        ip[4:6] = (total - 40).to_bytes(2, "big")
        gso = GSO_TCPV6
    tcp = bytearray(first[ip_hl:hl])
    tcp[13] = _ACK | (last_flags & _PSH)
    # CHECKSUM_PARTIAL: the field holds the pseudo header's sum; the rest is "checked".
    tcp[16:18] = _pseudo_sum(first, ip_hl, total - ip_hl, inet_sum).to_bytes(2, "big")
    vnet = _VNET.pack(F_NEEDS_CSUM, gso, 14 + hl, mss, 14 + ip_hl, 16)
    return vnet, eh, bytes(ip) + bytes(tcp) + body


def coalesce(
    frames: list[Frame],
    inet_sum: InetSum | None = None,
) -> list[Write]:
    """The TAP writes for ``frames``, in order, runs of mergeable segments merged."""
    if inet_sum is None:
        inet_sum = inet_sum_function()
    out: list[Write] = []
    i = 0
    n = len(frames)
    while i < n:
        eh, p = frames[i]
        seg = _segment(eh[12:14], p) if n - i > 1 else None
        if seg is None:
            out.append((VNET_NONE, eh, p))
            i += 1
            continue
        key, seq, mss, flags, ip_hl, tcp_hl = seg
        run = [p]
        total = len(p)
        nxt = (seq + mss) & 0xFFFFFFFF
        last_len = mss
        checked = False
        j = i + 1
        while j < n and not flags & _PSH and last_len == mss:
            eh2, p2 = frames[j]
            if eh2 != eh:
                break
            seg2 = _segment(eh[12:14], p2)
            if seg2 is None or seg2[0] != key or seg2[1] != nxt or seg2[2] > mss:
                break
            if total + seg2[2] > MAX_MERGED:
                break
            if not checked:
                if not _checksum_ok(p, ip_hl, inet_sum):
                    break  # the first goes alone: the host judges it
                checked = True
            if not _checksum_ok(p2, ip_hl, inet_sum):
                break
            run.append(p2)
            total += seg2[2]
            nxt = (nxt + seg2[2]) & 0xFFFFFFFF
            last_len = seg2[2]
            flags = seg2[3]
            j += 1
        if len(run) == 1:
            out.append((VNET_NONE, eh, p))
            i += 1
            continue
        out.append(_merge(eh, run, ip_hl, tcp_hl, mss, flags, inet_sum))
        i = j
    return out


def complete_checksum(
    vnet: bytes,
    frame: bytearray,
    inet_sum: InetSum | None = None,
) -> bool:
    """Finish a frame read with ``VIRTIO_NET_HDR_F_NEEDS_CSUM`` (in place); False if bad.

    The kernel hands out such frames when checksum offload is switched on
    (``TUNSETOFFLOAD``, :mod:`ztone.osdep.linux.tun`): the field at ``csum_start +
    csum_offset`` (from the start of the Ethernet frame) holds the pseudo header's
    sum, and the checksum is the complemented sum from ``csum_start`` to the end. A
    result of 0 is written as 0xFFFF (the same in one's complement; for UDP, 0 would
    mean "no checksum"). The range must lie after the Ethernet header. GSO frames
    are :mod:`ztone.osdep.linux.tso`'s.
    """
    if inet_sum is None:
        inet_sum = inet_sum_function()
    flags, gso_type, _, _, start, offset = _VNET.unpack(vnet)
    if gso_type != GSO_NONE:
        return False
    if not flags & F_NEEDS_CSUM:
        return True
    if start < 14 or start + offset + 2 > len(frame):
        return False
    total = inet_sum(memoryview(frame)[start:], 0)
    frame[start + offset : start + offset + 2] = ((~total & 0xFFFF) or 0xFFFF).to_bytes(2, "big")
    return True
