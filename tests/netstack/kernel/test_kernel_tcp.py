"""The Stack's TCP against the Linux kernel's TCP through a TAP (root only).

Setup and teardown both ways, 16 MiB both ways byte-identical, loss and reordering
(netem on the kernel's side of the TAP, loss injected on the Stack's side), zero
window both ways, RST both ways, simultaneous close. Assertions are on what arrives
and on states; the throughput printed is for the report, never asserted.
"""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from ztone.netstack.stack import StackLimits
from ztone.netstack.tcp_limits import TcpLimits

from .flows import kernel_connect, kernel_to_stack, stack_connect, stack_to_kernel
from .harness import KernelLab, kernel_unavailable

pytestmark = pytest.mark.skipif(kernel_unavailable() is not None, reason=str(kernel_unavailable()))


@pytest.fixture
def lab() -> Iterator[KernelLab]:
    with KernelLab() as lab:
        yield lab


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_kernel_connects_to_stack_exchange_and_close(lab: KernelLab, v6: bool) -> None:
    listener = lab.stack.tcp_listen(7000)
    k, s = kernel_connect(lab, listener, v6)
    assert s.established and s.remote[0] == (lab.kernel_v6.ip if v6 else lab.kernel_v4.ip)
    assert kernel_to_stack(lab, k, s, b"hello stack") == b"hello stack"
    assert stack_to_kernel(lab, k, s, b"hello kernel") == b"hello kernel"
    assert lab.pump(lambda: lab.stack.tcp_connection_count == 0, timeout=15)
    assert s.closed and s.error is None
    k.close()


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_stack_connects_to_kernel_exchange_and_close(lab: KernelLab, v6: bool) -> None:
    k, s = stack_connect(lab, 7001, v6)
    assert stack_to_kernel(lab, k, s, b"ping") == b"ping"
    assert kernel_to_stack(lab, k, s, b"pong") == b"pong"
    k.close()
    assert lab.pump(lambda: lab.stack.tcp_connection_count == 0, timeout=15)
    assert s.error is None


def test_16_mib_both_ways_byte_identical(lab: KernelLab) -> None:
    data = random.Random(1).randbytes(16 << 20)
    listener = lab.stack.tcp_listen(7002)
    k, s = kernel_connect(lab, listener, v6=False)
    start = time.monotonic()
    got = kernel_to_stack(lab, k, s, data)
    inbound = time.monotonic() - start
    assert len(got) == len(data) and digest(got) == digest(data)
    start = time.monotonic()
    got = stack_to_kernel(lab, k, s, data)
    outbound = time.monotonic() - start
    assert len(got) == len(data) and digest(got) == digest(data)
    print(f"\nkernel->stack {16 / inbound:.1f} MiB/s, stack->kernel {16 / outbound:.1f} MiB/s")
    k.close()


def test_loss_and_reordering_both_ways(lab: KernelLab) -> None:
    netem = ["netem", "loss", "2%", "reorder", "10%", "delay", "1ms"]
    result = lab.ns.run(["tc", "qdisc", "add", "dev", lab.name, "root", *netem], check=False)
    if result.returncode != 0:
        # no sch_netem here: the harness drops and reorders the kernel's frames instead
        lab.impair_from_kernel(loss=0.02, reorder=0.10, seed=5)
    rng = random.Random(4)
    lab.drop_to_kernel = lambda: rng.random() < 0.02
    data = random.Random(2).randbytes(4 << 20)
    listener = lab.stack.tcp_listen(7003)
    k, s = kernel_connect(lab, listener, v6=False)
    got = kernel_to_stack(lab, k, s, data)
    assert digest(got) == digest(data)
    got = stack_to_kernel(lab, k, s, data)
    assert digest(got) == digest(data)
    k.close()


def test_stack_stops_reading_zero_window_then_resumes() -> None:
    limits = StackLimits(tcp=TcpLimits(recv_buffer=32 * 1024))
    with KernelLab(limits=limits) as lab:
        listener = lab.stack.tcp_listen(7004)
        k, s = kernel_connect(lab, listener, v6=False)
        data = random.Random(3).randbytes(1 << 20)
        sent = 0

        def fill(now: float) -> None:
            nonlocal sent
            try:
                sent += k.send(memoryview(data)[sent : sent + 65536])
            except BlockingIOError:
                pass

        # nobody reads on the Stack side: its window closes; the kernel holds the rest
        end = time.monotonic() + 3.0
        lab.pump(lambda: time.monotonic() > end, fill, timeout=5)
        assert s.readable == 32 * 1024
        assert sent < len(data)
        assert s.established
        got = bytearray(s.recv(1 << 20))
        got += kernel_to_stack(lab, k, s, data[sent:])  # resumes: reads, the window reopens
        # what the kernel had taken before the window closed came first
        assert digest(bytes(got)) == digest(data)
        k.close()


def test_kernel_stops_reading_zero_window_then_resumes(lab: KernelLab) -> None:
    k, s = stack_connect(lab, 7005, v6=False)
    k.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    data = random.Random(6).randbytes(2 << 20)
    sent = 0

    def fill(now: float) -> None:
        nonlocal sent
        while sent < len(data) and s.writable:
            sent += s.send(memoryview(data)[sent : sent + 65536])

    end = time.monotonic() + 3.0
    lab.pump(lambda: time.monotonic() > end, fill, timeout=5)
    assert sent < len(data)  # the send buffer filled: the kernel's window is closed
    assert s.established and s.error is None
    got = stack_to_kernel(lab, k, s, data[sent:])
    # the kernel kept what it had buffered before; stack_to_kernel read it first
    assert digest(got) == digest(data)
    k.close()


def test_rst_both_ways(lab: KernelLab) -> None:
    # the Stack connects to a closed kernel port
    refused = lab.stack.tcp_connect((lab.kernel_v4.ip, 7999), time.monotonic())
    assert lab.pump(lambda: refused.closed, timeout=10)
    assert refused.error == "connection refused"
    # the kernel connects to a closed Stack port
    k = lab.kernel_socket(socket.AF_INET)
    k.connect_ex((str(lab.stack_v4.ip), 7998))
    errors: list[int] = []

    def done() -> bool:
        code = k.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            errors.append(code)
        return bool(errors)

    assert lab.pump(done, timeout=10)
    assert errors[0] == 111  # ECONNREFUSED
    k.close()
    # the Stack aborts: the kernel's next read is a reset
    listener = lab.stack.tcp_listen(7006)
    k, s = kernel_connect(lab, listener, v6=False)
    s.abort()
    reset: list[BaseException] = []

    def read_reset() -> bool:
        try:
            if k.recv(100) == b"":
                reset.append(EOFError())
        except BlockingIOError:
            pass
        except ConnectionResetError as e:
            reset.append(e)
        return bool(reset)

    assert lab.pump(read_reset, timeout=10)
    assert isinstance(reset[0], ConnectionResetError)
    k.close()
    # the kernel aborts (SO_LINGER 0 then close): the Stack sees "connection reset"
    k, s = kernel_connect(lab, listener, v6=False)
    k.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    k.close()
    assert lab.pump(lambda: s.closed, timeout=10)
    assert s.error == "connection reset"


def test_simultaneous_close(lab: KernelLab) -> None:
    listener = lab.stack.tcp_listen(7007)
    k, s = kernel_connect(lab, listener, v6=False)
    # both ends shut down before either FIN can arrive
    k.shutdown(socket.SHUT_WR)
    s.shutdown()
    eof: list[bool] = []

    def step(now: float) -> None:
        try:
            if k.recv(10) == b"":
                eof.append(True)
        except BlockingIOError:
            pass

    assert lab.pump(lambda: bool(eof) and s.at_eof, step, timeout=15)
    assert lab.pump(lambda: lab.stack.tcp_connection_count == 0, timeout=15)
    assert s.closed and s.error is None
    k.close()


def test_ipv6_bulk_both_ways_within_the_mtu(lab: KernelLab) -> None:
    data = random.Random(7).randbytes(4 << 20)
    listener = lab.stack.tcp_listen(7008)
    k, s = kernel_connect(lab, listener, v6=True)
    biggest: list[int] = [0]
    write = lab.device.write_batch if lab.device is not None else None
    assert write is not None

    def watch(frames: list[tuple[int, int, int, bytes]]) -> int:
        biggest[0] = max([biggest[0], *(len(f[3]) for f in frames)])
        return write(frames)

    lab.device.write_batch = watch  # type: ignore[method-assign,union-attr]
    assert digest(kernel_to_stack(lab, k, s, data)) == digest(data)
    assert digest(stack_to_kernel(lab, k, s, data)) == digest(data)
    assert biggest[0] == 2800  # full segments: MSS = MTU - 60, IPv6 packets of the MTU
    k.close()
