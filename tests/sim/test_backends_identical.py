"""The native accelerator and the pure-Python path put the same bytes on the wire.

One deterministic scenario on the simulator (a root, a controller and two members
of a private network; join, authorization, configs, ARP, unicast frames both ways
in full 2800-byte frames that are fragmented, multicast, NDP emulation) runs with
``ztone._speedups`` and again with the pure-Python modules, from the same seed. Every
datagram any node sends must be the same, byte for byte and in the same order: the
packet armor of both cipher suites (AES-GMAC-SIV between protocol-12 peers, and
Salsa20/12 + Poly1305 when the peers are made to look older), HELLO's partial
encryption, fragmentation and everything the core decides from what it decrypted.
"""

from __future__ import annotations

import pytest

from ztone.crypto import backend
from ztone.crypto.backend import Backend
from ztone.node.actions import SendPacket
from ztone.node.vl1.peer import Peer
from ztone.node.wire.mac import BROADCAST, MAC

from .network import SimNetwork, SimNode
from .test_vl2_sim import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    _arp_request,
    _eth_payload_ipv4,
    _ipv4,
    _subscribe_arp_and_v6,
    build,
    join_and_authorize,
)

pytestmark = pytest.mark.skipif(
    not backend.native_available(), reason="the native accelerator is not built"
)

Datagram = tuple[str, str, int, bytes]


def record_scenario(
    monkeypatch: pytest.MonkeyPatch, crypto: Backend, fast_path: bool | None = None
) -> tuple[list[Datagram], list[bytes], int]:
    """Run the scenario; every datagram sent (sender, remote, ttl, bytes), b's frames and
    how many datagrams and frames the nodes' fast paths carried."""
    sent: list[Datagram] = []
    transmit = SimNetwork._transmit

    def recording(self: SimNetwork, sim: SimNode, action: SendPacket) -> None:
        sent.append((sim.name, str(action.remote), action.ttl, bytes(action.data)))
        transmit(self, sim, action)

    monkeypatch.setattr(SimNetwork, "_transmit", recording)
    net, controller, nwid = build(seed=11, crypto=crypto, fast_path=fast_path)
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    for sim in (a, b):
        _subscribe_arp_and_v6(sim, net, nwid)
    net.run(2_000)
    a_mac = int(MAC.from_address(int(a.identity.address), nwid))
    b_mac = int(MAC.from_address(int(b.identity.address), nwid))
    a_ip, b_ip = _ipv4(a, nwid), _ipv4(b, nwid)
    a.node.on_tap_frame(net.now, nwid, a_mac, BROADCAST, ETH_ARP, _arp_request(a_mac, a_ip, b_ip))
    net._drain(a)
    net.run(1_000)
    for i in range(6):  # full-size frames (two datagrams each) and small ones, both ways
        size = 2800 - 20 if i % 2 == 0 else 60
        a.node.on_tap_frame(net.now, nwid, a_mac, b_mac, ETH_IPV4,
                            _eth_payload_ipv4(a_ip, b_ip, bytes([i]) * size))  # fmt: skip
        net._drain(a)
        b.node.on_tap_frame(net.now, nwid, b_mac, a_mac, ETH_IPV4,
                            _eth_payload_ipv4(b_ip, a_ip, bytes([i + 100]) * size))  # fmt: skip
        net._drain(b)
        net.run(200)
    a.node.on_tap_frame(net.now, nwid, a_mac, 0x333300000001, ETH_IPV6, bytes(40) + b"v6 mc")
    net._drain(a)
    net.run(5_000)
    taken = sum(
        s.node.fastpath.rx_taken + s.node.fastpath.tx_taken
        for s in net.nodes.values()
        if s.node.fastpath is not None
    )
    return sent, [f.payload for f in b.delivered], taken


def _run(monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[list[Datagram], list[bytes]]:
    with monkeypatch.context() as m:
        sent, frames, _ = record_scenario(m, backend.named(name))
        return sent, frames


def assert_same(native: list[Datagram], pure: list[Datagram]) -> None:
    assert len(native) == len(pure)
    for i, (x, y) in enumerate(zip(native, pure, strict=True)):
        assert x == y, f"datagram {i} differs: {x[:3]} vs {y[:3]}"


def test_native_and_pure_send_identical_datagrams(monkeypatch: pytest.MonkeyPatch) -> None:
    native, native_frames = _run(monkeypatch, "native")
    again, _ = _run(monkeypatch, "native")
    assert native == again  # the scenario is deterministic
    pure, pure_frames = _run(monkeypatch, "pure")
    assert_same(native, pure)
    assert native_frames == pure_frames
    assert sum(1 for f in native_frames if len(f) == 2800) == 3  # the big frames arrived
    fragments = [d for d in native if len(d[3]) > 16 and d[3][13] == 0xFF]
    assert len(native) > 100 and len(fragments) >= 6
    suites = {(d[3][18] >> 3) & 7 for d in native if len(d[3]) >= 28 and d[3][13] != 0xFF}
    assert {0, 3} <= suites  # HELLOs (MAC only) and AES-GMAC-SIV


def test_salsa_suite_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with every peer treated as pre-AES (cipher suite 1 for everything)."""
    monkeypatch.setattr(Peer, "supports_aes", property(lambda self: False))
    native, native_frames = _run(monkeypatch, "native")
    pure, pure_frames = _run(monkeypatch, "pure")
    assert_same(native, pure)
    assert native_frames == pure_frames and len(native_frames) >= 6
    suites = {(d[3][18] >> 3) & 7 for d in native if len(d[3]) >= 28 and d[3][13] != 0xFF}
    assert 1 in suites and 3 not in suites
