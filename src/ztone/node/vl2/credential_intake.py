"""Credentials arriving from peers: NETWORK_CREDENTIALS, COMs inside frames and
gathers, and the ERROR that asks a sender for its certificate
(PROTOCOL-NETWORK-SERVICE A.3.7, CORE §6.11).

A credential goes to the network it names (:meth:`Network.add_credential`); on a root
a COM for a network the root is not in is kept as a proof of membership instead
(:mod:`~ztone.node.vl1.root_members`).
"""

from __future__ import annotations

from ztone.node.port import NodePort, Outcome
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl2.membership import AddResult
from ztone.node.vl2.network import Credential
from ztone.node.wire import credentials as cr
from ztone.node.wire.packet import IDX_FLAGS, ErrorCode, Verb
from ztone.node.wire.verbs import in_re_payload

CREDENTIALS_RATE_LIMIT = 1_000


def parse_com(
    data: bytes | bytearray | memoryview, offset: int
) -> tuple[cr.CertificateOfMembership, int]:
    """A COM inside a VL2 verb's payload (the parsers take it as a callback)."""
    return cr.CertificateOfMembership.parse(data, offset)


def add_credential(port: NodePort, now: int, cred: Credential, source: int) -> AddResult:
    """Route a credential to its network and member (A.3.7)."""
    net = port.networks.get(cred.network_id)
    if net is None and port.topology.am_upstream:
        return _root_proof(port, now, cred, source)
    if net is None:
        return AddResult.REJECTED
    return net.add_credential(port, now, cred, source)


def _root_proof(port: NodePort, now: int, cred: Credential, source: int) -> AddResult:
    """On a root: a COM its holder shows for a network we are not in (root_members)."""
    if not isinstance(cred, cr.CertificateOfMembership) or int(cred.issued_to) != source:
        return AddResult.REJECTED
    nwid = cred.network_id
    controller = port.peers.get(nwid >> 24)
    if controller is None or not cred.verify(controller.identity):
        port.counters["root_proof_rejected"] += 1
        return AddResult.REJECTED
    port.root_memberships.prove(now, nwid, source)
    return AddResult.NOTED


def do_network_credentials(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    hops = packet[IDX_FLAGS] & 7
    if now - peer.last_credentials_received < CREDENTIALS_RATE_LIMIT:
        port.counters["credentials_rate_limited"] += 1
        port.received(now, path, peer, hops, Verb.NETWORK_CREDENTIALS)
        return Outcome.DONE
    creds = cr.NetworkCredentials.parse(bytes(packet[28:]))
    trust = False
    everything: list[Credential] = [
        *creds.coms,
        *creds.capabilities,
        *creds.tags,
        *creds.coos,
        *creds.revocations,
    ]
    for cred in everything:
        result = add_credential(port, now, cred, int(peer.address))
        if result is AddResult.NEEDS_WHOIS:
            return Outcome.DEFER  # retried when the controller's identity arrives
        if result in (AddResult.ACCEPTED_NEW, AddResult.ACCEPTED_REDUNDANT):
            trust = True
    peer.last_credentials_received = now
    port.received(now, path, peer, hops, Verb.NETWORK_CREDENTIALS, trust=trust)
    return Outcome.DONE


def need_certificate(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray, nwid: int
) -> Outcome:
    """ERROR(NEED_MEMBERSHIP_CERTIFICATE) to a sender the network does not admit (yet)."""
    port.send_reply(
        now,
        peer,
        path,
        Verb.ERROR,
        in_re_payload(packet[27] & 0x1F, int.from_bytes(packet[0:8], "big"))
        + bytes((ErrorCode.NEED_MEMBERSHIP_CERTIFICATE,))
        + nwid.to_bytes(8, "big"),
    )
    port.counters["rx_frame_not_member"] += 1
    return Outcome.DEFER  # retried for 5 s while the sender pushes its credentials
