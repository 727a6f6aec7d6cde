"""Identity generation and validation: ``python bench/bench_identity.py [--pure|--no-numpy]``.

Prints the median wall time of 10 identity generations (each needs on average ~15
memory-hard hashes: the proof of work accepts 17 of 256 digests) and of validating
an identity (one hash plus checks), for the active crypto backend. Numbers only.
``--no-numpy`` is the pure path with numpy import blocked (an OmniOS install without
the ``speedups`` extra and without the native accelerator): validation only, 3 runs
(one generation would take minutes).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from ztone.crypto import backend
from ztone.node.wire.identity import Identity

GENERATIONS = 10
VALIDATIONS = 20


def no_numpy() -> None:
    sys.modules["numpy"] = None  # type: ignore[assignment]  # import numpy -> ImportError
    vtimes = []
    vectors = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "identities.json"
    ident = Identity.from_string(json.loads(vectors.read_text())["identities"][0]["public"])
    for _ in range(3):
        start = time.perf_counter()
        ok = ident.locally_validate(backend.PURE.memory_hard_hash)
        vtimes.append(time.perf_counter() - start)
        assert ok
    print(f"identity validation pure, no numpy: median {statistics.median(vtimes):.2f} s (n=3)")


def main() -> None:
    if "--no-numpy" in sys.argv[1:]:
        no_numpy()
        return
    crypto = backend.PURE if "--pure" in sys.argv[1:] else backend.DEFAULT
    name = crypto.name
    times = []
    identity = None
    for _ in range(GENERATIONS):
        start = time.perf_counter()
        identity = Identity.generate(os.urandom, crypto.memory_hard_hash)
        times.append(time.perf_counter() - start)
    assert identity is not None
    print(f"identity generation {name}: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, n={GENERATIONS})")  # fmt: skip
    runs = VALIDATIONS if name == "native" else 3
    vtimes = []
    for _ in range(runs):
        start = time.perf_counter()
        ok = identity.locally_validate(crypto.memory_hard_hash)
        vtimes.append(time.perf_counter() - start)
        assert ok
    print(f"identity validation {name}: median {statistics.median(vtimes) * 1e3:.1f} ms "
          f"(n={runs})")  # fmt: skip


if __name__ == "__main__":
    main()
