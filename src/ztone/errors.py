"""The one exception family for hostile input.

Every wire parser in ``ztone.node`` raises :class:`MalformedPacket` (a
``ValueError``) for truncated, oversized or otherwise invalid bytes, and nothing
else. Any other exception escaping a parser on attacker-controlled input is a bug,
and the hypothesis fuzz tests say so.
"""

from __future__ import annotations


class MalformedPacket(ValueError):
    """Bytes from the wire (or a file in a wire format) could not be decoded."""


class LocalUsageError(ValueError):
    """The caller passed an argument that makes no sense (a programming error)."""
