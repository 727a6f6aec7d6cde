"""The SOCKS5 server of no-root mode: local applications into the overlay (issue 15).

An asyncio server (by default on 127.0.0.1:1080) speaking RFC 1928 with optional
RFC 1929 user/password (the handshake is :mod:`ztone.service.socks5_codec`). CONNECT
to an IPv4 or IPv6 overlay address goes into the user-space stack of the network whose
routes or addresses contain it (the most specific; a per-network server only into its
own network), then :func:`ztone.service.stack_relay.relay` copies both ways. Replies:
no network reaches the address -> 0x03 network unreachable; refused -> 0x05; timed
out -> 0x04 host unreachable; BIND -> 0x07 command not supported.

UDP ASSOCIATE: the server opens a UDP relay socket on its own bind address and answers
with its port; datagrams from the client's IP (from the first source port it uses, or
the one it announced) go to their destination through a UDP socket of the routed
network's stack (one per network per association); datagrams arriving there come back
with the sender's address in the SOCKS5 UDP header. The association ends with its TCP
connection or after ``idleTimeout`` seconds without a datagram; fragmented datagrams
and host names are dropped.

Bounds: at most ``maxConnections`` clients at once (more are closed at accept), the
handshake must complete within :data:`HANDSHAKE_TIMEOUT` seconds, a connection attempt
within :data:`CONNECT_TIMEOUT`, and a relayed connection closes after ``idleTimeout``
seconds without a byte.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from ztone.errors import LocalUsageError
from ztone.netstack.udp_socket import UdpSocket
from ztone.node.wire.inetaddress import IPAddress
from ztone.osdep.userspace import StackStream, UserspaceTap
from ztone.service.socks5_codec import (
    BadDatagram,
    Command,
    Failure,
    Reply,
    Request,
    Socks5Handshake,
    build_udp_datagram,
    parse_udp_datagram,
    reply,
)
from ztone.service.stack_relay import cancel_and_wait, relay
from ztone.service.userspace_conf import Socks5Settings

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 20.0

Router = Callable[[IPAddress], UserspaceTap | None]


class Socks5Server:
    """One listening SOCKS5 server; ``route(ip)`` finds the port for a destination."""

    def __init__(self, settings: Socks5Settings, route: Router, label: str = "socks5") -> None:
        self.settings = settings
        self.route = route
        self.label = label
        self.server: asyncio.Server | None = None
        self.active = 0
        self.refused = 0
        self.served = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        ip = self.settings.bind
        return f"[{ip}]:{self.settings.port}" if ip.version == 6 else f"{ip}:{self.settings.port}"

    async def start(self) -> None:
        """Listen; ``OSError`` if the address cannot be bound."""
        self.server = await asyncio.start_server(
            self._client, str(self.settings.bind), self.settings.port, limit=64 * 1024
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        await cancel_and_wait(self._tasks)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.settings.max_connections:
            self.refused += 1
            writer.transport.abort()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.active += 1
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError, TimeoutError):
            writer.transport.abort()
        except asyncio.CancelledError:
            # The server is closing: this task is the connection's own (asyncio's
            # start_server made it), nothing awaits it, so it ends quietly.
            writer.transport.abort()
        finally:
            self.active -= 1
            if task is not None:
                self._tasks.discard(task)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[Request | None, bytes]:
        shake = Socks5Handshake(self.settings.auth)
        while True:
            data = await reader.read(4096)
            if not data:
                return None, b""
            answer, outcome = shake.receive(data)
            if answer:
                writer.write(answer)
                await writer.drain()
            if isinstance(outcome, Failure):
                log.info("%s: client refused: %s", self.label, outcome.reason)
                return None, b""
            if isinstance(outcome, Request):
                return outcome, shake.leftover()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request, leftover = await asyncio.wait_for(
            self._handshake(reader, writer), HANDSHAKE_TIMEOUT
        )
        if request is None:
            writer.close()
            return
        if request.command is Command.UDP_ASSOCIATE:
            await self._associate(reader, writer, request)
            return
        if request.command is not Command.CONNECT:
            writer.write(reply(Reply.COMMAND_NOT_SUPPORTED))
            await writer.drain()
            writer.close()
            return
        code, stream = await self._connect(request.host, request.port)
        if stream is None:
            writer.write(reply(code))
            await writer.drain()
            writer.close()
            return
        writer.write(reply(Reply.SUCCEEDED, stream.local))
        await writer.drain()
        self.served += 1
        await relay(reader, writer, stream, float(self.settings.idle_timeout), leftover)

    async def _associate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request
    ) -> None:
        loop = asyncio.get_running_loop()
        peer = writer.get_extra_info("peername")
        client_ip = ipaddress.ip_address(peer[0])
        assoc = UdpAssociation(self.route, client_ip, request.port)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: assoc, local_addr=(str(self.settings.bind), 0)
        )
        try:
            host, port = transport.get_extra_info("sockname")[:2]
            writer.write(reply(Reply.SUCCEEDED, (ipaddress.ip_address(host), int(port))))
            await writer.drain()
            self.served += 1
            idle = float(self.settings.idle_timeout)
            while time.monotonic() - assoc.last_activity < idle:
                try:
                    if not await asyncio.wait_for(reader.read(4096), min(idle, 5.0)):
                        break  # the client closed the association's connection
                except TimeoutError:
                    continue
        finally:
            assoc.close()
            transport.close()
            writer.close()

    async def _connect(self, host: IPAddress, port: int) -> tuple[Reply, StackStream | None]:
        tap = self.route(host)
        if tap is None or tap.closed:
            return Reply.NETWORK_UNREACHABLE, None
        try:
            return Reply.SUCCEEDED, await tap.host.connect(host, port, CONNECT_TIMEOUT)
        except LocalUsageError:
            return Reply.NETWORK_UNREACHABLE, None
        except ConnectionRefusedError:
            return Reply.CONNECTION_REFUSED, None
        except ConnectionError as e:
            if "timed out" in str(e):
                return Reply.HOST_UNREACHABLE, None
            return Reply.GENERAL_FAILURE, None


class UdpAssociation(asyncio.DatagramProtocol):
    """One UDP ASSOCIATE relay (see the module); counts what it dropped."""

    def __init__(self, route: Router, client_ip: IPAddress, client_port: int) -> None:
        self.route = route
        self.client_ip = client_ip
        self.client: tuple[str, int] | None = None
        self.announced_port = client_port  # 0: the first datagram's source port
        self.transport: asyncio.DatagramTransport | None = None
        self.sockets: dict[int, tuple[UserspaceTap, UdpSocket]] = {}
        self.dropped = 0
        self.relayed = 0
        self.last_activity = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport is not declared a DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        source = (str(addr[0]), int(addr[1]))
        try:
            from_client = ipaddress.ip_address(source[0].split("%")[0]) == self.client_ip
        except ValueError:
            from_client = False
        if not from_client or (self.announced_port and source[1] != self.announced_port):
            self.dropped += 1
            return
        if self.client is None:
            self.client = source
        elif source != self.client:
            self.dropped += 1
            return
        try:
            host, port, payload = parse_udp_datagram(data)
            tap = self.route(host)
            if tap is None or tap.closed or port == 0:
                raise BadDatagram(f"no network reaches {host}")
            sock = self._socket(tap)
            sock.sendto(payload, (host, port), tap.host.now())
        except (BadDatagram, LocalUsageError) as e:
            log.debug("socks5 udp: dropped a datagram: %s", e)
            self.dropped += 1
            return
        tap.host.kick()
        self.relayed += 1
        self.last_activity = time.monotonic()

    def _socket(self, tap: UserspaceTap) -> UdpSocket:
        entry = self.sockets.get(tap.nwid)
        if entry is not None and entry[0] is tap and not entry[1].closed:
            return entry[1]
        sock = tap.host.stack.udp_bind()
        self.sockets[tap.nwid] = (tap, sock)
        tap.host.watch(sock, lambda: self._from_overlay(tap, sock))
        return sock

    def _from_overlay(self, tap: UserspaceTap, sock: UdpSocket) -> None:
        while (got := sock.recvfrom()) is not None:
            payload, (ip, port) = got
            if self.transport is None or self.client is None:
                continue
            self.transport.sendto(build_udp_datagram(ip, port, payload), self.client)
            self.last_activity = time.monotonic()

    def close(self) -> None:
        for tap, sock in self.sockets.values():
            tap.host.unwatch(sock)
            if not sock.closed:
                sock.close()
        self.sockets.clear()


__all__ = ["CONNECT_TIMEOUT", "HANDSHAKE_TIMEOUT", "Socks5Server", "UdpAssociation"]
