"""Crypto hot paths, native accelerator vs pure Python: ``python bench/bench_crypto.py``.

For each available backend (``ztone.crypto.backend``), prints:

* Salsa20/12 throughput on 1432-byte packets (MB/s, 10^6 bytes per second);
* armor + dearmor of a 1432-byte packet through the public ``ztone.crypto.armor`` API,
  suite 1 (Salsa20/12 + Poly1305) and suite 3 (AES-GMAC-SIV), in microseconds
  (median over batches);
* the memory-hard identity hash of PROTOCOL-CORE §2.4, in milliseconds (median);
* C25519 (``ztone.crypto.c25519``), per primitive set (native through libcrypto, and
  the ``cryptography`` package): key agreement with a new peer (the HELLO path), a
  signature, a verification and a public key from a private one, in microseconds.

Numbers only; nothing here asserts on time.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable

from ztone.crypto import armor, backend, c25519

PACKET_SIZE = 1432  # ZT_DEFAULT_PHYSMTU
BATCH = 100

# (runs of the per-packet benches, runs of the memory-hard hash) per backend
RUNS = {"native": (20000, 10), "pure": (300, 3)}


def median_per_call(fn: Callable[[], object], runs: int) -> float:
    """Median seconds per call, timing batches of up to ``BATCH`` calls."""
    fn()  # warm up
    batch = min(BATCH, runs)
    samples = []
    for _ in range(max(1, runs // batch)):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch)
    return statistics.median(samples)


def make_packet(size: int) -> bytearray:
    # ID, destination, source, flags 0, MAC 0, verb FRAME, then a payload pattern
    head = bytes.fromhex("deadbeef01020304112233445566778899aa") + bytes(9) + b"\x06"
    return bytearray(head + bytes(i * 31 & 0xFF for i in range(size - len(head))))


def bench_backend(name: str) -> None:
    crypto = backend.named(name)
    packet_runs, hash_runs = RUNS[name]
    key48 = bytes(range(1, 49))
    salsa_key, nonce = key48[:32], key48[32:40]
    payload = bytes(make_packet(PACKET_SIZE))

    per_call = median_per_call(
        lambda: crypto.salsa20_xor(salsa_key, nonce, payload, 12), packet_runs
    )
    print(
        f"salsa20/12 {name}: {PACKET_SIZE / per_call / 1e6:.1f} MB/s ({PACKET_SIZE}-byte packets)"
    )

    peer = armor.PeerKey(key48, crypto)  # binds the AES engine of this backend
    for suite in (armor.SUITE_POLY1305_SALSA2012, armor.SUITE_AES_GMAC_SIV):
        packet = make_packet(PACKET_SIZE)

        def round_trip(packet: bytearray = packet, suite: int = suite) -> None:
            # dearmor undoes armor in place, so the same buffer serves every run
            armor.armor(packet, peer, suite)
            if not armor.dearmor(packet, peer):
                raise AssertionError("dearmor failed")

        per_call = median_per_call(round_trip, packet_runs)
        print(f"suite{suite} armor+dearmor {name}: {per_call * 1e6:.1f} us/packet")

    public_key = hashlib.sha512(b"bench").digest()
    samples = []
    for _ in range(hash_runs):
        start = time.perf_counter()
        crypto.memory_hard_hash(public_key)
        samples.append(time.perf_counter() - start)
    print(f"memory-hard hash {name}: {statistics.median(samples) * 1e3:.1f} ms")


def bench_c25519(name: str, prims: c25519.Primitives, runs: int = 2000) -> None:
    private = bytes(range(64))
    peer_public = c25519.public_from_private(bytes(range(64, 128)), prims)
    public = c25519.public_from_private(private, prims)
    message = b"m" * 200
    signature = c25519.sign(private, message, prims)
    cases: dict[str, Callable[[], object]] = {
        "agree": lambda: c25519.agree(private, peer_public, 48, prims),
        "sign": lambda: c25519.sign(private, message, prims),
        "verify": lambda: c25519.verify(public, message, signature, prims),
        "public key": lambda: c25519.public_from_private(private, prims),
    }
    figures = ", ".join(
        f"{what} {median_per_call(fn, runs) * 1e6:.1f}" for what, fn in cases.items()
    )
    print(f"c25519 {name}: {figures} us")


def main() -> None:
    names = ["native", "pure"] if backend.native_available() else ["pure"]
    if not backend.native_available():
        print("native: ztone._speedups is not built; pure only")
    for name in names:
        bench_backend(name)
    if c25519.NATIVE is not None:
        bench_c25519("native (libcrypto)", c25519.NATIVE)
    else:
        print("c25519 native: not available (no extension, or libcrypto without the curves)")
    bench_c25519("cryptography", c25519.LIBRARY)


if __name__ == "__main__":
    main()
