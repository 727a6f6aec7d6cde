"""The per-peer fast path of the steady state: a frame from the port to a known peer on
a direct path, and a datagram from such a peer, each with its byte work in one call
(:mod:`ztone.node.wire.frame_hop`), falling back to the general path for everything
else. It takes the general path's decisions with the general path's own functions, in
the same order; only the layers between them are skipped, so the datagrams, frames,
counters and random draws are the same with it and without it (tests/sim).

In (:meth:`FastPath.receive`), taken when the datagram is one unfragmented packet to
us, 0 hops, cipher suite 1 or 3, from a peer in the table over a path we know, and its
MAC holds; the opened packet goes to :meth:`Switch.dispatch_opened
<ztone.node.vl1.switch.Switch.dispatch_opened>` (every verb, as
``Switch.decode`` would). Otherwise nothing has changed and the general path runs.

Fragmented packets (a head and its fragments, §5.7) go through the general path's
``Switch.on_datagram`` and its one reassembler (same table, bounds, duplicate and
order handling); the packet it makes whole comes to :meth:`FastPath.receive_assembled`
(``Switch.open_assembled``), which opens it in one call under the same conditions
(the fragmented flag allowed) or leaves it to ``Switch.decode``.

Out (:meth:`FastPath.send_frame`), taken for a unicast frame of our own MAC to a
member's MAC (no bridging, no multicast, no ``physical`` MTU or trusted-path settings):
the network's rules run as in ``frames.on_tap_frame`` (the real engine: any rule set,
nothing cached), credentials are pushed if due, and when the member is a known peer with
a live path the FRAME is sealed from the per-peer header template (built once) and sent
as ``Switch.send_via_path`` would send it. Without peer or path it goes on through
``send`` (WHOIS, queue, relay), as the general path does at that point.

Receive grants (:mod:`ztone.node.fast_grants`), when the host asked for them
(:meth:`FastPath.enable_grants`): after a FRAME this path opened went through the
general path's handler, the grant table is offered it.

Table: the header templates, ``FAST_PATH_TEMPLATES`` entries, cleared when full
(:mod:`ztone.node.bounds`).
"""

from __future__ import annotations

from types import ModuleType

from ztone.node import bounds as B
from ztone.node.actions import SendPacket
from ztone.node.fast_grants import GrantTable
from ztone.node.metrics import TX
from ztone.node.port import NodePort
from ztone.node.vl1.path import Path
from ztone.node.vl1.switch import Switch
from ztone.node.wire import frame_hop
from ztone.node.wire.fragment import DEFAULT_PHYSMTU
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.packet import Verb, uncompress
from ztone.node.wire.vl2_verbs import serialize_frame


class FastPath:
    """The fast path of one node; ``rx_taken``/``tx_taken`` count what it carried."""

    __slots__ = (
        "_address5",
        "_native",
        "_port",
        "_switch",
        "_templates",
        "grants",
        "rx_taken",
        "tx_taken",
    )

    def __init__(self, port: NodePort, switch: Switch, native: ModuleType | None) -> None:
        """``native``: the accelerator with the hop functions, else None (pure hop)."""
        self._port = port
        self._native = native
        self._switch = switch
        self._address5 = int(port.address).to_bytes(5, "big")
        self._templates: dict[tuple[int, int], bytes] = {}
        self.rx_taken = 0
        self.tx_taken = 0
        self.grants: GrantTable | None = None
        switch.open_assembled = self.receive_assembled

    def enable_grants(self) -> GrantTable:
        """Start making receive grants (the host has a native data plane to use them)."""
        if self.grants is None:
            self.grants = GrantTable(self._port, self._switch)
        return self.grants

    def template_count(self) -> int:
        """Header templates held (bounded by ``FAST_PATH_TEMPLATES``)."""
        return len(self._templates)

    def receive(self, now: int, local_socket: int, remote: InetAddress, data: bytes) -> bool:
        """Carry a datagram if it is the steady state's; False: untouched, take the
        general path. May raise MalformedPacket (as the general path would)."""
        if len(data) < 28 or data[13] == 0xFF or data[18] & 0x40:
            return False  # short, a beacon, a fragment or a head (receive_assembled)
        port = self._port
        peer = port.peers.get(int.from_bytes(data[13:18], "big"))
        if peer is None:
            return False
        switch = self._switch
        path = switch.paths.get((local_socket, remote))
        if path is None:
            return False
        packet = frame_hop.open_packet(self._native, peer.key, self._address5, data)
        if packet is None:
            return False
        path.last_in = now
        uncompress(packet)
        self.rx_taken += 1
        switch.dispatch_opened(now, path, peer, packet)
        if self.grants is not None:
            self.grants.offer(now, path, peer, packet)
        return True

    def receive_assembled(self, now: int, path: Path, whole: bytes) -> bool:
        """Open a packet the general path's reassembler just made whole (its path's
        ``last_in`` already set there) if it is the steady state's: from a peer in the
        table, 0 hops, suite 1 or 3, MAC holds. False: untouched, ``Switch.decode``
        takes it. May raise MalformedPacket (as decode would)."""
        if len(whole) < 28:
            return False
        peer = self._port.peers.get(int.from_bytes(whole[13:18], "big"))
        if peer is None:
            return False
        packet = frame_hop.open_packet(self._native, peer.key, self._address5, whole, True)
        if packet is None:
            return False
        uncompress(packet)
        self.rx_taken += 1
        self._switch.dispatch_opened(now, path, peer, packet)
        if self.grants is not None:
            self.grants.offer(now, path, peer, packet)
        return True

    def send_frame(
        self, now: int, nwid: int, src: int, dst: int, ethertype: int, payload: bytes
    ) -> bool:
        """Carry a frame from the port if it is the steady state's; False: nothing was
        done, take the general path (``frames.on_tap_frame``)."""
        port = self._port
        net = port.networks.get(nwid)
        if (
            net is None
            or net.config is None
            or src != net.mac
            or (dst >> 40) & 0x01
            or dst == net.mac
            or self._switch.physical
        ):
            return False
        target = net.mac_to_member(dst)
        if target is None:
            return False
        # from here on, frames.on_tap_frame's steps for a member's MAC, in its order
        if not net.filter(port, now, False, target, src, dst, ethertype, payload):
            return True
        net.push_credentials_if_needed(port, now, target)
        peer = port.peers.get(target)
        path = peer.best_path(now) if peer is not None else None
        if peer is None or path is None or not frame_hop.fits(len(payload), DEFAULT_PHYSMTU):
            port.send(now, target, Verb.FRAME, serialize_frame(nwid, ethertype, payload))
            return True
        key = (nwid, target)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= B.FAST_PATH_TEMPLATES:
                self._templates.clear()
            template = self._templates[key] = frame_hop.frame_template(
                target, int(port.address), nwid
            )
        # Switch.send's and send_via_path's steps: the packet id, the counts, the seal
        packet_id = port.random(8)
        port.metrics.verbs[TX][Verb.FRAME] += 1
        peer.metrics.tx += 1
        datagrams = frame_hop.seal(
            self._native,
            peer.key,
            peer.supports_aes,
            template,
            packet_id,
            ethertype,
            payload,
            DEFAULT_PHYSMTU,
        )
        self._switch.expect_reply(datagrams[0][0:8])
        emit = port.emit
        local_socket = path.local_socket
        address = path.address
        for datagram in datagrams:
            emit(SendPacket(local_socket, address, datagram))
        path.last_out = now
        if self.grants is not None:
            self.grants.offer_send(now, net, dst, peer, path, ethertype, template)
        port.counters["tx_packets"] += 1
        self.tx_taken += 1
        return True
