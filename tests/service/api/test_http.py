"""The API's HTTP/1.1 server on its own (ztone.service.api.http), with a bare handler.

No router, no daemon: what the server itself guarantees. Parsing (path, query,
headers, bodies of either framing, a missing Host, 100-continue), the exact limits
(one byte under is served, one byte over is refused and the connection closed),
pipelining (answers in request order, one per request, capped per connection) and
the single place a handler's exception becomes a JSON 500.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ztone.service.api.http import ApiServer, Request, Response

TIMEOUT = 5.0


class Served:
    """An ApiServer with ``handler`` in a background event loop, on 127.0.0.1."""

    def __init__(self, handler: Any, **limits: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = ApiServer(handler, **limits)

    def __enter__(self) -> Served:
        self.thread.start()
        started = self.server.start(["127.0.0.1"], 0)
        asyncio.run_coroutine_threadsafe(started, self.loop).result(TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()

    @property
    def port(self) -> int:
        return self.server.bound[0][1]

    def exchange(self, data: bytes) -> bytes:
        """Send ``data``, then read until the server closes the connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            for _ in range(10_000):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out


def answers(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split the bytes of pipelined answers into (status, headers, body)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:length]))
        raw = rest[length:]
    return out


async def echo(request: Request) -> Response:
    """Answers with what it was given, as JSON."""
    seen = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
        "body": request.body.decode("latin-1"),
        "peer": str(request.peer_ip),
    }
    return Response(200, json.dumps(seen).encode())


@pytest.fixture
def served() -> Iterator[Served]:
    with Served(echo, max_header_size=256, max_body_size=100, max_requests=3) as s:
        yield s


def only(raw: bytes) -> tuple[int, dict[str, Any]]:
    ((status, _, body),) = answers(raw)
    return status, json.loads(body)


# --- parsing ---------------------------------------------------------------------------


def test_request_line_headers_and_query(served: Served) -> None:
    raw = (
        b"GET /a%2Fb/%7E?x=1&x=2&flag&y=%20 HTTP/1.1\r\nHost: h\r\n"
        b"X-Dup: first\r\nx-dup: second\r\nCONNECTION: close\r\n\r\n"
    )
    status, seen = only(served.exchange(raw))
    assert status == 200
    assert (seen["method"], seen["path"]) == ("GET", "/a/b/~")
    assert seen["query"] == {"x": "1", "flag": "", "y": " "}
    assert seen["headers"]["x-dup"] == "first"
    assert seen["peer"] == str(ipaddress.ip_address("127.0.0.1"))


def test_no_host_header_is_accepted(served: Served) -> None:
    """zerotier-cli sends HTTP/1.1 without Host; h11 alone would refuse it."""
    status, seen = only(served.exchange(b"GET /status HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert (status, seen["path"]) == (200, "/status")


def test_blank_lines_before_a_request_are_skipped(served: Served) -> None:
    status, _ = only(served.exchange(b"\r\n\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert status == 200


def test_chunked_body_is_reassembled(served: Served) -> None:
    raw = (
        b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    assert only(served.exchange(raw))[1]["body"] == "abcdefg"


def test_expect_100_continue(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT) as s:
        s.sendall(b"PUT /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 ")
        s.sendall(b"{}")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["body"] == "{}"


def test_head_gets_headers_only(served: Served) -> None:
    raw = served.exchange(b"HEAD /x HTTP/1.1\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == b""
    assert b"Content-Length: " in head


# --- limits, exactly -------------------------------------------------------------------


def _head_of(size: int) -> bytes:
    """A request head of exactly ``size`` bytes (blank line included)."""
    base = b"GET / HTTP/1.1\r\nConnection: close\r\nX-Pad: \r\n\r\n"
    return base.replace(b"X-Pad: ", b"X-Pad: " + b"a" * (size - len(base)))


def test_header_limit_is_exact(served: Served) -> None:
    assert len(_head_of(256)) == 256
    assert only(served.exchange(_head_of(256)))[0] == 200
    ((status, headers, body),) = answers(served.exchange(_head_of(257)))
    assert (status, headers["connection"]) == (431, "close")
    assert json.loads(body) == {"error": "request header fields too large"}


@pytest.mark.parametrize("chunked", [False, True])
def test_body_limit_is_exact(served: Served, chunked: bool) -> None:
    def post(size: int) -> bytes:
        body = b"x" * size
        if chunked:
            framing = b"Transfer-Encoding: chunked\r\n"
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (size, body)
        else:
            framing = b"Content-Length: %d\r\n" % size
        return b"POST /p HTTP/1.1\r\nConnection: close\r\n" + framing + b"\r\n" + body

    assert only(served.exchange(post(100)))[1]["body"] == "x" * 100
    ((status, _, body),) = answers(served.exchange(post(101)))
    assert (status, json.loads(body)) == (413, {"error": "request body too large"})


# --- pipelining ------------------------------------------------------------------------


def test_pipelined_answers_come_in_request_order() -> None:
    """The first request is the slowest to answer; the answers still come in order."""

    async def slow_first(request: Request) -> Response:
        await asyncio.sleep({"/1": 0.2, "/2": 0.05}.get(request.path, 0))
        return Response(200, request.path.encode())

    with Served(slow_first) as srv:
        raw = b"".join(b"GET /%d HTTP/1.1\r\n\r\n" % i for i in (1, 2, 3))
        raw += b"GET /4 HTTP/1.1\r\nConnection: close\r\n\r\n"
        got = answers(srv.exchange(raw))
    assert [body for _, _, body in got] == [b"/1", b"/2", b"/3", b"/4"]


def test_requests_per_connection_are_capped(served: Served) -> None:
    """max_requests=3: the third answer says Connection: close, the fourth request
    on that connection is never read."""
    raw = b"".join(b"GET /%d HTTP/1.1\r\n\r\n" % i for i in range(5))
    got = answers(served.exchange(raw))
    assert [json.loads(body)["path"] for _, _, body in got] == ["/0", "/1", "/2"]
    assert [h.get("connection") for _, h, _ in got] == [None, None, "close"]


def test_a_response_may_close_its_connection() -> None:
    async def bye(request: Request) -> Response:
        return Response(200, b"{}", close=request.path == "/bye")

    with Served(bye) as srv:
        got = answers(
            srv.exchange(b"GET /a HTTP/1.1\r\n\r\nGET /bye HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n")
        )
    assert [h.get("connection") for _, h, _ in got] == [None, "close"]


# --- handler errors --------------------------------------------------------------------


def test_handler_exception_is_a_json_500_and_counted() -> None:
    async def broken(request: Request) -> Response:
        raise ValueError('bad "thing"\n')

    with Served(broken) as srv:
        for _ in range(3):
            ((status, _, body),) = answers(
                srv.exchange(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
            )
            assert (status, json.loads(body)) == (
                500,
                {"error": 500, "description": 'bad "thing"\n'},
            )
        assert srv.server.errors.total == 3
