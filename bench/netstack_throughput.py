"""Throughput of ztone's user-space stack: ``python3 bench/netstack_throughput.py``.

Two measurements, one direction each, of one TCP connection moving ``--mib`` MiB:

* ``memory``: two Stacks joined by a lossless in-memory Ethernet segment (no I/O at
  all; both ends are the pure-Python stack, so each byte costs two stacks' work);
* ``tap`` (root only, skipped otherwise): a Stack against the Linux kernel's TCP through
  a TAP in a network namespace the bench makes (198.18.x.x, fd00::/8, no default route;
  torn down at the end), kernel -> Stack and Stack -> kernel, with the harness of
  tests/netstack/kernel.

Prints MB/s, Mbit/s and the process's CPU seconds per GB moved (user + system, the
kernel's share in the tap case included as it runs in this process's syscalls and
softirqs only partly). Asserts nothing about speed: numbers move with this VM's load.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers, imported as the tests do

from ztone.netstack.ethernet import is_group_mac  # noqa: E402
from ztone.netstack.stack import Stack  # noqa: E402


def cpu() -> float:
    return time.process_time()  # user + system CPU of this process


def report(name: str, nbytes: int, wall: float, cpu_s: float) -> None:
    mb = nbytes / 1e6
    rate = f"{mb / wall:8.1f} MB/s {8 * mb / wall:8.1f} Mbit/s"
    cost = f"{cpu_s / (nbytes / 1e9):8.1f} CPU s/GB"
    print(f"{name:<24} {rate} {cost}  ({nbytes >> 20} MiB in {wall:.2f} s)")


def memory(mib: int) -> None:
    a = Stack(0x020000000001, 2800, rand=random.Random(1).getrandbits)
    b = Stack(0x020000000002, 2800, rand=random.Random(2).getrandbits)
    a.add_address(ipaddress.IPv4Interface("198.18.0.1/24"))
    b.add_address(ipaddress.IPv4Interface("198.18.0.2/24"))
    now = [0.0]

    def step() -> None:
        now[0] += 1e-4
        for s, other in ((a, b), (b, a)):
            s.poll(now[0])
            for frame in s.take_frames():
                if is_group_mac(frame[1]) or frame[1] == other.mac:
                    other.receive_frame(frame, now[0])

    def run(done: Callable[[], bool]) -> None:
        for _ in range(10_000_000):
            if done():
                return
            step()
        raise SystemExit("memory bench did not finish")

    listener = b.tcp_listen(80)
    client = a.tcp_connect((ipaddress.IPv4Address("198.18.0.2"), 80), now[0])
    run(lambda: listener.readable > 0 and client.established)
    server = listener.accept()
    assert server is not None
    data = random.Random(3).randbytes(mib << 20)
    sent = got = 0
    view = memoryview(data)

    def done() -> bool:
        nonlocal sent, got
        while sent < len(data) and client.writable:
            sent += client.send(view[sent : sent + 65536])
        while server.readable:
            got += len(server.recv(1 << 20))
        return got >= len(data)

    wall, c = time.perf_counter(), cpu()
    run(done)
    report("memory stack->stack", len(data), time.perf_counter() - wall, cpu() - c)


def tap(mib: int, mtu: int) -> None:
    from netstack.kernel.flows import (  # noqa: PLC0415
        kernel_connect,
        kernel_to_stack,
        stack_to_kernel,
    )
    from netstack.kernel.harness import KernelLab, kernel_unavailable  # noqa: PLC0415

    why = kernel_unavailable()
    if why:
        print(f"tap: skipped ({why})")
        return
    data = random.Random(4).randbytes(mib << 20)
    with KernelLab(mtu=mtu) as lab:
        listener = lab.stack.tcp_listen(5001)
        k, s = kernel_connect(lab, listener, v6=False)
        wall, c = time.perf_counter(), cpu()
        got = kernel_to_stack(lab, k, s, data, timeout=600)
        report(f"tap {mtu} kernel->stack", len(got), time.perf_counter() - wall, cpu() - c)
        wall, c = time.perf_counter(), cpu()
        got = stack_to_kernel(lab, k, s, data, timeout=600)
        report(f"tap {mtu} stack->kernel", len(got), time.perf_counter() - wall, cpu() - c)
        k.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=32, help="MiB per transfer (32)")
    parser.add_argument("--only", choices=["memory", "tap"], help="run one measurement")
    parser.add_argument("--mtu", type=int, default=2800, help="the TAP's MTU (2800)")
    args = parser.parse_args()
    if args.only in (None, "memory"):
        memory(args.mib)
    if args.only in (None, "tap"):
        tap(args.mib, args.mtu)


if __name__ == "__main__":
    main()
