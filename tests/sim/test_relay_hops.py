"""A root relays a datagram for another node only below the hop limit (PROTOCOL-CORE §5.8).

Heads carry their hop count in the low 3 bits of byte 18, fragments in byte 15; a relay
forwards while the count is below ``ZT_RELAY_MAX_HOPS`` = 3, adding one, and drops the
datagram otherwise. The datagrams here are made by hand (a relay never decrypts).
"""

from __future__ import annotations

import pytest

from ztone.crypto import c25519
from ztone.node.actions import SendPacket

from .network import SimNetwork, make_planet, vector_identities

IDS = vector_identities()


def _online() -> SimNetwork:
    net = SimNetwork(seed=11)
    planet = make_planet([(IDS[0], "198.18.0.10")], c25519.generate(lambda n: b"\x02" * n))
    net.add_node("root", IDS[0], "198.18.0.10", planet)
    net.add_node("a", IDS[1], "198.18.0.12", planet)
    net.add_node("b", IDS[2], "198.18.0.13", planet)
    assert net.run(30_000, lambda: all(net.nodes[n].node.online for n in ("a", "b")))
    assert net.run(5_000, lambda: int(IDS[2].address) in net.nodes["root"].node.peers)
    net.run(2_000)
    return net


def _head(hops: int) -> bytes:
    """A packet head: id, destination b, source a, flags (cipher 1, hops), MAC, verb, body."""
    flags = (1 << 3) | hops
    return (bytes(range(8)) + IDS[2].address.to_bytes5() + IDS[1].address.to_bytes5()
            + bytes([flags]) + bytes(8) + b"\x05" + b"x" * 24)  # fmt: skip


def _fragment(hops: int) -> bytes:
    """A fragment: id, destination b, 0xff, fragment 1 of 2, hops, data."""
    return bytes(range(8)) + IDS[2].address.to_bytes5() + b"\xff\x21" + bytes([hops]) + b"y" * 24


def _deliver(net: SimNetwork, data: bytes) -> list[SendPacket]:
    root, a = net.nodes["root"], net.nodes["a"]
    root.node.on_wire_packet(net.now, 1, a.endpoint, data)
    return [x for x in root.node.drain_actions() if isinstance(x, SendPacket)]


@pytest.mark.parametrize(("make", "index", "mask"), [(_head, 18, 0x07), (_fragment, 15, 0xFF)])
def test_relay_below_the_hop_limit_adds_one(make: object, index: int, mask: int) -> None:
    """Guards: the hop test moved (``>= 3`` as ``> 3``/``>= 2``) or the increment lost."""
    net = _online()
    b = net.nodes["b"]
    root = net.nodes["root"].node
    for hops in (0, 1, 2):
        data = make(hops)  # type: ignore[operator]
        # (a head also makes the root introduce a and b: RENDEZVOUS, other packet ids)
        sent = [s for s in _deliver(net, data) if s.data[:8] == data[:8]]
        assert len(sent) == 1 and sent[0].remote == b.endpoint, hops
        out = sent[0].data
        assert out[index] & mask == hops + 1
        assert out[:index] == data[:index] and out[index + 1 :] == data[index + 1 :]
        if mask == 0x07:
            assert out[index] & 0xF8 == data[index] & 0xF8
    assert root.counters["relayed"] >= 3
    assert root.counters["relay_hops_exceeded"] == 0


@pytest.mark.parametrize("make", [_head, _fragment])
def test_relay_at_the_hop_limit_drops_and_counts_once(make: object) -> None:
    """Guards: the drop at 3 hops removed, or its counter counting other than one."""
    net = _online()
    root = net.nodes["root"].node
    relayed = root.counters["relayed"]
    for hops, exceeded in ((3, 1), (7, 2)):
        assert _deliver(net, make(hops)) == []  # type: ignore[operator]
        assert root.counters["relay_hops_exceeded"] == exceeded
    assert root.counters["relayed"] == relayed


def test_leaf_refuses_to_relay() -> None:
    """Only roots/moons, or a path with trust established, relay (§5.8): a leaf
    counts and drops a datagram for someone else. Guards that counter."""
    net = _online()
    a, root = net.nodes["a"].node, net.nodes["root"]
    a.drain_actions()
    for n in (1, 2):
        a.on_wire_packet(net.now, 1, root.endpoint, _fragment(0))
        assert [x for x in a.drain_actions() if isinstance(x, SendPacket)] == []
        assert a.counters["relay_refused"] == n
