"""zerotier-one's lenient reading of JSON values (``OSUtils::jsonString``).

``json_string(value, default)``: a string as is; ``true``/``false`` as ``1``/``0``; a
number as its unsigned 64-bit decimal (an integer modulo 2^64, a finite float truncated
toward zero first, as the C++ cast does); anything else (null, object, array, NaN or
an infinity) gives ``default``. PROTOCOL-NETWORK-SERVICE C.1 (CLI) and B (API).
"""

from __future__ import annotations

import math

from ztone.util.ctext import U64_MAX


def json_string(value: object, default: str) -> str:
    """``OSUtils::jsonString`` (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value & U64_MAX)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value) & U64_MAX)
    return default
