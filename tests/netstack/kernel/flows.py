"""Bulk and handshake helpers for the kernel tests: one side a Stack TcpSocket, the other
a non-blocking kernel socket, both driven from :meth:`KernelLab.pump`'s loop."""

from __future__ import annotations

import errno
import select
import socket
import time

from ztone.netstack.tcp_socket import TcpListener, TcpSocket

from .harness import KernelLab

CHUNK = 256 * 1024


def kernel_connect(
    lab: KernelLab, listener: TcpListener, v6: bool
) -> tuple[socket.socket, TcpSocket]:
    """The kernel connects to a Stack listener; both ends once established."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    ip = lab.stack_v6.ip if v6 else lab.stack_v4.ip
    k = lab.kernel_socket(family)
    assert k.connect_ex((str(ip), listener.port)) in (0, errno.EINPROGRESS)
    accepted: list[TcpSocket] = []

    def done() -> bool:
        if not accepted:
            sock = listener.accept()
            if sock is not None:
                accepted.append(sock)
        writable = select.select([], [k], [], 0)[1]
        return bool(accepted) and bool(writable)

    assert lab.pump(done, timeout=15), "the kernel's connection was not accepted"
    assert k.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    return k, accepted[0]


def stack_connect(lab: KernelLab, port: int, v6: bool) -> tuple[socket.socket, TcpSocket]:
    """The Stack connects to a kernel listener on ``port``; both ends once established."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    kip = lab.kernel_v6.ip if v6 else lab.kernel_v4.ip
    server = lab.kernel_socket(family)
    server.bind((str(kip), port))
    server.listen(4)
    sock = lab.stack.tcp_connect((kip, port), time.monotonic())
    got: list[socket.socket] = []

    def done() -> bool:
        if not got:
            try:
                conn, _ = server.accept()
            except BlockingIOError:
                return False
            conn.setblocking(False)
            got.append(conn)
        return sock.established

    assert lab.pump(done, timeout=15), "the Stack's connection did not complete"
    server.close()
    return got[0], sock


def kernel_to_stack(lab: KernelLab, k: socket.socket, s: TcpSocket, data: bytes,
                    timeout: float = 120.0, read: bool = True) -> bytes:  # fmt: skip
    """Send ``data`` from the kernel then shut down; what the Stack received up to EOF."""
    sent = 0
    got = bytearray()
    view = memoryview(data)

    def step(now: float) -> None:
        nonlocal sent
        while sent < len(data):
            try:
                n = k.send(view[sent : sent + CHUNK])
            except BlockingIOError:
                break
            sent += n
            if sent == len(data):
                k.shutdown(socket.SHUT_WR)
        if read:
            while s.readable:
                got.extend(s.recv(CHUNK))

    assert lab.pump(lambda: s.at_eof or s.closed, step, timeout=timeout), (
        f"kernel->stack: {len(got)} of {len(data)} bytes arrived"
    )
    return bytes(got)


def stack_to_kernel(lab: KernelLab, k: socket.socket, s: TcpSocket, data: bytes,
                    timeout: float = 120.0) -> bytes:  # fmt: skip
    """Send ``data`` from the Stack then shut down; what the kernel received up to EOF."""
    sent = 0
    got = bytearray()
    eof: list[bool] = []
    view = memoryview(data)

    def step(now: float) -> None:
        nonlocal sent
        while sent < len(data) and s.writable:
            sent += s.send(view[sent : sent + CHUNK])
            if sent == len(data):
                s.shutdown()
        while True:
            try:
                chunk = k.recv(CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                eof.append(True)
                break
            got.extend(chunk)

    assert lab.pump(lambda: bool(eof), step, timeout=timeout), (
        f"stack->kernel: {len(got)} of {len(data)} bytes arrived"
    )
    return bytes(got)
