"""Receive cost per frame, native data plane against the Python path:
``python3 bench/dataplane_rx.py [--frames N] [--size BYTES] [--tcp]``.

Two members of one network on the simulator (``tests/sim``); b grants a's frames
(:mod:`ztone.node.fast_grants`). a's datagrams for ``--frames`` unicast IPv4 frames of
``--size`` bytes are sent, a batch at a time, over real UDP on 127.0.0.1 to a socket
that b's side then reads (the sending is not timed). Timed per batch:

* native: one ``Dataplane.rx_burst`` (recvmmsg, reassembly, dearmor, the frame written
  to one end of a socketpair standing in for the TAP);
* python: what the service does without it: ``recvfrom_into`` per datagram, ``Node.
  on_wire_packet`` (the fast path's open, dispatch, gate, rules), ``drain_actions``,
  and each DeliverFrame written to the socketpair (virtio header, MACs, ethertype).

With ``--tcp`` the frames are consecutive segments of one TCP connection (ACK, right
checksums): the native table merges each batch's run into GSO writes (``_dp_gro.h``)
and the Python path writes what ``TunDevice.write_batch`` would (``gro.coalesce``),
so both count the merging; the port then gets fewer writes than frames.

Prints microseconds per frame (median of batches, and p90) for each, alternating
blocks so a busy machine affects both alike. No timed assertion anywhere.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the simulator, imported as the tests do

from sim.test_vl2_sim import build, join_and_authorize  # noqa: E402
from ztone.crypto import backend  # noqa: E402
from ztone.node import bounds as B  # noqa: E402
from ztone.node.actions import DeliverFrame, SendPacket  # noqa: E402
from ztone.node.wire.inetaddress import InetAddress  # noqa: E402
from ztone.node.wire.mac import MAC  # noqa: E402
from ztone.osdep.linux.gro import coalesce  # noqa: E402
from ztone.service.dataplane import native_dataplane_module, native_entry  # noqa: E402
from ztone.util.inet_checksum import inet_sum_function  # noqa: E402

ETH_IPV4 = 0x0800
BATCH = 32  # frames per timed batch (their datagrams sit in the socket buffer)


def _ipv4_payload(size: int) -> bytes:
    header = bytearray(20)
    header[0] = 0x45
    header[2:4] = size.to_bytes(2, "big")
    header[8], header[9] = 64, 6
    return bytes(header) + bytes(i & 0xFF for i in range(size - 20))


class _Segments:
    """Consecutive TCP segments (10.0.0.1:40000 -> 10.0.0.2:5201) of ``size``-byte
    IPv4 packets, checksums right, flags ACK."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seq = 1
        self.sum = inet_sum_function(backend.NATIVE or backend.PURE)

    def next(self) -> bytes:
        body = bytes((self.seq + i) & 0xFF for i in range(self.size - 40))
        ip = bytearray(20)
        ip[0], ip[8], ip[9] = 0x45, 64, 6
        ip[2:4] = self.size.to_bytes(2, "big")
        ip[6] = 0x40
        ip[12:20] = bytes([10, 0, 0, 1, 10, 0, 0, 2])
        ip[10:12] = (~self.sum(ip, 0) & 0xFFFF).to_bytes(2, "big")
        tcp = bytearray(20)
        tcp[0:4] = (40000).to_bytes(2, "big") + (5201).to_bytes(2, "big")
        tcp[4:8] = self.seq.to_bytes(4, "big")
        tcp[8:12] = (1).to_bytes(4, "big")
        tcp[12], tcp[13] = 0x50, 0x10
        tcp[14:16] = (512).to_bytes(2, "big")
        pseudo = self.sum(bytes(ip[12:20]), 6 + 20 + len(body))
        tcp[16:18] = (~self.sum(bytes(tcp) + body, pseudo) & 0xFFFF).to_bytes(2, "big")
        self.seq = (self.seq + len(body)) & 0xFFFFFFFF
        return bytes(ip) + bytes(tcp) + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6_400)
    parser.add_argument("--size", type=int, default=2800, help="IP packet bytes (MTU 2800)")
    parser.add_argument("--tcp", action="store_true", help="consecutive TCP segments")
    args = parser.parse_args()
    native = native_dataplane_module(backend.NATIVE.native if backend.NATIVE else None)
    if native is None:
        print("the native data plane is not built (Linux, ztone._speedups): nothing to compare")
        return 2
    net, controller, nwid = build(crypto=backend.NATIVE or backend.PURE, fast_path=True)
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    assert b.node.enable_receive_grants()
    net.run(5_000)
    a_mac = int(MAC.from_address(int(a.identity.address), nwid))
    b_mac = int(MAC.from_address(int(b.identity.address), nwid))
    payload = _ipv4_payload(args.size)
    segments = _Segments(args.size) if args.tcp else None
    grants: list[Any] = []
    for _ in range(5):
        a.node.on_tap_frame(net.now, nwid, a_mac, b_mac, ETH_IPV4, payload)
        net._drain(a)
        net.run(200)
        grants = b.node.receive_grants(net.now)[1]
        if grants:
            break
    if not grants:
        print("b made no grant (no direct path?)")
        return 1

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    port_in, port_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    port_in.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    port_out.setblocking(False)
    host, tx_port = tx.getsockname()
    grant = replace(grants[0], remote=InetAddress(ipaddress.ip_address(host), tx_port))
    table = native.Dataplane(
        int(b.identity.address).to_bytes(5, "big"),
        B.FAST_GRANTS,
        B.FAST_REASSEMBLY_SLOTS,
        B.FAST_REASSEMBLY_TIMEOUT,
    )

    def batch_datagrams() -> list[bytes]:
        out = []
        for _ in range(BATCH):
            frame = segments.next() if segments is not None else payload
            a.node.on_tap_frame(net.now, nwid, a_mac, b_mac, ETH_IPV4, frame)
            for action in a.node.drain_actions():
                if isinstance(action, SendPacket) and action.remote == b.endpoint:
                    out.append(bytes(action.data))
        return out

    def drain_port() -> int:
        n = 0
        while True:
            try:
                port_out.recv(65536)
                n += 1
            except BlockingIOError:
                return n

    buffer = bytearray(16384)
    view = memoryview(buffer)
    fd = port_in.fileno()

    def python_path() -> None:
        node = b.node
        remote = a.endpoint  # the path b's core knows for a
        run: list[tuple[bytes, bytes]] = []
        while True:
            try:
                n, _ = rx.recvfrom_into(buffer)
            except BlockingIOError:
                break
            node.on_wire_packet(net.now, 1, remote, bytes(view[:n]))
            for action in node.drain_actions():
                if isinstance(action, DeliverFrame):
                    header = (
                        action.destination.to_bytes(6, "big")
                        + action.source.to_bytes(6, "big")
                        + action.ethertype.to_bytes(2, "big")
                    )
                    if segments is not None:
                        run.append((header, action.payload))
                    else:
                        os.writev(fd, (bytes(10), header, action.payload))
        for write in coalesce(run, inet_sum_function(backend.NATIVE or backend.PURE)):
            os.writev(fd, write)

    timings: dict[str, list[float]] = {"native": [], "python": []}
    delivered = {"native": 0, "python": 0}
    rounds = max(1, args.frames // BATCH)
    for i in range(rounds):
        for kind in ("native", "python") if i % 2 == 0 else ("python", "native"):
            now = net.now
            grant.expires = now + 60_000
            table.replace([native_entry(native, grant, fd, True, 2800)])
            datagrams = batch_datagrams()
            for d in datagrams:
                tx.sendto(d, rx.getsockname())
            start = time.perf_counter()
            if kind == "native":
                passed = table.rx_burst(rx.fileno(), 1, now, 4096)
                assert not passed, "the native table gave datagrams back"
            else:
                python_path()
            timings[kind].append((time.perf_counter() - start) / BATCH * 1e6)
            delivered[kind] += drain_port()
    for kind in ("native", "python"):
        t = sorted(timings[kind])
        print(
            f"{kind:6s} receive, {args.size}-byte frames: median {statistics.median(t):.1f} us"
            f"/frame, p90 {t[int(len(t) * 0.9)]:.1f} us ({delivered[kind]} port writes)"
        )
    print(f"native table: {table.stats()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
