"""Ethernet MAC addresses and their derivation from ZeroTier addresses (§1.4).

A member's MAC on network ``nwid``: first octet ``(nwid & 0xfe) | 0x02`` (0x52 is
replaced by 0x32), then the 5 address bytes XORed with bytes 1..5 of the network id
counted from its least significant end (``(nwid >> 8) & 0xff`` for the first).
"""

from __future__ import annotations

from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address

MAC_MAX = (1 << 48) - 1
BROADCAST = 0xFFFFFFFFFFFF


def first_octet_for_network(nwid: int) -> int:
    """The first MAC octet every ZeroTier member of ``nwid`` uses."""
    octet = (nwid & 0xFE) | 0x02
    return 0x32 if octet == 0x52 else octet


def _xor_mask(nwid: int) -> int:
    # Bytes 1..5 of the MAC are XORed with nwid bytes 1..5 (LSB-first), i.e. the
    # 40-bit mask is nwid's bits 8..47 with their byte order reversed.
    m = 0
    for i in range(5):
        m = (m << 8) | ((nwid >> (8 * (i + 1))) & 0xFF)
    return m


class MAC(int):
    """A 48-bit MAC address; an ``int`` whose ``str`` is ``xx:xx:xx:xx:xx:xx``."""

    __slots__ = ()

    def __new__(cls, value: int) -> MAC:
        if not 0 <= value <= MAC_MAX:
            raise ValueError(f"MAC out of range: {value:#x}")
        return super().__new__(cls, value)

    @classmethod
    def from_address(cls, address: int, nwid: int) -> MAC:
        """The MAC of node ``address`` on network ``nwid``."""
        return cls(
            (first_octet_for_network(nwid) << 40) | ((address ^ _xor_mask(nwid)) & 0xFFFFFFFFFF)
        )

    def to_address(self, nwid: int) -> Address:
        """Invert :meth:`from_address` (meaningful when :meth:`is_zerotier_member`)."""
        return Address((int(self) ^ _xor_mask(nwid)) & 0xFFFFFFFFFF)

    def is_zerotier_member(self, nwid: int) -> bool:
        return (int(self) >> 40) == first_octet_for_network(nwid)

    @classmethod
    def from_bytes6(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> MAC:
        if offset < 0 or len(data) < offset + 6:
            raise MalformedPacket("truncated MAC")
        return cls(int.from_bytes(data[offset : offset + 6], "big"))

    @classmethod
    def parse(cls, text: str) -> MAC:
        """Parse ``xx:xx:xx:xx:xx:xx`` (or 12 hex digits); ``ValueError`` if malformed."""
        digits = text.strip().replace(":", "").replace("-", "")
        if len(digits) != 12 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError(f"not a MAC address: {text!r}")
        return cls(int(digits, 16))

    def to_bytes6(self) -> bytes:
        return int(self).to_bytes(6, "big")

    @property
    def is_multicast(self) -> bool:
        return bool((int(self) >> 40) & 0x01)

    @property
    def is_broadcast(self) -> bool:
        return int(self) == BROADCAST

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self.to_bytes6())

    def __repr__(self) -> str:
        return f"MAC({self})"
