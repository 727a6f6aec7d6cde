"""The user-space network stack of one ZeroTier network port: Ethernet frames in and out.

A :class:`Stack` is sans-IO (like ``ztone.node``): the caller gives it frames
(:meth:`Stack.receive_frame`) and the time, takes the frames it wants sent
(:meth:`Stack.take_frames`), calls :meth:`Stack.poll` by :meth:`Stack.deadline` and
after every batch of frames or application calls, and asks :meth:`Stack.changed`
which sockets to wake. Randomness (ephemeral ports, TCP initial sequence numbers, the
IPv4 identification) comes from the ``rand`` callable it is given.

What it does (issue 15): ARP (RFC 826) and NDP (RFC 4861 NS/NA) for its addresses and
its neighbours (:mod:`.neighbours`), IPv4 (RFC 791) and IPv6 (RFC 8200); it never
fragments what it sends (IPv4 with DF), and reassembles what it receives within bounds
(:mod:`.fragments`), ICMP/ICMPv6 echo on every address it
holds (also from itself: packets to its own addresses loop back at the next poll),
rate-limited port unreachable for UDP to a closed port, UDP sockets
(:mod:`.udp_socket`), TCP sockets (:mod:`.tcp_socket`) over the ``ztone.netstack.tcp``
engine with MSS = MTU - 40 (IPv4) or MTU - 60 (IPv6). Routes (:mod:`.routing`): each
address's network is on-link, ``fe80::/10`` too; :meth:`Stack.add_route` adds more
(a gateway's MAC is resolved like any neighbour); the longest prefix wins.

The TCP engine (``ztone.netstack.tcp``, :mod:`.tcp_socket`) is loaded by the first
listener or connection: a port nobody uses TCP on never holds it (issue 17, memory); a
segment to a closed port is answered from :mod:`.tcp_segment` alone.

Bad frames never raise: a parser's ``MalformedPacket`` is counted in
``counters.malformed`` and the frame dropped. Every table a remote party can grow is
bounded by :class:`StackLimits`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from ztone.errors import LocalUsageError, MalformedPacket
from ztone.netstack import arp, icmp, ndp
from ztone.netstack.ethernet import (
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    EthernetFrame,
    ipv4_multicast_mac,
    ipv6_multicast_mac,
    is_group_mac,
)
from ztone.netstack.fragments import Key, Reassembler
from ztone.netstack.ipv4 import PROTO_ICMP, Ipv4Packet, build_ipv4, parse_ipv4
from ztone.netstack.ipv6 import PROTO_ICMPV6, Ipv6Packet, build_ipv6, parse_ipv6
from ztone.netstack.neighbours import NeighbourTable
from ztone.netstack.routing import Interface, Network, Routing, address_of
from ztone.netstack.tcp_limits import TcpLimits
from ztone.netstack.tcp_segment import ACK, RST, SYN, TcpSegment, build_tcp, parse_tcp, reset_for
from ztone.netstack.udp import PROTO_UDP, UdpDatagram, build_udp, parse_udp
from ztone.netstack.udp_socket import Address, Endpoint, UdpSocket

if TYPE_CHECKING:
    from ztone.netstack.tcp_socket import TcpListener, TcpSocket

Rand = Callable[[int], int]
"""``rand(k)``: ``k`` random bits as an int (e.g. ``random.Random(seed).getrandbits`` in
tests, ``secrets.randbits`` in the daemon)."""

PROTO_TCP = 6
EPHEMERAL_FIRST = 49152
EPHEMERAL_COUNT = 65536 - EPHEMERAL_FIRST
MIN_MTU = 1280
MAX_MTU = 65535
_LIMITED_BROADCAST = b"\xff\xff\xff\xff"
_ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
_UNSPECIFIED_V6 = bytes(16)
LOOPBACK_QUEUE = 1024
"""Packets to our own addresses waiting for the next poll (more are dropped)."""
LOOPBACK_ROUNDS = 4
"""Rounds of loopback delivery per poll (the rest waits for the next poll)."""


@dataclass(frozen=True, slots=True)
class StackLimits:
    """The bounds of one stack (memory per network is bounded by these)."""

    neighbours: int = 512
    neighbour_ttl: float = 60.0
    neighbour_retry: float = 1.0
    neighbour_tries: int = 3
    pending_neighbours: int = 64
    pending_per_neighbour: int = 64
    udp_sockets: int = 256
    udp_queue: int = 256
    """Datagrams queued per UDP socket."""
    udp_queue_bytes: int = 1 << 20
    icmp_errors_per_second: float = 10.0
    """Port-unreachable messages sent per second at most (burst of the same number)."""
    reassembly_datagrams: int = 16
    """Fragmented datagrams under reassembly at once (a new one evicts the oldest)."""
    reassembly_bytes: int = 256 * 1024
    reassembly_fragments: int = 64
    """Fragments per datagram."""
    reassembly_timeout: float = 10.0
    tcp_connections: int = 512
    """TCP connections in the table (any state, TIME-WAIT and half-open included). The
    stack's TCP memory is at most this many times ``tcp.send_buffer + tcp.recv_buffer``
    (the reorder buffer counts within the receive buffer)."""
    syn_backlog: int = 64
    """Half-open (SYN-RECEIVED) connections per listener: a SYN flood fills no more."""
    time_wait_connections: int = 256
    """Connections kept in TIME-WAIT; beyond it the oldest is forgotten early."""
    orphan_timeout: float = 60.0
    """Seconds a connection the application closed may take to finish, then RST."""
    tcp: TcpLimits = field(default_factory=TcpLimits)


@dataclass(slots=True)
class StackCounters:
    """What the stack did and dropped, by reason (all plain counts)."""

    frames_in: int = 0
    frames_out: int = 0
    not_for_us: int = 0
    """Frames to a MAC we do not listen to, or IP packets to an address we do not hold."""
    malformed: int = 0
    unknown_ethertype: int = 0
    unknown_protocol: int = 0
    fragments: int = 0
    reassembled: int = 0
    """Datagrams put together from fragments."""
    reassembly_dropped: int = 0
    """Fragmented datagrams given up (a bound, an overlap, the timeout)."""
    no_route: int = 0
    unresolved: int = 0
    """Packets dropped waiting for ARP/NDP (a full queue, no answer)."""
    arp_in: int = 0
    arp_out: int = 0
    ndp_in: int = 0
    ndp_out: int = 0
    echo_replies: int = 0
    udp_in: int = 0
    udp_out: int = 0
    udp_no_socket: int = 0
    udp_queue_full: int = 0
    icmp_unreachable_out: int = 0
    tcp_in: int = 0
    tcp_out: int = 0
    tcp_resets_out: int = 0
    tcp_syn_dropped: int = 0
    """SYNs dropped: the listener's half-open queue or the connection table was full."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Stack:
    """One network's user-space IPv4/IPv6 stack (see the module docstring)."""

    def __init__(
        self, mac: int, mtu: int, *, rand: Rand, limits: StackLimits | None = None
    ) -> None:
        if not 0 < mac < 1 << 48 or is_group_mac(mac):
            raise LocalUsageError(f"the stack needs a unicast MAC, not {mac:#x}")
        self.mac = mac
        self.mtu = 0
        self.set_mtu(mtu)
        self.limits = limits if limits is not None else StackLimits()
        self.counters = StackCounters()
        self._rand = rand
        lim = self.limits
        self._neighbours = NeighbourTable(
            lim.neighbours,
            lim.neighbour_ttl,
            lim.neighbour_retry,
            lim.neighbour_tries,
            lim.pending_neighbours,
            lim.pending_per_neighbour,
        )
        self._neighbours_due: float | None = None
        self._routing = Routing()
        self._out: list[EthernetFrame] = []
        self._changed: set[object] = set()
        self._udp: dict[tuple[bytes | None, int], UdpSocket] = {}
        self._ident = rand(16)
        self._icmp_tokens = lim.icmp_errors_per_second
        self._icmp_time = 0.0
        self._tcp: dict[tuple[bytes, int, bytes, int], TcpSocket] = {}
        self._listeners: dict[tuple[bytes | None, int], TcpListener] = {}
        self._dirty: set[TcpSocket] = set()
        self._timers: dict[TcpSocket, float] = {}
        self._time_wait: OrderedDict[TcpSocket, None] = OrderedDict()
        self._last_now = 0.0
        self._loopback: list[tuple[int, bytes]] = []
        self._reassembly = Reassembler(
            lim.reassembly_datagrams,
            lim.reassembly_bytes,
            lim.reassembly_fragments,
            lim.reassembly_timeout,
        )

    # -- link configuration -------------------------------------------------------------

    def set_mtu(self, mtu: int) -> None:
        """The largest IP packet the link carries (ZeroTier networks: 1280..10000)."""
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise LocalUsageError(f"MTU {mtu} outside {MIN_MTU}..{MAX_MTU}")
        self.mtu = mtu

    def add_address(self, ip: Interface) -> None:
        """Hold ``ip`` (its network becomes on-link); adding it twice is fine."""
        self._routing.add_address(ip)

    def remove_address(self, ip: Interface) -> None:
        self._routing.remove_address(ip)

    def addresses(self) -> list[Interface]:
        return self._routing.addresses()

    def add_route(self, target: Network, via: Address | None) -> None:
        """Route ``target`` on-link (``via`` None) or through the gateway ``via``."""
        self._routing.add_route(target, via)

    def remove_route(self, target: Network, via: Address | None) -> None:
        self._routing.remove_route(target, via)

    def routes(self) -> list[tuple[Network, Address | None]]:
        return self._routing.routes()

    @property
    def reassembly_pending(self) -> int:
        """Fragmented datagrams under reassembly (at most ``limits.reassembly_datagrams``)."""
        return len(self._reassembly)

    @property
    def reassembly_buffered(self) -> int:
        """Bytes of fragments held (at most ``limits.reassembly_bytes``)."""
        return self._reassembly.buffered

    @property
    def neighbour_entries(self) -> int:
        """How many neighbours (ARP and NDP) are known now (at most ``limits.neighbours``)."""
        return len(self._neighbours)

    def multicast_macs(self) -> list[int]:
        """The Ethernet groups to listen to: broadcast (ARP), ff02::1 and the
        solicited-node group of each IPv6 address."""
        return [BROADCAST_MAC, *sorted(self._routing.groups)]

    # -- frames and time ----------------------------------------------------------------

    def receive_frame(self, frame: EthernetFrame, now: float) -> None:
        """Take one frame from the network; never raises (bad frames are counted)."""
        _src_mac, dst_mac, ethertype, payload = frame
        self.counters.frames_in += 1
        if dst_mac not in (self.mac, BROADCAST_MAC) and dst_mac not in self._routing.groups:
            self.counters.not_for_us += 1
            return
        try:
            if ethertype == ETHERTYPE_IPV4:
                self._ipv4_input(payload, dst_mac == self.mac, now)
            elif ethertype == ETHERTYPE_IPV6:
                self._ipv6_input(payload, now)
            elif ethertype == ETHERTYPE_ARP:
                self._arp_input(payload, now)
            else:
                self.counters.unknown_ethertype += 1
        except MalformedPacket:
            self.counters.malformed += 1

    def take_frames(self) -> list[EthernetFrame]:
        """The frames to send, oldest first; empties the queue."""
        out, self._out = self._out, []
        return out

    def poll(self, now: float) -> None:
        """Run what is due: neighbour requests and expiry, TCP timers and what the
        application and the frames received since the last poll made due (ACKs, data)."""
        self._last_now = now
        reasm = self._reassembly
        due = reasm.deadline()
        if due is not None and now >= due:
            reasm.expire(now)
            self.counters.reassembly_dropped = reasm.dropped
        due = self._neighbours_due
        if due is not None and now >= due:
            for ip, mac in self._neighbours.due(now):
                self._solicit(ip, mac)
            self._neighbours_due = self._neighbours.deadline()
            self.counters.unresolved = self._neighbours.dropped
            if self._neighbours.failed:
                self._unreachable(self._neighbours.failed)
                self._neighbours.failed = []
        for _ in range(LOOPBACK_ROUNDS):
            work = self._dirty
            self._dirty = set()
            if self._timers:
                work.update(sock for sock, t in self._timers.items() if t <= now)
            for sock in work:
                self._tcp_poll(sock, now)
            if not self._loopback:
                break
            packets, self._loopback = self._loopback, []
            for ethertype, packet in packets:
                self._loopback_input(ethertype, packet, now)

    def _unreachable(self, hops: list[bytes]) -> None:
        """Connections still opening towards a next hop that never answered ARP/NDP fail
        now with "host unreachable" instead of retrying their SYN for a minute."""
        gone = set(hops)
        for sock in list(self._tcp.values()):
            conn = sock.connection
            if conn.opening and self._routing.next_hop(conn.remote_ip) in gone:
                sock.fail("host unreachable")

    def _loopback_input(self, ethertype: int, packet: bytes, now: float) -> None:
        try:
            if ethertype == ETHERTYPE_IPV4:
                self._ipv4_input(packet, True, now)
            else:
                self._ipv6_input(packet, now)
        except MalformedPacket:  # our own packets parse; counted like any other anyway
            self.counters.malformed += 1

    def deadline(self) -> float | None:
        """The latest time :meth:`poll` must run again; None when nothing is pending.
        A time not later than the last one the stack saw means "now" (after frames came
        in or the application wrote)."""
        if self._dirty or self._loopback:
            return self._last_now
        best = self._neighbours_due
        due = self._reassembly.deadline()
        if due is not None and (best is None or due < best):
            best = due
        if self._timers:
            first = min(self._timers.values())
            if best is None or first < best:
                best = first
        return best

    def changed(self) -> set[object]:
        """The sockets whose state changed since the last call; empties the set."""
        out, self._changed = self._changed, set()
        return out

    # -- ARP and NDP --------------------------------------------------------------------

    def _arp_input(self, payload: bytes, now: float) -> None:
        msg = arp.parse_arp(payload)
        self.counters.arp_in += 1
        ours = msg.target_ip in self._routing.v4
        if not is_group_mac(msg.sender_mac) and msg.sender_ip != bytes(4):
            self._learn(msg.sender_ip, msg.sender_mac, now, create=ours)
        if msg.op == arp.REQUEST and ours and not is_group_mac(msg.sender_mac):
            reply = arp.Arp(arp.REPLY, self.mac, msg.target_ip, msg.sender_mac, msg.sender_ip)
            self._emit(msg.sender_mac, ETHERTYPE_ARP, arp.build_arp(reply))
            self.counters.arp_out += 1

    def _learn(self, ip: bytes, mac: int, now: float, create: bool) -> None:
        for ethertype, packet in self._neighbours.confirm(ip, mac, now, create):
            self._emit(mac, ethertype, packet)
        if self._neighbours_due is None:  # a first entry: its refresh must be scheduled
            self._neighbours_due = self._neighbours.deadline()

    def _solicit(self, ip: bytes, mac: int | None) -> None:
        """An ARP request or a neighbour solicitation for ``ip`` (unicast to ``mac`` when
        refreshing a known neighbour)."""
        src = self._routing.source_for(ip)
        if src is None:
            return
        if len(ip) == 4:
            request = arp.Arp(arp.REQUEST, self.mac, src, 0, ip)
            self._emit(BROADCAST_MAC if mac is None else mac, ETHERTYPE_ARP, arp.build_arp(request))
            self.counters.arp_out += 1
            return
        dst = ndp.solicited_node(ip) if mac is None else ip
        body = ndp.neighbor_body(ndp.NeighborMessage(ndp.NEIGHBOR_SOLICITATION, 0, ip, self.mac))
        message = icmp.build_icmp6(icmp.Icmp(ndp.NEIGHBOR_SOLICITATION, 0, body), src, dst)
        packet = build_ipv6(src, dst, PROTO_ICMPV6, message, ndp.HOP_LIMIT)
        self._emit(ipv6_multicast_mac(dst) if mac is None else mac, ETHERTYPE_IPV6, packet)
        self.counters.ndp_out += 1

    def _neighbour_input(self, msg: icmp.Icmp, src: bytes, hop_limit: int, now: float) -> None:
        if hop_limit != ndp.HOP_LIMIT:
            raise MalformedPacket(f"neighbour discovery with hop limit {hop_limit}")
        nd = ndp.parse_neighbor(msg.type, msg.code, msg.body)
        self.counters.ndp_in += 1
        if nd.type == ndp.NEIGHBOR_ADVERTISEMENT:
            if nd.link_mac is not None and not is_group_mac(nd.link_mac):
                self._learn(nd.target, nd.link_mac, now, create=False)
            return
        if nd.target not in self._routing.v6 or src == _UNSPECIFIED_V6:
            return  # not ours, or duplicate address detection (which we do not defend)
        if nd.link_mac is not None and not is_group_mac(nd.link_mac):
            self._learn(src, nd.link_mac, now, create=True)
            mac: int | None = nd.link_mac
        else:
            mac = self._neighbours.lookup(src, now)
        if mac is None:
            return
        flags = ndp.FLAG_SOLICITED | ndp.FLAG_OVERRIDE
        body = ndp.neighbor_body(
            ndp.NeighborMessage(ndp.NEIGHBOR_ADVERTISEMENT, flags, nd.target, self.mac)
        )
        answer = icmp.build_icmp6(icmp.Icmp(ndp.NEIGHBOR_ADVERTISEMENT, 0, body), nd.target, src)
        self._emit(mac, ETHERTYPE_IPV6, build_ipv6(nd.target, src, PROTO_ICMPV6, answer, 255))
        self.counters.ndp_out += 1

    # -- IP -------------------------------------------------------------------------------

    def _ipv4_input(self, payload: bytes, unicast: bool, now: float) -> None:
        pkt = parse_ipv4(payload)
        dst = pkt.dst
        if dst in self._routing.v4:
            local = True
        elif dst == _LIMITED_BROADCAST or dst in self._routing.v4_broadcasts:
            local = False
        else:
            self.counters.not_for_us += 1
            return
        data = pkt.payload
        quote = payload  # what an ICMP error quotes: the datagram as it came
        if pkt.fragment:
            self.counters.fragments += 1
            whole = self._reassemble((pkt.src, dst, pkt.protocol, pkt.ident), pkt, now)
            if whole is None:
                return
            data, quote = whole, b""
        proto = pkt.protocol
        if proto == PROTO_TCP:
            if local and unicast:
                self._tcp_input(pkt.src, dst, data, now)
        elif proto == PROTO_UDP:
            self._udp_input(pkt.src, dst, data, quote, local and unicast and bool(quote), now)
        elif proto == PROTO_ICMP:
            msg = icmp.parse_icmp4(data)
            if msg.type == icmp.ECHO_REQUEST_V4 and msg.code == 0 and local:
                reply = icmp.build_icmp4(icmp.Icmp(icmp.ECHO_REPLY_V4, 0, msg.body))
                self._send_ip(dst, pkt.src, PROTO_ICMP, reply, now)
                self.counters.echo_replies += 1
        else:
            self.counters.unknown_protocol += 1

    def _ipv6_input(self, payload: bytes, now: float) -> None:
        pkt = parse_ipv6(payload)
        dst = pkt.dst
        local = dst in self._routing.v6
        if not local and not (
            dst == _ALL_NODES
            or (dst[0] == 0xFF and ipv6_multicast_mac(dst) in self._routing.groups)
        ):
            self.counters.not_for_us += 1
            return
        data = pkt.payload
        quote = payload
        nh = pkt.next_header
        if pkt.fragment:
            self.counters.fragments += 1
            whole = self._reassemble((pkt.src, dst, nh, pkt.ident), pkt, now)
            if whole is None:
                return
            data, quote = whole, b""
        if nh == PROTO_TCP:
            if local:
                self._tcp_input(pkt.src, dst, data, now)
        elif nh == PROTO_UDP:
            self._udp_input(pkt.src, dst, data, quote, local and bool(quote), now)
        elif nh == PROTO_ICMPV6:
            msg = icmp.parse_icmp6(data, pkt.src, dst)
            if msg.type in (ndp.NEIGHBOR_SOLICITATION, ndp.NEIGHBOR_ADVERTISEMENT):
                if not pkt.fragment:  # RFC 6980: never from fragments
                    self._neighbour_input(msg, pkt.src, pkt.hop_limit, now)
            elif msg.type == icmp.ECHO_REQUEST_V6 and msg.code == 0 and local:
                reply = icmp.build_icmp6(icmp.Icmp(icmp.ECHO_REPLY_V6, 0, msg.body), dst, pkt.src)
                self._send_ip(dst, pkt.src, PROTO_ICMPV6, reply, now)
                self.counters.echo_replies += 1
        else:
            self.counters.unknown_protocol += 1

    def _reassemble(self, key: Key, pkt: Ipv4Packet | Ipv6Packet, now: float) -> bytes | None:
        reasm = self._reassembly
        whole = reasm.add(key, pkt.offset, pkt.more, pkt.payload, now)
        self.counters.reassembled = reasm.reassembled
        self.counters.reassembly_dropped = reasm.dropped
        if reasm.deadline() is not None:
            self._last_now = now  # poll() expires what is under way
        return whole

    def _send_ip(self, src: bytes, dst: bytes, protocol: int, payload: bytes, now: float) -> None:
        if len(dst) == 4:
            self._ident = (self._ident + 1) & 0xFFFF
            self._route_out(
                dst, ETHERTYPE_IPV4, build_ipv4(src, dst, protocol, payload, self._ident), now
            )
        else:
            self._route_out(dst, ETHERTYPE_IPV6, build_ipv6(src, dst, protocol, payload), now)

    def _route_out(self, dst: bytes, ethertype: int, packet: bytes, now: float) -> None:
        if dst in self._routing.v4 or dst in self._routing.v6:
            # to ourselves: taken in by the next poll (never recursively from here)
            if len(self._loopback) < LOOPBACK_QUEUE:
                self._loopback.append((ethertype, packet))
            return
        if len(dst) == 4:
            if dst == _LIMITED_BROADCAST or dst in self._routing.v4_broadcasts:
                self._emit(BROADCAST_MAC, ethertype, packet)
                return
            if 224 <= dst[0] < 240:
                self._emit(ipv4_multicast_mac(dst), ethertype, packet)
                return
        elif dst[0] == 0xFF:
            self._emit(ipv6_multicast_mac(dst), ethertype, packet)
            return
        hop = self._routing.next_hop(dst)
        if hop is None:
            self.counters.no_route += 1
            return
        mac = self._neighbours.lookup(hop, now)
        if mac is not None:
            self._emit(mac, ethertype, packet)
            return
        if self._neighbours.hold(hop, (ethertype, packet), now):
            self._solicit(hop, None)
            due = now + self.limits.neighbour_retry
            if self._neighbours_due is None or due < self._neighbours_due:
                self._neighbours_due = due
        self.counters.unresolved = self._neighbours.dropped

    def _emit(self, mac: int, ethertype: int, packet: bytes) -> None:
        self._out.append((self.mac, mac, ethertype, packet))
        self.counters.frames_out += 1

    # -- UDP ------------------------------------------------------------------------------

    def udp_bind(self, port: int = 0, *, address: Address | None = None) -> UdpSocket:
        """A UDP socket on ``port`` (0: a free ephemeral port) of ``address`` (None: all
        of ours). LocalUsageError when the port is taken or the address is not ours."""
        raw = address.packed if address is not None else None
        if raw is not None and raw not in self._routing.v4 and raw not in self._routing.v6:
            raise LocalUsageError(f"{address} is not an address of this stack")
        if len(self._udp) >= self.limits.udp_sockets:
            raise LocalUsageError(f"already {len(self._udp)} UDP sockets")
        if port == 0:
            port = self._free_port(lambda p: self._udp_port_free(raw, p))
        elif not 0 < port < 65536:
            raise LocalUsageError(f"UDP port {port} outside 1..65535")
        elif not self._udp_port_free(raw, port):
            raise LocalUsageError(f"UDP port {port} is in use")
        lim = self.limits
        sock = UdpSocket(
            address, port, lim.udp_queue, lim.udp_queue_bytes, self._udp_send, self._udp_release
        )
        self._udp[(raw, port)] = sock
        return sock

    def _udp_port_free(self, raw: bytes | None, port: int) -> bool:
        if raw is None:
            return not any(p == port for _, p in self._udp)
        return (raw, port) not in self._udp and (None, port) not in self._udp

    def _free_port(self, free: Callable[[int], bool]) -> int:
        """A random free ephemeral port (49152..65535)."""
        for _ in range(32):
            port = EPHEMERAL_FIRST + self._rand(16) % EPHEMERAL_COUNT
            if free(port):
                return port
        start = self._rand(16) % EPHEMERAL_COUNT
        for i in range(EPHEMERAL_COUNT):
            port = EPHEMERAL_FIRST + (start + i) % EPHEMERAL_COUNT
            if free(port):
                return port
        raise LocalUsageError("no free ephemeral port")

    def _udp_release(self, sock: UdpSocket) -> None:
        raw = sock.address.packed if sock.address is not None else None
        if self._udp.get((raw, sock.port)) is sock:
            del self._udp[(raw, sock.port)]

    def _udp_send(self, sock: UdpSocket, data: bytes, remote: Endpoint, now: float) -> None:
        ip, port = remote
        if not 0 < port < 65536:
            raise LocalUsageError(f"UDP port {port} outside 1..65535")
        dst = ip.packed
        src = sock.address.packed if sock.address is not None else self._routing.source_for(dst)
        if src is None or len(src) != len(dst):
            raise LocalUsageError(f"no IPv{ip.version} address to send to {ip} from")
        header = 20 if len(dst) == 4 else 40
        if header + 8 + len(data) > self.mtu:
            raise LocalUsageError(
                f"UDP datagram of {len(data)} bytes does not fit the MTU {self.mtu}"
            )
        group = ip.is_multicast or dst in self._routing.v4_broadcasts or dst == _LIMITED_BROADCAST
        if not group and self._routing.next_hop(dst) is None:
            raise LocalUsageError(f"no route to {ip}")
        datagram = build_udp(UdpDatagram(sock.port, port, data), src, dst)
        self._send_ip(src, dst, PROTO_UDP, datagram, now)
        self.counters.udp_out += 1

    def _udp_input(
        self, src: bytes, dst: bytes, payload: bytes, packet: bytes, unicast: bool, now: float
    ) -> None:
        d = parse_udp(payload, src, dst)
        self.counters.udp_in += 1
        sock = self._udp.get((dst, d.dst_port)) or self._udp.get((None, d.dst_port))
        if sock is None:
            self.counters.udp_no_socket += 1
            if unicast:
                self._port_unreachable(src, dst, packet, now)
            return
        if sock.deliver(d.payload, (address_of(src), d.src_port)):
            self._changed.add(sock)
        else:
            self.counters.udp_queue_full += 1

    def _port_unreachable(self, src: bytes, dst: bytes, packet: bytes, now: float) -> None:
        """ICMP(v6) port unreachable quoting ``packet``, at most as often as the limits
        allow (a token bucket refilled by elapsed time)."""
        rate = self.limits.icmp_errors_per_second
        self._icmp_tokens = min(rate, self._icmp_tokens + (now - self._icmp_time) * rate)
        self._icmp_time = now
        if self._icmp_tokens < 1.0:
            return
        self._icmp_tokens -= 1.0
        if len(src) == 4:
            quote = packet[: 576 - 20 - 8]
            msg = icmp.Icmp(icmp.UNREACHABLE_V4, icmp.PORT_UNREACHABLE_V4, bytes(4) + quote)
            self._send_ip(dst, src, PROTO_ICMP, icmp.build_icmp4(msg), now)
        else:
            quote = packet[: MIN_MTU - 40 - 8]
            msg = icmp.Icmp(icmp.UNREACHABLE_V6, icmp.PORT_UNREACHABLE_V6, bytes(4) + quote)
            self._send_ip(dst, src, PROTO_ICMPV6, icmp.build_icmp6(msg, dst, src), now)
        self.counters.icmp_unreachable_out += 1

    # -- TCP ------------------------------------------------------------------------------

    @property
    def tcp_connection_count(self) -> int:
        """Connections in the table (at most ``limits.tcp_connections``)."""
        return len(self._tcp)

    def _mss(self, address_length: int) -> int:
        return self.mtu - (40 if address_length == 4 else 60)

    def tcp_listen(
        self, port: int, *, backlog: int = 64, address: Address | None = None
    ) -> TcpListener:
        """Listen on ``port`` of ``address`` (None: every address of the stack);
        LocalUsageError when taken or not ours."""
        raw = address.packed if address is not None else None
        if raw is not None and raw not in self._routing.v4 and raw not in self._routing.v6:
            raise LocalUsageError(f"{address} is not an address of this stack")
        if not 0 < port < 65536:
            raise LocalUsageError(f"TCP port {port} outside 1..65535")
        if backlog < 1:
            raise LocalUsageError(f"listen backlog {backlog} below 1")
        if raw is None:
            taken = any(p == port for _, p in self._listeners)
        else:
            taken = (raw, port) in self._listeners or (None, port) in self._listeners
        if taken:
            raise LocalUsageError(f"TCP port {port} is already listening")
        from ztone.netstack.tcp_socket import TcpListener  # noqa: PLC0415 (lazy: see the module)

        listener = TcpListener(address, port, backlog, self._tcp_unlisten)
        self._listeners[(raw, port)] = listener
        return listener

    def _tcp_unlisten(self, listener: TcpListener) -> None:
        raw = listener.address.packed if listener.address is not None else None
        if self._listeners.get((raw, listener.port)) is listener:
            del self._listeners[(raw, listener.port)]
        for sock in list(self._tcp.values()):
            if sock.listener is listener:  # half-open: nobody will accept it
                sock.listener = None
                listener.half_open -= 1
                sock.abort()

    def tcp_connect(self, remote: Endpoint, now: float) -> TcpSocket:
        """Open a connection to ``remote`` from our address for it (same family, the one
        whose network holds it, else the first) and a free ephemeral port; the SYN goes
        at the next poll. LocalUsageError: no address of that family, no route, a bad
        port, or the connection table is full. Failures later show in the socket's
        ``error``: "connection refused", "timed out", "host unreachable" (the next hop
        never answered ARP/NDP)."""
        ip, port = remote
        if not 0 < port < 65536:
            raise LocalUsageError(f"TCP port {port} outside 1..65535")
        dst = ip.packed
        src = self._routing.source_for(dst)
        if src is None:
            raise LocalUsageError(f"no IPv{ip.version} address to connect to {ip} from")
        if ip.is_multicast or dst in self._routing.v4_broadcasts or dst == _LIMITED_BROADCAST:
            raise LocalUsageError(f"cannot connect to {ip}")
        if self._routing.next_hop(dst) is None:
            raise LocalUsageError(f"no route to {ip}")
        if len(self._tcp) >= self.limits.tcp_connections:
            raise LocalUsageError(f"already {len(self._tcp)} TCP connections")
        lport = self._free_port(
            lambda p: (
                (src, p, dst, port) not in self._tcp
                and (src, p) not in self._listeners
                and (None, p) not in self._listeners
            )
        )
        mss = self._mss(len(dst))
        from ztone.netstack.tcp import TcpConnection  # noqa: PLC0415 (lazy: see the module)
        from ztone.netstack.tcp_socket import TcpSocket  # noqa: PLC0415

        conn = TcpConnection.connect(
            src, lport, dst, port, mss=mss, iss=self._rand(32), now=now, limits=self.limits.tcp
        )
        sock = TcpSocket(conn, (address_of(src), lport), (ip, port), self._tcp_touch)
        self._tcp[(src, lport, dst, port)] = sock
        self._dirty.add(sock)
        self._last_now = max(self._last_now, now)
        return sock

    def _tcp_touch(self, sock: TcpSocket) -> None:
        self._dirty.add(sock)

    def _tcp_input(self, src: bytes, dst: bytes, payload: bytes, now: float) -> None:
        seg = parse_tcp(payload, src, dst)
        self.counters.tcp_in += 1
        self._last_now = now
        sock = self._tcp.get((dst, seg.dst_port, src, seg.src_port))
        if sock is not None and sock.connection.reusable_by(seg):
            self._tcp_forget(sock)  # a new incarnation of a connection in TIME-WAIT
            sock = None
        if sock is not None:
            sock.connection.receive(seg, now)
            if not sock.app_closed:
                self._changed.add(sock)
            if sock.connection.closed:
                self._tcp_poll(sock, now)  # its last words (if any), and out of the table
            else:
                self._dirty.add(sock)
            return
        if seg.flags & (SYN | ACK | RST) == SYN:
            listener = self._listeners.get((dst, seg.dst_port)) or self._listeners.get(
                (None, seg.dst_port)
            )
            if listener is not None:
                self._tcp_passive_open(listener, seg, src, dst, now)
                return
        reset = reset_for(seg)
        if reset is not None:
            self._send_ip(dst, src, PROTO_TCP, build_tcp(reset, dst, src), now)
            self.counters.tcp_resets_out += 1

    def _tcp_passive_open(
        self, listener: TcpListener, seg: TcpSegment, src: bytes, dst: bytes, now: float
    ) -> None:
        if (
            listener.half_open >= min(self.limits.syn_backlog, listener.backlog)
            or listener.full
            or len(self._tcp) >= self.limits.tcp_connections
        ):
            self.counters.tcp_syn_dropped += 1  # the peer retransmits its SYN
            return
        from ztone.netstack.tcp import TcpConnection  # noqa: PLC0415 (lazy: see the module)
        from ztone.netstack.tcp_socket import TcpSocket  # noqa: PLC0415

        conn = TcpConnection.accept(
            seg,
            dst,
            src,
            mss=self._mss(len(dst)),
            iss=self._rand(32),
            now=now,
            limits=self.limits.tcp,
        )
        sock = TcpSocket(
            conn, (address_of(dst), seg.dst_port), (address_of(src), seg.src_port), self._tcp_touch
        )
        sock.listener = listener
        listener.half_open += 1
        self._tcp[(dst, seg.dst_port, src, seg.src_port)] = sock
        self._dirty.add(sock)

    def _tcp_poll(self, sock: TcpSocket, now: float) -> None:
        conn = sock.connection
        before = (conn.writable, conn.state)
        if sock.app_closed:
            if conn.readable:
                conn.recv(conn.readable)  # nobody reads it any more
            if sock.closed_at is None:
                sock.closed_at = now
            elif now >= sock.closed_at + self.limits.orphan_timeout:  # as the timer
                conn.abort()
        src, dst = conn.local_ip, conn.remote_ip
        for seg in conn.poll(now):
            self._send_ip(src, dst, PROTO_TCP, build_tcp(seg, src, dst), now)
            self.counters.tcp_out += 1
        listener = sock.listener
        if listener is not None and (conn.established or conn.closed):
            sock.listener = None
            listener.half_open -= 1
            if conn.established:
                if listener.enqueue(sock):
                    self._changed.add(listener)
                else:
                    conn.abort()
        if conn.closed:
            self._tcp_forget(sock)
        else:
            deadline = conn.deadline()
            if sock.closed_at is not None:  # an orphan: give up on it in time
                give_up = sock.closed_at + self.limits.orphan_timeout
                deadline = give_up if deadline is None else min(deadline, give_up)
            if deadline is None:
                self._timers.pop(sock, None)
            elif deadline <= now:
                self._timers.pop(sock, None)
                self._dirty.add(sock)
            else:
                self._timers[sock] = deadline
            if conn.time_waiting and sock not in self._time_wait:
                self._time_wait[sock] = None
                if len(self._time_wait) > self.limits.time_wait_connections:
                    oldest, _ = self._time_wait.popitem(last=False)
                    self._tcp_forget(oldest)
        if not sock.app_closed and (before != (conn.writable, conn.state) or conn.closed):
            self._changed.add(sock)

    def _tcp_forget(self, sock: TcpSocket) -> None:
        conn = sock.connection
        key = (conn.local_ip, conn.local_port, conn.remote_ip, conn.remote_port)
        if self._tcp.get(key) is sock:
            del self._tcp[key]
        self._timers.pop(sock, None)
        self._dirty.discard(sock)
        self._time_wait.pop(sock, None)
