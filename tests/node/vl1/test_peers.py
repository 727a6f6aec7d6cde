"""The peer table (``ztone.node.vl1.peers``) on a fake port: eviction, the peer cache,
the new-identity rate gate and expiry."""

from __future__ import annotations

import ipaddress

import pytest

from node.fakeport import IDS, NOW, FakePort
from ztone.node import bounds as B
from ztone.node import constants as C
from ztone.node.actions import PutState, SendPacket, StateKind
from ztone.node.vl1.peers import PeerTable
from ztone.node.vl1.selfaware import SelfAwareness
from ztone.node.vl1.switch import Switch
from ztone.node.wire.inetaddress import InetAddress


def _table() -> tuple[FakePort, PeerTable]:
    port = FakePort()
    return port, PeerTable(port, Switch(port, SelfAwareness(port)))


def test_at_the_cap_the_least_recently_heard_go_but_never_a_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(B, "MAX_PEERS", 4)
    port, table = _table()
    root = table.add(IDS[0].public_only())
    assert root is not None
    root.last_receive = 0  # the quietest of all, and still kept
    for i, identity in enumerate(IDS[3:6]):
        peer = table.add(identity.public_only())
        assert peer is not None
        peer.last_receive = NOW + i
    table.add(IDS[6].public_only())
    assert int(IDS[0].address) in port.peers
    assert int(IDS[3].address) not in port.peers  # the least recently heard non-root
    assert port.counters["peers_evicted"] == 1


def test_a_cached_peer_is_restored_and_greeted_at_its_cached_addresses() -> None:
    port, table = _table()
    other = port.add_known_peer(IDS[3])
    endpoint = InetAddress(ipaddress.ip_address("198.18.0.33"), 9993)
    other.learn_path(table.switch.path(1, endpoint), NOW)
    port.state[(StateKind.PEER, int(IDS[3].address))] = other.serialize_for_cache()
    del port.peers[int(IDS[3].address)]
    peer = table.get(NOW, int(IDS[3].address))
    assert peer is not None and peer.identity == IDS[3].public_only()
    [hello] = [a for a in port.actions if isinstance(a, SendPacket)]
    assert hello.remote == endpoint
    assert table.get(NOW, int(IDS[4].address)) is None  # nothing cached


def test_a_corrupt_or_misnamed_cache_entry_is_refused() -> None:
    port, table = _table()
    port.state[(StateKind.PEER, int(IDS[3].address))] = b"\x02garbage"
    assert table.get(NOW, int(IDS[3].address)) is None
    assert port.counters["state_bad_peer"] == 1
    port.state[(StateKind.PEER, int(IDS[4].address))] = port.add_known_peer(
        IDS[5]).serialize_for_cache()  # fmt: skip
    assert table.get(NOW, int(IDS[4].address)) is None


def test_one_new_identity_per_source_bucket_per_2_s() -> None:
    _, table = _table()
    a = InetAddress(ipaddress.ip_address("198.18.0.1"), 1)
    same_24 = InetAddress(ipaddress.ip_address("198.18.0.200"), 2)
    assert table.identity_validation_allowed(NOW, a)
    assert not table.identity_validation_allowed(NOW + 1, same_24)
    assert table.identity_validation_allowed(NOW + C.IDENTITY_VALIDATION_SOURCE_RATE_LIMIT, a)
    table.clean(NOW + 3 * C.IDENTITY_VALIDATION_SOURCE_RATE_LIMIT)
    assert table.identity_gate == {}


def test_quiet_peers_expire_into_the_cache_but_roots_stay() -> None:
    port, table = _table()
    table.add(IDS[0].public_only())
    table.add(IDS[3].public_only())
    table.clean(NOW)
    assert set(port.peers) == {int(IDS[0].address)}
    [put] = port.actions
    assert isinstance(put, PutState) and put.object_id == int(IDS[3].address)
    table.flush()
    assert len(port.actions) == 2


def test_housekeeping_empties_per_peer_gates_once_every_entry_is_past_its_interval() -> None:
    port, table = _table()
    peer = table.add(IDS[3].public_only())
    assert peer is not None
    peer.last_receive = NOW  # alive: it stays in the table
    key = (1, InetAddress(ipaddress.ip_address("198.18.0.33"), 9993))
    old = (1, InetAddress(ipaddress.ip_address("198.18.0.34"), 9993))
    peer.last_tried_paths = {key: NOW, old: NOW - 10 * C.PATH_CONFIRM_INTERVAL}
    peer.echo_gate = {key: NOW}
    table.clean(NOW)  # one entry of each is still within its interval: both kept whole
    assert peer.last_tried_paths == {key: NOW, old: NOW - 10 * C.PATH_CONFIRM_INTERVAL}
    assert peer.echo_gate == {key: NOW}
    assert C.ECHO_RATE_LIMIT < C.PATH_CONFIRM_INTERVAL
    table.clean(NOW + C.ECHO_RATE_LIMIT)
    assert peer.echo_gate == {}
    assert key in peer.last_tried_paths  # its interval is longer
    table.clean(NOW + C.PATH_CONFIRM_INTERVAL)
    assert key in peer.last_tried_paths  # not past it yet
    table.clean(NOW + C.PATH_CONFIRM_INTERVAL + 1)
    assert peer.last_tried_paths == {}
    assert int(IDS[3].address) in port.peers


def test_the_expiry_pass_keeps_a_peer_heard_just_inside_the_activity_timeout() -> None:
    port, table = _table()
    for identity in IDS[3:5]:
        table.add(identity.public_only())
    port.peers[int(IDS[3].address)].last_receive = NOW - C.PEER_ACTIVITY_TIMEOUT + 1
    port.peers[int(IDS[4].address)].last_receive = NOW - C.PEER_ACTIVITY_TIMEOUT
    table.clean(NOW)
    assert set(port.peers) == {int(IDS[3].address)}
