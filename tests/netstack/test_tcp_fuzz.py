"""Hostile segments in every state: receive() never raises, memory stays within the
limits, and after poll(now) nothing is due at ``now`` any more (no busy loop)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netstack.tcp_sim import CLIENT_PORT, SERVER_PORT, client_in
from ztone.netstack.tcp import TcpConnection, TcpState
from ztone.netstack.tcp_limits import TcpLimits
from ztone.netstack.tcp_segment import TcpSegment

STATES = [TcpState.SYN_SENT, TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2,
          TcpState.CLOSE_WAIT, TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT]  # fmt: skip
LIMITS = TcpLimits(send_buffer=8000, recv_buffer=6000, out_of_order_segments=4)


def _near(base: int) -> st.SearchStrategy[int]:
    """A 32-bit number near ``base`` most of the time (where the interesting cases are)."""
    return st.one_of(
        st.integers(-3000, 9000).map(lambda d: (base + d) & 0xFFFFFFFF),
        st.integers(0, 0xFFFFFFFF),
    )


@st.composite
def hostile(draw: st.DrawFn, conn: TcpConnection) -> TcpSegment:
    return TcpSegment(
        draw(st.sampled_from([SERVER_PORT, 1])), draw(st.sampled_from([CLIENT_PORT, 2])),
        draw(_near(conn.rcv_nxt)), draw(_near(conn.snd_una)), draw(st.integers(0, 0xFF)),
        draw(st.integers(0, 0xFFFF) | st.just(0)), draw(st.binary(max_size=2500)),
        draw(st.none() | st.integers(0, 0xFFFF)), draw(st.none() | st.integers(0, 14)),
        draw(st.booleans()),
    )  # fmt: skip


def _conn_in(state: TcpState) -> tuple[TcpConnection, float]:
    if state is TcpState.SYN_RECEIVED:
        syn = TcpSegment(CLIENT_PORT, SERVER_PORT, 77, 0, 0x02, 1000, mss=500, wscale=1)
        conn = TcpConnection.accept(syn, bytes(4), bytes(4), mss=1000, iss=2**32 - 5, now=0.0,
                                    limits=LIMITS)  # fmt: skip
        return conn, 0.0
    sim, conn = client_in(state, LIMITS)
    return conn, sim.now


def _check(conn: TcpConnection, now: float) -> None:
    assert conn.readable <= LIMITS.recv_buffer
    assert conn.unacked <= conn.limits.send_buffer + 1
    assert conn.out_of_order <= conn.limits.out_of_order_segments
    conn.poll(now)
    d = conn.deadline()
    assert d is None or d > now, (conn, d, now)
    if conn.closed:
        assert d is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([*STATES, TcpState.SYN_RECEIVED]), st.data())
def test_any_segments_in_any_state(state: TcpState, data: st.DataObject) -> None:
    conn, now = _conn_in(state)
    for _ in range(data.draw(st.integers(1, 12))):
        seg = data.draw(hostile(conn))
        now += data.draw(st.sampled_from([0.0, 0.001, 0.05, 0.3, 3.0]))
        conn.receive(seg, now)
        _check(conn, now)
        action = data.draw(st.sampled_from(["none", "recv", "send", "shutdown", "abort"]))
        if action == "recv":
            conn.recv(data.draw(st.integers(0, 5000)))
        elif action == "send" and conn.writable:
            conn.send(bytes(data.draw(st.integers(0, 3000))))
        elif action == "shutdown":
            conn.shutdown()
        elif action == "abort" and data.draw(st.integers(0, 9)) == 0:
            conn.abort()
        _check(conn, now)
    # Time runs on: every connection either keeps a timer or is done, and ends by
    # itself when the peer stays silent.
    for _ in range(200):
        d = conn.deadline()
        if d is None:
            break
        now = max(now, d)
        conn.poll(now)
    assert conn.deadline() is None
    assert conn.state in (TcpState.CLOSED, TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT,
                          TcpState.ESTABLISHED, TcpState.SYN_RECEIVED)  # fmt: skip
