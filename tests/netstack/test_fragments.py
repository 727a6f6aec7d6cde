"""The bounded reassembler on its own (RFC 791, RFC 8200 s4.5, RFC 5722)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.netstack.fragments import Reassembler

KEY = (b"\x01" * 4, b"\x02" * 4, 17, 9)


def fresh(**kw: int) -> Reassembler:
    args = {"max_datagrams": 4, "max_bytes": 100_000, "max_pieces": 16}
    args.update(kw)
    return Reassembler(args["max_datagrams"], args["max_bytes"], args["max_pieces"], 10.0)


def test_pieces_in_any_order_and_duplicates() -> None:
    data = random.Random(1).randbytes(4000)
    cuts = [0, 1000, 2008, 3000, 4000]
    pieces = [(cuts[i], data[cuts[i] : cuts[i + 1]]) for i in range(4)]
    r = fresh()
    order = [2, 0, 3, 0, 1]  # one duplicate
    out = [r.add(KEY, o, o + len(d) < 4000, d, 0.0) for o, d in (pieces[i] for i in order)]
    assert out[:-1] == [None] * 4 and out[-1] == data
    assert len(r) == 0 and r.buffered == 0 and r.reassembled == 1 and r.dropped == 0


def test_overlap_unaligned_too_big_and_conflicting_ends_drop() -> None:
    r = fresh()
    r.add(KEY, 0, True, bytes(16), 0.0)
    assert r.add(KEY, 8, True, bytes(16), 0.0) is None and len(r) == 0  # overlap
    assert r.add(KEY, 0, True, bytes(15), 0.0) is None  # not a multiple of 8
    assert r.add(KEY, 65528, False, bytes(16), 0.0) is None  # past 65535
    r.add(KEY, 0, False, bytes(8), 0.0)
    assert len(r) == 0 and r.reassembled == 1
    r.add(KEY, 16, False, bytes(8), 0.0)
    assert r.add(KEY, 32, False, bytes(8), 0.0) is None and len(r) == 0  # two ends
    assert r.dropped == 4


def test_bounds_and_timeout() -> None:
    r = fresh(max_datagrams=3, max_bytes=64, max_pieces=2)
    for ident in range(5):
        r.add((b"a", b"b", 17, ident), 0, True, bytes(8), float(ident))
    assert len(r) == 3 and r.dropped == 2  # the oldest went
    r.add((b"a", b"b", 17, 4), 8, True, bytes(8), 4.0)
    r.add((b"a", b"b", 17, 4), 16, True, bytes(8), 4.0)  # a third piece: over max_pieces
    assert len(r) == 2
    r.add((b"a", b"b", 17, 3), 8, True, bytes(64), 4.0)  # over max_bytes
    assert len(r) == 1
    assert r.deadline() == 12.0
    r.expire(11.9)
    assert len(r) == 1
    r.expire(12.0)
    assert len(r) == 0 and r.buffered == 0 and r.deadline() is None


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9000), st.booleans(),
                          st.binary(max_size=64)), max_size=40))  # fmt: skip
def test_arbitrary_fragments_stay_bounded(frags: list[tuple[int, int, bool, bytes]]) -> None:
    r = fresh(max_datagrams=2, max_bytes=200, max_pieces=4)
    for i, (ident, offset, more, data) in enumerate(frags):
        whole = r.add((b"s", b"d", 6, ident), offset, more, data, float(i))
        assert whole is None or len(whole) <= 65535
        assert len(r) <= 2 and 0 <= r.buffered <= 200
        r.expire(float(i))
