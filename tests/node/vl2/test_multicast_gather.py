"""The gather answers: OK(MULTICAST_GATHER) and the gather part of OK(MULTICAST_FRAME)
(PROTOCOL-NETWORK-SERVICE A.5.12.4), byte by byte, on a fake port."""

from __future__ import annotations

import ipaddress

import pytest

from node.fakeport import IDS, NOW, FakePort
from ztone.node.vl1.path import Path
from ztone.node.vl2.multicast import _answer_gather
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.mac import MAC
from ztone.node.wire.packet import Verb
from ztone.node.wire.verbs import in_re_payload
from ztone.node.wire.vl2_verbs import MulticastGroup, parse_gather_results

PATH = Path(1, InetAddress(ipaddress.ip_address("198.18.0.30"), 9993))
NWID = 0x8056C2E21C000001
GROUP = MulticastGroup(MAC(0xFFFFFFFFFFFF), 0x0A000001)
PACKET_ID = 0x0102030405060708
MEMBERS = [0x1111111111, 0x2222222222, 0x3333333333]


def _never(address: int, payload: bytes) -> None:
    raise AssertionError("nothing queued: nothing to send")


@pytest.mark.parametrize(
    ("verb", "flags"), [(Verb.MULTICAST_GATHER, b""), (Verb.MULTICAST_FRAME, b"\x02")]
)
def test_gather_answer_bytes(verb: Verb, flags: bytes) -> None:
    port = FakePort()
    peer = port.add_known_peer(IDS[3])
    for m in MEMBERS:
        assert port.multicaster.add(NOW, NWID, GROUP, m, _never)
    packet = bytearray(PACKET_ID.to_bytes(8, "big") + bytes(40))
    _answer_gather(port, NOW, PATH, peer, packet, verb, NWID, GROUP, 2, False, flags)
    (reply,) = port.replies
    assert reply.verb == Verb.OK and reply.destination == int(IDS[3].address)
    head = in_re_payload(verb, PACKET_ID) + NWID.to_bytes(8, "big") + GROUP.serialize() + flags
    assert reply.payload[: len(head)] == head
    total, picked = parse_gather_results(reply.payload, len(head))
    assert total == len(MEMBERS)
    assert len(picked) == 2 and {int(a) for a in picked} <= set(MEMBERS)
    assert len(reply.payload) == len(head) + 6 + 5 * 2


def test_no_answer_without_known_members() -> None:
    port = FakePort()
    peer = port.add_known_peer(IDS[3])
    packet = bytearray(PACKET_ID.to_bytes(8, "big") + bytes(40))
    _answer_gather(port, NOW, PATH, peer, packet, Verb.MULTICAST_GATHER, NWID, GROUP, 8, False, b"")
    assert port.replies == []
