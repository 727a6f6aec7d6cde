"""Per-hop cost of one small packet, cold and warm: ``python3 bench/latency.py``.

Two members of one network on the simulator (``tests/sim``) settle their direct path;
then, for each round, a small frame (a 64-byte IPv4 packet, as a ping) goes from a's
port to b's port and b's answer comes back, through real UDP sockets on 127.0.0.1 and,
for b, a real "port" (a UNIX datagram socket pair standing in for its TAP):

* a send:    ``a.on_tap_frame`` + drain (the frame into datagrams), then ``sendto``;
* b receive: ``recv`` on b's socket, ``b.on_wire_packet`` + drain, the frame written to
  b's port (socket to port);
* b send:    the answer read from b's port, ``b.on_tap_frame`` + drain, ``sendto``
  (port to socket);
* a receive: ``recv``, ``a.on_wire_packet`` + drain (the answer delivered);
* round: the whole round trip, wall clock.

``cold``: each round after 200 ms idle (caches, branch predictors and the CPU's clock
gone cold, as for pings 0.2 s apart); ``warm``: rounds back to back. Each is run with
the per-peer fast path (``ztone.node.fastpath``) on and off, alternating blocks of
rounds so that the machine's speed changes hit both alike. Prints microseconds:
median, p90, p99 and max per stage. ``--pure`` uses the pure-Python crypto.
Sends only on 127.0.0.1 (and the socket pair); asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import socket
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
from ztone.node.node import Node  # noqa: E402
from ztone.node.wire.mac import MAC  # noqa: E402

ETH_IPV4 = 0x0800
STAGES = ("a send", "b receive", "b send", "a receive", "round")


def _ping_payload(seq: int) -> bytes:
    header = bytearray(20)
    header[0], header[2:4], header[8], header[9] = 0x45, (84).to_bytes(2, "big"), 64, 1
    header[12:16] = bytes((198, 19, 0, 1))
    header[16:20] = bytes((198, 19, 0, 2))
    return bytes(header) + seq.to_bytes(4, "big") + bytes(60)


class Lab:
    """a and b on the simulator with real sockets between them."""

    def __init__(self, crypto: backend.Backend, fast_path: bool) -> None:
        net, controller, nwid = build(crypto=crypto, fast_path=fast_path)
        join_and_authorize(net, controller, nwid)
        net.run(5_000)
        self.net, self.nwid = net, nwid
        self.a: Node = net.nodes["a"].node
        self.b: Node = net.nodes["b"].node
        self.a_mac = int(MAC.from_address(int(self.a.address), nwid))
        self.b_mac = int(MAC.from_address(int(self.b.address), nwid))
        self.a_endpoint = net.nodes["a"].endpoint
        self.b_endpoint = net.nodes["b"].endpoint
        # the simulator finds the direct path; frames both ways until it is used
        for _ in range(3):
            self._sim_exchange(net)
        self.sa = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (self.sa, self.sb):
            s.bind(("127.0.0.1", 0))
            s.settimeout(2.0)
        self.port_dev, self.port_host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.port_host.settimeout(2.0)
        self.port_dev.settimeout(2.0)

    def _sim_exchange(self, net: SimNetwork) -> None:
        payload = _ping_payload(0)
        self.a.on_tap_frame(net.now, self.nwid, self.a_mac, self.b_mac, ETH_IPV4, payload)
        net._drain(net.nodes["a"])
        net.run(2_000)
        self.b.on_tap_frame(net.now, self.nwid, self.b_mac, self.a_mac, ETH_IPV4, payload)
        net._drain(net.nodes["b"])
        net.run(2_000)

    def close(self) -> None:
        for s in (self.sa, self.sb, self.port_dev, self.port_host):
            s.close()

    def round(self, seq: int) -> list[float]:
        """One ping and its answer; the stages' durations in seconds."""
        now = self.net.now
        a, b, nwid = self.a, self.b, self.nwid
        b_addr, a_addr = self.sb.getsockname(), self.sa.getsockname()
        clock = time.perf_counter
        t0 = clock()
        a.on_tap_frame(now, nwid, self.a_mac, self.b_mac, ETH_IPV4, _ping_payload(seq))
        out = [x.data for x in a.drain_actions() if isinstance(x, SendPacket)]
        for d in out:
            self.sa.sendto(d, b_addr)
        t1 = clock()
        for _ in out:
            b.on_wire_packet(now, 1, self.a_endpoint, self.sb.recv(16384))
        frames = [x for x in b.drain_actions() if isinstance(x, DeliverFrame)]
        for f in frames:
            self.port_dev.send(f.destination.to_bytes(6, "big") + f.source.to_bytes(6, "big")
                               + f.ethertype.to_bytes(2, "big") + f.payload)  # fmt: skip
        t2 = clock()
        got = self.port_host.recv(16384)  # the host's stack answers at once
        self.port_host.send(got[6:12] + got[0:6] + got[12:])
        t3 = clock()
        answer = self.port_dev.recv(16384)
        b.on_tap_frame(now, nwid, int.from_bytes(answer[6:12], "big"),
                       int.from_bytes(answer[0:6], "big"),
                       int.from_bytes(answer[12:14], "big"), answer[14:])  # fmt: skip
        back = [x.data for x in b.drain_actions() if isinstance(x, SendPacket)]
        for d in back:
            self.sb.sendto(d, a_addr)
        t4 = clock()
        for _ in back:
            a.on_wire_packet(now, 1, self.b_endpoint, self.sa.recv(16384))
        delivered = [x for x in a.drain_actions() if isinstance(x, DeliverFrame)]
        t5 = clock()
        if len(frames) != 1 or len(delivered) != 1:
            raise RuntimeError("a ping did not arrive: the set-up is wrong")
        return [t1 - t0, t2 - t1, t4 - t3, t5 - t4, t5 - t0 - (t3 - t2)]


def _summary(samples: list[float]) -> str:
    s = sorted(samples)
    n = len(s)

    def pct(q: float) -> float:
        return s[min(n - 1, int(q * n))] * 1e6

    return (f"{statistics.median(s) * 1e6:7.1f} {pct(0.9):7.1f} {pct(0.99):7.1f} "
            f"{s[-1] * 1e6:8.1f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=2_000, help="warm rounds per mode")
    parser.add_argument("--cold", type=int, default=40, help="cold rounds per mode")
    parser.add_argument("--idle", type=float, default=0.2, help="seconds idle before cold")
    parser.add_argument("--pure", action="store_true", help="pure-Python crypto")
    args = parser.parse_args()
    crypto = backend.PURE if args.pure else backend.DEFAULT
    labs = {"fast path": Lab(crypto, True), "general": Lab(crypto, False)}
    fast = labs["fast path"].a.fastpath
    if fast is None:
        print("the fast path is off (needs the native accelerator, or --pure)")
    results: dict[tuple[str, str], list[list[float]]] = {}
    seq = 0
    try:
        for lab in labs.values():  # warm up (imports, caches)
            for _ in range(200):
                seq += 1
                lab.round(seq)
        blocks = 10
        for kind, rounds in (("warm", args.warm), ("cold", args.cold)):
            per_block = max(1, rounds // blocks)
            for _ in range(blocks):
                for name, lab in labs.items():
                    for _ in range(per_block):
                        if kind == "cold":
                            time.sleep(args.idle)
                        seq += 1
                        stages = lab.round(seq)
                        results.setdefault((kind, name), []).append(stages)
    finally:
        for lab in labs.values():
            lab.close()
    taken = (fast.tx_taken, fast.rx_taken) if fast is not None else (0, 0)
    print(f"crypto backend: {crypto.name}; a's fast path carried {taken[0]} frames out, "
          f"{taken[1]} datagrams in")  # fmt: skip
    print("microseconds per stage: median / p90 / p99 / max")
    for kind in ("warm", "cold"):
        for name in labs:
            rows = results[(kind, name)]
            print(f"--- {kind}, {name} ({len(rows)} rounds)")
            for i, stage in enumerate(STAGES):
                print(f"  {stage:10s} {_summary([r[i] for r in rows])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
