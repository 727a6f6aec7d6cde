"""The byte work of one fast hop, in one call: a FRAME built, armored and cut into
datagrams, or one datagram authenticated and opened (PROTOCOL-CORE §5.2, §4, §5.6).

Sealing: ``packet_id || template || ethertype || payload`` where the 28-byte
per-peer template (:func:`frame_template`) is bytes [8:36] of the packet::

    [8:13] destination  [13:18] source  [18] flags = 0  [19:27] MAC = 0
    [27] verb = FRAME (6)  [28:36] network id

then the fragmented flag (longer than the MTU), armor (suite 3 AES-GMAC-SIV, or suite
1 Salsa20/12 + Poly1305 for a peer older than protocol 12) and the cut of
:func:`~ztone.node.wire.fragment.split`. Opening: one packet to us, 0 hops, suite 1
or 3, unfragmented or put back together from its fragments by the general path's
reassembler, copied and de-armored; anything else is None (the general path).

With ``native`` (``ztone._speedups``, when it has the hop functions and is the key's
backend) each is one call; otherwise the pure functions here do the same steps with
the general path's own codecs (:func:`~ztone.node.wire.packet.build_packet`'s layout,
``mark_fragmented``, :func:`~ztone.crypto.armor.armor`, ``split``), so both give the
same bytes (tested).
"""

from __future__ import annotations

from types import ModuleType

from ztone.crypto.armor import (
    SUITE_AES_GMAC_SIV,
    SUITE_POLY1305_SALSA2012,
    PeerKey,
    armor,
    dearmor,
)
from ztone.node.wire.fragment import mark_fragmented, max_packet_for_mtu, split
from ztone.node.wire.packet import IDX_FLAGS, MAX_PACKET_LENGTH, MIN_PACKET_LENGTH, Verb

FRAME_OVERHEAD = 38
"""Bytes of a FRAME packet before its payload: header 28, network id 8, ethertype 2."""

_FLAGS_FRAGMENTED_OR_HOPS = 0x47
_HOPS = 0x07


def frame_template(destination: int, source: int, nwid: int) -> bytes:
    """Bytes [8:36] of every FRAME from ``source`` to ``destination`` on ``nwid``."""
    return (
        destination.to_bytes(5, "big")
        + source.to_bytes(5, "big")
        + bytes(9)
        + bytes((Verb.FRAME,))
        + nwid.to_bytes(8, "big")
    )


def fits(payload_length: int, mtu: int) -> bool:
    """Whether a FRAME with this much payload can be sent over ``mtu`` at all."""
    return FRAME_OVERHEAD + payload_length <= min(max_packet_for_mtu(mtu), MAX_PACKET_LENGTH)


def native_hop(module: ModuleType | None) -> ModuleType | None:
    """``module`` if it is a native accelerator with the hop functions (one built before
    them has none: then the pure functions serve)."""
    if module is not None and hasattr(module, "seal_frame") and hasattr(module, "open_packet"):
        return module
    return None


def seal(
    native: ModuleType | None,
    key: PeerKey,
    aes: bool,
    template: bytes,
    packet_id: bytes,
    ethertype: int,
    payload: bytes,
    mtu: int,
) -> list[bytes]:
    """The datagrams of one FRAME (suite 3 when ``aes``, else suite 1)."""
    if native is not None and key.crypto.native is native:
        datagrams: list[bytes] = native.seal_frame(
            template, packet_id, ethertype, payload, mtu, key.siv if aes else None, key.salsa_key
        )
        return datagrams
    return seal_pure(key, aes, template, packet_id, ethertype, payload, mtu)


def seal_pure(
    key: PeerKey,
    aes: bool,
    template: bytes,
    packet_id: bytes,
    ethertype: int,
    payload: bytes,
    mtu: int,
) -> list[bytes]:
    """:func:`seal` with the general path's codecs (the reference)."""
    packet = bytearray(packet_id)
    packet += template
    packet += ethertype.to_bytes(2, "big")
    packet += payload
    mark_fragmented(packet, mtu)
    armor(packet, key, SUITE_AES_GMAC_SIV if aes else SUITE_POLY1305_SALSA2012)
    return split(packet, mtu)


def open_packet(
    native: ModuleType | None,
    key: PeerKey,
    destination: bytes,
    data: bytes,
    assembled: bool = False,
) -> bytearray | None:
    """``data`` opened (a copy), or None when the general path must take it.
    ``assembled``: ``data`` was put back together from its fragments (§5.7), so its
    fragmented flag may be set; it is authenticated as sent, flag included."""
    if native is not None and key.crypto.native is native:
        opened: bytearray | None = native.open_packet(
            data, destination, key.siv, key.salsa_key, assembled
        )
        return opened
    return open_pure(key, destination, data, assembled)


def open_pure(
    key: PeerKey, destination: bytes, data: bytes, assembled: bool = False
) -> bytearray | None:
    """:func:`open_packet` with :func:`~ztone.crypto.armor.dearmor` (the reference)."""
    if not MIN_PACKET_LENGTH <= len(data) <= MAX_PACKET_LENGTH or data[8:13] != destination:
        return None
    flags = data[IDX_FLAGS]
    refused = _HOPS if assembled else _FLAGS_FRAGMENTED_OR_HOPS
    if flags & refused or ((flags >> 3) & 7) not in (
        SUITE_AES_GMAC_SIV,
        SUITE_POLY1305_SALSA2012,
    ):
        return None
    packet = bytearray(data)
    return packet if dearmor(packet, key) else None
