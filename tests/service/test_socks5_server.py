"""No-root mode's front-ends in one process: the SOCKS5 server, both kinds of forward
and the relay between asyncio streams and stack TCP sockets (issue 15).

Port a (made by the daemon's factory) and port b are two real user-space stacks on a
segment pumped by the event loop (``userspace_pair``); servers "on the overlay" are
stack listeners on b; local programs are asyncio sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import random
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest

from userspace_pair import A4, B4, B6, NWID, pair, rand_bits
from ztone.osdep.factory import ChoosingTapFactory
from ztone.osdep.userspace import StackListener, StackStream, UserspaceTapFactory
from ztone.service.socks5_codec import Reply, build_udp_datagram, parse_udp_datagram
from ztone.service.userspace import NoRootFrontends
from ztone.service.userspace_conf import parse_userspace_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(body(), 120)

    asyncio.run(main())


async def socks_connect(
    port: int, host: str, dport: int, auth: tuple[str, str] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if auth is None:
        writer.write(b"\x05\x01\x00")
        assert await reader.readexactly(2) == b"\x05\x00"
    else:
        writer.write(b"\x05\x01\x02")
        assert await reader.readexactly(2) == b"\x05\x02"
        u, p = (x.encode() for x in auth)
        writer.write(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        if await reader.readexactly(2) != b"\x01\x00":
            return reader, writer, -1
    ip = ipaddress.ip_address(host)
    atyp = b"\x01" if ip.version == 4 else b"\x04"
    writer.write(b"\x05\x01\x00" + atyp + ip.packed + dport.to_bytes(2, "big"))
    head = await reader.readexactly(4)
    await reader.readexactly(6 if head[3] == 1 else 18)
    return reader, writer, head[1]


async def overlay_server(
    listener: StackListener, handle: Callable[[StackStream], Awaitable[None]], count: int
) -> None:
    for _ in range(count):
        stream = await listener.accept()
        await handle(stream)


async def echo(stream: StackStream) -> None:
    while data := await stream.read():
        await stream.write(data)
    stream.close()


async def frontends(
    settings: dict[str, object],
) -> tuple[NoRootFrontends, UserspaceTapFactory]:
    loop = asyncio.get_running_loop()
    userspace = UserspaceTapFactory(loop, rand=rand_bits(9))
    fronts = NoRootFrontends(ChoosingTapFactory(None, lambda: userspace, lambda nwid: "userspace"))
    conf = parse_userspace_settings(settings)
    assert conf.problems == []
    await fronts.apply(conf)
    return fronts, userspace


def test_socks5_connect_both_families_and_big_transfer() -> None:
    async def body() -> None:
        port = free_port()
        fronts, userspace = await frontends({"socks5": {"port": port}})
        async with pair(userspace) as (_a, b, _):
            fronts.factory.backends[NWID] = "userspace"
            listener = b.host.listen(80)
            server = asyncio.ensure_future(overlay_server(listener, echo, 2))
            for host in (B4, B6):
                reader, writer, code = await socks_connect(port, host, 80)
                assert code == Reply.SUCCEEDED
                data = random.Random(host).randbytes(2 * 1024 * 1024)
                writer.write(data)
                await writer.drain()
                got = await reader.readexactly(len(data))
                assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
                writer.write_eof()
                assert await reader.read() == b""  # half-close went through and back
                writer.close()
            await server
            info = fronts.describe(NWID)
            assert info == {"portBackend": "userspace", "socks5": [f"127.0.0.1:{port}"],
                            "forwards": []}  # fmt: skip
            assert fronts.socks5 is not None and fronts.socks5.served == 2
        await fronts.close()

    run(body)


def test_socks5_refusals() -> None:
    async def body() -> None:
        port = free_port()
        fronts, userspace = await frontends(
            {"socks5": {"port": port, "username": "u", "password": "p"}}
        )
        async with pair(userspace):
            _, w, code = await socks_connect(port, B4, 9, ("u", "p"))  # closed port
            assert code == Reply.CONNECTION_REFUSED
            w.close()
            _, w, code = await socks_connect(port, "203.0.113.1", 80, ("u", "p"))
            assert code == Reply.NETWORK_UNREACHABLE
            w.close()
            _, w, code = await socks_connect(port, B4, 80, ("u", "wrong"))
            assert code == -1
            w.close()
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"\x05\x01\x02" + b"\x01\x01u\x01p" + b"\x05\x02\x00\x01" + bytes(6))  # BIND
            assert await r.read() == b"\x05\x02\x01\x00" + bytes([5, 7, 0, 1]) + bytes(6)
            w.close()
        await fronts.close()

    run(body)


def test_socks5_bounds_connections() -> None:
    async def body() -> None:
        port = free_port()
        fronts, userspace = await frontends({"socks5": {"port": port, "maxConnections": 2}})
        async with pair(userspace):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0.1)
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"\x05\x01\x00")
            try:  # closed at once (reset): two clients already
                assert await r.read() == b""
            except ConnectionResetError:
                pass
            assert fronts.socks5 is not None and fronts.socks5.refused == 1
            for _, hw in held:
                hw.close()
        await fronts.close()

    run(body)


def test_forwards_in_and_out() -> None:
    async def body() -> None:
        local_echo_port = free_port()
        out_port = free_port()

        async def local_echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
            w.close()

        echo_server = await asyncio.start_server(local_echo, "127.0.0.1", local_echo_port)
        nwid = f"{NWID:016x}"
        fronts, userspace = await frontends({"networks": {nwid: {"forwards": [
            {"direction": "in", "listenPort": 2222, "to": f"127.0.0.1:{local_echo_port}"},
            {"direction": "out", "listen": f"127.0.0.1:{out_port}", "to": f"{B4}:7"},
        ]}}})  # fmt: skip
        # "out" listens at once; "in" waits for the port
        assert [f["status"] for f in fronts.describe(NWID)["forwards"]] == [  # type: ignore[index]
            "waiting for the network's user-space port", "listening"]  # fmt: skip
        async with pair(userspace) as (_a, b, _):
            assert fronts.forwards[0].status == "listening"
            # in: b (the overlay) connects to a:2222 and reaches the local echo service
            stream = await b.host.connect(ipaddress.ip_address(A4), 2222)
            data = random.Random(1).randbytes(300_000)
            writer = asyncio.ensure_future(stream.write(data))
            got = bytearray()
            while len(got) < len(data):
                got += await stream.read()
            await writer
            assert bytes(got) == data
            stream.shutdown()
            assert await stream.read() == b""
            stream.close()
            # out: a local client reaches b's overlay echo on port 7 through a
            server = asyncio.ensure_future(overlay_server(b.host.listen(7), echo, 1))
            r, w = await asyncio.open_connection("127.0.0.1", out_port)
            w.write(b"through the forward")
            w.write_eof()
            assert await r.read() == b"through the forward"
            w.close()
            await server
        # the port went away: "in" waits again
        assert fronts.forwards[0].status == "waiting for the network's user-space port"
        await fronts.close()
        echo_server.close()

    run(body)


def test_bad_forward_port_is_reported_not_fatal() -> None:
    async def body() -> None:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        forward = {"direction": "out", "listen": f"127.0.0.1:{port}", "to": f"{B4}:7"}
        fronts, _ = await frontends(
            {"socks5": {"port": port}, "networks": {f"{NWID:016x}": {"forwards": [forward]}}}
        )
        assert fronts.socks5 is None  # could not bind: logged, left out
        assert fronts.forwards[0].status.startswith("cannot listen")
        await fronts.close()
        taken.close()

    run(body)


@pytest.mark.parametrize("who", ["local", "overlay"])
def test_reset_propagates(who: str) -> None:
    async def body() -> None:
        port = free_port()
        fronts, userspace = await frontends({"socks5": {"port": port}})
        async with pair(userspace) as (_, b, _):
            accepted: asyncio.Future[StackStream] = asyncio.get_running_loop().create_future()
            listener = b.host.listen(80)

            async def keep() -> None:
                accepted.set_result(await listener.accept())

            task = asyncio.ensure_future(keep())
            reader, writer, code = await socks_connect(port, B4, 80)
            assert code == 0
            stream = await accepted
            await task
            if who == "local":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()  # with linger 0: a TCP RST
                with pytest.raises(ConnectionError):
                    for _ in range(200):
                        if await stream.read() == b"":
                            break
                        await asyncio.sleep(0.01)
            else:
                stream.abort()
                with pytest.raises(ConnectionError):
                    await reader.readexactly(1)
        await fronts.close()

    run(body)


def test_idle_connection_is_closed() -> None:
    async def body() -> None:
        port = free_port()
        fronts, userspace = await frontends({"socks5": {"port": port, "idleTimeout": 1}})
        async with pair(userspace) as (_a, b, _):
            accepted: asyncio.Future[StackStream] = asyncio.get_running_loop().create_future()
            listener = b.host.listen(80)

            async def keep() -> None:
                accepted.set_result(await listener.accept())

            task = asyncio.ensure_future(keep())
            reader, writer, code = await socks_connect(port, B4, 80)
            assert code == 0
            stream = await accepted
            await task
            # nobody sends anything: both sides are closed (reset) by the relay
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await asyncio.wait_for(reader.readexactly(1), 30)
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(stream.read(), 30)
            writer.close()
        await fronts.close()

    run(body)


def test_udp_associate() -> None:
    async def body() -> None:
        port = free_port()
        fronts, userspace = await frontends({"socks5": {"port": port}})
        loop = asyncio.get_running_loop()
        async with pair(userspace) as (_a, b, _):
            echo = b.host.stack.udp_bind(5353)

            def answer() -> None:  # b's UDP echo on the overlay
                while (got := echo.recvfrom()) is not None:
                    echo.sendto(b"echo:" + got[0], got[1], b.host.now())
                b.host.kick()

            b.host.watch(echo, answer)
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"\x05\x01\x00" + b"\x05\x03\x00\x01" + bytes(6))
            head = await r.readexactly(12)
            assert head[:6] == b"\x05\x00" + b"\x05\x00\x00\x01"
            assert head[6:10] == bytes([127, 0, 0, 1])
            relay_port = int.from_bytes(head[10:12], "big")
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.setblocking(False)
            client.bind(("127.0.0.1", 0))
            for host in (B4, B6):
                ip = ipaddress.ip_address(host)
                client.sendto(build_udp_datagram(ip, 5353, b"ping " + host.encode()),
                              ("127.0.0.1", relay_port))  # fmt: skip
                data = await asyncio.wait_for(loop.sock_recv(client, 4096), 10)
                assert parse_udp_datagram(data) == (ip, 5353, b"echo:ping " + host.encode())
            # a host name and a fragment are dropped, nothing comes back; the relay goes on
            client.sendto(b"\x00\x00\x01\x01" + ipaddress.ip_address(B4).packed + b"\x14\xe9x",
                          ("127.0.0.1", relay_port))  # fmt: skip
            client.sendto(build_udp_datagram(ipaddress.ip_address(B4), 5353, b"again"),
                          ("127.0.0.1", relay_port))  # fmt: skip
            data = await asyncio.wait_for(loop.sock_recv(client, 4096), 10)
            assert parse_udp_datagram(data)[2] == b"echo:again"
            w.close()  # ends the association
            client.close()
            echo.close()
        await fronts.close()

    run(body)
