"""A minimal reader of classic libpcap capture files, for tests (standard library only).

Supported:

* file magic ``a1b2c3d4`` (microseconds) and ``a1b23c4d`` (nanoseconds), in either byte
  order; pcapng files are recognised and refused with a clear message;
* link types ``NULL`` (0), ``EN10MB`` (1, with 802.1Q/802.1ad VLAN tags), ``RAW`` (101),
  ``LOOP`` (108), ``LINUX_SLL`` (113), ``IPV4`` (228), ``IPV6`` (229), ``LINUX_SLL2`` (276);
* IPv4 and IPv6 (extension headers walked); UDP extracted, trimmed to the IP and UDP
  length fields (so Ethernet padding never leaks into a payload).

A structurally broken *file* (bad magic, truncated header or record, absurd record length)
raises :class:`PcapError`. Anything that is merely not a whole UDP datagram (ARP, TCP,
ICMP, IP fragments, frames cut by the snap length, bad IP headers) is skipped and counted
in a :class:`PcapStats` under a short reason.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAGIC_USEC = 0xA1B2C3D4
MAGIC_NSEC = 0xA1B23C4D
MAGIC_PCAPNG = 0x0A0D0D0A

LINKTYPE_NULL = 0
LINKTYPE_EN10MB = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPES_VLAN = (0x8100, 0x88A8, 0x9100)

IPPROTO_UDP = 17
# IPv6 extension headers that use the generic <next header, length in 8-octet units> form.
_IPV6_EXTENSIONS = (0, 43, 60, 135, 139, 140)
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_IPV6_NO_NEXT = 59

_GLOBAL_HEADER_LENGTH = 24
_RECORD_HEADER_LENGTH = 16
_MAX_RECORD_LENGTH = 1 << 18  # 256 KiB: libpcap's own upper bound for a snapshot length


class PcapError(ValueError):
    """The file is not a well-formed classic pcap file."""


class IpPacket(NamedTuple):
    """One IPv4/IPv6 packet from the capture (not a fragment)."""

    timestamp: float  # seconds since the epoch
    src_ip: IpAddress
    dst_ip: IpAddress
    protocol: int  # IPv4 protocol / IPv6 final next header
    ttl: int  # IPv4 TTL / IPv6 hop limit
    payload: bytes  # the transport header and data, trimmed to the IP length


class UdpDatagram(NamedTuple):
    """One UDP datagram: ``(timestamp, src ip, src port, dst ip, dst port, payload)``."""

    timestamp: float
    src_ip: IpAddress
    src_port: int
    dst_ip: IpAddress
    dst_port: int
    payload: bytes


@dataclass
class PcapStats:
    """What the reader saw: records read and why some were not yielded."""

    records: int = 0
    link_type: int = -1
    nanosecond: bool = False
    skipped: Counter[str] = field(default_factory=Counter)


def _read_global_header(data: bytes) -> tuple[str, bool, int, int]:
    """Byte order prefix, nanosecond flag, snap length, link type."""
    if len(data) < 4:
        raise PcapError(f"file of {len(data)} bytes is too short for a pcap magic number")
    (magic_le,) = struct.unpack_from("<I", data, 0)
    (magic_be,) = struct.unpack_from(">I", data, 0)
    if MAGIC_PCAPNG in (magic_le, magic_be):
        raise PcapError("this is a pcapng file; convert it with `editcap -F pcap`")
    order = ""
    nanosecond = False
    for prefix, magic in (("<", magic_le), (">", magic_be)):
        if magic in (MAGIC_USEC, MAGIC_NSEC):
            order, nanosecond = prefix, magic == MAGIC_NSEC
            break
    if not order:
        raise PcapError(f"bad pcap magic number {data[:4].hex()}")
    if len(data) < _GLOBAL_HEADER_LENGTH:
        raise PcapError("truncated pcap global header")
    _major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(
        order + "HHiIII", data, 4
    )
    # The upper 16 bits of the link type field may carry FCS information (pcap-linktype(7)).
    return order, nanosecond, snaplen, linktype & 0x0FFFFFFF


def _network_layer(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """(ethertype, network-layer bytes) of a frame, or None if it carries no IP."""
    if linktype == LINKTYPE_EN10MB:
        if len(frame) < 14:
            return None
        pos = 12
        (ethertype,) = struct.unpack_from(">H", frame, pos)
        while ethertype in ETHERTYPES_VLAN:
            pos += 4
            if len(frame) < pos + 2:
                return None
            (ethertype,) = struct.unpack_from(">H", frame, pos)
        return ethertype, frame[pos + 2 :]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        return struct.unpack_from(">H", frame, 14)[0], frame[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        return struct.unpack_from(">H", frame, 0)[0], frame[20:]
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return None
        (family_be,) = struct.unpack_from(">I", frame)
        (family_le,) = struct.unpack_from("<I", frame)
        # LOOP is in network byte order; NULL in the capturing host's, so take the small one.
        family = family_be if linktype == LINKTYPE_LOOP else min(family_le, family_be)
        if family == 2:
            return ETHERTYPE_IPV4, frame[4:]
        if family in (10, 24, 28, 30):  # AF_INET6 on Linux, the BSDs, macOS
            return ETHERTYPE_IPV6, frame[4:]
        return None
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not frame:
            return None
        version = frame[0] >> 4
        if version == 4:
            return ETHERTYPE_IPV4, frame
        if version == 6:
            return ETHERTYPE_IPV6, frame
        return None
    raise PcapError(f"unsupported pcap link type {linktype}")


def _parse_ipv4(data: bytes) -> tuple[IpAddress, IpAddress, int, int, bytes] | str:
    if len(data) < 20 or data[0] >> 4 != 4:
        return "malformed IPv4 header"
    ihl = (data[0] & 0x0F) * 4
    (total,) = struct.unpack_from(">H", data, 2)
    if ihl < 20 or total < ihl:
        return "malformed IPv4 header"
    if total > len(data):
        return "truncated IP packet"
    (frag,) = struct.unpack_from(">H", data, 6)
    if frag & 0x3FFF:  # more-fragments flag or a non-zero offset
        return "IPv4 fragment"
    src = ipaddress.IPv4Address(data[12:16])
    dst = ipaddress.IPv4Address(data[16:20])
    return src, dst, data[9], data[8], data[ihl:total]


def _parse_ipv6(data: bytes) -> tuple[IpAddress, IpAddress, int, int, bytes] | str:
    if len(data) < 40 or data[0] >> 4 != 6:
        return "malformed IPv6 header"
    (length,) = struct.unpack_from(">H", data, 4)
    if length == 0:
        return "IPv6 jumbogram"
    if 40 + length > len(data):
        return "truncated IP packet"
    src = ipaddress.IPv6Address(data[8:24])
    dst = ipaddress.IPv6Address(data[24:40])
    hop_limit = data[7]
    next_header = data[6]
    body = data[40 : 40 + length]
    while True:
        if next_header == _IPV6_FRAGMENT:
            return "IPv6 fragment"
        if next_header == _IPV6_NO_NEXT:
            return "IPv6 without a transport payload"
        if next_header in _IPV6_EXTENSIONS or next_header == _IPV6_AH:
            if len(body) < 2:
                return "malformed IPv6 extension header"
            units = (body[1] + 2, 4) if next_header == _IPV6_AH else (body[1] + 1, 8)
            ext_length = units[0] * units[1]
            if ext_length > len(body):
                return "malformed IPv6 extension header"
            next_header, body = body[0], body[ext_length:]
            continue
        return src, dst, next_header, hop_limit, body


def read_ip(path: str | Path, stats: PcapStats | None = None) -> Iterator[IpPacket]:
    """Every whole IPv4/IPv6 packet in the capture, in file order."""
    data = Path(path).read_bytes()
    order, nanosecond, _snaplen, linktype = _read_global_header(data)
    if stats is None:
        stats = PcapStats()
    stats.link_type, stats.nanosecond = linktype, nanosecond
    _network_layer(linktype, b"")  # refuse an unsupported link type up front
    divisor = 1e9 if nanosecond else 1e6
    record = struct.Struct(order + "IIII")
    pos = _GLOBAL_HEADER_LENGTH
    while pos < len(data):
        if pos + _RECORD_HEADER_LENGTH > len(data):
            raise PcapError(f"truncated record header at offset {pos}")
        seconds, fraction, incl_len, orig_len = record.unpack_from(data, pos)
        if incl_len > _MAX_RECORD_LENGTH:
            raise PcapError(f"record at offset {pos} claims {incl_len} bytes")
        start = pos + _RECORD_HEADER_LENGTH
        if start + incl_len > len(data):
            raise PcapError(
                f"record at offset {pos} claims {incl_len} bytes, "
                f"{len(data) - start} remain in the file"
            )
        frame = data[start : start + incl_len]
        pos = start + incl_len
        stats.records += 1
        timestamp = seconds + fraction / divisor
        network = _network_layer(linktype, frame)
        if network is None:
            stats.skipped["not IP"] += 1
            continue
        ethertype, body = network
        if ethertype == ETHERTYPE_IPV4:
            parsed = _parse_ipv4(body)
        elif ethertype == ETHERTYPE_IPV6:
            parsed = _parse_ipv6(body)
        else:
            stats.skipped[f"ethertype {ethertype:#06x}"] += 1
            continue
        if isinstance(parsed, str):
            if parsed == "truncated IP packet" and incl_len < orig_len:
                parsed = "cut by the snap length"
            stats.skipped[parsed] += 1
            continue
        src, dst, protocol, ttl, payload = parsed
        yield IpPacket(timestamp, src, dst, protocol, ttl, payload)


def udp_of(packet: IpPacket) -> UdpDatagram | str:
    """The UDP datagram an IP packet carries, or the reason it does not carry one."""
    if packet.protocol != IPPROTO_UDP:
        return f"IP protocol {packet.protocol}"
    data = packet.payload
    if len(data) < 8:
        return "malformed UDP header"
    src_port, dst_port, length = struct.unpack_from(">HHH", data, 0)
    if length < 8 or length > len(data):
        return "malformed UDP header"
    return UdpDatagram(
        packet.timestamp, packet.src_ip, src_port, packet.dst_ip, dst_port, data[8:length]
    )


def read_udp(path: str | Path, stats: PcapStats | None = None) -> Iterator[UdpDatagram]:
    """Every UDP datagram in the capture; everything else is counted in ``stats.skipped``."""
    if stats is None:
        stats = PcapStats()
    for packet in read_ip(path, stats):
        udp = udp_of(packet)
        if isinstance(udp, str):
            stats.skipped[udp] += 1
            continue
        yield udp
