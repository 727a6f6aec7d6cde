"""Memory of multicast subscriptions on a root: ``python3 bench/multicast_memory.py``.

1. Bytes per stored group: ``--groups`` (network, group) pairs, each liked by one
   member, added straight to a ``Multicaster`` with its caps lifted; traced with
   tracemalloc (Python allocations only). Once with every pair in its own network
   (the flood), once spread over 100 networks (a root's real load).
2. A LIKE flood on the simulator (``tests/sim``): one peer that has only said HELLO
   sends ``--packets`` MULTICAST_LIKE packets of 76 random (network, group) pairs each,
   correctly encrypted, to a root. Prints the root's time per packet, the process's
   RSS before and after, and how many subscriptions the root stored.
3. The same flood by a peer that proved membership of one network (a COM of it
   shown to the root), with random groups of that network: stored up to the
   per-peer cap.

Numbers only; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the simulator, imported as the tests do

from sim.test_vl2_sim import build  # noqa: E402
from ztone.node.vl2.multicaster import Multicaster  # noqa: E402
from ztone.node.wire.com import CertificateOfMembership  # noqa: E402
from ztone.node.wire.packet import Verb  # noqa: E402
from ztone.node.wire.vl2_verbs import MulticastGroup, serialize_gather  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def stored(mc: Multicaster) -> int:
    return mc.total


def bytes_per_group(n: int, networks: int) -> float:
    rng = random.Random(1)
    nwids = [rng.getrandbits(64) for _ in range(networks)]
    pairs = [(nwids[i % networks], MulticastGroup(rng.getrandbits(48), rng.getrandbits(32)))
             for i in range(n)]  # fmt: skip
    mc = Multicaster(0x1111111111, max_per_peer=n, max_per_network=n, max_total=n)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for nwid, group in pairs:
        mc.add(1_700_000_000_000, nwid, group, 0x2222222222, lambda a, p: None)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert stored(mc) == n
    return (after - before) / n


def flood(packets: int, proven: bool) -> None:
    net, _controller, nwid = build()
    root, a = net.nodes["root"], net.nodes["a"]
    net.run(60_000, lambda: a.node.online and net.nodes["ctrl"].node.online)
    if proven:
        # a shows the root a certificate of the network, signed by its controller,
        # in a MULTICAST_GATHER as members do
        ctrl = net.nodes["ctrl"].identity
        com = CertificateOfMembership.make(net.now, 7_200_000, nwid, a.identity).sign(ctrl)
        a.node.send(net.now, int(root.identity.address), Verb.MULTICAST_GATHER,
                     serialize_gather(nwid, MulticastGroup(0xFFFFFFFFFFFF, 0), 8,
                                      com.serialize()))  # fmt: skip
        net._drain(a)
        net.run(1_000)
        assert root.node.root_memberships.proven(net.now, nwid, int(a.identity.address))
    rng = random.Random(7)
    root_address = int(root.identity.address)
    payloads = []
    for _ in range(packets):
        out = bytearray()
        for _ in range(76):
            out += (nwid if proven else rng.getrandbits(64)).to_bytes(8, "big")
            out += rng.getrandbits(80).to_bytes(10, "big")
        payloads.append(bytes(out))
    gc.collect()
    rss0 = rss_mb()
    spent = 0.0
    for payload in payloads:
        a.node.send(net.now, root_address, Verb.MULTICAST_LIKE, payload, compress=True)
        for action in a.node.drain_actions():
            data = getattr(action, "data", None)
            if isinstance(data, bytes | bytearray):
                t = time.perf_counter()
                root.node.on_wire_packet(net.now, 1, a.endpoint, bytes(data))
                spent += time.perf_counter() - t
        root.node.drain_actions()
        net.now += 1
    gc.collect()
    rss1 = rss_mb()
    label = "proven member, one network" if proven else "HELLO-only peer, random networks"
    print(f"flood ({label}): {packets} packets x 76 pairs, "
          f"{spent / packets * 1e6:.0f} us/packet at the root, "
          f"stored {stored(root.node.multicaster)}, RSS {rss0:.1f} -> {rss1:.1f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--packets", type=int, default=2_000)
    args = parser.parse_args()
    for networks in (args.groups, 100):
        print(f"bytes per stored group ({args.groups} groups of one member each, in "
              f"{networks} networks): {bytes_per_group(args.groups, networks):.0f}")  # fmt: skip
    flood(args.packets, proven=False)
    flood(args.packets, proven=True)


if __name__ == "__main__":
    main()
