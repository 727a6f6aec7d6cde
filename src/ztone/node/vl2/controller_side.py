"""The controller side of the conversation, when this node hosts a network's
controller: config requests in, configs and revocations out (B.1, B.2, CORE §6.9).

A member's NETWORK_CONFIG_REQUEST passes the controller's rate gate and leaves the
core as a :class:`~ztone.node.actions.ConfigRequested` action: the host asks its
controller (storage I/O stays out of the core) and hands the answer to
:func:`answer`, which replies over the path the request came in on, byte for byte
what an inline answer would have sent.
"""

from __future__ import annotations

from ztone.node.actions import ConfigRequested, ControllerAnswer
from ztone.node.port import NodePort, Outcome
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.wire import credentials as cr
from ztone.node.wire.config_chunk import make_config_chunks
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.network_config import NetworkConfig
from ztone.node.wire.packet import IDX_FLAGS, ErrorCode, Verb
from ztone.node.wire.verbs import in_re_payload
from ztone.node.wire.vl2_verbs import parse_config_request


def do_network_config_request(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    req = parse_config_request(packet[28:])
    packet_id = int.from_bytes(packet[0:8], "big")
    controller = port.controller
    if controller is None:
        port.send_reply(
            now,
            peer,
            path,
            Verb.ERROR,
            in_re_payload(Verb.NETWORK_CONFIG_REQUEST, packet_id)
            + bytes((ErrorCode.UNSUPPORTED_OPERATION,))
            + req.nwid.to_bytes(8, "big"),
        )
    elif (req.nwid >> 24) == port.address and controller.rate_gate(
        req.nwid, int(peer.address), now
    ):
        metadata = Dictionary.parse(req.metadata)
        port.emit(
            ConfigRequested(
                req.nwid, peer.identity, metadata, packet_id, path.local_socket, path.address
            )
        )
    port.received(now, path, peer, packet[IDX_FLAGS] & 7, Verb.NETWORK_CONFIG_REQUEST)
    return Outcome.DONE


def answer(
    port: NodePort, now: int, request: ConfigRequested, reply: ControllerAnswer, path: Path
) -> None:
    """The controller's answer to a member's request, sent as the request's reply."""
    peer = port.peers.get(int(request.requester.address))
    if peer is None:
        port.counters["config_answer_no_peer"] += 1
        return
    nwid = request.nwid
    if reply.config is not None:
        send_config(port, now, nwid, peer, reply.config, in_re=request.packet_id, path=path)
    elif reply.error is not None:
        body = bytes((reply.error,)) + nwid.to_bytes(8, "big")
        if reply.error_info:
            body += len(reply.error_info).to_bytes(2, "big") + reply.error_info
        port.send_reply(
            now,
            peer,
            path,
            Verb.ERROR,
            in_re_payload(Verb.NETWORK_CONFIG_REQUEST, request.packet_id) + body,
        )


def send_config(
    port: NodePort,
    now: int,
    nwid: int,
    peer: Peer,
    config: NetworkConfig,
    in_re: int | None,
    path: Path | None = None,
) -> None:
    """``Node::ncSendConfig``: signed chunks as OK(NETWORK_CONFIG_REQUEST) or NETWORK_CONFIG."""
    net = port.networks.get(nwid)
    if net is not None:
        net.authorized_by_me[int(peer.address)] = now
    if port.controller is not None:
        port.controller.note_authorized(nwid, int(peer.address), now)
    update_id = int.from_bytes(port.random(8), "big") or 1
    data = config.to_dictionary().serialize()
    for payload in make_config_chunks(
        data,
        nwid,
        update_id,
        port.identity,
        (Verb.NETWORK_CONFIG_REQUEST, in_re) if in_re else None,
    ):
        if in_re is not None and path is not None:
            port.send_reply(now, peer, path, Verb.OK, payload, compress_payload=True)
        else:
            port.send(now, int(peer.address), Verb.NETWORK_CONFIG, payload, compress=True)


def send_revocation(
    port: NodePort, now: int, members: list[int], revocation: cr.Revocation
) -> None:
    payload = cr.NetworkCredentials(revocations=[revocation]).serialize()
    for address in members:
        if address != port.address:
            port.send(now, address, Verb.NETWORK_CREDENTIALS, payload, compress=True)
