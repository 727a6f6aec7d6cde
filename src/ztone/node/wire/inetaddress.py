"""Physical (IP, port) endpoints and their binary form (PROTOCOL-CORE §1.6).

Binary form::

    <[1] type> 0x00 null | 0x04 IPv4 | 0x06 IPv6 | 0x01/0x02/0x03 reserved (skipped)
    type 0x04: <[4] address> <[2] port>            7 bytes in all
    type 0x06: <[16] address> <[2] port>           19 bytes in all
    type 0x01, 0x02: <[6] ignored>                 7 bytes in all
    type 0x03: <[2] length L> <[L] ignored>        3 + L bytes in all

The port field carries a netmask bit count in network-config address and route
lists. Text form is ``ip/port`` (IPv6 compressed), as ``InetAddress::toString``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import IntEnum

from ztone.errors import MalformedPacket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpScope(IntEnum):
    """``InetAddress::IpScope`` values (§1.6)."""

    NONE = 0
    MULTICAST = 1
    LOOPBACK = 2
    PSEUDOPRIVATE = 3
    GLOBAL = 4
    LINK_LOCAL = 5
    SHARED = 6
    PRIVATE = 7


_PSEUDOPRIVATE_V4 = {6, 11, 21, 22, 25, 26, 28, 29, 30, 51, 55, 56}
_PRIVATE_V4 = [
    ipaddress.IPv4Network(n)
    for n in (
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
    )
]


def ntop6(packed: bytes) -> str:
    """IPv6 text exactly as glibc ``inet_ntop`` writes it, which ``InetAddress::toIpString``
    uses: the first longest run (two words or more) of zero words becomes ``::``, and
    ``::a.b.c.d`` and ``::ffff:a.b.c.d`` keep a dotted IPv4 tail (Python 3.11's
    ``ipaddress`` writes ``::ffff:102:304`` for the latter)."""
    words = [(packed[i] << 8) | packed[i + 1] for i in range(0, 16, 2)]
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base != -1 and (best_base == -1 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base != -1 and best_len < 2:
        best_base = -1
    out = ""
    for i in range(8):
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out += ":"
            continue
        if i:
            out += ":"
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out += ".".join(str(b) for b in packed[12:16])
            break
        out += f"{words[i]:x}"
    if best_base != -1 and best_base + best_len == 8:
        out += ":"
    return out


def ip_text(ip: IPAddress) -> str:
    """``InetAddress::toIpString``: dotted quad for IPv4, :func:`ntop6` for IPv6."""
    if ip.version == 4:
        return str(ip)
    return ntop6(ip.packed)


@dataclass(frozen=True, slots=True)
class InetAddress:
    """An IP address with a port (or a netmask bit count, by context)."""

    ip: IPAddress
    port: int
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port out of range: {self.port}")
        # Paths are looked up by address for every datagram; ipaddress hashes slowly.
        object.__setattr__(self, "_hash", hash((self.ip, self.port)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        # As the generated one, but quick for the same object or a different hash.
        if self is other:
            return True
        if other.__class__ is not InetAddress:
            return NotImplemented
        assert isinstance(other, InetAddress)
        return self._hash == other._hash and self.port == other.port and self.ip == other.ip

    def __reduce__(self) -> tuple[type[InetAddress], tuple[IPAddress, int]]:
        return (InetAddress, (self.ip, self.port))  # the cached hash is per process

    @classmethod
    def parse(cls, text: str) -> InetAddress:
        """Parse ``ip/port`` (also ``ip`` alone, port 0); ``ValueError`` if malformed."""
        ip_text, _, port_text = text.strip().partition("/")
        ip = ipaddress.ip_address(ip_text)
        port = int(port_text) if port_text else 0
        return cls(ip, port)

    @property
    def family(self) -> int:
        return self.ip.version

    def __str__(self) -> str:
        return f"{ip_text(self.ip)}/{self.port}"

    def ip_string(self) -> str:
        return ip_text(self.ip)

    def scope(self) -> IpScope:
        """Classify as ``InetAddress::ipScope`` does."""
        ip = self.ip
        if isinstance(ip, ipaddress.IPv4Address):
            first = ip.packed[0]
            if first in (0, 255):
                return IpScope.NONE
            if first >= 240:
                return IpScope.PSEUDOPRIVATE
            if first >= 224:
                return IpScope.MULTICAST
            if first == 127:
                return IpScope.LOOPBACK
            if first in _PSEUDOPRIVATE_V4:
                return IpScope.PSEUDOPRIVATE
            if ip in ipaddress.IPv4Network("169.254.0.0/16"):
                return IpScope.LINK_LOCAL
            if any(ip in n for n in _PRIVATE_V4):
                return IpScope.PRIVATE
            return IpScope.GLOBAL
        packed = ip.packed
        if packed == bytes(16):
            return IpScope.NONE
        if packed[0] == 0xFF:
            return IpScope.MULTICAST
        if packed == bytes(15) + b"\x01" or packed == b"\xfe\x80" + bytes(13) + b"\x01":
            return IpScope.LOOPBACK
        if packed[:12] == bytes(10) + b"\xff\xff" and packed[12] == 127:
            return IpScope.LOOPBACK
        if packed[0] == 0xFE and (packed[1] & 0xC0) == 0x80:
            return IpScope.LINK_LOCAL
        if (packed[0] & 0xFE) == 0xFC:
            return IpScope.PRIVATE
        return IpScope.GLOBAL

    def is_valid_for_path(self) -> bool:
        """``Path::isAddressValidForPath``: usable as a physical path endpoint."""
        if self.scope() not in (
            IpScope.PRIVATE,
            IpScope.PSEUDOPRIVATE,
            IpScope.SHARED,
            IpScope.GLOBAL,
        ):
            return False
        # Hurricane Electric tunnels (2001:470::/32) are refused as paths.
        return not (self.ip.version == 6 and self.ip.packed[:4] == b"\x20\x01\x04\x70")

    def serialize(self) -> bytes:
        return serialize_inet(self)


def serialize_inet(addr: InetAddress | None) -> bytes:
    """Binary form; ``None`` is the null address (one zero byte)."""
    if addr is None:
        return b"\x00"
    kind = b"\x04" if addr.ip.version == 4 else b"\x06"
    return kind + addr.ip.packed + addr.port.to_bytes(2, "big")


def parse_inet(
    data: bytes | bytearray | memoryview, offset: int = 0
) -> tuple[InetAddress | None, int]:
    """Decode at ``offset``; return (address or ``None``, offset just past it).

    Reserved types 1, 2 and 3 are skipped and yield ``None``, as the reference does.
    """
    end = len(data)
    if offset >= end:
        raise MalformedPacket("truncated InetAddress")
    kind = data[offset]
    if kind == 0:
        return None, offset + 1
    if kind == 4:
        if offset + 7 > end:
            raise MalformedPacket("truncated IPv4 InetAddress")
        ip4 = ipaddress.IPv4Address(bytes(data[offset + 1 : offset + 5]))
        return InetAddress(ip4, int.from_bytes(data[offset + 5 : offset + 7], "big")), offset + 7
    if kind == 6:
        if offset + 19 > end:
            raise MalformedPacket("truncated IPv6 InetAddress")
        ip6 = ipaddress.IPv6Address(bytes(data[offset + 1 : offset + 17]))
        return InetAddress(ip6, int.from_bytes(data[offset + 17 : offset + 19], "big")), offset + 19
    if kind in (1, 2):
        if offset + 7 > end:
            raise MalformedPacket("truncated reserved InetAddress")
        return None, offset + 7
    if kind == 3:
        if offset + 3 > end:
            raise MalformedPacket("truncated reserved InetAddress")
        length = int.from_bytes(data[offset + 1 : offset + 3], "big")
        if offset + 3 + length > end:
            raise MalformedPacket("truncated reserved InetAddress")
        return None, offset + 3 + length
    raise MalformedPacket(f"invalid InetAddress type {kind}")
