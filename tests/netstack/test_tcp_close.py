"""Endings: FIN in every order, half-close, RST in every state (RFC 9293 §3.6, §3.10.7.4;
RFC 5961 §3 for RSTs inside the window)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from netstack.tcp_sim import CLIENT_PORT, SERVER_PORT, Link, Pump, Sim, client_in, established
from ztone.errors import LocalUsageError
from ztone.netstack.tcp import TcpConnection, TcpState
from ztone.netstack.tcp_segment import ACK, FIN, RST, SYN, TcpSegment


def test_simultaneous_close_goes_through_closing() -> None:
    sim, server = established()
    seen: dict[str, set[TcpState]] = {"client": set(), "server": set()}

    def watch(s: Sim) -> None:
        seen["client"].add(s.client.state)
        seen["server"].add(server.state)

    sim.client.shutdown()
    server.shutdown()
    sim.flush()  # both FINs are on the link before either arrives
    assert sim.run(lambda: sim.client.closed and server.closed, app=watch)
    assert TcpState.CLOSING in seen["client"] and TcpState.CLOSING in seen["server"]
    assert TcpState.TIME_WAIT in seen["client"] and TcpState.TIME_WAIT in seen["server"]
    assert sim.client.error is None and server.error is None
    assert sim.client.at_eof and server.at_eof


def test_half_close_keeps_the_other_direction_open() -> None:
    sim, server = established()
    request = random.Random(1).randbytes(100_000)
    reply = random.Random(2).randbytes(300_000)
    up = Pump(lambda: sim.client, lambda: sim.server, request)
    assert sim.run(up.done, app=up)  # the client's FIN arrived after all its bytes
    assert up.received == request
    assert sim.run(lambda: sim.client.state is TcpState.FIN_WAIT_2)
    assert sim.client.state is TcpState.FIN_WAIT_2 and server.state is TcpState.CLOSE_WAIT
    with pytest.raises(LocalUsageError):
        sim.client.send(b"more")
    down = Pump(lambda: sim.server, lambda: sim.client, reply)
    assert sim.run(down.done, app=down)
    assert down.received == reply
    assert sim.run(lambda: sim.client.closed and server.closed)
    assert sim.client.error is None and server.error is None


def test_lossy_close_in_both_orders() -> None:
    for first_client in (True, False):
        sim = Sim(link=Link(loss=0.3), seed=8)
        sim, server = established(sim)
        first, second = (sim.client, server) if first_client else (server, sim.client)
        first.shutdown()
        assert sim.run(lambda: second.at_eof)  # noqa: B023 (used at once)
        second.shutdown()
        assert sim.run(lambda: sim.client.closed and server.closed)  # noqa: B023
        assert sim.client.error is None and server.error is None


def test_retransmitted_fin_in_time_wait_is_acknowledged_again() -> None:
    sim, server = established()
    sim.client.shutdown()
    assert sim.run(lambda: server.state is TcpState.CLOSE_WAIT)
    server.shutdown()
    fin = next(s for s in server.poll(sim.now) if s.flags & FIN)
    sim.client.receive(fin, sim.now)
    assert sim.client.state is TcpState.TIME_WAIT
    first = sim.client.poll(sim.now)
    assert [s.flags for s in first] == [ACK]
    sim.now += 1.0
    sim.client.receive(fin, sim.now)  # the ACK was lost: the FIN comes again
    again = sim.client.poll(sim.now)
    assert [(s.flags, s.ack) for s in again] == [(ACK, first[0].ack)]
    deadline = sim.client.deadline()
    assert deadline is not None and deadline > sim.now
    sim.now = deadline
    sim.client.poll(sim.now)
    assert sim.client.closed and sim.client.error is None


SYNCHRONIZED = [TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2,
                TcpState.CLOSE_WAIT, TcpState.CLOSING, TcpState.LAST_ACK,
                TcpState.TIME_WAIT]  # fmt: skip
ERROR_AFTER_RST = {TcpState.ESTABLISHED: "connection reset",
                   TcpState.FIN_WAIT_1: "connection reset",
                   TcpState.FIN_WAIT_2: "connection reset",
                   TcpState.CLOSE_WAIT: "connection reset"}  # fmt: skip


def _rst(seq: int) -> TcpSegment:
    return TcpSegment(SERVER_PORT, CLIENT_PORT, seq & 0xFFFFFFFF, 0, RST, 0)


@pytest.mark.parametrize("state", SYNCHRONIZED, ids=lambda s: s.name)
def test_rst_at_rcv_nxt_closes(state: TcpState) -> None:
    sim, client = client_in(state)
    client.receive(_rst(client.rcv_nxt), sim.now)
    assert client.closed
    assert client.error == ERROR_AFTER_RST.get(state)
    assert client.deadline() is None
    assert [s for s in client.poll(sim.now + 10) if s.flags & (SYN | FIN)] == []


@pytest.mark.parametrize("state", SYNCHRONIZED, ids=lambda s: s.name)
def test_rst_inside_the_window_gets_a_challenge_ack(state: TcpState) -> None:
    sim, client = client_in(state)
    client.poll(sim.now)
    client.receive(_rst(client.rcv_nxt + 100), sim.now)
    assert client.state is state
    answer = client.poll(sim.now)
    assert [(s.flags & (ACK | RST), s.ack) for s in answer][-1:] == [(ACK, client.rcv_nxt)]


@pytest.mark.parametrize("state", SYNCHRONIZED, ids=lambda s: s.name)
def test_rst_outside_the_window_is_ignored(state: TcpState) -> None:
    sim, client = client_in(state)
    client.poll(sim.now)
    client.receive(_rst(client.rcv_nxt + 2**31), sim.now)
    client.receive(_rst(client.rcv_nxt - 1), sim.now)
    assert client.state is state
    assert [s for s in client.poll(sim.now) if s.ack == client.rcv_nxt and not s.payload
            and not s.flags & FIN] == []  # fmt: skip


def test_rst_in_syn_sent_needs_our_ack() -> None:
    sim, client = client_in(TcpState.SYN_SENT)
    client.receive(TcpSegment(SERVER_PORT, CLIENT_PORT, 0, 0, RST, 0), sim.now)
    assert client.state is TcpState.SYN_SENT  # no ACK: ignored
    client.receive(TcpSegment(SERVER_PORT, CLIENT_PORT, 0, 12345, RST | ACK, 0), sim.now)
    assert client.state is TcpState.SYN_SENT  # not our ISS + 1: ignored
    client.receive(TcpSegment(SERVER_PORT, CLIENT_PORT, 0, sim.client_iss + 1, RST | ACK, 0),
                   sim.now)  # fmt: skip
    assert client.closed and client.error == "connection refused"


def test_bad_ack_in_syn_sent_is_answered_with_rst() -> None:
    sim, client = client_in(TcpState.SYN_SENT)
    client.receive(TcpSegment(SERVER_PORT, CLIENT_PORT, 77, 999, SYN | ACK, 100), sim.now)
    assert client.state is TcpState.SYN_SENT
    assert [(s.flags, s.seq) for s in client.poll(sim.now)] == [(RST, 999)]


def test_rst_in_syn_received_and_bad_ack_there() -> None:
    syn = TcpSegment(CLIENT_PORT, SERVER_PORT, 500, 0, SYN, 65535, mss=1000)
    conn = TcpConnection.accept(syn, bytes(4), bytes(4), mss=1400, iss=9000, now=0.0)
    assert [s.flags for s in conn.poll(0.0)] == [SYN | ACK]
    # An ACK for something we never sent: RST <SEQ=SEG.ACK> (RFC 9293 §3.10.7.4 fifth).
    conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 501, 4242, ACK, 100), 0.1)
    assert [(s.flags, s.seq) for s in conn.poll(0.1)] == [(RST, 4242)]
    assert conn.state is TcpState.SYN_RECEIVED
    # Our SYN,ACK lost: the SYN again gets the SYN,ACK again.
    conn.receive(syn, 0.2)
    assert [s.flags for s in conn.poll(0.2)] == [SYN | ACK]
    conn.receive(TcpSegment(CLIENT_PORT, SERVER_PORT, 501, 0, RST, 0), 0.3)
    assert conn.closed and conn.error == "connection reset" and not conn.established


def test_syn_in_a_synchronized_state_gets_a_challenge_ack() -> None:
    sim, client = client_in(TcpState.ESTABLISHED)
    client.receive(TcpSegment(SERVER_PORT, CLIENT_PORT, client.rcv_nxt, 0, SYN, 100), sim.now)
    assert client.state is TcpState.ESTABLISHED
    assert [s.flags for s in client.poll(sim.now)] == [ACK]


@pytest.mark.parametrize("how", ["abort", "shutdown"])
@pytest.mark.parametrize("state", [TcpState.SYN_SENT, *SYNCHRONIZED], ids=lambda s: s.name)
def test_application_can_end_in_any_state(state: TcpState, how: str) -> None:
    sim, client = client_in(state)
    ending: Callable[[], None] = client.abort if how == "abort" else client.shutdown
    ending()
    ending()  # twice is harmless

    def peer_app(s: Sim) -> None:  # the server reads, and closes when the client did
        if s.server is not None:
            s.server.recv()
            if s.server.at_eof:
                s.server.shutdown()

    assert sim.run(lambda: client.closed and (sim.server is None or sim.server.closed),
                   app=peer_app, max_time=sim.now + 200)  # fmt: skip
    if how == "abort":
        with pytest.raises(LocalUsageError):
            client.send(b"x")
    assert client.deadline() is None


def test_time_wait_is_reusable_by_a_newer_syn_only() -> None:
    _, client = client_in(TcpState.TIME_WAIT)
    newer = TcpSegment(SERVER_PORT, CLIENT_PORT, client.rcv_nxt + 100_000, 0, SYN, 1000)
    older = TcpSegment(SERVER_PORT, CLIENT_PORT, client.rcv_nxt - 10, 0, SYN, 1000)
    assert client.reusable_by(newer)
    assert not client.reusable_by(older)
    _, established_client = client_in(TcpState.ESTABLISHED)
    assert not established_client.reusable_by(newer)


def test_data_with_an_ack_far_in_the_past_is_dropped() -> None:
    """RFC 5961 §5.2: in-window data whose ACK field is older than SND.UNA minus the
    largest window ever seen is a blind injection guess, not data."""
    sim, client = client_in(TcpState.ESTABLISHED)
    old_ack = (client.snd_una - 10_000_000) & 0xFFFFFFFF
    client.receive(TcpSegment(SERVER_PORT, CLIENT_PORT, client.rcv_nxt, old_ack, ACK, 100,
                              b"injected"), sim.now)  # fmt: skip
    assert client.readable == 0
    recent_ack = (client.snd_una - 10) & 0xFFFFFFFF
    client.receive(TcpSegment(SERVER_PORT, CLIENT_PORT, client.rcv_nxt, recent_ack, ACK, 100,
                              b"genuine"), sim.now)  # fmt: skip
    assert client.recv() == b"genuine"
