"""``GET /metrics`` speaks zerotier-one 1.14.1's metric families (names, types, help
texts, label names) so existing ZeroTier Prometheus/Grafana set-ups work, behind the
same token rules (metricstoken.secret or the auth token).

The expected families below were written by hand from zerotier-one 1.14.1's
node/Metrics.cpp and the places that add labels to them (node/Peer.cpp,
node/Network.cpp). Real daemons on loopback with a private planet: a root (which is
also a controller) and a leaf that asks it for a network it does not have, so ERROR
replies are counted on both sides. The leaf runs without CAP_NET_ADMIN so that no
virtual port is made on this host.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from daemon_harness import (
    Daemon,
    daemons,
    free_port,
    make_home,
    make_planet,
    vector_identity,
    wait_until,
)

from ztone.cli import cli

DIRECTIONS = {"rx", "tx"}
PACKET_TYPES = {
    "nop", "error", "ack", "qos", "hello", "ok", "whois", "rendezvous", "frame", "ext_frame",
    "echo", "multicast_like", "network_credentials", "network_config_request",
    "network_config", "multicast_gather", "multicast_frame", "push_direct_paths",
    "user_message", "remote_trace", "path_negotiation_request",
}  # fmt: skip
ERROR_TYPES = {
    "obj_not_found", "unsupported_operation", "identity_collision",
    "need_membership_certificate", "network_access_denied", "unwanted_multicast",
    "authentication_required", "internal_server_error",
}  # fmt: skip

# name -> (type, help, label names)
UPSTREAM: dict[str, tuple[str, str, frozenset[str]]] = {
    "zt_packet": ("counter", "ZeroTier packet type counts",
                  frozenset({"packet_type", "direction"})),
    "zt_packet_error": ("counter", "ZeroTier packet errors",
                        frozenset({"error_type", "direction"})),
    "zt_data": ("counter", "number of bytes ZeroTier has transmitted or received",
                frozenset({"protocol", "direction"})),
    "zt_num_networks": ("gauge", "number of networks this instance is joined to", frozenset()),
    "zt_network_multicast_groups_subscribed": (
        "gauge", "number of multicast groups networks are subscribed to",
        frozenset({"network_id"})),
    "zt_network_packets": ("counter", "number of incoming/outgoing packets per network",
                           frozenset({"network_id", "direction", "accepted"})),
    "zt_peer_latency": ("histogram", "peer latency (ms)", frozenset({"node_id"})),
    "zt_peer_path_count": ("gauge", "number of paths to peer",
                           frozenset({"node_id", "status"})),
    "zt_peer_packets": ("counter", "number of packets to/from a peer",
                        frozenset({"node_id", "direction"})),
    "zt_peer_packet_errors": ("counter", "number of incoming packet errors from a peer",
                              frozenset({"node_id"})),
    "controller_network_count": ("gauge", "number of networks the controller is serving",
                                 frozenset()),
    "controller_member_count": ("gauge", "number of network members the controller is serving",
                                frozenset()),
    "controller_network_change_count": (
        "counter", "number of times a network configuration is changed", frozenset()),
    "controller_member_change_count": (
        "counter", "number of times a network member configuration is changed", frozenset()),
    "controller_member_auth_count": ("counter", "number of network member auths", frozenset()),
    "controller_member_deauth_count": ("counter", "number of network member deauths",
                                       frozenset()),
    "controller_network_config_request": ("counter", "count of config requests handled",
                                          frozenset()),
}  # fmt: skip
LATENCY_BOUNDS = ["1", "3", "6", "10", "30", "60", "100", "300", "600", "1000", "+Inf"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = list[tuple[str, dict[str, str], float]]


def parse(text: str) -> tuple[dict[str, tuple[str, str]], Samples]:
    """(family -> (type, help), samples) of Prometheus text format 0.0.4."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: Samples = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            helps[name] = doc
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            types[name] = kind
        elif line:
            m = _SAMPLE.match(line)
            assert m is not None, line
            labels = dict(_LABEL.findall(m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    assert helps.keys() == types.keys()
    return {n: (types[n], helps[n]) for n in types}, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and lab == labels]
    assert len(found) == 1, (name, labels)
    return found[0]


def get(port: int, token: str | None) -> tuple[int, str]:
    headers = {"X-ZT1-Auth": token} if token is not None else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def check_families(text: str) -> Samples:
    families, samples = parse(text)
    for name, (kind, help_text, labels) in UPSTREAM.items():
        assert families.get(name) == (kind, help_text), name
        names = (
            {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
        )
        for sample_name, lab, _ in samples:
            if sample_name in names:
                keys = set(lab) - ({"le"} if sample_name.endswith("_bucket") else set())
                assert keys == labels, (sample_name, lab)
    ours = [n for n in families if n not in UPSTREAM]
    assert all(n.startswith("ztone_") for n in ours), ours
    types = {(lab["packet_type"], lab["direction"]) for n, lab, _ in samples if n == "zt_packet"}
    assert types == {(t, d) for t in PACKET_TYPES for d in DIRECTIONS}
    errors = {(lab["error_type"], lab["direction"])
              for n, lab, _ in samples if n == "zt_packet_error"}  # fmt: skip
    assert errors == {(t, d) for t in ERROR_TYPES for d in DIRECTIONS}
    data = {(lab["protocol"], lab["direction"]) for n, lab, _ in samples if n == "zt_data"}
    assert data == {(p, d) for p in ("udp", "tcp") for d in DIRECTIONS}
    return samples


def _without_net_admin() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing to drop CAP_NET_ADMIN")
    return [setpriv, "--bounding-set", "-net_admin", "--"]


def test_metrics_are_zerotier_ones(tmp_path: Path) -> None:
    root_secret, root_public = vector_identity(0)
    root_port, leaf_port = free_port(), free_port()
    planet = make_planet(tmp_path, root_public, root_port)
    root_home = make_home(tmp_path / "root", planet, root_secret)
    leaf_home = make_home(tmp_path / "leaf", planet)
    root_addr = root_public[:10]
    nwid = f"{root_addr}000001"  # the root's controller does not have this network
    with daemons() as started:
        root = Daemon(root_home, root_port)
        started.append(root)
        leaf = Daemon(leaf_home, leaf_port, prefix=_without_net_admin())
        started.append(leaf)
        for d in started:
            d.wait_for_file("zerotier-one.port")
            answers = lambda h=d.home: cli.main([f"-D{h}", "info"], stdout=io.StringIO()) == 0  # noqa: E731
            assert wait_until(answers, 30)
        out = io.StringIO()
        assert cli.main([f"-D{leaf_home}", "join", nwid], stdout=out) == 0

        def leaf_denied() -> bool:
            out = io.StringIO()
            cli.main([f"-D{leaf_home}", "listnetworks"], stdout=out)
            return "NOT_FOUND" in out.getvalue() or "PORT_ERROR" in out.getvalue()

        def counted() -> bool:
            _, text = get(leaf_port, leaf.token())
            samples = parse(text)[1]
            return value(samples, "zt_packet_error", error_type="obj_not_found",
                         direction="rx") >= 1  # fmt: skip

        assert wait_until(leaf_denied, 30)
        assert wait_until(counted, 30), get(leaf_port, leaf.token())[1]

        # Token rules: none -> 401 {}; the metrics token or the auth token -> 200.
        assert get(root_port, None) == (401, "{}")
        assert get(root_port, "wrong")[0] == 401
        metrics_token = (root_home / "metricstoken.secret").read_text().strip()
        status, root_text = get(root_port, metrics_token)
        assert status == 200
        assert get(root_port, root.token())[0] == 200
        leaf_addr = (leaf_home / "identity.public").read_text()[:10]

        root_samples = check_families(root_text)
        assert value(root_samples, "zt_packet", packet_type="hello", direction="rx") >= 1
        assert value(root_samples, "zt_packet", packet_type="ok", direction="tx") >= 1
        assert value(root_samples, "zt_packet", packet_type="network_config_request",
                     direction="rx") >= 1  # fmt: skip
        assert value(root_samples, "zt_packet_error", error_type="obj_not_found",
                     direction="tx") >= 1  # fmt: skip
        assert value(root_samples, "zt_data", protocol="udp", direction="rx") > 0
        assert value(root_samples, "zt_data", protocol="udp", direction="tx") > 0
        assert value(root_samples, "zt_data", protocol="tcp", direction="tx") == 0
        assert value(root_samples, "zt_peer_packets", node_id=leaf_addr, direction="rx") >= 2
        assert value(root_samples, "zt_peer_path_count", node_id=leaf_addr, status="alive") == 1
        assert value(root_samples, "controller_network_config_request") >= 1
        assert value(root_samples, "controller_network_count") == 0

        leaf_samples = check_families(get(leaf_port, leaf.token())[1])
        assert value(leaf_samples, "zt_num_networks") == 1
        assert value(leaf_samples, "zt_network_multicast_groups_subscribed",
                     network_id=nwid) >= 0  # fmt: skip
        assert value(leaf_samples, "zt_packet", packet_type="network_config_request",
                     direction="tx") >= 1  # fmt: skip
        assert value(leaf_samples, "zt_peer_packets", node_id=root_addr, direction="tx") >= 2
        buckets = [(lab["le"], v) for n, lab, v in leaf_samples
                   if n == "zt_peer_latency_bucket" and lab["node_id"] == root_addr]  # fmt: skip
        assert [b for b, _ in buckets] == LATENCY_BOUNDS
        counts = [v for _, v in buckets]
        assert counts == sorted(counts)  # cumulative
        assert counts[-1] == value(leaf_samples, "zt_peer_latency_count", node_id=root_addr)
        for d in started:
            assert d.alive()


def test_metrics_text_is_valid_prometheus(tmp_path: Path) -> None:
    """The official Prometheus client's parser reads the whole text."""
    parser = pytest.importorskip("prometheus_client.parser")
    root_secret, root_public = vector_identity(0)
    port = free_port()
    home = make_home(tmp_path / "root", make_planet(tmp_path, root_public, port), root_secret)
    with daemons() as started:
        d = Daemon(home, port)
        started.append(d)
        d.wait_for_file("zerotier-one.port")
        answers = lambda: cli.main([f"-D{home}", "info"], stdout=io.StringIO()) == 0  # noqa: E731
        assert wait_until(answers, 30)
        status, text = get(port, d.token())
        assert status == 200
        families = {f.name for f in parser.text_string_to_metric_families(text)}
        assert set(UPSTREAM) <= families
