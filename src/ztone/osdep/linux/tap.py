"""Linux virtual ports: TAP devices from ``/dev/net/tun`` (PROTOCOL-NETWORK-SERVICE C.5).

As zerotier-one's ``LinuxEthernetTap``: one non-persistent ``IFF_TAP | IFF_NO_PI``
device per network, named by :mod:`ztone.osdep.naming` (``devicemap`` or
``zt`` + base32), given the network MAC and MTU and brought up with
``IFF_MULTICAST``. Frames are read whole, one per ``read``; the Ethernet header is
split off as is (an 802.1Q tag is not interpreted: the frame arrives with
ethertype 0x8100 and the tag at the start of the payload, as upstream hands it to
the core). Frames longer than MTU + 14 are cut there; frames the host is given
with :meth:`LinuxTap.put` are dropped when the payload exceeds the MTU.

Link setup uses the same ioctls as upstream; addresses, routes, link listing and
deletion go through netlink with pyroute2. pyroute2 0.9's synchronous API cannot
run inside a running asyncio event loop, so every netlink request runs on one
worker thread per factory (:class:`Netlink`), the caller waiting for it (a few
milliseconds; bounded by a timeout).

Managed routes are added as ``ManagedRoute`` does on Linux: table main, protocol
static, scope universe, the tap as output interface; a default target is split in
two halves (``0.0.0.0/1`` + ``128.0.0.0/1``, ``::/1`` + ``8000::/1``); gateway
routes get metric 5000 unless the route carries its own metric.

Each device carries an interface alias ``ztone:<nwid>:<pid>:<start time>``
(zerotier-one sets none), so :meth:`LinuxTapFactory.cleanup_stale` can tell
ztone's leftovers from devices of a zerotier-one that names them identically.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import ipaddress
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
    IPRoute,
    NetlinkError,
)

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import BatchEnd, FrameHandler, IPNetwork, TapError
from ztone.osdep.linux.gro import VNET_HDR_LEN, VNET_NONE, coalesce, complete_checksum
from ztone.osdep.managed import (
    fork_default_route,
    route_gateway,
    route_network,
    upstream_sort_key,
)
from ztone.osdep.multicast import port_groups
from ztone.osdep.naming import choose_linux_device_name, is_linux_ztone_name, read_devicemap

log = logging.getLogger(__name__)

T = TypeVar("T")

# <linux/if_tun.h>, <linux/if.h>, <linux/sockios.h>, <linux/if_arp.h>, <linux/rtnetlink.h>
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_UP = 0x0001
IFF_MULTICAST = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFMTU = 0x8922
SIOCSIFHWADDR = 0x8924
ARPHRD_ETHER = 1
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

TUN_DEVICES = ("/dev/net/tun", "/dev/tun")
DEV_MCAST = "/proc/net/dev_mcast"
GATEWAY_ROUTE_METRIC = 5000
"""``ZT_RTE_METRIC``: priority of gateway routes, so they never beat physical ones."""
READ_BUFFER_SIZE = 16384
"""``ZT_TAP_BUF_SIZE``; larger than any ZeroTier MTU (10000) plus headers."""
MAX_FRAMES_PER_WAKEUP = 128
IPS_REFRESH_INTERVAL = 10.0
"""Seconds a listing of the device's addresses is reused (upstream: 10 s)."""
NETLINK_TIMEOUT = 10.0
ALIAS_PREFIX = "ztone:"

_IFREQ_FLAGS = struct.Struct("16sH22x")
_IFREQ_INT = struct.Struct("16si20x")
_IFREQ_HWADDR = struct.Struct("16sH6s16x")


# --- process identity for the alias marker -----------------------------------------


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks since boot), None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class AliasMarker:
    """``ztone:<nwid 16 hex>:<pid>:<start time>`` in a device's interface alias."""

    nwid: int
    pid: int
    start_time: int

    def __str__(self) -> str:
        return f"{ALIAS_PREFIX}{self.nwid:016x}:{self.pid}:{self.start_time}"

    @classmethod
    def mine(cls, nwid: int) -> AliasMarker:
        pid = os.getpid()
        return cls(nwid, pid, process_start_time(pid) or 0)

    @classmethod
    def parse(cls, alias: str | None) -> AliasMarker | None:
        if not alias or not alias.startswith(ALIAS_PREFIX):
            return None
        parts = alias[len(ALIAS_PREFIX) :].split(":")
        if len(parts) != 3:
            return None
        try:
            return cls(int(parts[0], 16), int(parts[1]), int(parts[2]))
        except ValueError:
            return None

    def process_alive(self) -> bool:
        """The process that made the device still runs (same pid and start time)."""
        return process_start_time(self.pid) == self.start_time


# --- netlink on a worker thread ------------------------------------------------------


class Netlink:
    """One pyroute2 ``IPRoute`` used from one worker thread.

    The thread (and so the netlink socket) is created on first use and belongs to
    the network namespace of the thread that first calls :meth:`call`.
    """

    def __init__(self, timeout: float = NETLINK_TIMEOUT) -> None:
        self.timeout = timeout
        self._executor: ThreadPoolExecutor | None = None
        self._ipr: Any = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(ipr)`` on the worker; its exceptions propagate; TapError on timeout."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="ztone-netlink")
            executor = self._executor
        future = executor.submit(self._run, fn)
        try:
            return future.result(self.timeout)
        except FutureTimeoutError:
            raise TapError(f"netlink request timed out after {self.timeout:g} s") from None

    def _run(self, fn: Callable[[Any], T]) -> T:
        if self._ipr is None:
            self._ipr = IPRoute()
        return fn(self._ipr)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            if self._ipr is not None:
                try:
                    self._ipr.close()
                finally:
                    self._ipr = None

        try:
            executor.submit(shut).result(self.timeout)
        except Exception as e:
            log.debug("closing netlink socket: %s", e)
        executor.shutdown(wait=False)


def _err(e: BaseException) -> str:
    if isinstance(e, NetlinkError):
        code = int(getattr(e, "code", 0) or 0)
        return f"{os.strerror(code)} (errno {code})" if code else str(e)
    return str(e) or type(e).__name__


def _errno(e: BaseException) -> int:
    if isinstance(e, NetlinkError):
        return int(getattr(e, "code", 0) or 0)
    if isinstance(e, OSError):
        return e.errno or 0
    return 0


# --- ioctl helpers ------------------------------------------------------------------


def _ioctl_sock(name: str, request: int, ifreq: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s.fileno(), request, ifreq)


def _set_mac(name: str, mac: int) -> None:
    _ioctl_sock(
        name,
        SIOCSIFHWADDR,
        _IFREQ_HWADDR.pack(name.encode(), ARPHRD_ETHER, mac.to_bytes(6, "big")),
    )


def _set_mtu(name: str, mtu: int) -> None:
    _ioctl_sock(name, SIOCSIFMTU, _IFREQ_INT.pack(name.encode(), mtu))


def _bring_up(name: str) -> None:
    raw = _ioctl_sock(name, SIOCGIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), 0))
    flags = _IFREQ_FLAGS.unpack(raw)[1]
    _ioctl_sock(
        name, SIOCSIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), flags | IFF_UP | IFF_MULTICAST)
    )


def _open_tun() -> int:
    last: OSError | None = None
    for path in TUN_DEVICES:
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            last = last or e
    raise TapError(f"could not open TUN/TAP device: {last}")


# --- live devices of this process ---------------------------------------------------

_live_lock = threading.Lock()
_live: set[tuple[int, str]] = set()
"""(ifindex, name) of every open :class:`LinuxTap` in this process."""


# --- the port -----------------------------------------------------------------------


class LinuxTap:
    """One TAP device (``LinuxEthernetTap``); made by :class:`LinuxTapFactory`."""

    def __init__(
        self,
        nwid: int,
        mac: int,
        mtu: int,
        friendly_name: str,
        netlink: Netlink,
        devicemap: dict[str, str] | None = None,
    ) -> None:
        self.nwid = nwid
        self.friendly_name = friendly_name
        self._mac = mac
        self._mtu = mtu
        self._nl = netlink
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frame: FrameHandler | None = None
        self._on_batch_end: BatchEnd | None = None
        self._rbuf = bytearray(READ_BUFFER_SIZE)
        self._rview = memoryview(self._rbuf)
        self._headers: dict[tuple[int, int, int], bytes] = {}  # Ethernet headers put lately
        self._vnet = False  # opened with IFF_VNET_HDR: every frame has a virtio_net_hdr
        self._pending: list[tuple[bytes, bytes]] = []  # frames for the host, not yet written
        self._flush_scheduled = False
        self._managed_ips: list[InetAddress] = []
        self._ips_cache: tuple[float, list[InetAddress]] | None = None
        self._managed_routes: list[Route] = []
        self.frames_dropped = 0
        self.closed = False
        if not 0 <= mac < 1 << 48 or mac & 0x010000000000:
            raise TapError(f"network {nwid:016x}: invalid unicast MAC {mac:#x}")
        if not 68 <= mtu <= 65535:
            raise TapError(f"network {nwid:016x}: invalid MTU {mtu}")

        fd = _open_tun()
        try:
            name = choose_linux_device_name(nwid, devicemap=devicemap)
            try:
                raw = fcntl.ioctl(
                    fd,
                    TUNSETIFF,
                    _IFREQ_FLAGS.pack(name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
                )
                self._vnet = True
            except OSError:
                try:  # a kernel without virtio-net headers on TAPs: frames as they are
                    raw = fcntl.ioctl(
                        fd, TUNSETIFF, _IFREQ_FLAGS.pack(name.encode(), IFF_TAP | IFF_NO_PI)
                    )
                except OSError as e:
                    raise TapError(
                        f"unable to configure TUN/TAP device {name} for TAP: {e}"
                    ) from None
            name = bytes(_IFREQ_FLAGS.unpack(raw)[0]).rstrip(b"\0").decode()
            try:
                fcntl.ioctl(fd, TUNSETPERSIST, 0)
            except OSError as e:
                log.debug("%s: TUNSETPERSIST 0: %s", name, e)
            self._name = name
            try:
                _set_mac(name, mac)
                _set_mtu(name, mtu)
                _bring_up(name)
            except OSError as e:
                raise TapError(
                    f"{name}: setting MAC/MTU or bringing the link up failed: {e}"
                ) from None
            try:
                self._ifindex = socket.if_nametoindex(name)
            except OSError as e:
                raise TapError(f"{name}: no interface index: {e}") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        with _live_lock:
            _live.add((self._ifindex, name))
        self._set_alias(str(AliasMarker.mine(nwid)))
        log.info("%s: created for network %016x (MAC %012x, MTU %d)", name, nwid, mac, mtu)

    # --- Tap protocol ---------------------------------------------------------------

    @property
    def device_name(self) -> str:
        return self._name

    @property
    def ifindex(self) -> int:
        return self._ifindex

    @property
    def mac(self) -> int:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameHandler,
              on_batch_end: BatchEnd | None = None) -> None:  # fmt: skip
        if self.closed:
            raise TapError(f"{self._name}: closed")
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._loop = loop
        self._on_frame = on_frame
        self._on_batch_end = on_batch_end
        loop.add_reader(self._fd, self._on_readable)

    def put(self, source: int, destination: int, ethertype: int, payload: bytes) -> None:
        if self.closed or len(payload) > self._mtu:
            self.frames_dropped += 1
            return
        key = (source, destination, ethertype)
        header = self._headers.get(key)
        if header is None:
            header = (
                destination.to_bytes(6, "big")
                + source.to_bytes(6, "big")
                + (ethertype & 0xFFFF).to_bytes(2, "big")
            )
            if len(self._headers) >= 256:
                self._headers.clear()
            self._headers[key] = header
        if not self._vnet:
            self._write((header, payload))
            return
        # With virtio-net headers, the TCP segments of one burst are written together at
        # the end of the event loop's current pass, consecutive ones merged (gro.py).
        # Anything else goes at once (after what waits), so pings wait for nothing.
        if not (
            (ethertype == 0x0800 and len(payload) > 40 and payload[9] == 6)
            or (ethertype == 0x86DD and len(payload) > 60 and payload[6] == 6)
        ):
            if self._pending:
                self.flush()
            self._write((VNET_NONE, header, payload))
            return
        self._pending.append((header, payload))
        if not self._flush_scheduled:
            if self._loop is None:
                self.flush()
                return
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every frame :meth:`put` queued (merging TCP segments where possible)."""
        self._flush_scheduled = False
        frames, self._pending = self._pending, []
        if self.closed or not frames:
            return
        if len(frames) == 1:
            self._write((VNET_NONE, *frames[0]))
            return
        for write in coalesce(frames):
            self._write(write)

    def _write(self, parts: tuple[bytes, ...]) -> None:
        try:
            os.writev(self._fd, parts)
        except OSError as e:
            self.frames_dropped += 1
            log.debug("%s: frame to host dropped: %s", self._name, e)

    def set_mtu(self, mtu: int) -> None:
        if self.closed:
            raise TapError(f"{self._name}: closed")
        if mtu == self._mtu:
            return
        try:
            _set_mtu(self._name, mtu)
        except OSError as e:
            log.warning("%s: set MTU %d failed: %s", self._name, mtu, e)
            raise TapError(f"{self._name}: set MTU {mtu} failed: {e}") from None
        self._mtu = mtu

    def add_ip(self, address: InetAddress) -> bool:
        if self.closed:
            return False
        if not _valid_prefix(address):
            log.warning("%s: not adding %s: bad prefix length", self._name, address)
            return False
        current = self.ips()
        if address in current:
            if address not in self._managed_ips:
                self._managed_ips.append(address)
            return True
        for other in current:
            if other.ip == address.ip:
                self._addr("del", other)
        if not self._addr("add", address):
            return False
        self._managed_ips.append(address)
        return True

    def remove_ip(self, address: InetAddress) -> bool:
        if self.closed:
            return False
        if address in self._managed_ips:
            self._managed_ips.remove(address)
        if address not in self.ips():
            return False
        return self._addr("del", address)

    def ips(self) -> list[InetAddress]:
        """The device's addresses; re-read at most every 10 s, as ``LinuxEthernetTap::ips``.

        The multicast scan asks every second; a netlink dump (parsed in Python, on a
        thread that holds the GIL meanwhile) each time would stall the data path.
        Our own address changes refresh it at once.
        """
        if self.closed:
            return []
        now = time.monotonic()
        cached = self._ips_cache
        if cached is not None and now - cached[0] < IPS_REFRESH_INTERVAL:
            return list(cached[1])
        found = self._read_ips()
        if found is None:
            return []
        self._ips_cache = (now, found)
        return list(found)

    def _read_ips(self) -> list[InetAddress] | None:
        """None if netlink failed (then nothing is remembered)."""
        index = self._ifindex

        def dump(ipr: Any) -> list[Any]:
            return list(ipr.get_addr(index=index))

        try:
            msgs = self._nl.call(dump)
        except Exception as e:
            log.warning("%s: listing addresses failed: %s", self._name, _err(e))
            return None
        found: set[InetAddress] = set()
        for msg in msgs:
            if msg.get("index") != index:
                continue
            text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if not text:
                continue
            try:
                found.add(InetAddress(ipaddress.ip_address(text), int(msg["prefixlen"])))
            except ValueError:
                continue
        return sorted(found, key=upstream_sort_key)

    def add_route(self, route: Route) -> bool:
        if self.closed:
            return False
        ok = True
        for piece in fork_default_route(route_network(route)):
            ok = self._route("add", route, piece) and ok
        if ok and route not in self._managed_routes:
            self._managed_routes.append(route)
        return ok

    def remove_route(self, route: Route) -> bool:
        if self.closed:
            return False
        if route in self._managed_routes:
            self._managed_routes.remove(route)
        ok = True
        for piece in fork_default_route(route_network(route)):
            ok = self._route("del", route, piece) and ok
        return ok

    def multicast_groups(self) -> list[MulticastGroup]:
        if self.closed:
            return []
        return port_groups(self._joined_macs(), self.ips())

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        for route in list(reversed(self._managed_routes)):
            self.remove_route(route)
        for address in list(self._managed_ips):
            self.remove_ip(address)
        self.closed = True
        if self._loop is not None:
            try:
                self._loop.remove_reader(self._fd)
            except Exception as e:  # the loop may already be closed
                log.debug("%s: remove_reader: %s", self._name, e)
            self._loop = None
        self._on_frame = None
        self._on_batch_end = None
        os.close(self._fd)
        self._fd = -1
        with _live_lock:
            _live.discard((self._ifindex, self._name))
        # Non-persistent: the device goes with its last file descriptor. If a copy of the
        # descriptor lives on (a forked child), delete the link explicitly.
        if _link_name(self._nl, self._ifindex) == self._name:
            _delete_link(self._nl, self._ifindex, self._name)
        log.info("%s: closed", self._name)

    # --- internals ------------------------------------------------------------------

    def _on_readable(self) -> None:
        if self._read_frames() and self._on_batch_end is not None:
            self._on_batch_end()

    def _read_frames(self) -> int:
        """Up to MAX_FRAMES_PER_WAKEUP frames to ``on_frame``; how many went."""
        delivered = 0
        fd = self._fd
        buf = self._rbuf
        view = self._rview
        for _ in range(MAX_FRAMES_PER_WAKEUP):
            if fd < 0 or self._on_frame is None:
                return delivered
            try:
                n = os.readv(fd, (buf,))
            except BlockingIOError:
                return delivered
            except InterruptedError:
                continue
            except OSError as e:
                log.warning("%s: read failed: %s", self._name, e)
                return delivered
            at = 0
            if self._vnet:
                at = VNET_HDR_LEN
                # a checksum to finish or GSO (offloads are never switched on)
                if (buf[0] or buf[1]) and not self._finish_checksum(n):
                    continue
            if n <= at + 14:  # upstream needs more than a bare header
                continue
            n = min(n, at + self._mtu + 14)
            destination = int.from_bytes(view[at : at + 6], "big")
            source = int.from_bytes(view[at + 6 : at + 12], "big")
            ethertype = (buf[at + 12] << 8) | buf[at + 13]
            delivered += 1
            try:
                self._on_frame(source, destination, ethertype, bytes(view[at + 14 : n]))
            except Exception:
                log.exception("%s: frame handler failed", self._name)
        return delivered

    def _finish_checksum(self, n: int) -> bool:
        """A frame read with a virtio_net_hdr asking for work: finish it in the buffer."""
        frame = bytearray(self._rbuf[VNET_HDR_LEN:n])
        if not complete_checksum(bytes(self._rbuf[:VNET_HDR_LEN]), frame):
            self.frames_dropped += 1
            log.debug("%s: dropped a GSO frame from the host (offloads are off)", self._name)
            return False
        self._rbuf[VNET_HDR_LEN:n] = frame
        return True

    def _set_alias(self, alias: str) -> None:
        index = self._ifindex

        def set_alias(ipr: Any) -> None:
            ipr.link("set", index=index, ifalias=alias)

        try:
            self._nl.call(set_alias)
        except Exception as e:
            log.warning("%s: setting interface alias failed: %s", self._name, _err(e))

    def _addr(self, command: str, address: InetAddress) -> bool:
        self._ips_cache = None
        index = self._ifindex
        kwargs: dict[str, Any] = {
            "index": index,
            "address": str(address.ip),
            "prefixlen": address.port,
        }
        if address.ip.version == 4:
            kwargs["local"] = str(address.ip)
            if command == "add":
                kwargs["label"] = self._name
                if address.port < 31:
                    net = ipaddress.ip_network((address.ip, address.port), strict=False)
                    kwargs["broadcast"] = str(net.broadcast_address)

        def run(ipr: Any) -> None:
            ipr.addr(command, **kwargs)

        try:
            self._nl.call(run)
        except Exception as e:
            if command == "add" and _errno(e) == errno.EEXIST:
                return True
            log.warning("%s: ip address %s %s failed: %s", self._name, command, address, _err(e))
            return False
        log.info("%s: ip address %s %s", self._name, command, address)
        return True

    def _route(self, command: str, route: Route, piece: IPNetwork) -> bool:
        family = socket.AF_INET if piece.version == 4 else socket.AF_INET6
        spec: dict[str, Any] = {
            "family": family,
            "dst": str(piece.network_address),
            "dst_len": piece.prefixlen,
            "oif": self._ifindex,
            "table": RT_TABLE_MAIN,
            "proto": RTPROT_STATIC,
            "scope": RT_SCOPE_UNIVERSE,
            "type": RTN_UNICAST,
        }
        metric = route.metric
        via = route_gateway(route)
        if via is not None:
            spec["gateway"] = str(via)
            metric = metric or GATEWAY_ROUTE_METRIC
        if metric:
            spec["priority"] = metric
        text = f"{piece} via {via or '-'} dev {self._name} metric {metric or '-'}"

        def run(ipr: Any) -> None:
            ipr.route(command, **spec)

        try:
            self._nl.call(run)
        except Exception as e:
            code = _errno(e)
            if command == "add" and code == errno.EEXIST and self._route_present(spec):
                return True
            level = logging.DEBUG if command == "del" and code == errno.ESRCH else logging.WARNING
            log.log(level, "%s: route %s %s failed: %s", self._name, command, text, _err(e))
            return False
        log.info("%s: route %s %s", self._name, command, text)
        return True

    def _route_present(self, spec: dict[str, Any]) -> bool:
        """An identical route exists (``LinuxNetLink::routeIsSet``)."""

        def dump(ipr: Any) -> list[Any]:
            return list(ipr.get_routes(family=spec["family"], table=RT_TABLE_MAIN))

        try:
            msgs = self._nl.call(dump)
        except Exception:
            return False
        for msg in msgs:
            if (
                msg.get("dst_len") == spec["dst_len"]
                and (msg.get_attr("RTA_DST") or _zero(spec["family"])) == spec["dst"]
                and msg.get_attr("RTA_OIF") == spec["oif"]
                and msg.get_attr("RTA_GATEWAY") == spec.get("gateway")
                and (msg.get_attr("RTA_PRIORITY") or 0) == spec.get("priority", 0)
            ):
                return True
        return False

    def _joined_macs(self) -> list[int]:
        """MACs the device joined, from ``/proc/net/dev_mcast`` (this network namespace)."""
        try:
            with open(DEV_MCAST, encoding="ascii", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError as e:
            log.debug("%s: cannot read %s: %s", self._name, DEV_MCAST, e)
            return []
        macs: list[int] = []
        for line in lines:
            fields = line.split()
            if len(fields) >= 5 and fields[1] == self._name and len(fields[4]) == 12:
                try:
                    macs.append(int(fields[4], 16))
                except ValueError:
                    continue
        return macs


def _zero(family: int) -> str:
    return "0.0.0.0" if family == socket.AF_INET else "::"


def _valid_prefix(address: InetAddress) -> bool:
    return 0 <= address.port <= (32 if address.ip.version == 4 else 128)


def _link_name(nl: Netlink, index: int) -> str | None:
    def get(ipr: Any) -> Any:
        return ipr.get_links(index)

    try:
        msgs = nl.call(get)
    except Exception as e:
        if _errno(e) not in (errno.ENODEV, errno.ENOENT):
            log.debug("looking up link %d: %s", index, _err(e))
        return None
    for msg in msgs:
        name = msg.get_attr("IFLA_IFNAME")
        if isinstance(name, str):
            return name
    return None


def _delete_link(nl: Netlink, index: int, name: str) -> bool:
    def delete(ipr: Any) -> None:
        ipr.link("del", index=index)

    try:
        nl.call(delete)
    except Exception as e:
        log.warning("%s: ip link del failed: %s", name, _err(e))
        return False
    log.info("%s: deleted", name)
    return True


# --- the factory --------------------------------------------------------------------


class LinuxTapFactory:
    """Makes :class:`LinuxTap` ports; ``home`` is where ``devicemap`` is looked for."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home) if home is not None else None
        self.netlink = Netlink()

    def create(self, nwid: int, mac: int, mtu: int, friendly_name: str) -> LinuxTap:
        try:
            return LinuxTap(nwid, mac, mtu, friendly_name, self.netlink, read_devicemap(self.home))
        except TapError as e:
            log.warning("network %016x: cannot create port: %s", nwid, e)
            raise

    def cleanup_stale(self) -> list[str]:
        """Delete TAP devices a ztone left behind; return their names.

        A device is removed only if all of these hold: its name has the generated
        shape (``zt`` + 8 base32; ``devicemap`` names are never touched), it is a
        tun/tap device, its alias is a ztone marker (zerotier-one, which uses the
        same names, sets none), the process the marker names is gone (pid and start
        time), or it is this process and no open :class:`LinuxTap` owns the device.
        """

        def dump(ipr: Any) -> list[Any]:
            return list(ipr.get_links())

        try:
            links = self.netlink.call(dump)
        except Exception as e:
            log.warning("cleanup: listing links failed: %s", _err(e))
            return []
        with _live_lock:
            live = set(_live)
        removed: list[str] = []
        for link in links:
            name = link.get_attr("IFLA_IFNAME")
            index = link.get("index")
            if not isinstance(name, str) or not is_linux_ztone_name(name):
                continue
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            if kind != "tun":
                continue
            marker = AliasMarker.parse(link.get_attr("IFLA_IFALIAS"))
            if marker is None or (index, name) in live:
                continue
            if marker.pid != os.getpid() and marker.process_alive():
                continue  # another running ztone's port
            if _delete_link(self.netlink, int(index), name):
                log.info("cleanup: removed stale port %s (network %016x)", name, marker.nwid)
                removed.append(name)
        return removed

    def close(self) -> None:
        """Stop the netlink worker (ports made by this factory stop working)."""
        self.netlink.close()
