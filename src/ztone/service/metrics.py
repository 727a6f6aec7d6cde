"""``GET /metrics``: zerotier-one 1.14.1's metric families (PROTOCOL-NETWORK-SERVICE C.6),
so that dashboards made for zerotier-one work unchanged, plus ztone's own counters
under the ``ztone_`` prefix.

Prometheus text exposition format 0.0.4. As zerotier-one's serializer does, counters
carry no ``_total`` suffix (``zt_packet``, not ``zt_packet_total``): prometheus_client
always appends ``_total`` to counter samples, which would hide every counter from
those dashboards, so the text is written here. Label names within a sample are in
ascending order; a histogram gives ``_bucket`` (cumulative, ``le`` in ms, then
``+Inf``), ``_sum`` and ``_count``.

The counts come from the core (:mod:`ztone.node.metrics`), the UDP sockets (bytes)
and the embedded controller; nothing is kept here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ztone.node.metrics import (
    LATENCY_BUCKETS,
    RX,
    RX_ACCEPTED,
    RX_DROPPED,
    TX,
    TX_ACCEPTED,
    TX_DROPPED,
)
from ztone.node.node import Node
from ztone.node.wire.packet import ErrorCode, Verb

# zt_packet's packet_type label for each verb (verbs without one are not in this family)
PACKET_TYPES: tuple[tuple[str, int], ...] = (
    ("nop", Verb.NOP),
    ("error", Verb.ERROR),
    ("ack", Verb.ACK),
    ("qos", Verb.QOS_MEASUREMENT),
    ("hello", Verb.HELLO),
    ("ok", Verb.OK),
    ("whois", Verb.WHOIS),
    ("rendezvous", Verb.RENDEZVOUS),
    ("frame", Verb.FRAME),
    ("ext_frame", Verb.EXT_FRAME),
    ("echo", Verb.ECHO),
    ("multicast_like", Verb.MULTICAST_LIKE),
    ("network_credentials", Verb.NETWORK_CREDENTIALS),
    ("network_config_request", Verb.NETWORK_CONFIG_REQUEST),
    ("network_config", Verb.NETWORK_CONFIG),
    ("multicast_gather", Verb.MULTICAST_GATHER),
    ("multicast_frame", Verb.MULTICAST_FRAME),
    ("push_direct_paths", Verb.PUSH_DIRECT_PATHS),
    ("user_message", Verb.USER_MESSAGE),
    ("remote_trace", Verb.REMOTE_TRACE),
    ("path_negotiation_request", Verb.PATH_NEGOTIATION_REQUEST),
)

# zt_packet_error's error_type label for each ERROR code; internal_server_error is in
# zerotier-one's family although no ERROR code carries it, so it stays 0 there too.
ERROR_TYPES: tuple[tuple[str, int | None], ...] = (
    ("obj_not_found", ErrorCode.OBJ_NOT_FOUND),
    ("unsupported_operation", ErrorCode.UNSUPPORTED_OPERATION),
    ("identity_collision", ErrorCode.IDENTITY_COLLISION),
    ("need_membership_certificate", ErrorCode.NEED_MEMBERSHIP_CERTIFICATE),
    ("network_access_denied", ErrorCode.NETWORK_ACCESS_DENIED),
    ("unwanted_multicast", ErrorCode.UNWANTED_MULTICAST),
    ("authentication_required", ErrorCode.NETWORK_AUTHENTICATION_REQUIRED),
    ("internal_server_error", None),
)

_DIRECTIONS = (("rx", RX), ("tx", TX))


@dataclass
class ControllerCounts:
    """What the embedded controller counts for its ``controller_*`` families."""

    network_changes: int = 0
    member_changes: int = 0
    member_auths: int = 0
    member_deauths: int = 0
    config_requests: int = 0


@dataclass
class ControllerSnapshot:
    networks: int
    members: int
    counts: ControllerCounts = field(default_factory=ControllerCounts)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


Sample = tuple[Mapping[str, str], int]


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[Sample], suffix: str = ""
    ) -> None:
        self.lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")
        self.samples(name + suffix, samples)

    def samples(self, name: str, samples: Iterable[Sample]) -> None:
        for labels, value in samples:
            if labels:
                text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
                self.lines.append(f"{name}{{{text}}} {value}")
            else:
                self.lines.append(f"{name} {value}")


def render_metrics(
    node: Node,
    now: int,
    *,
    udp_bytes: tuple[int, int],
    tcp_bytes: tuple[int, int] = (0, 0),
    controller: ControllerSnapshot | None,
    ztone_counters: Mapping[str, int],
) -> str:
    """The whole ``/metrics`` text. ``udp_bytes`` and ``tcp_bytes`` (the TCP fallback
    tunnel's stream) are (received, sent)."""
    out = _Writer()
    m = node.metrics
    out.family(
        "zt_packet",
        "counter",
        "ZeroTier packet type counts",
        (
            ({"packet_type": name, "direction": d}, m.verbs[i][verb])
            for name, verb in PACKET_TYPES
            for d, i in _DIRECTIONS
        ),
    )
    out.family(
        "zt_packet_error",
        "counter",
        "ZeroTier packet errors",
        (
            ({"error_type": name, "direction": d}, m.errors[i][code] if code is not None else 0)
            for name, code in ERROR_TYPES
            for d, i in _DIRECTIONS
        ),
    )
    out.family(
        "zt_data",
        "counter",
        "number of bytes ZeroTier has transmitted or received",
        [
            ({"protocol": "udp", "direction": "rx"}, udp_bytes[0]),
            ({"protocol": "udp", "direction": "tx"}, udp_bytes[1]),
            ({"protocol": "tcp", "direction": "rx"}, tcp_bytes[0]),
            ({"protocol": "tcp", "direction": "tx"}, tcp_bytes[1]),
        ],
    )
    networks = [node.networks[n] for n in sorted(node.networks)]
    out.family(
        "zt_num_networks",
        "gauge",
        "number of networks this instance is joined to",
        [({}, len(networks))],
    )
    out.family(
        "zt_network_multicast_groups_subscribed",
        "gauge",
        "number of multicast groups networks are subscribed to",
        (({"network_id": f"{n.nwid:016x}"}, len(n.subscriptions)) for n in networks),
    )
    out.family(
        "zt_network_packets",
        "counter",
        "number of incoming/outgoing packets per network",
        (
            ({"network_id": f"{n.nwid:016x}", "direction": d, "accepted": a}, n.filter_counts[i])
            for n in networks
            for d, a, i in (
                ("rx", "yes", RX_ACCEPTED),
                ("rx", "no", RX_DROPPED),
                ("tx", "yes", TX_ACCEPTED),
                ("tx", "no", TX_DROPPED),
            )
        ),
    )
    peers = [node.peers[a] for a in sorted(node.peers)]
    out.lines.append("# HELP zt_peer_latency peer latency (ms)")
    out.lines.append("# TYPE zt_peer_latency histogram")
    for peer in peers:
        node_id = f"{int(peer.address):010x}"
        h = peer.metrics.latency
        cumulative = 0
        buckets: list[Sample] = []
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), h.counts, strict=True):
            cumulative += count
            buckets.append(({"node_id": node_id, "le": bound}, cumulative))
        out.samples("zt_peer_latency_bucket", buckets)
        out.samples("zt_peer_latency_sum", [({"node_id": node_id}, h.total)])
        out.samples("zt_peer_latency_count", [({"node_id": node_id}, h.count)])
    path_counts: list[Sample] = []
    for peer in peers:
        node_id = f"{int(peer.address):010x}"
        alive = sum(1 for s in peer.slots if s.path.alive(now))
        path_counts.append(({"node_id": node_id, "status": "alive"}, alive))
        path_counts.append(({"node_id": node_id, "status": "dead"}, len(peer.slots) - alive))
    out.family("zt_peer_path_count", "gauge", "number of paths to peer", path_counts)
    out.family(
        "zt_peer_packets",
        "counter",
        "number of packets to/from a peer",
        (
            (
                {"node_id": f"{int(p.address):010x}", "direction": d},
                p.metrics.rx if d == "rx" else p.metrics.tx,
            )
            for p in peers
            for d in ("rx", "tx")
        ),
    )
    out.family(
        "zt_peer_packet_errors",
        "counter",
        "number of incoming packet errors from a peer",
        (({"node_id": f"{int(p.address):010x}"}, p.metrics.errors) for p in peers),
    )
    if controller is not None:
        c = controller.counts
        for name, kind, help_text, value in (
            (
                "controller_network_count",
                "gauge",
                "number of networks the controller is serving",
                controller.networks,
            ),
            (
                "controller_member_count",
                "gauge",
                "number of network members the controller is serving",
                controller.members,
            ),
            (
                "controller_network_change_count",
                "counter",
                "number of times a network configuration is changed",
                c.network_changes,
            ),
            (
                "controller_member_change_count",
                "counter",
                "number of times a network member configuration is changed",
                c.member_changes,
            ),
            (
                "controller_member_auth_count",
                "counter",
                "number of network member auths",
                c.member_auths,
            ),
            (
                "controller_member_deauth_count",
                "counter",
                "number of network member deauths",
                c.member_deauths,
            ),
            (
                "controller_network_config_request",
                "counter",
                "count of config requests handled",
                c.config_requests,
            ),
        ):
            out.family(name, kind, help_text, [({}, value)])
    out.family(
        "ztone_packets_total",
        "counter",
        "Datagram and packet counters of the node core (ztone's own)",
        (({"what": k}, v) for k, v in sorted(ztone_counters.items())),
    )
    return "\n".join(out.lines) + "\n"
