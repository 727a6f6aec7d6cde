"""Dispatch by verb (``ztone.node.vl1.incoming``) on a fake port, without a node."""

from __future__ import annotations

import ipaddress

from node.fakeport import IDS, NOW, FakePort
from ztone.node.actions import EventKind, NodeEvent
from ztone.node.port import Outcome
from ztone.node.vl1 import incoming
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl2 import controller_side, credential_intake, frames, multicast
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.packet import ErrorCode, Verb, build_packet
from ztone.node.wire.verbs import in_re_payload, parse_in_re

PATH = Path(1, InetAddress(ipaddress.ip_address("198.18.0.20"), 9993))
PACKET_ID = bytes.fromhex("0102030405060708")


def _setup() -> tuple[FakePort, Peer]:
    port = FakePort()
    return port, port.add_known_peer(IDS[3])


def _packet(port: FakePort, peer: Peer, verb: int, payload: bytes = b"") -> bytearray:
    return build_packet(PACKET_ID, port.address, peer.address, verb, payload)


def test_echo_is_answered_with_its_payload_once_per_rate_window() -> None:
    port, peer = _setup()
    verdict = incoming.dispatch(port, NOW, PATH, peer, _packet(port, peer, Verb.ECHO, b"ping"))
    assert verdict is Outcome.DONE
    [reply] = port.replies
    assert reply.verb == Verb.OK and reply.path is PATH
    assert reply.payload == in_re_payload(Verb.ECHO, int.from_bytes(PACKET_ID, "big")) + b"ping"
    incoming.dispatch(port, NOW + 1, PATH, peer, _packet(port, peer, Verb.ECHO, b"again"))
    assert len(port.replies) == 1  # rate-limited per path
    assert [r.verb for r in port.received_log] == [Verb.ECHO, Verb.ECHO]
    assert port.metrics.verbs[0][Verb.ECHO] == 2


def test_nop_and_unknown_verbs_are_only_received() -> None:
    port, peer = _setup()
    assert incoming.dispatch(port, NOW, PATH, peer, _packet(port, peer, Verb.NOP)) is Outcome.DONE
    assert incoming.dispatch(port, NOW, PATH, peer, _packet(port, peer, 0x1F)) is Outcome.DONE
    assert port.counters["rx_verb_31_unhandled"] == 1
    assert port.counters["rx_verb_0_unhandled"] == 0  # NOP is not "unhandled"
    assert [r.verb for r in port.received_log] == [Verb.NOP, 0x1F]
    assert port.replies == [] and port.sent == []


def test_user_message_becomes_an_event() -> None:
    port, peer = _setup()
    payload = (0x1234).to_bytes(8, "big") + b"hi"
    incoming.dispatch(port, NOW, PATH, peer, _packet(port, peer, Verb.USER_MESSAGE, payload))
    assert port.actions == [NodeEvent(EventKind.USER_MESSAGE, source=int(peer.address),
                                      message_type=0x1234, payload=b"hi")]  # fmt: skip


def test_identity_collision_from_a_root_is_fatal_and_from_others_is_counted() -> None:
    port = FakePort()
    root = port.add_known_peer(IDS[0])  # the private planet's root
    other = port.add_known_peer(IDS[3])
    body = in_re_payload(Verb.HELLO, 7) + bytes((ErrorCode.IDENTITY_COLLISION,))
    incoming.dispatch(port, NOW, PATH, other, _packet(port, other, Verb.ERROR, body))
    assert port.actions == []
    incoming.dispatch(port, NOW, PATH, root, _packet(port, root, Verb.ERROR, body))
    [event] = port.actions
    assert isinstance(event, NodeEvent) and event.kind is EventKind.FATAL_IDENTITY_COLLISION
    assert port.counters[f"rx_error_{int(ErrorCode.IDENTITY_COLLISION)}_{int(Verb.HELLO)}"] == 2


def test_an_unknown_error_code_counts_under_one_key() -> None:
    port, peer = _setup()
    for code in (0x70, 0x71, 0x72):
        body = in_re_payload(Verb.ECHO, 1) + bytes((code,))
        incoming.dispatch(port, NOW, PATH, peer, _packet(port, peer, Verb.ERROR, body))
    assert port.counters["rx_error_unknown_code"] == 3
    assert sum(1 for k in port.counters if k.startswith("rx_error_")) == 1


def test_an_ok_nobody_expects_is_dropped_before_it_is_read() -> None:
    port, peer = _setup()
    body = in_re_payload(Verb.WHOIS, 99) + IDS[4].serialize(False)
    incoming.dispatch(port, NOW, PATH, peer, _packet(port, peer, Verb.OK, body))
    assert port.counters["rx_unexpected_ok"] == 1
    assert port.learned == [] and port.received_log == []


def test_ok_whois_is_learned_only_from_an_upstream() -> None:
    port = FakePort()
    root = port.add_known_peer(IDS[0])
    other = port.add_known_peer(IDS[3])
    port.expected = {99, 100}
    body = in_re_payload(Verb.WHOIS, 99) + IDS[4].serialize(False)
    incoming.dispatch(port, NOW, PATH, other, _packet(port, other, Verb.OK, body))
    assert port.learned == []
    body = in_re_payload(Verb.WHOIS, 100) + IDS[4].serialize(False)
    incoming.dispatch(port, NOW, PATH, root, _packet(port, root, Verb.OK, body))
    assert port.learned == [int(IDS[4].address)]
    assert parse_in_re(_packet(port, root, Verb.OK, body)).packet_id == 100


def test_whois_answers_known_identities_and_asks_for_unknown_ones() -> None:
    port, peer = _setup()
    port.add_known_peer(IDS[4])
    asked = (int(IDS[4].address).to_bytes(5, "big") + int(IDS[5].address).to_bytes(5, "big")
             + int(port.address).to_bytes(5, "big"))  # fmt: skip
    incoming.dispatch(port, NOW, PATH, peer, _packet(port, peer, Verb.WHOIS, asked))
    [reply] = port.replies
    assert reply.payload == (in_re_payload(Verb.WHOIS, int.from_bytes(PACKET_ID, "big"))
                             + IDS[4].serialize(False) + IDS[2].serialize(False))  # fmt: skip
    assert port.whois == [int(IDS[5].address)]


def test_vl2_verbs_go_to_the_vl2_modules() -> None:
    assert incoming.HANDLERS[Verb.FRAME] is frames.do_frame
    assert incoming.HANDLERS[Verb.EXT_FRAME] is frames.do_ext_frame
    assert incoming.HANDLERS[Verb.MULTICAST_LIKE] is multicast.do_multicast_like
    assert incoming.HANDLERS[Verb.MULTICAST_GATHER] is multicast.do_multicast_gather
    assert incoming.HANDLERS[Verb.MULTICAST_FRAME] is multicast.do_multicast_frame
    assert incoming.HANDLERS[Verb.NETWORK_CREDENTIALS] is credential_intake.do_network_credentials
    assert incoming.HANDLERS[Verb.NETWORK_CONFIG_REQUEST] is (
        controller_side.do_network_config_request
    )


def test_a_frame_for_a_network_we_are_not_in_is_only_received() -> None:
    port, peer = _setup()
    payload = (0x1122334455000001).to_bytes(8, "big") + b"\x08\x00" + bytes(20)
    assert incoming.dispatch(port, NOW, PATH, peer, _packet(port, peer, Verb.FRAME, payload)) \
        is Outcome.DONE  # fmt: skip
    assert port.actions == [] and [r.verb for r in port.received_log] == [Verb.FRAME]
