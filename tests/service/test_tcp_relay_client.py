"""The daemon's TCP fallback tunnel (ztone.service.tcp_fallback) on loopback.

Against a raw TCP listener: the exact bytes zerotier-one 1.14.1's client writes
(hello, then records), and records as upstream's relay writes them are taken in.
Against ``ztone-relay``: the timing rules (engage after the interval, the 2.5 s
send window, drop back when UDP is heard, forceTcpRelay) and datagrams both ways.
Every address is 127.0.0.1; the relay address is always the test's own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from collections.abc import Callable
from typing import cast

from ztone.node.wire.inetaddress import InetAddress
from ztone.relay.server import RelayLimits, RelayServer
from ztone.service.tcp_fallback import FallbackSettings, TcpFallback

LOOPBACK = "127.0.0.1"
HELLO_1_14_1 = bytes([0x17, 0x03, 0x03, 0x00, 0x04, 0x01, 0x0E, 0x00, 0x01])
AFTER = 5000


def addr(port: int) -> InetAddress:
    return InetAddress(ipaddress.IPv4Address(LOOPBACK), port)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return cond()


def make(clock: Clock, relay_port: int, **kw: bool) -> tuple[TcpFallback, list[tuple[str, bytes]]]:
    got: list[tuple[str, bytes]] = []
    fb = TcpFallback(asyncio.get_running_loop(), lambda a, d: got.append((str(a), d)),
                     lambda: None, (1, 14, 1), clock)  # fmt: skip
    fb.configure(FallbackSettings(relay=addr(relay_port), after=AFTER, any_scope=True, **kw))
    return fb, got


def test_tcp_relay_client_bytes_match_upstream() -> None:
    async def main() -> None:
        received = bytearray()
        writers: list[asyncio.StreamWriter] = []

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            writers.append(w)
            while chunk := await r.read(4096):
                received.extend(chunk)

        server = await asyncio.start_server(handle, LOOPBACK, 0)
        port = server.sockets[0].getsockname()[1]
        clock = Clock()
        fb, got = make(clock, port, force=True)
        packet = bytes(range(32))
        assert fb.send(clock(), addr(9993), packet) is False  # forced: no UDP at all
        assert await until(lambda: fb.active and len(received) >= 9)
        assert fb.send(clock(), addr(9993), packet) is False
        # hello, then 17 03 03 | 32+7 | 04 7f000001 2709 | packet
        expect = HELLO_1_14_1 + bytes([0x17, 0x03, 0x03, 0x00, 39, 4, 127, 0, 0, 1, 0x27, 0x09])
        assert await until(lambda: len(received) >= len(expect) + 32)
        assert bytes(received) == expect + packet
        assert fb.udp_received(clock(), addr(9993), 100) is False  # forced: UDP ignored
        # what upstream's relay writes back: a record naming the source, split anywhere
        back = (bytes([0x17, 0x03, 0x03, 0x00, 27, 4, 127, 0, 0, 1]) + struct.pack(">H", 4444)
                + b"reply-datagram-20...")  # fmt: skip
        writers[0].write(b"\x17\x03\x03\x00\x00")  # an empty record: ignored, as upstream
        for i in range(0, len(back), 5):
            writers[0].write(back[i : i + 5])
            await writers[0].drain()
        writers[0].write(HELLO_1_14_1)  # a hello the client ignores
        assert await until(lambda: len(got) == 1)
        assert got == [("127.0.0.1/4444", b"reply-datagram-20...")]
        # an unknown address type closes the tunnel
        writers[0].write(b"\x17\x03\x03\x00\x08\x09" + bytes(7))
        assert await until(lambda: not fb.active)
        fb.close()
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


class Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, a: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(b"echo:" + data, a)


def test_tcp_relay_client_engages_and_drops_back() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        relay = RelayServer(loop, RelayLimits(), udp_host=LOOPBACK)
        await relay.start([LOOPBACK], 0)
        transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(LOOPBACK, 0))
        echo = addr(int(transport.get_extra_info("sockname")[1]))
        clock = Clock()
        fb, got = make(clock, relay.ports[0])
        data = b"a ZeroTier packet"  # 17 bytes: long enough to count
        try:
            # within the interval after start: UDP only, no tunnel
            assert fb.send(clock(), echo, data) is True
            clock.now += AFTER + 1
            assert fb.send(clock(), echo, data) is True  # last send too long ago
            clock.now += 1000
            assert fb.send(clock(), echo, data) is True  # too soon after the last
            await asyncio.sleep(0.2)
            assert relay.counters.connections_accepted == 0 and not fb.active
            clock.now += 3000  # within (2.5 s, interval): opens the tunnel
            assert fb.send(clock(), echo, data) is True  # still UDP as well
            assert await until(lambda: fb.active and relay.counters.hellos == 1)
            clock.now += 100
            fb.send(clock(), echo, data)
            assert await until(lambda: len(got) == 1)
            assert got[0] == (str(echo), b"echo:" + data)
            # a short datagram does not prove UDP works; a full one does
            fb.udp_received(clock(), echo, 15)
            fb.tick(clock())
            assert fb.active
            fb.udp_received(clock(), echo, 16)
            fb.tick(clock())
            assert not fb.active
            assert await until(lambda: not relay.clients)
            # keepalive: an idle tunnel repeats its hello
            clock.now += AFTER + 1
            fb.send(clock(), echo, data)
            clock.now += 3000
            fb.send(clock(), echo, data)
            assert await until(lambda: fb.active and relay.counters.hellos == 2)
            clock.now += 30_000
            fb.tick(clock())
            assert await until(lambda: relay.counters.hellos == 3)
            # the global-scope rule: loopback does not qualify without the ztone setting
            fb.configure(FallbackSettings(relay=addr(relay.ports[0]), after=AFTER))
            assert fb._qualifies(InetAddress(ipaddress.IPv4Address("198.18.0.1"), 9993)) is False
            assert fb._qualifies(InetAddress(ipaddress.IPv4Address("8.8.8.8"), 9993)) is True
            # disallowing it closes the tunnel
            fb.configure(FallbackSettings(allow=False, relay=addr(relay.ports[0])))
            assert not fb.active
        finally:
            fb.close()
            transport.close()
            await relay.close()

    asyncio.run(main())
