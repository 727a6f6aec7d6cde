"""Frames between the port and peers (``ztone.node.vl2.frames``) on a fake port, with a
public network whose rules accept everything."""

from __future__ import annotations

import ipaddress

from node.fakeport import IDS, NOW, FakePort
from ztone.node.actions import DeliverFrame
from ztone.node.port import Outcome
from ztone.node.vl1.path import Path
from ztone.node.vl2 import controller_link, frames
from ztone.node.vl2.network import Network
from ztone.node.wire.address import Address
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import NetworkConfig, NetworkType
from ztone.node.wire.packet import ErrorCode, Verb, build_packet
from ztone.node.wire.rules import Rule, RuleType, serialize_rules
from ztone.node.wire.verbs import in_re_payload
from ztone.node.wire.vl2_verbs import serialize_frame

NWID = (int(IDS[1].address) << 24) | 0x42
PATH = Path(1, InetAddress(ipaddress.ip_address("198.18.0.30"), 9993))
ETH_IPV4 = 0x0800


def _network(port: FakePort, public: bool = True) -> Network:
    net = controller_link.join(port, NOW, NWID)
    accept = [Rule.make(RuleType.ACTION_ACCEPT)]
    config = NetworkConfig(network_id=NWID, timestamp=NOW, issued_to=Address(int(port.address)),
                           type=NetworkType.PUBLIC if public else NetworkType.PRIVATE,
                           rules_raw=serialize_rules(accept), rule_count=1)  # fmt: skip
    assert net.set_configuration(port, NOW, config, save=False)
    port.actions.clear()
    return net


def test_a_frame_to_a_member_goes_out_as_frame() -> None:
    port = FakePort()
    net = _network(port)
    target = int(IDS[3].address)
    frames.on_tap_frame(port, NOW, NWID, net.mac, net.member_mac(target), ETH_IPV4, b"x" * 40)
    sends = [s for s in port.sent if s.verb == Verb.FRAME]
    assert [s.destination for s in sends] == [target]
    assert sends[0].payload == serialize_frame(NWID, ETH_IPV4, b"x" * 40)
    assert net.filter_counts[2] == 1  # TX accepted


def test_frames_for_a_network_without_config_or_from_a_stranger_mac_are_dropped() -> None:
    port = FakePort()
    frames.on_tap_frame(port, NOW, NWID, 0x32AABBCCDDEE, 0x32112233445A, ETH_IPV4, b"x")
    assert port.counters["tap_no_config"] == 1
    net = _network(port)
    frames.on_tap_frame(port, NOW, NWID, net.mac ^ 1, 0x32112233445A, ETH_IPV4, b"x")
    assert port.counters["tap_not_a_bridge"] == 1 and port.sent == []


def test_a_frame_to_our_own_mac_is_delivered_locally() -> None:
    port = FakePort()
    net = _network(port)
    frames.on_tap_frame(port, NOW, NWID, net.mac, net.mac, ETH_IPV4, b"self")
    assert port.actions == [DeliverFrame(NWID, net.mac, net.mac, ETH_IPV4, b"self")]


def test_an_incoming_frame_reaches_the_port_on_a_public_network() -> None:
    port = FakePort()
    net = _network(port)
    peer = port.add_known_peer(IDS[3])
    packet = build_packet(bytes(8), port.address, peer.address, Verb.FRAME,
                          serialize_frame(NWID, ETH_IPV4, b"hello"))  # fmt: skip
    assert frames.do_frame(port, NOW, PATH, peer, packet) is Outcome.DONE
    deliveries = [a for a in port.actions if isinstance(a, DeliverFrame)]
    assert deliveries == [DeliverFrame(NWID, net.member_mac(int(peer.address)), net.mac,
                                       ETH_IPV4, b"hello")]  # fmt: skip
    assert port.received_log[-1].trust


def test_a_private_network_asks_a_sender_without_certificate_for_one() -> None:
    port = FakePort()
    _network(port, public=False)
    peer = port.add_known_peer(IDS[3])
    packet = build_packet(b"\x01" * 8, port.address, peer.address, Verb.FRAME,
                          serialize_frame(NWID, ETH_IPV4, b"hello"))  # fmt: skip
    assert frames.do_frame(port, NOW, PATH, peer, packet) is Outcome.DEFER
    [reply] = port.replies
    assert reply.verb == Verb.ERROR and reply.payload == (
        in_re_payload(Verb.FRAME, int.from_bytes(b"\x01" * 8, "big"))
        + bytes((ErrorCode.NEED_MEMBERSHIP_CERTIFICATE,)) + NWID.to_bytes(8, "big"))  # fmt: skip
    assert not any(isinstance(a, DeliverFrame) for a in port.actions)
