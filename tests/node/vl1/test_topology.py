"""Worlds, upstreams and roles (``ztone.node.vl1.topology``), on its own."""

from __future__ import annotations

import ipaddress

from node.fakeport import IDS, ROOT_IP
from sim.network import START
from ztone.crypto import c25519
from ztone.node.status import Role
from ztone.node.vl1.topology import Topology
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import Root, World, WorldType

SIGNING = c25519.generate(lambda n: bytes([9]) * n)
OTHER_SIGNING = c25519.generate(lambda n: bytes([7]) * n)


def _world(kind: WorldType, world_id: int, timestamp: int, roots: list[tuple[Identity, str]],
           signing: tuple[bytes, bytes] = SIGNING) -> World:  # fmt: skip
    public, private = signing
    return World.make(kind, world_id, timestamp, public,
                      [Root(i.public_only(), (InetAddress(ipaddress.ip_address(ip), 9993),))
                       for i, ip in roots], private)  # fmt: skip


def _planet(timestamp: int = START, signing: tuple[bytes, bytes] = SIGNING) -> World:
    return _world(WorldType.PLANET, 0x5A5A, timestamp, [(IDS[0], ROOT_IP)], signing)


def _moon(timestamp: int = START) -> World:
    return _world(WorldType.MOON, 0xABCDEF0001, timestamp, [(IDS[6], "198.18.0.66")])


def test_roots_are_upstreams_with_roles_and_pinned_endpoints() -> None:
    t = Topology(int(IDS[2].address), _planet())
    root = int(IDS[0].address)
    assert t.upstream_addresses() == [root] and t.is_upstream(root)
    assert t.role(root) is Role.PLANET and t.role(int(IDS[3].address)) is Role.LEAF
    assert not t.am_upstream
    assert t.is_prohibited_endpoint(root, InetAddress(ipaddress.ip_address("198.18.9.9"), 1))
    assert not t.is_prohibited_endpoint(root, InetAddress(ipaddress.ip_address(ROOT_IP), 1))
    assert not t.is_prohibited_endpoint(int(IDS[3].address),
                                        InetAddress(ipaddress.ip_address("198.18.9.9"), 1))


def test_a_root_is_upstream_to_others_only() -> None:
    t = Topology(int(IDS[0].address), _planet())
    assert t.am_upstream and t.upstream_addresses() == []


def test_only_a_newer_planet_signed_by_the_same_key_replaces_it() -> None:
    t = Topology(int(IDS[2].address), _planet())
    generation = t.generation
    assert not t.add_world(_planet(START), always_accept_new=False)  # same revision
    assert not t.add_world(_planet(START + 1, OTHER_SIGNING), always_accept_new=False)
    assert t.generation == generation
    assert t.add_world(_planet(START + 1), always_accept_new=False)
    assert t.planet.timestamp == START + 1 and t.generation == generation + 1


def test_a_moon_needs_a_seed_or_an_explicit_orbit() -> None:
    t = Topology(int(IDS[2].address), _planet())
    moon = _moon()
    assert not t.add_world(moon, always_accept_new=False)
    t.moon_seeds[moon.id] = int(IDS[5].address)  # a seed that is not one of its roots
    assert not t.add_world(moon, always_accept_new=False)
    t.moon_seeds[moon.id] = int(IDS[6].address)
    assert t.should_accept_world_update_from(int(IDS[6].address))
    assert t.add_world(moon, always_accept_new=False)
    assert moon.id not in t.moon_seeds and t.role(int(IDS[6].address)) is Role.MOON
    assert t.is_upstream(int(IDS[6].address))
    assert t.remove_moon(moon.id) and not t.is_upstream(int(IDS[6].address))
    assert not t.remove_moon(moon.id)


def test_an_orbited_moon_is_replaced_only_by_a_newer_revision() -> None:
    t = Topology(int(IDS[2].address), _planet())
    assert t.add_world(_moon(START + 5), always_accept_new=True)
    assert not t.add_world(_moon(START + 4), always_accept_new=True)
    assert t.add_world(_moon(START + 6), always_accept_new=False)
    assert t.moons[0xABCDEF0001].timestamp == START + 6
    assert set(t.root_identities()) == {int(IDS[0].address), int(IDS[6].address)}
