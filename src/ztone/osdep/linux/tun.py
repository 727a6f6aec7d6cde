"""Linux TAP devices from ``/dev/net/tun``: the ioctls and the frame device (C.5).

As zerotier-one's ``LinuxEthernetTap``: one non-persistent ``IFF_TAP | IFF_NO_PI``
device per network, given the network MAC and MTU and brought up with
``IFF_MULTICAST`` by the same ioctls as upstream. ztone asks for ``IFF_VNET_HDR``
too (falling back without it): then every frame carries a 10-byte
``virtio_net_hdr``, which lets a burst of TCP segments for the host be merged into
one write (:mod:`ztone.osdep.linux.gro`), and lets the host hand over checksums to
finish and TCP super-packets of up to 64 KiB (``TUNSETOFFLOAD`` with
``TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6``, unless ``ZTONE_TAP_OFFLOAD=0``), which
the reader cuts into ordinary segments (:mod:`ztone.osdep.linux.tso`).

:class:`TunDevice` is the :class:`~ztone.osdep.base.FrameDevice` of such a
descriptor. Frames are read whole, one per ``read`` (a super-packet gives its
segments); the Ethernet header is split
off as is (an 802.1Q tag is not interpreted: the frame arrives with ethertype
0x8100 and the tag at the start of the payload, as upstream hands it to the core).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
from collections.abc import Mapping, Sequence

from ztone.osdep.base import EthernetFrame, FrameDeviceError, TapError
from ztone.osdep.linux import tso
from ztone.osdep.linux.gro import (
    VNET_HDR_LEN,
    VNET_NONE,
    coalesce,
    complete_checksum,
)
from ztone.util.inet_checksum import InetSum, inet_sum_function

log = logging.getLogger(__name__)

# <linux/if_tun.h>, <linux/if.h>, <linux/sockios.h>, <linux/if_arp.h>
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
"""Asked of a TAP with virtio-net headers: checksums and TCP segmentation (not ECN,
not UDP): every frame read may then need :mod:`.tso`'s cut or a checksum finished."""
OFFLOAD_ENV = "ZTONE_TAP_OFFLOAD"
IFF_UP = 0x0001
IFF_MULTICAST = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFMTU = 0x8922
SIOCSIFHWADDR = 0x8924
ARPHRD_ETHER = 1

TUN_DEVICES = ("/dev/net/tun", "/dev/tun")
READ_BUFFER_SIZE = VNET_HDR_LEN + tso.MAX_FRAME
"""A virtio_net_hdr and a 64 KiB super-packet (larger than upstream's
``ZT_TAP_BUF_SIZE``, which only ever holds one MTU-sized frame)."""
HEADER_CACHE_SIZE = 256
"""Ethernet headers of recent (source, destination, ethertype) kept ready to write."""

_IFREQ_FLAGS = struct.Struct("16sH22x")
_IFREQ_INT = struct.Struct("16si20x")
_IFREQ_HWADDR = struct.Struct("16sH6s16x")


# --- ioctls on the interface --------------------------------------------------------


def _ioctl_sock(request: int, ifreq: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s.fileno(), request, ifreq)


def set_mac(name: str, mac: int) -> None:
    """``SIOCSIFHWADDR``; OSError if refused."""
    _ioctl_sock(
        SIOCSIFHWADDR, _IFREQ_HWADDR.pack(name.encode(), ARPHRD_ETHER, mac.to_bytes(6, "big"))
    )


def set_mtu(name: str, mtu: int) -> None:
    """``SIOCSIFMTU``; OSError if refused."""
    _ioctl_sock(SIOCSIFMTU, _IFREQ_INT.pack(name.encode(), mtu))


def bring_up(name: str) -> None:
    """Set ``IFF_UP | IFF_MULTICAST`` on the interface; OSError if refused."""
    raw = _ioctl_sock(SIOCGIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), 0))
    flags = _IFREQ_FLAGS.unpack(raw)[1]
    _ioctl_sock(SIOCSIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), flags | IFF_UP | IFF_MULTICAST))


def open_tun() -> int:
    """A non-blocking descriptor of the TUN/TAP clone device; TapError if there is none."""
    last: OSError | None = None
    for path in TUN_DEVICES:
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            last = last or e
    raise TapError(f"could not open TUN/TAP device: {last}")


def offload_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether TAPs get :data:`OFFLOADS`: yes unless ``ZTONE_TAP_OFFLOAD=0``."""
    env = os.environ if environ is None else environ
    return env.get(OFFLOAD_ENV, "").strip() != "0"


def set_offload(fd: int, name: str, flags: int = OFFLOADS) -> bool:
    """``TUNSETOFFLOAD`` with ``flags`` on a TAP opened with virtio-net headers; False
    (logged at debug: frames then come as without it) if the kernel refuses."""
    try:
        fcntl.ioctl(fd, TUNSETOFFLOAD, flags)
    except OSError as e:
        log.debug("%s: TUNSETOFFLOAD %#x: %s", name, flags, e)
        return False
    return True


def attach_tap(fd: int, name: str, offload: bool = False) -> tuple[str, bool]:
    """``TUNSETIFF`` as a TAP named ``name`` (the kernel may pick another), not persistent;
    with ``offload``, :func:`set_offload` when frames carry virtio-net headers.

    Returns the device's name and whether frames carry a ``virtio_net_hdr``.
    """
    vnet = True
    try:
        raw = fcntl.ioctl(
            fd, TUNSETIFF, _IFREQ_FLAGS.pack(name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        )
    except OSError:
        vnet = False
        try:  # a kernel without virtio-net headers on TAPs: frames as they are
            raw = fcntl.ioctl(fd, TUNSETIFF, _IFREQ_FLAGS.pack(name.encode(), IFF_TAP | IFF_NO_PI))
        except OSError as e:
            raise TapError(f"unable to configure TUN/TAP device {name} for TAP: {e}") from None
    name = bytes(_IFREQ_FLAGS.unpack(raw)[0]).rstrip(b"\0").decode()
    try:
        fcntl.ioctl(fd, TUNSETPERSIST, 0)
    except OSError as e:
        log.debug("%s: TUNSETPERSIST 0: %s", name, e)
    if vnet and offload:
        set_offload(fd, name)
    return name, vnet


def _is_tcp(ethertype: int, payload: bytes) -> bool:
    return (ethertype == 0x0800 and len(payload) > 40 and payload[9] == 6) or (
        ethertype == 0x86DD and len(payload) > 60 and payload[6] == 6
    )


# --- the frame device ---------------------------------------------------------------


class TunDevice:
    """The :class:`~ztone.osdep.base.FrameDevice` of one TAP descriptor (owned: closed here)."""

    def __init__(self, fd: int, name: str, vnet: bool, inet_sum: InetSum | None = None) -> None:
        self._fd = fd
        self._inet_sum = inet_sum if inet_sum is not None else inet_sum_function()
        """The checksum routine of the daemon's crypto backend (native or pure)."""
        self.name = name
        self.vnet = vnet
        """Opened with ``IFF_VNET_HDR``: every frame has a ``virtio_net_hdr``."""
        self._rbuf = bytearray(READ_BUFFER_SIZE)
        self._rview = memoryview(self._rbuf)
        self._headers: dict[tuple[int, int, int], bytes] = {}
        self.frames_dropped = 0
        """Frames lost in this device: failed writes, malformed frames from the host."""
        self.super_frames = 0
        """GSO frames from the host cut into segments (:mod:`.tso`)."""

    def fileno(self) -> int:
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def read_batch(self, limit: int) -> list[EthernetFrame]:
        frames: list[EthernetFrame] = []
        fd = self._fd
        buf = self._rbuf
        for _ in range(limit):
            if fd < 0:
                break
            try:
                n = os.readv(fd, (buf,))
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:
                if frames:
                    break
                raise FrameDeviceError(f"{self.name}: read failed: {e}") from None
            self._parse(n, frames)
        return frames

    def frames_of(self, reads: list[bytes]) -> list[EthernetFrame]:
        """The frames of reads made elsewhere from this device's fd (as :meth:`read_batch`
        would have made them: the native data plane's ``tx_burst`` gives back what it
        did not send)."""
        frames: list[EthernetFrame] = []
        buf = self._rbuf
        for data in reads:
            n = len(data)
            if n > len(buf):
                continue
            buf[:n] = data
            self._parse(n, frames)
        return frames

    def _parse(self, n: int, frames: list[EthernetFrame]) -> None:
        """Append the frame of the ``n`` bytes read into the buffer, if it is one."""
        buf = self._rbuf
        view = self._rview
        at = VNET_HDR_LEN if self.vnet else 0
        if at and buf[1]:
            self._cut(n, frames)
            return
        if at and buf[0] and not self._finish_checksum(n):
            return
        if n <= at + 14:  # upstream needs more than a bare header
            return
        frames.append(
            (
                int.from_bytes(view[at + 6 : at + 12], "big"),
                int.from_bytes(view[at : at + 6], "big"),
                (buf[at + 12] << 8) | buf[at + 13],
                bytes(view[at + 14 : n]),
            )
        )

    def _cut(self, n: int, frames: list[EthernetFrame]) -> None:
        """Append the segments of the GSO frame of the ``n`` bytes read."""
        view = self._rview
        segments = tso.segment(view[:VNET_HDR_LEN], view[VNET_HDR_LEN:n], self._inet_sum)
        if segments is None:
            self.frames_dropped += 1
            log.debug("%s: dropped a malformed GSO frame from the host", self.name)
            return
        self.super_frames += 1
        at = VNET_HDR_LEN
        source = int.from_bytes(view[at + 6 : at + 12], "big")
        destination = int.from_bytes(view[at : at + 6], "big")
        ethertype = (self._rbuf[at + 12] << 8) | self._rbuf[at + 13]
        frames.extend((source, destination, ethertype, packet) for packet in segments)

    def _finish_checksum(self, n: int) -> bool:
        """A frame read with a checksum to finish: finish it in the buffer."""
        frame = bytearray(self._rbuf[VNET_HDR_LEN:n])
        if not complete_checksum(bytes(self._rbuf[:VNET_HDR_LEN]), frame, self._inet_sum):
            self.frames_dropped += 1
            log.debug("%s: dropped a frame whose checksum cannot be finished", self.name)
            return False
        self._rbuf[VNET_HDR_LEN:n] = frame
        return True

    def _header(self, source: int, destination: int, ethertype: int) -> bytes:
        key = (source, destination, ethertype)
        header = self._headers.get(key)
        if header is None:
            header = (
                destination.to_bytes(6, "big")
                + source.to_bytes(6, "big")
                + (ethertype & 0xFFFF).to_bytes(2, "big")
            )
            if len(self._headers) >= HEADER_CACHE_SIZE:
                self._headers.clear()
            self._headers[key] = header
        return header

    def write_batch(self, frames: Sequence[EthernetFrame]) -> int:
        """Write in order. With virtio-net headers, consecutive TCP segments are merged
        (gro.py); anything else goes alone, after the run before it."""
        if self._fd < 0:
            self.frames_dropped += len(frames)
            return len(frames)
        dropped = 0
        if not self.vnet:
            for source, destination, ethertype, payload in frames:
                dropped += self._write((self._header(source, destination, ethertype), payload))
            return dropped
        run: list[tuple[bytes, bytes]] = []
        for source, destination, ethertype, payload in frames:
            header = self._header(source, destination, ethertype)
            if _is_tcp(ethertype, payload):
                run.append((header, payload))
                continue
            if run:
                dropped += self._write_run(run)
                run = []
            dropped += self._write((VNET_NONE, header, payload))
        if run:
            dropped += self._write_run(run)
        return dropped

    def _write_run(self, run: list[tuple[bytes, bytes]]) -> int:
        if len(run) == 1:
            return self._write((VNET_NONE, *run[0]))
        return sum(self._write(write) for write in coalesce(run, self._inet_sum))

    def _write(self, parts: tuple[bytes, ...]) -> int:
        try:
            os.writev(self._fd, parts)
        except OSError as e:
            self.frames_dropped += 1
            log.debug("%s: frame to host dropped: %s", self.name, e)
            return 1
        return 0

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


__all__ = [
    "TunDevice",
    "attach_tap",
    "bring_up",
    "offload_wanted",
    "open_tun",
    "set_mac",
    "set_mtu",
    "set_offload",
]
