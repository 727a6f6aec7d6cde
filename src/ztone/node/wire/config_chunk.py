"""Network config transport: signed chunks and their reassembly (A.2.8, PROTOCOL-CORE §6.13).

A chunk is carried by ``OK(NETWORK_CONFIG_REQUEST)`` (after the in-re verb and
packet id, packet offset 37) or by ``NETWORK_CONFIG`` (packet offset 28)::

    0     <[8] network id>                  \\
    8     <[2] chunk length C>               |
    10    <[C] dictionary bytes [index, index + C)>
    10+C  <[1] flags: 0x01 fast propagate>   | signed region
    11+C  <[8] config update id>             |
    19+C  <[4] total dictionary length>      |
    23+C  <[4] index of this chunk>         /
    27+C  <[1] signature type 1> <[2] 96> <[96] controller's signature>

A *legacy* chunk (from pre-1.2 controllers) ends right after the chunk data: it is
unsigned and always a whole config.

:class:`ConfigAssembler` is ``Network::handleConfigChunk``'s reassembly: three
reassembly slots chosen by update id, else the least recently used (``ts`` is a
counter, not a clock), duplicate chunks recognized by a 64-bit id folded from
their signature, every signed chunk verified with the controller's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ztone.errors import LocalUsageError, MalformedPacket
from ztone.node.wire.credential_base import SIGNATURE_LENGTH, SIGNATURE_TYPE_C25519, WireReader
from ztone.node.wire.identity import Identity

MAX_CHUNK_LENGTH = 10024 - (28 + 256)  # 9740: ZT_PROTO_MAX_PACKET_LENGTH - (payload idx + 256)
# ZT_NETWORKCONFIG_DICT_CAPACITY: platform dependent (sizeof of C++ structs), about
# 484 520 bytes on x86-64 Linux (PROTOCOL-NETWORK-SERVICE A.1.5, UNVERIFIED exact).
DICT_CAPACITY = 484_520
MAX_INCOMING_UPDATES = 3
MAX_UPDATE_CHUNKS = DICT_CAPACITY // 1024 + 1
FLAG_FAST_PROPAGATE = 0x01
VERB_NETWORK_CONFIG_REQUEST = 0x0B
_SIGNED_TAIL = 17  # flags, update id, total, index


@dataclass(frozen=True, slots=True)
class ConfigChunk:
    """One chunk, signed (modern) or legacy (``signed`` False, no trailer)."""

    network_id: int
    data: bytes
    signed: bool = True
    flags: int = 0
    update_id: int = 0
    total_length: int = 0
    index: int = 0
    signed_region: bytes = b""
    signature: bytes = b""

    @classmethod
    def parse(
        cls, payload: bytes | bytearray | memoryview, offset: int = 0
    ) -> tuple[ConfigChunk, int]:
        """Decode at ``offset``; return (chunk, offset after its signature).

        Raises :class:`MalformedPacket` if truncated or if the signature is not
        type 1 of 96 bytes. Bytes after the signature are not looked at.
        """
        r = WireReader(payload, offset)
        nwid = r.u64("config chunk network id")
        length = r.u16("config chunk length")
        data = r.take(length, "config chunk data")
        if r.remaining == 0:
            return cls(nwid, data, signed=False, total_length=length), r.pos
        flags = r.u8("config chunk flags")
        update_id = r.u64("config update id")
        total = r.u32("config total length")
        index = r.u32("config chunk index")
        signed_region = r.data[offset : r.pos]
        sig_type = r.u8("config chunk signature type")
        sig_length = r.u16("config chunk signature length")
        if sig_type != SIGNATURE_TYPE_C25519 or sig_length != SIGNATURE_LENGTH:
            raise MalformedPacket(f"config chunk signature type {sig_type} length {sig_length}")
        signature = r.take(SIGNATURE_LENGTH, "config chunk signature")
        chunk = cls(nwid, data, True, flags, update_id, total, index, signed_region, signature)
        return chunk, r.pos

    def serialize(self) -> bytes:
        if not self.signed:
            return (
                self.network_id.to_bytes(8, "big") + len(self.data).to_bytes(2, "big") + self.data
            )
        return (
            _signed_region(
                self.network_id,
                self.data,
                self.flags,
                self.update_id,
                self.total_length,
                self.index,
            )
            + bytes((SIGNATURE_TYPE_C25519,))
            + SIGNATURE_LENGTH.to_bytes(2, "big")
            + self.signature
        )

    @property
    def fast_propagate(self) -> bool:
        return bool(self.flags & FLAG_FAST_PROPAGATE)

    @property
    def chunk_id(self) -> int | None:
        """Dedup id: signature bytes 0..15 XOR-folded into 8 (``id[i & 7] ^= sig[i]``).

        Read little-endian, as the ``uint64_t`` upstream folds into on x86. ``None``
        for a legacy chunk (whose id is its packet's id).
        """
        if not self.signed:
            return None
        folded = bytearray(8)
        for i, b in enumerate(self.signature[:16]):
            folded[i & 7] ^= b
        return int.from_bytes(folded, "little")

    def verify(self, controller: Identity) -> bool:
        return self.signed and controller.verify(self.signed_region, self.signature)


def _signed_region(
    nwid: int, data: bytes, flags: int, update_id: int, total: int, index: int
) -> bytes:
    return (
        nwid.to_bytes(8, "big")
        + len(data).to_bytes(2, "big")
        + data
        + bytes((flags & 0xFF,))
        + update_id.to_bytes(8, "big")
        + total.to_bytes(4, "big")
        + index.to_bytes(4, "big")
    )


def make_config_chunks(
    config_dict_bytes: bytes,
    nwid: int,
    update_id: int,
    signer: Identity,
    in_re: tuple[int, int] | None = None,
    *,
    chunk_length: int = MAX_CHUNK_LENGTH,
) -> list[bytes]:
    """``Node::ncSendConfig``: the payloads (after the verb byte) carrying a config.

    ``in_re`` = (verb, packet id) of the request when answering it with ``OK``: each
    payload then starts with that verb byte and packet id. ``update_id`` is the
    caller's random non-zero 64-bit value (0 becomes 1, as upstream). Flags are 0.
    """
    if not 0 < chunk_length <= 0xFFFF:
        raise LocalUsageError("chunk length must be 1..65535")
    update_id &= (1 << 64) - 1
    if update_id == 0:
        update_id = 1
    total = len(config_dict_bytes)
    prefix = b""
    if in_re is not None:
        prefix = bytes((in_re[0] & 0xFF,)) + (in_re[1] & ((1 << 64) - 1)).to_bytes(8, "big")
    payloads: list[bytes] = []
    for index in range(0, total, chunk_length):
        data = config_dict_bytes[index : index + chunk_length]
        region = _signed_region(nwid, data, 0, update_id, total, index)
        signature = signer.sign(region)
        payloads.append(prefix + region + bytes((SIGNATURE_TYPE_C25519,)) + b"\x00\x60" + signature)
    return payloads


@dataclass(slots=True)
class _Slot:
    ts: int = 0
    update_id: int = 0
    chunk_ids: list[int] = field(default_factory=list)
    have_bytes: int = 0
    data: bytearray = field(default_factory=bytearray)


class AssembledConfig(NamedTuple):
    """A completed config update: its id and the whole dictionary text."""

    update_id: int
    data: bytes


class ConfigAssembler:
    """Reassembles config updates for one network (``Network::handleConfigChunk``).

    :meth:`add` returns an :class:`AssembledConfig` (update id, dictionary bytes)
    when a chunk completes an update, else ``None`` (incomplete, duplicate, or
    rejected as upstream rejects silently); it raises :class:`MalformedPacket` for an
    undecodable chunk. After each call :attr:`propagate` holds the chunk's bytes
    (network id through signature) when it was verified and asks for fast
    propagation (re-send them as ``NETWORK_CONFIG`` to the other members), else
    ``None``.
    """

    __slots__ = ("_slots", "network_id", "propagate")

    def __init__(self, network_id: int | None = None) -> None:
        """``network_id`` None: take the controller from each chunk's network id."""
        self.network_id = network_id
        self._slots = [_Slot() for _ in range(MAX_INCOMING_UPDATES)]
        self.propagate: bytes | None = None

    def add(
        self,
        payload: bytes | bytearray | memoryview,
        controller: Identity | None,
        source: int = 0,
        *,
        offset: int = 0,
        packet_id: int = 0,
    ) -> AssembledConfig | None:
        """Take the chunk at ``payload[offset:]``.

        ``controller`` is the controller's identity if known (signed chunks are
        rejected without it). ``source`` (the packet's sender) and ``packet_id``
        matter for legacy chunks only: accepted only from the controller (or from
        source 0), the packet id being their update and chunk id.
        """
        self.propagate = None
        chunk, end = ConfigChunk.parse(payload, offset)
        nwid = chunk.network_id if self.network_id is None else self.network_id
        controller_address = (nwid >> 24) & 0xFFFFFFFFFF
        slot: _Slot | None = None
        if chunk.signed:
            if chunk.index + len(chunk.data) > chunk.total_length:
                return None
            if chunk.total_length >= DICT_CAPACITY:
                return None
            chunk_id = chunk.chunk_id
            assert chunk_id is not None
            for candidate in self._slots:
                if candidate.update_id == chunk.update_id:
                    slot = candidate
                    if chunk_id in candidate.chunk_ids:
                        return None
                    break
                if slot is None or candidate.ts < slot.ts:
                    slot = candidate
            if controller is None or controller.address != controller_address:
                return None
            if not chunk.verify(controller):
                return None
            if chunk.fast_propagate:
                self.propagate = bytes(payload[offset:end])
            update_id = chunk.update_id
        elif source in (controller_address, 0):
            chunk_id = update_id = packet_id
            for candidate in self._slots:
                if slot is None or candidate.ts < slot.ts:
                    slot = candidate
        else:
            return None
        assert slot is not None
        slot.ts += 1
        if slot.update_id != update_id:
            slot.update_id = update_id
            slot.chunk_ids = []
            slot.have_bytes = 0
        if len(slot.chunk_ids) >= MAX_UPDATE_CHUNKS:
            return None
        slot.chunk_ids.append(chunk_id)
        stop = chunk.index + len(chunk.data)
        if len(slot.data) < stop:
            slot.data.extend(bytes(stop - len(slot.data)))
        slot.data[chunk.index : stop] = chunk.data
        slot.have_bytes += len(chunk.data)
        if slot.have_bytes != chunk.total_length:
            return None
        return AssembledConfig(update_id, bytes(slot.data[: chunk.total_length]))
