"""Salsa20 (DJB's original: 256-bit key, 64-bit nonce, 64-bit block counter).

This is the pure-Python reference (PROTOCOL-CORE §4.4 uses 12 rounds for packets,
§2.4 uses 20 rounds for the identity hash). State layout, little-endian words::

    0: "expa"  1-4: key[0:16]  5: "nd 3"  6-7: nonce  8-9: counter (LE u64)
    10: "2-by"  11-14: key[16:32]  15: "te k"

Two forms: :func:`keystream` / :func:`xor` for a handful of blocks (plain ints),
and :func:`keystream_blocks_np` which computes many consecutive blocks at once with
numpy (the memory-hard identity hash needs 163,840 of them). numpy is optional (the
``speedups`` extra); without it the identity hash uses :func:`keystream`, which gives
the same bytes about 25 times slower.
"""

# ruff: noqa: E702
# (the unrolled round function keeps one quarter-round step per line)
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ztone.errors import LocalUsageError

if TYPE_CHECKING:  # numpy is imported where it is used: a daemon with the native
    import numpy as np  # accelerator never needs it (it costs ~13 MB of RSS)
    import numpy.typing as npt

_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
_M32 = 0xFFFFFFFF
_PACK16 = struct.Struct("<16I")


def _initial_state(key: bytes, nonce: bytes) -> list[int]:
    if len(key) != 32 or len(nonce) != 8:
        raise LocalUsageError("Salsa20 needs a 32-byte key and an 8-byte nonce")
    k = struct.unpack("<8I", key)
    n = struct.unpack("<2I", nonce)
    return [
        _SIGMA[0],
        k[0],
        k[1],
        k[2],
        k[3],
        _SIGMA[1],
        n[0],
        n[1],
        0,
        0,
        _SIGMA[2],
        k[4],
        k[5],
        k[6],
        k[7],
        _SIGMA[3],
    ]


def _block(state: list[int], rounds: int) -> bytes:
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15 = state
    # fmt: off
    for _ in range(rounds // 2):
        # column round
        t = (x0 + x12) & _M32; x4 ^= ((t << 7) | (t >> 25)) & _M32
        t = (x4 + x0) & _M32; x8 ^= ((t << 9) | (t >> 23)) & _M32
        t = (x8 + x4) & _M32; x12 ^= ((t << 13) | (t >> 19)) & _M32
        t = (x12 + x8) & _M32; x0 ^= ((t << 18) | (t >> 14)) & _M32
        t = (x5 + x1) & _M32; x9 ^= ((t << 7) | (t >> 25)) & _M32
        t = (x9 + x5) & _M32; x13 ^= ((t << 9) | (t >> 23)) & _M32
        t = (x13 + x9) & _M32; x1 ^= ((t << 13) | (t >> 19)) & _M32
        t = (x1 + x13) & _M32; x5 ^= ((t << 18) | (t >> 14)) & _M32
        t = (x10 + x6) & _M32; x14 ^= ((t << 7) | (t >> 25)) & _M32
        t = (x14 + x10) & _M32; x2 ^= ((t << 9) | (t >> 23)) & _M32
        t = (x2 + x14) & _M32; x6 ^= ((t << 13) | (t >> 19)) & _M32
        t = (x6 + x2) & _M32; x10 ^= ((t << 18) | (t >> 14)) & _M32
        t = (x15 + x11) & _M32; x3 ^= ((t << 7) | (t >> 25)) & _M32
        t = (x3 + x15) & _M32; x7 ^= ((t << 9) | (t >> 23)) & _M32
        t = (x7 + x3) & _M32; x11 ^= ((t << 13) | (t >> 19)) & _M32
        t = (x11 + x7) & _M32; x15 ^= ((t << 18) | (t >> 14)) & _M32
        # row round
        t = (x0 + x3) & _M32; x1 ^= ((t << 7) | (t >> 25)) & _M32
        t = (x1 + x0) & _M32; x2 ^= ((t << 9) | (t >> 23)) & _M32
        t = (x2 + x1) & _M32; x3 ^= ((t << 13) | (t >> 19)) & _M32
        t = (x3 + x2) & _M32; x0 ^= ((t << 18) | (t >> 14)) & _M32
        t = (x5 + x4) & _M32; x6 ^= ((t << 7) | (t >> 25)) & _M32
        t = (x6 + x5) & _M32; x7 ^= ((t << 9) | (t >> 23)) & _M32
        t = (x7 + x6) & _M32; x4 ^= ((t << 13) | (t >> 19)) & _M32
        t = (x4 + x7) & _M32; x5 ^= ((t << 18) | (t >> 14)) & _M32
        t = (x10 + x9) & _M32; x11 ^= ((t << 7) | (t >> 25)) & _M32
        t = (x11 + x10) & _M32; x8 ^= ((t << 9) | (t >> 23)) & _M32
        t = (x8 + x11) & _M32; x9 ^= ((t << 13) | (t >> 19)) & _M32
        t = (x9 + x8) & _M32; x10 ^= ((t << 18) | (t >> 14)) & _M32
        t = (x15 + x14) & _M32; x12 ^= ((t << 7) | (t >> 25)) & _M32
        t = (x12 + x15) & _M32; x13 ^= ((t << 9) | (t >> 23)) & _M32
        t = (x13 + x12) & _M32; x14 ^= ((t << 13) | (t >> 19)) & _M32
        t = (x14 + x13) & _M32; x15 ^= ((t << 18) | (t >> 14)) & _M32
    # fmt: on
    out = (x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15)
    return _PACK16.pack(*((a + b) & _M32 for a, b in zip(out, state, strict=True)))


def keystream(key: bytes, nonce: bytes, length: int, rounds: int, first_block: int = 0) -> bytes:
    """``length`` keystream bytes starting at block ``first_block``."""
    if rounds not in (8, 12, 20):
        raise LocalUsageError(f"unsupported Salsa20 round count {rounds}")
    state = _initial_state(key, nonce)
    blocks = []
    counter = first_block
    for _ in range((length + 63) // 64):
        state[8] = counter & _M32
        state[9] = (counter >> 32) & _M32
        blocks.append(_block(state, rounds))
        counter += 1
    return b"".join(blocks)[:length]


def xor(
    key: bytes,
    nonce: bytes,
    data: bytes | bytearray | memoryview,
    rounds: int,
    first_block: int = 0,
) -> bytes:
    """XOR ``data`` with the keystream starting at block ``first_block``."""
    n = len(data)
    if n == 0:
        return b""
    ks = keystream(key, nonce, n, rounds, first_block)
    return (int.from_bytes(data, "little") ^ int.from_bytes(ks, "little")).to_bytes(n, "little")


def keystream_blocks_np(
    key: bytes, nonce: bytes, first_block: int, count: int, rounds: int
) -> npt.NDArray[np.uint8]:
    """Blocks ``first_block .. first_block+count-1`` as a ``(count, 64)`` uint8 array."""
    import numpy as np  # noqa: PLC0415 (lazy: see the import block)

    def _rotl(v: npt.NDArray[np.uint32], c: int) -> npt.NDArray[np.uint32]:
        return (v << np.uint32(c)) | (v >> np.uint32(32 - c))

    init = _initial_state(key, nonce)
    counters = np.arange(first_block, first_block + count, dtype=np.uint64)
    x = [np.full(count, w, dtype=np.uint32) for w in init]
    x[8] = (counters & np.uint64(_M32)).astype(np.uint32)
    x[9] = (counters >> np.uint64(32)).astype(np.uint32)
    s = [v.copy() for v in x]

    def qr(a: int, b: int, c: int, d: int) -> None:
        x[b] ^= _rotl(x[a] + x[d], 7)
        x[c] ^= _rotl(x[b] + x[a], 9)
        x[d] ^= _rotl(x[c] + x[b], 13)
        x[a] ^= _rotl(x[d] + x[c], 18)

    for _ in range(rounds // 2):
        qr(0, 4, 8, 12)
        qr(5, 9, 13, 1)
        qr(10, 14, 2, 6)
        qr(15, 3, 7, 11)
        qr(0, 1, 2, 3)
        qr(5, 6, 7, 4)
        qr(10, 11, 8, 9)
        qr(15, 12, 13, 14)
    words = np.stack([x[i] + s[i] for i in range(16)], axis=1).astype("<u4")
    return words.view(np.uint8).reshape(count, 64)
