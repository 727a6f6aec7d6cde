"""UDP sockets read with ``loop.add_reader`` into preallocated buffers (DESIGN.md).

Each bound socket gets a small integer id, the "local socket" the core sees. A
readable socket is drained of many datagrams per wakeup with ``recvfrom_into``;
the stock ``DatagramProtocol`` path allocates per datagram and is slower.

On Linux, runs of datagrams for one destination (a packet's head and fragments,
and the next packets' when a burst of frames cuts into datagrams of one length)
leave in one ``sendmsg`` with ``UDP_SEGMENT`` (UDP GSO): the kernel
cuts them into exactly the datagrams that were given, so the wire is unchanged,
but the stack is walked once per run. Sockets opt into ``UDP_GRO``, so such runs
(and runs a NIC merged) may also arrive in one read, with the segment size
alongside; they are cut back into the original datagrams before the core sees
them. Where the kernel refuses either, datagrams go and come one by one.

Received datagrams wait in one queue per source (socket id and remote address) and
are handed to the core round-robin, a bounded number per loop turn. Reading is much
cheaper than handling (a few microseconds against tens), so under a flood the socket
is still drained at line rate: the kernel's buffer does not overflow and drop
datagrams blindly, and the flooding source only overflows its own queue. One peer
sending as fast as it can then delays another's ping by one round, not by the whole
backlog. Bounds: ``RX_SOURCES`` sources waiting, ``RX_PER_SOURCE`` datagrams from
one, ``RX_BYTES`` bytes in all; past the last, the newest datagram of the source with
the most waiting is dropped (a flood makes room for a newcomer, not the reverse).

With a burst reader (:meth:`UdpSockets.set_burst_reader`: the native data plane of
:mod:`ztone.service.dataplane`), a readable socket is read by it instead; the
datagrams it does not consume itself come back and are queued here exactly as read,
handed over, and then its ``after`` hook runs (the data plane reads the ports it just
wrote to: see there).

With an owner (:meth:`UdpSockets.set_owner`: the native data plane's reactor thread),
the event loop does not watch the sockets at all: the owner reads them, and what it
does not carry comes back through :meth:`UdpSockets.accept`, queued here as above.
The owner is told to stop (``unwatch``) before a socket closes.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ztone.node.actions import ANY_LOCAL_SOCKET
from ztone.node.wire.inetaddress import InetAddress

log = logging.getLogger(__name__)

BUFFER_SIZE = 1 << 20  # ZT_UDP_DESIRED_BUF_SIZE
MAX_DATAGRAM = 16384
READS_PER_WAKEUP = 1024
"""Reads per readable wakeup at most: several times what one turn hands over, so the
socket is drained faster than a flood fills it."""
HAND_PER_TURN = 128
"""Datagrams handed to the core per loop turn before other events get their turn."""
HAND_TURN_SECONDS = 0.002
"""The time one such turn may take. Without it, 128 costly datagrams (HELLOs of new
identities, WHOIS for 100 addresses) took tens of ms, and an API request waits
several turns. A monotonic clock read (~0.1 us) per datagram handed is noise beside
the core's cost of one (10 us and more)."""
RX_SOURCES = 256
RX_PER_SOURCE = 1024
RX_BYTES = 4 << 20
SOL_UDP = 17
UDP_SEGMENT = 103  # <linux/udp.h>
UDP_GRO = 104
GRO_BUFFER = 65536
MAX_GSO_SEGMENTS = 64  # UDP_MAX_SEGMENTS of older kernels
MAX_GSO_BYTES = 65535 - 40 - 8
"""A GSO run is one IP packet until the kernel cuts it: 16-bit lengths, IPv6's header."""
_GSO_UNSUPPORTED = (errno.ENOPROTOOPT, errno.EOPNOTSUPP)

DatagramHandler = Callable[[int, InetAddress, bytes], None]
BurstReader = Callable[[int, int], list[tuple[str, int, bytes]]]
"""``reader(fd, socket id)``: read the socket until it would block (or a budget) and
return the datagrams left for the core as ``(host, port, datagram)``, in arrival order."""


class SocketOwner(Protocol):
    """Who reads the sockets instead of the event loop (the data plane's reactor)."""

    def watch_socket(self, fd: int, sock_id: int) -> bool:
        """Read ``fd`` (socket ``sock_id``) from now on; False: it cannot (the loop reads)."""
        ...

    def unwatch(self, fd: int) -> None:
        """Stop reading ``fd`` (it is about to close, or the loop takes it back)."""
        ...


@dataclass
class _Bound:
    sock: socket.socket
    family: int
    local: InetAddress
    gro: bool = False  # UDP_GRO is on: a read may hold several datagrams
    owned: bool = False  # the owner reads it, not the event loop


class UdpSockets:
    """The node's UDP sockets: bind, receive into the core, send its datagrams."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: DatagramHandler,
        on_batch_end: Callable[[], None] | None = None,
    ) -> None:
        """``handler`` gets each datagram; ``on_batch_end`` runs once per wakeup that
        handed any over (the caller's cue to act on them together)."""
        self._loop = loop
        self._handler = handler
        self._on_batch_end = on_batch_end
        self._sockets: dict[int, _Bound] = {}
        self._next_id = 1
        self._buffer = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buffer)
        self._addr_cache: dict[tuple[str, int], InetAddress] = {}
        self._routes: dict[tuple[int, InetAddress], tuple[tuple[socket.socket, Any], ...]] = {}
        self.send_errors = 0
        self.tx_bytes = 0  # handed to the kernel without an error (zt_data)
        self._gso = sys.platform.startswith("linux")
        self._gso_refused: set[tuple[int, InetAddress]] = set()
        self._pending: list[bytes] = []  # one run for one (socket id, remote), see send()
        self._pending_key: tuple[int, InetAddress] = (0, InetAddress(ipaddress.ip_address(0), 0))
        self._segment = 0
        self._last_full = False
        self._gro_buffer: bytearray | None = None
        self._gro_ancillary = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0
        # per (socket id, remote): datagrams read but not yet handed; dict order is the
        # round-robin order
        self._waiting: dict[tuple[int, InetAddress], deque[bytes]] = {}
        self._waiting_bytes = 0
        self._fattest: tuple[int, InetAddress] | None = None  # most waiting (kept lazily)
        self._hand_scheduled = False
        self._burst: BurstReader | None = None
        self._after_burst: Callable[[], None] | None = None
        self._owner: SocketOwner | None = None
        self.rx_shed = 0  # datagrams dropped because their source's queue was full

    @property
    def bound(self) -> list[tuple[int, InetAddress]]:
        return [(i, b.local) for i, b in self._sockets.items()]

    def bind(self, host: str, port: int) -> int:
        """Bind ``host:port``; return the new socket's id. OSError if it cannot."""
        ip = ipaddress.ip_address(host)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, BUFFER_SIZE)
                except OSError:
                    pass
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        bound_port = sock.getsockname()[1]
        sock_id = self._next_id
        self._next_id += 1
        bound = _Bound(sock, family, InetAddress(ip, bound_port))
        if self._gso and self._gro_ancillary:
            try:
                sock.setsockopt(SOL_UDP, UDP_GRO, 1)
                bound.gro = True
            except OSError:
                pass
        self._sockets[sock_id] = bound
        self._routes.clear()
        self._watch(sock_id, bound)
        return sock_id

    def _watch(self, sock_id: int, bound: _Bound) -> None:
        owner = self._owner
        bound.owned = owner is not None and owner.watch_socket(bound.sock.fileno(), sock_id)
        if not bound.owned:
            self._loop.add_reader(bound.sock.fileno(), self._on_readable, sock_id)

    def _unwatch(self, bound: _Bound) -> None:
        if bound.owned and self._owner is not None:
            self._owner.unwatch(bound.sock.fileno())
        else:
            self._loop.remove_reader(bound.sock.fileno())
        bound.owned = False

    def set_owner(self, owner: SocketOwner | None) -> None:
        """Let ``owner`` read every socket from now on (None: the event loop reads them
        again); its leftovers come back through :meth:`accept`."""
        for bound in self._sockets.values():
            self._unwatch(bound)
        self._owner = owner
        for sock_id, bound in self._sockets.items():
            self._watch(sock_id, bound)

    def accept(self, datagrams: list[tuple[int, str, int, bytes]]) -> None:
        """The owner's datagrams for the core, ``(socket id, host, port, datagram)`` in
        arrival order: queued and handed as if read here."""
        queue = self._queue
        remote = self._remote
        for sock_id, host, port, data in datagrams:
            if sock_id in self._sockets:
                queue((sock_id, remote((host, port))), data)
        if self._waiting and not self._hand_scheduled:
            self._hand()

    def close(self) -> None:
        self.flush()
        for bound in self._sockets.values():
            self._unwatch(bound)
            bound.sock.close()
        self._sockets.clear()
        self._routes.clear()
        self._waiting.clear()
        self._waiting_bytes = 0

    def _remote(self, addr: tuple[str, int] | tuple[str, int, int, int]) -> InetAddress:
        key = (addr[0], addr[1])
        remote = self._addr_cache.get(key)
        if remote is None:
            host = addr[0].split("%", 1)[0]
            remote = InetAddress(ipaddress.ip_address(host), addr[1])
            if len(self._addr_cache) > 4096:
                self._addr_cache.clear()
            self._addr_cache[key] = remote
        return remote

    def socket_fd(self, sock_id: int, remote: InetAddress) -> int | None:
        """The fd a datagram from ``sock_id`` to ``remote`` leaves by when it is exactly
        one socket (as :meth:`send` would pick it), else None."""
        family = socket.AF_INET if remote.ip.version == 4 else socket.AF_INET6
        targets = self._targets(sock_id, family)
        return targets[0].sock.fileno() if len(targets) == 1 else None

    def set_burst_reader(
        self, reader: BurstReader | None, after: Callable[[], None] | None = None
    ) -> None:
        """Read every socket with ``reader`` from now on (None: udp.py's own reads);
        ``after()`` runs once per wakeup it read, after what it gave back was handed."""
        self._burst = reader
        self._after_burst = after if reader is not None else None

    @property
    def queues_empty(self) -> bool:
        """No datagram read waits for the core."""
        return not self._waiting

    def _on_readable(self, sock_id: int) -> None:
        bound = self._sockets.get(sock_id)
        if bound is None:
            return
        burst = self._burst
        if burst is not None:
            queue = self._queue
            remote = self._remote
            for host, port, data in burst(bound.sock.fileno(), sock_id):
                queue((sock_id, remote((host, port))), data)
        elif bound.gro:
            self._read_gro(sock_id, bound.sock)
        else:
            self._read(sock_id, bound.sock)
        if self._waiting and not self._hand_scheduled:
            self._hand()
        if burst is not None and self._after_burst is not None:
            self._after_burst()

    def _queue(self, key: tuple[int, InetAddress], data: bytes) -> None:
        """Keep ``data`` for the core, within the bounds (module docstring)."""
        waiting = self._waiting
        queue = waiting.get(key)
        if queue is None:
            if len(waiting) >= RX_SOURCES:
                self.rx_shed += 1
                return
            queue = waiting[key] = deque()
        elif len(queue) >= RX_PER_SOURCE:
            self.rx_shed += 1
            return
        queue.append(data)
        self._waiting_bytes += len(data)
        fattest = waiting.get(self._fattest) if self._fattest is not None else None
        if fattest is None or len(queue) > len(fattest):
            self._fattest = key
        while self._waiting_bytes > RX_BYTES:
            self._drop_from_fattest()

    def _drop_from_fattest(self) -> None:
        waiting = self._waiting
        key = self._fattest
        if key is None or key not in waiting:
            key = self._fattest = max(waiting, key=lambda k: len(waiting[k]))
        queue = waiting[key]
        self._waiting_bytes -= len(queue.pop())
        self.rx_shed += 1
        if not queue:
            del waiting[key]
            self._fattest = None

    def _hand(self) -> None:
        """Hand up to ``HAND_PER_TURN`` waiting datagrams to the core, for at most
        ``HAND_TURN_SECONDS``, one per source in turn (a source served goes to the
        back); the rest wait for the next loop turn."""
        self._hand_scheduled = False
        waiting = self._waiting
        handler = self._handler
        budget = HAND_PER_TURN
        deadline = time.monotonic() + HAND_TURN_SECONDS
        while budget > 0 and waiting:
            if len(waiting) == 1:  # one source: its datagrams in a row
                key, queue = next(iter(waiting.items()))
                for _ in range(min(budget, len(queue))):
                    data = queue.popleft()
                    self._waiting_bytes -= len(data)
                    handler(key[0], key[1], data)
                    budget -= 1
                    if time.monotonic() >= deadline:
                        budget = 0
                        break
                if not queue:
                    del waiting[key]
                continue
            for key, queue in list(waiting.items()):
                data = queue.popleft()
                self._waiting_bytes -= len(data)
                handler(key[0], key[1], data)
                budget -= 1
                del waiting[key]
                if queue:
                    waiting[key] = queue
                if time.monotonic() >= deadline:
                    budget = 0
                if budget == 0:
                    break
        if budget < HAND_PER_TURN and self._on_batch_end is not None:
            self._on_batch_end()
        if waiting:
            self._hand_scheduled = True
            self._loop.call_soon(self._hand)

    def _read(self, sock_id: int, sock: socket.socket) -> int:
        """One datagram per read; how many were queued for the core."""
        handed = 0
        for _ in range(READS_PER_WAKEUP):
            try:
                n, addr = sock.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                # ICMP errors surface here on Linux (ECONNREFUSED...): not fatal.
                if e.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    log.debug("recv on socket %d: %s", sock_id, e)
                continue
            handed += 1
            self._queue((sock_id, self._remote(addr)), bytes(self._view[:n]))
        return handed

    def _read_gro(self, sock_id: int, sock: socket.socket) -> int:
        """Reads that may hold a run of datagrams of ``segment`` bytes (the last shorter);
        how many reads handed datagrams over."""
        handed = 0
        buf = self._gro_buffer
        if buf is None:
            buf = self._gro_buffer = bytearray(GRO_BUFFER)
        view = memoryview(buf)
        queue = self._queue
        for _ in range(READS_PER_WAKEUP):
            try:
                n, ancillary, _, addr = sock.recvmsg_into([buf], self._gro_ancillary)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    log.debug("recv on socket %d: %s", sock_id, e)
                continue
            handed += 1
            key = (sock_id, self._remote(addr))
            segment = 0
            for level, kind, data in ancillary:
                if level == SOL_UDP and kind == UDP_GRO and len(data) >= 4:
                    segment = int.from_bytes(data[:4], sys.byteorder)
            if 0 < segment < n:
                for at in range(0, n, segment):
                    queue(key, bytes(view[at : min(at + segment, n)]))
            else:
                queue(key, bytes(view[:n]))
        return handed

    def send(self, sock_id: int, remote: InetAddress, data: bytes, ttl: int = 0) -> None:
        """Send from ``sock_id``, or from every socket of the right family (-1).

        Datagrams may wait for :meth:`flush` (called after each batch of core
        actions) to leave as one UDP GSO run: consecutive datagrams for the same
        socket id and remote, all as long as the first except the last.
        """
        if ttl or not self._gso:
            self.flush()
            self._send_now(sock_id, remote, data, ttl)
            return
        pending = self._pending
        if pending:
            if (
                self._last_full
                and len(data) <= self._segment
                and len(pending) < MAX_GSO_SEGMENTS
                and (len(pending) + 1) * self._segment <= MAX_GSO_BYTES
                and self._pending_key == (sock_id, remote)
            ):
                pending.append(data)
                self._last_full = len(data) == self._segment
                return
            self.flush()
        self._pending = [data]
        self._pending_key = (sock_id, remote)
        self._segment = len(data)
        self._last_full = True

    def flush(self) -> None:
        """Send what :meth:`send` holds."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        key = self._pending_key
        if len(pending) == 1 or key in self._gso_refused:
            for data in pending:
                self._send_now(key[0], key[1], data, 0)
            return
        route = self._routes.get(key)
        if route is None:
            route = self._route(key[0], key[1])
        control = [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", self._segment))]
        for sock, dest in route:
            try:
                sock.sendmsg(pending, control, 0, dest)
                self.tx_bytes += sum(len(d) for d in pending)
            except OSError as e:
                if e.errno in _GSO_UNSUPPORTED:
                    self._gso = False
                    log.info("UDP GSO unsupported here (%s): sending datagrams one by one", e)
                elif e.errno in (errno.EINVAL, errno.EIO):
                    if len(self._gso_refused) >= 4096:
                        self._gso_refused.clear()
                    self._gso_refused.add(key)  # e.g. a run the path's MTU cannot carry
                elif e.errno == errno.EMSGSIZE:
                    pass  # this run only: one by one
                else:
                    self.send_errors += 1
                    log.debug("send to %s failed: %s", key[1], e)
                    continue
                for data in pending:
                    self._send_one(sock, dest, data, key[1])

    def _send_one(self, sock: socket.socket, dest: Any, data: bytes, remote: InetAddress) -> None:
        try:
            self.tx_bytes += sock.sendto(data, dest)
        except OSError as e:
            self.send_errors += 1
            log.debug("send to %s failed: %s", remote, e)

    def _send_now(self, sock_id: int, remote: InetAddress, data: bytes, ttl: int) -> None:
        if not ttl:
            route = self._routes.get((sock_id, remote))
            if route is None:
                route = self._route(sock_id, remote)
            for sock, dest in route:
                self._send_one(sock, dest, data, remote)
            return
        family = socket.AF_INET if remote.ip.version == 4 else socket.AF_INET6
        dest = (str(remote.ip), remote.port)
        for bound in self._targets(sock_id, family):
            try:
                if bound.family == socket.AF_INET:
                    old = bound.sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
                    bound.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                    try:
                        self.tx_bytes += bound.sock.sendto(data, dest)
                    finally:
                        bound.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, old)
                else:
                    self.tx_bytes += bound.sock.sendto(data, dest)
            except OSError as e:
                self.send_errors += 1
                log.debug("send to %s failed: %s", remote, e)

    def _targets(self, sock_id: int, family: int) -> list[_Bound]:
        if sock_id != ANY_LOCAL_SOCKET and sock_id in self._sockets:
            targets = [self._sockets[sock_id]]
        else:
            targets = list(self._sockets.values())
        return [b for b in targets if b.family == family]

    def _route(self, sock_id: int, remote: InetAddress) -> tuple[tuple[socket.socket, Any], ...]:
        """(socket, destination) pairs for a datagram, remembered per (socket id, remote)."""
        family = socket.AF_INET if remote.ip.version == 4 else socket.AF_INET6
        dest = (str(remote.ip), remote.port)
        route = tuple((b.sock, dest) for b in self._targets(sock_id, family))
        if len(self._routes) >= 4096:
            self._routes.clear()
        self._routes[(sock_id, remote)] = route
        return route


def trial_bind(port: int) -> bool:
    """``_trialBind``: can UDP and TCP both bind ``port`` on 0.0.0.0 (or on ::)?"""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((host, port))
            tcp.bind((host, port))
            return True
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    return False
