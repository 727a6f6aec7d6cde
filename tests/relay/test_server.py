"""``ztone-relay`` on loopback: a client speaking zerotier-one's tunnel records
(bytes as in test_tcp_relay_framing) through the relay to a UDP echo on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import cast

from ztone.relay.framing import RecordReader, datagram_record, hello_record
from ztone.relay.server import RelayLimits, RelayServer

HELLO = bytes([0x17, 0x03, 0x03, 0x00, 0x04, 0x01, 0x0E, 0x00, 0x01])
LOOPBACK = "127.0.0.1"
LOOPBACK_IP = ipaddress.IPv4Address(LOOPBACK)


class Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: list[tuple[bytes, tuple[str, int]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.append((data, addr))
        assert self.transport is not None
        self.transport.sendto(b"echo:" + data, addr)


Scenario = Callable[[RelayServer, Echo, int], Awaitable[None]]


def run(scenario: Scenario, limits: RelayLimits | None = None) -> RelayServer:
    async def main() -> RelayServer:
        loop = asyncio.get_running_loop()
        relay = RelayServer(loop, limits or RelayLimits(), udp_host=LOOPBACK)
        await relay.start([LOOPBACK], 0)
        echo = Echo()
        transport, _ = await loop.create_datagram_endpoint(lambda: echo,
                                                           local_addr=(LOOPBACK, 0))  # fmt: skip
        echo_port = int(transport.get_extra_info("sockname")[1])
        try:
            await asyncio.wait_for(scenario(relay, echo, echo_port), 20)
        finally:
            transport.close()
            await relay.close()
        return relay

    return asyncio.run(main())


async def read_records(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    cutter = RecordReader()
    out: list[bytes] = []
    while len(out) < n:
        chunk = await reader.read(4096)
        assert chunk, "relay closed the stream"
        out += cutter.feed(chunk)
    return out


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.02)
    return cond()


def test_tcp_relay_forwards_both_ways() -> None:
    async def scenario(relay: RelayServer, echo: Echo, echo_port: int) -> None:
        reader, writer = await asyncio.open_connection(LOOPBACK, relay.ports[0])
        payload = bytes(range(40))
        # the hello, then one datagram for the echo: 17 03 03 | 0x002f | 04 7f000001 port
        writer.write(HELLO + bytes([0x17, 0x03, 0x03, 0x00, 47, 0x04, 127, 0, 0, 1])
                     + struct.pack(">H", echo_port) + payload)  # fmt: skip
        await writer.drain()
        (body,) = await read_records(reader, 1)
        # the reply comes back addressed with its source: the echo's endpoint
        assert body == bytes([0x04, 127, 0, 0, 1]) + struct.pack(">H", echo_port) + (
            b"echo:" + payload
        )
        assert echo.seen[0][0] == payload
        relay_udp_port = echo.seen[0][1][1]
        assert relay_udp_port not in relay.ports  # its own UDP socket, not the TCP port
        # a second client gets a UDP socket of its own
        r2, w2 = await asyncio.open_connection(LOOPBACK, relay.ports[0])
        w2.write(hello_record(1, 14, 1) +
                 datagram_record(LOOPBACK_IP, echo_port, b"second client...."))  # fmt: skip
        await w2.drain()
        await read_records(r2, 1)
        assert echo.seen[1][1][1] != relay_udp_port
        c = relay.counters
        assert (c.hellos, c.to_udp_datagrams, c.to_tcp_datagrams) == (2, 2, 2)
        assert c.to_udp_bytes == 40 + 17 and c.connections_accepted == 2
        writer.close()
        w2.close()
        assert await until(lambda: not relay.clients)

    run(scenario)


def test_tcp_relay_drops_what_upstream_drops() -> None:
    async def scenario(relay: RelayServer, echo: Echo, echo_port: int) -> None:
        reader, writer = await asyncio.open_connection(LOOPBACK, relay.ports[0])
        ip = LOOPBACK_IP
        writer.write(datagram_record(ip, echo_port, bytes(20)))
        writer.write(HELLO)
        writer.write(datagram_record(ip, 1024, bytes(20)))
        writer.write(datagram_record(ip, echo_port, bytes(15)))
        writer.write(b"\x17\x03\x03\x00\x15\x00" + bytes(20))  # no address
        writer.write(datagram_record(ip, echo_port, b"ok" * 10))
        await writer.drain()
        await read_records(reader, 1)
        c = relay.counters
        assert [d for d, _ in echo.seen] == [b"ok" * 10]
        assert (c.dropped_before_hello, c.dropped_destination, c.dropped_size) == (1, 2, 1)
        writer.close()

    run(scenario)


def test_tcp_relay_client_limit_idle_and_rate() -> None:
    async def scenario(relay: RelayServer, echo: Echo, echo_port: int) -> None:
        _, w1 = await asyncio.open_connection(LOOPBACK, relay.ports[0])
        assert await until(lambda: len(relay.clients) == 1)
        r2, _ = await asyncio.open_connection(LOOPBACK, relay.ports[0])
        assert await r2.read() == b""  # refused: one client at most
        assert relay.counters.connections_rejected == 1
        w1.write(HELLO)
        for i in range(10):  # 10 x 100 bytes against a 300-byte burst
            w1.write(datagram_record(LOOPBACK_IP, echo_port, bytes([i]) * 100))
        await w1.drain()
        assert await until(lambda: relay.counters.dropped_rate_limit >= 7)
        assert relay.counters.to_udp_datagrams <= 3
        # silent for the idle timeout: closed, its UDP socket too
        assert await until(lambda: not relay.clients, 5)
        assert relay.counters.connections_closed_idle == 1

    run(scenario, RelayLimits(max_clients=1, rate_bytes_per_second=1, burst_bytes=300,
                              idle_timeout=0.5))  # fmt: skip


def test_tcp_relay_program_starts_and_stops() -> None:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ztone.relay.main", "--listen", LOOPBACK, "--port", str(port)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection((LOOPBACK, port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "counters" in err and '"connections_accepted": 1' in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    bad = subprocess.run([sys.executable, "-m", "ztone.relay.main", "--rate", "-1"],
                         check=False, capture_output=True, text=True, timeout=20)  # fmt: skip
    assert bad.returncode == 2 and "must be 0 or more" in bad.stderr
