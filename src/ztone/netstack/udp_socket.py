"""A UDP socket of the user-space stack: what ``Stack.udp_bind`` gives the application.

The stack delivers datagrams with :meth:`UdpSocket.deliver` into a queue bounded in
datagrams and bytes (what does not fit is dropped and counted in ``dropped``); the
application takes them with :meth:`UdpSocket.recvfrom`. :meth:`UdpSocket.sendto`
hands the datagram to the stack at once (its frame is in ``Stack.take_frames``).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable

from ztone.errors import LocalUsageError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Endpoint = tuple[Address, int]


class UdpSocket:
    def __init__(
        self,
        address: Address | None,
        port: int,
        queue_limit: int,
        bytes_limit: int,
        send: Callable[[UdpSocket, bytes, Endpoint, float], None],
        release: Callable[[UdpSocket], None],
    ) -> None:
        self.address = address
        """The local address it is bound to; None for every address of the stack."""
        self.port = port
        self.queue_limit = queue_limit
        self.bytes_limit = bytes_limit
        self.dropped = 0
        """Datagrams dropped because the receive queue was full."""
        self.closed = False
        self._send = send
        self._release = release
        self._queue: deque[tuple[bytes, Endpoint]] = deque()
        self._queued_bytes = 0

    @property
    def local(self) -> tuple[Address | None, int]:
        return self.address, self.port

    @property
    def readable(self) -> int:
        """Datagrams waiting in the receive queue."""
        return len(self._queue)

    def sendto(self, data: bytes | bytearray | memoryview, remote: Endpoint, now: float) -> None:
        """Send one datagram; LocalUsageError when closed, too large or not routable."""
        if self.closed:
            raise LocalUsageError("sendto on a closed UDP socket")
        self._send(self, bytes(data), remote, now)

    def recvfrom(self) -> tuple[bytes, Endpoint] | None:
        """The oldest datagram and its sender, or None when the queue is empty."""
        if not self._queue:
            return None
        data, source = self._queue.popleft()
        self._queued_bytes -= len(data)
        return data, source

    def deliver(self, data: bytes, source: Endpoint) -> bool:
        """The stack's side: queue a datagram that arrived; False when it was dropped."""
        if self.closed:
            return False
        if len(self._queue) >= self.queue_limit or (
            self._queued_bytes + len(data) > self.bytes_limit
        ):
            self.dropped += 1
            return False
        self._queue.append((data, source))
        self._queued_bytes += len(data)
        return True

    def close(self) -> None:
        """Unbind; queued datagrams are discarded (twice is fine)."""
        if not self.closed:
            self.closed = True
            self._queue.clear()
            self._queued_bytes = 0
            self._release(self)
