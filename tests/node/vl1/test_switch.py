"""The VL1 switch's queues, WHOIS table and relay gate (``ztone.node.vl1.switch``) on a
fake port: their bounds and expiry, without a node or the simulator."""

from __future__ import annotations

import ipaddress

import pytest

from node.fakeport import IDS, NOW, ROOT_IP, FakePort
from ztone.node import bounds as B
from ztone.node import constants as C
from ztone.node.actions import SendPacket
from ztone.node.vl1.peer import Peer
from ztone.node.vl1.selfaware import SelfAwareness
from ztone.node.vl1.switch import Switch
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.packet import Verb

ROOT_EP = InetAddress(ipaddress.ip_address(ROOT_IP), 9993)


def _addr(i: int) -> InetAddress:
    return InetAddress(ipaddress.ip_address(f"198.18.{1 + i // 250}.{1 + i % 250}"), 9993)


def _switch(with_root: bool = True) -> tuple[FakePort, Switch, Peer | None]:
    port = FakePort()
    switch = Switch(port, SelfAwareness(port))
    root = None
    if with_root:
        root = port.add_known_peer(IDS[0])
        root.learn_path(switch.path(1, ROOT_EP), NOW)
        root.last_receive = NOW
    return port, switch, root


def _datagrams(port: FakePort) -> list[SendPacket]:
    return [a for a in port.actions if isinstance(a, SendPacket)]


def test_whois_goes_to_the_root_at_most_every_500_ms_per_address() -> None:
    port, switch, _ = _switch()
    unknown = int(IDS[5].address)
    switch.request_whois(NOW, unknown)
    switch.request_whois(NOW + C.WHOIS_RETRY_DELAY - 1, unknown)
    [datagram] = _datagrams(port)
    assert datagram.remote == ROOT_EP
    assert port.counters["whois_sent"] == 1 and switch.whois_sent == {unknown: NOW}
    switch.request_whois(NOW + C.WHOIS_RETRY_DELAY, unknown)
    assert port.counters["whois_sent"] == 2


def test_whois_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "MAX_PENDING_WHOIS", 4)
    port, switch, _ = _switch()
    for i in range(10):
        switch.request_whois(NOW, 0x1000000000 + i)
    assert len(switch.whois_sent) == 4
    assert port.counters["whois_table_full"] == 6


def test_whois_for_ourselves_is_never_asked() -> None:
    port, switch, _ = _switch()
    switch.request_whois(NOW, int(port.address))
    assert switch.whois_sent == {} and port.actions == []


def test_send_to_an_unknown_address_waits_in_a_bounded_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(B, "TX_QUEUE_SIZE", 3)
    port, switch, _ = _switch()
    for i in range(5):
        switch.send(NOW, 0x2000000000 + i, Verb.USER_MESSAGE, bytes(8) + bytes([i]))
    assert [e.destination for e in switch.tx] == [0x2000000000 + i for i in (2, 3, 4)]
    assert port.counters["tx_queue_overflow"] == 2
    assert set(switch.whois_sent) == {0x2000000000 + i for i in range(5)}
    assert switch.has_pending()


def test_a_learned_identity_releases_its_queued_packets() -> None:
    port, switch, _root = _switch()
    target = IDS[4]
    switch.send(NOW, int(target.address), Verb.USER_MESSAGE, bytes(9))
    assert len(switch.tx) == 1
    port.actions.clear()
    port.add_known_peer(target)  # known now; no direct path: relayed via the root
    switch.peer_learned(NOW + 10, int(target.address))
    assert switch.tx == [] and int(target.address) not in switch.whois_sent
    [datagram] = _datagrams(port)
    assert datagram.remote == ROOT_EP
    assert int.from_bytes(datagram.data[8:13], "big") == int(target.address)


def test_queued_packets_expire_and_unwanted_whois_is_forgotten() -> None:
    port, switch, _ = _switch()
    switch.send(NOW, 0x3000000001, Verb.USER_MESSAGE, bytes(9))
    switch.timer(NOW + C.TRANSMIT_QUEUE_TIMEOUT + 1)
    assert switch.tx == [] and port.counters["tx_queue_expired"] == 1
    switch.timer(NOW + C.TRANSMIT_QUEUE_TIMEOUT + 2)  # nobody waits for that address
    assert switch.whois_sent == {} and not switch.has_pending()


def test_a_leaf_relays_nothing_over_an_untrusted_path() -> None:
    port, switch, _ = _switch()
    packet = bytes(8) + int(IDS[4].address).to_bytes(5, "big") + int(IDS[5].address).to_bytes(
        5, "big") + bytes(20)  # fmt: skip
    switch.on_datagram(NOW, 1, _addr(7), packet)
    assert port.counters["relay_refused"] == 1 and port.actions == []


def test_reply_expectations_keep_32_ids_per_bucket() -> None:
    _, switch, _ = _switch(with_root=False)
    for i in range(100):
        switch.expect_reply(i.to_bytes(4, "big")[:3] + b"\x07" + bytes(4))
    assert max(len(b) for b in switch.expecting) == 32
    newest = (99).to_bytes(4, "big")[:3] + b"\x07" + bytes(4)
    assert switch.expecting_reply(int.from_bytes(newest, "big"))


def test_path_table_prunes_unused_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "MAX_PATHS", 16)
    port, switch, root = _switch()
    for i in range(40):
        switch.path(1, _addr(i))
    assert len(switch.paths) <= 16
    assert root is not None and switch.path(1, ROOT_EP) is root.slots[0].path  # in use: kept
    assert port.counters["paths_pruned"] >= 1
