"""Each table a remote party can grow (``ztone.node.bounds``) flooded past its bound.

Every test lowers the bound it floods (monkeypatch) so the flood stays small, sends
more than that, checks the table stayed within the bound, and checks that legitimate
entries still work (the eviction rule is sane). Packets are real: built and armored by
simulated nodes, delivered to the core's ``on_wire_packet``; source addresses are in
198.18.0.0/15 and nothing leaves the process.
"""

from __future__ import annotations

import ipaddress
import os
import random
import tempfile
from pathlib import Path

import pytest

from ztone.controller.store import SqliteStore
from ztone.node import bounds as B
from ztone.node.actions import EventKind, SendPacket, StateKind
from ztone.node.bound_check import node_bound_violations
from ztone.node.vl1.root_members import RootMemberships
from ztone.node.vl2 import multicaster as multicaster_module
from ztone.node.vl2 import network as network_module
from ztone.node.vl2.credential_intake import add_credential
from ztone.node.vl2.membership import AddResult
from ztone.node.vl2.multicaster import Multicaster
from ztone.node.wire.address import Address
from ztone.node.wire.com import CertificateOfMembership
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.packet import Verb
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.service.controller import EmbeddedController
from ztone.service.home import FileStateStore, Home

from .network import SimNetwork, SimNode
from .test_vl2_sim import IDS, build, join_and_authorize


def _addr(i: int) -> InetAddress:
    return InetAddress(ipaddress.ip_address(f"198.18.{(i >> 8) & 0xFF}.{i & 0xFF}"), 9993)


def _online() -> tuple[SimNetwork, SimNode, SimNode]:
    net, _controller, _nwid = build()
    root, a = net.nodes["root"], net.nodes["a"]
    assert net.run(60_000, lambda: a.node.online)
    net.run(5_000)  # the root confirms a's path too
    return net, root, a


def _wire(sim: SimNode, verb: int, payload: bytes, to: SimNode) -> list[bytes]:
    """Datagrams ``sim`` sends for one packet to ``to`` (taken, not delivered)."""
    sim.node.send(sim.node.last_ping, int(to.identity.address), verb, payload)
    out = [a.data for a in sim.node.drain_actions() if isinstance(a, SendPacket)]
    assert out
    return out


def _fake_identities(n: int) -> list[Identity]:
    """Identities as a root's OK(WHOIS) would vouch for them (no proof of work here)."""
    public = IDS[5].public_only().public
    return [Identity(Address(0x1000000000 + i), public) for i in range(n)]


def test_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A root carries every node of its world: its bound is the larger one.
    monkeypatch.setattr(B, "MAX_ROOT_PEERS", 32)
    monkeypatch.setattr(B, "MAX_PEERS", 8)
    net, root, a = _online()
    assert root.node.topology.am_upstream and not a.node.topology.am_upstream
    for identity in _fake_identities(300):
        root.node.learn_identity(net.now, identity)
        a.node.learn_identity(net.now, identity)
        net.now += 1
    assert 8 < len(root.node.peers) <= 32
    assert len(a.node.peers) <= 8 + 1  # its root is never evicted
    assert int(root.identity.address) in a.node.peers
    assert root.node.counters["peers_evicted"] > 0
    assert not node_bound_violations(a.node)
    assert not node_bound_violations(root.node)
    # a talks to the root all the time: it was never the least recently heard
    assert int(a.identity.address) in root.node.peers
    assert net.run(60_000, lambda: a.node.online)
    got: list[bytes] = []
    root.node.send_user_message(net.now, int(a.identity.address), 0x1234, b"still here")
    net._drain(root)
    net.run(2_000)
    got = [e.payload for e in a.events if e.kind == EventKind.USER_MESSAGE]
    assert got == [b"still here"]


def test_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "MAX_ROOT_PATHS", 128)
    net, root, a = _online()
    rng = random.Random(3)
    for i in range(1_000):  # junk from 1,000 source addresses
        root.node.on_wire_packet(net.now, 1, _addr(i + 256), rng.randbytes(40))
    assert len(root.node.switch.paths) <= 128
    assert root.node.counters["paths_pruned"] > 0
    # a's path is in use by its peer entry: kept, and the root still reaches a
    root.node.send_user_message(net.now, int(a.identity.address), 7, b"ok")
    net._drain(root)
    net.run(2_000)
    assert [e.payload for e in a.events if e.kind == EventKind.USER_MESSAGE] == [b"ok"]


def test_whois_rx_and_tx_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "MAX_PENDING_WHOIS", 16)
    net, root, a = _online()
    me = int(a.identity.address).to_bytes(5, "big")
    rng = random.Random(4)
    for i in range(500):  # packets from 500 made-up senders
        head = rng.randbytes(8) + me + (0x2000000000 + i).to_bytes(5, "big")
        a.node.on_wire_packet(net.now, 1, root.endpoint, head + rng.randbytes(30))
    for i in range(100):  # and sends to 100 unknown destinations
        a.node.send_user_message(net.now, 0x3000000000 + i, 1, b"x")
    assert len(a.node.switch.whois_sent) <= 16
    assert len(a.node.switch.rx) <= B.RX_QUEUE_SIZE and len(a.node.switch.tx) <= B.TX_QUEUE_SIZE
    assert a.node.counters["whois_table_full"] > 0
    net._drain(a)
    net.run(12_000)
    # the queues expired and the table drained; WHOIS for a real peer works again
    a.node.request_whois(net.now, int(net.nodes["b"].identity.address))
    net._drain(a)
    assert net.run(5_000, lambda: int(net.nodes["b"].identity.address) in a.node.peers)


def test_fragments() -> None:
    net, root, a = _online()
    me = int(a.identity.address).to_bytes(5, "big")
    rng = random.Random(5)
    for _ in range(2_000):  # orphan fragments with random packet ids
        frag = rng.randbytes(8) + me + bytes((0xFF, (7 << 4) | rng.randint(1, 6), 0))
        a.node.on_wire_packet(net.now, 1, root.endpoint, frag + rng.randbytes(100))
    assert a.node.switch.reassembler.pending() <= B.REASSEMBLY_SLOTS
    # a message too big for one datagram still arrives whole
    big = bytes(range(256)) * 20
    root.node.send_user_message(net.now, int(a.identity.address), 9, big)
    net._drain(root)
    net.run(2_000)
    assert [e.payload for e in a.events if e.kind == EventKind.USER_MESSAGE] == [big]


def test_echo_gate_and_tried_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "MAX_PEER_TRIED_PATHS", 16)
    net, root, a = _online()
    peer = root.node.peers[int(a.identity.address)]
    for i in range(300):  # one peer's ECHOs arriving from 300 addresses
        for data in _wire(a, Verb.ECHO, b"", root):
            root.node.on_wire_packet(net.now, 1, _addr(i + 512), data)
    assert len(peer.echo_gate) <= B.MAX_PEER_ECHO_GATES
    assert len(peer.last_tried_paths) <= 16
    assert not node_bound_violations(root.node)


def test_rendezvous_and_self_awareness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "MAX_UNITE_ENTRIES", 8)
    monkeypatch.setattr(B, "MAX_SURFACE_ENTRIES", 8)
    net, root, a = _online()
    node = root.node
    peer_a = node.peers[int(a.identity.address)]
    fakes = []
    for i, identity in enumerate(_fake_identities(40)):
        node.learn_identity(net.now, identity)
        p = node.peers[int(identity.address)]
        p.learn_path(node.switch.path(1, _addr(i + 1024)), net.now)
        fakes.append(p)
    for p in fakes:
        node.switch.unite(net.now, peer_a, p, rate_limited=True)
        path = node.switch.path(1, _addr(2000 + len(node.selfaware.surface)))
        node.iam(net.now, p, path, _addr(3000))
    assert len(node.switch.last_unite) <= 8 and len(node.selfaware.surface) <= 8
    # the newest introduction is remembered (and so rate-limited)
    key = (min(int(peer_a.address), int(fakes[-1].address)),
           max(int(peer_a.address), int(fakes[-1].address)))  # fmt: skip
    assert key in node.switch.last_unite
    node.drain_actions()


def test_hello_rate_buckets() -> None:
    net, root, _a = _online()
    node = root.node
    rng = random.Random(6)
    allowed = sum(
        node.identity_validation_allowed(net.now, _addr(rng.getrandbits(16))) for _ in range(5_000)
    )
    assert len(node.peer_table.identity_gate) <= B.IDENTITY_GATE_BUCKETS
    assert allowed <= 256  # one per source /24 per 2 s: 198.18.0.0/16 has 256 of them
    assert not node.identity_validation_allowed(net.now, _addr(1))
    assert node.identity_validation_allowed(net.now + 2_000, _addr(1))


def test_multicaster_caps() -> None:
    mc = Multicaster(1, max_per_peer=10, max_per_network=20, max_total=30)
    send = lambda a, p: None  # noqa: E731
    now = 1_000_000
    legit = MulticastGroup(0xFFFFFFFFFFFF, 0)
    assert mc.add(now, 5, legit, 2, send)
    for i in range(100):  # one peer floods one network
        mc.add(now, 5, MulticastGroup(0x010000000000 + i, 0), 3, send)
    assert mc.peer_count(3) == 10 and mc.refused >= 90
    for p in range(10, 40):  # many peers flood one network
        mc.add(now, 5, MulticastGroup(0x020000000000 + p, 0), p, send)
    assert mc.network_count(5) == 20
    for p in range(100, 200):  # many peers flood many networks
        now += 1
        mc.add(now, p, MulticastGroup(0x030000000000, 0), p, send)
        if p % 5 == 0:
            mc.add(now, 5, legit, 2, send)  # the legitimate member keeps liking
    assert mc.total <= 30 and mc.evicted > 0
    assert mc.members(now, 5, legit) == [2]
    mc.clean(now + 600_000)
    assert mc.total == 0 and mc.largest_counts() == (0, 0)


def test_root_proofs_and_requests() -> None:
    rm = RootMemberships(max_proofs=10)
    for i in range(100):
        rm.prove(1_000, i, 0x42)
    assert len(rm) == 10 and rm.proven(1_000, 99, 0x42) and not rm.proven(1_000, 0, 0x42)
    asked = sum(rm.should_ask(1_000, 1_000 + i, 0x43) for i in range(100))
    assert asked == B.ROOT_COM_REQUESTS_PER_PEER
    assert rm.should_ask(1_000 + B.ROOT_COM_REQUEST_INTERVAL, 5_000, 0x43)
    # a fresh proof is not asked for again; one past half its lifetime is
    assert not rm.should_ask(1_000, 99, 0x42)
    assert rm.should_ask(1_000 + B.ROOT_PROOF_LIFETIME // 2, 99, 0x42)
    rm.clean(1_000 + B.ROOT_PROOF_LIFETIME, peers=set())
    assert len(rm) == 0 and rm.asked_peers() == 0


def test_memberships_need_a_verifying_credential() -> None:
    net, controller, nwid = build()
    join_and_authorize(net, controller, nwid)
    b = net.nodes["b"]
    network = b.node.networks[nwid]
    before = len(network.memberships)
    forger = IDS[6]  # not the controller: its COMs do not verify
    for i, identity in enumerate(_fake_identities(200)):
        com = CertificateOfMembership.make(net.now, 7_200_000, nwid, identity).sign(forger)
        assert add_credential(b.node, net.now, com, 0x1000000000 + i) is AddResult.REJECTED
    assert len(network.memberships) == before
    good = CertificateOfMembership.make(net.now, 7_200_000, nwid, IDS[7].public_only())
    good = good.sign(IDS[1])
    assert add_credential(b.node, net.now, good, int(IDS[7].address)) is AddResult.ACCEPTED_NEW
    assert int(IDS[7].address) in network.memberships


def test_controller_tables() -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SqliteStore(Path(d) / "controller.db")
        ctl = EmbeddedController(IDS[1], store, lambda: None, lambda: None)  # type: ignore[arg-type,return-value]
        ctl.max_pending = 64
        now = 1_000_000
        for i in range(1_000):  # config requests for 1,000 (network, member) pairs
            assert ctl.rate_gate(i, i, now)
            ctl.note_authorized(i, i, now)
        assert len(ctl._last_request) <= 64 and len(ctl._authorized) <= 64
        # the gate still works for the newest requester
        assert not ctl.rate_gate(999, 999, now + 500)
        assert ctl.rate_gate(999, 999, now + 1_001)
        assert ctl.recently_authorized(999, 999, now + 1)


def test_peer_files(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    store = FileStateStore(home)
    for i in range(40):  # 40 peers cached, one second apart
        store.put(StateKind.PEER, 0x1000000000 + i, b"x")
        file = tmp_path / "home" / "peers.d" / f"{0x1000000000 + i:010x}.peer"
        os.utime(file, (1_000_000 + i, 1_000_000 + i))
    assert store.prune_peers(1_000_100, max_files=16) == 24
    left = sorted(p.name for p in (tmp_path / "home" / "peers.d").iterdir())
    assert left == [f"{0x1000000000 + i:010x}.peer" for i in range(24, 40)]  # the newest


def test_bridge_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network_module, "MAX_BRIDGE_ROUTES", 64)
    net = network_module.Network(0x1122334455000001, 0x1122334455)
    for mac in range(5):  # a modest bridge
        net.learn_bridge_route(0x0200000000 + mac, 0x2222222222)
    for mac in range(500):  # a bridge claiming a flood of MACs
        net.learn_bridge_route(0x0400000000 + mac, 0x3333333333)
        assert len(net.bridge_routes) <= 65
    assert all(net.bridge_routes.get(0x0200000000 + m) == 0x2222222222 for m in range(5))


def test_paths_per_peer_reply_expectations_and_send_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net, root, a = _online()
    peer = root.node.peers[int(a.identity.address)]
    for i in range(200):  # OKs confirming 200 paths of one peer
        peer.learn_path(root.node.switch.path(1, _addr(4096 + i)), net.now + i)
    assert len(peer.slots) <= B.MAX_PEER_PATHS
    assert any(s.path.address == _addr(4096 + 199) for s in peer.slots)  # the newest is in
    rng = random.Random(8)
    for _ in range(20_000):
        root.node.switch.expect_reply(rng.randbytes(8))
    assert max(len(b) for b in root.node.switch.expecting) <= 32
    monkeypatch.setattr(multicaster_module, "MULTICAST_MAX_TX_GROUPS", 16)
    mc = root.node.multicaster
    for i in range(100):  # multicasts to 100 groups of a network we are in
        mc.needs_gather(net.now, 7, MulticastGroup(0x010000000000 + i, 0), 60_000)
    assert mc.tx_groups() <= 16


def test_counters_keyed_by_wire_values() -> None:
    """ERRORs with every code byte and in-re verb grow the counters by at most the known
    codes: unknown codes share one key (the table keyed by the sender's bytes is bounded)."""
    net, root, a = _online()
    before = len(root.node.counters)
    for code in range(256):
        for verb in (0x01, 0x04, 0x1F):
            payload = bytes((verb,)) + (code * 7 + verb).to_bytes(8, "big") + bytes((code,))
            for datagram in _wire(a, Verb.ERROR, payload, root):
                root.node.on_wire_packet(net.now, 1, a.endpoint, datagram)
    grown = len(root.node.counters) - before
    assert root.node.counters["rx_error_unknown_code"] == (256 - 10) * 3
    assert grown <= 10 * 3 + 1 + 5  # the known codes, the shared key, a few others
    assert net.run(60_000, lambda: a.node.online)


def test_fast_path_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames to ever more members' MACs: the fast path's header templates stay within
    ``FAST_PATH_TEMPLATES`` and frames still arrive."""
    monkeypatch.setattr(B, "FAST_PATH_TEMPLATES", 1)
    net, controller, nwid = build(fast_path=True)
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    net.run(5_000)
    fast = a.node.fastpath
    assert fast is not None
    a_mac = a.node.networks[nwid].mac
    targets = [b, net.nodes["root"], net.nodes["ctrl"]]
    ip = bytes(20)
    for round_ in range(3):
        for t in targets:
            dst = a.node.networks[nwid].member_mac(int(t.identity.address))
            a.node.on_tap_frame(net.now, nwid, a_mac, dst, 0x0800, ip + bytes([round_]))
            net._drain(a)
            assert fast.template_count() <= 1
            assert not node_bound_violations(a.node)
        net.run(1_000)
    assert fast.tx_taken >= 3
    assert sum(1 for f in b.delivered if f.payload == ip + bytes([2])) == 1


def test_receive_grants(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full grant table makes no new grant; the frames still arrive (general path)."""
    net, controller, nwid = build(fast_path=True)
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    assert b.node.enable_receive_grants()
    net.run(5_000)
    a_mac = a.node.networks[nwid].mac
    b_mac = b.node.networks[nwid].mac

    def send(n: int) -> None:
        for i in range(n):
            a.node.on_tap_frame(net.now, nwid, a_mac, b_mac, 0x0800, bytes(20) + bytes([i]))
            net._drain(a)
            net.run(100)

    monkeypatch.setattr(B, "FAST_GRANTS", 0)
    send(3)
    net.run(2_000)
    assert b.node.receive_grants(net.now)[1] == []
    assert sum(1 for f in b.delivered if f.payload[:20] == bytes(20)) == 3
    monkeypatch.setattr(B, "FAST_GRANTS", 1)
    send(3)
    assert len(b.node.receive_grants(net.now)[1]) == 1
    assert not node_bound_violations(b.node)
