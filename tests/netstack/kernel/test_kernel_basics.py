"""The Stack against the Linux kernel: ping (IPv4, IPv6) and UDP (root only)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from .harness import KernelLab, kernel_unavailable

pytestmark = pytest.mark.skipif(kernel_unavailable() is not None, reason=str(kernel_unavailable()))


@pytest.fixture
def lab() -> Iterator[KernelLab]:
    with KernelLab() as lab:
        yield lab


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_kernel_ping_gets_answers(lab: KernelLab, v6: bool) -> None:
    if shutil.which("ping") is None:
        pytest.skip("ping is not installed")
    target = str(lab.stack_v6.ip if v6 else lab.stack_v4.ip)
    proc = lab.ns.popen(
        ["ping", "-6" if v6 else "-4", "-c", "3", "-i", "0.2", "-W", "2", target],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert lab.pump(lambda: proc.poll() is not None, timeout=20)
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, out
    assert "3 received" in out
    assert lab.stack.counters.echo_replies == 3


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_udp_both_ways_with_the_kernel(lab: KernelLab, v6: bool) -> None:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    kernel_ip = lab.kernel_v6.ip if v6 else lab.kernel_v4.ip
    stack_ip = lab.stack_v6.ip if v6 else lab.stack_v4.ip
    ksock = lab.kernel_socket(family, socket.SOCK_DGRAM)
    ksock.bind((str(kernel_ip), 5353))
    ssock = lab.stack.udp_bind(6000)
    ksock.sendto(b"from the kernel", (str(stack_ip), 6000))
    assert lab.pump(lambda: ssock.readable > 0, timeout=10)
    data, source = ssock.recvfrom() or (b"", None)
    assert data == b"from the kernel" and source == (kernel_ip, 5353)
    got: list[bytes] = []
    sent: list[bool] = []

    def step(now: float) -> None:
        if not sent:
            ssock.sendto(b"from the stack", (kernel_ip, 5353), now)
            sent.append(True)
        try:
            got.append(ksock.recv(2048))
        except BlockingIOError:
            pass

    assert lab.pump(lambda: got == [b"from the stack"], step, timeout=10)
    ksock.close()


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_kernel_fragments_are_reassembled(lab: KernelLab, v6: bool) -> None:
    """A 6000-byte UDP datagram: the kernel fragments it for the 2800-byte MTU."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    stack_ip = lab.stack_v6.ip if v6 else lab.stack_v4.ip
    ksock = lab.kernel_socket(family, socket.SOCK_DGRAM)
    ssock = lab.stack.udp_bind(6001)
    body = bytes(range(250)) * 24
    # the kernel must know the Stack's MAC first (a datagram that fits resolves it)
    ksock.sendto(b"first", (str(stack_ip), 6001))
    assert lab.pump(lambda: ssock.readable > 0, timeout=10)
    ksock.sendto(body, (str(stack_ip), 6001))
    assert lab.pump(lambda: ssock.readable > 1, timeout=10)
    assert ssock.recvfrom() is not None
    data, _ = ssock.recvfrom() or (b"", None)
    assert data == body
    assert lab.stack.counters.fragments >= 3 and lab.stack.counters.reassembled == 1
    ksock.close()
