"""Config chunks (A.2.8, §6.13): building, parsing, 3-slot reassembly, and lab1's capture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VECTORS
from node.test_lab1_capture import IDX_OK_PAYLOAD, dissect
from ztone.errors import MalformedPacket
from ztone.node.wire.config_chunk import (
    DICT_CAPACITY,
    MAX_CHUNK_LENGTH,
    MAX_UPDATE_CHUNKS,
    AssembledConfig,
    ConfigAssembler,
    ConfigChunk,
    make_config_chunks,
)
from ztone.node.wire.identity import Identity
from ztone.node.wire.network_config import NetworkConfig
from ztone.node.wire.packet import IDX_PAYLOAD, Verb

LAB1 = VECTORS / "lab1"
CTRL = Identity.from_string((LAB1 / "ctrl" / "identity.secret").read_text())
A = Identity.from_string((LAB1 / "a" / "identity.secret").read_text())
B = Identity.from_string((LAB1 / "b" / "identity.secret").read_text())
NWID = 0x1FAD486CAFE468E2
CONFIG = (VECTORS / "netconf" / "a.1fad486cafe468e2.conf").read_bytes()
UPDATE = 0x0123456789ABCDEF


def _chunks(data: bytes = CONFIG, update: int = UPDATE, length: int = 300) -> list[bytes]:
    return make_config_chunks(data, NWID, update, CTRL, chunk_length=length)


# --- building and parsing ------------------------------------------------------------------


def test_single_chunk_ok_layout_z2() -> None:
    (payload,) = make_config_chunks(CONFIG, NWID, UPDATE, CTRL, (Verb.NETWORK_CONFIG_REQUEST, 77))
    n = len(CONFIG)
    assert payload[0] == 0x0B and payload[1:9] == (77).to_bytes(8, "big")
    body = payload[9:]
    assert body[:8] == NWID.to_bytes(8, "big") and body[8:10] == n.to_bytes(2, "big")
    assert body[10 : 10 + n] == CONFIG
    assert body[10 + n] == 0  # flags
    assert body[11 + n : 19 + n] == UPDATE.to_bytes(8, "big")
    assert body[19 + n : 23 + n] == n.to_bytes(4, "big") and body[23 + n : 27 + n] == bytes(4)
    assert body[27 + n : 30 + n] == b"\x01\x00\x60" and len(body) == 30 + n + 96
    assert CTRL.verify(body[: 27 + n], body[30 + n :])
    chunk, end = ConfigChunk.parse(payload, 9)
    assert end == len(payload) and chunk.signed and chunk.verify(CTRL) and not chunk.verify(A)
    assert (chunk.network_id, chunk.data, chunk.update_id) == (NWID, CONFIG, UPDATE)
    assert (chunk.total_length, chunk.index, chunk.flags) == (n, 0, 0)
    assert chunk.signed_region == body[: 27 + n] and chunk.signature == body[30 + n :]
    assert chunk.serialize() == body
    folded = bytearray(8)
    for i in range(16):
        folded[i & 7] ^= chunk.signature[i]
    assert chunk.chunk_id == int.from_bytes(folded, "little")


def test_multi_chunk_split() -> None:
    payloads = _chunks()
    assert len(payloads) == 4  # 1118 bytes in chunks of 300
    chunks = [ConfigChunk.parse(p)[0] for p in payloads]
    assert [c.index for c in chunks] == [0, 300, 600, 900]
    assert [len(c.data) for c in chunks] == [300, 300, 300, 218]
    assert all(c.total_length == len(CONFIG) and c.verify(CTRL) for c in chunks)
    assert b"".join(c.data for c in chunks) == CONFIG
    assert make_config_chunks(b"", NWID, UPDATE, CTRL) == []
    assert ConfigChunk.parse(make_config_chunks(b"x", NWID, 0, CTRL)[0])[0].update_id == 1
    big = bytes(MAX_CHUNK_LENGTH + 1)
    assert [len(ConfigChunk.parse(p)[0].data) for p in make_config_chunks(big, NWID, 1, CTRL)] == [
        9740,
        1,
    ]


def test_chunk_prefixes_and_bad_signature_fields() -> None:
    (payload,) = _chunks(CONFIG[:50])
    legacy_end = 10 + 50
    for n in range(len(payload)):
        if n == legacy_end:
            chunk, end = ConfigChunk.parse(payload[:n])  # exactly the legacy (unsigned) form
            assert not chunk.signed and end == n and chunk.chunk_id is None
            assert chunk.serialize() == payload[:n] and not chunk.verify(CTRL)
            continue
        with pytest.raises(MalformedPacket):
            ConfigChunk.parse(payload[:n])
    for pos, value in ((legacy_end + 17, 2), (legacy_end + 19, 0x5F)):
        bad = bytearray(payload)
        bad[pos] = value
        with pytest.raises(MalformedPacket):
            ConfigChunk.parse(bytes(bad))
    assert ConfigChunk.parse(payload + b"trailing")[1] == len(payload)


# --- reassembly ----------------------------------------------------------------------------


def test_assemble_in_any_order_and_duplicates() -> None:
    payloads = _chunks()
    for order in (payloads, payloads[::-1], [payloads[2], payloads[0], payloads[3], payloads[1]]):
        asm = ConfigAssembler(NWID)
        results = [asm.add(p, CTRL, CTRL.address) for p in order]
        assert results[:-1] == [None] * 3
        assert results[-1] == AssembledConfig(UPDATE, CONFIG)
        assert asm.add(order[0], CTRL) is None  # a duplicate chunk (a relayed copy)
        assert asm.propagate is None


def test_assembler_rejections() -> None:
    (payload,) = _chunks(CONFIG[:40])
    asm = ConfigAssembler(NWID)
    assert asm.add(payload, None) is None  # controller identity unknown
    assert asm.add(payload, A) is None  # not the controller's identity
    tampered = bytearray(payload)
    tampered[12] ^= 1
    assert asm.add(bytes(tampered), CTRL) is None  # bad signature
    assert asm.add(payload, CTRL) == AssembledConfig(UPDATE, CONFIG[:40])

    def signed(total: int, index: int) -> bytes:
        chunk = ConfigChunk(NWID, b"abc", True, 0, 5, total, index)
        region = chunk.serialize()[: 10 + 3 + 17]
        return region + b"\x01\x00\x60" + CTRL.sign(region)

    assert ConfigChunk.parse(signed(10, 8))[0].verify(CTRL)
    assert ConfigAssembler(NWID).add(signed(10, 8), CTRL) is None  # index + length > total
    assert ConfigAssembler(NWID).add(signed(DICT_CAPACITY, 0), CTRL) is None
    assert ConfigAssembler(NWID).add(signed(DICT_CAPACITY - 1, 0), CTRL) is None  # incomplete
    with pytest.raises(MalformedPacket):
        ConfigAssembler(NWID).add(payload[:20], CTRL)


def test_legacy_unsigned_chunk() -> None:
    legacy = NWID.to_bytes(8, "big") + len(CONFIG).to_bytes(2, "big") + CONFIG
    assert ConfigAssembler(NWID).add(legacy, None, A.address, packet_id=99) is None
    assert ConfigAssembler(NWID).add(legacy, None, CTRL.address, packet_id=99) == (99, CONFIG)
    assert ConfigAssembler(NWID).add(legacy, None, 0, packet_id=7) == (7, CONFIG)
    # Without a network id of its own, the assembler trusts the chunk's network id.
    assert ConfigAssembler().add(legacy, None, CTRL.address, packet_id=1) == (1, CONFIG)


def test_fast_propagate() -> None:
    chunk = ConfigChunk(NWID, CONFIG[:20], True, 0x01, 9, 20, 0)
    region = chunk.serialize()[: 10 + 20 + 17]
    payload = b"\x0b" + bytes(8) + region + b"\x01\x00\x60" + CTRL.sign(region)
    asm = ConfigAssembler(NWID)
    assert asm.add(payload + b"junk", CTRL, offset=9) == (9, CONFIG[:20])
    assert asm.propagate == payload[9:]
    assert ConfigChunk.parse(asm.propagate)[0].fast_propagate
    assert asm.add(payload, CTRL, offset=9) is None and asm.propagate is None  # duplicate


def test_three_slots_least_recently_used() -> None:
    updates = {u: _chunks(update=u) for u in (1, 2, 3, 4)}
    asm = ConfigAssembler(NWID)
    for u in (1, 2, 3):
        assert asm.add(updates[u][0], CTRL) is None
    # A fourth update takes the least recently used slot: update 1's.
    assert asm.add(updates[4][0], CTRL) is None
    for u in (2, 3, 4):
        results = [asm.add(p, CTRL) for p in updates[u][1:]]
        assert results[-1] == (u, CONFIG), u
    # Update 1 lost its first chunk: the rest cannot complete it...
    assert [asm.add(p, CTRL) for p in updates[1][1:]] == [None] * 3
    # ...until that chunk comes again.
    assert asm.add(updates[1][0], CTRL) == (1, CONFIG)


def test_too_many_chunks() -> None:
    data = b"x" * (MAX_UPDATE_CHUNKS + 1)
    payloads = make_config_chunks(data, NWID, 5, CTRL, chunk_length=1)
    asm = ConfigAssembler(NWID)
    assert [asm.add(p, CTRL) for p in payloads] == [None] * len(payloads)


@settings(max_examples=300)
@given(st.binary(max_size=200), st.integers(0, 8))
def test_random_chunks_raise_only_malformed(data: bytes, offset: int) -> None:
    try:
        ConfigAssembler(NWID).add(data, CTRL, offset=offset)
    except MalformedPacket:
        pass


# --- lab1: the config chunks on the wire ---------------------------------------------------


def _capture_chunks() -> Iterator[tuple[int, bytes, int, int, int]]:
    """(destination, chunk payload, source, packet id, hops) of each chunk in the capture."""
    for seen, _ in dissect().chunks:
        at = IDX_OK_PAYLOAD if seen.verb == Verb.OK else IDX_PAYLOAD
        packet_id = int.from_bytes(seen.wire[:8], "big")
        h = seen.header
        yield int(h.destination), seen.plain[at:], int(h.source), packet_id, h.hops


def test_capture_config_updates() -> None:
    """Every config the controller sent in lab1, reassembled and checked against the .conf.

    Each member got two updates: the answer to its request (OK(NETWORK_CONFIG_REQUEST))
    and a NETWORK_CONFIG push 1-2 ms later. b's were relayed by the root, so each also
    crossed the bridge a second time (hops 1): a duplicate chunk, rejected. The node
    stored the last one: ``networks.d/<nwid>.conf`` is byte-identical to it.
    """
    assemblers = {int(A.address): ConfigAssembler(NWID), int(B.address): ConfigAssembler(NWID)}
    completed: dict[int, list[AssembledConfig]] = {int(A.address): [], int(B.address): []}
    duplicates = 0
    for destination, payload, source, packet_id, hops in _capture_chunks():
        assert source == CTRL.address
        chunk, end = ConfigChunk.parse(payload)
        assert end == len(payload) and chunk.signed and chunk.verify(CTRL)
        assert (chunk.index, chunk.total_length, chunk.flags) == (0, len(chunk.data), 0)
        result = assemblers[destination].add(payload, CTRL, source, packet_id=packet_id)
        if result is None:
            duplicates += 1
            assert hops == 1
        else:
            completed[destination].append(result)
    assert duplicates == 2
    for identity, name in ((A, "a"), (B, "b")):
        stored = (VECTORS / "netconf" / f"{name}.1fad486cafe468e2.conf").read_bytes()
        (first_id, first), (last_id, last) = completed[identity.address]
        assert first_id != last_id
        assert last == stored  # byte for byte
        earlier, later = NetworkConfig.parse(first), NetworkConfig.parse(last)
        assert 0 < later.timestamp - earlier.timestamp <= 2
        assert earlier.serialize() == first and later.serialize() == last
        for config in (earlier, later):
            assert config.issued_to == identity.address and config.network_id == NWID
            assert config.com is not None and config.com.verify(CTRL)
        # The earlier update differs only where its issue time shows: ts, C and COO.
        newer = later.to_dictionary()
        changed = [k for k, v in earlier.to_dictionary() if newer.get(k) != v]
        assert changed == [b"ts", b"C", b"COO"]
