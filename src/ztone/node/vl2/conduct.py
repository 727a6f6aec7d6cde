"""VL2 behaviour of the node: joining, config transport, credentials, frames, multicast
(PROTOCOL-NETWORK-SERVICE A.2.8, A.3.7-A.3.9, A.5; CORE §6.7-6.15).

Functions here take the node and act through its sending primitives; the state
lives in :class:`~ztone.node.vl2.network.Network` objects in ``node.networks``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ztone.errors import MalformedPacket
from ztone.node.actions import DeliverFrame, NetworkConfigChanged, PutState, StateKind
from ztone.node.bounds import MAX_MEMBERSHIPS
from ztone.node.metrics import RX_ACCEPTED, TX_ACCEPTED
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl2.filter import FrameContext, Verdict, filter_with_capabilities
from ztone.node.vl2.membership import (
    CREDENTIAL_TYPE_CAPABILITY,
    CREDENTIAL_TYPE_COO,
    CREDENTIAL_TYPE_TAG,
    AddResult,
)
from ztone.node.vl2.multicaster import OutboundMulticast
from ztone.node.vl2.network import (
    CREDENTIAL_REQUEST_INTERVAL,
    LOCAL_CONTROLLER_AUTH_MEMORY,
    MULTICAST_ANNOUNCE_PERIOD,
    MULTICAST_EXPLICIT_GATHER_DELAY,
    ConfigOp,
    Failure,
    Network,
)
from ztone.node.wire import credentials as cr
from ztone.node.wire.config_chunk import ConfigAssembler, make_config_chunks
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.mac import BROADCAST, MAC
from ztone.node.wire.network_config import NetworkConfig, request_metadata
from ztone.node.wire.packet import IDX_FLAGS, ErrorCode, Verb
from ztone.node.wire.rules import RULE_TYPE_MASK, Rule, RuleType, parse_rules
from ztone.node.wire.verbs import IDX_ERROR_PAYLOAD, IDX_OK_PAYLOAD, in_re_payload
from ztone.node.wire.vl2_verbs import (
    ETHERTYPE_IPV6,
    EXT_FRAME_FLAG_ACK,
    MCFRAME_FLAG_GATHER_LIMIT,
    MCFRAME_FLAG_REPLICATE,
    MCFRAME_FLAG_SOURCE_MAC,
    MulticastGroup,
    arp_request_target,
    ndp_emulated_advertisement,
    parse_config_request,
    parse_ext_frame,
    parse_gather,
    parse_gather_results,
    parse_multicast_frame,
    parse_multicast_like,
    serialize_config_request,
    serialize_ext_frame,
    serialize_frame,
    serialize_gather,
    serialize_gather_results,
    serialize_multicast_frame,
    serialize_multicast_likes,
)

if TYPE_CHECKING:
    from ztone.node.node import Node

MAX_BRIDGE_SPAM = 32
_ACTION_ACCEPT = int(RuleType.ACTION_ACCEPT)
MAX_GATHER_TARGETS = 16
CREDENTIALS_RATE_LIMIT = 1_000


def _parse_com(data: bytes | bytearray | memoryview, offset: int) -> tuple[Any, int]:
    return cr.CertificateOfMembership.parse(data, offset)


def _hops(packet: bytearray) -> int:
    return packet[IDX_FLAGS] & 7


# ---------------------------------------------------------------- join / leave / configure


def join(node: Node, now: int, nwid: int) -> Network:
    net = node.networks.get(nwid)
    if net is not None:
        return net
    net = Network(nwid, int(node.address))
    node.networks[nwid] = net
    data = node._state.get(StateKind.NETWORK_CONFIG, nwid)
    if data is not None and len(data) > 1:
        try:
            config = NetworkConfig.from_dictionary(Dictionary.parse(data))
            _set_configuration(node, now, net, config, save=False)
            net.last_config_update = 0  # ask for a fresh one at once
        except MalformedPacket:
            node.counters["state_bad_network_config"] += 1
    if net.config is None:
        node._actions.append(PutState(StateKind.NETWORK_CONFIG, nwid, b"\n"))
        net.up = True
        node._actions.append(NetworkConfigChanged(nwid, ConfigOp.UP, net.view()))
    node._last_ping = 0  # request the config now
    return net


def leave(node: Node, now: int, nwid: int) -> bool:
    net = node.networks.pop(nwid, None)
    if net is None:
        return False
    net.destroyed = True
    node.multicaster.forget_network(nwid)
    node._actions.append(NetworkConfigChanged(nwid, ConfigOp.DESTROY, net.view()))
    node._actions.append(PutState(StateKind.NETWORK_CONFIG, nwid, None))
    return True


def _set_configuration(node: Node, now: int, net: Network, config: NetworkConfig,
                       save: bool) -> bool:  # fmt: skip
    if config.issued_to != node.address or config.network_id != net.nwid:
        node.counters["config_not_for_us"] += 1
        return False
    data = config.to_dictionary().serialize()
    if data == net.config_bytes and net.config is not None:
        return True
    first = not net.up
    net.config = config
    net.config_bytes = data
    net.parsed_rules = None
    net.rule_cache = {}
    net.last_config_update = now
    net.failure = Failure.NONE
    net.up = True
    node._actions.append(
        NetworkConfigChanged(net.nwid, ConfigOp.UP if first else ConfigOp.CONFIG_UPDATE, net.view())
    )
    if save:
        node._actions.append(PutState(StateKind.NETWORK_CONFIG, net.nwid, data))
    for address in config.always_contact_addresses():
        if address != node.address and node._get_peer(now, address) is None:
            node.request_whois(now, address)
    return True


def request_configuration(node: Node, now: int, net: Network) -> None:
    net.last_request_sent = now
    meta = request_metadata(node.version, node.os_arch).serialize()
    rev = net.config.revision if net.config is not None else 0
    ts = net.config.timestamp if net.config is not None else 0
    if net.controller == node.address:
        _self_request(node, now, net, meta)
        return
    node._send(now, net.controller, Verb.NETWORK_CONFIG_REQUEST,
               serialize_config_request(net.nwid, meta, rev, ts), compress=True)  # fmt: skip


def _self_request(node: Node, now: int, net: Network, meta: bytes) -> None:
    controller = node.controller
    if controller is None:
        net.failure = Failure.NOT_FOUND
        return
    answer = controller.request(now, net.nwid, node.identity.public_only(), Dictionary.parse(meta))
    if answer.config is not None:
        _set_configuration(node, now, net, answer.config, save=True)
    elif answer.error == ErrorCode.NETWORK_ACCESS_DENIED:
        net.failure = Failure.ACCESS_DENIED
    elif answer.error is not None and answer.error != ErrorCode.NETWORK_AUTHENTICATION_REQUIRED:
        net.failure = Failure.NOT_FOUND


def periodic(node: Node, now: int) -> None:
    """Run in every ping pass: config requests and multicast announcements (A.5.3)."""
    for net in list(node.networks.values()):
        if net.needs_config_request(now):
            request_configuration(node, now, net)
        if net.config is not None:
            _send_updates_to_members(node, now, net)


def housekeeping(node: Node, now: int) -> None:
    node.multicaster.clean(now)
    for net in node.networks.values():
        net.bridged_groups = {g: t for g, t in net.bridged_groups.items() if now - t < 1_200_000}
        net.authorized_by_me = {
            a: t for a, t in net.authorized_by_me.items() if now - t < LOCAL_CONTROLLER_AUTH_MEMORY
        }


# ---------------------------------------------------------------- config transport


def _handle_config_chunk(node: Node, now: int, peer: Peer, payload: bytes,
                         via_push: bool) -> int | None:  # fmt: skip
    """Feed one chunk; returns the config update id when a config completed."""
    if len(payload) < 8:
        raise MalformedPacket("truncated config chunk")
    nwid = int.from_bytes(payload[0:8], "big")
    net = node.networks.get(nwid)
    if net is None or net.destroyed:
        return None
    controller = node._get_peer(now, net.controller)
    if controller is None:
        node.request_whois(now, net.controller)
        return None
    if net.assembler is None:
        net.assembler = ConfigAssembler()
    result = net.assembler.add(payload, controller.identity, int(peer.address))
    if result is None:
        return None
    update_id, dictionary = result
    try:
        config = NetworkConfig.from_dictionary(Dictionary.parse(dictionary))
    except MalformedPacket:
        node.counters["config_rejected"] += 1
        return None
    if _set_configuration(node, now, net, config, save=True):
        return int(update_id)
    return None


def do_network_config(node: Node, now: int, path: Path, peer: Peer, packet: bytearray) -> bool:
    update_id = _handle_config_chunk(node, now, peer, bytes(packet[28:]), via_push=True)
    if update_id is not None:
        nwid = packet[28:36]
        # Upstream answers a completed push with an OK whose in-re verb is ECHO (quirk).
        node.send_reply(now, peer, path, Verb.OK,
                        in_re_payload(Verb.ECHO, int.from_bytes(packet[0:8], "big"))
                        + bytes(nwid) + update_id.to_bytes(8, "big"))  # fmt: skip
    node.received(now, path, peer, _hops(packet), Verb.NETWORK_CONFIG)
    return True


def ok_network_config_request(node: Node, now: int, peer: Peer, packet: bytearray) -> None:
    _handle_config_chunk(node, now, peer, bytes(packet[IDX_OK_PAYLOAD:]), via_push=False)


def error_for_network(node: Node, now: int, peer: Peer, in_re_verb: int, code: int,
                      packet: bytearray) -> None:  # fmt: skip
    """ERROR codes that concern a network (§6.3, A.5.4)."""
    if len(packet) < IDX_ERROR_PAYLOAD + 8:
        return
    nwid = int.from_bytes(packet[IDX_ERROR_PAYLOAD : IDX_ERROR_PAYLOAD + 8], "big")
    net = node.networks.get(nwid)
    if net is None:
        return
    from_controller = int(peer.address) == net.controller
    if code in (ErrorCode.OBJ_NOT_FOUND, ErrorCode.UNSUPPORTED_OPERATION):
        if from_controller and in_re_verb == Verb.NETWORK_CONFIG_REQUEST:
            net.failure = Failure.NOT_FOUND
            _announce_status(node, net)
    elif code == ErrorCode.NETWORK_ACCESS_DENIED:
        if from_controller:
            net.failure = Failure.ACCESS_DENIED
            _announce_status(node, net)
    elif code == ErrorCode.NETWORK_AUTHENTICATION_REQUIRED:
        if from_controller:
            net.failure = Failure.AUTHENTICATION_REQUIRED
            _announce_status(node, net)
    elif code == ErrorCode.NEED_MEMBERSHIP_CERTIFICATE:
        if net.config is not None and net.config.com is not None:
            m = net.membership(int(peer.address))
            if (
                m.last_pushed_credentials < net.last_config_update
                or now - m.last_credential_request > CREDENTIAL_REQUEST_INTERVAL
            ):
                m.last_credential_request = now
                push_credentials(node, now, net, int(peer.address))
    elif (
        code == ErrorCode.UNWANTED_MULTICAST
        and len(packet) >= IDX_ERROR_PAYLOAD + 18
        and net.is_allowed(int(peer.address), peer.identity, now)
    ):
        p = IDX_ERROR_PAYLOAD + 8
        group = MulticastGroup(int.from_bytes(packet[p : p + 6], "big"),
                               int.from_bytes(packet[p + 6 : p + 10], "big"))  # fmt: skip
        node.multicaster.remove(nwid, group, int(peer.address))


def _announce_status(node: Node, net: Network) -> None:
    node._actions.append(NetworkConfigChanged(net.nwid, ConfigOp.CONFIG_UPDATE, net.view()))


# ---------------------------------------------------------------- credentials


def push_credentials(node: Node, now: int, net: Network, address: int) -> None:
    c = net.config
    if c is None:
        return
    m = net.membership(address)
    m.last_pushed_credentials = now
    creds = cr.NetworkCredentials(
        coms=[c.com] if c.com is not None else [],
        capabilities=list(c.capabilities),
        tags=list(c.tags),
        revocations=[],
        coos=list(c.coos),
    )
    for payload in creds.split():
        node._send(now, address, Verb.NETWORK_CREDENTIALS, payload, compress=True)


def _push_credentials_if_needed(node: Node, now: int, net: Network, address: int) -> None:
    if net.config is not None and net.should_push_credentials(address, now):
        push_credentials(node, now, net, address)


def do_network_credentials(node: Node, now: int, path: Path, peer: Peer,
                           packet: bytearray) -> bool:  # fmt: skip
    hops = _hops(packet)
    if now - peer.last_credentials_received < CREDENTIALS_RATE_LIMIT:
        node.counters["credentials_rate_limited"] += 1
        node.received(now, path, peer, hops, Verb.NETWORK_CREDENTIALS)
        return True
    creds = cr.NetworkCredentials.parse(bytes(packet[28:]))
    trust = False
    for cred in [*creds.coms, *creds.capabilities, *creds.tags, *creds.coos, *creds.revocations]:
        result = add_credential(node, now, cred, int(peer.address))
        if result is AddResult.NEEDS_WHOIS:
            return False  # retried when the controller's identity arrives
        if result in (AddResult.ACCEPTED_NEW, AddResult.ACCEPTED_REDUNDANT):
            trust = True
    peer.last_credentials_received = now
    node.received(now, path, peer, hops, Verb.NETWORK_CREDENTIALS, trust=trust)
    return True


def add_credential(node: Node, now: int, cred: Any, source: int) -> AddResult:
    """Route a credential to its network and member (A.3.7)."""
    net = node.networks.get(cred.network_id)
    if net is None and node.topology.am_upstream:
        return _root_proof(node, now, cred, source)
    if net is None or net.config is None:
        return AddResult.REJECTED
    signer = node.peers.get(net.controller)
    if net.controller == node.address:
        signer_identity: Identity | None = node.identity
    else:
        signer_identity = signer.identity if signer is not None else None
    if signer_identity is None:
        node.request_whois(now, net.controller)
        return AddResult.NEEDS_WHOIS
    if isinstance(cred, cr.Revocation):
        if not cred.verify(signer_identity):
            return AddResult.REJECTED
        m = net.membership(int(cred.target))
        result = m.add_revocation(cred.credential_type, cred.credential_id, cred.threshold)
        if result is AddResult.ACCEPTED_NEW and cred.flags & 0x01:
            payload = cr.NetworkCredentials(revocations=[cred]).serialize()
            for address in list(net.memberships):
                if address not in (source, net.controller, node.address):
                    node._send(now, address, Verb.NETWORK_CREDENTIALS, payload, compress=True)
        return result
    checked: list[bool] = []

    def verified() -> bool:
        if not checked:
            checked.append(bool(cred.verify(signer_identity)))
        return checked[0]

    member = int(cred.issued_to)
    if member not in net.memberships and (
        len(net.memberships) >= MAX_MEMBERSHIPS or not verified()
    ):
        return AddResult.REJECTED  # only a credential that verifies creates a record
    m = net.membership(member)

    if isinstance(cred, cr.CertificateOfMembership):
        return m.add_com(cred, verified)
    if isinstance(cred, cr.Capability):
        return m.add_keyed(CREDENTIAL_TYPE_CAPABILITY, m.capabilities, cred, verified)
    if isinstance(cred, cr.Tag):
        return m.add_keyed(CREDENTIAL_TYPE_TAG, m.tags, cred, verified)
    if isinstance(cred, cr.CertificateOfOwnership):
        return m.add_keyed(CREDENTIAL_TYPE_COO, m.coos, cred, verified)
    return AddResult.REJECTED


def _root_proof(node: Node, now: int, cred: Any, source: int) -> AddResult:
    """On a root: a COM its holder shows for a network we are not in (root_members)."""
    if not isinstance(cred, cr.CertificateOfMembership) or int(cred.issued_to) != source:
        return AddResult.REJECTED
    nwid = cred.network_id
    controller = node.peers.get(nwid >> 24)
    if controller is None or not cred.verify(controller.identity):
        node.counters["root_proof_rejected"] += 1
        return AddResult.REJECTED
    node.root_memberships.prove(now, nwid, source)
    return AddResult.NOTED


def _gate(node: Node, now: int, net: Network, peer: Peer) -> bool:
    """``Network::gate``: may this peer talk on the network? Also triggers LIKE pushes."""
    address = int(peer.address)
    if not net.is_allowed(address, peer.identity, now):
        return False
    m = net.membership(address)
    if now - m.last_updated_multicast >= MULTICAST_ANNOUNCE_PERIOD:
        m.last_updated_multicast = now
        _announce_groups_to(node, now, net, address, sorted(net.all_groups()))
    return True


def _need_certificate(node: Node, now: int, path: Path, peer: Peer, packet: bytearray,
                      nwid: int) -> bool:  # fmt: skip
    node.send_reply(
        now,
        peer,
        path,
        Verb.ERROR,
        in_re_payload(packet[27] & 0x1F, int.from_bytes(packet[0:8], "big"))
        + bytes((ErrorCode.NEED_MEMBERSHIP_CERTIFICATE,))
        + nwid.to_bytes(8, "big"),
    )
    node.counters["rx_frame_not_member"] += 1
    return False  # deferred: retried for 5 s while the sender pushes its credentials


# ---------------------------------------------------------------- filtering


def _rules(raw: bytes, count: int) -> list[Rule]:
    try:
        rules, _ = parse_rules(raw, 0, count)
    except MalformedPacket:
        return []  # an unreadable table matches nothing: everything is dropped
    return rules


def _cached_rules(cache: dict[tuple[bytes, int], list[Rule]], raw: bytes,
                  count: int) -> list[Rule]:  # fmt: skip
    """``_rules`` of a capability, parsed once per network config."""
    key = (raw, count)
    rules = cache.get(key)
    if rules is None:
        if len(cache) >= 1024:
            cache.clear()
        rules = cache[key] = _rules(raw, count)
    return rules


def _ownership(coos: list[Any]) -> tuple[Callable[[bytes], bool], Callable[[int], bool]]:
    def ip_owned(ip: bytes) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(c.owns_ip(addr) for c in coos)

    def mac_owned(mac: int) -> bool:
        return any(c.owns_mac(mac) for c in coos)

    return ip_owned, mac_owned


def _filter(node: Node, now: int, net: Network, inbound: bool, other: int, src: int, dst: int,
            ethertype: int, payload: bytes, no_tee: bool = False) -> Verdict:  # fmt: skip
    """The frame's :class:`Verdict`; sends the TEE/WATCH/REDIRECT copies.
    Each verdict is counted per network and direction (``zt_network_packets``)."""
    counted = RX_ACCEPTED if inbound else TX_ACCEPTED  # +1: dropped
    c = net.config
    if c is None:
        net.filter_counts[counted + 1] += 1
        return Verdict.DROP
    rules = net.parsed_rules
    if rules is None:
        rules = net.parsed_rules = _rules(c.rules_raw, c.rule_count)
    if rules and rules[0].t & RULE_TYPE_MASK == _ACTION_ACCEPT:
        # The engine's answer when the table starts with ACCEPT (the default table):
        # plain accept, capabilities unconsulted, no copies, no random draw.
        net.filter_counts[counted] += 1
        return Verdict.ACCEPT
    cache = net.rule_cache
    if inbound:
        m = net.memberships.get(other)
        coos = [
            x for x in (m.coos.values() if m is not None else [])
            if m is not None and m.credential_timestamp_valid(
                CREDENTIAL_TYPE_COO, x, c.timestamp, c.credential_time_max_delta)
        ]  # fmt: skip
        caps = [(cap.id, _cached_rules(cache, cap.rules_raw, cap.rule_count))
                for cap in net.remote_capabilities(other)]  # fmt: skip
    else:
        coos = list(c.coos)
        caps = [(cap.id, _cached_rules(cache, cap.rules_raw, cap.rule_count))
                for cap in sorted(c.capabilities, key=lambda x: x.id)]  # fmt: skip
    ip_owned, mac_owned = _ownership(coos)
    ctx = FrameContext(
        network_id=net.nwid,
        our_address=int(node.address),
        peer=other,
        inbound=inbound,
        mac_source=src,
        mac_dest=dst,
        ethertype=ethertype,
        payload=payload,
        our_tags=net.my_tags(),
        peer_tags=net.remote_tags(other) if other else {},
        unsupported_match_result=bool(c.flags & 0x08),
        ip_owned=ip_owned,
        mac_owned=mac_owned,
    )
    decision = filter_with_capabilities(
        rules, caps, ctx, lambda: int.from_bytes(node._random(4), "big"),
        no_tee=no_tee,
    )  # fmt: skip
    for action in decision.actions:
        body = payload[: action.length]
        ext = serialize_ext_frame(net.nwid, action.ext_flags, dst, src, ethertype, body)
        node._send(now, action.target, Verb.EXT_FRAME, ext, compress=True)
    net.filter_counts[counted if decision.accept else counted + 1] += 1
    return decision.accept


# ---------------------------------------------------------------- frames from the tap


def on_tap_frame(node: Node, now: int, nwid: int, src: int, dst: int, ethertype: int,
                 payload: bytes) -> None:  # fmt: skip
    """``Switch::onLocalEthernet`` (A.5.10)."""
    net = node.networks.get(nwid)
    if net is None or net.config is None:
        node.counters["tap_no_config"] += 1
        return
    c = net.config
    bridged = src != net.mac
    if bridged and not c.permits_bridging(node.address):
        node.counters["tap_not_a_bridge"] += 1
        return
    if (dst >> 40) & 0x01:  # multicast
        group = MulticastGroup(dst, 0)
        if dst == BROADCAST:
            target = arp_request_target(ethertype, payload)
            if target is not None:
                group = MulticastGroup(BROADCAST, target)
            elif not c.enable_broadcast:
                return
        elif ethertype == ETHERTYPE_IPV6 and c.ndp_emulation:
            fake = ndp_emulated_advertisement(nwid, int(node.address), list(c.static_ips), payload)
            if fake is not None:
                node._actions.append(DeliverFrame(nwid, fake[0], src, ETHERTYPE_IPV6, fake[1]))
                return
        if c.multicast_limit == 0:
            return
        if bridged and group not in net.bridged_groups:
            net.bridged_groups[group] = now
            _announce_new_group(node, now, net, group)
        elif bridged:
            net.bridged_groups[group] = now
        if not _filter(node, now, net, False, 0, src, dst, ethertype, payload):
            return
        send_multicast(node, now, net, 0, group, src if bridged else None, ethertype, payload)
        return
    if dst == net.mac:
        node._actions.append(DeliverFrame(nwid, src, dst, ethertype, payload))
        return
    target = net.mac_to_member(dst)
    if target is not None:
        if not _filter(node, now, net, False, target, src, dst, ethertype, payload):
            return
        _push_credentials_if_needed(node, now, net, target)
        if bridged:
            node._send(
                now,
                target,
                Verb.EXT_FRAME,
                serialize_ext_frame(nwid, 0, dst, src, ethertype, payload),
            )
        else:
            node._send(now, target, Verb.FRAME, serialize_frame(nwid, ethertype, payload))
        return
    if not _filter(node, now, net, False, 0, src, dst, ethertype, payload):
        return
    bridge = net.bridge_routes.get(dst)
    recipients: list[int]
    if bridge is not None and bridge != node.address and net.is_active_bridge(bridge):
        recipients = [bridge]
    else:
        recipients = [b for b in net.active_bridges() if b != node.address][:MAX_BRIDGE_SPAM]
    for target in recipients:
        if _filter(node, now, net, False, target, src, dst, ethertype, payload, no_tee=True):
            _push_credentials_if_needed(node, now, net, target)
            node._send(
                now,
                target,
                Verb.EXT_FRAME,
                serialize_ext_frame(nwid, 0, dst, src, ethertype, payload),
            )


# ---------------------------------------------------------------- frames from peers


def do_frame(node: Node, now: int, path: Path, peer: Peer, packet: bytearray) -> bool:
    # parse_frame(packet[28:]), field by field: this runs for every unicast frame
    if len(packet) < 38:
        raise MalformedPacket("truncated FRAME")
    nwid = int.from_bytes(packet[28:36], "big")
    net = node.networks.get(nwid)
    hops = packet[IDX_FLAGS] & 7
    if net is None:
        node.received(now, path, peer, hops, Verb.FRAME)
        return True
    if not _gate(node, now, net, peer):
        return _need_certificate(node, now, path, peer, packet, nwid)
    if len(packet) > 38:
        ethertype = (packet[36] << 8) | packet[37]
        payload = bytes(packet[38:])
        address = int(peer.address)
        src = net.member_mac(address)
        if _filter(node, now, net, True, address, src, net.mac, ethertype, payload):
            node._actions.append(DeliverFrame(nwid, src, net.mac, ethertype, payload))
    node.received(now, path, peer, hops, Verb.FRAME, trust=True)
    return True


def do_ext_frame(node: Node, now: int, path: Path, peer: Peer, packet: bytearray) -> bool:
    ext = parse_ext_frame(packet[28:], _parse_com)
    net = node.networks.get(ext.nwid)
    hops = _hops(packet)
    if net is None:
        node.received(now, path, peer, hops, Verb.EXT_FRAME)
        return True
    if ext.com is not None:
        add_credential(node, now, ext.com, int(peer.address))
    if not _gate(node, now, net, peer):
        return _need_certificate(node, now, path, peer, packet, ext.nwid)
    sender_mac = int(MAC.from_address(int(peer.address), net.nwid))
    deliver = False
    if ext.payload and ext.source not in (0, net.mac):
        verdict = _filter(node, now, net, True, int(peer.address), ext.source, ext.destination,
                          ext.ethertype, ext.payload)  # fmt: skip
        if verdict == Verdict.SUPER_ACCEPT:
            deliver = True
        elif verdict == Verdict.ACCEPT:
            deliver = True
            if ext.source != sender_mac:
                if net.is_active_bridge(int(peer.address)):
                    net.learn_bridge_route(ext.source, int(peer.address))
                else:
                    deliver = False
                    node.counters["rx_bridging_not_allowed"] += 1
            if deliver and ext.destination != net.mac:
                if (ext.destination >> 40) & 1:
                    deliver = net.config is not None and net.config.multicast_limit > 0
                else:
                    deliver = net.is_active_bridge(int(node.address))
        if deliver:
            node._actions.append(DeliverFrame(net.nwid, ext.source, ext.destination,
                                              ext.ethertype, ext.payload))  # fmt: skip
    if ext.flags & EXT_FRAME_FLAG_ACK:
        node.send_reply(now, peer, path, Verb.OK,
                        in_re_payload(Verb.EXT_FRAME, int.from_bytes(packet[0:8], "big"))
                        + ext.nwid.to_bytes(8, "big"))  # fmt: skip
    node.received(now, path, peer, hops, Verb.EXT_FRAME, trust=True)
    return True


# ---------------------------------------------------------------- multicast


def multicast_subscribe(node: Node, now: int, nwid: int, group: MulticastGroup) -> None:
    net = node.networks.get(nwid)
    if net is None or group in net.subscriptions:
        return
    net.subscriptions.add(group)
    if net.config is not None:
        _announce_new_group(node, now, net, group)


def multicast_unsubscribe(node: Node, now: int, nwid: int, group: MulticastGroup) -> None:
    net = node.networks.get(nwid)
    if net is not None:
        net.subscriptions.discard(group)


def _upstream_announce_targets(node: Node, net: Network) -> list[int]:
    c = net.config
    targets = []
    if c is not None:
        targets += list(c.anchors()) + list(c.multicast_replicators())
    targets.append(net.controller)
    targets += node.topology.upstream_addresses()
    seen: list[int] = []
    for t in targets:
        if t != node.address and t not in seen:
            seen.append(t)
    return seen


def _announce_groups_to(node: Node, now: int, net: Network, address: int,
                        groups: list[MulticastGroup]) -> None:  # fmt: skip
    for payload in serialize_multicast_likes(net.nwid, groups):
        node._send(now, address, Verb.MULTICAST_LIKE, payload, compress=True)


def _announce_new_group(node: Node, now: int, net: Network, group: MulticastGroup) -> None:
    targets = _upstream_announce_targets(node, net)
    for address in targets:
        _announce_groups_to(node, now, net, address, [group])
    for address in list(net.memberships):
        if address not in targets and net.is_allowed(address, _identity(node, address), now):
            _announce_groups_to(node, now, net, address, [group])


def _identity(node: Node, address: int) -> Identity | None:
    peer = node.peers.get(address)
    return peer.identity if peer is not None else None


def _send_updates_to_members(node: Node, now: int, net: Network) -> None:
    groups = sorted(net.all_groups())
    targets = _upstream_announce_targets(node, net)
    if now - net.last_upstream_announce >= MULTICAST_ANNOUNCE_PERIOD:
        net.last_upstream_announce = now
        for address in targets:
            _announce_groups_to(node, now, net, address, groups)
    for address, m in list(net.memberships.items()):
        if address in targets or address == node.address:
            continue
        if (now - m.last_updated_multicast >= MULTICAST_ANNOUNCE_PERIOD
                and net.is_allowed(address, _identity(node, address), now)):  # fmt: skip
            m.last_updated_multicast = now
            _announce_groups_to(node, now, net, address, groups)


def _controller_authorized(net: Network, address: int, now: int) -> bool:
    t = net.authorized_by_me.get(address)
    return t is not None and now - t < LOCAL_CONTROLLER_AUTH_MEMORY


def _like_allowed(node: Node, now: int, nwid: int, peer: Peer, path: Path,
                  packet_id: int) -> bool:  # fmt: skip
    """May ``peer``'s LIKEs for ``nwid`` be stored (A.5.12.2, and the root rule of
    :mod:`~ztone.node.vl1.root_members`)? Decided afresh for every network id."""
    address = int(peer.address)
    net = node.networks.get(nwid)
    if net is not None and (net.is_allowed(address, peer.identity, now)
                            or _controller_authorized(net, address, now)):  # fmt: skip
        return True
    controller = node.controller
    if (nwid >> 24) == node.address and controller is not None:
        return controller.recently_authorized(nwid, address, now)
    if not node.topology.am_upstream:
        return False
    proven = node.root_memberships.proven(now, nwid, address)
    if node.root_memberships.should_ask(now, nwid, address):  # none while the proof is fresh
        node.counters["root_com_requested"] += 1
        node.send_reply(now, peer, path, Verb.ERROR,
                        in_re_payload(Verb.MULTICAST_LIKE, packet_id)
                        + bytes((ErrorCode.NEED_MEMBERSHIP_CERTIFICATE,))
                        + nwid.to_bytes(8, "big"))  # fmt: skip
    return proven


def do_multicast_like(node: Node, now: int, path: Path, peer: Peer, packet: bytearray) -> bool:
    address = int(peer.address)
    packet_id = int.from_bytes(packet[0:8], "big")
    authorized = False
    last_nwid: int | None = None
    for nwid, group in parse_multicast_like(packet[28:]):
        if nwid != last_nwid:
            last_nwid = nwid
            authorized = _like_allowed(node, now, nwid, peer, path, packet_id)
        if authorized:
            if not node.multicaster.add(now, nwid, group, address,
                                        _member_sender(node, now, nwid)):  # fmt: skip
                node.counters["multicast_like_refused"] += 1
        else:
            node.counters["multicast_like_unauthorized"] += 1
    node.received(now, path, peer, _hops(packet), Verb.MULTICAST_LIKE)
    return True


def _member_sender(node: Node, now: int, nwid: int) -> Any:
    def send(address: int, payload: bytes) -> None:
        net = node.networks.get(nwid)
        if net is not None:
            _push_credentials_if_needed(node, now, net, address)
        compress = net is None or net.config is None or not (net.config.flags & 0x10)
        node._send(now, address, Verb.MULTICAST_FRAME, payload, compress=compress)

    return send


def do_multicast_gather(node: Node, now: int, path: Path, peer: Peer, packet: bytearray) -> bool:
    g = parse_gather(packet[28:], _parse_com)
    address = int(peer.address)
    net = node.networks.get(g.nwid)
    if g.com is not None:
        add_credential(node, now, g.com, address)
    allowed = node.topology.am_upstream or (
        net is not None and (net.is_allowed(address, peer.identity, now)
                             or _controller_authorized(net, address, now))
    )  # fmt: skip
    if (g.nwid >> 24) == node.address and node.controller is not None:
        allowed = allowed or node.controller.recently_authorized(g.nwid, address, now)
    if g.limit > 0 and allowed:
        include_me = net is not None and net.subscribed_or_bridged(g.group)
        total, picked = node.multicaster.gather(
            now, g.nwid, g.group, address, g.limit, include_me,
            lambda n: int.from_bytes(node._random(4), "big") % n,
        )  # fmt: skip
        if picked:
            node.send_reply(now, peer, path, Verb.OK,
                            in_re_payload(Verb.MULTICAST_GATHER, int.from_bytes(packet[0:8], "big"))
                            + g.nwid.to_bytes(8, "big") + g.group.serialize()
                            + serialize_gather_results(total, picked))  # fmt: skip
    node.received(now, path, peer, _hops(packet), Verb.MULTICAST_GATHER, trust=allowed)
    return True


def ok_multicast_gather(node: Node, now: int, peer: Peer, packet: bytearray) -> None:
    p = IDX_OK_PAYLOAD
    if len(packet) < p + 18:
        raise MalformedPacket("truncated OK(MULTICAST_GATHER)")
    nwid = int.from_bytes(packet[p : p + 8], "big")
    group = MulticastGroup(int.from_bytes(packet[p + 8 : p + 14], "big"),
                           int.from_bytes(packet[p + 14 : p + 18], "big"))  # fmt: skip
    if nwid not in node.networks:
        return
    _, addresses = parse_gather_results(packet, p + 18)
    for a in addresses:
        node.multicaster.add(now, nwid, group, int(a), _member_sender(node, now, nwid))


def ok_multicast_frame(node: Node, now: int, peer: Peer, packet: bytearray) -> None:
    p = IDX_OK_PAYLOAD
    if len(packet) < p + 19:
        raise MalformedPacket("truncated OK(MULTICAST_FRAME)")
    nwid = int.from_bytes(packet[p : p + 8], "big")
    group = MulticastGroup(int.from_bytes(packet[p + 8 : p + 14], "big"),
                           int.from_bytes(packet[p + 14 : p + 18], "big"))  # fmt: skip
    flags = packet[p + 18]
    pos = p + 19
    if flags & 0x01:
        com, pos = _parse_com(packet, pos)
        add_credential(node, now, com, int(peer.address))
    if flags & 0x02 and nwid in node.networks:
        _, addresses = parse_gather_results(packet, pos)
        for a in addresses:
            node.multicaster.add(now, nwid, group, int(a), _member_sender(node, now, nwid))


def do_multicast_frame(node: Node, now: int, path: Path, peer: Peer, packet: bytearray) -> bool:
    mf = parse_multicast_frame(packet[28:], _parse_com)
    net = node.networks.get(mf.nwid)
    address = int(peer.address)
    hops = _hops(packet)
    if net is None:
        node.received(now, path, peer, hops, Verb.MULTICAST_FRAME)
        return True
    if mf.com is not None:
        add_credential(node, now, mf.com, address)
    if not _gate(node, now, net, peer):
        return _need_certificate(node, now, path, peer, packet, mf.nwid)
    c = net.config
    if c is None or c.multicast_limit == 0:
        node.received(now, path, peer, hops, Verb.MULTICAST_FRAME, trust=True)
        return True
    sender_mac = int(MAC.from_address(address, net.nwid))
    source = mf.source if mf.source is not None else sender_mac
    if 0 < len(mf.payload) <= 10000:
        ok = (
            (mf.group.mac >> 40) & 1
            and source != 0
            and not (source >> 40) & 1
            and source != net.mac
        )
        if (
            ok
            and mf.flags & MCFRAME_FLAG_REPLICATE
            and int(node.address) in c.multicast_replicators()
        ):
            send_multicast(node, now, net, address, mf.group, mf.source, mf.ethertype, mf.payload)
        if ok and source != sender_mac:
            if net.is_active_bridge(address):
                net.learn_bridge_route(source, address)
            else:
                ok = False
        if ok and _filter(
            node, now, net, True, address, source, mf.group.mac, mf.ethertype, mf.payload
        ):
            node._actions.append(DeliverFrame(net.nwid, source, mf.group.mac, mf.ethertype,
                                              mf.payload))  # fmt: skip
    if mf.gather_limit:
        total, picked = node.multicaster.gather(
            now, mf.nwid, mf.group, address, mf.gather_limit,
            net.subscribed_or_bridged(mf.group),
            lambda n: int.from_bytes(node._random(4), "big") % n,
        )  # fmt: skip
        if picked:
            node.send_reply(now, peer, path, Verb.OK,
                            in_re_payload(Verb.MULTICAST_FRAME, int.from_bytes(packet[0:8], "big"))
                            + mf.nwid.to_bytes(8, "big") + mf.group.serialize() + b"\x02"
                            + serialize_gather_results(total, picked))  # fmt: skip
    node.received(now, path, peer, hops, Verb.MULTICAST_FRAME, trust=True)
    return True


def send_multicast(node: Node, now: int, net: Network, origin: int, group: MulticastGroup,
                   source: int | None, ethertype: int, payload: bytes) -> None:  # fmt: skip
    """``Multicaster::send`` (A.5.12.5)."""
    c = net.config
    if c is None:
        return
    limit = c.multicast_limit
    me = int(node.address)
    compress = not (c.flags & 0x10)
    replicators = [r for r in c.multicast_replicators() if r != me]
    if replicators and not c.permits_bridging(me) and me not in c.multicast_replicators():
        best = None
        best_latency = 0
        for r in replicators:
            peer = node.peers.get(r)
            if peer is None or not peer.alive(now) or peer.best_path(now) is None:
                continue
            lat = peer.latency(now)
            if best is None or lat < best_latency:
                best, best_latency = r, lat
        if best is not None:
            frame = serialize_multicast_frame(
                net.nwid, MCFRAME_FLAG_SOURCE_MAC | MCFRAME_FLAG_REPLICATE, 0,
                source if source is not None else net.mac, group, ethertype, payload,
            )  # fmt: skip
            node._send(now, best, Verb.MULTICAST_FRAME, frame, compress=compress)
            return
    members = node.multicaster.members(now, net.nwid, group)
    order = list(members)
    for i in range(len(order) - 1, 0, -1):  # Fisher-Yates with the node's randomness
        j = int.from_bytes(node._random(4), "big") % (i + 1)
        order[i], order[j] = order[j], order[i]
    bridges = [b for b in c.active_bridges() if b not in (me, origin)]
    flags = MCFRAME_FLAG_SOURCE_MAC if source is not None else 0
    sender = _member_sender(node, now, net.nwid)
    recipients: list[int] = []

    def eligible(address: int) -> bool:
        return _filter(node, now, net, False, address, source or net.mac, group.mac, ethertype,
                       payload, no_tee=True) != Verdict.DROP  # fmt: skip

    if len(members) >= limit:
        frame = serialize_multicast_frame(net.nwid, flags | MCFRAME_FLAG_GATHER_LIMIT, 1, source,
                                          group, ethertype, payload)  # fmt: skip
        for a in bridges + [m for m in order if m not in bridges and m != origin]:
            if len(recipients) >= limit:
                break
            if eligible(a):
                recipients.append(a)
                sender(a, frame)
        return
    gather_limit = (limit - len(members)) + 1
    if node.multicaster.needs_gather(now, net.nwid, group, MULTICAST_EXPLICIT_GATHER_DELAY):
        gather_targets: list[int] = []
        best = node.best_upstream(now)
        if best is not None:
            gather_targets.append(int(best.address))
        gather_targets.append(net.controller)
        gather_targets += list(c.always_contact_addresses()) + list(c.anchors())
        com = c.com.serialize() if c.com is not None else None
        sent: list[int] = []
        for t in gather_targets:
            if t == me or t in sent or len(sent) >= MAX_GATHER_TARGETS:
                continue
            sent.append(t)
            node._send(
                now,
                t,
                Verb.MULTICAST_GATHER,
                serialize_gather(net.nwid, group, gather_limit, com),
                compress=False,
            )
    frame = serialize_multicast_frame(net.nwid, flags | MCFRAME_FLAG_GATHER_LIMIT, gather_limit,
                                      source, group, ethertype, payload)  # fmt: skip
    om = OutboundMulticast(now, limit, frame, {origin} if origin else set())
    for a in bridges + [m for m in order if m not in bridges]:
        if om.done():
            break
        if a in om.sent_to:
            continue
        if eligible(a):
            om.sent_to.add(a)
            sender(a, frame)
    node.multicaster.enqueue(now, net.nwid, group, om)


# ---------------------------------------------------------------- the controller side


def do_network_config_request(node: Node, now: int, path: Path, peer: Peer,
                              packet: bytearray) -> bool:  # fmt: skip
    req = parse_config_request(packet[28:])
    hops = _hops(packet)
    packet_id = int.from_bytes(packet[0:8], "big")
    controller = node.controller
    if controller is None:
        node.send_reply(
            now,
            peer,
            path,
            Verb.ERROR,
            in_re_payload(Verb.NETWORK_CONFIG_REQUEST, packet_id)
            + bytes((ErrorCode.UNSUPPORTED_OPERATION,))
            + req.nwid.to_bytes(8, "big"),
        )
    elif (req.nwid >> 24) == node.address and controller.rate_gate(
        req.nwid, int(peer.address), now
    ):
        answer = controller.request(now, req.nwid, peer.identity, Dictionary.parse(req.metadata))
        if answer.config is not None:
            send_config(node, now, req.nwid, peer, answer.config, in_re=packet_id, path=path)
        elif answer.error is not None:
            body = bytes((answer.error,)) + req.nwid.to_bytes(8, "big")
            if answer.error_info:
                body += len(answer.error_info).to_bytes(2, "big") + answer.error_info
            node.send_reply(
                now,
                peer,
                path,
                Verb.ERROR,
                in_re_payload(Verb.NETWORK_CONFIG_REQUEST, packet_id) + body,
            )
    node.received(now, path, peer, hops, Verb.NETWORK_CONFIG_REQUEST)
    return True


def send_config(node: Node, now: int, nwid: int, peer: Peer, config: NetworkConfig,
                in_re: int | None, path: Path | None = None) -> None:  # fmt: skip
    """``Node::ncSendConfig``: signed chunks as OK(NETWORK_CONFIG_REQUEST) or NETWORK_CONFIG."""
    net = node.networks.get(nwid)
    if net is not None:
        net.authorized_by_me[int(peer.address)] = now
    if node.controller is not None:
        node.controller.note_authorized(nwid, int(peer.address), now)
    update_id = int.from_bytes(node._random(8), "big") or 1
    data = config.to_dictionary().serialize()
    for payload in make_config_chunks(
        data,
        nwid,
        update_id,
        node.identity,
        (Verb.NETWORK_CONFIG_REQUEST, in_re) if in_re else None,
    ):
        if in_re is not None and path is not None:
            node.send_reply(now, peer, path, Verb.OK, payload, compress_payload=True)
        else:
            node._send(now, int(peer.address), Verb.NETWORK_CONFIG, payload, compress=True)


def send_revocation(node: Node, now: int, members: list[int], revocation: Any) -> None:
    payload = cr.NetworkCredentials(revocations=[revocation]).serialize()
    for address in members:
        if address != node.address:
            node._send(now, address, Verb.NETWORK_CREDENTIALS, payload, compress=True)


def static_ip_owner(node: Node, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True if ``ip`` is inside a network assigned to us (no ZeroTier over ZeroTier)."""
    for net in node.networks.values():
        if net.config is None:
            continue
        for a in net.config.static_ips:
            if a.ip.version != ip.version:
                continue
            network = ipaddress.ip_network(f"{a.ip}/{a.port}", strict=False)
            if ip in network:
                return True
    return False


__all__ = ["InetAddress"]
