"""The crypto backend is a value passed to what needs it, never a process-wide switch.

Both backends live side by side in one process: a key made with one keeps using it
whatever else is made afterwards, and what one armors the other opens.
"""

from __future__ import annotations

import dataclasses

import pytest

from sim.network import MemoryState, vector_identities
from ztone.crypto import backend
from ztone.crypto.armor import SUITE_AES_GMAC_SIV, SUITE_POLY1305_SALSA2012, PeerKey, armor, dearmor
from ztone.crypto.backend import DEFAULT, PURE, Backend, named, native_available
from ztone.node.node import Node

NATIVE_MISSING = "ztone._speedups is not built"
KEY = bytes(range(48))
# packet id, destination, source, flags 0 (hop count 0), MAC field, verb, payload
PLAIN = bytes.fromhex("0102030405060708") + bytes(range(1, 11)) + bytes(9) + b"\x06" + b"p" * 140


def test_named_and_default() -> None:
    assert named("pure") is PURE and PURE.native is None and PURE.name == "pure"
    with pytest.raises(ValueError, match="unknown backend"):
        named("fast")
    if native_available():
        assert named("native") is backend.NATIVE is DEFAULT
        assert DEFAULT.native is not None and DEFAULT.name == "native"
    else:
        assert DEFAULT is PURE
        with pytest.raises(RuntimeError, match="not built"):
            named("native")


def test_a_backend_cannot_be_changed_and_there_is_no_switch() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PURE.name = "native"  # type: ignore[misc]
    assert not hasattr(backend, "use") and not hasattr(backend, "active")


@pytest.mark.skipif(not native_available(), reason=NATIVE_MISSING)
@pytest.mark.parametrize("suite", [SUITE_POLY1305_SALSA2012, SUITE_AES_GMAC_SIV])
def test_keys_of_both_backends_side_by_side(suite: int) -> None:
    native = named("native")
    pure_key, native_key = PeerKey(KEY, PURE), PeerKey(KEY, native)
    assert pure_key.crypto is PURE and native_key.crypto is native
    by_pure, by_native = bytearray(PLAIN), bytearray(PLAIN)
    armor(by_pure, pure_key, suite)
    armor(by_native, native_key, suite)
    assert by_pure == by_native
    assert dearmor(by_pure, native_key) and dearmor(by_native, pure_key)
    assert by_pure == by_native and by_pure[27:] == PLAIN[27:]


def test_the_node_keeps_the_backend_it_was_given() -> None:
    ids = vector_identities()
    node = Node(ids[0], now=1, random_bytes=bytes, state=MemoryState(), crypto=PURE)
    assert node.crypto is PURE
    assert node.validate_identity(ids[1].public_only())  # through PURE's memory-hard hash
    assert Node(ids[0], now=1, random_bytes=bytes, state=MemoryState()).crypto is DEFAULT


def test_backends_agree_on_the_primitives() -> None:
    for crypto in {PURE, DEFAULT}:
        assert isinstance(crypto, Backend)
        stream = crypto.salsa20_xor(KEY[:32], KEY[32:40], bytes(128), 12)
        assert crypto.salsa20_xor(KEY[:32], KEY[32:40], bytes(64), 12, 1) == stream[64:]
    assert PURE.poly1305_tag(KEY[:32], PLAIN) == DEFAULT.poly1305_tag(KEY[:32], PLAIN)
