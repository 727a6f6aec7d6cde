"""The embedded controller's config answers: ``python3 bench/controller_answers.py [--quick]``.

For networks of 1,000 and 10,000 members, on SQLite and on PostgreSQL (a throwaway
cluster of the test suite's kind, tests/pgcluster.py; skipped with the reason where
it cannot start), prints config requests answered per second and the p50/p99 latency
of one answer, and the process's RSS after each case.

A request goes where the service sends the core's ``ConfigRequested``:
``EmbeddedController.request`` (store reads, ``controller.core.answer_request``,
signing the certificate of membership, saving the member's record when it changed),
with a real controller identity and real requester identities; the members of the
network are records in the store (authorized, each with an address from the pool),
``--requesters`` of them asking in turn. The wire (armor, fragments) is not included:
bench/hotpath.py measures it.

``--failover`` also starts two ztone daemons with one controller identity on one
PostgreSQL database (on loopback, with a private planet whose root nobody runs: they
send nothing anywhere else), kills the active one with SIGKILL ``--rounds`` times and
prints the gap until the standby's API answers.

(Issue 16 asks for bench/controller.py; that name would be the same module as the
tests' ``controller`` package for mypy, hence this one.)

Issue 16's targets, printed beside the figures (a benchmark: nothing is asserted):
>= 500 config answers per second for a 10,000-member network on either store;
takeover within 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ztone.controller.objects import (
    apply_member_post,
    apply_network_post,
    init_member,
    init_network,
)
from ztone.controller.store import ControllerDTree, ControllerStore, SqliteStore
from ztone.crypto import c25519
from ztone.crypto.backend import DEFAULT
from ztone.node.actions import StateKind
from ztone.node.node import Node
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.network_config import request_metadata
from ztone.service.controller import EmbeddedController

ROOT = Path(__file__).resolve().parents[1]
# The test suite's helpers: the throwaway PostgreSQL cluster, the simulated planet,
# the daemon harness.
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "service"))
from pgcluster import PgCluster, why_no_postgres  # noqa: E402
from sim.network import MemoryState, make_planet  # noqa: E402

VECTORS = ROOT / "tests" / "vectors"
NOW = int(time.time() * 1000)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def controller_identity() -> Identity:
    entry = json.loads((VECTORS / "identities.json").read_text())["identities"][1]
    return Identity.from_string(entry["secret"])


def populate(store: ControllerStore, nwid: int, size: int, requesters: list[Identity]) -> None:
    network = apply_network_post(
        init_network(nwid, NOW),
        {
            "name": "bench",
            "private": True,
            "v4AssignMode": {"zt": True},
            "ipAssignmentPools": [{"ipRangeStart": "10.0.0.1", "ipRangeEnd": "10.255.255.254"}],
            "routes": [{"target": "10.0.0.0/8", "via": None}],
        },
        NOW,
    )
    network["revision"] = 1
    members: dict[int, dict[str, Any]] = {}
    addresses = [int(r.address) for r in requesters]
    rng = random.Random(16)
    while len(addresses) < size:
        a = rng.randrange(1, 1 << 40)
        if a >> 32 != 0xFF and a not in addresses:
            addresses.append(a)
    for i, address in enumerate(addresses):
        ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{(i & 255) or 1}"
        member = apply_member_post(
            init_member(nwid, address, NOW), {"authorized": True, "ipAssignments": [ip]}, NOW
        )
        member["revision"] = 1
        members[address] = member
    store.import_tree(ControllerDTree({nwid: network}, {nwid: members}, []))


def run_case(store: ControllerStore, size: int, requesters: list[Identity], seconds: float) -> str:
    ctl_id = controller_identity()
    nwid = (int(ctl_id.address) << 24) | 0xBE4C
    populate(store, nwid, size, requesters)
    state = MemoryState()
    root = Identity.from_string(
        json.loads((VECTORS / "identities.json").read_text())["identities"][0]["secret"]
    )
    planet = make_planet([(root, "198.18.0.10")], c25519.generate(os.urandom))
    state.objects[(StateKind.PLANET, 0)] = planet.serialize()
    node = Node(ctl_id, now=NOW, random_bytes=os.urandom, state=state, crypto=DEFAULT)
    ctl = EmbeddedController(ctl_id, store, lambda: node, lambda: None)
    meta = Dictionary.parse(request_metadata((1, 14, 1), "linux/x86_64").serialize())
    for r in requesters:  # first requests store each requester's identity
        ctl.request(int(time.time() * 1000), nwid, r, meta)
    latencies: list[float] = []
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        r = requesters[i % len(requesters)]
        i += 1
        t = time.perf_counter()
        answer = ctl.request(int(time.time() * 1000), nwid, r, meta)
        latencies.append(time.perf_counter() - t)
        if answer.config is None:
            raise SystemExit(f"no config answered ({answer.error})")
    total = time.perf_counter() - start
    ctl.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    rate = len(latencies) / total
    mark = "ok" if size < 10_000 or rate >= 500 else "BELOW the 500/s target"
    return (
        f"{rate:8.0f} answers/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"RSS {rss_mb():6.1f} MB  ({len(latencies)} answers; {mark})"
    )


@contextlib.contextmanager
def stores(kind: str, tmp: Path, cluster: PgCluster | None) -> Iterator[ControllerStore]:
    if kind == "sqlite":
        path = tmp / f"bench-{time.monotonic_ns()}.db"
        with SqliteStore(path) as s:
            yield s
        return
    assert cluster is not None
    from ztone.controller.pgstore import PostgresStore  # noqa: PLC0415

    conninfo = cluster.new_database()
    try:
        with PostgresStore(conninfo) as s:
            yield s
    finally:
        cluster.drop_database(conninfo)


def failover_gaps(cluster: PgCluster, rounds: int, tmp: Path) -> list[float]:
    from daemon_harness import (  # noqa: PLC0415
        Daemon,
        free_port,
        loopback_conf,
        make_home,
        make_planet,
        vector_identity,
        wait_until,
    )

    def answers(d: Daemon) -> bool:
        import http.client  # noqa: PLC0415

        try:
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=1)
            conn.request("GET", "/status", headers={"X-ZT1-Auth": "bench-token"})
            return conn.getresponse().status == 200
        except OSError:
            return False

    def standing_by(d: Daemon) -> bool:
        return "standing by" in d.log.read_text()

    conninfo = cluster.new_database()
    secret, _ = vector_identity(1)
    planet = make_planet(tmp, vector_identity(0)[1], free_port())
    conf = loopback_conf({"controllerDbPath": conninfo})
    gaps = []
    daemons: list[Daemon] = []
    try:
        for k in range(rounds + 1):
            home = make_home(tmp / f"ctl{k}", planet, secret, conf)
            (home / "authtoken.secret").write_text("bench-token")
        active = Daemon(tmp / "ctl0", free_port())
        daemons.append(active)
        if not wait_until(lambda: answers(active), 30):
            raise SystemExit(f"the first controller did not start: {active.log.read_text()}")
        for k in range(1, rounds + 1):
            standby = Daemon(tmp / f"ctl{k}", free_port())
            daemons.append(standby)
            wait_until(functools.partial(standing_by, standby), 30)
            killed = time.monotonic()
            os.kill(active.proc.pid, signal.SIGKILL)
            active.proc.wait(10)
            if not wait_until(functools.partial(answers, standby), 30, interval=0.02):
                raise SystemExit(f"no takeover: {standby.log.read_text()}")
            gaps.append(time.monotonic() - killed)
            active = standby
    finally:
        for d in daemons:
            d.stop()
        cluster.drop_database(conninfo)
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s per case instead of 5")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--requesters", type=int, default=16)
    parser.add_argument("--failover", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 5.0
    print(f"generating {args.requesters} requester identities...", flush=True)
    requesters = [
        Identity.generate(os.urandom, DEFAULT.memory_hard_hash).public_only()
        for _ in range(args.requesters)
    ]
    reason = why_no_postgres()
    cluster = PgCluster.start() if reason is None else None
    try:
        with tempfile.TemporaryDirectory(prefix="ztone-bench-ctl-") as tmpdir:
            tmp = Path(tmpdir)
            for kind in ("sqlite", "postgres"):
                for size in (int(s) for s in args.sizes.split(",")):
                    label = f"{kind:8s} {size:6d} members"
                    if kind == "postgres" and cluster is None:
                        print(f"{label}: skipped ({reason})")
                        continue
                    with stores(kind, tmp, cluster) as store:
                        print(f"{label}: {run_case(store, size, requesters, seconds)}", flush=True)
            if args.failover:
                if cluster is None:
                    print(f"failover: skipped ({reason})")
                else:
                    gaps = failover_gaps(cluster, args.rounds, tmp)
                    shown = ", ".join(f"{g:.2f}" for g in gaps)
                    print(f"failover after kill -9: API answers again after {shown} s "
                          f"(max {max(gaps):.2f} s; target 10 s)")  # fmt: skip
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
