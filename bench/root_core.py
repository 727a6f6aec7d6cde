"""A root's core with many peers, in one process: ``python3 bench/root_core.py [--peers ...]``.

bench/root.py measures the real daemon but needs one proof-of-work identity per
simulated peer (~0.1-0.5 s of a core each). This bench measures the part of the root
that grows with its peers, the protocol core (``ztone.node``), at 10,000 and 50,000
peers in seconds: a real :class:`~ztone.node.node.Node` that is the only root of a
private planet, on a virtual clock, fed real HELLO / OK(HELLO) / WHOIS / relayed FRAME
datagrams built and armored as bench/root_worker.py builds them.

The one difference from the daemon: the core's identity hash (the memory-hard proof
of work of PROTOCOL-CORE §2.4) is replaced by SHA-512 with its first byte zeroed, and
the peers' identities are made to satisfy that, so they cost a key pair each. The
root still agrees a key with every peer and checks every MAC.

For each N (cumulative) it prints:

* the core's memory per peer: the bytes of every object reachable from the Node (a
  walk with ``sys.getsizeof``), before and after, over N;
* the core's CPU per virtual second over a steady window at upstream's intervals
  (every peer: a full HELLO every 224 s, a WHOIS and a relayed packet once per 224 s,
  §8.4), split into packet handling and the periodic work (``on_timer``: the 5 s ping
  pass, the 30 s housekeeping), and the slowest single ``on_timer`` call;
* the garbage collector's pauses over that window: how many collections, how many
  full, the longest, with the daemon's ``CollectorPolicy`` (``service/collector.py``)
  or, with ``--no-gc-policy``, as the interpreter schedules them.

No sockets, no namespaces: nothing is sent anywhere. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import heapq
import ipaddress
import random
import sys
import time
from pathlib import Path
from types import FunctionType, ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from root_worker import answer_to_root, hello_to_root  # noqa: E402

from sim.network import START, MemoryState, make_planet, vector_identities  # noqa: E402
from ztone.crypto import c25519  # noqa: E402
from ztone.crypto.armor import SUITE_AES_GMAC_SIV, PeerKey, armor  # noqa: E402
from ztone.node.actions import SendPacket, StateKind  # noqa: E402
from ztone.node.bounds import MAX_ROOT_PEERS  # noqa: E402
from ztone.node.node import Node  # noqa: E402
from ztone.node.wire.address import Address  # noqa: E402
from ztone.node.wire.identity import Identity  # noqa: E402
from ztone.node.wire.inetaddress import InetAddress  # noqa: E402
from ztone.node.wire.packet import Verb, build_packet  # noqa: E402
from ztone.service.collector import CollectorPolicy  # noqa: E402

PERIOD = 224_000  # ms: a leaf's full HELLO to a root with a live path (§8.4)
GATE = 2_001  # ms: one new identity per source /24 per 2 s (§6.2.2)
SOURCE_NETS = 512  # the /24s of 198.18.0.0/15


def cheap_hash(public: bytes) -> bytes:
    """SHA-512 with byte 0 zeroed: every key "passes" the proof of work."""
    return b"\x00" + hashlib.sha512(public).digest()[1:]


def cheap_identity(rng: random.Random) -> Identity:
    while True:
        public, private = c25519.generate(rng.randbytes)
        address = Address(int.from_bytes(cheap_hash(public)[59:64], "big"))
        if not address.is_reserved:
            return Identity(address, public, private)


def endpoint(i: int) -> InetAddress:
    net = ipaddress.IPv4Address("198.18.0.0") + (i % SOURCE_NETS) * 256 + 10
    return InetAddress(net, 10_000 + i // SOURCE_NETS)


def deep_size(root: object) -> int:
    """Bytes of every object reachable from ``root`` (classes, modules, functions and
    the immortal small objects excluded)."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    skip = (type, ModuleType, FunctionType)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip) or obj is None:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


class Lab:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        ids = vector_identities()
        self.root_id = ids[0]
        self.root_addr = int(self.root_id.address)
        self.root_ep = InetAddress(ipaddress.ip_address("198.18.0.1"), 9993)
        planet = make_planet([(self.root_id, "198.18.0.1")], c25519.generate(self.rng.randbytes))
        state = MemoryState()
        state.objects[(StateKind.PLANET, 0)] = planet.serialize()
        self.now = START
        self.node = Node(self.root_id, now=self.now, random_bytes=self.rng.randbytes,
                         state=state, hash_function=cheap_hash)  # fmt: skip
        self.node.drain_actions()
        self.ids: list[Identity] = []
        self.keys: list[PeerKey] = []
        self.by_ep: dict[InetAddress, int] = {}
        self.packet_cpu = 0.0
        self.timer_cpu = 0.0
        self.timer_max = 0.0
        self.collector: CollectorPolicy | None = None
        self.answered = 0
        self.sent = 0

    def add_identities(self, n: int) -> None:
        while len(self.ids) < n:
            me = cheap_identity(self.rng)
            self.by_ep[endpoint(len(self.ids))] = len(self.ids)
            self.ids.append(me)
            self.keys.append(PeerKey(me.agree(self.root_id)))

    def deliver(self, i: int, data: bytes) -> None:
        t = time.process_time()
        self.node.on_wire_packet(self.now, 0, endpoint(i), data)
        self.packet_cpu += time.process_time() - t
        self.sent += 1
        self.pump()

    def pump(self) -> None:
        """The root's datagrams: its HELLOs and ECHOs to a peer are answered at once."""
        for _ in range(16):
            actions = self.node.drain_actions()
            if not actions:
                return
            for action in actions:
                if not isinstance(action, SendPacket):
                    continue
                i = self.by_ep.get(action.remote)
                if i is None:
                    continue
                self.answered += 1
                me = int(self.ids[i].address)
                reply = answer_to_root(action.data, self.keys[i], me, self.root_addr,
                                       self.root_ep, self.rng.randbytes(8))  # fmt: skip
                if reply is not None:
                    t = time.process_time()
                    self.node.on_wire_packet(self.now, 0, endpoint(i), reply)
                    self.packet_cpu += time.process_time() - t

    def timers(self) -> None:
        if self.now >= self.node.next_deadline():
            t = time.process_time()
            self.node.on_timer(self.now)
            dt = time.process_time() - t
            self.timer_cpu += dt
            self.timer_max = max(self.timer_max, dt)
            if self.collector is not None:
                self.collector.tick(self.now / 1000)
            self.pump()

    def hello(self, i: int) -> bytes:
        return hello_to_root(self.ids[i], self.keys[i], self.root_addr, self.root_ep,
                             self.now, self.rng.randbytes(8))  # fmt: skip

    def join(self, first: int, last: int) -> None:
        """HELLO from peers first..last-1, one per /24 per 2 s of virtual time."""
        for start in range(first, last, SOURCE_NETS):
            for i in range(start, min(last, start + SOURCE_NETS)):
                self.deliver(i, self.hello(i))
            self.now += GATE
            self.timers()

    def sealed(self, src: int, dst: int, key: PeerKey, verb: int, payload: bytes) -> bytes:
        packet = build_packet(self.rng.randbytes(8), dst, src, verb, payload)
        armor(packet, key, SUITE_AES_GMAC_SIV)
        return bytes(packet)

    def steady(self, n: int, window_ms: int) -> None:
        """Every peer's HELLO, WHOIS and relayed packet once per PERIOD, phases spread."""
        due = [(self.now + self.rng.randrange(PERIOD), i, k) for i in range(n) for k in range(3)]
        heapq.heapify(due)
        end = self.now + window_ms
        frame = self.rng.randbytes(8) + b"\x08\x00" + bytes(40)
        while due and due[0][0] < end:
            when, i, kind = heapq.heappop(due)
            heapq.heappush(due, (when + PERIOD, i, kind))
            while self.node.next_deadline() <= when:
                self.now = max(self.now, self.node.next_deadline())
                self.timers()
            self.now = max(self.now, when)
            me = int(self.ids[i].address)
            if kind == 0:
                self.deliver(i, self.hello(i))
            elif kind == 1:
                target = int(self.ids[(i + 1) % n].address)
                self.deliver(i, self.sealed(me, self.root_addr, self.keys[i], Verb.WHOIS,
                                            target.to_bytes(5, "big")))  # fmt: skip
            else:  # to another peer through the root: a MAC the root cannot check
                other = int(self.ids[(i + 7) % n].address)
                self.deliver(i, self.sealed(me, other, self.keys[i], Verb.FRAME, frame))
        self.now = end
        self.timers()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default="1000,10000,50000")
    parser.add_argument("--window", type=int, default=448, help="virtual seconds (2 periods)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-gc-policy", action="store_true",
                        help="the interpreter's own collections (no CollectorPolicy)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        levels = [int(x) for x in args.peers.split(",") if x.strip()]
    except ValueError:
        parser.error("--peers takes numbers")
    if not levels or levels != sorted(levels) or levels[0] < 2 or levels[-1] > 200_000:
        parser.error("--peers: ascending counts in [2, 200000]")
    if not 10 <= args.window <= 7200:
        parser.error("--window: 10..7200 virtual seconds")
    lab = Lab(args.seed)
    # As the daemon does: start-up's objects frozen, then (unless --no-gc-policy) its
    # CollectorPolicy on the virtual clock; every collection's pause is recorded.
    gc.collect()
    gc.freeze()
    if not args.no_gc_policy:
        lab.collector = CollectorPolicy(lab.now / 1000)
    pauses: list[tuple[int, float]] = []
    started: list[float] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(watch)
    base = deep_size(lab.node)
    print(f"core with no peer: {base / 1024:.0f} KiB reachable from the Node; "
          f"MAX_ROOT_PEERS = {MAX_ROOT_PEERS:,}")  # fmt: skip
    have = 0
    for n in levels:
        t = time.perf_counter()
        lab.add_identities(n)
        made = time.perf_counter() - t
        lab.packet_cpu = 0.0
        lab.join(have, n)
        join_cpu = lab.packet_cpu / max(1, n - have)
        have = n
        gc.collect()
        size = deep_size(lab.node)
        peers = len(lab.node.peers)
        lab.packet_cpu = lab.timer_cpu = lab.timer_max = 0.0
        sent0 = lab.sent
        pauses.clear()
        lab.steady(n, args.window * 1000)
        full = [p for g, p in pauses if g == 2]
        window = args.window
        cpu = lab.packet_cpu + lab.timer_cpu
        gc.collect()
        size_after = deep_size(lab.node)
        peers_after = len(lab.node.peers)
        print(f"\n== N = {n:,} (the root holds {peers:,} peers; {made:.0f} s to make keys)")
        print(f"  join: {1e3 * join_cpu:.2f} ms "
              "of core CPU per new peer (key agreement, MAC; no proof of work here)")  # fmt: skip
        print(f"  core memory: {(size - base) / max(1, peers):.0f} bytes per peer after the "
              f"join, {(size_after - base) / max(1, peers_after):.0f} after the steady window "
              f"({size_after / 1048576:.1f} MiB reachable from the Node)")  # fmt: skip
        print(f"  steady, {window} virtual s, {lab.sent - sent0:,} datagrams in: core CPU "
              f"{100 * cpu / window:.2f}% of one core (packets "
              f"{100 * lab.packet_cpu / window:.2f}%, "
              f"timers {100 * lab.timer_cpu / window:.2f}%; slowest on_timer "
              f"{1e3 * lab.timer_max:.1f} ms)")  # fmt: skip
        policy = "the interpreter's own" if args.no_gc_policy else "the daemon's CollectorPolicy"
        print(f"  garbage collector ({policy}): "
              f"{len(pauses)} collections, {len(full)} full, longest "
              f"{1e3 * max((p for _, p in pauses), default=0):.1f} ms, longest full "
              f"{1e3 * max(full, default=0):.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
