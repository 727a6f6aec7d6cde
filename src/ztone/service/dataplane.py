"""The native receive data plane: the core's receive grants mirrored into
``ztone._speedups.Dataplane``, which reads the UDP sockets itself and writes the steady
state's frames straight to their TAPs (see the C file's section and
:mod:`ztone.node.fast_grants`); runs of TCP segments in one burst go to a TAP with a
virtio_net_hdr as one GSO write, merged as :func:`ztone.osdep.linux.gro.coalesce`
merges them (``_dp_gro.h``).

The runner owns one :class:`NativeDataplane` when the accelerator has ``Dataplane``
(Linux), the node has a fast path, and ``ZTONE_DATAPLANE`` is not ``0``. Its duties:

* :meth:`reader`: udp.py's burst reader for each socket (every datagram the native
  side does not deliver comes back and is queued for the core as before);
* after every core input, :meth:`report` the native activity to the core, then (once
  the input's actions are applied) :meth:`mirror` the grants when they changed. A
  grant only reaches the native table once udp.py's queues are empty (a frame still
  waiting there must not be overtaken by a later one delivered natively); removals
  apply at once;
* :meth:`report` on a timer (``FAST_GRANT_SYNC``) while grants exist and before the
  API shows peers, paths or metrics, so ``lastReceive`` and the counters stay true;
* :meth:`after_burst`: once a socket's burst wrote frames to ports, read those ports at
  once (the pump's :meth:`~ztone.service.frame_pump.FramePump.poll`). The host's stack
  answers a ping, and acknowledges TCP data, inside the write, so the answer is
  already there: read now, it leaves without another event-loop turn (a turn costs
  tens of microseconds, about a hundred when the loop has been idle).

Only Linux TAPs (:class:`~ztone.osdep.linux.tun.TunDevice`) get grants: a frame for a
network on another kind of port goes through the general path.

The reactor (on unless ``ZTONE_DATAPLANE_THREAD=0``; the C side is
``src/ztone/_dp_reactor.h``): :meth:`NativeDataplane.start_reactor` starts a native
thread that reads the UDP sockets and the Linux TAPs itself, without the GIL, so the
steady state's hops wake no Python at all (an event-loop wakeup costs ~85 us of
Python on a small VM, and a ping took three). The data plane then owns those fds
(udp.py's :class:`~ztone.service.udp.SocketOwner`, frame_pump's
:class:`~ztone.service.frame_pump.PortOwner`): the event loop does not watch them;
what the thread does not carry waits in its bounded ring (``DATAPLANE_RING_ITEMS``,
``DATAPLANE_RING_BYTES``) and an eventfd wakes the loop, whose callback
(:meth:`NativeDataplane.take`) hands datagrams to udp.py's queues and port reads to
the pump, exactly as the burst readers above would. A new receive grant is installed
only while neither udp.py's queues nor the ring hold a datagram (the table checks the
ring under its lock: ``replace(grants, kept)``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeGuard

from ztone.node import bounds as B
from ztone.node.fast_grants import Activity, Grant, GrantKey, SendGrant
from ztone.node.node import Node
from ztone.node.wire.fragment import DEFAULT_PHYSMTU
from ztone.node.wire.inetaddress import InetAddress
from ztone.osdep.base import EthernetFrame, FrameDevice, FrameDeviceError, LinkConfig
from ztone.service.frame_pump import FramePump
from ztone.service.udp import UdpSockets

if TYPE_CHECKING:
    from ztone.osdep.linux.tun import TunDevice

log = logging.getLogger(__name__)

READS_PER_BURST = 1024
"""recvmmsg reads per readable wakeup at most (udp.py's READS_PER_WAKEUP)."""

NativeRecord = tuple[int, int, int, bytes, int, int, int, int, int]
"""What ``Dataplane.drain`` gives per grant (see the C docstring)."""


def is_tun(device: object) -> TypeGuard[TunDevice]:
    """``device`` is a Linux TAP's frame device. The TAP module loads with the first
    Linux port (osdep/linux/tap.py), so until then nothing can be one."""
    tun = sys.modules.get("ztone.osdep.linux.tun")
    return tun is not None and isinstance(device, tun.TunDevice)


def native_dataplane_module(native: ModuleType | None) -> ModuleType | None:
    """``native`` if it has the data plane and it is not turned off by
    ``ZTONE_DATAPLANE=0``."""
    if native is None or not hasattr(native, "Dataplane"):
        return None
    if os.environ.get("ZTONE_DATAPLANE", "1") == "0":
        return None
    return native


def reactor_wanted() -> bool:
    """Whether the data plane's native thread should run (``ZTONE_DATAPLANE_THREAD``
    is not ``0``)."""
    return os.environ.get("ZTONE_DATAPLANE_THREAD", "1") != "0"


class NativeDataplane:
    """The mirror of the core's grants in the native table, and its reports."""

    def __init__(
        self,
        native: ModuleType,
        node: Node,
        pump: FramePump,
        now: Callable[[], int],
        queues_empty: Callable[[], bool],
        on_received: Callable[[int, InetAddress, int], None],
        udp_allowed: Callable[[], bool],
        send_socket: Callable[[int, InetAddress], int | None],
        on_sent: Callable[[InetAddress, int], None],
        udp_only: Callable[[], bool],
    ) -> None:
        """``on_received(now, remote, bytes)``: what the runner notes for each UDP
        datagram (its byte counter, the TCP fallback's last direct receive), called per
        grant reported; ``udp_allowed()``: False while UDP must be ignored
        (``forceTcpRelay``): then the native table holds no grant. Send side:
        ``send_socket(socket id, remote)`` the one UDP socket fd a datagram would leave
        by (None: no send grant), ``on_sent(remote, bytes)`` counts what the table sent,
        ``udp_only()`` False while the TCP fallback carries datagrams (no send grant)."""
        self._native = native
        self._node = node
        self._pump = pump
        self._now = now
        self._queues_empty = queues_empty
        self._on_received = on_received
        self._udp_allowed = udp_allowed
        self._send_socket = send_socket
        self._on_sent = on_sent
        self._udp_only = udp_only
        self._send_nwids: set[int] = set()
        self._table: Any = native.Dataplane(
            int(node.address).to_bytes(5, "big"),
            B.FAST_GRANTS,
            B.FAST_REASSEMBLY_SLOTS,
            B.FAST_REASSEMBLY_TIMEOUT,
        )
        self._version = -1
        self._mirrored: dict[GrantKey, tuple[Any, ...]] = {}
        self._fds: dict[int, int] = {}  # network id -> the port fd its grants write to
        self._state = (True, True)
        self._addresses: dict[tuple[str, int], InetAddress] = {}
        self._delivered = 0  # the table's delivered counter at the last burst's end
        self._reactor: tuple[Any, int] | None = None  # (event loop, ring eventfd)
        self._udp: UdpSockets | None = None

    @property
    def reactor(self) -> bool:
        """Whether the native thread runs (then it owns the sockets and TAPs)."""
        return self._reactor is not None

    def start_reactor(self, loop: Any, udp: UdpSockets) -> bool:
        """Start the native thread and watch its ring's eventfd on ``loop``; the caller
        then makes this data plane the owner of ``udp``'s sockets and the pump's ports.
        False (nothing started) when it cannot start."""
        if self._reactor is not None:
            return True
        try:
            fd: int = self._table.start(B.DATAPLANE_RING_ITEMS, B.DATAPLANE_RING_BYTES)
        except (OSError, RuntimeError, ValueError) as e:
            log.warning("native data plane: no reactor thread: %s", e)
            return False
        loop.add_reader(fd, self.take)
        self._reactor = (loop, fd)
        self._udp = udp
        return True

    def stop_reactor(self) -> None:
        """Stop the thread (joined); call after its fds went back to the event loop."""
        if self._reactor is None:
            return
        loop, fd = self._reactor
        self._reactor = None
        try:
            loop.remove_reader(fd)
        except (ValueError, RuntimeError, OSError) as e:  # the loop may be closed
            log.debug("native data plane: remove_reader: %s", e)
        self._table.stop()

    def take(self) -> None:
        """The ring's eventfd is readable: hand what the thread did not carry on, in
        its order (datagrams to udp.py's queues, port reads to the pump)."""
        items: list[tuple[int, int, str, int, bytes]] = self._table.take()
        try:
            self._hand_on(items)
        finally:
            # the reads given back were handed (their frames' datagrams sent): only
            # now may those ports send natively again, or a later frame could overtake
            self._table.taken()

    def _hand_on(self, items: list[tuple[int, int, str, int, bytes]]) -> None:
        datagrams: list[tuple[int, str, int, bytes]] = []
        reads: list[bytes] = []
        reads_of = -1
        for kind, ident, host, port, data in items:
            if kind == 0:
                datagrams.append((ident, host, port, data))
                continue
            if reads and ident != reads_of:
                self._hand_reads(reads_of, reads)
                reads = []
            if kind == 1:
                reads_of = ident
                reads.append(data)
            else:
                self._pump.failed(ident)
        if reads:
            self._hand_reads(reads_of, reads)
        if datagrams and self._udp is not None:
            self._udp.accept(datagrams)

    def _hand_reads(self, nwid: int, reads: list[bytes]) -> None:
        port = self._pump.port(nwid)
        if port is not None and is_tun(port[0]):
            self._pump.hand(nwid, port[0].frames_of(reads))

    # udp.SocketOwner and frame_pump.PortOwner, while the reactor runs

    def watch_socket(self, fd: int, sock_id: int) -> bool:
        """udp.py's socket ``fd`` is read by the thread from now on."""
        if self._reactor is None:
            return False
        try:
            self._table.watch_socket(fd, sock_id)
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("native data plane: socket %d stays with the event loop: %s", fd, e)
            return False
        return True

    def own_port(self, nwid: int, device: FrameDevice) -> bool:
        """A Linux TAP is read by the thread from now on; any other port is not."""
        if self._reactor is None or not is_tun(device):
            return False
        try:
            self._table.watch_port(device.fileno(), nwid, device.vnet)
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("native data plane: port %s stays with the event loop: %s", device.name, e)
            return False
        return True

    def unwatch(self, fd: int) -> None:
        """The thread stops using ``fd`` (before it closes): no read, write or send
        through it after this returns (the grants that use it are dropped)."""
        self._table.unwatch(fd)
        self._version = -1  # mirror again: the table no longer holds those grants

    release_port = unwatch

    @property
    def grants(self) -> int:
        """Receive grants in the native table."""
        return len(self._mirrored)

    @property
    def active(self) -> bool:
        """Whether the native table holds any grant (then it reports on a timer)."""
        return bool(self._mirrored or self._send_nwids)

    def stats(self) -> dict[str, int]:
        """The native table's counters (see ``Dataplane.stats``)."""
        stats: dict[str, int] = self._table.stats()
        return stats

    def reader(self, fd: int, sock_id: int) -> list[tuple[str, int, bytes]]:
        """udp.py's burst reader: read ``fd`` and give back what the core must see."""
        passed: list[tuple[str, int, bytes]] = self._table.rx_burst(
            fd, sock_id, self._now(), READS_PER_BURST
        )
        return passed

    def after_burst(self) -> None:
        """udp.py's hook after a burst (its leftovers handed to the core): when the
        burst wrote frames to ports, read the ports that have receive grants now."""
        delivered: int = self._table.delivered
        if delivered == self._delivered:
            return
        self._delivered = delivered
        for nwid in list(self._fds):
            self._pump.poll(nwid)

    def report(self) -> None:
        """Hand the native activity since the last report to the core."""
        now = self._now()
        received = self._activity(self._table.drain())
        if received:
            for _, _, _, remote, _, _, nbytes, last in received:
                self._on_received(last, remote, nbytes)
            self._node.on_fast_activity(now, received)
        sent = self._activity(self._table.drain_send())
        if sent:
            for _, _, _, remote, _, _, nbytes, _ in sent:
                self._on_sent(remote, nbytes)
            self._node.on_fast_send_activity(now, sent)

    def _activity(self, records: list[NativeRecord]) -> list[Activity]:
        """The native table's drained records with their addresses as the core's."""
        return [
            (nwid, peer, sock_id, self._address(ip, port), datagrams, packets, nbytes, last)
            for nwid, peer, sock_id, ip, port, datagrams, packets, nbytes, last in records
        ]

    def tx_reader(self, nwid: int, device: FrameDevice, limit: int) -> list[EthernetFrame] | None:
        """frame_pump's burst reader: send what the send grants cover, give the rest
        back as frames; None when ``nwid`` has no send grant (the pump reads)."""
        if nwid not in self._send_nwids or not is_tun(device):
            return None
        try:
            reads: list[bytes] = self._table.tx_burst(
                device.fileno(), device.vnet, nwid, self._now(), limit
            )
        except OSError as e:
            raise FrameDeviceError(f"{device.name}: read failed: {e}") from None
        return device.frames_of(reads)

    def _address(self, ip: bytes, port: int) -> InetAddress:
        key = (ip.hex(), port)
        address = self._addresses.get(key)
        if address is None:
            if len(self._addresses) >= B.FAST_GRANTS:
                self._addresses.clear()
            address = self._addresses[key] = InetAddress(ipaddress.ip_address(ip), port)
        return address

    def mirror(self) -> None:
        """After a core input (and its actions): mirror the grants if they changed."""
        version, grants = self._node.receive_grants(self._now())
        allowed = self._udp_allowed()
        udp_only = self._udp_only()
        state = (allowed, udp_only)
        if version == self._version and state == self._state and self._fds_hold():
            return
        self._state = state
        if not allowed:
            grants = []
        wanted: dict[GrantKey, tuple[Any, ...]] = {}
        for grant in grants:
            entry = self._entry(grant)
            if entry is not None:
                wanted[(grant.nwid, grant.peer, grant.local_socket, grant.remote)] = entry
        # new grants wait until nothing older from their sources waits in udp.py or
        # in the reactor's ring (the table checks the ring under its lock)
        kept = {k: v for k, v in wanted.items() if k in self._mirrored}
        complete = True
        if not self._queues_empty():
            complete = len(kept) == len(wanted)
            wanted = kept
        sends: list[tuple[Any, ...]] = []
        if allowed and udp_only:
            for send in self._node.send_grants():
                row = self._send_entry(send)
                if row is not None:
                    sends.append(row)
        try:
            if self._reactor is not None and len(kept) != len(wanted):
                if not self._table.replace(list(wanted.values()), list(kept.values())):
                    wanted = kept
                    complete = False
            else:
                self._table.replace(list(wanted.values()))
            self._table.replace_send(sends)
        except (ValueError, TypeError, OSError) as e:
            log.warning("native data plane: grants not mirrored: %s", e)
            self._table.replace([])
            self._table.replace_send([])
            wanted = {}
            sends = []
        self._send_nwids = {row[0] for row in sends}
        self._mirrored = wanted
        self._fds = {entry[0]: entry[5] for entry in wanted.values()}
        self._version = version if complete else -1

    def _tun(self, nwid: int) -> tuple[TunDevice, LinkConfig] | None:
        """The network's open TAP and its link settings; None for any other port."""
        port = self._pump.port(nwid)
        if port is None:
            return None
        device, link = port
        if not is_tun(device) or device.fileno() < 0:
            return None
        return device, link

    def _send_entry(self, grant: SendGrant) -> tuple[Any, ...] | None:
        tun = self._tun(grant.nwid)
        fd = self._send_socket(grant.local_socket, grant.remote) if tun is not None else None
        if tun is None or fd is None:
            return None
        return native_send_entry(self._native, grant, fd, tun[1].mtu)

    def _fds_hold(self) -> bool:
        """Whether every mirrored network's port is still the fd its grants write to (a
        port closed or replaced must never be written through a stale fd)."""
        for nwid, fd in self._fds.items():
            port = self._pump.port(nwid)
            if port is None or port[0].fileno() != fd:
                return False
        return True

    def _entry(self, grant: Grant) -> tuple[Any, ...] | None:
        tun = self._tun(grant.nwid)
        if tun is None:
            return None
        device, link = tun
        return native_entry(self._native, grant, device.fileno(), device.vnet, link.mtu)

    def close(self) -> None:
        """Stop the thread and empty the native table (the ports' fds may close after
        this)."""
        self.stop_reactor()
        self.report()
        self._table.replace([])
        self._table.replace_send([])
        self._send_nwids = set()
        self._mirrored = {}
        self._fds = {}
        self._version = -1


def native_entry(
    native: ModuleType, grant: Grant, fd: int, vnet: bool, link_mtu: int
) -> tuple[Any, ...]:
    """``grant`` as a row of ``Dataplane.replace``, writing to port ``fd`` (with a
    virtio_net_hdr when ``vnet``) frames whose payload fits ``link_mtu`` (the pump's
    own limit; a longer one goes to the general path, which drops and counts it)."""
    key = grant.key
    return (
        grant.nwid,
        grant.peer,
        grant.local_socket,
        grant.remote.ip.packed,
        grant.remote.port,
        fd,
        vnet,
        min(link_mtu, grant.mtu),
        grant.mac,
        grant.peer_mac,
        grant.ethertypes,
        key.siv if key.crypto.native is native else None,
        key.salsa_key,
        grant.expires,
    )


def native_send_entry(
    native: ModuleType, grant: SendGrant, sock_fd: int, link_mtu: int
) -> tuple[Any, ...]:
    """``grant`` as a row of ``Dataplane.replace_send``, sending from UDP socket
    ``sock_fd`` frames whose payload fits ``link_mtu`` (what the pump would hand on
    whole) and cutting packets for the default physical MTU, as ``FastPath`` does."""
    key = grant.key
    return (
        grant.nwid,
        grant.peer,
        grant.dst_mac,
        grant.src_mac,
        sock_fd,
        grant.local_socket,
        grant.remote.ip.packed,
        grant.remote.port,
        grant.template,
        key.siv if grant.aes and key.crypto.native is native else None,
        key.salsa_key,
        grant.ethertypes,
        min(link_mtu, grant.mtu),
        DEFAULT_PHYSMTU,
        grant.expires,
    )
