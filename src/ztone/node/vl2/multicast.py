"""Multicast on the networks we are in, and for others' networks on a root:
MULTICAST_LIKE, MULTICAST_GATHER, MULTICAST_FRAME and their OKs, subscriptions and
announcements (PROTOCOL-NETWORK-SERVICE A.5.12, CORE §6.12-6.15).

Who liked which group lives in the node's :class:`~ztone.node.vl2.multicaster.Multicaster`;
this module is the verbs around it.
"""

from __future__ import annotations

from ztone.errors import MalformedPacket
from ztone.node.actions import DeliverFrame
from ztone.node.port import NodePort, Outcome
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl2.credential_intake import add_credential, need_certificate, parse_com
from ztone.node.vl2.filter import Verdict
from ztone.node.vl2.multicaster import OutboundMulticast, Sender
from ztone.node.vl2.network import (
    MULTICAST_ANNOUNCE_PERIOD,
    MULTICAST_EXPLICIT_GATHER_DELAY,
    Network,
)
from ztone.node.wire.identity import Identity
from ztone.node.wire.mac import MAC
from ztone.node.wire.packet import IDX_FLAGS, ErrorCode, Verb
from ztone.node.wire.verbs import IDX_OK_PAYLOAD, in_re_payload
from ztone.node.wire.vl2_verbs import (
    MCFRAME_FLAG_GATHER_LIMIT,
    MCFRAME_FLAG_REPLICATE,
    MCFRAME_FLAG_SOURCE_MAC,
    MulticastGroup,
    parse_gather,
    parse_gather_results,
    parse_multicast_frame,
    parse_multicast_like,
    serialize_gather,
    serialize_gather_results,
    serialize_multicast_frame,
)

MAX_GATHER_TARGETS = 16


def _hops(packet: bytearray) -> int:
    return packet[IDX_FLAGS] & 7


# ---------------------------------------------------------------- our subscriptions


def subscribe(port: NodePort, now: int, nwid: int, group: MulticastGroup) -> None:
    net = port.networks.get(nwid)
    if net is None or group in net.subscriptions:
        return
    net.subscriptions.add(group)
    if net.config is not None:
        announce_new_group(port, now, net, group)


def unsubscribe(port: NodePort, now: int, nwid: int, group: MulticastGroup) -> None:
    net = port.networks.get(nwid)
    if net is not None:
        net.subscriptions.discard(group)


def _upstream_announce_targets(port: NodePort, net: Network) -> list[int]:
    c = net.config
    targets: list[int] = []
    if c is not None:
        targets += list(c.anchors()) + list(c.multicast_replicators())
    targets.append(net.controller)
    targets += port.topology.upstream_addresses()
    seen: list[int] = []
    for t in targets:
        if t != port.address and t not in seen:
            seen.append(t)
    return seen


def announce_new_group(port: NodePort, now: int, net: Network, group: MulticastGroup) -> None:
    targets = _upstream_announce_targets(port, net)
    for address in targets:
        net.announce_groups_to(port, now, address, [group])
    for address in list(net.memberships):
        if address not in targets and net.is_allowed(address, _identity(port, address), now):
            net.announce_groups_to(port, now, address, [group])


def _identity(port: NodePort, address: int) -> Identity | None:
    peer = port.peers.get(address)
    return peer.identity if peer is not None else None


def send_updates_to_members(port: NodePort, now: int, net: Network) -> None:
    """The periodic LIKE announcements of a configured network (A.5.3)."""
    groups = sorted(net.all_groups())
    targets = _upstream_announce_targets(port, net)
    if now - net.last_upstream_announce >= MULTICAST_ANNOUNCE_PERIOD:
        net.last_upstream_announce = now
        for address in targets:
            net.announce_groups_to(port, now, address, groups)
    for address, m in list(net.memberships.items()):
        if address in targets or address == port.address:
            continue
        if now - m.last_updated_multicast >= MULTICAST_ANNOUNCE_PERIOD and net.is_allowed(
            address, _identity(port, address), now
        ):
            m.last_updated_multicast = now
            net.announce_groups_to(port, now, address, groups)


# ---------------------------------------------------------------- LIKE and GATHER


def _like_allowed(
    port: NodePort, now: int, nwid: int, peer: Peer, path: Path, packet_id: int
) -> bool:
    """May ``peer``'s LIKEs for ``nwid`` be stored (A.5.12.2, and the root rule of
    :mod:`~ztone.node.vl1.root_members`)? Decided afresh for every network id."""
    address = int(peer.address)
    net = port.networks.get(nwid)
    if net is not None and (
        net.is_allowed(address, peer.identity, now) or net.controller_authorized(address, now)
    ):
        return True
    controller = port.controller
    if (nwid >> 24) == port.address and controller is not None:
        return controller.recently_authorized(nwid, address, now)
    if not port.topology.am_upstream:
        return False
    proven = port.root_memberships.proven(now, nwid, address)
    if port.root_memberships.should_ask(now, nwid, address):  # none while the proof is fresh
        port.counters["root_com_requested"] += 1
        port.send_reply(
            now,
            peer,
            path,
            Verb.ERROR,
            in_re_payload(Verb.MULTICAST_LIKE, packet_id)
            + bytes((ErrorCode.NEED_MEMBERSHIP_CERTIFICATE,))
            + nwid.to_bytes(8, "big"),
        )
    return proven


def do_multicast_like(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    address = int(peer.address)
    packet_id = int.from_bytes(packet[0:8], "big")
    authorized = False
    last_nwid: int | None = None
    for nwid, group in parse_multicast_like(packet[28:]):
        if nwid != last_nwid:
            last_nwid = nwid
            authorized = _like_allowed(port, now, nwid, peer, path, packet_id)
        if authorized:
            if not port.multicaster.add(now, nwid, group, address, member_sender(port, now, nwid)):
                port.counters["multicast_like_refused"] += 1
        else:
            port.counters["multicast_like_unauthorized"] += 1
    port.received(now, path, peer, _hops(packet), Verb.MULTICAST_LIKE)
    return Outcome.DONE


def member_sender(port: NodePort, now: int, nwid: int) -> Sender:
    """How one MULTICAST_FRAME copy goes to one member (credentials pushed first)."""

    def send(address: int, payload: bytes) -> None:
        net = port.networks.get(nwid)
        if net is not None:
            net.push_credentials_if_needed(port, now, address)
        compress = net is None or net.config is None or not (net.config.flags & 0x10)
        port.send(now, address, Verb.MULTICAST_FRAME, payload, compress=compress)

    return send


def _draw(port: NodePort) -> int:
    return int.from_bytes(port.random(4), "big")


def _answer_gather(
    port: NodePort,
    now: int,
    path: Path,
    peer: Peer,
    packet: bytearray,
    verb: Verb,
    nwid: int,
    group: MulticastGroup,
    limit: int,
    include_me: bool,
    flags: bytes,
) -> None:
    """Up to ``limit`` known members of ``group`` for ``peer``, in an OK to ``verb``:
    in-re header, network id, group, ``flags`` (OK(MULTICAST_FRAME) only), then the
    gather results (A.5.12.4). Nothing is sent when we know no member."""
    total, picked = port.multicaster.gather(
        now, nwid, group, int(peer.address), limit, include_me, lambda n: _draw(port) % n
    )
    if picked:
        port.send_reply(
            now,
            peer,
            path,
            Verb.OK,
            in_re_payload(verb, int.from_bytes(packet[0:8], "big"))
            + nwid.to_bytes(8, "big")
            + group.serialize()
            + flags
            + serialize_gather_results(total, picked),
        )


def do_multicast_gather(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    g = parse_gather(packet[28:], parse_com)
    address = int(peer.address)
    net = port.networks.get(g.nwid)
    if g.com is not None:
        add_credential(port, now, g.com, address)
    allowed = port.topology.am_upstream or (
        net is not None
        and (net.is_allowed(address, peer.identity, now) or net.controller_authorized(address, now))
    )
    if (g.nwid >> 24) == port.address and port.controller is not None:
        allowed = allowed or port.controller.recently_authorized(g.nwid, address, now)
    if g.limit > 0 and allowed:
        include_me = net is not None and net.subscribed_or_bridged(g.group)
        _answer_gather(
            port,
            now,
            path,
            peer,
            packet,
            Verb.MULTICAST_GATHER,
            g.nwid,
            g.group,
            g.limit,
            include_me,
            b"",
        )
    port.received(now, path, peer, _hops(packet), Verb.MULTICAST_GATHER, trust=allowed)
    return Outcome.DONE


def ok_multicast_gather(port: NodePort, now: int, peer: Peer, packet: bytearray) -> None:
    p = IDX_OK_PAYLOAD
    if len(packet) < p + 18:
        raise MalformedPacket("truncated OK(MULTICAST_GATHER)")
    nwid = int.from_bytes(packet[p : p + 8], "big")
    group = MulticastGroup(
        int.from_bytes(packet[p + 8 : p + 14], "big"),
        int.from_bytes(packet[p + 14 : p + 18], "big"),
    )
    if nwid not in port.networks:
        return
    _, addresses = parse_gather_results(packet, p + 18)
    for a in addresses:
        port.multicaster.add(now, nwid, group, int(a), member_sender(port, now, nwid))


def ok_multicast_frame(port: NodePort, now: int, peer: Peer, packet: bytearray) -> None:
    p = IDX_OK_PAYLOAD
    if len(packet) < p + 19:
        raise MalformedPacket("truncated OK(MULTICAST_FRAME)")
    nwid = int.from_bytes(packet[p : p + 8], "big")
    group = MulticastGroup(
        int.from_bytes(packet[p + 8 : p + 14], "big"),
        int.from_bytes(packet[p + 14 : p + 18], "big"),
    )
    flags = packet[p + 18]
    pos = p + 19
    if flags & 0x01:
        com, pos = parse_com(packet, pos)
        add_credential(port, now, com, int(peer.address))
    if flags & 0x02 and nwid in port.networks:
        _, addresses = parse_gather_results(packet, pos)
        for a in addresses:
            port.multicaster.add(now, nwid, group, int(a), member_sender(port, now, nwid))


# ---------------------------------------------------------------- MULTICAST_FRAME


def do_multicast_frame(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    mf = parse_multicast_frame(packet[28:], parse_com)
    net = port.networks.get(mf.nwid)
    address = int(peer.address)
    hops = _hops(packet)
    if net is None:
        port.received(now, path, peer, hops, Verb.MULTICAST_FRAME)
        return Outcome.DONE
    if mf.com is not None:
        add_credential(port, now, mf.com, address)
    if not net.gate(port, now, peer):
        return need_certificate(port, now, path, peer, packet, mf.nwid)
    c = net.config
    if c is None or c.multicast_limit == 0:
        port.received(now, path, peer, hops, Verb.MULTICAST_FRAME, trust=True)
        return Outcome.DONE
    sender_mac = int(MAC.from_address(address, net.nwid))
    source = mf.source if mf.source is not None else sender_mac
    if 0 < len(mf.payload) <= 10000:
        ok = bool(
            (mf.group.mac >> 40) & 1
            and source != 0
            and not (source >> 40) & 1
            and source != net.mac
        )
        if (
            ok
            and mf.flags & MCFRAME_FLAG_REPLICATE
            and int(port.address) in c.multicast_replicators()
        ):
            send_multicast(port, now, net, address, mf.group, mf.source, mf.ethertype, mf.payload)
        if ok and source != sender_mac:
            if net.is_active_bridge(address):
                net.learn_bridge_route(source, address)
            else:
                ok = False
        if ok and net.filter(
            port, now, True, address, source, mf.group.mac, mf.ethertype, mf.payload
        ):
            port.emit(DeliverFrame(net.nwid, source, mf.group.mac, mf.ethertype, mf.payload))
    if mf.gather_limit:
        # OK(MULTICAST_FRAME) flags 0x02: gather results follow.
        _answer_gather(
            port,
            now,
            path,
            peer,
            packet,
            Verb.MULTICAST_FRAME,
            mf.nwid,
            mf.group,
            mf.gather_limit,
            net.subscribed_or_bridged(mf.group),
            b"\x02",
        )
    port.received(now, path, peer, hops, Verb.MULTICAST_FRAME, trust=True)
    return Outcome.DONE


def send_multicast(
    port: NodePort,
    now: int,
    net: Network,
    origin: int,
    group: MulticastGroup,
    source: int | None,
    ethertype: int,
    payload: bytes,
) -> None:
    """``Multicaster::send`` (A.5.12.5)."""
    c = net.config
    if c is None:
        return
    limit = c.multicast_limit
    me = int(port.address)
    compress = not (c.flags & 0x10)
    replicators = [r for r in c.multicast_replicators() if r != me]
    if replicators and not c.permits_bridging(me) and me not in c.multicast_replicators():
        best = None
        best_latency = 0
        for r in replicators:
            peer = port.peers.get(r)
            if peer is None or not peer.alive(now) or peer.best_path(now) is None:
                continue
            lat = peer.latency(now)
            if best is None or lat < best_latency:
                best, best_latency = r, lat
        if best is not None:
            frame = serialize_multicast_frame(
                net.nwid,
                MCFRAME_FLAG_SOURCE_MAC | MCFRAME_FLAG_REPLICATE,
                0,
                source if source is not None else net.mac,
                group,
                ethertype,
                payload,
            )
            port.send(now, best, Verb.MULTICAST_FRAME, frame, compress=compress)
            return
    members = port.multicaster.members(now, net.nwid, group)
    order = list(members)
    for i in range(len(order) - 1, 0, -1):  # Fisher-Yates with the node's randomness
        j = _draw(port) % (i + 1)
        order[i], order[j] = order[j], order[i]
    bridges = [b for b in c.active_bridges() if b not in (me, origin)]
    flags = MCFRAME_FLAG_SOURCE_MAC if source is not None else 0
    sender = member_sender(port, now, net.nwid)
    recipients: list[int] = []

    def eligible(address: int) -> bool:
        return (
            net.filter(
                port,
                now,
                False,
                address,
                source or net.mac,
                group.mac,
                ethertype,
                payload,
                no_tee=True,
            )
            != Verdict.DROP
        )

    if len(members) >= limit:
        frame = serialize_multicast_frame(
            net.nwid, flags | MCFRAME_FLAG_GATHER_LIMIT, 1, source, group, ethertype, payload
        )
        for a in bridges + [m for m in order if m not in bridges and m != origin]:
            if len(recipients) >= limit:
                break
            if eligible(a):
                recipients.append(a)
                sender(a, frame)
        return
    gather_limit = (limit - len(members)) + 1
    if port.multicaster.needs_gather(now, net.nwid, group, MULTICAST_EXPLICIT_GATHER_DELAY):
        gather_targets: list[int] = []
        best_upstream = port.best_upstream(now)
        if best_upstream is not None:
            gather_targets.append(int(best_upstream.address))
        gather_targets.append(net.controller)
        gather_targets += list(c.always_contact_addresses()) + list(c.anchors())
        com = c.com.serialize() if c.com is not None else None
        sent: list[int] = []
        for t in gather_targets:
            if t == me or t in sent or len(sent) >= MAX_GATHER_TARGETS:
                continue
            sent.append(t)
            gather = serialize_gather(net.nwid, group, gather_limit, com)
            port.send(now, t, Verb.MULTICAST_GATHER, gather, compress=False)
    frame = serialize_multicast_frame(
        net.nwid, flags | MCFRAME_FLAG_GATHER_LIMIT, gather_limit, source, group, ethertype, payload
    )
    om = OutboundMulticast(now, limit, frame, {origin} if origin else set())
    for a in bridges + [m for m in order if m not in bridges]:
        if om.done():
            break
        if a in om.sent_to:
            continue
        if eligible(a):
            om.sent_to.add(a)
            sender(a, frame)
    port.multicaster.enqueue(now, net.nwid, group, om)
