"""Timers and flow control: zero window and probes, retransmission give-up, backoff,
delayed ACKs, fast retransmit, the out-of-order bound. Times are the simulator's virtual
clock (deterministic), never the wall clock."""

from __future__ import annotations

import itertools
import random

from netstack.tcp_sim import CLIENT_PORT, SERVER_PORT, Link, Pump, Sim, established
from ztone.netstack.tcp import TcpConnection, TcpState
from ztone.netstack.tcp_limits import TcpLimits
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


def test_out_of_order_runs_are_bounded_and_merged() -> None:
    limits = TcpLimits(out_of_order_segments=8)
    syn = TcpSegment(CLIENT_PORT, SERVER_PORT, 100, 0, SYN, 65535, mss=1000, wscale=2)
    conn = TcpConnection.accept(syn, bytes(4), bytes(4), mss=1000, iss=7, now=0.0,
                                limits=limits)  # fmt: skip
    conn.poll(0.0)
    conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 101, 8, ACK, 1000), 0.0)
    assert conn.state is TcpState.ESTABLISHED

    def seg(k: int) -> TcpSegment:  # 100 bytes of k at offset 100 k
        return TcpSegment(CLIENT_PORT, SERVER_PORT, 101 + 100 * k, 8, ACK, 1000,
                          bytes([k]) * 100)  # fmt: skip

    # Every other segment after the first, newest first: 10 separate holes; 8 are kept.
    for k in [*range(20, 0, -2), 4, 6]:
        conn.receive(seg(k), 0.0)
        assert conn.out_of_order <= 8
    assert conn.out_of_order == 8 and conn.out_of_order_bytes == 800
    acks = conn.poll(0.0)
    assert len(acks) >= 3 and all(s.ack == 101 for s in acks)  # one duplicate ACK each
    # Odd segments fill holes: runs merge (7 joins 6 and 8) and none is copied twice.
    conn.receive(seg(7), 0.0)
    assert conn.out_of_order == 7 and conn.out_of_order_bytes == 900
    conn.receive(seg(0), 0.0)
    assert conn.recv(1 << 20) == bytes(100)  # 1 is still missing
    for k in range(1, 21):
        conn.receive(seg(k), 0.0)
    assert conn.recv(1 << 20) == b"".join(bytes([k]) * 100 for k in range(1, 21))
    assert conn.out_of_order == 0 and conn.out_of_order_bytes == 0


def test_one_loss_keeps_the_rest_of_the_window_in_one_run() -> None:
    """After a single hole every later segment joins one run: a full window survives a
    loss however many segments it holds."""
    syn = TcpSegment(CLIENT_PORT, SERVER_PORT, 100, 0, SYN, 65535, mss=1000, wscale=2)
    conn = TcpConnection.accept(syn, bytes(4), bytes(4), mss=1000, iss=7, now=0.0)
    conn.poll(0.0)
    conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 101, 8, ACK, 1000), 0.0)
    data = random.Random(10).randbytes(200 * 1000)
    for k in range(1, 200):
        conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 101 + 1000 * k, 8, ACK, 1000,
                                data[1000 * k : 1000 * (k + 1)]), 0.0)  # fmt: skip
    assert conn.out_of_order == 1 and conn.out_of_order_bytes == 199_000
    conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 101, 8, ACK, 1000, data[:1000]), 0.0)
    assert conn.recv(1 << 20) == data


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


def test_congestion_window_grows_only_when_used_and_restarts_after_idle() -> None:
    sim = Sim()
    server = established(sim)[1]
    for _ in range(50):  # a trickle: one small write per round trip
        sim.client.send(b"x" * 100)
        assert sim.run(lambda: sim.client.unacked == 0)
    assert sim.client.cwnd <= 14600 + 1400  # not grown by ACKs of a trickle
    big = random.Random(9).randbytes(2 << 20)
    up = Pump(lambda: sim.client, lambda: sim.server, big, close=False)
    up.received += server.recv(1 << 20)
    up.received.clear()
    assert sim.run(up.done, app=up)
    grown = sim.client.cwnd
    assert grown > 14600 + 1400
    assert sim.run(lambda: sim.client.unacked == 0)
    sim.now += 30.0  # idle for a long while
    sim.client.send(b"y" * 200_000)
    sim.flush()
    burst = [s for t, to_server, s in sim.log if to_server and t == sim.now and s.payload]
    assert sum(len(s.payload) for s in burst) <= 14600  # the initial window again


def test_lost_acks_of_a_tail_are_repaired_by_a_probe_not_a_timeout() -> None:
    """Every ACK for the last flight is lost: a tail loss probe (RFC 8985 §7) gets
    the whole flight acknowledged long before the retransmission timeout."""
    sim = Sim()
    server = established(sim)[1]
    until = sim.now + 0.02  # the first ACK is lost (the RTT is 10 ms)

    def drop(seg: TcpSegment, to_server: bool) -> bool:
        return not to_server and sim.now < until

    sim.link.drop = drop
    sim.client.send(b"t" * 2800)  # two full segments: nothing waits for Nagle
    sim.flush()
    assert sim.run(lambda: sim.client.unacked == 0)
    assert server.recv() == b"t" * 2800
    assert sim.client.tail_probes == 1
    assert sim.client.timeouts == 0


def test_small_flight_loss_uses_limited_transmit_and_fast_retransmit() -> None:
    """With a two-segment window a loss yields one duplicate ACK; limited transmit
    (RFC 3042) sends new segments on the first two, so the third duplicate arrives
    and fast retransmit repairs the loss without a timeout."""
    sim = Sim(limits=TcpLimits(initial_window_segments=2))
    server = established(sim)[1]
    sim.client.send(b"warm-up")  # both ends now know each other's scaled window
    assert sim.run(lambda: sim.client.unacked == 0)
    assert server.recv() == b"warm-up" and sim.client.cwnd == 2800
    dropped: list[int] = []

    def drop_first_data(seg: TcpSegment, to_server: bool) -> bool:
        if to_server and seg.payload and not dropped:
            dropped.append(seg.seq)
            return True
        return False

    sim.link.drop = drop_first_data
    data = random.Random(11).randbytes(30_000)
    up = Pump(lambda: sim.client, lambda: server, data, close=False)
    assert sim.run(up.done, app=up)
    assert up.received == data
    assert dropped and sim.client.fast_retransmits == 1
    assert sim.client.timeouts == 0 and sim.client.tail_probes == 0
