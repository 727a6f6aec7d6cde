"""Small behaviours of the protocol core that the mutation sample found unchecked
(bench/mutation.py); each test names the mutation it guards."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from sim.network import START, SimNetwork, make_planet, vector_identities
from ztone.crypto import backend, c25519
from ztone.errors import MalformedPacket
from ztone.node.actions import NetworkConfigChanged, PutState, SendPacket, StateKind
from ztone.node.status import NodeStatus
from ztone.node.vl1.peer import parse_peer_cache
from ztone.node.vl2.network import ConfigOp, Network
from ztone.node.wire.address import Address
from ztone.node.wire.coo import CertificateOfOwnership
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.fragment import Reassembler
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import NetworkConfig, Route
from ztone.node.wire.tag import Tag
from ztone.node.wire.verbs import parse_push_direct_paths, serialize_push_direct_paths

IDS = vector_identities()
NWID = 0x1FAD486CAFE468E2


def test_public_identity_has_no_secret_string() -> None:
    """Guards the message of ``to_string(include_private=True)`` without a secret."""
    with pytest.raises(ValueError, match=r"^identity has no private key$"):
        IDS[1].public_only().to_string(include_private=True)


def test_network_name_with_bad_utf8_is_replaced() -> None:
    """A name that is not UTF-8 reads with U+FFFD (never an error). Guards the
    ``errors="replace"`` of the config's text fields."""
    d = Dictionary.parse(b"v=6\nnwid=1fad486cafe468e2\nid=42\nn=ab\xffcd")
    assert NetworkConfig.from_dictionary(d).name == "ab\ufffdcd"


def test_reassembler_counts_completed_packets() -> None:
    """Head (fragmented flag 0x40 in byte 18) plus fragment 1 of 2 gives the whole
    packet, counted once. Guards ``completed += 1``."""
    r = Reassembler()
    head = bytearray(bytes(range(8)) + bytes(20) + b"head")
    head[18] = 0x40
    assert r.add_head(1000, bytes(head)) is None
    assert r.completed == 0
    whole = r.add_piece(1001, int.from_bytes(head[:8], "big"), 2, 1, b"tail")
    assert whole == bytes(head) + b"tail"
    assert r.completed == 1


def test_push_direct_paths_split_into_datagrams() -> None:
    """Many endpoints go out in several PUSH_DIRECT_PATHS, each under 1,200 bytes with
    its record count in front; read back, they are the endpoints in order. Guards the
    count of every payload after the first (``to_bytes(2, "big")``)."""
    endpoints = [
        InetAddress(ipaddress.IPv4Address(f"198.18.{i // 200}.{i % 200 + 1}"), 9000 + i)
        for i in range(250)
    ]
    payloads = serialize_push_direct_paths(endpoints)
    assert len(payloads) >= 3
    back: list[InetAddress | None] = []
    for payload in payloads:
        packet = bytes(28) + payload  # header and verb, then the payload
        assert len(packet) < 1200
        records = parse_push_direct_paths(packet)
        assert len(records) == int.from_bytes(payload[:2], "big")
        back += [r.endpoint for r in records]
    assert back == endpoints


def test_my_tags_from_the_config() -> None:
    """Guards ``if c is not None`` inverted in ``Network.my_tags``."""
    net = Network(NWID, int(IDS[1].address))
    assert net.my_tags() == {}
    config = NetworkConfig.from_dictionary(Dictionary.parse(b"v=6\nnwid=1fad486cafe468e2\nid=42"))
    tags = (Tag(NWID, 1, 5, 9, Address(0x42)), Tag(NWID, 1, 7, 0xFFFFFFFF, Address(0x42)))
    net.config = dataclasses.replace(config, tags=tags)
    assert net.my_tags() == {5: 9, 7: 0xFFFFFFFF}


def test_hello_carries_the_version() -> None:
    """HELLO: protocol at 28, major 29, minor 30, revision 31..32 big-endian (§6.2.1).
    Version 1.14.300 puts a non-zero byte at 31, so reading minor from 31 shows."""
    net = SimNetwork(seed=5)
    planet = make_planet([(IDS[0], "198.18.0.10")], c25519.generate(lambda n: b"\x03" * n))
    net.add_node("root", IDS[0], "198.18.0.10", planet)
    net.add_node("a", IDS[1], "198.18.0.12", planet, version=(1, 14, 300))
    assert net.run(30_000, lambda: net.nodes["a"].node.online)
    peer = net.nodes["root"].node.peers[int(IDS[1].address)]
    assert peer.version == (1, 14, 300)


def test_best_upstream_ties_go_to_the_later_address() -> None:
    """§8 ``getUpstreamPeer``: equal relay quality (here: nothing heard from either root,
    both +inf) goes to the later root in ascending address order. Guards ``<=`` -> ``<``."""
    planet = make_planet([(IDS[0], "198.18.0.10"), (IDS[2], "198.18.0.11")],
                         c25519.generate(lambda n: b"\x04" * n))  # fmt: skip
    net = SimNetwork(seed=1)
    leaf = net.add_node("leaf", IDS[1], "198.18.0.12", planet).node
    assert sorted(str(i.address) for i in (IDS[0], IDS[2])) == ["1e26eb3bf1", "d41df8ed6a"]
    best = leaf.best_upstream(net.now)
    assert best is not None and str(best.address) == "d41df8ed6a"


def test_truncated_certificate_of_ownership_names_the_field() -> None:
    """A.3.5 layout: nwid 8, ts 8, flags 8, id 4, count 2, things 17 each, issuedTo 5,
    signedBy 5, signature. A cut inside a field says which one. Guards those texts."""
    coo = CertificateOfOwnership(NWID, 1, 1, Address(0x42)).add_ip(
        ipaddress.IPv4Address("10.0.0.1")
    )
    data = coo.serialize()
    for cut, field in ((30 + 17 + 2, "COO recipient"), (30 + 17 + 5 + 3, "COO signer")):
        with pytest.raises(MalformedPacket, match=rf"^truncated {field}$"):
            CertificateOfOwnership.parse(data[:cut])


def _root_and_leaf(leaf_version: tuple[int, int, int] = (1, 14, 1)) -> SimNetwork:
    net = SimNetwork(seed=6)
    planet = make_planet([(IDS[0], "198.18.0.10")], c25519.generate(lambda n: b"\x05" * n))
    net.add_node("root", IDS[0], "198.18.0.10", planet)
    net.add_node("a", IDS[1], "198.18.0.12", planet, version=leaf_version)
    assert net.run(30_000, lambda: net.nodes["a"].node.online)
    return net


def test_flush_state_writes_the_peer_cache() -> None:
    """``flush_state`` stores each peer as a ``peers.d`` object: format 2, the binary
    public identity (address, type 0, key, private length 0), protocol 12, version
    1.14.1 as three u16, one path 198.18.0.10/9993 (type 4, IP, port)."""
    net = _root_and_leaf()
    a = net.nodes["a"].node
    a.drain_actions()
    a.flush_state(net.now)
    puts = [x for x in a.drain_actions() if isinstance(x, PutState)]
    assert [(p.kind, p.object_id) for p in puts] == [(StateKind.PEER, int(IDS[0].address))]
    expected = (
        b"\x02"
        + bytes.fromhex("d41df8ed6a") + b"\x00" + IDS[0].public + b"\x00"
        + bytes.fromhex("000c 0001 000e 0001")
        + bytes.fromhex("0001") + bytes.fromhex("04" "c612000a" "2709")
    )  # fmt: skip
    assert puts[0].data == expected
    cached = parse_peer_cache(expected)
    assert cached.identity == IDS[0].public_only()
    assert (cached.v_proto, cached.version) == (12, (1, 14, 1))
    assert [str(x) for x in cached.addresses] == ["198.18.0.10/9993"]


def test_peer_cache_rejects_what_it_is_not() -> None:
    good = b"\x02" + IDS[0].public_only().serialize() + bytes(10)
    assert parse_peer_cache(good).addresses == ()
    for bad, message in (
        (b"", "unknown peer cache format"),
        (b"\x01" + good[1:], "unknown peer cache format"),
        (good[:-1], "truncated peer cache"),
    ):
        with pytest.raises(MalformedPacket, match=message):
            parse_peer_cache(bad)


def test_user_messages_are_compressed() -> None:
    """USER_MESSAGE goes out compressed when that is shorter (§5.3): 4,000 zero
    bytes fit in far fewer. Guards ``compress=True`` -> ``False``."""
    net = _root_and_leaf()
    a = net.nodes["a"].node
    a.drain_actions()
    a.send_user_message(net.now, int(IDS[0].address), 0x1234, bytes(4000))
    [sent] = [x for x in a.drain_actions() if isinstance(x, SendPacket)]
    assert len(sent.data) < 400


def test_peer_known_only_by_whois_caches_version_zero() -> None:
    """A peer learned from OK(WHOIS), before any HELLO, has protocol and version 0
    (§8.1) and no paths. Guards the initial ``v_proto = 0``."""
    net = _root_and_leaf()
    a = net.nodes["a"].node
    a.learn_identity(net.now, IDS[3].public_only())
    a.drain_actions()
    a.flush_state(net.now)
    data = {p.object_id: p.data for p in a.drain_actions() if isinstance(p, PutState)}
    assert data[int(IDS[3].address)] == (
        b"\x02" + IDS[3].public_only().serialize() + bytes(8) + b"\x00\x00"
    )


def test_node_status() -> None:
    """``/status`` fields from the core: address, public identity (never the secret),
    online, planet id and timestamp, the clock asked for."""
    net = _root_and_leaf()
    a = net.nodes["a"].node
    status = a.status(net.now + 5)
    assert status == NodeStatus(
        address=0x2D299C6C91,
        public_identity=IDS[1].to_string(),
        online=True,
        planet_world_id=0x5A5A,
        planet_world_timestamp=START,
        clock=net.now + 5,
    )
    assert ":" + IDS[1].secret.hex() not in status.public_identity  # type: ignore[union-attr]


def test_leave_answers_whether_it_was_joined() -> None:
    """``leave``: True and the port destroyed and the stored config deleted when the
    network was joined; False (nothing done) when it was not."""
    net = _root_and_leaf()
    a = net.nodes["a"].node
    a.join(net.now, NWID)
    a.drain_actions()
    assert a.leave(net.now, NWID) is True
    actions = a.drain_actions()
    assert [(x.op, x.view.nwid) for x in actions if isinstance(x, NetworkConfigChanged)] == [
        (ConfigOp.DESTROY, NWID)
    ]
    assert [(x.kind, x.object_id, x.data) for x in actions if isinstance(x, PutState)] == [
        (StateKind.NETWORK_CONFIG, NWID, None)
    ]
    assert a.network_views() == []
    assert a.leave(net.now, NWID) is False
    assert a.drain_actions() == []


def test_datagram_from_ourselves_is_dropped() -> None:
    """A packet whose source field (bytes 13..17) is our own address is counted and
    dropped (§5.9). Guards the slice of the source address."""
    net = _root_and_leaf()
    a = net.nodes["a"].node
    data = (bytes(8) + IDS[0].address.to_bytes5() + IDS[1].address.to_bytes5()
            + b"\x08" + bytes(8) + b"\x01" + bytes(12))  # fmt: skip
    a.on_wire_packet(net.now, 1, net.nodes["root"].endpoint, data)
    assert a.counters["rx_from_self"] == 1


def test_route_metric_survives_the_dictionary() -> None:
    """A.2.3 route record: target, via, u16 flags, u16 metric."""
    config = NetworkConfig.from_dictionary(Dictionary.parse(b"v=6\nnwid=1fad486cafe468e2\nid=42"))
    route = Route(InetAddress(ipaddress.IPv4Address("10.9.0.0"), 16), None, 0x0102, 0x0304)
    back = NetworkConfig.from_dictionary(
        Dictionary.parse(dataclasses.replace(config, routes=(route,)).to_dictionary().serialize())
    )
    assert back.routes == (route,)


def test_native_available_says_whether_the_extension_imports() -> None:
    try:
        from ztone import _speedups  # noqa: F401, PLC0415
    except ImportError:
        present = False
    else:
        present = True
    assert backend.native_available() is present
