"""The SOCKS5 server of no-root mode: local applications into the overlay (issue 15).

An asyncio server (by default on 127.0.0.1:1080) speaking RFC 1928 with optional
RFC 1929 user/password (the handshake is :mod:`ztone.service.socks5_codec`). CONNECT
to an IPv4 or IPv6 overlay address goes into the user-space stack of the network whose
routes or addresses contain it (the most specific; a per-network server only into its
own network), then :func:`ztone.service.stack_relay.relay` copies both ways. Replies:
no network reaches the address -> 0x03 network unreachable; refused -> 0x05; timed
out -> 0x04 host unreachable; BIND and UDP ASSOCIATE -> 0x07 command not supported.

Bounds: at most ``maxConnections`` clients at once (more are closed at accept), the
handshake must complete within :data:`HANDSHAKE_TIMEOUT` seconds, a connection attempt
within :data:`CONNECT_TIMEOUT`, and a relayed connection closes after ``idleTimeout``
seconds without a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ztone.errors import LocalUsageError
from ztone.node.wire.inetaddress import IPAddress
from ztone.osdep.userspace import StackStream, UserspaceTap
from ztone.service.socks5_codec import (
    Command,
    Failure,
    Reply,
    Request,
    Socks5Handshake,
    reply,
)
from ztone.service.stack_relay import relay
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
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

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


__all__ = ["CONNECT_TIMEOUT", "HANDSHAKE_TIMEOUT", "Socks5Server"]
