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

Bound: ``FAST_GRANTS`` grants (:mod:`ztone.node.bounds`); when full, no new grant (the
general path carries the frame).
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.crypto.armor import PeerKey
from ztone.node import bounds as B
from ztone.node.constants import FAST_GRANT_LIFETIME
from ztone.node.metrics import RX, RX_ACCEPTED
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


GrantKey = tuple[int, int, int, InetAddress]
"""(network id, peer address, local socket, remote)."""

Activity = tuple[int, int, int, InetAddress, int, int, int, int]
"""What the host's data plane carried under one grant since the last report: (network
id, peer, local socket, remote, datagrams, packets, bytes, last receive time)."""


class GrantTable:
    """The node's receive grants; ``version`` changes whenever the table does."""

    __slots__ = ("_port", "_switch", "grants", "version")

    def __init__(self, port: NodePort, switch: Switch) -> None:
        self._port = port
        self._switch = switch
        self.grants: dict[GrantKey, Grant] = {}
        self.version = 0

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
        port = self._port
        net = grant.network
        peer = grant.peer_object
        path = grant.path
        return (
            grant.expires > now
            and port.networks.get(grant.nwid) is net
            and net.config is grant.config
            and not net.destroyed
            and port.peers.get(grant.peer) is peer
            and peer.key is grant.key
            and self._switch.paths.get((grant.local_socket, grant.remote)) is path
            and peer.has_path(path)
            and net.is_allowed(grant.peer, peer.identity, now)
        )

    def revalidate(self, now: int) -> None:
        """Drop every grant that no longer holds (called at each sync)."""
        dead = [k for k, g in self.grants.items() if not self._live(now, g)]
        for key in dead:
            del self.grants[key]
        if dead:
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
        if self.grants:
            self.grants.clear()
            self.version += 1
