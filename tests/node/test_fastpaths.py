"""The data path's shortcuts give the answers of the code they stand in for.

* the ACCEPT-first rule table: the engine accepts (1), sends no copies, consults no
  capability and draws no random number, whatever follows and whatever the frame;
* fragment reassembly found through an index: the same results (and errors) as the
  scan of the ring it replaced, under random heads, fragments, duplicates and reuse;
* the remembered COM agreement: revocation and new objects still count;
* the online check cached until the upstream that makes it true would time out;
* ``InetAddress`` with a cached hash, ``RandomPool`` and the single-slot best path.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pickle
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network import SimNetwork, make_planet, vector_identities
from sim.test_vl2_sim import ETH_IPV4, _eth_payload_ipv4, _ipv4, build, join_and_authorize
from ztone.crypto import c25519
from ztone.crypto.armor import PeerKey
from ztone.errors import MalformedPacket
from ztone.node import constants as C
from ztone.node.actions import EventKind, NodeEvent, SendPacket
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import PathSlot, Peer
from ztone.node.vl2.filter import FrameContext, Verdict, filter_with_capabilities
from ztone.node.vl2.membership import Membership
from ztone.node.wire.com import CertificateOfMembership
from ztone.node.wire.fragment import MAX_PACKET_FRAGMENTS, Reassembler, _Slot, split
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.rules import Rule, RuleType, serialize_rules
from ztone.service.entropy import RandomPool

T = RuleType
R = Rule.make

# ------------------------------------------------------------------ rules


def _no_random() -> int:
    raise AssertionError("the PRNG must not be consulted")


_AFTER = [
    R(T.ACTION_DROP),
    R(T.ACTION_TEE, address=0x1122334455, length=64),
    R(T.ACTION_REDIRECT, address=0x1122334455),
    R(T.MATCH_RANDOM, probability=1 << 30),
    R(T.MATCH_ETHERTYPE, ethertype=0x0800),
    R(T.ACTION_ACCEPT),
]


@settings(max_examples=200, deadline=None)
@given(
    negate=st.booleans(),
    or_=st.booleans(),
    rest=st.lists(st.sampled_from(_AFTER), max_size=5),
    caps=st.lists(st.lists(st.sampled_from(_AFTER), max_size=3), max_size=3),
    inbound=st.booleans(),
    payload=st.binary(max_size=80),
    ethertype=st.sampled_from([0x0800, 0x86DD, 0x0806, 0x1234]),
    no_tee=st.booleans(),
)
def test_accept_first_table_is_a_plain_accept(negate: bool, or_: bool, rest: list[Rule],
                                              caps: list[list[Rule]], inbound: bool,
                                              payload: bytes, ethertype: int,
                                              no_tee: bool) -> None:  # fmt: skip
    """What ``Network.filter`` returns without running the engine (1, nothing sent)."""
    rules = [R(T.ACTION_ACCEPT, negate=negate, or_=or_), *rest]
    ctx = FrameContext(network_id=0x1FAD486CAFE468E2, our_address=0x4B3BACDDB4,
                       peer=0xA49ECF6441, inbound=inbound, mac_source=0x32AABBCCDDEE,
                       mac_dest=0x32112233445A, ethertype=ethertype, payload=payload)  # fmt: skip

    def capabilities() -> list[tuple[int, list[Rule]]]:
        raise AssertionError("capabilities must not be consulted")

    class Lazy:
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(capabilities())

    decision = filter_with_capabilities(rules, Lazy(), ctx, _no_random, no_tee=no_tee)
    assert decision.accept == Verdict.ACCEPT and decision.actions == ()
    assert caps is not None  # (the capability tables are never looked at)


def test_vl2_filter_still_runs_the_engine_otherwise() -> None:
    """A table not starting with ACCEPT goes through the engine (its TEE copy is sent)."""
    net, controller, nwid = build()
    join_and_authorize(net, controller, nwid)
    a = net.nodes["a"]
    n = a.node.networks[nwid]
    tee_target = int(net.nodes["root"].identity.address)
    rules = [R(T.ACTION_TEE, address=tee_target, length=0), R(T.ACTION_ACCEPT)]
    assert n.config is not None
    n.config = dataclasses.replace(n.config, rules_raw=serialize_rules(rules),
                                   rule_count=len(rules))  # fmt: skip
    n.parsed_rules = None
    a.node.drain_actions()
    payload = _eth_payload_ipv4(_ipv4(a, nwid), "198.19.0.99", b"x")
    verdict = n.filter(a.node, net.now, False, 0x1122334455, n.mac, 0x32112233445A, ETH_IPV4,
                       payload)  # fmt: skip
    assert verdict == Verdict.ACCEPT
    sent = [x for x in a.node.drain_actions() if isinstance(x, SendPacket)]
    assert sent or a.node.switch.tx  # the TEE copy went out (or waits for a path)


# ------------------------------------------------------------------ reassembly


class ScanningReassembler(Reassembler):
    """The reference: find a packet's slot by scanning the ring, newest first."""

    def _find(self, packet_id: int) -> _Slot | None:
        n = len(self._ring)
        for k in range(n):
            slot = self._ring[(self._ptr - 1 - k) % n]
            if slot.timestamp and slot.packet_id == packet_id:
                return slot
        return None


def _drive(r: Reassembler, ops: list[tuple[int, int, int, int]]) -> list[object]:
    out: list[object] = []
    for i, (kind, pid, total, number) in enumerate(ops):
        try:
            if kind == 0:
                head = pid.to_bytes(8, "big") + bytes([i & 0xFF]) * 30
                out.append(r.add_head(i + 1, head))
            else:
                out.append(r.add_piece(i + 1, pid, total, number, bytes([number]) * 5))
        except MalformedPacket as e:
            out.append(("error", str(e)))
    out.append((r.completed, r.evicted, r.pending()))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 40), st.integers(0, 8),
                          st.integers(0, 8)), max_size=150))  # fmt: skip
def test_indexed_reassembly_matches_the_ring_scan(ops: list[tuple[int, int, int, int]]) -> None:
    assert _drive(Reassembler(), ops) == _drive(ScanningReassembler(), ops)


def test_reassembly_round_trip_through_split() -> None:
    rng = random.Random(5)
    r = Reassembler()
    for size in (100, 1432, 1433, 2838, 9000):
        packet = bytearray(rng.randbytes(size))
        packet[13] = 0x11  # not a fragment indicator
        pieces = split(packet, 1432)
        assert len(pieces) <= MAX_PACKET_FRAGMENTS
        if len(pieces) == 1:
            assert pieces[0] == bytes(packet)
            continue
        whole = None
        for piece in reversed(pieces[1:]):
            assert whole is None
            whole = r.add_piece(0, int.from_bytes(piece[0:8], "big"), piece[14] >> 4,
                                piece[14] & 0xF, piece[16:])  # fmt: skip
        whole = r.add_head(0, pieces[0])
        assert whole == bytes(packet)


# ------------------------------------------------------------------ COM agreement


def test_com_agreement_is_remembered_per_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    agrees_with = CertificateOfMembership.agrees_with

    def counting(self: CertificateOfMembership, other: CertificateOfMembership,
                 identity: Identity) -> bool:  # fmt: skip
        calls.append(1)
        return agrees_with(self, other, identity)

    monkeypatch.setattr(CertificateOfMembership, "agrees_with", counting)
    ids = vector_identities()
    nwid = (int(ids[0].address) << 24) | 1
    identity = ids[3].public_only()
    mine = CertificateOfMembership.make(0, 1000, nwid, ids[2])
    theirs = CertificateOfMembership.make(100, 1000, nwid, identity)
    m = Membership(com=theirs)
    assert m.com_allows(mine, identity) and m.com_allows(mine, identity)
    assert len(calls) == 1
    m.com_revocation_threshold = 100  # revoked: the remembered verdict does not hide it
    assert not m.com_allows(mine, identity)
    m.com_revocation_threshold = 0
    other_identity = Identity.from_string(identity.to_string())  # equal, another object
    assert m.com_allows(mine, other_identity) and len(calls) == 2
    m.com = CertificateOfMembership.make(200, 1000, nwid, identity)
    assert m.com_allows(mine, other_identity) and len(calls) == 3
    refusing = CertificateOfMembership.make(0, 1000, nwid + 1, ids[2])  # another network
    assert not m.com_allows(refusing, other_identity)


# ------------------------------------------------------------------ online check


def test_online_cache_expires_with_the_upstream() -> None:
    ids = vector_identities()
    net = SimNetwork(seed=2)
    planet = make_planet([(ids[0], "198.18.0.10")], c25519.generate(lambda n: bytes([9]) * n))
    net.add_node("root", ids[0], "198.18.0.10", planet)
    leaf = net.add_node("leaf", ids[2], "198.18.0.12", planet)
    assert net.run(60_000, lambda: leaf.node.online)
    root_peer = leaf.node.peers[int(ids[0].address)]
    leaf.node.drain_actions()
    late = root_peer.last_receive + C.PEER_ACTIVITY_TIMEOUT
    leaf.node.on_wire_packet(late - 1, 1, net.nodes["root"].endpoint, b"\x00" * 5)
    assert leaf.node.online
    leaf.node.on_wire_packet(late, 1, net.nodes["root"].endpoint, b"\x00" * 5)
    assert not leaf.node.online
    assert NodeEvent(EventKind.OFFLINE) in leaf.node.drain_actions()


# ------------------------------------------------------------------ small pieces


def test_inet_address_hash_eq_and_pickle() -> None:
    a = InetAddress(ipaddress.ip_address("198.18.0.1"), 9993)
    b = InetAddress(ipaddress.ip_address("198.18.0.1"), 9993)
    c = InetAddress(ipaddress.ip_address("198.18.0.1"), 9994)
    six = InetAddress(ipaddress.ip_address("::ffff:198.18.0.1"), 9993)
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a != c
    assert a != six
    assert a != ("198.18.0.1", 9993)
    assert pickle.loads(pickle.dumps(a)) == a and repr(a) == repr(b)


def test_random_pool() -> None:
    pool = RandomPool(64)
    got = [pool(8) for _ in range(100)]
    assert all(len(x) == 8 for x in got) and len(set(got)) == 100
    assert len(pool(1000)) == 1000 and len(pool(0)) == 0
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must not repeat the parent's buffered bytes
        os.write(w, pool(8))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 8)
    os.close(r)
    os.close(w)
    assert child != pool(8)


@pytest.mark.parametrize("expired", [False, True])
def test_single_slot_best_path(expired: bool) -> None:
    peer = Peer(vector_identities()[3].public_only(), PeerKey(bytes(48)))
    path = Path(1, InetAddress(ipaddress.ip_address("198.18.0.3"), 9993))
    now = 10_000_000
    peer.slots = [PathSlot(path, now - (C.PEER_PATH_EXPIRATION if expired else 5))]
    reference: Callable[[], object] = lambda: next(  # noqa: E731
        (s for s in peer.slots if now - s.lr < C.PEER_PATH_EXPIRATION), None
    )
    assert peer.best_slot(now) is reference()
