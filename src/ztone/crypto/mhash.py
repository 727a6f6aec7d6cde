"""The memory-hard hash behind identity addresses (PROTOCOL-CORE §2.4), pure reference.

``D = SHA-512(public key)``; one Salsa20/20 stream keyed by ``D[0:32]`` with nonce
``D[32:40]`` fills a 2 MiB buffer of 32,768 64-byte blocks (each block is the XOR of
all keystream blocks up to it), then 131,072 mixing rounds each read two 8-byte
slots of the buffer as big-endian integers, swap a buffer slot with a slot of ``D``
and XOR ``D`` with the next keystream block. The address is ``D[59:64]`` and the
proof of work is ``D[0] < 17``.

The keystream does not depend on the buffer, so it is computed up front: with
numpy when it is installed (the optional ``speedups`` extra), else block by block in
plain Python (same bytes, much slower; OmniOS has no numpy package and building it
needs a C++ toolchain). The mixing loop keeps every slot as a big-endian Python int,
which makes the raw 8-byte swaps and the big-endian index reads the same operation.
"""

from __future__ import annotations

import hashlib
import struct

from ztone.crypto.salsa20 import keystream, keystream_blocks_np

MEMORY_BYTES = 2_097_152
FILL_BLOCKS = MEMORY_BYTES // 64  # 32,768
SLOTS = MEMORY_BYTES // 8  # 262,144
MIX_ROUNDS = SLOTS // 2  # 131,072


def memory_hard_hash_from_digest(digest: bytes) -> bytes:
    """Steps 2-5 of §2.4 given ``digest`` = SHA-512(public key)."""
    if len(digest) != 64:
        raise ValueError("digest must be 64 bytes")
    try:
        m, k = _buffers_numpy(digest)
    except ImportError:  # no numpy (e.g. OmniOS): same buffers, plain Python
        m, k = _buffers_plain(digest)
    d = [int.from_bytes(digest[i : i + 8], "big") for i in range(0, 64, 8)]
    d0, d1, d2, d3, d4, d5, d6, d7 = d
    for j in range(MIX_ROUNDS):
        i1 = m[2 * j] & 7
        i2 = m[2 * j + 1] & (SLOTS - 1)
        d = [d0, d1, d2, d3, d4, d5, d6, d7]
        d[i1], m[i2] = m[i2], d[i1]
        b = 8 * j
        d0 = d[0] ^ k[b]
        d1 = d[1] ^ k[b + 1]
        d2 = d[2] ^ k[b + 2]
        d3 = d[3] ^ k[b + 3]
        d4 = d[4] ^ k[b + 4]
        d5 = d[5] ^ k[b + 5]
        d6 = d[6] ^ k[b + 6]
        d7 = d[7] ^ k[b + 7]
    return b"".join(x.to_bytes(8, "big") for x in (d0, d1, d2, d3, d4, d5, d6, d7))


def _buffers_numpy(digest: bytes) -> tuple[list[int], list[int]]:
    """The filled buffer and the mixing keystream as big-endian 64-bit ints (numpy)."""
    import numpy as np  # noqa: PLC0415 (lazy: only this path needs numpy)

    ks = keystream_blocks_np(digest[:32], digest[32:40], 0, FILL_BLOCKS + MIX_ROUNDS, 20)
    memory = np.bitwise_xor.accumulate(ks[:FILL_BLOCKS], axis=0)
    m: list[int] = memory.reshape(-1).view(">u8").tolist()
    k: list[int] = ks[FILL_BLOCKS:].reshape(-1).view(">u8").tolist()
    return m, k


def _buffers_plain(digest: bytes) -> tuple[list[int], list[int]]:
    """What :func:`_buffers_numpy` returns, in plain Python.

    Each 64-byte block is one big-endian int, so the running XOR of the fill is one
    int operation per block and the byte order of the buffer is kept.
    """
    ks = keystream(digest[:32], digest[32:40], 64 * (FILL_BLOCKS + MIX_ROUNDS), 20)
    fill = 64 * FILL_BLOCKS
    acc = 0
    blocks: list[bytes] = []
    for offset in range(0, fill, 64):
        acc ^= int.from_bytes(ks[offset : offset + 64], "big")
        blocks.append(acc.to_bytes(64, "big"))
    m = list(struct.unpack(f">{SLOTS}Q", b"".join(blocks)))
    k = list(struct.unpack(f">{MIX_ROUNDS * 8}Q", ks[fill:]))
    return m, k


def memory_hard_hash(public_key: bytes) -> bytes:
    """The full §2.4 hash of a 64-byte public key (pure Python)."""
    return memory_hard_hash_from_digest(hashlib.sha512(public_key).digest())
