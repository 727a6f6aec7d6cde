"""The ``userspace`` port backend: a user-space IPv4/IPv6 stack per network, no root.

Issue 15 (no-root mode). Instead of a TAP or VNIC, a joined network gets a
:class:`ztone.netstack.stack.Stack` (pure, sans-IO) that takes and gives whole Ethernet
frames; applications reach it through the daemon's SOCKS5 server and port forwards
(:mod:`ztone.service.userspace`), which use the asyncio streams over stack sockets
defined here (:class:`StackStream`, :class:`StackListener`).

* :class:`UserspaceDevice` is the port's :class:`~ztone.osdep.base.FrameDevice`: frames
  the node delivers (``write_batch``) go to ``Stack.receive_frame``; frames the stack
  makes wait in a bounded queue that ``read_batch`` empties. ``fileno()`` is the read
  end of a pipe holding one byte while that queue is not empty (a pipe, so it is the
  same on illumos), so the service's frame pump needs nothing new.
* :class:`UserspaceLink` is its :class:`~ztone.osdep.base.LinkConfig`: MTU, managed
  addresses and routes go to the stack, exactly as the TAP port gets them from
  ``ztone.service.networks``; its multicast groups are the stack's.
* :class:`StackHost` drives one stack on the event loop: one ``call_at`` timer at
  ``Stack.deadline()``, a poll after every batch of frames and every application
  write (coalesced with ``call_soon``), and ``Stack.changed()`` to wake the coroutines
  waiting on the sockets that changed.

Time given to the stack is the event loop's monotonic clock, in seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from ztone.errors import LocalUsageError
from ztone.netstack.stack import Stack, StackLimits
from ztone.node.wire.inetaddress import InetAddress, IPAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import EthernetFrame, FrameDeviceError, IPNetwork, TapError
from ztone.osdep.managed import route_gateway, route_network, upstream_sort_key

log = logging.getLogger(__name__)

MAX_QUEUED_FRAMES = 4096
"""Frames from the stack waiting for the frame pump, at most (more are dropped)."""
WAKE_FALLBACK = 1.0
"""Seconds a waiting coroutine sleeps at most before it looks at its socket again (it
is woken at once through ``Stack.changed()``; this only bounds a missed wake-up)."""
BROADCAST_MAC = 0xFFFFFFFFFFFF


class TcpSocket(Protocol):
    """What this module uses of the stack's TCP socket handle."""

    nodelay: bool

    def send(self, data: bytes | memoryview) -> int: ...
    def recv(self, limit: int = 65536) -> bytes: ...
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...
    @property
    def at_eof(self) -> bool: ...
    @property
    def established(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    @property
    def local(self) -> tuple[IPAddress, int]: ...
    @property
    def remote(self) -> tuple[IPAddress, int]: ...


class TcpListener(Protocol):
    def accept(self) -> TcpSocket | None: ...
    def close(self) -> None: ...


def device_name(nwid: int) -> str:
    """The name the port shows where a TAP shows its interface (``portDeviceName``)."""
    return f"ztus-{nwid:016x}"


class StackHost:
    """One :class:`Stack` on an asyncio loop (see the module)."""

    def __init__(self, nwid: int, stack: Stack, loop: asyncio.AbstractEventLoop) -> None:
        self.nwid = nwid
        self.stack = stack
        self.loop = loop
        self.outgoing: deque[EthernetFrame] = deque()
        self.frames_dropped = 0
        self._on_output: Callable[[], None] = lambda: None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._soon: asyncio.Handle | None = None
        self._waiters: dict[int, tuple[object, Callable[[], None]]] = {}
        self.closed = False

    def now(self) -> float:
        return self.loop.time()

    def set_output(self, on_output: Callable[[], None]) -> None:
        """``on_output()`` runs when :attr:`outgoing` goes from empty to not empty."""
        self._on_output = on_output

    # --- waking coroutines -------------------------------------------------------

    def watch(self, sock: object, wake: Callable[[], None]) -> None:
        self._waiters[id(sock)] = (sock, wake)

    def unwatch(self, sock: object) -> None:
        self._waiters.pop(id(sock), None)

    # --- running the stack ---------------------------------------------------------

    def receive(self, frames: Sequence[EthernetFrame]) -> None:
        now = self.now()
        receive_frame = self.stack.receive_frame
        for frame in frames:
            receive_frame(frame, now)
        self.service()

    def kick(self) -> None:
        """An application used a socket: poll the stack soon (once per loop turn)."""
        if self._soon is None and not self.closed:
            self._soon = self.loop.call_soon(self._kicked)

    def _kicked(self) -> None:
        self._soon = None
        self.service()

    def service(self) -> None:
        """Poll the stack now, queue its frames, wake sockets that changed, re-arm the timer."""
        if self.closed:
            return
        stack = self.stack
        try:
            stack.poll(self.now())
        except Exception:
            log.exception("BUG: network %016x: the user-space stack's poll raised", self.nwid)
        frames = stack.take_frames()
        if frames:
            was_empty = not self.outgoing
            room = MAX_QUEUED_FRAMES - len(self.outgoing)
            if len(frames) > room:
                self.frames_dropped += len(frames) - max(room, 0)
                frames = frames[: max(room, 0)]
            self.outgoing.extend(frames)
            if was_empty and self.outgoing:
                self._on_output()
        for sock in stack.changed():
            entry = self._waiters.get(id(sock))
            if entry is not None:
                entry[1]()
        self._arm(stack.deadline())

    def _arm(self, deadline: float | None) -> None:
        if deadline == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(max(deadline, self.loop.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.service()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()
        self._timer = self._soon = None
        for _, wake in list(self._waiters.values()):
            wake()
        self._waiters.clear()
        self.outgoing.clear()

    # --- sockets ---------------------------------------------------------------

    async def connect(self, ip: IPAddress, port: int, timeout: float = 30.0) -> StackStream:
        """A TCP connection into the overlay, established; ``ConnectionError`` (refused,
        reset, timed out) or ``LocalUsageError`` (no address or route for ``ip``)."""
        if self.closed:
            raise ConnectionAbortedError("the network's port is gone")
        sock = self.stack.tcp_connect((ip, port), self.now())
        stream = StackStream(self, sock)
        self.kick()
        try:
            await asyncio.wait_for(stream.established(), timeout)
        except TimeoutError:
            stream.abort()
            raise ConnectionError("timed out") from None
        except BaseException:
            stream.abort()
            raise
        return stream

    def listen(self, port: int, backlog: int = 64) -> StackListener:
        """A TCP listener on every address of the stack; ``LocalUsageError`` if taken."""
        return StackListener(self, self.stack.tcp_listen(port, backlog=backlog))


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Waitable:
    """What sockets' wrappers share: futures woken by the host."""

    def __init__(self, host: StackHost, sock: object) -> None:
        self.host = host
        self._sock = sock
        self._futures: list[asyncio.Future[None]] = []
        host.watch(sock, self._wake)

    def _wake(self) -> None:
        futures, self._futures = self._futures, []
        for f in futures:
            if not f.done():
                f.set_result(None)

    async def _wait(self) -> None:
        if self.host.closed:
            raise ConnectionAbortedError("the network's port is gone")
        loop = self.host.loop
        future: asyncio.Future[None] = loop.create_future()
        self._futures.append(future)
        timer = loop.call_later(WAKE_FALLBACK, _settle, future)
        try:
            await future
        finally:
            timer.cancel()

    def _forget(self) -> None:
        self.host.unwatch(self._sock)
        self._wake()


class StackStream(_Waitable):
    """A stack TCP socket as an asyncio stream (one reader and one writer task at most)."""

    def __init__(self, host: StackHost, sock: TcpSocket) -> None:
        super().__init__(host, sock)
        self.sock = sock
        self.sock.nodelay = True  # a relay: the local side already chose the segment sizes

    def _check(self) -> None:
        error = self.sock.error
        if error is not None:
            if "refused" in error:
                raise ConnectionRefusedError(error)
            if "reset" in error:
                raise ConnectionResetError(error)
            raise ConnectionError(error)

    async def established(self) -> None:
        while not self.sock.established:
            self._check()
            if self.sock.closed:
                raise ConnectionError("closed before it was established")
            await self._wait()

    async def read(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes; ``b""`` at the peer's end of data."""
        sock = self.sock
        while True:
            data = sock.recv(limit)
            if data:
                self.host.kick()  # the window opened: the peer may hear of it
                return data
            if sock.at_eof:
                return b""
            self._check()
            if sock.closed:
                return b""
            await self._wait()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """All of ``data`` into the send buffer (waiting while it is full)."""
        view = memoryview(data)
        sock = self.sock
        while view:
            self._check()
            if sock.closed:
                raise ConnectionResetError("connection closed")
            n = sock.send(view)
            if n:
                view = view[n:]
                self.host.kick()
            else:
                await self._wait()

    def shutdown(self) -> None:
        """No more data from us (FIN after what is buffered)."""
        try:
            self.sock.shutdown()
        except LocalUsageError:
            pass
        self.host.kick()

    def abort(self) -> None:
        """RST the connection and forget it."""
        try:
            self.sock.abort()
        except LocalUsageError:
            pass
        self.host.kick()
        self._forget()

    def close(self) -> None:
        """Shut down and let the stack forget the socket once it is done."""
        try:
            self.sock.close()
        except LocalUsageError:
            pass
        self.host.kick()
        self._forget()

    @property
    def local(self) -> tuple[IPAddress, int]:
        ip, port = self.sock.local
        return ipaddress.ip_address(ip), int(port)

    @property
    def remote(self) -> tuple[IPAddress, int]:
        ip, port = self.sock.remote
        return ipaddress.ip_address(ip), int(port)


class StackListener(_Waitable):
    def __init__(self, host: StackHost, listener: TcpListener) -> None:
        super().__init__(host, listener)
        self.listener = listener

    async def accept(self) -> StackStream:
        while True:
            sock = self.listener.accept()
            if sock is not None:
                self.host.kick()
                return StackStream(self.host, sock)
            await self._wait()

    def close(self) -> None:
        self.listener.close()
        self.host.kick()
        self._forget()


class UserspaceDevice:
    """The port's frame device (see the module)."""

    def __init__(self, host: StackHost) -> None:
        self.host = host
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._signalled = False
        self.closed = False
        host.set_output(self._signal)

    def _signal(self) -> None:
        if not self._signalled and not self.closed:
            self._signalled = True
            try:
                os.write(self._w, b"\x01")
            except BlockingIOError:
                pass

    def fileno(self) -> int:
        return self._r

    def read_batch(self, limit: int) -> list[EthernetFrame]:
        if self.closed:
            raise FrameDeviceError("the user-space port is closed")
        queue = self.host.outgoing
        count = min(limit, len(queue))
        frames = [queue.popleft() for _ in range(count)]
        if not queue and self._signalled:
            self._signalled = False
            try:
                while os.read(self._r, 64):
                    pass
            except BlockingIOError:
                pass
        return frames

    def write_batch(self, frames: Sequence[EthernetFrame]) -> int:
        if self.closed:
            return len(frames)
        self.host.receive(frames)
        return 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._r)
            os.close(self._w)


class UserspaceLink:
    """The port's link settings, kept by its stack."""

    def __init__(self, nwid: int, host: StackHost) -> None:
        self._name = device_name(nwid)
        self.host = host
        self.routes: list[Route] = []

    @property
    def device_name(self) -> str:
        return self._name

    @property
    def mac(self) -> int:
        return self.host.stack.mac

    @property
    def mtu(self) -> int:
        return self.host.stack.mtu

    def set_mtu(self, mtu: int) -> None:
        try:
            self.host.stack.set_mtu(mtu)
        except (LocalUsageError, ValueError) as e:
            raise TapError(f"{self._name}: cannot set MTU {mtu}: {e}") from None

    def add_ip(self, address: InetAddress) -> bool:
        try:
            self.host.stack.add_address(ipaddress.ip_interface((address.ip, address.port)))
        except (LocalUsageError, ValueError) as e:
            log.warning("%s: cannot add %s: %s", self._name, address, e)
            return False
        self.host.kick()
        return True

    def remove_ip(self, address: InetAddress) -> bool:
        try:
            self.host.stack.remove_address(ipaddress.ip_interface((address.ip, address.port)))
        except (LocalUsageError, ValueError, KeyError):
            return False
        return True

    def ips(self) -> list[InetAddress]:
        found = [InetAddress(i.ip, i.network.prefixlen) for i in self.host.stack.addresses()]
        return sorted(set(found), key=upstream_sort_key)

    def add_route(self, route: Route) -> bool:
        if route in self.routes:
            return True
        try:
            self.host.stack.add_route(route_network(route), route_gateway(route))
        except (LocalUsageError, ValueError) as e:
            log.warning("%s: cannot add route %s: %s", self._name, route.target, e)
            return False
        self.routes.append(route)
        return True

    def remove_route(self, route: Route) -> bool:
        if route not in self.routes:
            return False
        self.routes.remove(route)
        try:
            self.host.stack.remove_route(route_network(route), route_gateway(route))
        except (LocalUsageError, ValueError, KeyError):
            return False
        return True

    def networks(self) -> list[IPNetwork]:
        """Where this port reaches: its routes' targets and its addresses' networks."""
        out: list[IPNetwork] = [route_network(r) for r in self.routes]
        out += [i.network for i in self.host.stack.addresses()]
        return out

    def multicast_groups(self) -> list[MulticastGroup]:
        # The ARP groups (broadcast, ADI = IPv4) come from the addresses (port_groups);
        # plain broadcast is not a subscription on a TAP either.
        macs = {m for m in self.host.stack.multicast_macs() if m != BROADCAST_MAC}
        return [MulticastGroup(m, 0) for m in sorted(macs)]


class UserspaceTap:
    """One no-root port: a stack, its driver, device and link."""

    def __init__(self, nwid: int, host: StackHost, factory: UserspaceTapFactory) -> None:
        self.nwid = nwid
        self.host = host
        self._device = UserspaceDevice(host)
        self._link = UserspaceLink(nwid, host)
        self._factory = factory
        self.closed = False

    @property
    def device(self) -> UserspaceDevice:
        return self._device

    @property
    def link(self) -> UserspaceLink:
        return self._link

    @property
    def device_name(self) -> str:
        return self._link.device_name

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.host.close()
        self._device.close()
        self._factory.forget(self)


class UserspaceTapFactory:
    """Makes :class:`UserspaceTap` ports; :attr:`taps` by network id for the front-ends.

    ``on_change(nwid, tap or None)`` is told when a network's port comes or goes.
    ``rand(k)`` gives ``k`` random bits (the stacks' ISNs, ports); ``limits`` bound
    every stack.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        rand: Callable[[int], int] = secrets.randbits,
        limits: StackLimits | None = None,
    ) -> None:
        self._loop = loop
        self._rand = rand
        self._limits = limits
        self.taps: dict[int, UserspaceTap] = {}
        self.on_change: Callable[[int, UserspaceTap | None], None] | None = None

    def create(self, nwid: int, mac: int, mtu: int, friendly_name: str) -> UserspaceTap:
        loop = self._loop if self._loop is not None else asyncio.get_event_loop()
        try:
            stack = Stack(mac, mtu, rand=self._rand, limits=self._limits)
        except (LocalUsageError, ValueError) as e:
            raise TapError(f"cannot make a user-space stack for {nwid:016x}: {e}") from None
        tap = UserspaceTap(nwid, StackHost(nwid, stack, loop), self)
        self.taps[nwid] = tap
        self._tell(nwid, tap)
        return tap

    def _tell(self, nwid: int, tap: UserspaceTap | None) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(nwid, tap)
        except Exception:  # a front-end's trouble never costs the network its port
            log.exception("network %016x: a front-end failed on a port change", nwid)

    def cleanup_stale(self) -> list[str]:
        return []  # nothing outlives the process

    def forget(self, tap: UserspaceTap) -> None:
        if self.taps.get(tap.nwid) is tap:
            del self.taps[tap.nwid]
            self._tell(tap.nwid, None)

    def route(self, ip: IPAddress, only: int | None = None) -> UserspaceTap | None:
        """The port whose routes or addresses hold ``ip`` most specifically (only
        network ``only`` when given); None if no port reaches it."""
        best: tuple[int, UserspaceTap] | None = None
        for nwid, tap in self.taps.items():
            if only is not None and nwid != only:
                continue
            for net in tap.link.networks():
                fits = net.version == ip.version and ip in net
                if fits and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, tap)
        return best[1] if best is not None else None


__all__ = [
    "MAX_QUEUED_FRAMES",
    "StackHost",
    "StackListener",
    "StackStream",
    "UserspaceDevice",
    "UserspaceLink",
    "UserspaceTap",
    "UserspaceTapFactory",
    "device_name",
]
