"""Handlers for authenticated packets, one per verb (``IncomingPacket::_do*``, §6).

Each handler gets the node's port, ``now``, the arrival path, the sender and the
de-armored, decompressed packet, and returns a :class:`~ztone.node.port.Outcome`:
DONE, or DEFER to have it retried for up to 5 s. The VL1 verbs are handled here;
the VL2 verbs go to :mod:`ztone.node.vl2` (frames, multicast, credentials and the
two sides of the controller conversation).
"""

from __future__ import annotations

from collections.abc import Callable

from ztone.crypto.armor import PeerKey, crypt_field, dearmor
from ztone.crypto.c25519 import KeyAgreementError
from ztone.errors import MalformedPacket
from ztone.node import constants as C
from ztone.node.actions import EventKind, NodeEvent
from ztone.node.bounds import MAX_PEER_ECHO_GATES
from ztone.node.metrics import RX
from ztone.node.port import NodePort, Outcome
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl2 import controller_link, controller_side, credential_intake, frames, multicast
from ztone.node.wire.hello import MOON_RECORD_LENGTH, OkHello
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress, parse_inet
from ztone.node.wire.packet import IDX_FLAGS, PROTO_VERSION, PROTO_VERSION_MIN, ErrorCode, Verb
from ztone.node.wire.verbs import (
    IDX_OK_PAYLOAD,
    PUSH_FLAG_CLUSTER_REDIRECT,
    PUSH_FLAG_FORGET_PATH,
    in_re_payload,
    parse_error_code,
    parse_in_re,
    parse_ok_whois,
    parse_push_direct_paths,
    parse_rendezvous,
    parse_user_message,
    parse_whois,
)
from ztone.node.wire.world import World

Handler = Callable[[NodePort, int, Path, Peer, bytearray], Outcome]


def _hops(packet: bytearray) -> int:
    return packet[IDX_FLAGS] & 7


def handle_hello(
    port: NodePort, now: int, path: Path, packet: bytearray, already_authenticated: bool
) -> None:
    """``_doHELLO`` (§6.2.2): may create the peer; answers OK(HELLO)."""
    if len(packet) < 41:
        raise MalformedPacket("truncated HELLO")
    port.metrics.verb(RX, Verb.HELLO)
    hops = _hops(packet)
    proto = packet[28]
    version = (packet[29], packet[30], int.from_bytes(packet[31:33], "big"))
    timestamp = int.from_bytes(packet[33:41], "big")
    identity, pos = Identity.parse(packet, 41)
    identity = identity.public_only()
    if proto < PROTO_VERSION_MIN:
        port.counters["hello_old_protocol"] += 1
        return
    source = int.from_bytes(packet[13:18], "big")
    if int(identity.address) != source:
        port.counters["hello_address_mismatch"] += 1
        return
    peer = port.peers.get(source)
    if peer is not None:
        if not already_authenticated:
            if peer.identity != identity:
                _identity_collision(port, now, path, packet, identity)
                return
            if not dearmor(packet, peer.key):
                port.counters["rx_bad_mac"] += 1
                return
    else:
        if already_authenticated:
            return
        if not port.identity_validation_allowed(now, path.address):
            port.counters["hello_rate_limited"] += 1
            return
        try:
            key = PeerKey(port.identity.agree(identity), port.crypto)
        except KeyAgreementError:
            port.counters["peer_bad_key"] += 1
            return
        if not dearmor(packet, key):
            port.counters["rx_bad_mac"] += 1
            return
        if not port.validate_identity(identity):
            port.counters["hello_invalid_identity"] += 1
            return
        peer = port.add_peer(identity, key)
        if peer is None:
            return
        port.peer_learned(now, peer)

    # The optional tail: where the sender sent this, its planet, its moons.
    external: InetAddress | None = None
    planet_id = planet_ts = 0
    moons_asked: list[tuple[int, int]] = []
    if pos < len(packet):
        external, pos = parse_inet(packet, pos)
    if pos + 16 <= len(packet):
        planet_id = int.from_bytes(packet[pos : pos + 8], "big")
        planet_ts = int.from_bytes(packet[pos + 8 : pos + 16], "big")
        pos += 16
    if pos < len(packet):
        crypt_field(peer.key, packet, pos)
        if pos + 2 <= len(packet):
            count = int.from_bytes(packet[pos : pos + 2], "big")
            pos += 2
            for _ in range(count):
                if pos + MOON_RECORD_LENGTH > len(packet):
                    break
                moons_asked.append(
                    (
                        int.from_bytes(packet[pos + 1 : pos + 9], "big"),
                        int.from_bytes(packet[pos + 9 : pos + 17], "big"),
                    )
                )
                pos += MOON_RECORD_LENGTH
    if external is not None and hops == 0:
        port.iam(now, peer, path, external)

    worlds = bytearray()
    planet = port.topology.planet
    if planet_id and planet_id == planet.id and planet.timestamp > planet_ts:
        worlds += planet.serialize()
    for moon_id, moon_ts in moons_asked:
        moon = port.topology.moons.get(moon_id)
        if moon is not None and moon.timestamp > moon_ts:
            worlds += moon.serialize()
    reflected = path.address if proto >= 5 else InetAddress(path.address.ip, 0)
    ok = OkHello(timestamp, PROTO_VERSION, port.version, reflected, bytes(worlds))
    port.send_reply(
        now,
        peer,
        path,
        Verb.OK,
        in_re_payload(Verb.HELLO, int.from_bytes(packet[0:8], "big")) + ok.serialize(),
    )
    # Recorded after the reply: a new peer's first OK(HELLO) is Salsa20/12 (§4.2 quirk).
    peer.set_version(proto, *version)
    port.received(now, path, peer, hops, Verb.HELLO)


def _identity_collision(
    port: NodePort, now: int, path: Path, packet: bytearray, identity: Identity
) -> None:
    if not port.identity_validation_allowed(now, path.address):
        return
    try:
        key = PeerKey(port.identity.agree(identity), port.crypto)
    except KeyAgreementError:
        return
    if dearmor(packet, key):
        port.counters["identity_collision"] += 1
        collider = Peer(identity, key)
        port.send_reply(
            now,
            collider,
            path,
            Verb.ERROR,
            in_re_payload(Verb.HELLO, int.from_bytes(packet[0:8], "big"))
            + bytes((ErrorCode.IDENTITY_COLLISION,)),
        )


def _do_error(port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray) -> Outcome:
    in_re = parse_in_re(packet)
    code = parse_error_code(packet)
    if code == ErrorCode.IDENTITY_COLLISION and port.topology.is_upstream(int(peer.address)):
        port.emit(
            NodeEvent(
                EventKind.FATAL_IDENTITY_COLLISION,
                f"root {peer.address} reports an identity collision",
            )
        )
    else:
        controller_link.error_for_network(port, now, peer, in_re.verb, code, packet)
    # The code is the sender's byte: one counter per known code, one for all others,
    # so a peer cannot grow the counters table by trying every value.
    known = code in _ERROR_CODES
    port.counters[f"rx_error_{code}_{in_re.verb}" if known else "rx_error_unknown_code"] += 1
    port.metrics.error(RX, code)
    port.received(now, path, peer, _hops(packet), Verb.ERROR)
    return Outcome.DONE


_ERROR_CODES = frozenset(int(c) for c in ErrorCode)


def _do_ok(port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray) -> Outcome:
    in_re = parse_in_re(packet)
    hops = _hops(packet)
    if not port.expecting_reply(in_re.packet_id):
        port.counters["rx_unexpected_ok"] += 1
        return Outcome.DONE
    if in_re.verb == Verb.HELLO:
        ok = OkHello.parse(packet[IDX_OK_PAYLOAD:])
        if ok.protocol_version < PROTO_VERSION_MIN:
            return Outcome.DONE
        if ok.worlds and port.topology.should_accept_world_update_from(int(peer.address)):
            worlds: list[World] = []
            pos = 0
            while pos < len(ok.worlds):
                world, pos = World.parse_prefix(ok.worlds, pos)
                worlds.append(world)
            port.accept_worlds(worlds)
        if hops == 0:
            path.update_latency(now - ok.timestamp)
        peer.set_version(ok.protocol_version, *ok.version)
        if hops == 0 and ok.external_address is not None:
            port.iam(now, peer, path, ok.external_address)
    elif in_re.verb == Verb.WHOIS and port.topology.is_upstream(int(peer.address)):
        port.learn_identity(now, parse_ok_whois(packet))
    elif in_re.verb == Verb.NETWORK_CONFIG_REQUEST:
        controller_link.ok_network_config_request(port, now, peer, packet)
    elif in_re.verb == Verb.MULTICAST_GATHER:
        multicast.ok_multicast_gather(port, now, peer, packet)
    elif in_re.verb == Verb.MULTICAST_FRAME:
        multicast.ok_multicast_frame(port, now, peer, packet)
    port.received(now, path, peer, hops, Verb.OK)
    return Outcome.DONE


def _do_whois(port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray) -> Outcome:
    hops = _hops(packet)
    if not port.topology.am_upstream and (
        now - peer.last_whois_request_received < C.PEER_WHOIS_RATE_LIMIT
    ):
        port.received(now, path, peer, hops, Verb.WHOIS)
        return Outcome.DONE
    peer.last_whois_request_received = now
    found = bytearray()
    for address in parse_whois(packet):
        if address == port.address:
            found += port.identity.serialize(False)
        elif (known := port.peers.get(int(address))) is not None:
            found += known.identity.serialize(False)
        else:
            port.request_whois(now, int(address))
    if found:
        port.send_reply(
            now,
            peer,
            path,
            Verb.OK,
            in_re_payload(Verb.WHOIS, int.from_bytes(packet[0:8], "big")) + found,
        )
    port.received(now, path, peer, hops, Verb.WHOIS)
    return Outcome.DONE


def _do_rendezvous(port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray) -> Outcome:
    hops = _hops(packet)
    if port.topology.is_upstream(int(peer.address)):
        rdv = parse_rendezvous(packet)
        target = port.peers.get(int(rdv.address))
        if (
            target is not None
            and rdv.endpoint.port != 0
            and port.should_use_path(int(rdv.address), path.local_socket, rdv.endpoint)
        ):
            port.send_junk(now, path.local_socket, rdv.endpoint)
            port.attempt_contact(now, target, path.local_socket, rdv.endpoint, False)
            port.counters["rendezvous_followed"] += 1
    port.received(now, path, peer, hops, Verb.RENDEZVOUS)
    return Outcome.DONE


def _do_echo(port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray) -> Outcome:
    key = (path.local_socket, path.address)
    last = peer.echo_gate.get(key, -C.ECHO_RATE_LIMIT)
    if now - last >= C.ECHO_RATE_LIMIT:
        if key not in peer.echo_gate and len(peer.echo_gate) >= MAX_PEER_ECHO_GATES:
            peer.echo_gate.clear()
        peer.echo_gate[key] = now
        port.send_reply(
            now,
            peer,
            path,
            Verb.OK,
            in_re_payload(Verb.ECHO, int.from_bytes(packet[0:8], "big")) + bytes(packet[28:]),
        )
    port.received(now, path, peer, _hops(packet), Verb.ECHO)
    return Outcome.DONE


def _do_push_direct_paths(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    hops = _hops(packet)
    if now - peer.last_direct_path_push_receive <= C.PUSH_DIRECT_PATHS_CUTOFF_TIME:
        peer.direct_path_push_cutoff_count += 1
    else:
        peer.direct_path_push_cutoff_count = 0
    peer.last_direct_path_push_receive = now
    if peer.direct_path_push_cutoff_count < C.PUSH_DIRECT_PATHS_CUTOFF_LIMIT:
        tried: dict[tuple[int, int], int] = {}
        for record in parse_push_direct_paths(packet):
            ep = record.endpoint
            if ep is None or record.flags & PUSH_FLAG_FORGET_PATH:
                continue
            redirect = bool(record.flags & PUSH_FLAG_CLUSTER_REDIRECT)
            if not redirect and any(s.path.address == ep and s.path.alive(now) for s in peer.slots):
                continue
            if not port.should_use_path(int(peer.address), path.local_socket, ep):
                continue
            k = (int(ep.scope()), ep.ip.version)
            tried[k] = tried.get(k, 0) + 1
            if tried[k] <= C.PUSH_DIRECT_PATHS_MAX_PER_SCOPE_AND_FAMILY:
                port.attempt_contact(now, peer, -1, ep, redirect)
    port.received(now, path, peer, hops, Verb.PUSH_DIRECT_PATHS)
    return Outcome.DONE


def _do_user_message(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    message_type, data = parse_user_message(packet)
    port.emit(
        NodeEvent(
            EventKind.USER_MESSAGE,
            source=int(peer.address),
            message_type=message_type,
            payload=data,
        )
    )
    port.received(now, path, peer, _hops(packet), Verb.USER_MESSAGE)
    return Outcome.DONE


def _do_remote_trace(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    for blob in bytes(packet[28:]).split(b"\x00"):
        if blob and len(blob) <= 10_000:
            port.emit(NodeEvent(EventKind.REMOTE_TRACE, source=int(peer.address), payload=blob))
    port.received(now, path, peer, _hops(packet), Verb.REMOTE_TRACE)
    return Outcome.DONE


def _do_received_only(
    port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray
) -> Outcome:
    """NOP, unknown verbs and the VL2 verbs this VL1 node does not serve."""
    verb = packet[27] & 0x1F
    port.counters[f"rx_verb_{verb}_unhandled"] += 1 if verb != Verb.NOP else 0
    port.received(now, path, peer, _hops(packet), verb)
    return Outcome.DONE


HANDLERS: dict[int, Handler] = {
    Verb.ERROR: _do_error,
    Verb.OK: _do_ok,
    Verb.WHOIS: _do_whois,
    Verb.RENDEZVOUS: _do_rendezvous,
    Verb.ECHO: _do_echo,
    Verb.PUSH_DIRECT_PATHS: _do_push_direct_paths,
    Verb.USER_MESSAGE: _do_user_message,
    Verb.REMOTE_TRACE: _do_remote_trace,
    Verb.FRAME: frames.do_frame,
    Verb.EXT_FRAME: frames.do_ext_frame,
    Verb.MULTICAST_LIKE: multicast.do_multicast_like,
    Verb.NETWORK_CREDENTIALS: credential_intake.do_network_credentials,
    Verb.NETWORK_CONFIG_REQUEST: controller_side.do_network_config_request,
    Verb.NETWORK_CONFIG: controller_link.do_network_config,
    Verb.MULTICAST_GATHER: multicast.do_multicast_gather,
    Verb.MULTICAST_FRAME: multicast.do_multicast_frame,
}


def dispatch(port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray) -> Outcome:
    """Route an authenticated, decompressed packet to its verb handler."""
    verb = packet[27] & 0x1F
    if verb == Verb.HELLO:
        handle_hello(port, now, path, packet, already_authenticated=True)  # counts it
        return Outcome.DONE
    port.metrics.verbs[RX][verb] += 1  # again if it is deferred and retried, as upstream
    return HANDLERS.get(verb, _do_received_only)(port, now, path, peer, packet)
