"""Receive grants: which steady-state frames the host may deliver without the core.

A grant says: a FRAME (§6.7) from peer P over path (local socket, remote) on network N,
with one of these ethertypes (or any), would be delivered to N's port as it is, with
no other effect than the bookkeeping :meth:`GrantTable.on_activity` replays. The host's
native data plane (``ztone._speedups.Dataplane``, mirrored by the service) then opens
and delivers such frames itself and reports what it carried; the core updates path,
peer, verb and filter counters as ``Switch.received`` and ``Network.filter`` would.

A grant is made (:meth:`GrantTable.offer`) right after the general path delivered a
FRAME from P (the fast path opened it: a known peer over a known path, suite 1 or 3),
when N admits P (``Network.gate``) and N's rule set reduces to an ethertype test
(:func:`accepted_ethertypes`). It holds while everything it was decided on is the same
object: N's Network and NetworkConfig (a new config, a leave, any rules, bridging or
multicast change replaces them), P's Peer and PeerKey (a new key or identity), the
Path in the switch's table and among P's slots, and N still admits P (credential
intake and revocations act there). :meth:`GrantTable.valid` re-checks all of it; the
node calls it at every sync (after each input the host gave it), so a change revokes
at once. A grant also expires ``FAST_GRANT_LIFETIME`` after its last check with
traffic: a host that stops syncing loses it.

Send grants are the same for the other direction: a unicast frame from our MAC on N
to member M's MAC, ethertype granted, goes as a FRAME to M over the path the fast
path just used (:meth:`GrantTable.offer_send`, from ``FastPath.send_frame`` after the
rules and the credential push). They hold while N's Network and config, M's Peer and
key, and M's best path are the same. Activity renews a send grant as it does a
receive grant, after doing at the sync what the general path does for each frame
beyond sealing it: push our credentials to M when due (``push_credentials_if_needed``:
a config change revokes the grant anyway, so only the 500 s timeout is left, and a sync
comes at most ``FAST_GRANT_SYNC`` late). Its packet ids are not registered for replies,
which changes nothing: a FRAME gets no OK, and ERROR (NEED_MEMBERSHIP_CERTIFICATE
included) is handled whatever packet it names. (Until issue 17's latency round a send
grant lapsed every ``FAST_GRANT_LIFETIME`` under steady traffic, so one frame in each
lifetime took the general path: with pings 0.2 s apart, one in eight from each member,
~0.4 ms slower each.)

Bound: ``FAST_GRANTS`` grants of each kind (:mod:`ztone.node.bounds`); when full, no new
grant (the general path carries the frame).
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.crypto.armor import PeerKey
from ztone.node import bounds as B
from ztone.node.constants import FAST_GRANT_LIFETIME
from ztone.node.metrics import RX, RX_ACCEPTED, TX, TX_ACCEPTED
from ztone.node.port import NodePort
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl1.switch import Switch
from ztone.node.vl2.network import Network
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import NetworkConfig
from ztone.node.wire.packet import Verb
from ztone.node.wire.rules import RULE_FLAG_NOT, Rule, RuleType

MAX_GRANT_ETHERTYPES = 8
"""Ethertypes one grant can list (the native table's slot)."""

_ACCEPT = int(RuleType.ACTION_ACCEPT)
_DROP = int(RuleType.ACTION_DROP)
_NOT_ETHERTYPE = int(RuleType.MATCH_ETHERTYPE) | RULE_FLAG_NOT


def accepted_ethertypes(rules: list[Rule]) -> tuple[int, ...] | bool | None:
    """What an inbound frame needs to be accepted by ``rules`` with no other effect:
    None when any frame is (the table starts with ACCEPT); the ethertypes when the
    table is ``drop not ethertype A and not ethertype B ...; accept`` (the usual
    default: every match negated, none ORed, then DROP, then ACCEPT); False for any
    other table (no grant: the rules engine must see each frame)."""
    if rules and rules[0].t == _ACCEPT:
        return None
    ethertypes: list[int] = []
    for i, rule in enumerate(rules):
        if rule.t == _NOT_ETHERTYPE:
            ethertypes.append(rule.ethertype)
            continue
        if (
            rule.t == _DROP
            and ethertypes
            and len(ethertypes) <= MAX_GRANT_ETHERTYPES
            and i + 1 < len(rules)
            and rules[i + 1].t == _ACCEPT
        ):
            return tuple(sorted(set(ethertypes)))
        return False
    return False


@dataclass(slots=True)
class Grant:
    """One receive grant; the objects after ``expires`` are what it was decided on."""

    nwid: int
    peer: int
    local_socket: int
    remote: InetAddress
    ethertypes: tuple[int, ...] | None
    mac: int
    """N's MAC for us: the frame's destination."""
    peer_mac: int
    """P's MAC on N: the frame's source."""
    mtu: int
    expires: int
    network: Network
    config: NetworkConfig
    peer_object: Peer
    key: PeerKey
    path: Path


@dataclass(slots=True)
class SendGrant:
    """One send grant; the objects after ``expires`` are what it was decided on."""

    nwid: int
    peer: int
    dst_mac: int
    src_mac: int
    local_socket: int
    remote: InetAddress
    ethertypes: tuple[int, ...] | None
    template: bytes
    """Bytes [8:36] of the FRAME (``frame_hop.frame_template``)."""
    aes: bool
    """Suite 3 (else suite 1, a peer older than protocol 12)."""
    mtu: int
    expires: int
    network: Network
    config: NetworkConfig
    peer_object: Peer
    key: PeerKey
    path: Path


GrantKey = tuple[int, int, int, InetAddress]
"""(network id, peer address, local socket, remote)."""

Activity = tuple[int, int, int, InetAddress, int, int, int, int]
"""What the host's data plane carried under one grant since the last report: (network
id, peer, local socket, remote, datagrams, packets, bytes, last receive time)."""


class GrantTable:
    """The node's receive grants; ``version`` changes whenever the table does."""

    __slots__ = ("_port", "_switch", "grants", "sends", "version")

    def __init__(self, port: NodePort, switch: Switch) -> None:
        self._port = port
        self._switch = switch
        self.grants: dict[GrantKey, Grant] = {}
        self.sends: dict[tuple[int, int], SendGrant] = {}
        """Send grants by (network id, destination MAC)."""
        self.version = 0

    def offer_send(
        self,
        now: int,
        net: Network,
        dst: int,
        peer: Peer,
        path: Path,
        ethertype: int,
        template: bytes,
    ) -> None:
        """``FastPath.send_frame`` just sealed a frame of ours to ``dst`` (``peer``'s MAC)
        over ``path``: grant frames like it when the rules reduce to ethertypes."""
        key = (net.nwid, dst)
        old = self.sends.get(key)
        if old is not None and self._send_live(now, old):
            return
        config = net.config
        if config is None or net.destroyed:
            return
        if old is None and len(self.sends) >= B.FAST_GRANTS:
            return
        ethertypes = accepted_ethertypes(net.rules())
        if ethertypes is False:
            return
        granted = ethertypes if isinstance(ethertypes, tuple) else None
        if granted is not None and ethertype not in granted:
            return
        self.sends[key] = SendGrant(
            nwid=net.nwid,
            peer=int(peer.address),
            dst_mac=dst,
            src_mac=net.mac,
            local_socket=path.local_socket,
            remote=path.address,
            ethertypes=granted,
            template=template,
            aes=peer.supports_aes,
            mtu=config.mtu,
            expires=now + FAST_GRANT_LIFETIME,
            network=net,
            config=config,
            peer_object=peer,
            key=peer.key,
            path=path,
        )
        self.version += 1

    def _unchanged(self, now: int, grant: Grant | SendGrant) -> bool:
        """Unexpired, and the network, its config, the peer, its key and the path that
        ``grant`` was decided on are still the ones in the tables."""
        port = self._port
        net = grant.network
        peer = grant.peer_object
        return (
            grant.expires > now
            and port.networks.get(grant.nwid) is net
            and net.config is grant.config
            and not net.destroyed
            and port.peers.get(grant.peer) is peer
            and peer.key is grant.key
            and self._switch.paths.get((grant.local_socket, grant.remote)) is grant.path
        )

    def _send_live(self, now: int, grant: SendGrant) -> bool:
        peer = grant.peer_object
        return (
            self._unchanged(now, grant)
            and peer.supports_aes == grant.aes
            and not self._switch.physical
            and peer.best_path(now) is grant.path
        )

    def on_send_activity(self, now: int, records: list[Activity]) -> None:
        """Replay what the data plane sent (records as :data:`Activity`, the time being
        the last send): what ``FastPath.send_frame`` counts, stamps and pushes per frame;
        the send grants that carried it and still hold are renewed."""
        port = self._port
        switch = self._switch
        verbs_tx = port.metrics.verbs[TX]
        by_peer: dict[tuple[int, int], list[SendGrant]] = {}
        for grant in self.sends.values():
            by_peer.setdefault((grant.nwid, grant.peer), []).append(grant)
        renewed = False
        for nwid, address, local_socket, remote, _datagrams, packets, _size, last in records:
            if packets <= 0:
                continue
            net = port.networks.get(nwid)
            if net is not None:
                net.filter_counts[TX_ACCEPTED] += packets
            verbs_tx[Verb.FRAME] += packets
            port.counters["tx_packets"] += packets
            port.counters["fast_tx_frames"] += packets
            peer = port.peers.get(address)
            if peer is not None:
                peer.metrics.tx += packets
            path = switch.paths.get((local_socket, remote))
            if path is not None:
                path.last_out = max(path.last_out, last)
            for grant in by_peer.get((nwid, address), ()):
                if (
                    grant.local_socket == local_socket
                    and grant.remote == remote
                    and self._send_live(now, grant)
                ):
                    grant.network.push_credentials_if_needed(port, now, address)
                    grant.expires = now + FAST_GRANT_LIFETIME
                    renewed = True
        if renewed:
            self.version += 1
        self.revalidate(now)

    def offer(self, now: int, path: Path, peer: Peer, packet: bytearray) -> None:
        """After the general path handled ``packet`` (opened, from ``peer`` over ``path``):
        grant its kind if it was a delivered FRAME of the steady state."""
        if len(packet) <= 38 or packet[27] != Verb.FRAME:
            return
        nwid = int.from_bytes(packet[28:36], "big")
        key = (nwid, int(peer.address), path.local_socket, path.address)
        grant = self.grants.get(key)
        if grant is not None:
            if self._live(now, grant):
                grant.expires = now + FAST_GRANT_LIFETIME
                self.version += 1
            return
        net = self._port.networks.get(nwid)
        if net is None or len(self.grants) >= B.FAST_GRANTS:
            return
        grant = self._make(now, net, peer, path)
        ethertype = (packet[36] << 8) | packet[37]
        if grant is None or (grant.ethertypes is not None and ethertype not in grant.ethertypes):
            return
        self.grants[key] = grant
        self.version += 1

    def _make(self, now: int, net: Network, peer: Peer, path: Path) -> Grant | None:
        config = net.config
        if (
            config is None
            or net.destroyed
            or not net.is_allowed(int(peer.address), peer.identity, now)
        ):
            return None
        if self._switch.paths.get((path.local_socket, path.address)) is not path:
            return None
        if not peer.has_path(path):
            return None
        rules = net.rules()
        ethertypes = accepted_ethertypes(rules)
        if ethertypes is False:
            return None
        return Grant(
            nwid=net.nwid,
            peer=int(peer.address),
            local_socket=path.local_socket,
            remote=path.address,
            ethertypes=ethertypes if isinstance(ethertypes, tuple) else None,
            mac=net.mac,
            peer_mac=net.member_mac(int(peer.address)),
            mtu=config.mtu,
            expires=now + FAST_GRANT_LIFETIME,
            network=net,
            config=config,
            peer_object=peer,
            key=peer.key,
            path=path,
        )

    def _live(self, now: int, grant: Grant) -> bool:
        """Whether everything ``grant`` was decided on still holds."""
        peer = grant.peer_object
        return (
            self._unchanged(now, grant)
            and peer.has_path(grant.path)
            and grant.network.is_allowed(grant.peer, peer.identity, now)
        )

    def revalidate(self, now: int) -> None:
        """Drop every grant that no longer holds (called at each sync)."""
        dead = [k for k, g in self.grants.items() if not self._live(now, g)]
        for key in dead:
            del self.grants[key]
        gone = [k for k, g in self.sends.items() if not self._send_live(now, g)]
        for send_key in gone:
            del self.sends[send_key]
        if dead or gone:
            self.version += 1

    def on_activity(self, now: int, records: list[Activity]) -> None:
        """Replay what the host's data plane carried (see :data:`Activity`): what
        ``Switch.on_datagram``, ``Switch.received``, ``dispatch`` and ``Network.filter``
        would have counted and stamped for those frames. A grant that carried traffic
        and still holds is renewed (and its network's gate runs, as for a frame, so
        multicast announcements stay due)."""
        port = self._port
        switch = self._switch
        verbs_rx = port.metrics.verbs[RX]
        for nwid, address, local_socket, remote, datagrams, packets, _size, last in records:
            port.counters["rx_datagrams"] += datagrams
            port.counters["fast_rx_frames"] += packets
            path = switch.paths.get((local_socket, remote))
            peer = port.peers.get(address)
            net = port.networks.get(nwid)
            if path is None or peer is None or packets <= 0:
                continue
            path.last_in = max(path.last_in, last)
            verbs_rx[Verb.FRAME] += packets
            switch.received(last, path, peer, 0, Verb.FRAME, trust=True)
            peer.metrics.rx += packets - 1  # received() counted one
            if net is not None:
                net.filter_counts[RX_ACCEPTED] += packets
            grant = self.grants.get((nwid, address, local_socket, remote))
            if (
                grant is not None
                and net is not None
                and self._live(now, grant)
                and net.gate(port, now, peer)
            ):
                grant.expires = now + FAST_GRANT_LIFETIME
                self.version += 1
        self.revalidate(now)

    def revoke_all(self) -> None:
        """Drop every grant."""
        if self.grants or self.sends:
            self.grants.clear()
            self.sends.clear()
            self.version += 1
