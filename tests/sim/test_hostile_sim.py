"""Whole simulated nodes fed mutated, correctly encrypted packets of every verb.

A root, a controller (the real controller core) and two members of a private network
run on the simulator until configs, credentials, frames, LIKEs and GATHERs have
flowed. Every packet the nodes armored meanwhile is recorded in plain text (headers
and payloads as built); synthetic seeds add the verbs the scenario did not send.
Hypothesis then mutates seeds (payload bytes, length, verb, compression flag, hops),
armors each with the real key of the sender/receiver pair under Salsa20/12-Poly1305
or AES-GMAC-SIV (HELLO: Poly1305 without encryption, as it is sent) and hands it to
the receiving node's ``on_wire_packet``; timers and the simulator's deliveries run in
between. Nothing may escape the core (``on_wire_packet`` turns the parse-error family
into a counter; anything else propagates and fails the test), and every table of
``ztone.node.bounds`` must stay within its bound, several of them lowered here so the
run reaches them.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ztone.node.vl1.switch as switch_module
import ztone.node.wire.hello as hello_module
from ztone.crypto.armor import (
    SUITE_AES_GMAC_SIV,
    SUITE_POLY1305_NONE,
    SUITE_POLY1305_SALSA2012,
    PeerKey,
    armor,
)
from ztone.node.bound_check import node_bound_violations
from ztone.node.wire.address import Address
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.mac import BROADCAST
from ztone.node.wire.packet import IDX_FLAGS, MAX_PACKET_LENGTH, Verb, build_packet
from ztone.node.wire.verbs import Rendezvous, serialize_push_direct_paths
from ztone.node.wire.vl2_verbs import serialize_ext_frame

from .network import SimNetwork
from .test_vl2_sim import (
    ETH_ARP,
    _arp_request,
    _ipv4,
    _subscribe_arp_and_v6,
    build,
    join_and_authorize,
)

Seed = tuple[str, str, bytes]  # (sender name, receiver name, plain packet)


class _World:
    def __init__(self) -> None:
        self.seeds: list[Seed] = []
        self.net: SimNetwork
        self.nwid = 0
        self.delivered = 0


def _record(world: _World, by_address: dict[int, str]) -> Generator[None, None, None]:
    def recording(packet: bytearray, key: PeerKey, suite: int) -> None:
        src = by_address.get(int.from_bytes(packet[13:18], "big"))
        dst = by_address.get(int.from_bytes(packet[8:13], "big"))
        if src is not None and dst is not None and len(world.seeds) < 5_000:
            world.seeds.append((src, dst, bytes(packet)))
        armor(packet, key, suite)

    switch_module.armor = recording  # type: ignore[attr-defined]
    hello_module.armor = recording  # type: ignore[attr-defined]
    try:
        yield
    finally:
        switch_module.armor = armor  # type: ignore[attr-defined]
        hello_module.armor = armor  # type: ignore[attr-defined]


def _scenario() -> _World:
    world = _World()
    net, controller, nwid = build(seed=9)
    world.net, world.nwid = net, nwid
    by_address = {int(s.identity.address): name for name, s in net.nodes.items()}
    gen = _record(world, by_address)
    next(gen)
    try:
        join_and_authorize(net, controller, nwid)
        a, b, ctrl = net.nodes["a"], net.nodes["b"], net.nodes["ctrl"]
        for sim in (a, b):
            _subscribe_arp_and_v6(sim, net, nwid)
        net.run(2_000)
        a_mac = int(a.node.networks[nwid].mac)
        a.node.on_tap_frame(net.now, nwid, a_mac, BROADCAST, ETH_ARP,
                            _arp_request(a_mac, _ipv4(a, nwid), _ipv4(b, nwid)))  # fmt: skip
        net._drain(a)
        b_mac = int(b.node.networks[nwid].mac)
        a.node.on_tap_frame(net.now, nwid, a_mac, b_mac, 0x0800, bytes(60))
        net._drain(a)
        a.node.send_user_message(net.now, int(b.identity.address), 0x77, b"hello b")
        net._drain(a)
        config = b.node.networks[nwid].config
        assert config is not None
        ctrl.node.push_config(net.now, nwid, int(b.identity.address), config)
        net._drain(ctrl)
        net.run(130_000)  # LIKE rounds, certificate requests by the root, pings
    finally:
        gen.close()
    # verbs the scenario does not send: synthetic seeds between real pairs
    names = list(net.nodes)
    synthetic = {
        Verb.RENDEZVOUS: Rendezvous(Address(int(b.identity.address)),
                                    InetAddress.parse("198.18.0.13/9993")).serialize(),
        Verb.EXT_FRAME: serialize_ext_frame(nwid, 0x01, b_mac, a_mac, 0x0800, bytes(40)),
        Verb.PUSH_DIRECT_PATHS: serialize_push_direct_paths(
            [InetAddress.parse("198.18.0.99/9993"), InetAddress.parse("fd00::1/9993")])[0],
        Verb.USER_MESSAGE: (0x1234).to_bytes(8, "big") + b"user",
        Verb.REMOTE_TRACE: b"a=b\nc=d\n\x00x=y\n\x00",
        Verb.ACK: bytes(4),
        Verb.QOS_MEASUREMENT: bytes(16),
        Verb.PATH_NEGOTIATION_REQUEST: bytes(2),
        Verb.NOP: b"",
        Verb.WHOIS: bytes(a.identity.address.to_bytes5()) * 3,
    }  # fmt: skip
    rng = random.Random(1)
    for verb in Verb:
        payload = synthetic.get(verb, rng.randbytes(40))
        for src, dst in (("a", "root"), ("a", "b"), ("b", "ctrl"), ("ctrl", "a"), ("root", "b")):
            s_id, d_id = net.nodes[src].identity, net.nodes[dst].identity
            packet = build_packet(rng.randbytes(8), d_id.address, s_id.address, verb, payload)
            world.seeds.append((src, dst, bytes(packet)))
    assert names
    return world


@functools.cache
def _world() -> _World:
    world = _scenario()
    for sim in world.net.nodes.values():  # caps low enough for this run to reach them
        sim.node.multicaster.max_per_peer = 8
        sim.node.multicaster.max_per_network = 24
        sim.node.multicaster.max_total = 40
        sim.node.root_memberships.max_proofs = 4
    return world


def test_the_scenario_covers_every_verb() -> None:
    world = _world()
    verbs = {seed[2][27] & 0x1F for seed in world.seeds}
    assert {int(v) for v in Verb} <= verbs
    recorded = {s[2][27] & 0x1F for s in world.seeds[: len(world.seeds) - 5 * len(Verb)]}
    # the real traffic itself carried the VL1 and VL2 verbs that matter most
    for verb in (Verb.OK, Verb.ERROR, Verb.WHOIS, Verb.FRAME, Verb.MULTICAST_LIKE,
                 Verb.NETWORK_CREDENTIALS, Verb.NETWORK_CONFIG_REQUEST, Verb.NETWORK_CONFIG,
                 Verb.MULTICAST_GATHER, Verb.MULTICAST_FRAME, Verb.USER_MESSAGE):  # fmt: skip
        assert int(verb) in recorded, verb


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 4095), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 4095), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 4095), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 4095), st.integers(0, 255)),
    st.tuples(st.just("grow"), st.integers(1, 400), st.integers(0, 255)),
    st.tuples(st.just("verb"), st.integers(0, 31), st.just(0)),
    st.tuples(st.just("compress"), st.just(0), st.just(0)),
    st.tuples(st.just("hops"), st.integers(0, 7), st.just(0)),
)


def _mutate(packet: bytearray, ops: list[tuple[str, int, int]]) -> bytearray:
    for op, pos, value in ops:
        body = len(packet) - 28
        if op == "flip" and body > 0:
            packet[28 + pos % body] ^= value
        elif op == "set" and body > 0:
            packet[28 + pos % body] = value
        elif op == "cut":
            del packet[28 + (pos % (body + 1)) :]
        elif op == "insert":
            packet.insert(28 + pos % (body + 1), value)
        elif op == "grow":
            packet += bytes([value]) * pos
        elif op == "verb":
            packet[27] = (packet[27] & 0xE0) | pos
        elif op == "compress":
            packet[27] ^= 0x80
        elif op == "hops":
            packet[IDX_FLAGS] = (packet[IDX_FLAGS] & 0xF8) | pos
    del packet[MAX_PACKET_LENGTH:]
    return packet


@pytest.mark.slow
@settings(max_examples=2_500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(
    seed_index=st.integers(0, 1 << 30),
    ops=st.lists(_mutation, min_size=1, max_size=6),
    suite=st.sampled_from([SUITE_POLY1305_SALSA2012, SUITE_AES_GMAC_SIV]),
    spoofed=st.booleans(),
    pid=st.binary(min_size=8, max_size=8),
    advance=st.integers(0, 20_000),
)
def test_mutated_encrypted_packets(seed_index: int, ops: list[tuple[str, int, int]], suite: int,
                                   spoofed: bool, pid: bytes, advance: int) -> None:  # fmt: skip
    world = _world()
    net = world.net
    src_name, dst_name, plain = world.seeds[seed_index % len(world.seeds)]
    src, dst = net.nodes[src_name], net.nodes[dst_name]
    peer = dst.node.peers.get(int(src.identity.address))
    if peer is None:
        return  # evicted meanwhile: the packet would only start a WHOIS
    packet = _mutate(bytearray(plain), ops)
    packet[0:8] = pid
    if len(packet) < 28:
        packet += bytes(28 - len(packet))
    verb = packet[27] & 0x1F
    armor(packet, peer.key, SUITE_POLY1305_NONE if verb == Verb.HELLO else suite)
    remote = src.endpoint
    if spoofed:
        remote = InetAddress.parse(f"198.18.{200 + pid[0] % 50}.{pid[1]}/{1024 + pid[2]}")
    dst.node.on_wire_packet(net.now, 1, remote, bytes(packet))
    net._drain(dst)
    world.delivered += 1
    if advance > 15_000:  # now and then: deliveries and timers of every node
        net.run(advance)
    for sim in net.nodes.values():
        problems = node_bound_violations(sim.node)
        assert not problems, (sim.name, problems)


def test_the_nodes_survived_and_still_work() -> None:
    """Runs after the mutation run: the network still carries a user message."""
    world = _world()
    net = world.net
    a, b = net.nodes["a"], net.nodes["b"]
    net.run(60_000)
    before = len(b.events)
    a.node.send_user_message(net.now, int(b.identity.address), 0x99, b"after the storm")
    net._drain(a)
    assert net.run(30_000, lambda: any(e.payload == b"after the storm" for e in b.events[before:]))
    for sim in net.nodes.values():
        assert not node_bound_violations(sim.node), sim.name
    if world.delivered:  # after the mutation run (not when this test runs alone)
        assert world.delivered >= 2_000
        counters = sum((sim.node.counters for sim in net.nodes.values()), Counter())
        print(world.delivered, {k: v for k, v in counters.items() if v})
        assert counters["rx_malformed"] > 100  # the parse-error family was reached...
        assert counters["multicast_like_unauthorized"] > 0  # ... and so were the handlers
