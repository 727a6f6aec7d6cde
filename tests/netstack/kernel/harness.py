"""A Stack against the Linux kernel through a real TAP device in a test's namespace.

:class:`KernelLab` makes a network namespace, opens a TAP inside it with ztone's own
Linux TAP code (``ztone.osdep.linux.tun``: the same descriptor, ioctls and frame
device the daemon uses), gives the kernel side ``198.18.<n>.1/24`` and ``fd00:<n>::1/64``
and the Stack ``.2`` of each. :meth:`KernelLab.pump` moves frames between the TAP and
the Stack on the real clock, bounded in iterations and time; kernel sockets are made
inside the namespace (:meth:`KernelLab.kernel_socket`) and driven non-blocking from
the same loop, so one thread runs both ends. Nothing leaves the namespace: it has no
default route, and is deleted (with the TAP) on :meth:`KernelLab.close`.
"""

from __future__ import annotations

import ipaddress
import os
import random
import select
import socket
import time
from collections.abc import Callable

from netns.netns import Namespace, netns_unavailable
from ztone.netstack.ethernet import EthernetFrame
from ztone.netstack.stack import Stack, StackLimits
from ztone.osdep.linux import tun
from ztone.osdep.linux.tun import TunDevice

KERNEL_MAC = 0x02_5A_00_00_00_01
STACK_MAC = 0x02_5A_00_00_00_02
MTU = 2800
TAP_NAME = "ztstk0"
_lab_numbers = iter(range(200, 250))


def kernel_unavailable() -> str | None:
    """Why these tests cannot run here (they need root, namespaces and /dev/net/tun)."""
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun does not exist"
    return netns_unavailable()


class KernelLab:
    def __init__(self, limits: StackLimits | None = None, seed: int = 7, mtu: int = MTU) -> None:
        n = next(_lab_numbers)
        self.kernel_v4 = ipaddress.IPv4Interface(f"198.18.{n}.1/24")
        self.stack_v4 = ipaddress.IPv4Interface(f"198.18.{n}.2/24")
        self.kernel_v6 = ipaddress.IPv6Interface(f"fd00:{n}::1/64")
        self.stack_v6 = ipaddress.IPv6Interface(f"fd00:{n}::2/64")
        self.ns = Namespace()
        self.device: TunDevice | None = None
        try:
            with self.ns.entered():
                fd = tun.open_tun()
                try:
                    name, vnet = tun.attach_tap(fd, TAP_NAME)
                    tun.set_mac(name, KERNEL_MAC)
                    tun.set_mtu(name, mtu)
                except BaseException:
                    os.close(fd)
                    raise
            self.device = TunDevice(fd, name, vnet)
            self.name = name
            self.ns.ip("addr", "add", str(self.kernel_v4), "dev", name)
            self.ns.ip("-6", "addr", "add", str(self.kernel_v6), "dev", name, "nodad")
            self.ns.ip("link", "set", name, "up")
        except BaseException:
            self.close()
            raise
        self.stack = Stack(STACK_MAC, mtu, rand=random.Random(seed).getrandbits, limits=limits)
        self.stack.add_address(self.stack_v4)
        self.stack.add_address(self.stack_v6)
        self.drop_to_kernel: Callable[[], bool] = lambda: False
        """Set to drop (return True for) frames from the Stack to the kernel: loss injection."""
        self.frames_to_kernel = 0
        self._impair: tuple[float, float, random.Random] | None = None
        self.frames_from_kernel = 0

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
        self.ns.delete()

    def __enter__(self) -> KernelLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def impair_from_kernel(self, loss: float, reorder: float, seed: int) -> None:
        """Drop (``loss``) and swap with the next frame (``reorder``) the frames the kernel
        sends to the Stack: where netem is missing, the same impairment in the harness."""
        self._impair = (loss, reorder, random.Random(seed))

    def _impaired(self, frames: list[EthernetFrame]) -> list[EthernetFrame]:
        if self._impair is None:
            return frames
        loss, reorder, rng = self._impair
        kept = [f for f in frames if rng.random() >= loss]
        for i in range(len(kept) - 1):
            if rng.random() < reorder:
                kept[i], kept[i + 1] = kept[i + 1], kept[i]
        return kept

    def kernel_socket(self, family: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A non-blocking socket of the kernel inside the lab's namespace."""
        with self.ns.entered():
            sock = socket.socket(family, kind)
        sock.setblocking(False)
        return sock

    def pump(
        self,
        done: Callable[[], bool],
        step: Callable[[float], None] | None = None,
        timeout: float = 60.0,
        max_iterations: int = 2_000_000,
    ) -> bool:
        """Move frames (and call ``step(now)`` each round) until ``done()``; False when
        the time or iteration bound ran out first."""
        assert self.device is not None
        device, stack = self.device, self.stack
        fd = device.fileno()
        end = time.monotonic() + timeout
        for _ in range(max_iterations):
            now = time.monotonic()
            if done():
                return True
            if now > end:
                return False
            if step is not None:
                step(now)
            frames = device.read_batch(64)
            self.frames_from_kernel += len(frames)
            for frame in self._impaired(frames):
                stack.receive_frame(frame, now)
            stack.poll(now)
            out = stack.take_frames()
            if out:
                kept = [f for f in out if not self.drop_to_kernel()]
                self.frames_to_kernel += len(kept)
                device.write_batch(kept)
            if not frames and not out:
                deadline = stack.deadline()
                wait = 0.002 if deadline is None else min(max(deadline - now, 0.0), 0.002)
                select.select([fd], [], [], wait)
        return False
