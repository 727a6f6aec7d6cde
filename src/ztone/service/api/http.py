"""A small asyncio HTTP/1.1 server for the local JSON API, on top of h11 (sans-IO).

One coroutine per TCP connection, keep-alive and pipelining supported. The API shares
the event loop with the data path and listens to every local process, so no client
may hold it, or the loop, for long. Limits (constructor arguments, defaults here):

=========================  ==========  ===============================================
limit                      default     when it is hit
=========================  ==========  ===============================================
``max_header_size``        16 KiB      request head larger: ``431``, close
``max_body_size``          1 MiB       request body larger: ``413``, close
``head_timeout``           5 s         the whole head must arrive within this time of
                                       the connection being ready for a request
                                       (accepted, or the previous answer written);
                                       idle: closed quietly, partial head: ``408``
``request_timeout``        10 s        head and body together, same start: ``408``
``write_timeout``          5 s         a client that takes no bytes of our answers
                                       for this long is dropped (reset)
``max_connections``        64          a new connection sheds an old one (below)
``max_requests``           100         answers per connection, then ``Connection:
                                       close``
write buffer               64 KiB      answers queued unread: reading stops until
                                       the client takes them (``write_timeout``)
read buffer                16 KiB      read at a time; the socket is not read while
                                       32 KiB wait unparsed
=========================  ==========  ===============================================

The 5 s timeouts are those of cpp-httplib, the reference's server, so no client that
works with zerotier-one is cut off sooner here; zerotier-cli sends each request at
once on a new connection.

Shedding: when ``max_connections`` are open a new connection is still accepted and
an old one is dropped instead: among connections that never sent a valid token
(``Response.trusted``), then among the others, the one whose current request cycle
(idle wait, head, body, answer) began earliest. Idle and slow connections are old
by the time the cap is reached, so a client that connects and sends its request at
once is served whatever other local processes hold; to shed it an attacker would
have to open ``max_connections`` new connections within that request's
milliseconds.

Pipelining: requests are read from one buffer with a moving offset (no copy of the
rest of the buffer per request), answered in order, and after each answer the loop
is yielded to, so a pipelined backlog never holds up datagrams or other
connections. A ``401`` answer closes the connection (``Connection: close``): a
request without a valid token costs one head parse and one small write, and the
rest of its connection's backlog is never parsed.

Malformed HTTP gets ``400`` and the connection is closed. No input makes the server
stop: an exception a handler did not expect becomes ``500 {"error": 500,
"description": ...}`` in one place (:meth:`ApiServer._dispatch`); its traceback is
logged once per kind of error, repeats are counted and summed up at most once a
minute.

``zerotier-cli`` sends HTTP/1.1 requests without a ``Host`` header (which cpp-httplib,
the reference's server, accepts). h11 refuses those, so a ``Host`` line is added to
such a request head before h11 parses it. Each request is parsed by a fresh
``h11.Connection`` fed exactly its head, then its body in slices.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import ipaddress
import json
import logging
import re
import socket
import struct
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import h11

from ztone.service.api.reasons import reason

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_HOSTS = ("127.0.0.1", "::1")
MAX_HEADER_SIZE = 16 * 1024
MAX_BODY_SIZE = 1024 * 1024
HEAD_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0
WRITE_TIMEOUT = 5.0
MAX_CONNECTIONS = 64
MAX_REQUESTS = 100
WRITE_BUFFER_HIGH = 64 * 1024
ERROR_SUMMARY_INTERVAL = 60.0
MAX_ERROR_KINDS = 64
# Bytes read at a time, and the reader's buffer limit (it stops reading the socket
# at twice this): small buffers per connection keep a flood of connections from
# leaving the process tens of megabytes larger (measured: +31 MB with 64 KiB).
_READ_CHUNK = 16 * 1024
_FEED = 16 * 1024  # body bytes handed to h11 at a time (bounds what it hands back)
_BLANK_LINE = re.compile(rb"\n\r?\n")
_SIOCOUTQ: int | None = 0x5411 if sys.platform.startswith("linux") else None  # = TIOCOUTQ
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
    """An answer; ``close`` ends the connection after it (``Connection: close``);
    ``trusted`` says the request carried a valid token (its connection is shed last)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())
    close: bool = False
    trusted: bool = False


Handler = Callable[[Request], Awaitable[Response]]


class _Reject(Exception):
    """Answer with ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Closed(Exception):
    """The peer went away between requests: close quietly."""


def _error_bytes(status: int, message: str) -> bytes:
    """A complete ``Connection: close`` JSON error response, written without h11
    (which may be in an error state by then)."""
    body = ('{"error":' + _json_string(message) + "}").encode("utf-8")
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % (status, reason(status), len(body))
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


class ErrorReport:
    """Unexpected errors, logged without flooding the log.

    The first error of each kind (exception type and the place it was raised) is
    logged with its traceback; later ones of a known kind only count, and the count
    is logged at most once per ``interval`` seconds. At most ``max_kinds`` kinds are
    remembered (a caller cannot grow this without bound); past that every error just
    counts.
    """

    def __init__(
        self, interval: float = ERROR_SUMMARY_INTERVAL, max_kinds: int = MAX_ERROR_KINDS
    ) -> None:
        self._interval = interval
        self._max_kinds = max_kinds
        self._kinds: set[tuple[str, str, int]] = set()
        self._repeats = 0
        self._last_summary = time.monotonic()
        self.total = 0

    def report(self, what: str, error: BaseException) -> None:
        self.total += 1
        kind = _error_kind(error)
        if kind not in self._kinds and len(self._kinds) < self._max_kinds:
            self._kinds.add(kind)
            log.error("local API: %s: %r", what, error, exc_info=error)
        else:
            self._repeats += 1
        now = time.monotonic()
        if self._repeats and now - self._last_summary >= self._interval:
            log.error(
                "local API: %d more unexpected errors of kinds logged before (last: %s: %r)",
                self._repeats,
                what,
                error,
            )
            self._repeats = 0
            self._last_summary = now


def _error_kind(error: BaseException) -> tuple[str, str, int]:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return (type(error).__qualname__, "", 0)
    return (type(error).__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)


_IDLE, _READING, _ANSWERING = 0, 1, 2  # _IDLE: nothing of a request received yet


class _Conn:
    """What shedding needs to know about one open connection."""

    __slots__ = ("since", "state", "task", "trusted", "writer")

    def __init__(self, task: asyncio.Task[None], writer: asyncio.StreamWriter) -> None:
        self.task = task
        self.writer = writer
        self.state = _IDLE
        self.since = time.monotonic()
        self.trusted = False  # a request on it carried a valid token

    def shed_rank(self) -> tuple[bool, float]:
        """Lower goes first: connections without a valid token before those with
        one, then the one whose current request cycle began earliest."""
        return (self.trusted, self.since)


class _Stream:
    """A connection's reader and writer, and its receive buffer.

    Bytes before ``pos`` are consumed; the buffer is compacted only when more than
    half of it is, so each byte is copied a bounded number of times however many
    requests are pipelined in it.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.peer_ip = _peer_ip(writer)
        self.buf = bytearray()
        self.pos = 0

    def buffered(self) -> int:
        return len(self.buf) - self.pos

    async def fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream."""
        data = await self.reader.read(_READ_CHUNK)
        if not data:
            return False
        if self.pos and self.pos * 2 >= len(self.buf):
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += data
        self.conn.state = _READING
        return True

    def take(self, n: int) -> bytes:
        chunk = bytes(self.buf[self.pos : self.pos + n])
        self.pos += len(chunk)
        return chunk


class ApiServer:
    """HTTP/1.1 server passing every well-formed request to ``handler``."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        head_timeout: float = HEAD_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        max_requests: int = MAX_REQUESTS,
        max_header_size: int = MAX_HEADER_SIZE,
        max_body_size: int = MAX_BODY_SIZE,
    ) -> None:
        self._handler = handler
        self._max_connections = max_connections
        self._head_timeout = head_timeout
        self._request_timeout = max(request_timeout, head_timeout)
        self._write_timeout = write_timeout
        self._max_requests = max_requests
        self._max_header_size = max_header_size
        self._max_body_size = max_body_size
        self._servers: list[asyncio.Server] = []
        self._conns: dict[asyncio.Task[None], _Conn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors = ErrorReport()
        self.shed = 0
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
                server = await asyncio.start_server(
                    self._on_connection, host=host, port=port, limit=_READ_CHUNK
                )
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

    @property
    def open_connections(self) -> int:
        """Connections counted against ``max_connections`` (shed ones are not)."""
        return len(self._conns)

    # --- connections -----------------------------------------------------------------

    def _shed_one(self) -> bool:
        """Drop the open connection that matters least (module docstring); False if none."""
        if not self._conns:
            return False
        victim = min(self._conns.values(), key=_Conn.shed_rank)
        del self._conns[victim.task]
        victim.task.cancel()
        self.shed += 1
        return True

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        while task is not None and len(self._conns) >= self._max_connections:
            if not self._shed_one():
                break
        if task is None or len(self._conns) >= self._max_connections:
            writer.transport.abort()
            return
        conn = _Conn(task, writer)
        self._conns[task] = conn
        self._tasks.add(task)
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        finished = False
        try:
            await self._serve(_Stream(reader, writer, conn))
            finished = True
        except (asyncio.CancelledError, ConnectionError, OSError, TimeoutError):
            pass  # shed, closed by the client, or it stopped taking our answers
        except Exception as e:  # never let one connection's trouble escape
            self.errors.report("unexpected error on a connection", e)
        finally:
            self._conns.pop(task, None)
            self._tasks.discard(task)
            await self._close(writer, finished)

    async def _close(self, writer: asyncio.StreamWriter, graceful: bool) -> None:
        """After a finished exchange, let the last answer go out (for at most
        ``write_timeout``) and close; otherwise, or if that times out, reset at once
        (a peer that stopped reading would hold a graceful close open forever)."""
        transport = writer.transport
        if graceful and not transport.is_closing():
            writer.close()
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                await self._while_taken(transport, writer.wait_closed)
        transport.abort()  # nothing if already closed

    async def _while_taken(
        self, transport: asyncio.WriteTransport, wait: Callable[[], Awaitable[None]]
    ) -> None:
        """``await wait()`` as long as the peer takes some of our queued bytes every
        ``write_timeout``; TimeoutError once it took none for that long."""
        while True:
            queued = _unsent(transport)
            try:
                async with asyncio.timeout(self._write_timeout):
                    await wait()
                return
            except TimeoutError:
                if _unsent(transport) >= queued:
                    raise

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Queue ``data``; while too much is queued, wait for the peer to take it
        (TimeoutError if it takes nothing for ``write_timeout``)."""
        writer.write(data)
        await self._while_taken(writer.transport, writer.drain)

    async def _serve(self, stream: _Stream) -> None:
        loop = asyncio.get_running_loop()
        conn = stream.conn
        for served in range(1, self._max_requests + 1):
            conn.state = _READING if stream.buffered() else _IDLE
            conn.since = time.monotonic()
            start = loop.time()
            try:
                async with asyncio.timeout_at(start + self._head_timeout):
                    head = await self._read_head(stream)
                async with asyncio.timeout_at(start + self._request_timeout):
                    request, h11_conn = await self._read_request(stream, head)
            except _Closed:
                return
            except TimeoutError:
                if conn.state != _IDLE:
                    await self._send(stream.writer, _error_bytes(408, "request timed out"))
                return
            except _Reject as e:
                await self._send(stream.writer, _error_bytes(e.status, e.message))
                return
            conn.state = _ANSWERING
            response = await self._dispatch(request)
            close = response.close or served == self._max_requests
            conn.trusted = conn.trusted or response.trusted
            data = self._response_bytes(h11_conn, request, response, close)
            await self._send(stream.writer, data)
            if h11_conn.our_state is not h11.DONE or h11_conn.their_state is not h11.DONE:
                return
            # Let datagrams and other connections in between pipelined requests.
            await asyncio.sleep(0)

    async def _read_head(self, stream: _Stream) -> bytes:
        """Read up to the end of a request head and take it from the buffer."""
        searched = 0  # bytes after ``pos`` already searched for the blank line
        while True:
            buf = stream.buf
            # Tolerate empty lines before a request line (RFC 9112 section 2.2).
            while stream.pos < len(buf):
                if buf[stream.pos] == 0x0A:
                    stream.pos += 1
                elif buf[stream.pos : stream.pos + 2] == b"\r\n":
                    stream.pos += 2
                else:
                    break  # a request line, or a lone CR (then wait for what follows)
            # A blank line may span two reads: search again from 3 bytes back.
            start = stream.pos + max(0, min(searched, stream.buffered()) - 3)
            match = _BLANK_LINE.search(buf, start)
            if match is not None:
                if match.end() - stream.pos > self._max_header_size:
                    raise _Reject(431, "request header fields too large")
                return stream.take(match.end() - stream.pos)
            if stream.buffered() > self._max_header_size:
                raise _Reject(431, "request header fields too large")
            searched = stream.buffered()
            if not await stream.fill():
                if stream.buffered():
                    raise _Reject(400, "incomplete request")
                raise _Closed

    async def _read_request(self, stream: _Stream, head: bytes) -> tuple[Request, h11.Connection]:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header_size)
        conn.receive_data(_add_host_if_missing(head))
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
                if not stream.buffered() and not await stream.fill():
                    conn.receive_data(b"")
                else:
                    conn.receive_data(stream.take(_FEED))
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
                # What h11 was fed past the end of this request belongs to the next.
                stream.pos -= len(conn.trailing_data[0])
                return _make_request(h11_request, bytes(body), stream.peer_ip), conn
            else:  # the connection closed, or paused, before the request ended
                raise _Reject(400, "incomplete request")

    async def _dispatch(self, request: Request) -> Response:
        """The handler's answer; the one place an unexpected exception becomes a 500."""
        try:
            return await self._handler(request)
        except Exception as e:
            self.errors.report(f"{request.method} {request.path} failed", e)
            body = '{"error": 500, "description": ' + _json_string(str(e)) + "}"
            return Response(500, body.encode("utf-8"))

    @staticmethod
    def _response_bytes(
        conn: h11.Connection, request: Request, response: Response, close: bool
    ) -> bytes:
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *response.headers,
        ]
        if close:
            headers.append(("Connection", "close"))
        out = (
            conn.send(
                h11.Response(
                    status_code=response.status, headers=headers, reason=reason(response.status)
                )
            )
            or b""
        )
        if request.method != "HEAD" and response.body:
            out += conn.send(h11.Data(data=response.body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        return out


def _unsent(transport: asyncio.WriteTransport) -> int:
    """Bytes of ours the peer has not taken: the transport's buffer and, where the
    system tells (Linux ``SIOCOUTQ``), the socket's send queue, which can hold
    megabytes that leave without the transport's buffer changing."""
    unsent = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if _SIOCOUTQ is not None and sock is not None:
        try:
            unsent += struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            pass
    return unsent


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
