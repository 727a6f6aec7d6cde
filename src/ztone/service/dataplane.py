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
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ztone.node import bounds as B
from ztone.node.fast_grants import Activity, Grant, GrantKey, SendGrant
from ztone.node.node import Node
from ztone.node.wire.fragment import DEFAULT_PHYSMTU
from ztone.node.wire.inetaddress import InetAddress
from ztone.osdep.base import EthernetFrame, FrameDevice, FrameDeviceError, LinkConfig
from ztone.osdep.linux.tun import TunDevice
from ztone.service.frame_pump import FramePump

log = logging.getLogger(__name__)

READS_PER_BURST = 1024
"""recvmmsg reads per readable wakeup at most (udp.py's READS_PER_WAKEUP)."""

NativeRecord = tuple[int, int, int, bytes, int, int, int, int, int]
"""What ``Dataplane.drain`` gives per grant (see the C docstring)."""


def native_dataplane_module(native: ModuleType | None) -> ModuleType | None:
    """``native`` if it has the data plane and it is not turned off by
    ``ZTONE_DATAPLANE=0``."""
    if native is None or not hasattr(native, "Dataplane"):
        return None
    if os.environ.get("ZTONE_DATAPLANE", "1") == "0":
        return None
    return native


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
        if nwid not in self._send_nwids or not isinstance(device, TunDevice):
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
        complete = True
        if not self._queues_empty():
            # new grants wait until nothing older from their sources waits in udp.py
            kept = {k: v for k, v in wanted.items() if k in self._mirrored}
            complete = len(kept) == len(wanted)
            wanted = kept
        sends: list[tuple[Any, ...]] = []
        if allowed and udp_only:
            for send in self._node.send_grants():
                row = self._send_entry(send)
                if row is not None:
                    sends.append(row)
        try:
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
        if not isinstance(device, TunDevice) or device.fileno() < 0:
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
        """Empty the native table (the ports' fds may close after this)."""
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
