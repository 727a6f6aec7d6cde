"""Timers and flow control: zero window and probes, retransmission give-up, backoff,
delayed ACKs, fast retransmit, the out-of-order bound. Times are the simulator's virtual
clock (deterministic), never the wall clock."""

from __future__ import annotations

import itertools
import random

from netstack.tcp_sim import CLIENT_PORT, SERVER_PORT, Link, Pump, Sim
from ztone.netstack.tcp import TcpConnection, TcpLimits, TcpState
from ztone.netstack.tcp_segment import ACK, SYN, TcpSegment


def _established(sim: Sim) -> TcpConnection:
    assert sim.run(lambda: sim.client.established and sim.server is not None
                   and sim.server.established)  # fmt: skip
    assert sim.server is not None
    return sim.server


def test_zero_window_then_reading_completes_the_transfer() -> None:
    small = TcpLimits(recv_buffer=64 * 1024)
    sim = Sim(server_limits=small)
    data = random.Random(3).randbytes(1 << 20)
    up = Pump(lambda: sim.client, lambda: sim.server, data)
    up.read = False

    def app(s: Sim) -> None:
        up.read = s.now > 20.0  # the server's application sleeps for a while
        up(s)

    assert sim.run(up.done, app=app)
    assert up.received == data
    zero_windows = [s for t, to_server, s in sim.log if not to_server and s.window == 0]
    assert zero_windows, "the receiver advertised a zero window"
    assert sim.client.window_probes >= 3  # persist probes while the server slept
    assert sim.client.error is None
    probes = [s for t, to_server, s in sim.log if to_server and len(s.payload) == 1]
    assert len(probes) >= sim.client.window_probes


def test_zero_window_probes_survive_a_long_stall() -> None:
    """Probes answered with a zero window never time the connection out."""
    small = TcpLimits(recv_buffer=16 * 1024)
    sim = Sim(server_limits=small)
    data = random.Random(4).randbytes(100_000)
    up = Pump(lambda: sim.client, lambda: sim.server, data)

    def app(s: Sim) -> None:
        up.read = s.now > 1500.0
        up(s)

    assert sim.run(up.done, app=app, max_time=3000)
    assert up.received == data
    assert sim.client.window_probes > TcpLimits().max_retransmissions


def test_retransmission_gives_up_with_timed_out() -> None:
    sim = Sim()
    server = _established(sim)
    sim.link.loss = 1.0  # the path dies
    sim.client.send(b"x" * 3000)
    assert sim.run(lambda: sim.client.closed, max_time=10_000)
    assert sim.client.error == "timed out"
    assert sim.client.timeouts == TcpLimits().max_retransmissions + 1
    first_seq = sim.client.snd_una
    sends = [t for t, to_server, s in sim.log if to_server and s.seq == first_seq and s.payload]
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert len(sends) == TcpLimits().max_retransmissions + 1
    assert all(b >= a for a, b in itertools.pairwise(gaps))  # backoff
    assert gaps[-1] >= 8 * gaps[0]
    assert server.state is TcpState.ESTABLISHED  # it never heard a thing


def test_syn_gives_up_with_timed_out() -> None:
    sim = Sim(listening=False, link=Link(loss=1.0))
    assert sim.run(lambda: sim.client.closed, max_time=10_000)
    assert sim.client.error == "timed out"
    syns = [s for _, to_server, s in sim.log if to_server and s.flags == SYN]
    assert len(syns) == TcpLimits().syn_retransmissions + 1


def test_lost_syn_ack_is_sent_again() -> None:
    dropped: list[TcpSegment] = []

    def drop_first_synack(seg: TcpSegment, to_server: bool) -> bool:
        if not to_server and seg.flags & SYN and not dropped:
            dropped.append(seg)
            return True
        return False

    sim = Sim(link=Link(drop=drop_first_synack))
    server = _established(sim)
    assert dropped and server.error is None
    assert sim.client.cwnd <= 2 * 1400  # a retransmitted SYN means a small first window


def test_delayed_ack_waits_at_most_40_ms_and_every_second_segment_is_acked() -> None:
    sim = Sim()
    server = _established(sim)
    sim.client.nodelay = True
    sim.client.send(b"a")
    sim.flush()
    t0 = sim.now
    assert sim.run(lambda: server.readable == 1)
    assert sim.run(lambda: sim.client.unacked == 0)
    ack_time = next(t for t, to_server, s in reversed(sim.log) if not to_server)
    assert ack_time - (t0 + sim.link.delay) <= 0.04 + 1e-9
    # Two full segments at once: the second is acknowledged without delay.
    sim.client.send(b"b" * 2800)
    sim.flush()
    start = len(sim.log)
    assert sim.run(lambda: server.readable == 2801)
    sim.flush()
    acks = [s for _, to_server, s in sim.log[start:] if not to_server]
    assert acks and acks[0].ack == sim.client.snd_nxt


def test_single_loss_is_repaired_by_fast_retransmit() -> None:
    victim: list[int] = []

    def drop_one(seg: TcpSegment, to_server: bool) -> bool:
        if to_server and len(seg.payload) and seg.seq > 200_000 and not victim:
            victim.append(seg.seq)
            return True
        return False

    sim = Sim(link=Link(drop=drop_one))
    data = random.Random(5).randbytes(1 << 20)
    up = Pump(lambda: sim.client, lambda: sim.server, data)
    assert sim.run(up.done, app=up)
    assert up.received == data
    assert victim and sim.client.fast_retransmits >= 1
    assert sim.client.timeouts == 0


def test_rtt_estimate_follows_the_path() -> None:
    sim = Sim(link=Link(delay=0.05))
    data = random.Random(6).randbytes(200_000)
    up = Pump(lambda: sim.client, lambda: sim.server, data)
    assert sim.run(up.done, app=up)
    assert 0.1 <= sim.client.rto <= 1.0  # RTT 0.1 s: SRTT + 4 RTTVAR, not the initial 1 s


def test_out_of_order_segments_are_bounded_and_merged() -> None:
    limits = TcpLimits(out_of_order_segments=8)
    syn = TcpSegment(CLIENT_PORT, SERVER_PORT, 100, 0, SYN, 65535, mss=1000, wscale=2)
    conn = TcpConnection.accept(syn, bytes(4), bytes(4), mss=1000, iss=7, now=0.0,
                                limits=limits)  # fmt: skip
    conn.poll(0.0)
    conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 101, 8, ACK, 1000), 0.0)
    assert conn.state is TcpState.ESTABLISHED
    # 20 segments of 100 bytes after a 100-byte hole, newest first, some twice.
    for k in [*range(20, 0, -1), 3, 5]:
        conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 101 + 100 * k, 8, ACK, 1000,
                                bytes([k]) * 100), 0.0)  # fmt: skip
        assert conn.out_of_order <= 8
    acks = conn.poll(0.0)
    assert acks and all(s.ack == 101 for s in acks)  # duplicate ACKs for the hole
    conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 101, 8, ACK, 1000, bytes(100)), 0.0)
    got = conn.recv(1 << 20)
    # The kept segments were the first 8 to arrive (20..13): not contiguous with the
    # hole, so only the hole itself is delivered; the rest comes again from the sender.
    assert got == bytes(100)
    for k in range(1, 21):
        conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 101 + 100 * k, 8, ACK, 1000,
                                bytes([k]) * 100), 0.0)  # fmt: skip
    got = conn.recv(1 << 20)
    assert got == b"".join(bytes([k]) * 100 for k in range(1, 21))
    assert conn.out_of_order == 0


def test_receive_window_never_exceeds_free_buffer_space() -> None:
    limits = TcpLimits(recv_buffer=10_000)
    sim = Sim(limits=limits)
    server = _established(sim)
    sim.client.send(bytes(50_000))
    assert sim.run(lambda: server.readable == 10_000)
    sim.run(lambda: False, max_time=sim.now + 5)
    assert server.readable == 10_000  # nothing beyond the buffer was taken
    assert sim.client.unacked == 40_000
    assert sim.client.snd_wnd == 0
    server.recv(6000)
    assert sim.run(lambda: sim.client.snd_wnd > 0)  # the window update went out on read


def test_both_windows_closed_on_a_duplicating_link_is_no_ack_storm() -> None:
    """Both ends fill each other's window and probe; their ACKs numbered past the
    closed window must neither be dropped forever nor answered forever."""
    limits = TcpLimits(recv_buffer=65536, send_buffer=262144)
    sim = Sim(link=Link(dup=0.05), limits=limits, mss=536, seed=283)
    up = Pump(lambda: sim.client, lambda: sim.server, random.Random(7).randbytes(300_000))
    down = Pump(lambda: sim.server, lambda: sim.client, random.Random(8).randbytes(300_000))

    def app(s: Sim) -> None:
        up.read = down.read = s.now > 3.0
        up(s)
        down(s)

    assert sim.run(lambda: up.done() and down.done(), app=app, max_steps=50_000)
    assert up.received == up.data and down.received == down.data
