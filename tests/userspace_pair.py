"""Two user-space ports wired back to back on a real event loop, for tests.

The "segment" does what the service's frame pump does: it watches each port's device
descriptor, reads a batch and writes it to the other port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from ztone.node.wire.inetaddress import InetAddress
from ztone.osdep.userspace import UserspaceTap, UserspaceTapFactory

MAC_A = 0x02AA00000001
MAC_B = 0x02BB00000002
NWID = 0x8056C2E21C000001
A4, B4 = "10.147.17.1", "10.147.17.2"
A6, B6 = "fd00:5a7e::1", "fd00:5a7e::2"


def rand_bits(seed: int) -> Callable[[int], int]:
    return random.Random(seed).getrandbits


class Segment:
    """Two ports on one Ethernet segment, pumped by the loop (like the frame pump)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, a: UserspaceTap, b: UserspaceTap) -> None:
        self.loop = loop
        self.frames = 0
        for src, dst in ((a, b), (b, a)):
            loop.add_reader(src.device.fileno(), self._move, src, dst)
        self.ports = (a, b)

    def _move(self, src: UserspaceTap, dst: UserspaceTap) -> None:
        frames = src.device.read_batch(128)
        self.frames += len(frames)
        if frames and not dst.closed:
            dst.device.write_batch(frames)

    def close(self) -> None:
        for port in self.ports:
            if not port.device.closed:
                self.loop.remove_reader(port.device.fileno())


@asynccontextmanager
async def pair(
    fa: UserspaceTapFactory | None = None,
) -> AsyncIterator[tuple[UserspaceTap, UserspaceTap, Segment]]:
    """Port a (10.147.17.1/24, fd00:5a7e::1/88; made by ``fa`` if given) and port b."""
    loop = asyncio.get_running_loop()
    fa = fa if fa is not None else UserspaceTapFactory(loop, rand=rand_bits(1))
    fb = UserspaceTapFactory(loop, rand=rand_bits(2))
    a = fa.create(NWID, MAC_A, 2800, "a")
    b = fb.create(NWID, MAC_B, 2800, "b")
    for tap, last in ((a, 1), (b, 2)):
        assert tap.link.add_ip(InetAddress(ipaddress.ip_address(f"10.147.17.{last}"), 24))
        assert tap.link.add_ip(InetAddress(ipaddress.ip_address(f"fd00:5a7e::{last}"), 88))
    seg = Segment(loop, a, b)
    try:
        yield a, b, seg
    finally:
        seg.close()
        a.close()
        b.close()
