"""UDP sockets read with ``loop.add_reader`` into preallocated buffers (DESIGN.md).

Each bound socket gets a small integer id, the "local socket" the core sees. A
readable socket is drained of many datagrams per wakeup with ``recvfrom_into``;
the stock ``DatagramProtocol`` path allocates per datagram and is slower.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ztone.node.actions import ANY_LOCAL_SOCKET
from ztone.node.inetaddress import InetAddress

log = logging.getLogger(__name__)

BUFFER_SIZE = 1 << 20  # ZT_UDP_DESIRED_BUF_SIZE
MAX_DATAGRAM = 16384
READS_PER_WAKEUP = 64

DatagramHandler = Callable[[int, InetAddress, bytes], None]


@dataclass
class _Bound:
    sock: socket.socket
    family: int
    local: InetAddress


class UdpSockets:
    """The node's UDP sockets: bind, receive into the core, send its datagrams."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: DatagramHandler) -> None:
        self._loop = loop
        self._handler = handler
        self._sockets: dict[int, _Bound] = {}
        self._next_id = 1
        self._buffer = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buffer)
        self._addr_cache: dict[tuple[str, int], InetAddress] = {}
        self._routes: dict[tuple[int, InetAddress], tuple[tuple[socket.socket, Any], ...]] = {}
        self.send_errors = 0

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
        self._sockets[sock_id] = _Bound(sock, family, InetAddress(ip, bound_port))
        self._routes.clear()
        self._loop.add_reader(sock.fileno(), self._on_readable, sock_id)
        return sock_id

    def close(self) -> None:
        for bound in self._sockets.values():
            self._loop.remove_reader(bound.sock.fileno())
            bound.sock.close()
        self._sockets.clear()
        self._routes.clear()

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

    def _on_readable(self, sock_id: int) -> None:
        bound = self._sockets.get(sock_id)
        if bound is None:
            return
        sock = bound.sock
        for _ in range(READS_PER_WAKEUP):
            try:
                n, addr = sock.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # ICMP errors surface here on Linux (ECONNREFUSED...): not fatal.
                if e.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    log.debug("recv on socket %d: %s", sock_id, e)
                continue
            self._handler(sock_id, self._remote(addr), bytes(self._view[:n]))

    def send(self, sock_id: int, remote: InetAddress, data: bytes, ttl: int = 0) -> None:
        """Send from ``sock_id``, or from every socket of the right family (-1)."""
        if not ttl:
            route = self._routes.get((sock_id, remote))
            if route is None:
                route = self._route(sock_id, remote)
            for sock, dest in route:
                try:
                    sock.sendto(data, dest)
                except OSError as e:
                    self.send_errors += 1
                    log.debug("send to %s failed: %s", remote, e)
            return
        family = socket.AF_INET if remote.ip.version == 4 else socket.AF_INET6
        dest = (str(remote.ip), remote.port)
        for bound in self._targets(sock_id, family):
            try:
                if bound.family == socket.AF_INET:
                    old = bound.sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
                    bound.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                    try:
                        bound.sock.sendto(data, dest)
                    finally:
                        bound.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, old)
                else:
                    bound.sock.sendto(data, dest)
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
