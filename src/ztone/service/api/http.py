"""A small asyncio HTTP/1.1 server for the local JSON API, on top of h11 (sans-IO).

One coroutine per TCP connection, keep-alive and pipelining supported. Limits:

* request head (request line and headers) at most ``max_header_size`` bytes (16 KiB),
  else ``431`` and the connection is closed;
* request body at most ``max_body_size`` bytes (1 MiB), else ``413`` and close;
* each request must arrive completely within ``read_timeout`` seconds (30 s) of its
  first byte (an idle keep-alive connection is closed after the same time);
* at most ``max_connections`` (64) connections at once; more are closed at accept.

Malformed HTTP gets ``400`` and the connection is closed. No input makes the server
stop: every connection's errors stay in its own coroutine.

``zerotier-cli`` sends HTTP/1.1 requests without a ``Host`` header (which cpp-httplib,
the reference's server, accepts). h11 refuses those, so a ``Host`` line is added to
such a request head before h11 parses it. Each request is parsed by a fresh
``h11.Connection``; bytes received past the end of a request are handed to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_HOSTS = ("127.0.0.1", "::1")
MAX_HEADER_SIZE = 16 * 1024
MAX_BODY_SIZE = 1024 * 1024
READ_TIMEOUT = 30.0
MAX_CONNECTIONS = 64
_READ_CHUNK = 65536
_BLANK_LINE = re.compile(rb"\n\r?\n")
_UNAVAILABLE_ERRNOS = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT}


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as handlers see it.

    ``path`` is percent-decoded and has no query; ``query`` holds the first value of
    each query parameter (``?a`` gives ``{"a": ""}``); ``headers`` maps lower-case
    names to the first value received under that name.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer_ip: IPAddress


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())


Handler = Callable[[Request], Awaitable[Response]]


class _Reject(Exception):
    """Answer with ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Closed(Exception):
    """The peer went away (or was idle too long) between requests: close quietly."""


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _error_bytes(status: int, message: str) -> bytes:
    """A complete ``Connection: close`` JSON error response, written without h11
    (which may be in an error state by then)."""
    body = ('{"error":' + _json_string(message) + "}").encode("utf-8")
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % (status, _reason(status), len(body))
    )
    return head + body


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _peer_ip(writer: asyncio.StreamWriter) -> IPAddress:
    peer = writer.get_extra_info("peername")
    host = peer[0] if isinstance(peer, tuple) and peer else "0.0.0.0"
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return ipaddress.IPv4Address(0)


def _add_host_if_missing(head: bytes) -> bytes:
    """Give an HTTP/1.1 request head without ``Host`` one (see the module docstring)."""
    first_end = head.find(b"\n")
    request_line = head[:first_end].rstrip(b"\r")
    if not request_line.endswith(b" HTTP/1.1"):
        return head
    for line in head[first_end + 1 :].split(b"\n"):
        if line[:5].lower() == b"host:":
            return head
    return head[: first_end + 1] + b"Host: localhost\r\n" + head[first_end + 1 :]


def _split_target(target: str) -> tuple[str, dict[str, str]]:
    parts = urllib.parse.urlsplit(target)
    path = urllib.parse.unquote(parts.path, errors="replace")
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True, errors="replace"):
        query.setdefault(key, value)
    return path, query


class _Stream:
    """A connection's reader and writer, and whether the current request has begun."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.peer_ip = _peer_ip(writer)
        self.pending = b""
        self.started = False

    async def read(self) -> bytes:
        data = await self.reader.read(_READ_CHUNK)
        if data:
            self.started = True
        return data


class ApiServer:
    """HTTP/1.1 server passing every well-formed request to ``handler``."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT,
        max_header_size: int = MAX_HEADER_SIZE,
        max_body_size: int = MAX_BODY_SIZE,
    ) -> None:
        self._handler = handler
        self._max_connections = max_connections
        self._read_timeout = read_timeout
        self._max_header_size = max_header_size
        self._max_body_size = max_body_size
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.bound: list[tuple[str, int]] = []

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, hosts: Iterable[str] = DEFAULT_HOSTS, port: int = 0) -> None:
        """Listen on every host at ``port`` (0: an ephemeral port, the same for all).

        A host whose address family is unavailable here is skipped with a warning;
        any other bind error closes what was bound and is raised, as is having bound
        nothing at all.
        """
        for host in hosts:
            try:
                server = await asyncio.start_server(self._on_connection, host=host, port=port)
            except OSError as e:
                if e.errno in _UNAVAILABLE_ERRNOS or isinstance(e, socket.gaierror):
                    log.warning("local API: cannot listen on %s (%s), skipped", host, e)
                    continue
                self.close()
                await self.wait_closed()
                raise
            self._servers.append(server)
            for sock in server.sockets:
                name = sock.getsockname()
                self.bound.append((str(name[0]), int(name[1])))
                port = int(name[1])
        if not self._servers:
            raise OSError(errno.EADDRNOTAVAIL, "local API: could not listen on any address")
        log.info("local API listening on %s", ", ".join(f"{h}/{p}" for h, p in self.bound))

    def close(self) -> None:
        """Stop listening and drop every open connection."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        for server in self._servers:
            await server.wait_closed()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- connections -----------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if len(self._tasks) >= self._max_connections or task is None:
            log.debug("local API: too many connections, closing a new one")
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        except Exception:  # never let one connection's trouble escape
            log.exception("local API: unexpected error on a connection")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = _Stream(reader, writer)
        while True:
            stream.started = bool(stream.pending)
            try:
                async with asyncio.timeout(self._read_timeout):
                    request, conn = await self._read_request(stream)
            except _Closed:
                return
            except TimeoutError:
                if stream.started:
                    writer.write(_error_bytes(408, "request timed out"))
                    await writer.drain()
                return
            except _Reject as e:
                writer.write(_error_bytes(e.status, e.message))
                await writer.drain()
                return
            response = await self._dispatch(request)
            self._send_response(conn, writer, request, response)
            await writer.drain()
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            stream.pending = conn.trailing_data[0]

    async def _read_head(self, stream: _Stream) -> tuple[bytes, bytes]:
        """Read up to the end of a request head; return (head, bytes after it)."""
        buf = bytearray(stream.pending)
        stream.pending = b""
        while True:
            # Tolerate empty lines before a request line (RFC 9112 section 2.2).
            while buf[:2] == b"\r\n" or buf[:1] == b"\n":
                del buf[: 2 if buf[:1] == b"\r" else 1]
            match = _BLANK_LINE.search(buf)
            if match is not None:
                if match.end() > self._max_header_size:
                    raise _Reject(431, "request header fields too large")
                return bytes(buf[: match.end()]), bytes(buf[match.end() :])
            if len(buf) > self._max_header_size:
                raise _Reject(431, "request header fields too large")
            data = await stream.read()
            if not data:
                if buf:
                    raise _Reject(400, "incomplete request")
                raise _Closed
            buf += data

    async def _read_request(self, stream: _Stream) -> tuple[Request, h11.Connection]:
        head, rest = await self._read_head(stream)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header_size)
        conn.receive_data(_add_host_if_missing(head) + rest)
        h11_request: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                status = e.error_status_hint if 400 <= e.error_status_hint < 500 else 400
                raise _Reject(status, f"malformed HTTP request: {e}") from e
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    response = h11.InformationalResponse(status_code=100, headers=[])
                    stream.writer.write(conn.send(response) or b"")
                conn.receive_data(await stream.read())
            elif isinstance(event, h11.Request):
                h11_request = event
                length = _content_length(event)
                if length is not None and length > self._max_body_size:
                    raise _Reject(413, "request body too large")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self._max_body_size:
                    raise _Reject(413, "request body too large")
            elif isinstance(event, h11.EndOfMessage) and h11_request is not None:
                return _make_request(h11_request, bytes(body), stream.peer_ip), conn
            else:  # the connection closed, or paused, before the request ended
                raise _Reject(400, "incomplete request")

    async def _dispatch(self, request: Request) -> Response:
        try:
            return await self._handler(request)
        except Exception as e:
            log.exception("local API: handler failed for %s %s", request.method, request.path)
            body = '{"error": 500, "description": ' + _json_string(str(e)) + "}"
            return Response(500, body.encode("utf-8"))

    @staticmethod
    def _send_response(
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        request: Request,
        response: Response,
    ) -> None:
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *response.headers,
        ]
        out = conn.send(
            h11.Response(
                status_code=response.status, headers=headers, reason=_reason(response.status)
            )
        )
        if request.method != "HEAD" and response.body:
            out = (out or b"") + (conn.send(h11.Data(data=response.body)) or b"")
        out = (out or b"") + (conn.send(h11.EndOfMessage()) or b"")
        writer.write(out)


def _content_length(event: h11.Request) -> int | None:
    for name, value in event.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _make_request(event: h11.Request, body: bytes, peer_ip: IPAddress) -> Request:
    headers: dict[str, str] = {}
    for name, value in event.headers:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    path, query = _split_target(event.target.decode("latin-1"))
    return Request(
        method=event.method.decode("latin-1"),
        path=path,
        query=query,
        headers=headers,
        body=body,
        peer_ip=peer_ip,
    )
