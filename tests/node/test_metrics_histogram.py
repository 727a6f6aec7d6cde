"""The per-peer latency histogram (``ztone.node.metrics.LatencyHistogram``): it shares
one tuple of zeros until its first sample, and a sample never leaks into another."""

from __future__ import annotations

from ztone.node.metrics import LATENCY_BUCKETS, LatencyHistogram


def test_histograms_start_empty_and_count_only_their_own_samples() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    assert list(a.counts) == [0] * (len(LATENCY_BUCKETS) + 1)
    a.observe(2)
    a.observe(2_000)
    assert a.counts[1] == 1 and a.counts[-1] == 1
    assert (a.count, a.total) == (2, 2_002)
    assert list(b.counts) == [0] * (len(LATENCY_BUCKETS) + 1)  # b never saw a's samples
    assert LatencyHistogram().counts == b.counts
    b.observe(5)
    assert b.counts[2] == 1 and a.counts[2] == 0
