"""``ztone-relay``: the TCP fallback relay (docs/TCP-FALLBACK-RELAY.md).

Each TCP client gets its own UDP socket (so the overlay sees it at the relay's
address and that port). Records from the client are unwrapped and sent from that
socket; datagrams arriving at it are wrapped and written to the client.

Limits (all explicit, see :class:`RelayLimits`): the number of clients; bytes per
second per client (a token bucket over both directions); the unsent bytes queued
to a client (upstream's 128 KiB); a partial record (one record's worth); idle
time (upstream's 300 s). What was dropped and why is counted in
:class:`RelayCounters`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from dataclasses import asdict, dataclass, field

from ztone.relay.framing import (
    Datagram,
    FramingError,
    Hello,
    RecordReader,
    datagram_record,
    parse_body,
)

log = logging.getLogger(__name__)

MIN_DATAGRAM = 16  # both directions: shorter is not a ZeroTier packet
MAX_RELAYED_DATAGRAM = 2047  # UDP -> client, as upstream
MIN_DEST_PORT = 1025  # no relaying to privileged ports (upstream's abuse rule)
UDP_READS_PER_WAKEUP = 64

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RelayLimits:
    max_clients: int = 1024
    rate_bytes_per_second: int = 8_000_000  # 0: no limit
    burst_bytes: int = 1_000_000
    max_write_buffer: int = 131072
    idle_timeout: float = 300.0
    allowed_destinations: tuple[IPNetwork, ...] = ()
    """Empty: any IPv4 destination (as upstream); otherwise only these networks."""


@dataclass
class RelayCounters:
    connections_accepted: int = 0
    connections_rejected: int = 0
    connections_closed_idle: int = 0
    connections_closed_error: int = 0
    hellos: int = 0
    to_udp_datagrams: int = 0
    to_udp_bytes: int = 0
    to_tcp_datagrams: int = 0
    to_tcp_bytes: int = 0
    dropped_rate_limit: int = 0
    dropped_before_hello: int = 0
    dropped_destination: int = 0
    dropped_size: int = 0
    dropped_write_buffer: int = 0
    udp_send_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class TokenBucket:
    """``rate`` bytes per second, up to ``burst`` saved; rate 0 means unlimited."""

    def __init__(self, rate: int, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.tokens = float(self.burst)
        self.stamp = now

    def take(self, n: int, now: float) -> bool:
        if self.rate <= 0:
            return True
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < n:
            return False
        self.tokens -= n
        return True


class _Client(asyncio.Protocol):
    def __init__(self, relay: RelayServer) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.udp: socket.socket | None = None
        self.reader = RecordReader()
        self.said_hello = False
        self.last_activity = time.monotonic()
        self.bucket = TokenBucket(
            relay.limits.rate_bytes_per_second, relay.limits.burst_bytes, self.last_activity
        )
        self.peer = ""

    # -- TCP side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = str(transport.get_extra_info("peername"))
        relay = self.relay
        if len(relay.clients) >= relay.limits.max_clients:
            relay.counters.connections_rejected += 1
            log.info("rejected %s: %d clients already", self.peer, len(relay.clients))
            transport.abort()
            return
        udp: socket.socket | None = None
        try:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.setblocking(False)
            udp.bind((relay.udp_host, 0))
        except OSError as e:
            relay.counters.connections_rejected += 1
            log.warning("rejected %s: no UDP socket (%s)", self.peer, e)
            if udp is not None:
                udp.close()
            transport.abort()
            return
        self.udp = udp
        relay.clients.add(self)
        relay.counters.connections_accepted += 1
        relay.loop.add_reader(udp.fileno(), self._on_udp_readable)
        log.debug("client %s on UDP port %d", self.peer, udp.getsockname()[1])

    def data_received(self, data: bytes) -> None:
        if self.udp is None:
            return
        now = time.monotonic()
        self.last_activity = now
        try:
            bodies = self.reader.feed(data)
        except FramingError as e:
            self.close_with_error(str(e))
            return
        counters = self.relay.counters
        for body in bodies:
            try:
                record = parse_body(body)
            except FramingError:
                # Upstream's relay ignores a record it cannot address.
                counters.dropped_destination += 1
                continue
            if isinstance(record, Hello):
                counters.hellos += 1
                self.said_hello = True
                continue
            self._to_udp(record, now)

    def _to_udp(self, record: Datagram, now: float) -> None:
        counters = self.relay.counters
        if not self.said_hello:
            counters.dropped_before_hello += 1
            return
        endpoint = record.endpoint
        if endpoint is None or endpoint[0].version != 4 or endpoint[1] < MIN_DEST_PORT:
            counters.dropped_destination += 1
            return
        allowed = self.relay.limits.allowed_destinations
        if allowed and not any(endpoint[0] in n for n in allowed):
            counters.dropped_destination += 1
            return
        data = record.data
        if len(data) < MIN_DATAGRAM:
            counters.dropped_size += 1
            return
        if not self.bucket.take(len(data), now):
            counters.dropped_rate_limit += 1
            return
        assert self.udp is not None
        try:
            self.udp.sendto(data, (str(endpoint[0]), endpoint[1]))
        except OSError as e:
            counters.udp_send_errors += 1
            log.debug("UDP send to %s failed: %s", endpoint, e)
            return
        counters.to_udp_datagrams += 1
        counters.to_udp_bytes += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()

    def close_with_error(self, why: str) -> None:
        self.relay.counters.connections_closed_error += 1
        log.info("closing %s: %s", self.peer, why)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._release()

    def _release(self) -> None:
        if self.udp is not None:
            self.relay.loop.remove_reader(self.udp.fileno())
            self.udp.close()
            self.udp = None
        self.relay.clients.discard(self)

    # -- UDP side

    def _on_udp_readable(self) -> None:
        udp, transport = self.udp, self.transport
        if udp is None or transport is None:
            return
        counters = self.relay.counters
        limit = self.relay.limits.max_write_buffer
        for _ in range(UDP_READS_PER_WAKEUP):
            try:
                data, source = udp.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.debug("UDP receive for %s failed: %s", self.peer, e)
                return
            now = time.monotonic()
            if not MIN_DATAGRAM <= len(data) <= MAX_RELAYED_DATAGRAM:
                counters.dropped_size += 1
                continue
            if not self.bucket.take(len(data), now):
                counters.dropped_rate_limit += 1
                continue
            record = datagram_record(ipaddress.IPv4Address(source[0]), source[1], data)
            if transport.get_write_buffer_size() + len(record) > limit:
                counters.dropped_write_buffer += 1
                continue
            self.last_activity = now
            transport.write(record)
            counters.to_tcp_datagrams += 1
            counters.to_tcp_bytes += len(data)


@dataclass
class RelayServer:
    """Accepts tunnel clients on ``hosts``/``port`` until :meth:`close`."""

    loop: asyncio.AbstractEventLoop
    limits: RelayLimits = field(default_factory=RelayLimits)
    udp_host: str = "0.0.0.0"
    counters: RelayCounters = field(default_factory=RelayCounters)
    clients: set[_Client] = field(default_factory=set)
    _server: asyncio.Server | None = None
    _sweeper: asyncio.Task[None] | None = None

    async def start(self, hosts: list[str], port: int) -> None:
        self._server = await self.loop.create_server(
            lambda: _Client(self), host=hosts, port=port, reuse_address=True
        )
        self._sweeper = self.loop.create_task(self._sweep())

    @property
    def ports(self) -> list[int]:
        if self._server is None:
            return []
        return sorted({int(s.getsockname()[1]) for s in self._server.sockets})

    async def _sweep(self) -> None:
        period = max(0.05, min(self.limits.idle_timeout / 4, 30.0))
        while True:
            await asyncio.sleep(period)
            self.close_idle(time.monotonic())

    def close_idle(self, now: float) -> int:
        """Close every client silent for the idle timeout; how many."""
        idle = [c for c in self.clients if now - c.last_activity >= self.limits.idle_timeout]
        for client in idle:
            self.counters.connections_closed_idle += 1
            log.info("closing idle client %s", client.peer)
            client.close()
        return len(idle)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for client in list(self.clients):
            client.close()
        if self._server is not None:
            await self._server.wait_closed()
