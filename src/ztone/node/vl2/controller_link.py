"""The member side of the controller conversation: joining and leaving, config
requests, config chunks (pushed or answered), and the ERRORs a controller answers
with (PROTOCOL-NETWORK-SERVICE A.2.8, A.5.3-A.5.4, CORE §6.3, §6.9-6.10).

When this node is the network's own controller the request does not go on the
wire: it leaves the core as a :class:`~ztone.node.actions.ConfigRequested` action
(packet id 0), and the host's answer comes back through :func:`own_answer`.
"""

from __future__ import annotations

from ztone.errors import MalformedPacket
from ztone.node.actions import ConfigRequested, ControllerAnswer, StateKind
from ztone.node.port import NodePort, Outcome
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl2.multicast import send_updates_to_members
from ztone.node.vl2.network import CREDENTIAL_REQUEST_INTERVAL, Failure, Network
from ztone.node.wire.config_chunk import ConfigAssembler
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.network_config import NetworkConfig, request_metadata
from ztone.node.wire.packet import IDX_FLAGS, ErrorCode, Verb
from ztone.node.wire.verbs import IDX_ERROR_PAYLOAD, IDX_OK_PAYLOAD, in_re_payload
from ztone.node.wire.vl2_verbs import MulticastGroup, serialize_config_request


def join(port: NodePort, now: int, nwid: int) -> Network:
    """Join ``nwid`` (idempotent): restore its stored config, ask for a fresh one now."""
    net = port.networks.get(nwid)
    if net is not None:
        return net
    net = Network(nwid, int(port.address))
    port.networks[nwid] = net
    net.start(port, now, port.load_state(StateKind.NETWORK_CONFIG, nwid))
    port.ping_soon()  # request the config now
    return net


def leave(port: NodePort, now: int, nwid: int) -> bool:
    """Leave ``nwid``; False if it was not joined."""
    net = port.networks.pop(nwid, None)
    if net is None:
        return False
    port.multicaster.forget_network(nwid)
    net.destroy(port)
    return True


def periodic(port: NodePort, now: int) -> None:
    """Run in every ping pass: config requests and multicast announcements (A.5.3)."""
    for net in list(port.networks.values()):
        if net.needs_config_request(now):
            request_configuration(port, now, net)
        if net.config is not None:
            send_updates_to_members(port, now, net)


def housekeeping(port: NodePort, now: int) -> None:
    port.multicaster.clean(now)
    for net in port.networks.values():
        net.clean(now)


def request_configuration(port: NodePort, now: int, net: Network) -> None:
    """NETWORK_CONFIG_REQUEST to the controller (or the host, if we are it)."""
    net.last_request_sent = now
    meta = request_metadata(port.version, port.os_arch).serialize()
    rev = net.config.revision if net.config is not None else 0
    ts = net.config.timestamp if net.config is not None else 0
    if net.controller == port.address:
        if port.controller is None:
            net.failure = Failure.NOT_FOUND
            return
        port.emit(ConfigRequested(net.nwid, port.identity.public_only(), Dictionary.parse(meta), 0))
        return
    port.send(
        now,
        net.controller,
        Verb.NETWORK_CONFIG_REQUEST,
        serialize_config_request(net.nwid, meta, rev, ts),
        compress=True,
    )


def own_answer(port: NodePort, now: int, nwid: int, answer: ControllerAnswer) -> None:
    """Our own controller's answer to our own request (no packet involved)."""
    net = port.networks.get(nwid)
    if net is None:
        return
    if answer.config is not None:
        net.set_configuration(port, now, answer.config, save=True)
    elif answer.error == ErrorCode.NETWORK_ACCESS_DENIED:
        net.failure = Failure.ACCESS_DENIED
    elif answer.error is not None and answer.error != ErrorCode.NETWORK_AUTHENTICATION_REQUIRED:
        net.failure = Failure.NOT_FOUND


def _handle_config_chunk(port: NodePort, now: int, peer: Peer, payload: bytes) -> int | None:
    """Feed one chunk; returns the config update id when a config completed."""
    if len(payload) < 8:
        raise MalformedPacket("truncated config chunk")
    nwid = int.from_bytes(payload[0:8], "big")
    net = port.networks.get(nwid)
    if net is None or net.destroyed:
        return None
    controller = port.get_peer(now, net.controller)
    if controller is None:
        port.request_whois(now, net.controller)
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
        port.counters["config_rejected"] += 1
        return None
    if net.set_configuration(port, now, config, save=True):
        return int(update_id)
    return None


def do_network_config(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    update_id = _handle_config_chunk(port, now, peer, bytes(packet[28:]))
    if update_id is not None:
        nwid = packet[28:36]
        # Upstream answers a completed push with an OK whose in-re verb is ECHO (quirk).
        port.send_reply(
            now,
            peer,
            path,
            Verb.OK,
            in_re_payload(Verb.ECHO, int.from_bytes(packet[0:8], "big"))
            + bytes(nwid)
            + update_id.to_bytes(8, "big"),
        )
    port.received(now, path, peer, packet[IDX_FLAGS] & 7, Verb.NETWORK_CONFIG)
    return Outcome.DONE


def ok_network_config_request(port: NodePort, now: int, peer: Peer, packet: bytearray) -> None:
    _handle_config_chunk(port, now, peer, bytes(packet[IDX_OK_PAYLOAD:]))


def error_for_network(
    port: NodePort, now: int, peer: Peer, in_re_verb: int, code: int, packet: bytearray
) -> None:
    """ERROR codes that concern a network (§6.3, A.5.4)."""
    if len(packet) < IDX_ERROR_PAYLOAD + 8:
        return
    nwid = int.from_bytes(packet[IDX_ERROR_PAYLOAD : IDX_ERROR_PAYLOAD + 8], "big")
    net = port.networks.get(nwid)
    if net is None:
        return
    from_controller = int(peer.address) == net.controller
    if code in (ErrorCode.OBJ_NOT_FOUND, ErrorCode.UNSUPPORTED_OPERATION):
        if from_controller and in_re_verb == Verb.NETWORK_CONFIG_REQUEST:
            net.failure = Failure.NOT_FOUND
            net.announce_status(port)
    elif code == ErrorCode.NETWORK_ACCESS_DENIED:
        if from_controller:
            net.failure = Failure.ACCESS_DENIED
            net.announce_status(port)
    elif code == ErrorCode.NETWORK_AUTHENTICATION_REQUIRED:
        if from_controller:
            net.failure = Failure.AUTHENTICATION_REQUIRED
            net.announce_status(port)
    elif code == ErrorCode.NEED_MEMBERSHIP_CERTIFICATE:
        if net.config is not None and net.config.com is not None:
            m = net.membership(int(peer.address))
            if (
                m.last_pushed_credentials < net.last_config_update
                or now - m.last_credential_request > CREDENTIAL_REQUEST_INTERVAL
            ):
                m.last_credential_request = now
                net.push_credentials(port, now, int(peer.address))
    elif (
        code == ErrorCode.UNWANTED_MULTICAST
        and len(packet) >= IDX_ERROR_PAYLOAD + 18
        and net.is_allowed(int(peer.address), peer.identity, now)
    ):
        p = IDX_ERROR_PAYLOAD + 8
        group = MulticastGroup(
            int.from_bytes(packet[p : p + 6], "big"), int.from_bytes(packet[p + 6 : p + 10], "big")
        )
        port.multicaster.remove(nwid, group, int(peer.address))
