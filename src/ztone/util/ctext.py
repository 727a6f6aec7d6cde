"""C library number parsing that zerotier-one's text formats depend on.

Several places (Dictionary integers, ids in API paths and JSON, CLI arguments)
read numbers the way C's ``strtoull`` does: leading white space, an optional sign
(a minus negates modulo 2^64), an optional ``0x`` for base 16, then as many digits
as there are; no digit at all gives 0 and an overflow saturates.
"""

from __future__ import annotations

U64_MAX = (1 << 64) - 1
_HEX = "0123456789abcdefABCDEF"


def strtoull(text: str | bytes, base: int = 10) -> int:
    """``strtoull(text, NULL, base)`` for base 10 or 16, as a 64-bit unsigned value."""
    s = text.decode("latin-1") if isinstance(text, bytes) else text
    s = s.lstrip(" \t\n\r\f\v")
    negative = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    if base == 16 and s[:2].lower() == "0x" and s[2:3] and s[2] in _HEX:
        s = s[2:]
    digits = "0123456789abcdef"[:base]
    end = 0
    while end < len(s) and s[end].lower() in digits:
        end += 1
    if end == 0:
        return 0
    value = int(s[:end], base)
    if value > U64_MAX:
        return U64_MAX
    return (-value) & U64_MAX if negative else value
