"""Native send cost per GB, TCP super-packets (TAP offload) against MTU-sized frames:
``python3 bench/dataplane_tx.py [--rounds N]``.

Two members of one network on the simulator (``tests/sim``); a's core makes its send
grant for b (:mod:`ztone.node.fast_grants`), mirrored into a real native table. Each
timed round puts the same 64 KiB of TCP data on one end of a socketpair standing in
for the TAP, either as one super-packet (virtio_net_hdr TCPV4, gso_size 2748: what
the host hands over with ``TUNSETOFFLOAD``) or as the 24 segments the kernel makes
of it without offload (one read each), and times one ``Dataplane.tx_burst`` (reads,
for the super-packet the cut and 24 TCP checksums, sealing, sendmmsg over real UDP to
127.0.0.1; the datagrams are dropped unread once the socket buffer is full, alike for
both). The kernel's own segmentation (done by the sending application's thread when
offload is off) is not in these figures: this is the daemon's share only.

Prints CPU seconds (this thread's) per GB of TCP data and microseconds per 64 KiB,
median and p90 over rounds, the two kinds alternating so a busy machine affects both
alike. No timed assertion anywhere.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the simulator and test helpers, as the tests do

from osdep.linux.test_tso import super_frame  # noqa: E402
from sim.test_vl2_sim import build, join_and_authorize  # noqa: E402
from ztone.crypto import backend  # noqa: E402
from ztone.node.wire.inetaddress import InetAddress  # noqa: E402
from ztone.node.wire.mac import MAC  # noqa: E402
from ztone.osdep.linux.tso import segment  # noqa: E402
from ztone.service.dataplane import native_dataplane_module, native_send_entry  # noqa: E402

ETH_IPV4 = 0x0800
MSS = 2748  # MTU 2800, IPv4 + TCP with timestamps
DATA = 65535 - 20 - 32  # a full super-packet: 24 segments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    native = native_dataplane_module(backend.NATIVE.native if backend.NATIVE else None)
    if native is None:
        print("the native data plane is not built (Linux, ztone._speedups): nothing to measure")
        return 2
    net, controller, nwid = build(crypto=backend.NATIVE or backend.PURE, fast_path=True)
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    assert a.node.enable_receive_grants()
    net.run(5_000)
    a_mac = int(MAC.from_address(int(a.identity.address), nwid))
    b_mac = int(MAC.from_address(int(b.identity.address), nwid))
    sends: list[Any] = []
    for _ in range(5):
        a.node.on_tap_frame(net.now, nwid, a_mac, b_mac, ETH_IPV4, bytes(60))
        net._drain(a)
        net.run(200)
        a.node.receive_grants(net.now)
        sends = a.node.send_grants()
        if sends:
            break
    if not sends:
        print("a made no send grant (no direct path?)")
        return 1

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    port_in, port_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    port_out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    port_in.setblocking(False)
    host, port = sink.getsockname()
    grant = replace(sends[0], remote=InetAddress(ipaddress.ip_address(host), port))
    table = native.Dataplane(int(a.identity.address).to_bytes(5, "big"), 16, 16, 500)

    vnet, frame = super_frame(False, 1, bytes(i & 0xFF for i in range(DATA)), 0x18, MSS)
    eth = b_mac.to_bytes(6, "big") + a_mac.to_bytes(6, "big") + b"\x08\x00"
    big = vnet + eth + frame[14:]
    cut = segment(vnet, frame)
    assert cut is not None and len(cut) == 24
    small = [bytes(10) + eth + p for p in cut]
    reads = {"super": [big], "segments": small}

    timings: dict[str, list[float]] = {"super": [], "segments": []}
    for i in range(max(1, args.rounds)):
        for kind in ("super", "segments") if i % 2 == 0 else ("segments", "super"):
            grant = replace(grant, expires=net.now + 60_000)
            table.replace_send([native_send_entry(native, grant, tx.fileno(), 2800)])
            for r in reads[kind]:
                port_out.send(r)
            start = time.thread_time()
            back = table.tx_burst(port_in.fileno(), True, nwid, net.now, 64)
            timings[kind].append(time.thread_time() - start)
            assert not back, "the native table gave reads back"
    for kind in ("super", "segments"):
        t = sorted(timings[kind])
        median = statistics.median(t)
        print(
            f"{kind:8s}: {median / DATA * 1e9:.2f} CPU s per GB, {median * 1e6:.0f} us per "
            f"64 KiB (p90 {t[int(len(t) * 0.9)] * 1e6:.0f} us)"
        )
    print(f"native table: {table.stats()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
