"""TCP sockets of the user-space stack: thin handles over ``ztone.netstack.tcp``.

A :class:`TcpSocket` is what ``Stack.tcp_connect`` and :meth:`TcpListener.accept` give
the application; every call goes to its :class:`~ztone.netstack.tcp.TcpConnection` and
tells the stack (``touch``) so the next ``Stack.poll`` sends what the call made due.
A :class:`TcpListener` holds the connections that completed their handshake until the
application accepts them (at most ``backlog``) and counts the half-open ones the stack
made for it (the stack bounds those).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ztone.netstack.tcp import TcpConnection, TcpState
from ztone.netstack.udp_socket import Address, Endpoint


class TcpSocket:
    def __init__(
        self,
        conn: TcpConnection,
        local: Endpoint,
        remote: Endpoint,
        touch: Callable[[TcpSocket], None],
    ) -> None:
        self.connection = conn
        self.local = local
        self.remote = remote
        self.app_closed = False
        """The application called :meth:`close`: the stack finishes the connection alone."""
        self.listener: TcpListener | None = None
        """The listener a half-open passive connection will be queued on."""
        self.closed_at: float | None = None
        self._touch = touch
        self._failure: str | None = None

    def __repr__(self) -> str:
        return f"<TcpSocket {self.local} -> {self.remote} {self.connection.state.name}>"

    # -- application calls ----------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Bytes taken into the send buffer (0 when full); LocalUsageError after
        shutdown/abort or on a closed connection. Sent by the stack's next poll."""
        n = self.connection.send(data)
        if n:
            self._touch(self)
        return n

    def recv(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` received bytes; b"" when none are buffered (see ``at_eof``)."""
        data = self.connection.recv(limit)
        if data:
            self._touch(self)
        return data

    def shutdown(self) -> None:
        """No more sends: FIN after the buffered data; receiving goes on."""
        self.connection.shutdown()
        self._touch(self)

    def abort(self) -> None:
        """RST now; both buffers are discarded."""
        self.connection.abort()
        self._touch(self)

    def fail(self, reason: str) -> None:
        """The stack's side: end the connection for ``reason`` (e.g. "host unreachable"
        when its next hop never answered ARP/NDP); ``error`` says it from now on."""
        if self._failure is None and not self.connection.closed:
            self._failure = reason
            self.connection.abort()
            self._touch(self)

    def close(self) -> None:
        """Shut down and forget: the stack finishes the close. Unread data makes it an
        abort (RST), as a kernel does (RFC 9293 3.10.4's "data lost")."""
        if self.app_closed:
            return
        self.app_closed = True
        self.listener = None
        if self.connection.readable:
            self.connection.abort()
        else:
            self.connection.shutdown()
        self._touch(self)

    # -- state ---------------------------------------------------------------------------

    @property
    def nodelay(self) -> bool:
        return self.connection.nodelay

    @nodelay.setter
    def nodelay(self, value: bool) -> None:
        self.connection.nodelay = value

    @property
    def state(self) -> TcpState:
        return self.connection.state

    @property
    def readable(self) -> int:
        return self.connection.readable

    @property
    def writable(self) -> int:
        return self.connection.writable

    @property
    def at_eof(self) -> bool:
        return self.connection.at_eof

    @property
    def established(self) -> bool:
        return self.connection.established

    @property
    def closed(self) -> bool:
        return self.connection.closed

    @property
    def error(self) -> str | None:
        """ "connection refused", "connection reset", "timed out", "host unreachable"
        or None."""
        return self._failure or self.connection.error


class TcpListener:
    def __init__(
        self,
        address: Address | None,
        port: int,
        backlog: int,
        release: Callable[[TcpListener], None],
    ) -> None:
        self.address = address
        """The local address it listens on; None for every address of the stack."""
        self.port = port
        self.backlog = backlog
        self.half_open = 0
        """Connections in their handshake made for this listener (the stack keeps count)."""
        self.closed = False
        self._queue: deque[TcpSocket] = deque()
        self._release = release

    @property
    def local(self) -> tuple[Address | None, int]:
        return self.address, self.port

    @property
    def readable(self) -> int:
        """Connections waiting for :meth:`accept`."""
        return len(self._queue)

    @property
    def full(self) -> bool:
        return len(self._queue) >= self.backlog

    def accept(self) -> TcpSocket | None:
        """The oldest established connection not yet accepted, or None."""
        while self._queue:
            sock = self._queue.popleft()
            if not sock.closed or sock.readable:
                return sock
        return None

    def enqueue(self, sock: TcpSocket) -> bool:
        """The stack's side: queue an established connection; False when full or closed."""
        if self.closed or self.full:
            return False
        self._queue.append(sock)
        return True

    def close(self) -> None:
        """Stop listening; connections not accepted yet are aborted (twice is fine)."""
        if self.closed:
            return
        self.closed = True
        while self._queue:
            self._queue.popleft().abort()
        self._release(self)
