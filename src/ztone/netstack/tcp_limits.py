"""The bounds and timers of one TCP connection (:class:`TcpLimits`).

Apart from the engine (:mod:`ztone.netstack.tcp`, which re-exports it) so that a stack
can be made, and its limits checked, without loading the engine: a user-space port
nobody opens a TCP connection on never needs it (issue 17, memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.errors import LocalUsageError


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """Bounds and timers of one connection (memory is bounded by the first three)."""

    send_buffer: int = 256 * 1024
    recv_buffer: int = 256 * 1024
    out_of_order_segments: int = 64
    """Runs of contiguous bytes kept beyond holes, i.e. holes at once (their bytes are
    bounded by the window, so by ``recv_buffer``)."""
    time_wait: float = 2.0
    """Seconds in TIME-WAIT (we never wait 2 MSL)."""
    max_retransmissions: int = 12
    """Timeouts in a row (or unanswered window probes) before "timed out"."""
    syn_retransmissions: int = 6
    initial_rto: float = 1.0
    """RFC 6298 §2.1."""
    min_rto: float = 0.2
    """Below RFC 6298's 1 s: an overlay's RTTs are short and known."""
    max_rto: float = 60.0
    delayed_ack: float = 0.04
    initial_window_segments: int = 10
    """RFC 6928 IW (in segments, capped at 14600 bytes above 2 segments)."""
    unacceptable_ack_interval: float = 0.1
    """Least time between ACKs answering empty out-of-window segments."""

    def __post_init__(self) -> None:
        # Windows must stay far below 2**31 for modular sequence comparisons.
        for name in ("send_buffer", "recv_buffer"):
            if not 1 <= getattr(self, name) <= 1 << 30:
                raise LocalUsageError(f"TcpLimits.{name} must be within 1..2**30")
        if (
            min(self.out_of_order_segments, self.max_retransmissions, self.syn_retransmissions) < 0
            or self.initial_window_segments < 1
        ):
            raise LocalUsageError("TcpLimits counts must not be negative (IW at least 1)")
        if not 0 < self.min_rto <= self.max_rto or self.initial_rto <= 0:
            raise LocalUsageError("TcpLimits needs 0 < min_rto <= max_rto and initial_rto > 0")
        if min(self.time_wait, self.delayed_ack, self.unacceptable_ack_interval) < 0:
            raise LocalUsageError("TcpLimits times must not be negative")


__all__ = ["TcpLimits"]
