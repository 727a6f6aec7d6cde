"""IP-level fields of an Ethernet payload, as the rules engine reads them (A.4.4).

Every offset is relative to the Ethernet *payload* (the bytes after the 14-byte
Ethernet header). Nothing here validates a frame: the rules engine asks narrow
questions ("is there an IPv4 header of at least 20 bytes?", "what is the final
IPv6 next-header?") and each answer follows the reference node's bounds checks
exactly, including where it has none (see :meth:`FrameFields.byte`).
"""

from __future__ import annotations

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
IPPROTO_UDPLITE = 136

#: Protocols whose header starts with a 16-bit source and destination port.
PORT_PROTOCOLS = frozenset((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_UDPLITE))

#: IPv6 extension headers the walk steps over (hop-by-hop, routing, destination
#: options, mobility). Fragment (44), ESP (50) and AH (51) end the walk.
IPV6_SKIPPED_HEADERS = frozenset((0, 43, 60, 135))

ICMPV6_NEIGHBOR_SOLICITATION = 135
ICMPV6_NEIGHBOR_ADVERTISEMENT = 136


def ipv6_payload(data: bytes) -> tuple[int, int] | None:
    """Walk the IPv6 extension headers (``_ipv6GetPayload``).

    Returns ``(offset, protocol)`` of the first header that is not one of
    :data:`IPV6_SKIPPED_HEADERS`, or ``None`` if the payload is shorter than 40
    bytes or an extension header runs past its end.
    """
    n = len(data)
    if n < 40:
        return None
    pos = 40
    proto = data[6]
    while proto in IPV6_SKIPPED_HEADERS:
        if pos + 8 > n:
            return None
        proto = data[pos]
        pos += data[pos + 1] * 8 + 8
        if pos > n:
            return None
    return pos, proto


class FrameFields:
    """Lazily decoded view of one payload for rule evaluation.

    The IPv6 header walk is done at most once however many rules ask for it.
    """

    __slots__ = ("_v6", "_v6_done", "data", "ethertype", "length")

    def __init__(self, data: bytes, ethertype: int) -> None:
        self.data = data
        self.length = len(data)
        self.ethertype = ethertype
        self._v6: tuple[int, int] | None = None
        self._v6_done = False

    def byte(self, index: int) -> int:
        """``data[index]``, or 0 past the end.

        The reference reads the TCP flag bytes without a bounds check (whatever
        follows the frame in its buffer); reading them as zero is the defined
        choice made here.
        """
        return self.data[index] if index < self.length else 0

    @property
    def is_ipv4(self) -> bool:
        """Ethertype IPv4 with at least a minimal 20-byte header present."""
        return self.ethertype == ETH_IPV4 and self.length >= 20

    @property
    def is_ipv6(self) -> bool:
        """Ethertype IPv6 with at least the fixed 40-byte header present."""
        return self.ethertype == ETH_IPV6 and self.length >= 40

    def ipv4_header_length(self) -> int:
        """IHL * 4 (may be less than 20 on a bogus header; the engine does not care)."""
        return (self.data[0] & 0x0F) * 4

    def ipv6_walk(self) -> tuple[int, int] | None:
        """:func:`ipv6_payload` of the data, computed once (caller checks the ethertype)."""
        if not self._v6_done:
            self._v6 = ipv6_payload(self.data)
            self._v6_done = True
        return self._v6

    def ip_protocol(self) -> int | None:
        """IPv4 protocol byte or the walked IPv6 next-header; ``None`` if neither applies."""
        if self.is_ipv4:
            return self.data[9]
        if self.ethertype == ETH_IPV6:
            walked = self.ipv6_walk()
            return None if walked is None else walked[1]
        return None

    def tos(self) -> int | None:
        """IPv4 TOS byte or IPv6 traffic class; ``None`` if not IP (or too short)."""
        d = self.data
        if self.is_ipv4:
            return d[1]
        if self.is_ipv6:
            return ((d[0] << 4) & 0xF0) | ((d[1] >> 4) & 0x0F)
        return None

    def tcp_flag_bits(self) -> int:
        """TCP header bytes 12 (low nibble, shifted up 8) and 13 for the characteristics word."""
        if self.is_ipv4:
            if self.data[9] != IPPROTO_TCP:
                return 0
            hl = self.ipv4_header_length()
            return self.byte(hl + 13) | ((self.byte(hl + 12) & 0x0F) << 8)
        if self.ethertype == ETH_IPV6:
            walked = self.ipv6_walk()
            if walked is not None and walked[1] == IPPROTO_TCP and self.length > walked[0] + 14:
                pos = walked[0]
                return self.data[pos + 13] | ((self.data[pos + 12] & 0x0F) << 8)
        return 0

    def sender_ip(self) -> tuple[bytes | None, bool]:
        """``(candidate source IP, automatically authenticated)`` for the characteristics word.

        IPv4: the source address. IPv6: the source address, except ICMPv6 neighbor
        solicitations (authenticated without an address) and advertisements (the
        target address). ARP: the sender protocol address.
        """
        d = self.data
        if self.is_ipv4:
            return bytes(d[12:16]), False
        if self.is_ipv6:
            if self.length >= 64 and d[6] == IPPROTO_ICMPV6:
                if d[40] == ICMPV6_NEIGHBOR_SOLICITATION:
                    return None, True
                if d[40] == ICMPV6_NEIGHBOR_ADVERTISEMENT:
                    return bytes(d[48:64]), False
            return bytes(d[8:24]), False
        if self.ethertype == ETH_ARP and self.length >= 28:
            return bytes(d[14:18]), False
        return None, False
