"""Identity generation and validation: ``python bench/bench_identity.py [--pure]``.

Prints the median wall time of 10 identity generations (each needs on average ~15
memory-hard hashes: the proof of work accepts 17 of 256 digests) and of validating
an identity (one hash plus checks), for the active crypto backend. Numbers only.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from ztone.node import backend
from ztone.node.identity import Identity

GENERATIONS = 10
VALIDATIONS = 20


def main() -> None:
    if "--pure" in sys.argv[1:]:
        backend.use("pure")
    name = backend.active()
    times = []
    identity = None
    for _ in range(GENERATIONS):
        start = time.perf_counter()
        identity = Identity.generate(os.urandom)
        times.append(time.perf_counter() - start)
    assert identity is not None
    print(f"identity generation {name}: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, n={GENERATIONS})")  # fmt: skip
    runs = VALIDATIONS if name == "native" else 3
    vtimes = []
    for _ in range(runs):
        start = time.perf_counter()
        ok = identity.locally_validate()
        vtimes.append(time.perf_counter() - start)
        assert ok
    print(f"identity validation {name}: median {statistics.median(vtimes) * 1e3:.1f} ms "
          f"(n={runs})")  # fmt: skip


if __name__ == "__main__":
    main()
