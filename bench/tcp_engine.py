"""How fast the user-space stack's TCP engine moves bytes: ``python3 bench/tcp_engine.py``.

Two :class:`~ztone.netstack.tcp.TcpConnection` objects in one process, joined directly
(no link, no loss): the client's application writes 64 KiB chunks, the server's reads
everything, and every segment either goes across as the object (``engine``) or through
``build_tcp``/``parse_tcp`` with checksums (``+ codec``). The virtual clock advances
0.1 ms per round. Prints MB/s, Mbit/s, CPU seconds per GB and microseconds of CPU per
data segment (both ends together). Issue 15's target for the whole user-space path is
100 Mbit/s through SOCKS5; this is the TCP engine's share of it. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

from ztone.netstack.tcp import TcpConnection
from ztone.netstack.tcp_limits import TcpLimits
from ztone.netstack.tcp_segment import build_tcp, parse_tcp

CLIENT = bytes([198, 18, 0, 1])
SERVER = bytes([198, 18, 0, 2])


def transfer(total: int, mss: int, codec: bool, limits: TcpLimits) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, data segments) to move ``total`` bytes one way."""
    client = TcpConnection.connect(CLIENT, 40000, SERVER, 80, mss=mss, iss=1, now=0.0,
                                   limits=limits)  # fmt: skip
    syn = client.poll(0.0)[0]
    server = TcpConnection.accept(syn, SERVER, CLIENT, mss=mss, iss=2, now=0.0, limits=limits)
    chunk = bytes(65536)
    now = 0.0
    sent = got = segments = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while got < total:
        now += 0.0001
        if client.established and sent < total:
            sent += client.send(chunk)
        for out in client.poll(now):
            seg = parse_tcp(build_tcp(out, CLIENT, SERVER), CLIENT, SERVER) if codec else out
            segments += 1 if seg.payload else 0
            server.receive(seg, now)
        while server.readable:
            got += len(server.recv(1 << 20))
        for out in server.poll(now):
            seg = parse_tcp(build_tcp(out, SERVER, CLIENT), SERVER, CLIENT) if codec else out
            client.receive(seg, now)
    return time.perf_counter() - wall, time.process_time() - cpu, segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="bytes to move per run (MiB)")
    args = parser.parse_args()
    total = args.mib << 20
    limits = TcpLimits()
    print(f"TCP engine, {args.mib} MiB one way, buffers {limits.send_buffer >> 10} KiB")
    for mss in (1400, 2760):
        for codec in (False, True):
            wall, cpu, segments = transfer(total, mss, codec, limits)
            name = "engine + codec" if codec else "engine"
            print(f"  mss {mss:4d} {name:15s} {total / wall / 1e6:7.1f} MB/s "
                  f"{total * 8 / wall / 1e6:6.0f} Mbit/s  {cpu / total * 2**30:5.2f} CPU s/GB  "
                  f"{cpu / segments * 1e6:5.1f} us CPU/segment")  # fmt: skip


if __name__ == "__main__":
    main()
