"""The fast hop's byte work (:mod:`ztone.node.wire.frame_hop`): the native single call
gives the bytes of the pure reference, which gives the general path's bytes (build,
mark_fragmented, armor, split; dearmor), and hostile datagrams never get past it."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.crypto import backend
from ztone.crypto.armor import SUITE_AES_GMAC_SIV, SUITE_POLY1305_SALSA2012, PeerKey, dearmor
from ztone.node.wire import frame_hop
from ztone.node.wire.fragment import Reassembler, mark_fragmented, split
from ztone.node.wire.packet import Verb, build_packet
from ztone.node.wire.vl2_verbs import serialize_frame

NATIVE = backend.NATIVE
native_only = pytest.mark.skipif(NATIVE is None, reason="the native accelerator is not built")
HOP = frame_hop.native_hop(NATIVE.native if NATIVE is not None else None)

KEY48 = bytes(range(48))
DEST, SOURCE, NWID = 0x0102030405, 0x0A0B0C0D0E, 0x8056C2E21C000001
DEST5 = DEST.to_bytes(5, "big")
TEMPLATE = frame_hop.frame_template(DEST, SOURCE, NWID)
PID = bytes.fromhex("1122334455667788")


def _general(key: PeerKey, aes: bool, payload: bytes, mtu: int) -> list[bytes]:
    """What Switch.send + send_via_path make of the same FRAME."""
    packet = build_packet(PID, DEST, SOURCE, Verb.FRAME, serialize_frame(NWID, 0x0800, payload))
    from ztone.crypto.armor import armor  # noqa: PLC0415 (the general path's own call)

    mark_fragmented(packet, mtu)
    armor(packet, key, SUITE_AES_GMAC_SIV if aes else SUITE_POLY1305_SALSA2012)
    return split(packet, mtu)


def test_template_layout() -> None:
    assert len(TEMPLATE) == 28
    assert build_packet(PID, DEST, SOURCE, Verb.FRAME, NWID.to_bytes(8, "big"))[8:] == TEMPLATE


@pytest.mark.parametrize("aes", [True, False])
@pytest.mark.parametrize("size", [0, 1, 60, 1394, 1395, 1500, 2800, 5000, 9000])
def test_pure_seal_is_the_general_path(aes: bool, size: int) -> None:
    key = PeerKey(KEY48, backend.PURE)
    payload = bytes((i * 7) & 0xFF for i in range(size))
    sealed = frame_hop.seal_pure(key, aes, TEMPLATE, PID, 0x0800, payload, 1432)
    assert sealed == _general(key, aes, payload, 1432)


@native_only
@pytest.mark.parametrize("aes", [True, False])
@pytest.mark.parametrize("mtu", [1400, 1432, 9000])
@pytest.mark.parametrize("size", [0, 1, 60, 1394, 1395, 1500, 2800, 5000, 8000])
def test_native_seal_matches_pure(aes: bool, mtu: int, size: int) -> None:
    assert NATIVE is not None and HOP is not None
    native_key, pure_key = PeerKey(KEY48, NATIVE), PeerKey(KEY48, backend.PURE)
    payload = bytes((i * 13) & 0xFF for i in range(size))
    got = frame_hop.seal(HOP, native_key, aes, TEMPLATE, PID, 0x86DD, payload, mtu)
    want = frame_hop.seal(None, pure_key, aes, TEMPLATE, PID, 0x86DD, payload, mtu)
    assert got == want
    # and it reassembles and opens into the frame
    if len(got) == 1:
        whole = bytearray(got[0])
    else:
        r = Reassembler()
        out = r.add_head(0, got[0])
        for piece in got[1:]:
            out = r.add_piece(0, int.from_bytes(piece[0:8], "big"), piece[14] >> 4,
                              piece[14] & 0xF, piece[16:])  # fmt: skip
        assert out is not None
        whole = bytearray(out)
    assert dearmor(whole, pure_key)
    assert bytes(whole[38:]) == payload and whole[27] == Verb.FRAME


@native_only
def test_native_seal_refuses_what_the_general_path_refuses() -> None:
    assert NATIVE is not None and HOP is not None
    key = PeerKey(KEY48, NATIVE)
    too_big = bytes(1432 + 6 * (1432 - 16) - 38 + 1)  # past 7 pieces of MTU 1432
    assert not frame_hop.fits(len(too_big), 1432)
    assert frame_hop.fits(len(too_big) - 1, 1432)
    for native in (HOP, None):
        with pytest.raises(ValueError):
            frame_hop.seal(native, key if native else PeerKey(KEY48, backend.PURE), True,
                           TEMPLATE, PID, 0x0800, too_big, 1432)  # fmt: skip
    with pytest.raises(ValueError):
        HOP.seal_frame(TEMPLATE[:-1], PID, 0x0800, b"", 1432, None, key.salsa_key)
    with pytest.raises(TypeError):
        HOP.seal_frame(TEMPLATE, PID, 0x0800, b"", 1432, object(), key.salsa_key)


def _armored(aes: bool, size: int, key: PeerKey) -> bytes:
    return frame_hop.seal_pure(key, aes, TEMPLATE, PID, 0x0800, bytes(size), 10_000)[0]


@pytest.mark.parametrize("aes", [True, False])
def test_open_accepts_only_the_steady_state(aes: bool) -> None:
    pure = PeerKey(KEY48, backend.PURE)
    keys: list[tuple[ModuleType | None, PeerKey]] = [(None, pure)]
    if NATIVE is not None and HOP is not None:
        keys.append((HOP, PeerKey(KEY48, NATIVE)))
    good = _armored(aes, 100, pure)
    plain = bytearray(good)
    assert dearmor(plain, pure)
    for native, key in keys:
        assert frame_hop.open_packet(native, key, DEST5, good) == plain
        assert frame_hop.open_packet(native, key, SOURCE.to_bytes(5, "big"), good) is None
        for at, xor in ((18, 0x40), (18, 0x01), (18, 0x08 if aes else 0x10), (40, 1), (20, 1)):
            bad = bytearray(good)
            bad[at] ^= xor
            assert frame_hop.open_packet(native, key, DEST5, bytes(bad)) is None, (at, xor)
        assert frame_hop.open_packet(native, key, DEST5, good[:27]) is None
        assert frame_hop.open_packet(native, key, DEST5, good + bytes(10_000)) is None
    # suite 0 (MAC only) and 2 (trusted path) are the general path's
    mac_only = bytearray(build_packet(PID, DEST, SOURCE, Verb.NOP))
    from ztone.crypto.armor import SUITE_POLY1305_NONE, armor  # noqa: PLC0415

    armor(mac_only, pure, SUITE_POLY1305_NONE)
    for native, key in keys:
        assert frame_hop.open_packet(native, key, DEST5, bytes(mac_only)) is None


@native_only
@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.booleans())
def test_open_hostile_bytes_native_equals_pure(data: bytes, aimed: bool) -> None:
    assert NATIVE is not None
    if aimed and len(data) >= 28:  # to us, suite 3 or 1, no hops: reaches the MAC check
        b = bytearray(data)
        b[8:13] = DEST5
        b[18] = 0x18 if data[0] & 1 else 0x88
        data = bytes(b)
    native = frame_hop.open_packet(HOP, PeerKey(KEY48, NATIVE), DEST5, data)
    pure = frame_hop.open_packet(None, PeerKey(KEY48, backend.PURE), DEST5, data)
    assert native == pure


def test_an_accelerator_without_the_hop_functions_is_not_used() -> None:
    """An extension built before the hop functions: the node's fast path stays off."""
    import types  # noqa: PLC0415

    old = types.ModuleType("ztone._speedups")
    assert frame_hop.native_hop(None) is None
    assert frame_hop.native_hop(old) is None
    if NATIVE is not None:
        assert frame_hop.native_hop(NATIVE.native) is NATIVE.native


@pytest.mark.parametrize("aes", [True, False])
@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2)])
def test_open_assembled_takes_what_the_reassembler_made_whole(
    aes: bool, order: tuple[int, ...]
) -> None:
    """A full-size FRAME cut at a small MTU and put back together by the general path's
    reassembler (pieces in any order): opened as decode would open it, fragmented flag
    and all; the same bytes on a datagram (not assembled) stay the general path's."""
    pure = PeerKey(KEY48, backend.PURE)
    keys: list[tuple[ModuleType | None, PeerKey]] = [(None, pure)]
    if NATIVE is not None and HOP is not None:
        keys.append((HOP, PeerKey(KEY48, NATIVE)))
    datagrams = frame_hop.seal_pure(key=pure, aes=aes, template=TEMPLATE, packet_id=PID,
                                    ethertype=0x0800, payload=bytes(range(256)) * 8,
                                    mtu=1000)  # fmt: skip
    assert len(datagrams) == 3
    reassembler = Reassembler()
    whole = None
    for i in order:
        d = datagrams[i]
        if i == 0:
            whole = reassembler.add_head(1, d) or whole
        else:
            whole = reassembler.add_piece(1, int.from_bytes(d[0:8], "big"), d[14] >> 4,
                                          d[14] & 0xF, d[16:]) or whole  # fmt: skip
    assert whole is not None and whole[18] & 0x40
    plain = bytearray(whole)
    assert dearmor(plain, pure)
    for native, key in keys:
        assert frame_hop.open_packet(native, key, DEST5, whole, True) == plain
        assert frame_hop.open_packet(native, key, DEST5, whole) is None
        for at, xor in ((18, 0x01), (18, 0x40), (40, 1), (len(whole) - 1, 1)):
            bad = bytearray(whole)
            bad[at] ^= xor
            assert frame_hop.open_packet(native, key, DEST5, bytes(bad), True) is None, (at, xor)


@native_only
@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.booleans(), st.booleans())
def test_open_assembled_hostile_bytes_native_equals_pure(
    data: bytes, aimed: bool, fragmented: bool
) -> None:
    assert NATIVE is not None
    if aimed and len(data) >= 28:  # to us, suite 3 or 1, no hops: reaches the MAC check
        b = bytearray(data)
        b[8:13] = DEST5
        b[18] = (0x18 if data[0] & 1 else 0x88) | (0x40 if fragmented else 0)
        data = bytes(b)
    native = frame_hop.open_packet(HOP, PeerKey(KEY48, NATIVE), DEST5, data, True)
    pure = frame_hop.open_packet(None, PeerKey(KEY48, backend.PURE), DEST5, data, True)
    assert native == pure
