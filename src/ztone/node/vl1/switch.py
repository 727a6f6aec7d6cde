"""The VL1 switch: physical paths, datagrams in and out, queues, WHOIS, relaying and
rendezvous (``Switch``, ``Node::putPacket``, PROTOCOL-CORE §5, §8).

In: :meth:`Switch.on_datagram` sorts a UDP datagram into LAN beacon, fragment, packet
for someone else (relayed, §5.8) or packet for us (authenticated, then handed to
:func:`~ztone.node.vl1.incoming.dispatch`). A packet from an unknown sender, or one its
handler defers, waits in the receive queue (``RX_QUEUE_SIZE``, 5 s) while WHOIS asks
an upstream who the sender is.

Out: :meth:`Switch.send` picks the peer's best path (else an upstream's, to be
relayed), compresses, armors, fragments and emits :class:`SendPacket` actions; to an
unknown address the packet waits in the send queue (``TX_QUEUE_SIZE``, 5 s).

Every table here is bounded (:mod:`ztone.node.bounds`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from ztone.crypto.armor import (
    SUITE_AES_GMAC_SIV,
    SUITE_NONE_TRUSTED,
    SUITE_POLY1305_NONE,
    SUITE_POLY1305_SALSA2012,
    armor,
    dearmor,
)
from ztone.crypto.c25519 import KeyAgreementError
from ztone.errors import MalformedPacket
from ztone.node import bounds as B
from ztone.node import constants as C
from ztone.node.actions import ANY_LOCAL_SOCKET, SendPacket
from ztone.node.metrics import TX
from ztone.node.port import NodePort, Outcome
from ztone.node.vl1.incoming import dispatch, handle_hello
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl1.selfaware import SelfAwareness
from ztone.node.wire.fragment import (
    DEFAULT_PHYSMTU,
    MAX_PHYSMTU,
    MIN_PHYSMTU,
    Reassembler,
    mark_fragmented,
    split,
)
from ztone.node.wire.hello import Hello, MoonRecord, make_hello_packet
from ztone.node.wire.inetaddress import InetAddress, IpScope
from ztone.node.wire.packet import (
    IDX_FLAGS,
    IDX_PAYLOAD,
    IDX_VERB,
    MAX_PACKET_LENGTH,
    MIN_PACKET_LENGTH,
    PROTO_VERSION,
    Verb,
    build_packet,
    compress,
    uncompress,
)
from ztone.node.wire.verbs import Rendezvous, serialize_push_direct_paths
from ztone.node.wire.world import WorldType

PathCheck = Callable[[int, int, InetAddress], bool]
"""Host policy: may (peer address, local socket, remote) carry ZeroTier traffic?"""
PathLookup = Callable[[int, int], InetAddress | None]
"""Host hint: an address to try for (peer address, IP version 4/6 or 0 for any)."""
OverlayCheck = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]
"""True if an IP is inside one of our virtual networks (no ZeroTier over ZeroTier)."""

_NONTRIVIAL_VERBS = frozenset(
    int(v)
    for v in (
        Verb.FRAME,
        Verb.EXT_FRAME,
        Verb.NETWORK_CONFIG_REQUEST,
        Verb.NETWORK_CONFIG,
        Verb.MULTICAST_FRAME,
    )
)
"""Verbs that make a peer "active" (``Peer::received``'s non-trivial receive)."""


@dataclass(frozen=True, slots=True)
class PhysicalPathSetting:
    """A ``local.conf`` ``physical`` entry: trusted path id and/or MTU for a network."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    trusted_path_id: int = 0
    mtu: int = 0


@dataclass(slots=True)
class TxEntry:
    """A packet waiting for its destination's identity (the send queue)."""

    created: int
    destination: int
    verb: int
    payload: bytes
    encrypt: bool
    compress: bool


@dataclass(slots=True)
class RxEntry:
    """A packet waiting for its sender's identity or a credential (the receive queue)."""

    created: int
    path: Path
    packet: bytearray
    authenticated: bool
    source: int


class Switch:
    """Paths, the two queues, WHOIS, relaying and rendezvous of one node."""

    def __init__(
        self,
        port: NodePort,
        selfaware: SelfAwareness,
        *,
        physical: list[PhysicalPathSetting] | None = None,
        path_check: PathCheck | None = None,
        path_lookup: PathLookup | None = None,
        allow_loopback: bool = False,
        overlay_check: OverlayCheck | None = None,
    ) -> None:
        self.port = port
        self.selfaware = selfaware
        self.address = int(port.address)
        self.physical = sorted(physical or [], key=lambda s: s.network.prefixlen, reverse=True)
        self.path_check = path_check
        self.path_lookup = path_lookup
        self.allow_loopback = allow_loopback
        self.overlay_check = overlay_check
        self.local_addresses: list[InetAddress] = []
        self.paths: dict[tuple[int, InetAddress], Path] = {}
        self.reassembler = Reassembler()
        # Set by the fast path (ztone.node.fastpath): opens a reassembled packet in one
        # call, False when it is not the steady state's (then decode takes it).
        self.open_assembled: Callable[[int, Path, bytes], bool] | None = None
        self.tx: list[TxEntry] = []
        self.rx: list[RxEntry] = []
        self.whois_sent: dict[int, int] = {}
        self.expecting: list[list[int]] = [[] for _ in range(256)]
        self.last_unite: dict[tuple[int, int], int] = {}
        self.last_beacon_reply = 0

    def has_pending(self) -> bool:
        """Anything queued that the switch timer must retry?"""
        return bool(self.tx or self.rx or self.whois_sent)

    # ------------------------------------------------------------------ paths

    def path(self, local_socket: int, remote: InetAddress) -> Path:
        """The path object for (local socket, remote), made on first use."""
        key = (local_socket, remote)
        path = self.paths.get(key)
        if path is None:
            if len(self.paths) >= B.max_paths(self.port.topology.am_upstream):
                self._prune_paths()
            path = Path(local_socket, remote)
            self.paths[key] = path
        return path

    def _prune_paths(self) -> None:
        """At the bound: drop the oldest paths no peer uses, down to 7/8 of it."""
        used = {id(s.path) for p in self.port.peers.values() for s in p.slots}
        target = B.max_paths(self.port.topology.am_upstream) * 7 // 8
        for key in list(self.paths):
            if len(self.paths) <= target:
                break
            if id(self.paths[key]) not in used:
                del self.paths[key]
        self.port.counters["paths_pruned"] += 1

    def trusted_path_id(self, remote: InetAddress) -> int:
        for setting in self.physical:
            if remote.ip.version == setting.network.version and remote.ip in setting.network:
                return setting.trusted_path_id
        return 0

    def _mtu_for(self, remote: InetAddress) -> int:
        for setting in self.physical:
            if remote.ip.version == setting.network.version and remote.ip in setting.network:
                if setting.mtu > 0:
                    return max(MIN_PHYSMTU, min(setting.mtu, MAX_PHYSMTU))
                break
        return DEFAULT_PHYSMTU

    def should_use_path(self, address: int, local_socket: int, remote: InetAddress) -> bool:
        """``Node::shouldUsePathForZeroTierTraffic`` (§8.2)."""
        if not remote.is_valid_for_path() and not (
            self.allow_loopback and remote.scope() == IpScope.LOOPBACK
        ):
            return False
        if self.port.topology.is_prohibited_endpoint(address, remote):
            return False
        if self.overlay_check is not None and self.overlay_check(remote.ip):
            return False  # never ZeroTier over ZeroTier
        return self.path_check is None or self.path_check(address, local_socket, remote)

    # ------------------------------------------------------------- receiving

    def on_datagram(self, now: int, local_socket: int, remote: InetAddress, data: bytes) -> None:
        """Sort one datagram (may raise MalformedPacket; the node counts it)."""
        path = self.path(local_socket, remote)
        path.last_in = now
        n = len(data)
        counters = self.port.counters
        if n == 13:
            self._on_lan_beacon(now, path, data)
            return
        if n <= 16 or n > MAX_PACKET_LENGTH:
            counters["rx_bad_length"] += 1
            return
        if data[13] == 0xFF:  # a fragment (parse_fragment's fields, without the object)
            if int.from_bytes(data[8:13], "big") != self.address:
                self.relay(now, path, data, is_fragment=True)
                return
            b = data[14]
            whole = self.reassembler.add_piece(
                now, int.from_bytes(data[0:8], "big"), b >> 4, b & 0xF, bytes(data[16:])
            )
            if whole is not None:
                self._assembled(now, path, whole)
            return
        if n < MIN_PACKET_LENGTH:
            counters["rx_bad_length"] += 1
            return
        source = int.from_bytes(data[13:18], "big")
        destination = int.from_bytes(data[8:13], "big")
        if source == self.address:
            counters["rx_from_self"] += 1
            return
        if destination != self.address:
            self.relay(now, path, data, is_fragment=False)
            return
        if data[IDX_FLAGS] & 0x40:
            whole = self.reassembler.add_head(now, data)
            if whole is not None:
                self._assembled(now, path, whole)
            return
        self.decode(now, path, bytearray(data))

    def _assembled(self, now: int, path: Path, whole: bytes) -> None:
        hook = self.open_assembled
        if hook is None or not hook(now, path, whole):
            self.decode(now, path, bytearray(whole))

    def _on_lan_beacon(self, now: int, path: Path, data: bytes) -> None:
        address = int.from_bytes(data[8:13], "big")
        if address == self.address or now - self.last_beacon_reply < C.LAN_BEACON_REPLY_INTERVAL:
            return
        peer = self.port.peers.get(address)
        if peer is not None and self.should_use_path(address, path.local_socket, path.address):
            self.last_beacon_reply = now
            packet = build_packet(self.port.random(8), address, self.address, Verb.NOP)
            self.send_via_path(now, peer, packet, path)

    def decode(
        self,
        now: int,
        path: Path,
        packet: bytearray,
        authenticated: bool = False,
        retry: bool = False,
    ) -> Outcome:
        """Authenticate and dispatch; DEFER if it must wait (unknown sender, ...)."""
        port = self.port
        source = int.from_bytes(packet[13:18], "big")
        cipher = (packet[IDX_FLAGS] >> 3) & 7
        trusted = False
        if not authenticated:
            if cipher == SUITE_NONE_TRUSTED:
                tp = self.trusted_path_id(path.address)
                if tp == 0 or tp != int.from_bytes(packet[19:27], "big"):
                    port.counters["rx_untrusted_path"] += 1
                    return Outcome.DONE
                trusted = True
            elif cipher == SUITE_POLY1305_NONE and (packet[27] & 0x1F) == Verb.HELLO:
                handle_hello(port, now, path, packet, already_authenticated=False)
                return Outcome.DONE
        peer = port.peers.get(source)
        if peer is None:
            peer = port.get_peer(now, source)
        if peer is None:
            self.request_whois(now, source)
            if not retry:
                port.counters["rx_unknown_source"] += 1
                self._defer_rx(now, path, packet, authenticated or trusted, source)
            return Outcome.DEFER
        if not authenticated:
            if not trusted and not dearmor(packet, peer.key):
                port.counters["rx_bad_mac"] += 1
                peer.metrics.errors += 1
                return Outcome.DONE
            uncompress(packet)
        verdict = dispatch(port, now, path, peer, packet)
        if verdict is Outcome.DEFER and not retry:
            self._defer_rx(now, path, packet, True, source)
        return verdict

    def dispatch_opened(self, now: int, path: Path, peer: Peer, packet: bytearray) -> None:
        """What :meth:`decode` does with a packet once authenticated and decompressed,
        for one the fast path (:mod:`ztone.node.fastpath`) opened."""
        if dispatch(self.port, now, path, peer, packet) is Outcome.DEFER:
            self._defer_rx(now, path, packet, True, int(peer.address))

    def _defer_rx(
        self, now: int, path: Path, packet: bytearray, authenticated: bool, source: int
    ) -> None:
        if len(self.rx) >= B.RX_QUEUE_SIZE:
            self.rx.pop(0)
            self.port.counters["rx_queue_overflow"] += 1
        self.rx.append(RxEntry(now, path, packet, authenticated, source))

    def retry_rx(self, now: int, only: int | None = None) -> None:
        """Decode again what waits (only what came from ``only``, if given)."""
        keep: list[RxEntry] = []
        pending, self.rx = self.rx, []
        for entry in pending:
            if now - entry.created > C.RECEIVE_QUEUE_TIMEOUT:
                self.port.counters["rx_queue_expired"] += 1
                continue
            if only is not None and entry.source != only:
                keep.append(entry)
                continue
            try:
                verdict = self.decode(
                    now, entry.path, bytearray(entry.packet), entry.authenticated, retry=True
                )
            except (MalformedPacket, KeyAgreementError):
                self.port.counters["rx_malformed"] += 1
                verdict = Outcome.DONE
            if verdict is Outcome.DEFER:
                keep.append(entry)
        self.rx = keep + self.rx

    def peer_learned(self, now: int, address: int) -> None:
        """A new identity is known: retry everything that waited for it."""
        self.whois_sent.pop(address, None)
        self.retry_rx(now, only=address)
        self.retry_tx(now, only=address)

    def received(
        self, now: int, path: Path, peer: Peer, hops: int, verb: int, trust: bool = False
    ) -> None:
        """``Peer::received``: receive bookkeeping and path learning (§8.2)."""
        peer.metrics.rx += 1
        peer.last_receive = now
        if verb in _NONTRIVIAL_VERBS:
            peer.last_nontrivial_receive = now
        if trust:
            peer.last_trust_established = now
            path.last_trust = now
        if hops == 0:
            have = False
            for slot in peer.slots:
                if slot.path is path:
                    slot.lr = now
                    have = True
                    break
                if (
                    slot.path.address.ip == path.address.ip
                    and slot.path.local_socket == path.local_socket
                    and slot.path.alive(now)
                ):
                    have = True
                    break
            if not have and self.should_use_path(
                int(peer.address), path.local_socket, path.address
            ):
                if verb == Verb.OK:
                    peer.learn_path(path, now)
                else:
                    key = (path.local_socket, path.address)
                    peer.last_tried_paths = {
                        k: t
                        for k, t in peer.last_tried_paths.items()
                        if now - t <= C.PATH_CONFIRM_INTERVAL
                    }
                    if key not in peer.last_tried_paths:
                        if len(peer.last_tried_paths) >= B.MAX_PEER_TRIED_PATHS:
                            peer.last_tried_paths.clear()
                        peer.last_tried_paths[key] = now
                        self.attempt_contact(now, peer, path.local_socket, path.address, True)
                        path.last_out = now
        if peer.trust_established(now):
            interval = (
                C.DIRECT_PATH_PUSH_INTERVAL_HAVEPATH if hops == 0 else C.DIRECT_PATH_PUSH_INTERVAL
            )
            if now - peer.last_direct_path_push_sent >= interval:
                peer.last_direct_path_push_sent = now
                self._push_direct_paths(now, peer, path)

    def _push_direct_paths(self, now: int, peer: Peer, path: Path) -> None:
        addresses = list(self.local_addresses)
        for a in self.selfaware.addresses():
            if a not in addresses:
                addresses.append(a)
        for payload in serialize_push_direct_paths(addresses):
            self.send_reply(now, peer, path, Verb.PUSH_DIRECT_PATHS, payload, compress_payload=True)

    # ---------------------------------------------------------------- relaying

    def relay(self, now: int, path: Path, data: bytes, is_fragment: bool) -> None:
        """Forward a datagram for someone else (§5.8). Never decrypts it."""
        port = self.port
        counters = port.counters
        if not (port.topology.am_upstream or path.trusted(now)):
            counters["relay_refused"] += 1
            return
        out = bytearray(data)
        if is_fragment:
            hops = out[15]
            if hops >= C.RELAY_MAX_HOPS:
                counters["relay_hops_exceeded"] += 1
                return
            out[15] = (hops + 1) & 7
        else:
            hops = out[IDX_FLAGS] & 7
            if hops >= C.RELAY_MAX_HOPS:
                counters["relay_hops_exceeded"] += 1
                return
            out[IDX_FLAGS] = (out[IDX_FLAGS] & 0xF8) | ((hops + 1) & 7)
        destination = int.from_bytes(data[8:13], "big")
        source = 0 if is_fragment else int.from_bytes(data[13:18], "big")
        dest_peer = port.peers.get(destination)
        dest_path = dest_peer.best_path(now) if dest_peer is not None else None
        if dest_path is not None and dest_peer is not None:
            self.emit_to_path(now, dest_path, bytes(out))
            counters["relayed"] += 1
            if not is_fragment:
                src_peer = port.peers.get(source)
                if src_peer is not None:
                    self.unite(now, src_peer, dest_peer, rate_limited=True)
            return
        upstream = self.best_upstream(now)
        if upstream is None or (not is_fragment and int(upstream.address) == source):
            counters["relay_no_route"] += 1
            return
        up_path = upstream.best_path(now) or (upstream.slots[0].path if upstream.slots else None)
        if up_path is None:
            counters["relay_no_route"] += 1
            return
        self.emit_to_path(now, up_path, bytes(out))
        counters["relayed"] += 1
        if not is_fragment:
            src_peer = port.peers.get(source)
            if src_peer is not None:
                self.unite(now, src_peer, upstream, rate_limited=False)

    def unite(self, now: int, a: Peer, b: Peer, rate_limited: bool) -> None:
        """Introduce two peers to each other with RENDEZVOUS (§8.8)."""
        key = (min(int(a.address), int(b.address)), max(int(a.address), int(b.address)))
        if rate_limited and now - self.last_unite.get(key, -C.MIN_UNITE_INTERVAL) < (
            C.MIN_UNITE_INTERVAL
        ):
            return

        def best_by_scope(peer: Peer) -> dict[tuple[int, int], Path]:
            best: dict[tuple[int, int], tuple[float, Path]] = {}
            for slot in peer.slots:
                if slot.expired(now):
                    continue
                p = slot.path
                k = (p.scope, p.address.ip.version)
                q = p.quality(now) / slot.priority
                if k not in best or q <= best[k][0]:
                    best[k] = (q, p)
            return {k: v[1] for k, v in best.items()}

        pa, pb = best_by_scope(a), best_by_scope(b)
        random = self.port.random
        for scope in range(7, -1, -1):
            for family in (6, 4):
                k = (scope, family)
                if k in pa and k in pb:
                    self.last_unite.pop(key, None)
                    if len(self.last_unite) >= B.MAX_UNITE_ENTRIES:
                        del self.last_unite[next(iter(self.last_unite))]
                    self.last_unite[key] = now
                    pairs = [(b, pb[k], a, pa[k]), (a, pa[k], b, pb[k])]
                    if random(1)[0] & 1:
                        pairs.reverse()
                    for to, to_path, about, about_path in pairs:
                        payload = Rendezvous(about.address, about_path.address).serialize()
                        packet = build_packet(
                            random(8), to.address, self.address, Verb.RENDEZVOUS, payload
                        )
                        self.send_via_path(now, to, packet, to_path)
                    return

    # ----------------------------------------------------------------- sending

    def emit_to_path(self, now: int, path: Path, data: bytes, ttl: int = 0) -> None:
        """One datagram as is, over ``path``."""
        self.port.emit(SendPacket(path.local_socket, path.address, data, ttl))
        path.last_out = now

    def expect_reply(self, packet_id: bytes | bytearray) -> None:
        """Remember a packet id we sent, so an OK to it is accepted (256 x 32 ids)."""
        bucket = self.expecting[packet_id[3]]
        bucket.append(int.from_bytes(packet_id[0:4], "big"))
        if len(bucket) > 32:
            del bucket[0]

    def expecting_reply(self, packet_id: int) -> bool:
        upper = packet_id >> 32
        return upper in self.expecting[(packet_id >> 32) & 0xFF]

    def best_upstream(self, now: int) -> Peer | None:
        """``Topology::getUpstreamPeer``: minimum relay quality, ties to the later one."""
        best: Peer | None = None
        best_q = 0
        peers = self.port.peers
        for address in self.port.topology.upstream_addresses():
            peer = peers.get(address)
            if peer is None:
                continue
            q = peer.relay_quality(now)
            if best is None or q <= best_q:
                best, best_q = peer, q
        return best

    def request_whois(self, now: int, address: int) -> None:
        """Ask the best upstream who ``address`` is (at most every 500 ms per address)."""
        if address == self.address:
            return
        counters = self.port.counters
        last = self.whois_sent.get(address)
        if last is not None and now - last < C.WHOIS_RETRY_DELAY:
            return
        if last is None and len(self.whois_sent) >= B.MAX_PENDING_WHOIS:
            # DoS bound: a flood of packets from made-up addresses must not make us
            # flood the root with WHOIS; the table drains every 500 ms.
            counters["whois_table_full"] += 1
            return
        self.whois_sent[address] = now
        upstream = self.best_upstream(now)
        if upstream is None or int(upstream.address) == address:
            return
        packet = build_packet(
            self.port.random(8),
            upstream.address,
            self.address,
            Verb.WHOIS,
            address.to_bytes(5, "big"),
        )
        counters["whois_sent"] += 1
        if not self._try_send(now, upstream, packet, encrypt=True, compress=False):
            counters["whois_unsent"] += 1

    def send(
        self,
        now: int,
        destination: int,
        verb: int,
        payload: bytes,
        encrypt: bool = True,
        compress: bool = False,
    ) -> None:
        """Send to a peer by address, queueing and asking WHOIS if needed (§8.2)."""
        port = self.port
        peer = port.get_peer(now, destination)
        if peer is not None:
            packet = build_packet(port.random(8), destination, self.address, verb, payload)
            if self._try_send(now, peer, packet, encrypt, compress):
                return
        else:
            self.request_whois(now, destination)
        if len(self.tx) >= B.TX_QUEUE_SIZE:
            self.tx.pop(0)
            port.counters["tx_queue_overflow"] += 1
        self.tx.append(TxEntry(now, destination, verb, payload, encrypt, compress))

    def retry_tx(self, now: int, only: int | None = None) -> None:
        """Send again what waits (only what goes to ``only``, if given)."""
        port = self.port
        keep: list[TxEntry] = []
        pending, self.tx = self.tx, []
        for entry in pending:
            if now - entry.created > C.TRANSMIT_QUEUE_TIMEOUT:
                port.counters["tx_queue_expired"] += 1
                continue
            if only is not None and entry.destination != only:
                keep.append(entry)
                continue
            peer = port.get_peer(now, entry.destination)
            if peer is None:
                self.request_whois(now, entry.destination)
                keep.append(entry)
                continue
            packet = build_packet(
                port.random(8), entry.destination, self.address, entry.verb, entry.payload
            )
            if not self._try_send(now, peer, packet, entry.encrypt, entry.compress):
                keep.append(entry)
        self.tx = keep + self.tx

    def _try_send(
        self, now: int, peer: Peer, packet: bytearray, encrypt: bool, compress: bool
    ) -> bool:
        path = peer.best_path(now)
        if path is None:
            if (
                self.path_lookup is not None
                and now - peer.last_tried_memorized_path >= C.TRY_MEMORIZED_PATH_INTERVAL
            ):
                peer.last_tried_memorized_path = now
                hint = self.path_lookup(int(peer.address), 0)
                if hint is not None:
                    self.send_hello(now, peer, ANY_LOCAL_SOCKET, hint)
            upstream = self.best_upstream(now)
            if upstream is not None and upstream is not peer:
                path = upstream.best_path(now)
            if path is None and peer.slots:
                path = peer.slots[0].path  # an expired path beats nothing
            if path is None:
                return False
        self.send_via_path(now, peer, packet, path, encrypt, compress)
        return True

    def send_via_path(
        self,
        now: int,
        peer: Peer,
        packet: bytearray,
        path: Path,
        encrypt: bool = True,
        compress_payload: bool = False,
    ) -> None:
        """Compress, armor (or mark trusted), fragment and emit (§5.6, §4.2, §9.1)."""
        port = self.port
        verb = packet[IDX_VERB] & 0x1F
        port.metrics.verbs[TX][verb] += 1
        if verb == Verb.ERROR and len(packet) > IDX_PAYLOAD + 9:
            port.metrics.error(TX, packet[IDX_PAYLOAD + 9])  # after in-re verb and packet id
        peer.metrics.tx += 1
        if compress_payload:
            compress(packet)
        address = path.address
        if self.physical:
            mtu = self._mtu_for(address)
            trusted = self.trusted_path_id(address)
        else:
            mtu, trusted = DEFAULT_PHYSMTU, 0
        try:
            mark_fragmented(packet, mtu)
        except ValueError:
            port.counters["tx_too_big"] += 1
            return
        if trusted:
            packet[IDX_FLAGS] = (packet[IDX_FLAGS] & 0x47) | (SUITE_NONE_TRUSTED << 3)
            packet[19:27] = trusted.to_bytes(8, "big")
        else:
            if not encrypt:
                suite = SUITE_POLY1305_NONE
            elif peer.supports_aes:
                suite = SUITE_AES_GMAC_SIV
            else:
                suite = SUITE_POLY1305_SALSA2012
            armor(packet, peer.key, suite)
            self.expect_reply(packet[0:8])
        local_socket = path.local_socket
        emit = port.emit
        for piece in split(packet, mtu):
            emit(SendPacket(local_socket, address, piece))
        path.last_out = now
        port.counters["tx_packets"] += 1

    def send_reply(
        self,
        now: int,
        peer: Peer,
        path: Path,
        verb: int,
        payload: bytes,
        compress_payload: bool = False,
    ) -> None:
        """A reply over the path the request came in on (possibly a relay's)."""
        packet = build_packet(self.port.random(8), peer.address, self.address, verb, payload)
        self.send_via_path(now, peer, packet, path, True, compress_payload)

    def send_hello(self, now: int, peer: Peer, local_socket: int, remote: InetAddress) -> None:
        port = self.port
        topology = port.topology
        moons = [MoonRecord(WorldType.MOON, w.id, w.timestamp) for w in topology.moons.values()]
        moons += [MoonRecord(WorldType.MOON, i, 0) for i in topology.moon_seeds]
        planet = topology.planet
        hello = Hello(
            PROTO_VERSION,
            port.version,
            now,
            port.identity.public_only(),
            remote,
            planet.id,
            planet.timestamp,
            tuple(moons),
        )
        packet_id = port.random(8)
        wire = make_hello_packet(packet_id, peer.address, peer.key, hello)
        port.metrics.verb(TX, Verb.HELLO)
        peer.metrics.tx += 1
        self.expect_reply(packet_id)
        port.emit(SendPacket(local_socket, remote, wire))
        if local_socket != ANY_LOCAL_SOCKET:
            self.path(local_socket, remote).last_out = now
        port.counters["hello_sent"] += 1

    def attempt_contact(
        self, now: int, peer: Peer, local_socket: int, remote: InetAddress, full_hello: bool
    ) -> None:
        """``Peer::attemptToContactAt``: an empty ECHO if the peer can, else HELLO (§8.3)."""
        if not full_hello and peer.prefers_echo:
            path = self.path(local_socket, remote)
            packet = build_packet(self.port.random(8), peer.address, self.address, Verb.ECHO)
            self.send_via_path(now, peer, packet, path)
        else:
            self.send_hello(now, peer, local_socket, remote)

    def send_junk(self, now: int, local_socket: int, remote: InetAddress) -> None:
        """4 bytes with IP TTL 2: opens our side of a NAT before a direct contact."""
        self.port.emit(SendPacket(local_socket, remote, self.port.random(4), ttl=2))

    # ------------------------------------------------------------------ timers

    def timer(self, now: int) -> None:
        """The switch timer: retry both queues, drop WHOIS nobody waits for."""
        self.retry_tx(now)
        self.retry_rx(now)
        for address in [a for a, t in self.whois_sent.items() if now - t > 2 * C.WHOIS_RETRY_DELAY]:
            waiting = any(e.destination == address for e in self.tx) or any(
                e.source == address for e in self.rx
            )
            if waiting:
                self.request_whois(now, address)
            else:
                del self.whois_sent[address]

    def clean(self, now: int) -> None:
        """Housekeeping: forget unused paths and old rendezvous times."""
        stale = [k for k, p in self.paths.items() if now - p.last_in > C.PEER_PATH_EXPIRATION]
        if stale:  # only then the walk over every peer's slots
            used = {id(s.path) for p in self.port.peers.values() for s in p.slots}
            for key in stale:
                if id(self.paths[key]) not in used:
                    del self.paths[key]
        self.last_unite = {k: t for k, t in self.last_unite.items() if now - t < C.UNITE_FORGET}
