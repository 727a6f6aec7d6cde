"""TunDevice, the Linux frame device, on a socket pair standing in for the TAP descriptor.

A ``SOCK_SEQPACKET`` pair keeps message boundaries as a TAP descriptor does (one
frame per read and per write), so the device's framing, virtio-net headers,
ordering and error handling run here without root; tests/netns/test_linux_tap.py
runs it on a real TAP device.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

pytest.importorskip("pyroute2", reason="pyroute2 is not installed")

from ztone.osdep.base import FrameDevice, FrameDeviceError, LinkConfig
from ztone.osdep.linux.gro import VNET_HDR_LEN, VNET_NONE
from ztone.osdep.linux.netlink import LinuxLink
from ztone.osdep.linux.tun import TunDevice

MAC = 0x0289E9300C27
PEER = 0x0289E9300C28
ETH_IPV4, ETH_ARP = 0x0800, 0x0806


def header(source: int, destination: int, ethertype: int) -> bytes:
    return destination.to_bytes(6, "big") + source.to_bytes(6, "big") + ethertype.to_bytes(2, "big")


def tcp_packet(n: int) -> bytes:
    """An IPv4 TCP packet (protocol byte 6, over 40 bytes); not mergeable (no valid sums)."""
    return bytes(9) + b"\x06" + bytes(31 + n)


@pytest.fixture(params=[False, True], ids=["plain", "vnet"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[TunDevice, socket.socket]]:
    ours, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    device = TunDevice(os.dup(ours.fileno()), "zttest", vnet=request.param)
    ours.close()
    yield device, host
    device.close()
    host.close()


def test_frames_from_the_host(pair: tuple[TunDevice, socket.socket]) -> None:
    device, host = pair
    pre = bytes(VNET_HDR_LEN) if device.vnet else b""
    assert device.read_batch(8) == []  # nothing: no waiting
    host.send(pre + header(MAC, 0xFFFFFFFFFFFF, ETH_ARP) + b"arp")
    host.send(pre + header(MAC, PEER, ETH_IPV4))  # a bare header: skipped, as upstream
    host.send(pre + header(MAC, PEER, 0x8100) + b"\x00\x0a\x08\x00tagged")
    host.send(pre + header(MAC, PEER, ETH_IPV4) + b"later")
    assert device.read_batch(3) == [  # three reads, one frame skipped
        (MAC, 0xFFFFFFFFFFFF, ETH_ARP, b"arp"),
        (MAC, PEER, 0x8100, b"\x00\x0a\x08\x00tagged"),  # 802.1Q untouched
    ]
    assert device.read_batch(8) == [(MAC, PEER, ETH_IPV4, b"later")]


def test_frames_to_the_host_keep_their_order(pair: tuple[TunDevice, socket.socket]) -> None:
    device, host = pair
    frames = [
        (PEER, MAC, ETH_IPV4, tcp_packet(1)),
        (PEER, MAC, ETH_ARP, b"arp reply"),
        (PEER, MAC, ETH_IPV4, tcp_packet(2)),
        (PEER, MAC, ETH_IPV4, tcp_packet(3)),
    ]
    assert device.write_batch(frames) == 0
    pre = VNET_NONE if device.vnet else b""
    for source, destination, ethertype, payload in frames:
        assert host.recv(65536) == pre + header(source, destination, ethertype) + payload
    with pytest.raises(BlockingIOError):
        host.recv(65536, socket.MSG_DONTWAIT)


def test_failed_writes_and_a_closed_device_drop(pair: tuple[TunDevice, socket.socket]) -> None:
    device, host = pair
    host.shutdown(socket.SHUT_RD)  # the "kernel" refuses every write
    assert device.write_batch([(PEER, MAC, ETH_ARP, b"x"), (PEER, MAC, ETH_ARP, b"y")]) == 2
    assert device.frames_dropped == 2
    device.close()
    device.close()
    assert device.closed and device.read_batch(8) == []
    assert device.write_batch([(PEER, MAC, ETH_ARP, b"z")]) == 1


def test_a_read_error_is_a_frame_device_error() -> None:
    fd = os.open(os.devnull, os.O_WRONLY | os.O_NONBLOCK)  # reading it fails (EBADF)
    device = TunDevice(fd, "zttest", vnet=False)
    try:
        with pytest.raises(FrameDeviceError, match="zttest: read failed"):
            device.read_batch(8)
    finally:
        device.close()


def _protocol_check(device: TunDevice, link: LinuxLink) -> tuple[FrameDevice, LinkConfig]:
    """Never called: mypy checks that the Linux halves satisfy the protocols."""
    return device, link


def test_merging_uses_the_checksum_routine_it_was_given() -> None:
    """The daemon's crypto backend reaches the TAP: a pure daemon merges with the pure
    checksum, never silently with the native one."""
    from osdep.linux.test_gro import ETH4, tcp_segment  # noqa: PLC0415 (test helpers)
    from ztone.crypto.backend import PURE  # noqa: PLC0415
    from ztone.util.inet_checksum import InetSum, inet_sum_function  # noqa: PLC0415

    pure = inet_sum_function(PURE)
    calls: list[int] = []

    def counting(data: bytes | bytearray | memoryview, initial: int) -> int:
        calls.append(len(data))
        return pure(data, initial)

    checksum: InetSum = counting
    ours, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    device = TunDevice(os.dup(ours.fileno()), "zttest", vnet=True, inet_sum=checksum)
    ours.close()
    try:
        src, dst = int.from_bytes(ETH4[6:12], "big"), int.from_bytes(ETH4[0:6], "big")
        segments = [tcp_segment(False, 1000 + 100 * k, bytes(100)) for k in range(3)]
        assert device.write_batch([(src, dst, ETH_IPV4, s) for s in segments]) == 0
        assert calls, "the merge never used the device's checksum routine"
        assert len(host.recv(65536)) > 3 * 100  # one merged write for the run
    finally:
        device.close()
        host.close()
