"""The fast path and the general path put the same bytes on the wire and in the ports.

The scenario of ``test_backends_identical`` (join, configs, ARP, unicast frames both
ways in small unfragmented and full fragmented packets, multicast, NDP emulation) runs
with every node's fast path (:mod:`ztone.node.fastpath`) on and again off, from the
same seed: every datagram sent and every frame delivered must be the same, byte for
byte and in order (packet ids come from the simulator's one seeded stream, so the fast
path must draw exactly what the general path draws), and the fast path must have
carried traffic. Both suites (AES-GMAC-SIV; Salsa20/12 with pre-AES peers) and both
hop implementations (native, and the pure reference the daemon uses without a
compiler).
"""

from __future__ import annotations

import pytest

from ztone.crypto import backend
from ztone.node.actions import SendPacket
from ztone.node.fastpath import FastPath
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer

from .network import SimNetwork, SimNode
from .test_backends_identical import assert_same, record_scenario

native_only = pytest.mark.skipif(
    not backend.native_available(), reason="the native accelerator is not built"
)


def _compare(monkeypatch: pytest.MonkeyPatch, crypto: str) -> None:
    with monkeypatch.context() as m:
        general, general_frames, none_taken = record_scenario(m, backend.named(crypto), False)
    with monkeypatch.context() as m:
        fast, fast_frames, taken = record_scenario(m, backend.named(crypto), True)
    assert none_taken == 0
    assert taken >= 10  # small frames both ways, each sent and received fast
    assert_same(fast, general)
    assert fast_frames == general_frames and len(fast_frames) >= 6


def test_pure_fast_path_matches_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    _compare(monkeypatch, "pure")


@native_only
def test_native_fast_path_matches_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    _compare(monkeypatch, "native")


@native_only
def test_salsa_suite_fast_path_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Peer, "supports_aes", property(lambda self: False))
    _compare(monkeypatch, "native")
    with monkeypatch.context() as m:
        native, native_frames, _ = record_scenario(m, backend.NATIVE or backend.PURE, True)
    with monkeypatch.context() as m:
        pure, pure_frames, _ = record_scenario(m, backend.PURE, False)
    assert_same(native, pure)
    assert native_frames == pure_frames
    suites = {(d[3][18] >> 3) & 7 for d in native if len(d[3]) >= 28 and d[3][13] != 0xFF}
    assert 1 in suites and 3 not in suites


def _disorder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fragmented head arrives after its fragments (delay 30 against 1-5), and
    every fragment arrives twice: the reassembler sees out-of-order and duplicate
    pieces. The same draws from the network's seeded stream on both runs."""
    transmit = SimNetwork._transmit

    def disordered(self: SimNetwork, sim: SimNode, action: SendPacket) -> None:
        data = action.data
        if len(data) > 16 and data[13] == 0xFF:
            transmit(self, sim, action)
            transmit(self, sim, action)
        elif len(data) >= 28 and data[18] & 0x40:
            low, high = self.min_delay, self.max_delay
            self.min_delay = self.max_delay = 30
            try:
                transmit(self, sim, action)
            finally:
                self.min_delay, self.max_delay = low, high
        else:
            transmit(self, sim, action)

    monkeypatch.setattr(SimNetwork, "_transmit", disordered)


def _count_assembled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """[packets the fast path opened after reassembly, ones it left to decode]."""
    counts = [0, 0]
    receive = FastPath.receive_assembled

    def counting(self: FastPath, now: int, path: Path, whole: bytes) -> bool:
        taken = receive(self, now, path, whole)
        counts[0 if taken else 1] += 1
        return taken

    monkeypatch.setattr(FastPath, "receive_assembled", counting)
    return counts


@pytest.mark.parametrize("crypto", ["pure", pytest.param("native", marks=native_only)])
@pytest.mark.parametrize("aes", [True, False])
def test_fragmented_frames_out_of_order_and_duplicated(
    monkeypatch: pytest.MonkeyPatch, crypto: str, aes: bool
) -> None:
    """Full-size frames whose fragments overtake their heads and arrive twice: the
    reassembled packets are opened by the fast path, and the datagrams and frames are
    the same as the general path's."""
    if not aes:
        monkeypatch.setattr(Peer, "supports_aes", property(lambda self: False))
    _disorder(monkeypatch)
    with monkeypatch.context() as m:
        general, general_frames, none_taken = record_scenario(m, backend.named(crypto), False)
    with monkeypatch.context() as m:
        counts = _count_assembled(m)
        fast, fast_frames, _ = record_scenario(m, backend.named(crypto), True)
    assert none_taken == 0
    assert counts[0] >= 6  # the three 2800-byte frames each way
    assert counts[1] == 0
    assert_same(fast, general)
    assert fast_frames == general_frames
    assert sum(1 for f in fast_frames if len(f) == 2800) == 3
