"""Bulk transfers through the simulated link: lossy, reordering, duplicating, across the
sequence-number wrap. What arrives must be byte-identical; timing is never asserted."""

from __future__ import annotations

import random

import pytest

from netstack.tcp_sim import Link, Pump, Sim
from ztone.netstack.tcp import TcpConnection, TcpState
from ztone.netstack.tcp_limits import TcpLimits


def _data(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _both_ways(sim: Sim, up_len: int, down_len: int) -> tuple[Pump, Pump]:
    up = Pump(lambda: sim.client, lambda: sim.server, _data(up_len, 11))
    down = Pump(lambda: sim.server, lambda: sim.client, _data(down_len, 12))

    def app(s: Sim) -> None:
        up(s)
        down(s)

    assert sim.run(lambda: up.done() and down.done(), app=app), (sim.client, sim.server)
    return up, down


@pytest.mark.parametrize(("loss", "seed"), [(0.0, 1), (0.01, 2), (0.05, 3)])
def test_two_mib_both_ways_arrive_identical(loss: float, seed: int) -> None:
    link = Link(loss=loss, reorder=0.05 if loss else 0.0, dup=loss / 2)
    sim = Sim(link=link, seed=seed)
    up, down = _both_ways(sim, 2 << 20, 2 << 20)
    assert up.received == up.data
    assert down.received == down.data
    server = sim.server
    assert server is not None
    assert sim.run(lambda: sim.client.closed and server.closed)
    assert sim.client.error is None and server.error is None
    if loss:
        assert sim.dropped > 0


def test_four_mib_one_way_with_heavy_reordering() -> None:
    sim = Sim(link=Link(loss=0.01, reorder=0.3, reorder_delay=0.03), seed=9)
    up = Pump(lambda: sim.client, lambda: sim.server, _data(4 << 20, 5))
    assert sim.run(up.done, app=up)
    assert up.received == up.data


@pytest.mark.parametrize("loss", [0.0, 0.03])
def test_across_the_sequence_wrap(loss: float) -> None:
    sim = Sim(client_iss=2**32 - 3000, server_iss=2**32 - 1, link=Link(loss=loss), seed=4)
    up, down = _both_ways(sim, 1 << 20, 1 << 20)
    assert up.received == up.data and down.received == down.data
    assert sim.client.snd_una < 2**20 + 2  # it did wrap


def test_ipv6_without_window_scale_and_small_buffers() -> None:
    """A 60 KiB receive buffer needs no window scaling: both SYNs still work."""
    small = TcpLimits(send_buffer=16 * 1024, recv_buffer=60 * 1024)
    sim = Sim(v6=True, limits=small, link=Link(loss=0.02), seed=5)
    up, down = _both_ways(sim, 600_000, 300_000)
    assert up.received == up.data and down.received == down.data
    assert sim.log[0][2].wscale == 0


def test_peer_without_mss_option_gets_the_default() -> None:
    """A SYN without MSS means 536 (IPv4): the server's data segments are no larger."""
    sim = Sim(mss=1400)
    sim.client = TcpConnection.connect(sim.client_ip, 40000, sim.server_ip, 80, mss=1400,
                                       iss=1, now=0.0)  # fmt: skip
    syn = sim.client.poll(0.0)[0]
    syn.mss = None
    sim.transmit(syn, True)
    down = Pump(lambda: sim.server, lambda: sim.client, _data(20_000, 6))
    assert sim.run(down.done, app=down)
    assert down.received == down.data
    sizes = [len(s.payload) for _, to_server, s in sim.log if not to_server]
    assert max(sizes) == 536


def test_mss_is_the_smaller_of_both() -> None:
    sim = Sim(mss=1400)
    sim.server_limits = None
    sim.client = TcpConnection.connect(sim.client_ip, 40000, sim.server_ip, 80, mss=900,
                                       iss=1, now=0.0)  # fmt: skip
    up = Pump(lambda: sim.client, lambda: sim.server, _data(50_000, 7))
    down = Pump(lambda: sim.server, lambda: sim.client, _data(50_000, 8))

    def app(s: Sim) -> None:
        up(s)
        down(s)

    assert sim.run(lambda: up.done() and down.done(), app=app)
    assert max(len(s.payload) for _, _, s in sim.log) == 900


def test_nodelay_sends_small_writes_at_once() -> None:
    """With Nagle a second small write waits for the ACK of the first; with nodelay not."""
    for nodelay, expect_segments in ((False, 1), (True, 2)):
        sim = Sim()
        client = sim.client
        assert sim.run(lambda: client.established)  # noqa: B023 (used at once)
        client.nodelay = nodelay
        client.send(b"a")
        sim.flush()
        client.send(b"b")
        sim.flush()
        data_segments = [s for _, to_server, s in sim.log if to_server and s.payload]
        assert len(data_segments) == expect_segments
        server = sim.server
        assert server is not None
        assert sim.run(lambda: server.readable == 2)  # noqa: B023 (used at once)
        assert server.recv() == b"ab"
        assert server.state is TcpState.ESTABLISHED


@pytest.mark.parametrize("seed", range(24))
def test_random_links_limits_and_applications(seed: int) -> None:
    """Random link (loss up to 10%, reordering, duplication, delay), buffers, out-of-order
    bound, MSS, ISS, amounts each way, half-closes, and applications that stop reading
    for a while: every byte arrives in order and both ends close cleanly."""
    rng = random.Random(seed)
    link = Link(loss=rng.choice([0.0, 0.01, 0.05, 0.1]), reorder=rng.choice([0.0, 0.1, 0.4]),
                dup=rng.choice([0.0, 0.05]), delay=rng.choice([0.0001, 0.005, 0.05]))  # fmt: skip
    limits = TcpLimits(send_buffer=rng.choice([4096, 65536, 262144]),
                       recv_buffer=rng.choice([3000, 20000, 65536, 262144]),
                       out_of_order_segments=rng.choice([1, 4, 64]))  # fmt: skip
    sim = Sim(link=link, seed=seed, limits=limits, mss=rng.choice([100, 536, 1400, 8000]),
              client_iss=rng.randrange(2**32), server_iss=rng.randrange(2**32),
              wire=rng.random() < 0.3)  # fmt: skip
    up = Pump(lambda: sim.client, lambda: sim.server,
              rng.randbytes(rng.choice([0, 1, 1000, 300_000])))  # fmt: skip
    down = Pump(lambda: sim.server, lambda: sim.client,
                rng.randbytes(rng.choice([0, 1, 1000, 300_000])))  # fmt: skip
    stall = rng.random() < 0.3

    def app(s: Sim) -> None:
        if stall:
            up.read = down.read = s.now > 3.0
        up(s)
        down(s)

    assert sim.run(lambda: up.done() and down.done(), app=app, max_steps=300_000)
    assert up.received == up.data and down.received == down.data
    server = sim.server
    assert server is not None
    assert sim.run(lambda: sim.client.closed and server.closed, max_steps=100_000)
    assert sim.client.error is None and server.error is None
