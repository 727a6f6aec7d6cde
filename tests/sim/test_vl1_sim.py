"""VL1 behaviour of many cores on a virtual clock (issue: VL1 node runtime)."""

from __future__ import annotations

import ipaddress
from typing import Any

from ztone.crypto import c25519
from ztone.node.actions import EventKind, StateKind
from ztone.node.constants import PEER_PATH_EXPIRATION
from ztone.node.node import PhysicalPathSetting
from ztone.node.status import Role
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import Root, World, WorldType

from .network import SimNetwork, make_planet, vector_identities

IDS = vector_identities()


def _signing(seed: int) -> tuple[bytes, bytes]:
    return c25519.generate(lambda n: bytes([seed]) * n)


def build(loss: float = 0.0, duplicate: float = 0.0, seed: int = 7) -> SimNetwork:
    net = SimNetwork(seed=seed, loss=loss, duplicate=duplicate, max_delay=20 if loss else 5)
    planet = make_planet([(IDS[0], "198.18.0.10")], _signing(1))
    net.add_node("root", IDS[0], "198.18.0.10", planet)
    net.add_node("a", IDS[1], "198.18.0.12", planet)
    net.add_node("b", IDS[2], "198.18.0.13", planet)
    return net


def _direct(net: SimNetwork, frm: str, to: str) -> bool:
    node = net.nodes[frm].node
    peer = node.peers.get(int(net.nodes[to].identity.address))
    return peer is not None and peer.best_path(net.now) is not None


def _messages(net: SimNetwork, name: str) -> list[bytes]:
    return [e.payload for e in net.nodes[name].events if e.kind is EventKind.USER_MESSAGE]


def test_leaves_go_online_and_root_knows_them() -> None:
    net = build()
    assert net.nodes["root"].node.online  # a root is always online
    assert net.run(30_000, lambda: net.nodes["a"].node.online and net.nodes["b"].node.online)
    # the root confirms each leaf's path with its own HELLO and learns it from the OK
    assert net.run(5_000, lambda: _direct(net, "root", "a") and _direct(net, "root", "b"))
    root = net.nodes["root"].node
    assert {int(IDS[1].address), int(IDS[2].address)} <= set(root.peers)
    assert _direct(net, "a", "root") and _direct(net, "root", "a")
    # the leaf learned its external address from the root's OK(HELLO)
    assert [str(a) for a in net.nodes["a"].node.surface_addresses()] == ["198.18.0.12/9993"]


def test_whois_relay_rendezvous_then_direct() -> None:
    net = build()
    a, b = net.nodes["a"], net.nodes["b"]
    assert net.run(30_000, lambda: a.node.online and b.node.online)
    relayed_before = net.nodes["root"].node.counters["relayed"]
    a.node.send_user_message(net.now, int(b.identity.address), 0x10000, b"hello via root")
    net._drain(a)
    assert net.run(10_000, lambda: bool(_messages(net, "b")))
    assert _messages(net, "b") == [b"hello via root"]
    assert a.node.counters["whois_learned"] == 1
    assert net.nodes["root"].node.counters["relayed"] > relayed_before
    assert a.node.counters["rendezvous_followed"] + b.node.counters["rendezvous_followed"] >= 1
    assert net.run(10_000, lambda: _direct(net, "a", "b") and _direct(net, "b", "a"))
    relayed = net.nodes["root"].node.counters["relayed"]
    b.node.send_user_message(net.now, int(a.identity.address), 0x10000, b"direct now")
    net._drain(b)
    assert net.run(5_000, lambda: b"direct now" in _messages(net, "a"))
    assert net.nodes["root"].node.counters["relayed"] == relayed  # nothing went via the root


def test_converges_with_loss_reordering_and_duplicates() -> None:
    net = build(loss=0.2, duplicate=0.05, seed=11)
    a, b = net.nodes["a"], net.nodes["b"]
    assert net.run(120_000, lambda: a.node.online and b.node.online)
    got: list[int] = []
    for i in range(20):
        a.node.send_user_message(net.now, int(b.identity.address), 0x10000, b"m%d" % i)
        net._drain(a)
        net.run(2_000)
    got = [int(m[1:]) for m in _messages(net, "b")]
    assert len(set(got)) >= 10  # 20% loss each way: most arrive, none twice-parsed wrongly
    assert net.run(120_000, lambda: _direct(net, "a", "b") and _direct(net, "b", "a"))


def test_silent_peer_paths_expire_on_time() -> None:
    net = build()
    a, b = net.nodes["a"], net.nodes["b"]
    assert net.run(30_000, lambda: a.node.online and b.node.online)
    a.node.send_user_message(net.now, int(b.identity.address), 0x10000, b"x")
    net._drain(a)
    assert net.run(20_000, lambda: _direct(net, "a", "b"))
    peer_b = a.node.peers[int(b.identity.address)]
    last = max(s.lr for s in peer_b.slots)
    net.blocked.add(frozenset(("a", "b")))  # b goes silent towards a
    # still usable shortly before expiry, gone right after
    net.run(last + PEER_PATH_EXPIRATION - 2_000 - net.now)
    assert peer_b.best_path(net.now) is not None
    net.run(4_000)
    assert peer_b.best_path(net.now) is None


def test_moon_orbited_by_id_and_seed_is_fetched_and_used() -> None:
    net = build()
    moon_root = IDS[3]
    moon_id = int(moon_root.address)
    public, private = _signing(2)
    moon = World.make(
        WorldType.MOON, moon_id, 1_700_000_000_001, public,
        [Root(moon_root.public_only(), (InetAddress(ipaddress.ip_address("198.18.0.20"), 9993),))],
        private,
    )  # fmt: skip
    planet = net.nodes["root"].node.topology.planet
    m = net.add_node("moon", moon_root, "198.18.0.20", planet)
    m.state.objects[(StateKind.MOON, moon_id)] = moon.serialize()
    m.node.orbit(net.now, moon_id)
    assert m.node.topology.am_upstream
    a = net.nodes["a"]
    assert net.run(30_000, lambda: a.node.online and net.nodes["moon"].node.online)
    a.node.orbit(net.now, moon_id, moon_id)
    assert [s.waiting for s in a.node.moon_status()] == [True]
    assert net.run(60_000, lambda: moon_id in a.node.topology.moons)
    assert a.node.topology.moons[moon_id] == moon
    stored = a.state.get(StateKind.MOON, moon_id)
    assert stored == moon.serialize()
    assert a.node.topology.role(moon_id) is Role.MOON
    # the moon's root is now an upstream, reached directly at its stable endpoint
    assert net.run(30_000, lambda: _direct(net, "a", "moon"))
    path = a.node.peers[moon_id].best_path(net.now)
    assert path is not None and str(path.address) == "198.18.0.20/9993"
    a.node.deorbit(net.now, moon_id)
    assert moon_id not in a.node.topology.moons
    assert a.node.topology.role(moon_id) is Role.LEAF


def test_trusted_path_carries_packets_without_crypto() -> None:
    net = SimNetwork(seed=4)
    # The root is outside the trusted network: as upstream, packets sent over a
    # trusted path are not registered for replies, so WHOIS must not go that way.
    planet = make_planet([(IDS[0], "198.18.1.10")], _signing(1))
    trusted = [PhysicalPathSetting(ipaddress.ip_network("198.18.0.0/24"), 0x1234)]
    net.add_node("root", IDS[0], "198.18.1.10", planet)  # the root trusts no path
    a = net.add_node("a", IDS[1], "198.18.0.12", planet, physical=trusted)
    b = net.add_node("b", IDS[2], "198.18.0.13", planet, physical=trusted)
    suites: list[int] = []
    original = net._transmit

    def spy(sim: Any, action: Any) -> None:
        data = action.data
        if len(data) >= 28 and data[13] != 0xFF:
            suites.append((data[18] >> 3) & 7)
        original(sim, action)

    net._transmit = spy  # type: ignore[method-assign]
    assert net.run(30_000, lambda: a.node.online and b.node.online)
    a.node.send_user_message(net.now, int(b.identity.address), 0x10000, b"in the clear")
    net._drain(a)
    assert net.run(10_000, lambda: bool(_messages(net, "b")))
    assert net.run(20_000, lambda: _direct(net, "a", "b"))
    suites.clear()
    a.node.send_user_message(net.now, int(b.identity.address), 0x10000, b"direct, in the clear")
    net._drain(a)
    assert net.run(10_000, lambda: b"direct, in the clear" in _messages(net, "b"))
    assert suites and set(suites) <= {0, 2}
    assert 2 in suites  # a -> b went as trusted-path packets (suite 2), no crypto
