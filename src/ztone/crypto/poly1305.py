"""Poly1305 one-time authenticator (RFC 8439 §2.5), pure-Python reference.

Key: 32 bytes, ``r`` (clamped) then ``s``. Tag: 16 bytes. ZeroTier keeps the
first 8 bytes of the tag in the packet's MAC field (PROTOCOL-CORE §4.4.2).
"""

from __future__ import annotations

from ztone.errors import LocalUsageError

_P = (1 << 130) - 5
_CLAMP = 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF


def poly1305(key: bytes, message: bytes | bytearray | memoryview) -> bytes:
    if len(key) != 32:
        raise LocalUsageError("Poly1305 needs a 32-byte key")
    r = int.from_bytes(key[:16], "little") & _CLAMP
    s = int.from_bytes(key[16:], "little")
    acc = 0
    msg = bytes(message)
    for i in range(0, len(msg), 16):
        chunk = msg[i : i + 16]
        n = int.from_bytes(chunk, "little") | (1 << (8 * len(chunk)))
        acc = ((acc + n) * r) % _P
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")
