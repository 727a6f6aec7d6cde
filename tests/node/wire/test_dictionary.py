"""Dictionary reading where the blob holds a NUL (PROTOCOL-NETWORK-SERVICE A.1.1).

Upstream's dictionary is a C string: reading stops at the first NUL byte, wherever
it is, including the very first byte.
"""

from __future__ import annotations

from ztone.node.wire.dictionary import Dictionary


def test_nul_as_first_byte_ends_the_input() -> None:
    """Guards: ``if nul >= 0`` turned into ``if nul > 0`` (a leading NUL ignored)."""
    d = Dictionary.parse(b"\x00a=1\nb=2")
    assert len(d) == 0
    assert d.get("a") is None and d.get("b") is None


def test_nul_in_the_middle_ends_the_input() -> None:
    """Guards: the NUL cut removed (entries after the NUL read)."""
    d = Dictionary.parse(b"a=1\nb=2\x00\nc=3")
    assert list(d) == [(b"a", b"1"), (b"b", b"2")]
    assert Dictionary.parse(b"a=x\x00y").get("a") == b"x"
