"""A fake neighbour on a tap: answers ARP, NDP and pings for one IPv4 and one IPv6 address.

Used as a tap's ``on_frame`` handler; replies go back through ``tap.put()``, so a ping
from the host stack to the neighbour exercises both the RX path (host -> ztone) and the
TX path (ztone -> host). Also: a small blocking ping over raw sockets (no ``ping``
binary needed), bounded by count and timeout.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Callable

ETH_ARP = 0x0806
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD

Put = Callable[[int, int, int, bytes], None]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp6_checksum(src: bytes, dst: bytes, body: bytes) -> int:
    pseudo = src + dst + struct.pack("!I3xB", len(body), 58)
    return checksum(pseudo + body)


class Neighbour:
    def __init__(
        self,
        mac: int,
        ip4: ipaddress.IPv4Address,
        ip6: ipaddress.IPv6Address,
        put: Put,
    ) -> None:
        self.mac = mac
        self.ip4 = ip4
        self.ip6 = ip6
        self.put = put
        self.frames = 0
        self.answered: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.answered[what] = self.answered.get(what, 0) + 1

    def __call__(self, src: int, dst: int, ethertype: int, payload: bytes) -> None:
        self.frames += 1
        if ethertype == ETH_ARP:
            self._arp(src, payload)
        elif ethertype == ETH_IPV4:
            self._ipv4(src, payload)
        elif ethertype == ETH_IPV6:
            self._ipv6(src, payload)

    def _arp(self, src: int, p: bytes) -> None:
        if len(p) < 28 or p[6:8] != b"\x00\x01" or p[24:28] != self.ip4.packed:
            return
        reply = (
            p[0:6]
            + b"\x00\x02"
            + self.mac.to_bytes(6, "big")
            + self.ip4.packed
            + p[8:14]
            + p[14:18]
        )
        self._count("arp")
        self.put(self.mac, src, ETH_ARP, reply)

    def _ipv4(self, src: int, p: bytes) -> None:
        ihl = (p[0] & 0x0F) * 4 if p else 0
        if len(p) < ihl + 8 or p[9] != 1 or p[16:20] != self.ip4.packed or p[ihl] != 8:
            return
        icmp = bytearray(p[ihl:])
        icmp[0] = 0
        icmp[2:4] = b"\x00\x00"
        icmp[2:4] = checksum(bytes(icmp)).to_bytes(2, "big")
        header = bytearray(p[:ihl])
        header[12:16], header[16:20] = p[16:20], p[12:16]
        header[8] = 64
        header[10:12] = b"\x00\x00"
        header[10:12] = checksum(bytes(header)).to_bytes(2, "big")
        self._count("echo4")
        self.put(self.mac, src, ETH_IPV4, bytes(header) + bytes(icmp))

    def _ipv6(self, src: int, p: bytes) -> None:
        if len(p) < 48 or p[6] != 58:
            return
        sip, dip, body = p[8:24], p[24:40], p[40:]
        kind = body[0]
        if kind == 135 and body[8:24] == self.ip6.packed:  # neighbour solicitation
            reply_dst = sip if sip != bytes(16) else ipaddress.IPv6Address("ff02::1").packed
            na = bytearray(
                struct.pack("!BBHI", 136, 0, 0, 0x60000000)
                + self.ip6.packed
                + b"\x02\x01"
                + self.mac.to_bytes(6, "big")
            )
            na[2:4] = icmp6_checksum(self.ip6.packed, reply_dst, bytes(na)).to_bytes(2, "big")
            self._count("ns")
            self._send6(src, self.ip6.packed, reply_dst, bytes(na))
        elif kind == 128 and dip == self.ip6.packed:  # echo request
            reply = bytearray(body)
            reply[0] = 129
            reply[2:4] = b"\x00\x00"
            reply[2:4] = icmp6_checksum(dip, sip, bytes(reply)).to_bytes(2, "big")
            self._count("echo6")
            self._send6(src, dip, sip, bytes(reply))

    def _send6(self, dst_mac: int, sip: bytes, dip: bytes, body: bytes) -> None:
        header = struct.pack("!IHBB", 0x60000000, len(body), 58, 255) + sip + dip
        self.put(self.mac, dst_mac, ETH_IPV6, header + body)


def ping(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    size: int = 56,
    count: int = 3,
    timeout: float = 2.0,
) -> int:
    """Send ``count`` echo requests (``size`` payload bytes); return how many came back."""
    v6 = address.version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    ident = os.getpid() & 0xFFFF
    received = 0
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        for seq in range(1, count + 1):
            payload = bytes((seq + i) & 0xFF for i in range(size))
            packet = bytearray(struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq) + payload)
            if not v6:
                packet[2:4] = checksum(bytes(packet)).to_bytes(2, "big")
            sock.sendto(bytes(packet), (str(address), 0))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                data = sock.recv(65536)
                if not v6:
                    data = data[(data[0] & 0x0F) * 4 :]
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
                if kind == (129 if v6 else 0) and rid == ident and rseq == seq:
                    if data[8:] == payload:
                        received += 1
                    break
    return received
