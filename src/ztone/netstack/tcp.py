"""One TCP connection as an explicit, sans-IO state machine (RFC 9293).

A :class:`TcpConnection` never reads a clock, a random source or a socket: the stack
hands it segments (:meth:`TcpConnection.receive`) and the time, and collects what it
must send (:meth:`TcpConnection.poll`) and when to ask again
(:meth:`TcpConnection.deadline`). The application side is :meth:`send`,
:meth:`recv`, :meth:`shutdown` and :meth:`abort`.

What it implements, by RFC section:

- RFC 9293 §3.5 three-way handshake, both ways (and simultaneous open), MSS option
  (§3.7.1), sequence numbers modulo 2**32 (§3.4), the segment acceptability test and
  the per-state event processing of §3.10.7, FIN in every order (§3.6) with a
  TIME-WAIT bounded by :attr:`TcpLimits.time_wait` instead of 2 MSL.
- RFC 7323 §2 window scaling (offered with the smallest shift that fits the receive
  buffer; used only when both SYNs carried it).
- RFC 9293 §3.8.6 flow control: zero-window probing (persist timer, §3.8.6.1),
  silly-window avoidance on both sides (§3.8.6.2), Nagle (§3.7.4, ``nodelay``).
- RFC 9293 §3.8.6.3 / RFC 1122 delayed ACKs: at most ``delayed_ack`` seconds, an ACK
  at least every second segment, one immediate duplicate ACK per out-of-order segment
  (even when several arrive between two polls), an immediate ACK when a hole fills.
- RFC 6298 retransmission timer (SRTT/RTTVAR, Karn's rule, exponential backoff).
- RFC 5681 slow start (counting every byte acknowledged: a stack that polls once per
  batch of frames sends stretch ACKs) and congestion avoidance (byte counting), the
  window grown only while used and restarted after an idle RTO (§4.1), fast
  retransmit on the third duplicate ACK, RFC 3042 limited transmit, RFC 6582 NewReno
  fast recovery, RFC 6928 initial window, and RFC 8985 §7's tail loss probe.
- RFC 5961 §3-§5: a RST or SYN inside the window but not exactly at RCV.NXT gets a
  challenge ACK instead of resetting the connection; data whose ACK is older than the
  largest window is dropped; answers to empty out-of-window segments are rate-limited.

Not implemented: SACK (RFC 2018; SACK-permitted is parsed, never offered), RFC 7323
timestamps (parsed, never offered), keep-alives, urgent data (URG data is ordinary
data), ECN. Memory per connection is bounded by :class:`TcpLimits`: the send buffer,
the receive buffer (the advertised window never exceeds its free space), the bytes
kept past holes (inside the window, in at most ``out_of_order_segments`` runs) and a
few queued replies. The hot paths (the next in-order segment, a burst of full-sized
segments) skip the general per-segment decisions that cannot change between them.
"""

from __future__ import annotations

import enum

from ztone.errors import LocalUsageError
from ztone.netstack.tcp_limits import TcpLimits
from ztone.netstack.tcp_segment import ACK, FIN, PSH, RST, SYN, TcpSegment

MASK = 0xFFFFFFFF
_HALF = 0x7FFFFFFF
_MAX_REPLIES = 8
"""Queued RSTs/challenge ACKs not yet polled: more are dropped (RFC 5961 §7 rate limit)."""
_MIN_MSS = 64
"""A peer announcing a smaller MSS is taken at this (a zero MSS would never send)."""
_MAX_CWND = 1 << 30
_RTT_GRANULARITY = 0.001


class TcpState(enum.Enum):
    """RFC 9293 §3.3.2 connection states."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"

    # Enum's own __hash__ is Python code; states are looked up in sets per segment.
    __hash__ = object.__hash__


CLOSED = TcpState.CLOSED
LISTEN = TcpState.LISTEN
SYN_SENT = TcpState.SYN_SENT
SYN_RECEIVED = TcpState.SYN_RECEIVED
ESTABLISHED = TcpState.ESTABLISHED
FIN_WAIT_1 = TcpState.FIN_WAIT_1
FIN_WAIT_2 = TcpState.FIN_WAIT_2
CLOSE_WAIT = TcpState.CLOSE_WAIT
CLOSING = TcpState.CLOSING
LAST_ACK = TcpState.LAST_ACK
TIME_WAIT = TcpState.TIME_WAIT

_SENDING = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK})
"""States in which data or our FIN may still be (re)transmitted."""
_RECEIVING = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
"""States in which the peer's data and FIN are taken (RFC 9293 §3.10.7.4, seventh)."""
_APP_SEND = frozenset({SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT})


DEFAULT_LIMITS = TcpLimits()
"""The limits of a connection made without any (frozen, so shared)."""


def _default_peer_mss(ip: bytes) -> int:
    """RFC 9293 §3.7.1 / RFC 8200 §5: the MSS to assume without the option."""
    return 536 if len(ip) == 4 else 1220


def _wscale_for(buffer: int) -> int:
    shift = 0
    while shift < 14 and buffer >> shift > 0xFFFF:
        shift += 1
    return shift


class _Run:
    """Received bytes kept past a hole: ``data`` starts at sequence number ``seq``;
    ``fin`` when the peer's FIN follows its last byte."""

    __slots__ = ("data", "fin", "seq")

    def __init__(self, seq: int, data: bytearray, fin: bool) -> None:
        self.seq = seq
        self.data = data
        self.fin = fin


class TcpConnection:
    """One connection's state machine. Build with :meth:`connect` or :meth:`accept`."""

    __slots__ = (
        "_aborted",
        "_ack_deadline",
        "_ack_now",
        "_backoff",
        "_ca_acc",
        "_cwnd",
        "_dupacks",
        "_error",
        "_established",
        "_fast_rexmit",
        "_fin_queued",
        "_fin_received",
        "_in_recovery",
        "_irs",
        "_iss",
        "_last_now",
        "_last_send",
        "_last_unacceptable_ack",
        "_max_snd_wnd",
        "_mss",
        "_offer_wscale",
        "_ooo",
        "_ooo_bytes",
        "_persist_backoff",
        "_persist_deadline",
        "_rbuf",
        "_rcv_adv",
        "_rcv_buffer",
        "_rcv_nxt",
        "_rcv_shift",
        "_recover",
        "_replies",
        "_retries",
        "_rst_pending",
        "_rto",
        "_rto_deadline",
        "_rtt_seq",
        "_rtt_time",
        "_rttvar",
        "_sbuf",
        "_sbuf_seq",
        "_segs_unacked",
        "_smss",
        "_snd_max",
        "_snd_nxt",
        "_snd_shift",
        "_snd_una",
        "_snd_wl1",
        "_snd_wl2",
        "_snd_wnd",
        "_srtt",
        "_ssthresh",
        "_sws_step",
        "_syn_pending",
        "_timewait_deadline",
        "_tlp_deadline",
        "_tlp_sent",
        "_wscale_ok",
        "fast_retransmits",
        "limits",
        "local_ip",
        "local_port",
        "nodelay",
        "remote_ip",
        "remote_port",
        "state",
        "tail_probes",
        "timeouts",
        "window_probes",
    )

    def __init__(
        self,
        local_ip: bytes,
        local_port: int,
        remote_ip: bytes,
        remote_port: int,
        *,
        mss: int,
        iss: int,
        now: float,
        limits: TcpLimits,
    ) -> None:
        if mss < _MIN_MSS or mss > 0xFFFF:
            raise LocalUsageError(f"TCP MSS {mss} outside {_MIN_MSS}..65535")
        if len(local_ip) != len(remote_ip) or len(local_ip) not in (4, 16):
            raise LocalUsageError("TCP endpoints need two IPv4 or two IPv6 addresses")
        self.local_ip = local_ip
        self.local_port = local_port
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self.limits = limits
        self.state = CLOSED
        self.nodelay = False
        """True turns Nagle's algorithm off (small segments go out at once)."""
        self.timeouts = 0
        """Retransmission timeouts so far (counters for metrics and tests)."""
        self.fast_retransmits = 0
        self.window_probes = 0
        self.tail_probes = 0
        iss &= MASK
        self._iss = iss
        self._irs = 0
        self._mss = mss
        self._smss = min(mss, _default_peer_mss(remote_ip))
        self._offer_wscale = _wscale_for(limits.recv_buffer)
        self._snd_shift = 0
        self._rcv_shift = 0
        self._wscale_ok = False
        # Send side: the SYN takes iss; data starts at iss + 1.
        self._snd_una = iss
        self._snd_nxt = (iss + 1) & MASK
        self._snd_max = self._snd_nxt
        self._snd_wnd = 0
        self._max_snd_wnd = 0
        self._snd_wl1 = 0
        self._snd_wl2 = 0
        self._sbuf = bytearray()
        self._sbuf_seq = self._snd_nxt
        self._fin_queued = False
        # Receive side.
        self._rcv_nxt = 0
        self._rcv_adv = 0
        self._rbuf = bytearray()
        self._rcv_buffer = limits.recv_buffer
        self._sws_step = min(limits.recv_buffer // 2, mss)
        """Receiver SWS avoidance: the right edge moves by at least this much."""
        self._ooo: list[_Run] = []
        self._ooo_bytes = 0
        self._fin_received = False
        # Congestion control (RFC 5681, 6582).
        self._cwnd = mss
        self._ssthresh = _MAX_CWND
        self._ca_acc = 0
        self._dupacks = 0
        self._in_recovery = False
        self._recover = iss
        self._fast_rexmit = False
        # Timers (RFC 6298).
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = limits.initial_rto
        self._backoff = 0
        self._retries = 0
        self._rtt_seq: int | None = None
        self._rtt_time = 0.0
        self._rto_deadline: float | None = None
        self._persist_deadline: float | None = None
        self._persist_backoff = 0
        self._ack_deadline: float | None = None
        self._ack_now = False
        self._segs_unacked = 0
        self._timewait_deadline: float | None = None
        self._tlp_deadline: float | None = None
        self._tlp_sent = False
        self._last_unacceptable_ack = -1e18
        self._last_send = now
        # Control.
        self._syn_pending = True
        self._rst_pending = False
        self._replies: list[TcpSegment] = []
        self._aborted = False
        self._established = False
        self._error: str | None = None
        self._last_now = now

    # ---------------------------------------------------------------- construction

    @classmethod
    def connect(
        cls,
        local_ip: bytes,
        local_port: int,
        remote_ip: bytes,
        remote_port: int,
        *,
        mss: int,
        iss: int,
        now: float,
        limits: TcpLimits = DEFAULT_LIMITS,
    ) -> TcpConnection:
        """Active open: SYN-SENT; the first :meth:`poll` returns the SYN."""
        conn = cls(
            local_ip, local_port, remote_ip, remote_port, mss=mss, iss=iss, now=now, limits=limits
        )
        conn.state = SYN_SENT
        return conn

    @classmethod
    def accept(
        cls,
        syn: TcpSegment,
        local_ip: bytes,
        remote_ip: bytes,
        *,
        mss: int,
        iss: int,
        now: float,
        limits: TcpLimits = DEFAULT_LIMITS,
    ) -> TcpConnection:
        """Passive open from a SYN that reached a listener: SYN-RECEIVED; the first
        :meth:`poll` returns the SYN,ACK. Data on the SYN is not taken (the peer sends it
        again once the handshake completes)."""
        if syn.flags & (SYN | ACK | RST) != SYN:
            raise LocalUsageError("accept() needs a SYN without ACK or RST")
        conn = cls(
            local_ip,
            syn.dst_port,
            remote_ip,
            syn.src_port,
            mss=mss,
            iss=iss,
            now=now,
            limits=limits,
        )
        conn.state = SYN_RECEIVED
        conn._take_syn(syn)
        return conn

    def _take_syn(self, syn: TcpSegment) -> None:
        """Record the peer's SYN: IRS, its MSS and window scale, its (unscaled) window."""
        self._irs = syn.seq & MASK
        self._rcv_nxt = (self._irs + 1) & MASK
        self._rcv_adv = (self._rcv_nxt + min(self.limits.recv_buffer, 0xFFFF)) & MASK
        peer_mss = syn.mss if syn.mss is not None else _default_peer_mss(self.remote_ip)
        self._smss = max(_MIN_MSS, min(self._mss, peer_mss))
        self._wscale_ok = syn.wscale is not None
        if syn.wscale is not None:
            self._snd_shift = min(max(syn.wscale, 0), 14)
            self._rcv_shift = self._offer_wscale
        else:
            self._snd_shift = self._rcv_shift = 0
        self._set_snd_wnd(syn.window & 0xFFFF)
        self._snd_wl1 = self._irs
        self._snd_wl2 = self._snd_una

    # ---------------------------------------------------------------- properties

    @property
    def readable(self) -> int:
        """Bytes buffered for :meth:`recv`."""
        return len(self._rbuf)

    @property
    def writable(self) -> int:
        """Free send-buffer space (0 when the connection can no longer send)."""
        if self._fin_queued or self._aborted or self.state not in _APP_SEND:
            return 0
        return max(0, self.limits.send_buffer - len(self._sbuf))

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and every byte before it was read."""
        return self._fin_received and not self._rbuf

    @property
    def established(self) -> bool:
        """The handshake completed (and the connection is not CLOSED yet)."""
        return self._established and self.state is not CLOSED

    @property
    def closed(self) -> bool:
        """CLOSED (or TIME-WAIT over): the stack may forget the connection."""
        return self.state is CLOSED

    @property
    def opening(self) -> bool:
        """SYN-SENT: an active open not answered yet."""
        return self.state is SYN_SENT

    @property
    def time_waiting(self) -> bool:
        """TIME-WAIT: closed both ways, lingering for late segments."""
        return self.state is TIME_WAIT

    @property
    def error(self) -> str | None:
        """ "connection refused", "connection reset" or "timed out"; else None."""
        return self._error

    @property
    def unacked(self) -> int:
        """Bytes sent and not yet acknowledged, plus bytes not sent yet."""
        return len(self._sbuf)

    @property
    def snd_una(self) -> int:
        """Oldest unacknowledged sequence number (RFC 9293 §3.3.1)."""
        return self._snd_una

    @property
    def snd_nxt(self) -> int:
        """Next sequence number to send."""
        return self._snd_nxt

    @property
    def rcv_nxt(self) -> int:
        """Next sequence number expected from the peer."""
        return self._rcv_nxt

    @property
    def cwnd(self) -> int:
        """Congestion window in bytes (RFC 5681)."""
        return self._cwnd

    @property
    def snd_wnd(self) -> int:
        """The peer's advertised window in bytes (scaled)."""
        return self._snd_wnd

    @property
    def rto(self) -> float:
        """The current retransmission timeout without backoff (RFC 6298)."""
        return self._rto

    @property
    def out_of_order(self) -> int:
        """Runs of bytes kept beyond holes in the received data."""
        return len(self._ooo)

    @property
    def out_of_order_bytes(self) -> int:
        """Bytes kept beyond holes (within the advertised window)."""
        return self._ooo_bytes

    def reusable_by(self, syn: TcpSegment) -> bool:
        """True when ``syn``, a new SYN for this connection's 4-tuple, may replace it: the
        connection is in TIME-WAIT and the SYN's sequence number is past everything the
        old one received (RFC 9293 §3.6.1, RFC 1122 §4.2.2.13). The stack then forgets
        this connection and accepts the SYN as a new one; otherwise the SYN goes to
        :meth:`receive` (a challenge ACK)."""
        return (
            self.state is TIME_WAIT
            and syn.flags & (SYN | ACK | RST) == SYN
            and 0 < (syn.seq - self._rcv_nxt) & MASK <= _HALF
        )

    def __repr__(self) -> str:
        return (
            f"<TcpConnection {self.local_port}>{self.remote_port} {self.state.name} "
            f"una={self._snd_una} nxt={self._snd_nxt} rcv_nxt={self._rcv_nxt} "
            f"cwnd={self._cwnd} wnd={self._snd_wnd}>"
        )

    # ---------------------------------------------------------------- application side

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Take as much of ``data`` as the send buffer holds; the count taken (0 if full).

        Raises :class:`LocalUsageError` after :meth:`shutdown` or :meth:`abort`, or when
        the connection is closed or closing.
        """
        if self._fin_queued or self._aborted:
            raise LocalUsageError("send() after shutdown() or abort()")
        if self.state not in _APP_SEND:
            raise LocalUsageError(f"send() on a TCP connection in {self.state.name}")
        room = self.limits.send_buffer - len(self._sbuf)
        with memoryview(data) as view, view.cast("B") as octets:
            n = min(room, len(octets))
            if n > 0:
                self._sbuf += octets[:n] if n < len(octets) else octets
        return max(n, 0)

    def recv(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` buffered bytes (b"" when none); may queue a window update."""
        rbuf = self._rbuf
        n = min(limit, len(rbuf))
        if n <= 0:
            return b""
        if n == len(rbuf):
            data = bytes(rbuf)
            rbuf.clear()
        else:
            with memoryview(rbuf) as view:
                data = bytes(view[:n])
            del rbuf[:n]
        if self.state in _RECEIVING and not self._fin_received:
            # Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): tell the peer at once only when
            # the window it knows is getting small and can now grow by a useful amount.
            buffer = self._rcv_buffer
            adv = (self._rcv_adv - self._rcv_nxt) & MASK
            free = buffer - len(rbuf)
            if adv < buffer // 2 and free - adv >= self._sws_step:
                self._ack_now = True
        return data

    def shutdown(self) -> None:
        """No more sends: a FIN goes after the buffered data (half-close)."""
        if self._fin_queued or self._aborted:
            return
        st = self.state
        if st in (SYN_SENT, SYN_RECEIVED):
            self._fin_queued = True  # FIN-WAIT-1 once the handshake completes
        elif st is ESTABLISHED:
            self._fin_queued = True
            self.state = FIN_WAIT_1
        elif st is CLOSE_WAIT:
            self._fin_queued = True
            self.state = LAST_ACK

    def abort(self) -> None:
        """Drop the connection: a RST at the next :meth:`poll` (when synchronized), then
        CLOSED. Buffered data in both directions is discarded."""
        if self._aborted:
            return
        self._aborted = True
        self._sbuf.clear()
        self._rbuf.clear()
        self._drop_ooo()
        if self.state in (
            ESTABLISHED,
            FIN_WAIT_1,
            FIN_WAIT_2,
            CLOSE_WAIT,
            SYN_RECEIVED,
            CLOSING,
            LAST_ACK,
        ):
            self._rst_pending = True
        else:
            self._close()

    # ---------------------------------------------------------------- timers

    def deadline(self) -> float | None:
        """The latest time :meth:`poll` must be called again; None when nothing is
        pending. A time not later than the last one seen means "now"."""
        if self._replies:
            return self._last_now
        if self.state is CLOSED:
            return None
        if (
            self._replies
            or self._rst_pending
            or self._syn_pending
            or self._ack_now
            or self._fast_rexmit
            or self._next_segment_size() >= 0
        ):
            return self._last_now
        best: float | None = None
        for t in (
            self._rto_deadline,
            self._persist_deadline,
            self._ack_deadline,
            self._timewait_deadline,
            self._tlp_deadline,
        ):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def _timeout(self) -> float:
        return min(self._rto * (1 << min(self._backoff, 16)), self.limits.max_rto)

    def _rtt_sample(self, r: float) -> None:
        """RFC 6298 §2.2/2.3."""
        r = max(r, 0.0)
        if self._srtt is None:
            self._srtt = r
            self._rttvar = r / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - r)
            self._srtt = 0.875 * self._srtt + 0.125 * r
        lim = self.limits
        rto = self._srtt + max(_RTT_GRANULARITY, 4 * self._rttvar)
        self._rto = min(max(rto, lim.min_rto), lim.max_rto)

    # ---------------------------------------------------------------- output

    def poll(self, now: float) -> list[TcpSegment]:
        """Everything due at ``now``: replies, RST, SYN, data, FIN, retransmissions,
        window probes, ACKs."""
        self._last_now = now
        out: list[TcpSegment] = []
        if self._replies:
            out.extend(self._replies)
            self._replies.clear()
        st = self.state
        if st is CLOSED:
            return out
        if self._rst_pending:
            out.append(TcpSegment(self.local_port, self.remote_port, self._snd_nxt, 0, RST, 0))
            self._close()
            return out
        if (
            st is TIME_WAIT
            and self._timewait_deadline is not None
            and now >= self._timewait_deadline
        ):
            self._close()
            return out
        if self._rto_deadline is not None and now >= self._rto_deadline:
            self._on_rto(now)
            if self.state is CLOSED:
                return out
        if self._persist_deadline is not None and now >= self._persist_deadline:
            self._on_persist(now, out)
            if self.state is CLOSED:
                return out
        if self._tlp_deadline is not None and now >= self._tlp_deadline:
            self._tail_loss_probe(out)
        if self._syn_pending:
            self._send_syn(now, out)
        elif self.state in _SENDING:
            self._output(now, out)
        self._fast_rexmit = False
        if self._ack_now or (self._ack_deadline is not None and now >= self._ack_deadline):
            # A pure ACK carries the highest sequence number sent, not SND.NXT: after a
            # timeout SND.NXT goes back, and an ACK numbered behind the peer's RCV.NXT
            # could be dropped as an old duplicate.
            out.append(self._segment(ACK, self._ack_seq()))
        self._arm_timers(now)
        return out

    def _segment(self, flags: int, seq: int, payload: bytes = b"") -> TcpSegment:
        """A segment to the peer; one with ACK carries RCV.NXT and the current window,
        and clears any ACK owed."""
        if flags & ACK:
            self._ack_now = False
            self._ack_deadline = None
            self._segs_unacked = 0
            return TcpSegment(
                self.local_port,
                self.remote_port,
                seq,
                self._rcv_nxt,
                flags,
                self._window_field(),
                payload,
            )
        return TcpSegment(self.local_port, self.remote_port, seq, 0, flags, 0, payload)

    def _ack_seq(self) -> int:
        """The highest sequence number sent, or the right edge of the peer's window if
        that is smaller (a probe byte past a closed window is not yet in sequence)."""
        edge = (self._snd_una + self._snd_wnd) & MASK
        if 0 < (self._snd_max - edge) & MASK <= _HALF:
            return edge
        return self._snd_max

    def _window_field(self) -> int:
        """The window to advertise (scaled field), moving the advertised right edge only
        by useful amounts (RFC 9293 §3.8.6.2.2) and never to the left."""
        free = self._rcv_buffer - len(self._rbuf)
        rcv_nxt = self._rcv_nxt
        adv = (self._rcv_adv - rcv_nxt) & MASK
        if adv > _HALF:
            adv = 0
        wnd = free if free - adv >= self._sws_step else adv
        shift = self._rcv_shift
        field = min(wnd >> shift, 0xFFFF)
        edge = (rcv_nxt + (field << shift)) & MASK
        if (edge - self._rcv_adv) & MASK <= _HALF:
            self._rcv_adv = edge
        return field

    def _send_syn(self, now: float, out: list[TcpSegment]) -> None:
        passive = self.state is SYN_RECEIVED
        # RFC 7323 §1.3: offered on a SYN; on a SYN,ACK only if the SYN offered it.
        wscale = self._offer_wscale if not passive or self._wscale_ok else None
        window = min(self.limits.recv_buffer, 0xFFFF)
        seg = TcpSegment(
            self.local_port,
            self.remote_port,
            self._iss,
            self._rcv_nxt if passive else 0,
            SYN | ACK if passive else SYN,
            window,
            mss=self._mss,
            wscale=wscale,
        )
        if passive:
            self._ack_now = False
            self._ack_deadline = None
        self._syn_pending = False
        if self._retries == 0 and self._rtt_seq is None:
            self._rtt_seq = self._snd_nxt
            self._rtt_time = now
        if self._rto_deadline is None:
            self._rto_deadline = now + self._timeout()
        out.append(seg)

    def _next_segment_size(self) -> int:
        """Size of the next data segment :meth:`_output` would send now: -1 for none,
        0 for a lone FIN, else the payload length (RFC 9293 §3.8.6.2.1, §3.7.4)."""
        if self.state not in _SENDING or self._syn_pending or self._rst_pending:
            return -1
        off = (self._snd_nxt - self._sbuf_seq) & MASK
        unsent = len(self._sbuf) - off
        if unsent < 0 or off > _HALF:
            return -1  # our FIN is out already
        if unsent == 0:
            return 0 if self._fin_queued else -1
        flight = (self._snd_nxt - self._snd_una) & MASK
        wnd_room = self._snd_wnd - flight
        cwnd_room = self._cwnd + self._limited_transmit() - flight
        usable = min(wnd_room, cwnd_room)
        if usable <= 0:
            return -1
        smss = self._smss
        n = min(smss, unsent, usable)
        if n < smss and flight:
            if n < unsent:
                if cwnd_room < wnd_room or n < self._max_snd_wnd // 2:
                    # Congestion-limited: the next ACK opens a full segment; or sender
                    # SWS avoidance (RFC 9293 §3.8.6.2.1): wait for a useful window.
                    return -1
            elif not self.nodelay and not self._fin_queued:
                return -1  # Nagle: a small segment waits for the ACK of what is out
        return n

    def _output(self, now: float, out: list[TcpSegment]) -> None:
        if (
            self._snd_max == self._snd_una
            and now - self._last_send > self._rto
            and self._cwnd > self._initial_window()
        ):
            # RFC 5681 §4.1: after an idle RTO the path's state is stale; start again
            # from the initial window instead of sending a whole old window at once.
            self._cwnd = self._initial_window()
        if self._fast_rexmit:
            self._fast_rexmit = False
            self._retransmit_first(out)
        sent_before = len(out)
        self._burst(now, out)
        sbuf = self._sbuf
        while True:
            n = self._next_segment_size()
            if n < 0:
                break
            seq = self._snd_nxt
            off = (seq - self._sbuf_seq) & MASK
            last = off + n == len(sbuf)
            flags = ACK
            if n:
                with memoryview(sbuf) as view:
                    payload = bytes(view[off : off + n])
                if last:
                    flags |= PSH
            else:
                payload = b""
            if last and self._fin_queued:
                flags |= FIN
            out.append(self._segment(flags, seq, payload))
            nxt = (seq + n + (1 if flags & FIN else 0)) & MASK
            if seq == self._snd_max and self._rtt_seq is None:
                self._rtt_seq = nxt
                self._rtt_time = now
            self._snd_nxt = nxt
            if (nxt - self._snd_max) & MASK <= _HALF:
                self._snd_max = nxt
            if self._rto_deadline is None:
                self._rto_deadline = now + self._timeout()
            if flags & FIN:
                break
        if len(out) > sent_before:
            self._last_send = now
            if not self._tlp_sent:
                self._tlp_deadline = None  # restarted from now by _arm_timers

    def _limited_transmit(self) -> int:
        """RFC 3042: on the first two duplicate ACKs one new segment each may go past
        the congestion window, so that a small flight still yields three duplicates."""
        dupacks = self._dupacks
        if 0 < dupacks < 3 and not self._in_recovery:
            return dupacks * self._smss
        return 0

    def _burst(self, now: float, out: list[TcpSegment]) -> None:
        """Every full-sized segment the windows allow at once, short of the buffer's
        last byte (that one, PSH, FIN and the small-segment rules stay with the general
        loop of :meth:`_output`): the bulk-transfer path, without re-deciding per
        segment what cannot change between them."""
        smss = self._smss
        seq = self._snd_nxt
        off = (seq - self._sbuf_seq) & MASK
        sbuf = self._sbuf
        unsent = len(sbuf) - off
        if unsent <= smss or off > _HALF:
            return
        flight = (seq - self._snd_una) & MASK
        usable = min(self._snd_wnd, self._cwnd + self._limited_transmit()) - flight
        count = min(usable, unsent - 1) // smss
        if count <= 0:
            return
        if seq == self._snd_max and self._rtt_seq is None:
            self._rtt_seq = (seq + smss) & MASK
            self._rtt_time = now
        window = self._window_field()
        ack = self._rcv_nxt
        self._ack_now = False
        self._ack_deadline = None
        self._segs_unacked = 0
        lp, rp = self.local_port, self.remote_port
        with memoryview(sbuf) as view:
            for _ in range(count):
                end = off + smss
                out.append(TcpSegment(lp, rp, seq, ack, ACK, window, bytes(view[off:end])))
                off = end
                seq = (seq + smss) & MASK
        self._snd_nxt = seq
        if (seq - self._snd_max) & MASK <= _HALF:
            self._snd_max = seq
        if self._rto_deadline is None:
            self._rto_deadline = now + self._timeout()

    def _retransmit_first(self, out: list[TcpSegment]) -> None:
        """Send again the first unacknowledged segment (fast retransmit, RFC 5681 §3.2)."""
        una = self._snd_una
        outstanding = (self._snd_max - una) & MASK
        if outstanding == 0:
            return
        data_len = len(self._sbuf) if self._sbuf_seq == una else 0
        n = min(self._smss, data_len, outstanding)
        with memoryview(self._sbuf) as view:
            payload = bytes(view[:n])
        flags = ACK
        if self._fin_queued and n == data_len and outstanding == n + 1:
            flags |= FIN
        self._rtt_seq = None  # Karn: no sample from a retransmitted segment
        self.fast_retransmits += 1
        out.append(self._segment(flags, una, payload))

    def _on_rto(self, now: float) -> None:
        """The retransmission timer expired (RFC 6298 §5.4-5.6, RFC 5681 §3.1)."""
        self._rto_deadline = None
        self._tlp_deadline = None
        self._tlp_sent = True  # no probe while going back over the flight
        self._retries += 1
        self.timeouts += 1
        synced = self.state not in (SYN_SENT, SYN_RECEIVED)
        limit = self.limits.max_retransmissions if synced else self.limits.syn_retransmissions
        if self._retries > limit:
            self._fail("timed out")
            return
        self._backoff += 1
        self._rtt_seq = None
        if not synced:
            self._syn_pending = True
        else:
            if self._retries == 1:
                flight = (self._snd_max - self._snd_una) & MASK
                self._ssthresh = max(flight // 2, 2 * self._smss)
            self._cwnd = self._smss
            self._ca_acc = 0
            self._dupacks = 0
            self._in_recovery = False
            self._recover = self._snd_max
            self._snd_nxt = self._snd_una  # go back: resend from the first lost byte
        self._rto_deadline = now + self._timeout()

    def _on_persist(self, now: float, out: list[TcpSegment]) -> None:
        """Zero-window probe (RFC 9293 §3.8.6.1): one byte at SND.UNA past the window."""
        self._persist_deadline = None
        if self._snd_wnd or not self._sbuf or self.state not in _SENDING:
            return
        self._retries += 1
        if self._retries > self.limits.max_retransmissions:
            self._fail("timed out")
            return
        self.window_probes += 1
        una = self._snd_una
        out.append(self._segment(ACK, una, bytes(self._sbuf[:1])))
        nxt = (una + 1) & MASK
        if (nxt - self._snd_nxt) & MASK <= _HALF:
            self._snd_nxt = nxt
        if (nxt - self._snd_max) & MASK <= _HALF:
            self._snd_max = nxt
        self._persist_backoff += 1
        self._persist_deadline = now + min(
            self._rto * (1 << min(self._persist_backoff, 16)), self.limits.max_rto
        )

    def _arm_timers(self, now: float) -> None:
        """RTO while anything is unacknowledged, except in persist mode (zero window,
        at most the probe byte out) where the persist timer runs instead."""
        st = self.state
        if st in (CLOSED, TIME_WAIT):
            return
        # Persist mode looks at SND.NXT, not the highest byte sent: after a timeout went
        # back to SND.UNA, bytes the peer dropped past its closed window are probed for
        # one at a time instead of timing out unanswered.
        if (
            self._snd_wnd == 0
            and self._sbuf
            and (self._snd_nxt - self._snd_una) & MASK <= 1
            and st in _SENDING
            and self._sbuf_seq == self._snd_una
        ):
            self._rto_deadline = None
            self._tlp_deadline = None  # the persist timer probes instead
            if self._persist_deadline is None:
                self._persist_deadline = now + min(
                    self._rto * (1 << min(self._persist_backoff, 16)), self.limits.max_rto
                )
            return
        self._persist_deadline = None
        self._persist_backoff = 0
        if st in (SYN_SENT, SYN_RECEIVED):
            return
        if self._snd_max == self._snd_una:
            self._rto_deadline = None
            self._tlp_deadline = None
            return
        if self._rto_deadline is None:
            self._rto_deadline = now + self._timeout()
        srtt = self._srtt
        if (
            self._tlp_deadline is None
            and not self._tlp_sent
            and srtt is not None
            and not self._in_recovery
            and self._snd_nxt == self._snd_max
            and st in _SENDING
        ):
            # RFC 8985 §7.2: the probe timeout is two round trips, plus the peer's
            # delayed-ACK time when only one segment is out; never after the RTO.
            pto = max(2 * srtt, 0.01)
            if (self._snd_max - self._snd_una) & MASK <= self._smss:
                pto += self.limits.delayed_ack + 0.01
            if now + pto < self._rto_deadline:
                self._tlp_deadline = now + pto

    def _tail_loss_probe(self, out: list[TcpSegment]) -> None:
        """RFC 8985 §7.3, simplified: nothing was acknowledged for two round trips, so the
        tail of the flight, or every ACK for it, may be lost. Send the last segment
        again (with our FIN if it is out): its ACK either acknowledges everything or,
        as a duplicate ACK, starts the usual recovery; far sooner than the RTO. One
        probe per flight; it changes no window."""
        self._tlp_deadline = None
        self._tlp_sent = True
        if self.state not in _SENDING or self._snd_nxt != self._snd_max:
            return
        fin = self._fin_sent()
        sent_end = ((self._snd_max - self._sbuf_seq) & MASK) - (1 if fin else 0)
        if sent_end > len(self._sbuf) or sent_end > _HALF:
            return
        start = max(0, sent_end - self._smss)
        if start == sent_end and not fin:
            return
        with memoryview(self._sbuf) as view:
            payload = bytes(view[start:sent_end])
        flags = ACK | PSH | (FIN if fin else 0)
        self._rtt_seq = None  # Karn: no sample from a segment sent twice
        self.tail_probes += 1
        out.append(self._segment(flags, (self._sbuf_seq + start) & MASK, payload))

    # ---------------------------------------------------------------- input

    def receive(self, seg: TcpSegment, now: float) -> None:
        """Take one segment from the peer (RFC 9293 §3.10.7). Never raises."""
        self._last_now = now
        st = self.state
        if st is ESTABLISHED and self._next_in_order(seg, now):
            return
        if st is CLOSED or st is LISTEN:
            return
        if st is SYN_SENT:
            self._receive_syn_sent(seg, now)
            self._arm_timers(now)
            return
        flags = seg.flags
        seq = seg.seq & MASK
        plen = len(seg.payload)
        if st is SYN_RECEIVED and flags & (SYN | ACK | RST) == SYN and seq == self._irs:
            self._syn_pending = True  # our SYN,ACK was lost: the peer sent its SYN again
            return
        seglen = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        rcv_nxt = self._rcv_nxt
        wnd = (self._rcv_adv - rcv_nxt) & MASK
        if wnd > _HALF:
            wnd = 0
        rel = (seq - rcv_nxt) & MASK
        lim = self.limits
        if seglen == 0:
            acceptable = rel == 0 if wnd == 0 else rel < wnd
        else:
            acceptable = wnd > 0 and (rel < wnd or ((seq + seglen - 1 - rcv_nxt) & MASK) < wnd)
        if not acceptable:
            if flags & RST:
                return
            # RFC 9293 §3.10.7.4 first: ACK, drop. An empty segment is answered at most
            # once per ``unacceptable_ack_interval`` (RFC 5961 §7): two ends that each
            # find the other's ACKs out of window must not answer each other forever.
            if seglen or now - self._last_unacceptable_ack >= lim.unacceptable_ack_interval:
                self._ack_now = True
                self._last_unacceptable_ack = now
            if flags & ACK and not flags & SYN and (rel == 0 or rel > _HALF):
                # A window probe (§3.10.7.4 "special allowance") or an old duplicate:
                # its ACK field still counts, as in BSD and Linux, its data does not.
                # Without this two ends that both went back after timeouts would drop
                # each other's ACKs forever.
                self._process_ack(seg, now, plen)
                self._arm_timers(now)
            return
        if flags & RST:
            if rel == 0:
                self._reset()
            else:
                self._challenge_ack()  # RFC 5961 §3.2
            return
        if flags & SYN:
            self._challenge_ack()  # RFC 5961 §4.2
            return
        if not flags & ACK:
            return
        if st is SYN_RECEIVED:
            acked = (seg.ack - self._snd_una) & MASK
            if acked == 0 or acked > (self._snd_max - self._snd_una) & MASK:
                self._reply(
                    TcpSegment(self.local_port, self.remote_port, seg.ack & MASK, 0, RST, 0)
                )
                return
            self._on_established()
        if self._process_ack(seg, now, plen) and (plen or flags & FIN):
            self._process_data(seg, rel, wnd, now)
        self._arm_timers(now)

    def _next_in_order(self, seg: TcpSegment, now: float) -> bool:
        """Header prediction (as in BSD's tcp_input): in ESTABLISHED, the next bytes in
        sequence, acknowledging nothing new, window unchanged, nothing kept out of
        order, all inside our window. The general path would do exactly this; the
        shortcut only skips its checks. False (nothing done) for any other segment."""
        payload = seg.payload
        n = len(payload)
        seq = seg.seq
        if (
            seg.flags | PSH != ACK | PSH
            or not n
            or seq != self._rcv_nxt
            or self._ooo
            or seg.ack != self._snd_una
            or (seg.window << self._snd_shift) != self._snd_wnd
            or n > ((self._rcv_adv - seq) & MASK)
        ):
            return False
        self._snd_wl1 = seq
        self._snd_wl2 = seg.ack
        self._rbuf += payload
        self._rcv_nxt = (seq + n) & MASK
        self._segs_unacked += 1
        if self._segs_unacked >= 2:
            self._ack_now = True
        elif self._ack_deadline is None:
            self._ack_deadline = now + self.limits.delayed_ack
        return True

    def _receive_syn_sent(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.3."""
        flags = seg.flags
        if flags & ACK and ((seg.ack - self._iss - 1) & MASK) != 0:
            if not flags & RST:
                self._reply(
                    TcpSegment(self.local_port, self.remote_port, seg.ack & MASK, 0, RST, 0)
                )
            return
        if flags & RST:
            if flags & ACK:
                self._fail("connection refused")
            return
        if not flags & SYN:
            return
        self._take_syn(seg)
        if flags & ACK:
            self._snd_una = seg.ack & MASK
            self._snd_wl2 = self._snd_una
            if self._rtt_seq is not None:
                self._rtt_sample(now - self._rtt_time)
                self._rtt_seq = None
            self._rto_deadline = None
            self._on_established()
            self._ack_now = True
        else:
            self.state = SYN_RECEIVED  # simultaneous open: SYN,ACK with our ISS
            self._syn_pending = True
            self._rto_deadline = None
            self._retries = 0
            self._backoff = 0

    def _on_established(self) -> None:
        self.state = FIN_WAIT_1 if self._fin_queued else ESTABLISHED
        self._established = True
        smss = self._smss
        if self._retries:
            self._cwnd = smss  # RFC 5681 §3.1: a retransmitted SYN means IW = 1 segment
        else:
            self._cwnd = self._initial_window()
        self._retries = 0
        self._backoff = 0

    def _initial_window(self) -> int:
        """RFC 6928 §2: min(IW segments, max(2 segments, 14600 bytes))."""
        smss = self._smss
        return min(self.limits.initial_window_segments * smss, max(2 * smss, 14600))

    def _set_snd_wnd(self, wnd: int) -> None:
        self._snd_wnd = wnd
        self._max_snd_wnd = max(self._max_snd_wnd, wnd)

    def _process_ack(self, seg: TcpSegment, now: float, plen: int) -> bool:
        """The ACK field (RFC 9293 §3.10.7.4 fifth; RFC 5681, 6582, 6298). False when
        processing of the segment must stop."""
        ack = seg.ack & MASK
        una = self._snd_una
        acked = (ack - una) & MASK
        outstanding = (self._snd_max - una) & MASK
        if acked > outstanding:
            if acked <= _HALF:
                self._ack_now = True  # it acknowledges what we never sent
                return False
            if (una - ack) & MASK > max(self._max_snd_wnd, self._smss):
                # RFC 5961 §5.2: older than anything the peer could still be sending
                # (blind data injection guesses land here): drop, answer with an ACK.
                self._ack_now = True
                return False
            return True  # an old ACK: ignore the field, take the data
        seq = seg.seq & MASK
        old_wnd = self._snd_wnd
        if (((seq - self._snd_wl1) & MASK) - 1) & MASK < _HALF or (
            seq == self._snd_wl1 and (ack - self._snd_wl2) & MASK <= _HALF
        ):
            self._set_snd_wnd((seg.window & 0xFFFF) << self._snd_shift)
            self._snd_wl1 = seq
            self._snd_wl2 = ack
        if self._snd_wnd == 0 and old_wnd == 0:
            self._retries = 0  # the peer answers our probes: it is alive, just full
        elif old_wnd == 0 and acked == 0 and (self._snd_nxt - una) & MASK == 1:
            # The window opened and our probe byte was not taken: it goes again at
            # once with the data after it, not after a retransmission timeout.
            self._snd_nxt = una
        if acked == 0:
            if (
                outstanding
                and plen == 0
                and not seg.flags & (SYN | FIN)
                and self._snd_wnd == old_wnd
            ):
                self._on_dupack()
            return True
        # New data (or our SYN/FIN) acknowledged.
        self._snd_una = ack
        self._tlp_deadline = None  # a new flight tail: _arm_timers starts its probe timer
        self._tlp_sent = False
        if (ack - self._snd_nxt) & MASK <= _HALF:
            self._snd_nxt = ack
        self._retries = 0
        self._backoff = 0
        sbuf = self._sbuf
        done = (ack - self._sbuf_seq) & MASK
        if done <= _HALF:
            if done <= len(sbuf):
                del sbuf[:done]
                self._sbuf_seq = ack
            else:  # our FIN too
                self._sbuf_seq = (self._sbuf_seq + len(sbuf)) & MASK
                sbuf.clear()
        if self._rtt_seq is not None and (ack - self._rtt_seq) & MASK <= _HALF:
            self._rtt_sample(now - self._rtt_time)
            self._rtt_seq = None
        self._on_new_ack(acked, ack, outstanding)
        self._rto_deadline = None if ack == self._snd_max else now + self._timeout()
        if self._fin_queued and ack == self._snd_max and not sbuf and self._fin_sent():
            st = self.state
            if st is FIN_WAIT_1:
                self.state = FIN_WAIT_2
            elif st is CLOSING:
                self._enter_time_wait(now)
            elif st is LAST_ACK:
                self._close()
                return False
        return True

    def _fin_sent(self) -> bool:
        return ((self._snd_max - self._sbuf_seq) & MASK) == len(self._sbuf) + 1

    def _on_new_ack(self, acked: int, ack: int, outstanding: int) -> None:
        """RFC 5681 §3.1 growth, RFC 6582 §3.2 steps 3 (partial/full ACK). The window
        grows only while it was at least half used (RFC 7661 §4.1 spirit): an
        application-limited sender does not earn a window it never tried."""
        smss = self._smss
        if self._in_recovery:
            if (ack - self._recover) & MASK <= _HALF:  # full acknowledgment
                flight = (self._snd_max - ack) & MASK
                self._cwnd = min(self._ssthresh, max(flight, smss) + smss)
                self._in_recovery = False
                self._dupacks = 0
            else:  # partial: the next hole is lost too
                self._fast_rexmit = True
                cwnd = self._cwnd - acked
                if acked >= smss:
                    cwnd += smss
                self._cwnd = max(cwnd, smss)
            return
        self._dupacks = 0
        if 2 * outstanding < self._cwnd:
            return
        if self._cwnd < self._ssthresh:
            # Slow start counts every byte acknowledged (as Linux does; RFC 3465 allows
            # up to 2 SMSS per ACK): a stack that polls once per batch of frames sends
            # one stretch ACK per batch, and one SMSS per ACK would grow the window
            # by one segment per round trip instead of doubling it.
            self._cwnd += acked
        else:
            self._ca_acc += acked
            if self._ca_acc >= self._cwnd:
                self._ca_acc -= self._cwnd
                self._cwnd += smss
        self._cwnd = min(self._cwnd, _MAX_CWND)

    def _on_dupack(self) -> None:
        """RFC 5681 §3.2 / RFC 6582 §3.2 steps 1-2, 4."""
        smss = self._smss
        if self._in_recovery:
            self._cwnd = min(self._cwnd + smss, _MAX_CWND)
            return
        self._dupacks += 1
        if self._dupacks == 3 and ((self._snd_una - 1 - self._recover) & MASK) < _HALF:
            flight = (self._snd_max - self._snd_una) & MASK
            self._ssthresh = max(flight // 2, 2 * smss)
            self._recover = self._snd_max
            self._cwnd = self._ssthresh + 3 * smss
            self._in_recovery = True
            self._fast_rexmit = True
            self._rtt_seq = None

    def _process_data(self, seg: TcpSegment, rel: int, wnd: int, now: float) -> None:
        """Segment text and FIN (RFC 9293 §3.10.7.4 seventh and eighth)."""
        st = self.state
        fin = bool(seg.flags & FIN)
        if st not in _RECEIVING:
            # The peer's FIN came already: this is a retransmission; ACK it again.
            self._ack_now = True
            if st is TIME_WAIT and fin:
                self._timewait_deadline = now + self.limits.time_wait
            return
        payload = seg.payload
        if rel > _HALF:  # starts before RCV.NXT: trim what we have
            cut = (-rel) & MASK
            if cut > len(payload):
                return
            payload = payload[cut:]
            rel = 0
        if rel + len(payload) > wnd:
            payload = payload[: max(0, wnd - rel)]
            fin = False
        if rel:
            self._keep_out_of_order((self._rcv_nxt + rel) & MASK, payload, fin)
            # One duplicate ACK per out-of-order segment, even when several arrive
            # before the next poll(): the sender's fast retransmit counts them.
            self._reply(self._segment(ACK, self._ack_seq()))
            return
        if payload:
            self._rbuf += payload
            self._rcv_nxt = (self._rcv_nxt + len(payload)) & MASK
        if self._ooo:
            fin = self._drain_out_of_order() or fin
            self._ack_now = True  # a hole filled: ACK at once (RFC 5681 §4.2)
        if fin:
            self._on_fin(now)
            return
        self._segs_unacked += 1
        if self._segs_unacked >= 2:
            self._ack_now = True
        elif self._ack_deadline is None:
            self._ack_deadline = now + self.limits.delayed_ack

    def _keep_out_of_order(self, seq: int, data: bytes, fin: bool) -> None:
        """Keep a segment that starts past RCV.NXT (already trimmed to the window).

        Contiguous bytes are kept as one run, so ``out_of_order_segments`` bounds the
        holes, not the segments: after one loss the whole rest of the window is kept in
        a single run. Runs never overlap and stay sorted by distance from RCV.NXT; their
        bytes lie inside the advertised window, so never exceed ``recv_buffer``.
        """
        if not data and not fin:
            return
        runs = self._ooo
        rcv_nxt = self._rcv_nxt
        start = (seq - rcv_nxt) & MASK
        if runs:
            last = runs[-1]
            last_start = (last.seq - rcv_nxt) & MASK
            last_end = last_start + len(last.data)
            if start == last_end and not last.fin:  # the common case: the run grows
                last.data += data
                last.fin = fin
                self._ooo_bytes += len(data)
                return
            if last_start <= start and start + len(data) <= last_end and not fin:
                return  # a duplicate
        new = _Run(seq, bytearray(data), fin)
        merged: list[_Run] = []
        for run in sorted((*runs, new), key=lambda r: (r.seq - rcv_nxt) & MASK):
            if merged:
                prev = merged[-1]
                prev_end = ((prev.seq - rcv_nxt) & MASK) + len(prev.data)
                run_start = (run.seq - rcv_nxt) & MASK
                if run_start <= prev_end:  # overlapping or adjacent: one run
                    run_end = run_start + len(run.data)
                    if run_end > prev_end:
                        prev.data += memoryview(run.data)[prev_end - run_start :]
                        prev.fin = run.fin
                    elif run_end == prev_end:
                        prev.fin = prev.fin or run.fin
                    continue
            merged.append(run)
        if len(merged) > self.limits.out_of_order_segments:
            return  # a new hole past the bound: the sender sends it again later
        self._ooo = merged
        self._ooo_bytes = sum(len(r.data) for r in merged)

    def _drain_out_of_order(self) -> bool:
        """Move the runs that now start at or before RCV.NXT into the receive buffer;
        True when the peer's FIN became in-order."""
        runs = self._ooo
        got_fin = False
        while runs:
            run = runs[0]
            rel = (run.seq - self._rcv_nxt) & MASK
            if rel != 0 and rel <= _HALF:
                break  # still past RCV.NXT, and so are the runs after it
            cut = 0 if rel == 0 else (-rel) & MASK
            data = run.data
            if cut < len(data):
                self._rbuf += memoryview(data)[cut:]
                self._rcv_nxt = (self._rcv_nxt + len(data) - cut) & MASK
            del runs[0]
            self._ooo_bytes -= len(data)
            if run.fin and cut <= len(data):
                got_fin = True
                self._drop_ooo()
                break
        return got_fin

    def _drop_ooo(self) -> None:
        self._ooo.clear()
        self._ooo_bytes = 0

    def _on_fin(self, now: float) -> None:
        """The peer's FIN is in order (RFC 9293 §3.10.7.4 eighth)."""
        self._rcv_nxt = (self._rcv_nxt + 1) & MASK
        self._fin_received = True
        self._ack_now = True
        self._drop_ooo()
        st = self.state
        if st is ESTABLISHED:
            self.state = CLOSE_WAIT
        elif st is FIN_WAIT_1:
            self.state = CLOSING  # our FIN is not acknowledged yet (else FIN-WAIT-2)
        elif st is FIN_WAIT_2:
            self._enter_time_wait(now)

    # ---------------------------------------------------------------- endings

    def _reply(self, seg: TcpSegment) -> None:
        if len(self._replies) < _MAX_REPLIES:
            self._replies.append(seg)

    def _challenge_ack(self) -> None:
        self._ack_now = True

    def _enter_time_wait(self, now: float) -> None:
        self.state = TIME_WAIT
        self._timewait_deadline = now + self.limits.time_wait
        self._rto_deadline = None
        self._tlp_deadline = None
        self._persist_deadline = None
        self._fast_rexmit = False
        self._sbuf.clear()

    def _reset(self) -> None:
        """A valid RST arrived (RFC 9293 §3.10.7.4 second)."""
        if self.state in (CLOSING, LAST_ACK, TIME_WAIT):
            self._close()
        else:
            self._fail("connection reset")

    def _fail(self, error: str) -> None:
        self._error = error
        self._sbuf.clear()
        self._drop_ooo()
        self._close()

    def _close(self) -> None:
        self.state = CLOSED
        self._rto_deadline = None
        self._tlp_deadline = None
        self._persist_deadline = None
        self._ack_deadline = None
        self._timewait_deadline = None
        self._ack_now = False
        self._fast_rexmit = False
        self._syn_pending = False
        self._rst_pending = False
        self._sbuf.clear()
        self._drop_ooo()
