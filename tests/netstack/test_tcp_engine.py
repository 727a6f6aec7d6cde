"""TcpConnection between two ends of a simulated link: handshake, data, close, RST.

Assertions are on what arrives and on states, never on timing.
"""

from __future__ import annotations

import random

import pytest

from netstack.tcp_sim import Link, Pump, Sim
from ztone.errors import LocalUsageError
from ztone.netstack.tcp import TcpConnection, TcpState
from ztone.netstack.tcp_limits import TcpLimits
from ztone.netstack.tcp_segment import ACK, FIN, RST, SYN, TcpSegment


def _payload(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


def _server(sim: Sim) -> TcpConnection:
    assert sim.server is not None
    return sim.server


def test_handshake_both_ends_established() -> None:
    sim = Sim()
    assert sim.client.state is TcpState.SYN_SENT
    assert sim.run(lambda: sim.server is not None and sim.server.established
                   and sim.client.established)  # fmt: skip
    server = _server(sim)
    assert sim.client.state is server.state is TcpState.ESTABLISHED
    syn = sim.log[0][2]
    assert syn.flags == SYN and syn.mss == 1400 and syn.wscale == 3
    synack = next(s for _, to_server, s in sim.log if not to_server)
    assert synack.flags == SYN | 0x10 and synack.ack == 1001 and synack.wscale == 3


@pytest.mark.parametrize("v6", [False, True])
def test_data_both_ways_then_close(v6: bool) -> None:
    sim = Sim(v6=v6)
    up = Pump(lambda: sim.client, lambda: sim.server, _payload(300_000, 1))
    down = Pump(lambda: sim.server, lambda: sim.client, _payload(200_000, 2))

    def app(s: Sim) -> None:
        up(s)
        down(s)

    assert sim.run(lambda: up.done() and down.done(), app=app)
    assert up.received == up.data and down.received == down.data
    server = _server(sim)
    assert sim.run(lambda: sim.client.closed and server.closed)
    assert sim.client.error is None and server.error is None


def test_active_close_passes_time_wait() -> None:
    sim = Sim()
    assert sim.run(lambda: sim.client.established and sim.server is not None
                   and sim.server.established)  # fmt: skip
    server = _server(sim)
    sim.client.shutdown()
    assert sim.client.state is TcpState.FIN_WAIT_1
    assert sim.run(lambda: server.state is TcpState.CLOSE_WAIT)
    assert server.at_eof
    assert sim.run(lambda: sim.client.state is TcpState.FIN_WAIT_2)
    server.shutdown()
    assert server.state is TcpState.LAST_ACK
    assert sim.run(lambda: sim.client.state is TcpState.TIME_WAIT)
    assert sim.run(lambda: server.closed)
    assert sim.run(lambda: sim.client.closed)
    assert sim.client.error is None and sim.client.at_eof
    assert sim.client.deadline() is None


def test_connection_refused() -> None:
    sim = Sim(listening=False)
    assert sim.run(lambda: sim.client.closed)
    assert sim.client.error == "connection refused"
    assert sim.resets_sent == 1
    assert not sim.client.established


def test_abort_resets_the_peer() -> None:
    sim = Sim()
    assert sim.run(lambda: sim.server is not None and sim.server.established
                   and sim.client.established)  # fmt: skip
    server = _server(sim)
    assert sim.client.send(b"hello") == 5
    assert sim.run(lambda: server.readable == 5)
    server.abort()
    with pytest.raises(LocalUsageError):
        server.send(b"x")
    assert sim.run(lambda: sim.client.closed)
    assert server.closed and server.error is None
    assert sim.client.error == "connection reset"
    assert any(s.flags & RST for _, to_server, s in sim.log if not to_server)


def test_send_after_shutdown_is_a_usage_error() -> None:
    conn = TcpConnection.connect(bytes(4), 1, bytes(4), 2, mss=1000, iss=0, now=0.0)
    conn.shutdown()
    with pytest.raises(LocalUsageError):
        conn.send(b"x")


def test_fin_carries_on_last_data_segment() -> None:
    sim = Sim()
    assert sim.run(lambda: sim.client.established)
    sim.client.send(b"abc")
    sim.client.shutdown()
    sim.flush()
    last = sim.log[-1][2]
    assert last.payload == b"abc" and last.flags & FIN


def test_limits_defaults_bound_memory() -> None:
    lim = TcpLimits()
    conn = TcpConnection.connect(bytes(4), 1, bytes(4), 2, mss=1000, iss=0, now=0.0)
    conn.send(bytes(lim.send_buffer + 10))
    assert conn.writable == 0
    assert conn.send(b"x") == 0


def test_lossy_link_transfer_is_byte_identical() -> None:
    sim = Sim(link=Link(loss=0.02, reorder=0.1, dup=0.01), seed=3)
    up = Pump(lambda: sim.client, lambda: sim.server, _payload(500_000, 3))
    assert sim.run(up.done, app=up)
    assert up.received == up.data


def test_simultaneous_open() -> None:
    """Both ends send a SYN at once (RFC 9293 §3.5 figure 7): both pass SYN-RECEIVED."""
    a_ip, b_ip = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
    a = TcpConnection.connect(a_ip, 5000, b_ip, 6000, mss=1000, iss=100, now=0.0)
    b = TcpConnection.connect(b_ip, 6000, a_ip, 5000, mss=1000, iss=2**32 - 1, now=0.0)
    to_b, to_a = a.poll(0.0), b.poll(0.0)
    for seg in to_b:
        b.receive(seg, 0.01)
    for seg in to_a:
        a.receive(seg, 0.01)
    assert a.state is b.state is TcpState.SYN_RECEIVED
    for now in (0.02, 0.03, 0.04):
        to_b, to_a = a.poll(now), b.poll(now)
        for seg in to_b:
            b.receive(seg, now)
        for seg in to_a:
            a.receive(seg, now)
    assert (a.state, b.state) == (TcpState.ESTABLISHED, TcpState.ESTABLISHED)
    a.send(b"ping")
    for seg in a.poll(0.05):
        b.receive(seg, 0.05)
    assert b.recv() == b"ping"


@pytest.mark.parametrize("bad", [{"recv_buffer": 0}, {"send_buffer": 2**31}, {"min_rto": 0.0},
                                 {"max_retransmissions": -1}, {"time_wait": -1.0},
                                 {"initial_window_segments": 0}])  # fmt: skip
def test_limits_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(LocalUsageError):
        TcpLimits(**bad)  # type: ignore[arg-type]


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(LocalUsageError):
        TcpConnection.connect(bytes(4), 1, bytes(16), 2, mss=1000, iss=0, now=0.0)
    with pytest.raises(LocalUsageError):
        TcpConnection.connect(bytes(4), 1, bytes(4), 2, mss=10, iss=0, now=0.0)
    ack = TcpSegment(1, 2, 3, 4, ACK, 5)
    with pytest.raises(LocalUsageError):
        TcpConnection.accept(ack, bytes(4), bytes(4), mss=1000, iss=0, now=0.0)
