"""Client side of the TCP fallback tunnel (docs/TCP-FALLBACK-RELAY.md).

When no UDP has come from a qualifying address (global scope, as zerotier-one; any
address with ``tcpFallbackRelayAnyScope``) for the fallback interval, datagrams for
qualifying IPv4 addresses also go, wrapped in records
(:mod:`ztone.relay.framing`), over one TCP connection to ``tcpFallbackRelay``.
Datagrams the relay wraps back are handed to the core as if received on no
particular socket (``ANY_LOCAL_SOCKET``), from the address the relay names. The
tunnel closes once UDP works again (unless ``forceTcpRelay``).

Time is passed in (milliseconds); the asyncio connection is the only I/O here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ztone.node.bounds import TCP_FALLBACK_QUEUE_BYTES, TCP_FALLBACK_SCOPE_CACHE
from ztone.node.constants import PING_CHECK_INTERVAL
from ztone.node.wire.inetaddress import InetAddress, IpScope
from ztone.relay.framing import (
    Datagram,
    FramingError,
    RecordReader,
    datagram_record,
    hello_record,
    parse_body,
)

log = logging.getLogger(__name__)

MIN_DATAGRAM = 16
CLOCK_JUMP = 10_000  # a tick this late means sleep/suspend: counts as a restart
KEEPALIVE_AFTER = 30_000  # ms without writing to the tunnel before a hello is repeated
CONNECT_TIMEOUT = 10.0

Deliver = Callable[[InetAddress, bytes], None]


@dataclass(frozen=True)
class FallbackSettings:
    allow: bool = True
    force: bool = False
    relay: InetAddress | None = None
    any_scope: bool = False
    after: int = 60_000


class _Tunnel(asyncio.Protocol):
    def __init__(self, owner: TcpFallback) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.reader = RecordReader()
        self.last_write = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.owner.received_bytes += len(data)
        try:
            bodies = self.reader.feed(data)
            records = [parse_body(b) for b in bodies if b]  # empty ones: ignored
        except FramingError as e:
            log.warning("TCP fallback relay sent a bad record (%s): closing the tunnel", e)
            self.close()
            return
        for record in records:
            if isinstance(record, Datagram) and record.endpoint is not None:
                ip, port = record.endpoint
                self.owner.deliver(InetAddress(ip, port), record.data)
        self.owner.batch_end()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.tunnel_lost(self)

    def write(self, data: bytes, now: int) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() + len(data) > TCP_FALLBACK_QUEUE_BYTES:
            return False
        transport.write(data)
        self.owner.sent_bytes += len(data)
        self.last_write = now
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class TcpFallback:
    """Decides per datagram whether it goes by UDP, the tunnel, or both; owns the tunnel."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Deliver,
        batch_end: Callable[[], None],
        version: tuple[int, int, int],
        clock: Callable[[], int],
    ) -> None:
        now = clock()
        self.clock = clock
        self.loop = loop
        self.deliver = deliver
        self.batch_end = batch_end
        self.version = version
        self.settings = FallbackSettings()
        self.last_restart = now
        self.last_tick = now
        self.last_direct_receive = 0
        self.last_send = 0
        self.tunnel: _Tunnel | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._scope_cache: dict[InetAddress, bool] = {}
        self.sent_bytes = 0  # the tunnel's stream, records and all (zt_data tcp)
        self.received_bytes = 0
        self.dropped = 0
        self.connects = 0

    @property
    def active(self) -> bool:
        return self.tunnel is not None

    def configure(self, settings: FallbackSettings) -> None:
        if settings != self.settings:
            self.settings = settings
            self._scope_cache.clear()
            if not settings.allow or settings.relay is None:
                self.close()

    def _qualifies(self, remote: InetAddress) -> bool:
        if self.settings.any_scope:
            return True
        cache = self._scope_cache
        hit = cache.get(remote)
        if hit is None:
            if len(cache) >= TCP_FALLBACK_SCOPE_CACHE:
                cache.clear()
            hit = cache[remote] = remote.scope() == IpScope.GLOBAL
        return hit

    def udp_received(self, now: int, remote: InetAddress, length: int) -> bool:
        """Note a UDP datagram; False when it must be ignored (``forceTcpRelay``)."""
        if self.settings.force:
            return False
        if length >= MIN_DATAGRAM and self._qualifies(remote):
            self.last_direct_receive = now
        return True

    def send(self, now: int, remote: InetAddress, data: bytes) -> bool:
        """Tunnel ``data`` if the rules say so; True when it should also go by UDP."""
        s = self.settings
        if (
            s.allow
            and s.relay is not None
            and len(data) >= MIN_DATAGRAM
            and remote.ip.version == 4
            and self._qualifies(remote)
        ):
            if s.force or (
                now - self.last_direct_receive > s.after and now - self.last_restart > s.after
            ):
                tunnel = self.tunnel
                if tunnel is not None:
                    if not tunnel.write(datagram_record(remote.ip, remote.port, data), now):
                        self.dropped += 1
                elif s.force or PING_CHECK_INTERVAL // 2 < now - self.last_send < s.after:
                    self._connect(s.relay)
            self.last_send = now
        return not s.force

    def tick(self, now: int) -> None:
        """Every fraction of a second: sleep detection, drop back to UDP, keepalive."""
        if now - self.last_tick > CLOCK_JUMP:
            self.last_restart = now
        self.last_tick = now
        tunnel = self.tunnel
        if tunnel is None:
            return
        s = self.settings
        if not s.force and now - self.last_direct_receive < s.after // 2:
            log.info("UDP works again: closing the TCP fallback tunnel")
            self.close()
        elif now - tunnel.last_write >= KEEPALIVE_AFTER:
            tunnel.write(hello_record(*self.version), now)

    def _connect(self, relay: InetAddress) -> None:
        if self._connecting is not None and not self._connecting.done():
            return
        self._connecting = self.loop.create_task(self._open(relay))

    async def _open(self, relay: InetAddress) -> None:
        self.connects += 1
        try:
            _, protocol = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Tunnel(self), relay.ip_string(), relay.port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as e:
            log.info("cannot reach the TCP fallback relay %s: %s", relay, e)
            return
        if self.settings.relay != relay or not self.settings.allow:
            protocol.close()
            return
        if self.tunnel is not None:
            self.tunnel.close()
        self.tunnel = protocol
        protocol.write(hello_record(*self.version), self.clock())
        log.info("UDP seems blocked: tunnelling through the TCP fallback relay %s", relay)

    def tunnel_lost(self, tunnel: _Tunnel) -> None:
        if self.tunnel is tunnel:
            self.tunnel = None
            log.info("TCP fallback tunnel closed")

    def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self.tunnel is not None:
            tunnel, self.tunnel = self.tunnel, None
            tunnel.close()
