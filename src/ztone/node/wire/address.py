"""ZeroTier node addresses (PROTOCOL-CORE §1.2).

Wire form: 5 bytes, big-endian 40-bit unsigned integer. Text form: exactly 10
lower-case hex digits. Reserved: zero, or first byte 0xff (0xff in the source
position marks a fragment, §5.6).
"""

from __future__ import annotations

from ztone.errors import MalformedPacket

ADDRESS_LENGTH = 5
ADDRESS_MAX = (1 << 40) - 1
RESERVED_PREFIX = 0xFF


class Address(int):
    """A 40-bit ZeroTier address; an ``int`` whose ``str`` is the 10-hex-digit form."""

    __slots__ = ()

    def __new__(cls, value: int) -> Address:
        if not 0 <= value <= ADDRESS_MAX:
            raise ValueError(f"address out of range: {value:#x}")
        return super().__new__(cls, value)

    @classmethod
    def from_bytes5(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> Address:
        """Decode 5 big-endian bytes at ``offset``; :class:`MalformedPacket` if short."""
        if offset < 0 or len(data) < offset + ADDRESS_LENGTH:
            raise MalformedPacket("truncated address")
        return cls(int.from_bytes(data[offset : offset + ADDRESS_LENGTH], "big"))

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse hex text (up to 10 digits); ``ValueError`` if not an address."""
        text = text.strip()
        if not 0 < len(text) <= 10 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError(f"not a ZeroTier address: {text!r}")
        return cls(int(text, 16))

    def to_bytes5(self) -> bytes:
        return int(self).to_bytes(ADDRESS_LENGTH, "big")

    @property
    def is_reserved(self) -> bool:
        return self == 0 or (self >> 32) == RESERVED_PREFIX

    def __str__(self) -> str:
        return f"{int(self):010x}"

    def __repr__(self) -> str:
        return f"Address({int(self):010x})"
