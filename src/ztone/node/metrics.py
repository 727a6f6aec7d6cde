"""The counts behind zerotier-one's ``/metrics`` families, kept by the core
(PROTOCOL-NETWORK-SERVICE C.6). The service renders them; the core only counts.

* :class:`NodeMetrics` - per verb and direction (``zt_packet``), per ERROR code and
  direction (``zt_packet_error``). Indexed by the verb's low five bits and the code
  byte, so both tables have a fixed size.
* :class:`PeerMetrics` - one per peer, living and dying with it (so the table is
  bounded by the peer table): packets to and from it (``zt_peer_packets``), packets
  from it that failed authentication (``zt_peer_packet_errors``) and a latency
  histogram observed at each ping pass over it, as ``Peer::doPingAndKeepalive``
  observes (``zt_peer_latency``, buckets in ms).
* Per network, the rule filter's verdicts by direction (``zt_network_packets``) live in
  ``Network.filter_counts`` (:data:`RX_ACCEPTED`... index it).
"""

from __future__ import annotations

from bisect import bisect_left

RX = 0
TX = 1

# Network.filter_counts indices (direction, accepted)
RX_ACCEPTED = 0
RX_DROPPED = 1
TX_ACCEPTED = 2
TX_DROPPED = 3

LATENCY_BUCKETS = (1, 3, 6, 10, 30, 60, 100, 300, 600, 1000)  # ms, upper bounds
_NO_COUNTS = (0,) * (len(LATENCY_BUCKETS) + 1)


class LatencyHistogram:
    """Cumulative-on-render histogram: ``counts[i]`` holds the observations in bucket i
    (the last slot is above the largest bound, Prometheus' ``+Inf``)."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        # One shared tuple of zeros until the first observation: most of a root's peers
        # are never pinged by it, and a list of its own per peer was ~150 bytes each.
        self.counts: list[int] | tuple[int, ...] = _NO_COUNTS
        self.total = 0
        self.count = 0

    def observe(self, value: int) -> None:
        counts = self.counts
        if isinstance(counts, tuple):
            self.counts = counts = list(counts)
        counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value
        self.count += 1


class PeerMetrics:
    __slots__ = ("errors", "latency", "rx", "tx")

    def __init__(self) -> None:
        self.rx = 0
        self.tx = 0
        self.errors = 0
        self.latency = LatencyHistogram()


class NodeMetrics:
    __slots__ = ("errors", "verbs")

    def __init__(self) -> None:
        self.verbs = ([0] * 32, [0] * 32)  # [direction][verb & 0x1f]
        self.errors = ([0] * 256, [0] * 256)  # [direction][error code]

    def verb(self, direction: int, verb: int) -> None:
        self.verbs[direction][verb & 0x1F] += 1

    def error(self, direction: int, code: int) -> None:
        self.errors[direction][code & 0xFF] += 1
