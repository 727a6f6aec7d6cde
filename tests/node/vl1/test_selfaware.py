"""How peers see us (``ztone.node.vl1.selfaware``) on a fake port."""

from __future__ import annotations

import ipaddress

import pytest

from node.fakeport import IDS, NOW, FakePort
from ztone.node import bounds as B
from ztone.node import constants as C
from ztone.node.vl1.path import Path
from ztone.node.vl1.selfaware import SelfAwareness
from ztone.node.wire.inetaddress import InetAddress


def _ip(text: str, port: int = 9993) -> InetAddress:
    return InetAddress(ipaddress.ip_address(text), port)


def test_reports_of_another_scope_or_of_loopback_are_ignored() -> None:
    port = FakePort()
    sa = SelfAwareness(port)
    peer = port.add_known_peer(IDS[3])
    sa.iam(NOW, peer, Path(1, _ip("198.18.0.20")), _ip("8.8.8.8", 4000))  # global on private
    sa.iam(NOW, peer, Path(1, _ip("127.0.0.1")), _ip("127.0.0.2"))
    assert sa.surface == {} and sa.addresses() == []
    sa.iam(NOW, peer, Path(1, _ip("198.18.0.20")), _ip("198.18.0.99", 4000))
    assert sa.addresses() == [_ip("198.18.0.99", 4000)]


def test_the_table_is_bounded_and_reports_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "MAX_SURFACE_ENTRIES", 4)
    port = FakePort()
    sa = SelfAwareness(port)
    peer = port.add_known_peer(IDS[3])
    for i in range(10):
        sa.iam(NOW + i, peer, Path(1, _ip(f"198.18.1.{i + 1}")), _ip("198.18.0.99", 4000 + i))
    assert len(sa.surface) == 4
    assert _ip("198.18.0.99", 4009) in sa.addresses()
    sa.clean(NOW + 9 + C.SELFAWARENESS_ENTRY_TIMEOUT)
    assert sa.surface == {}


def test_a_root_seeing_our_address_change_makes_us_re_probe_that_scope() -> None:
    port = FakePort()
    sa = SelfAwareness(port)
    root = port.add_known_peer(IDS[0])  # an upstream of the private planet
    other = port.add_known_peer(IDS[3])
    lan = Path(1, _ip("198.18.0.10"))
    other_path = Path(1, _ip("198.18.0.33"))
    other.learn_path(other_path, NOW)
    sa.iam(NOW, root, lan, _ip("198.18.0.99", 4000))
    sa.iam(NOW + 1, other, Path(1, _ip("198.18.0.44")), _ip("198.18.0.99", 4001))
    assert port.contacts == []
    sa.iam(NOW + 2, root, lan, _ip("198.18.0.77", 4000))  # the NAT mapping changed
    assert (int(other.address), other_path.address, False) in port.contacts
    assert sa.addresses() == [_ip("198.18.0.77", 4000)]  # the scope's old reports went
