"""The simulated peers' identities for bench/root.py, made once and cached.

``python3 bench/root_identities.py N [--cache-dir DIR]`` makes sure the cache holds N
identities. Each needs the proof of work (~15 memory-hard hashes on average, about
0.1-0.5 s of one core natively), so they are made in parallel, one process per core,
and appended to ``<cache>/root-identities.txt`` (one secret identity string per line)
as each is found: an interrupted run keeps what it made and the next one goes on from
there. The cache is ``$XDG_CACHE_HOME/ztone-bench`` (default ``~/.cache/ztone-bench``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

from ztone.node.wire.identity import Identity

CACHE_NAME = "root-identities.txt"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ztone-bench"


def _generate_one(_: int) -> str:
    return Identity.generate(os.urandom).to_string(True)


def cached(cache_dir: Path) -> list[str]:
    """The cached secret identity strings that parse (a torn last line is dropped)."""
    path = cache_dir / CACHE_NAME
    if not path.exists():
        return []
    out: list[str] = []
    seen: set[str] = set()
    for raw in path.read_text().split("\n"):
        line = raw.strip()
        if not line or line[:10] in seen:
            continue
        try:
            identity = Identity.from_string(line)
        except ValueError:
            continue
        if identity.has_private:
            seen.add(line[:10])
            out.append(line)
    return out


def ensure(cache_dir: Path, n: int, processes: int | None = None) -> list[str]:
    """At least ``n`` identities in the cache (made if missing); the first ``n``."""
    have = cached(cache_dir)
    missing = n - len(have)
    if missing <= 0:
        return have[:n]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / CACHE_NAME
    workers = processes or os.cpu_count() or 1
    print(f"making {missing} identities with {workers} processes (proof of work, cached in "
          f"{path}) ...", flush=True)  # fmt: skip
    start = time.monotonic()
    with open(path, "a") as out, multiprocessing.Pool(workers) as pool:
        for done, line in enumerate(pool.imap_unordered(_generate_one, range(missing), 4), 1):
            out.write(line + "\n")
            out.flush()
            have.append(line)
            if done % 500 == 0 or done == missing:
                rate = done / (time.monotonic() - start)
                print(f"  {done}/{missing} ({rate:.1f}/s, {workers} processes)", flush=True)
    return have[:n]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--processes", type=int, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 1_000_000:
        parser.error("count must be in [1, 1000000]")
    ensure(args.cache_dir, args.count, args.processes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
