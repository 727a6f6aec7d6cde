"""The core's per-frame cost, without sockets or a TAP: ``python3 bench/hotpath.py``.

Two members of one network on the simulator (``tests/sim``) exchange configs; then
``--frames`` unicast IPv4 frames of ``--size`` bytes go from a's port to b's port:

* send: ``Node.on_tap_frame`` + ``drain_actions`` on a (rules, FRAME, armor,
  fragmenting into datagrams);
* receive: ``Node.on_wire_packet`` for each of those datagrams + ``drain_actions``
  on b (reassembly, dearmor, gate, rules, the frame handed to the port).

It prints microseconds per frame for each side (median of batches) and, with
``--profile``, the top functions by cProfile. ``--pure`` uses the pure-Python crypto.
What this leaves out (syscalls, the event loop, the TAP's GRO) is what
``bench/throughput.py`` adds back.
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the simulator, imported as the tests do

from sim.network import SimNetwork  # noqa: E402
from sim.test_vl2_sim import build, join_and_authorize  # noqa: E402
from ztone.crypto import backend  # noqa: E402
from ztone.node.actions import DeliverFrame, SendPacket  # noqa: E402
from ztone.node.wire.mac import MAC  # noqa: E402

ETH_IPV4 = 0x0800
BATCH = 200


def _ipv4_payload(src: str, dst: str, size: int) -> bytes:
    header = bytearray(20)
    header[0] = 0x45
    header[2:4] = size.to_bytes(2, "big")
    header[8], header[9] = 64, 6
    header[12:16] = ipaddress.IPv4Address(src).packed
    header[16:20] = ipaddress.IPv4Address(dst).packed
    return bytes(header) + bytes(i & 0xFF for i in range(size - 20))


def _setup(crypto: backend.Backend) -> tuple[SimNetwork, int]:
    net, controller, nwid = build(crypto=crypto)
    join_and_authorize(net, controller, nwid)
    net.run(5_000)  # direct paths settle
    return net, nwid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=2800, help="IPv4 packet bytes per frame")
    parser.add_argument("--pure", action="store_true", help="pure-Python crypto")
    parser.add_argument("--profile", action="store_true", help="cProfile both sides")
    args = parser.parse_args()
    crypto = backend.PURE if args.pure else backend.DEFAULT
    net, nwid = _setup(crypto)
    a, b = net.nodes["a"].node, net.nodes["b"].node
    a_mac = int(MAC.from_address(int(a.address), nwid))
    b_mac = int(MAC.from_address(int(b.address), nwid))
    payload = _ipv4_payload("198.19.0.1", "198.19.0.2", args.size)
    now = net.now
    a_endpoint = net.nodes["a"].endpoint

    # a learns b (WHOIS), pushes its credentials and finds the direct path
    for _ in range(3):
        a.on_tap_frame(now, nwid, a_mac, b_mac, ETH_IPV4, payload)
        net._drain(net.nodes["a"])
        net.run(5_000)
        b.on_tap_frame(net.now, nwid, b_mac, a_mac, ETH_IPV4, payload)
        net._drain(net.nodes["b"])
        net.run(5_000)
    now = net.now
    # check that a frame arrives as it was sent, in datagrams for b
    a.on_tap_frame(now, nwid, a_mac, b_mac, ETH_IPV4, payload)
    actions = a.drain_actions()
    datagrams = [x.data for x in actions if isinstance(x, SendPacket)]
    if any(not isinstance(x, SendPacket) or x.remote != net.nodes["b"].endpoint
           for x in actions):  # fmt: skip
        print("a frame to b does not go straight to b: the set-up is wrong")
        return 1
    for d in datagrams:
        b.on_wire_packet(now, 1, a_endpoint, d)
    got = [x for x in b.drain_actions() if isinstance(x, DeliverFrame)]
    if len(got) != 1 or got[0].payload != payload:
        print("frames do not arrive: the set-up is wrong")
        return 1
    print(f"crypto backend: {crypto.name}; "
          f"{len(datagrams)} datagram(s) per {args.size}-byte frame")  # fmt: skip

    sent: list[bytes] = []
    send_times: list[float] = []
    for _ in range(args.frames // BATCH):
        start = time.perf_counter()
        for _ in range(BATCH):
            a.on_tap_frame(now, nwid, a_mac, b_mac, ETH_IPV4, payload)
            for action in a.drain_actions():
                if isinstance(action, SendPacket):
                    sent.append(action.data)
        send_times.append((time.perf_counter() - start) / BATCH)

    per_frame = len(sent) // (args.frames // BATCH * BATCH)
    receive_times: list[float] = []
    delivered = 0
    for i in range(0, len(sent), BATCH * per_frame):
        chunk = sent[i : i + BATCH * per_frame]
        start = time.perf_counter()
        for d in chunk:
            b.on_wire_packet(now, 1, a_endpoint, d)
            delivered += len(b.drain_actions())
        receive_times.append((time.perf_counter() - start) / (len(chunk) / per_frame))
    if delivered != args.frames // BATCH * BATCH:
        print(f"only {delivered} frames delivered")
        return 1
    send_us = statistics.median(send_times) * 1e6
    recv_us = statistics.median(receive_times) * 1e6
    mbit = args.size * 8 / (send_us + recv_us)
    print(f"send (tap frame -> datagrams): {send_us:.1f} us per frame")
    print(f"receive (datagrams -> frame):  {recv_us:.1f} us per frame")
    print(f"core alone, both sides on one core: {mbit:.0f} Mbit/s of {args.size}-byte frames")

    if args.profile:

        def send_5000() -> None:
            for _ in range(5_000):
                a.on_tap_frame(now, nwid, a_mac, b_mac, ETH_IPV4, payload)
                a.drain_actions()

        def receive_5000() -> None:
            for d in sent[: 5_000 * per_frame]:
                b.on_wire_packet(now, 1, a_endpoint, d)
                b.drain_actions()

        for name, fn in (("send", send_5000), ("receive", receive_5000)):
            prof = cProfile.Profile()
            prof.runcall(fn)
            print(f"--- {name} profile (5000 frames)")
            pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
