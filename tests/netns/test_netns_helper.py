"""The namespace helper itself: isolation, a bridged LAN, bounded calls, clean teardown."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from .netns import (
    Namespace,
    NamespaceCallError,
    bridge_namespaces,
    leftover_namespaces,
    netns_unavailable,
)

pytestmark = pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))

UDP_PORT = 19999

_ECHO_SERVER = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print("ready", flush=True)
for _ in range(2):
    data, peer = s.recvfrom(2048)
    s.sendto(data.upper(), peer)
"""


def _udp_exchange(target: str, port: int, payload: bytes) -> bytes:
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(payload, (target, port))
        return s.recvfrom(2048)[0]


def _raise() -> None:
    raise ValueError("boom")


def _sleep() -> None:
    time.sleep(30)


def test_lan_of_three_hosts_talks_over_the_switch() -> None:
    with bridge_namespaces(3, "198.18.44.0/24", "fd00:44::/64") as lan:
        assert [str(a) for a in lan.v4] == ["198.18.44.1/24", "198.18.44.2/24", "198.18.44.3/24"]
        assert [str(a) for a in lan.v6] == ["fd00:44::1/64", "fd00:44::2/64", "fd00:44::3/64"]
        assert lan.hosts[1].addresses("eth0")[0] == lan.v4[1]
        for host in lan.hosts:
            assert host.ip_json("route", "show", "default") == []  # never a default route
        server = lan.hosts[2].popen(
            [sys.executable, "-c", _ECHO_SERVER, "::", str(UDP_PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        v4 = lan.hosts[0].call(_udp_exchange, str(lan.v4[2].ip), UDP_PORT, b"ping4", timeout=15)
        v6 = lan.hosts[1].call(_udp_exchange, str(lan.v6[2].ip), UDP_PORT, b"ping6", timeout=15)
        assert (v4, v6) == (b"PING4", b"PING6")
        assert server.wait(timeout=10) == 0
        # The hosts' links are theirs alone: the test process's namespace is untouched.
        assert "eth0" in lan.hosts[0].link_names()
        assert "br0" in lan.switch.link_names()
    assert leftover_namespaces() == []


def test_call_reports_errors_and_timeouts() -> None:
    with Namespace() as ns:
        assert ns.call(os.getpid) != os.getpid()
        with pytest.raises(NamespaceCallError, match="ValueError: boom"):
            ns.call(_raise)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            ns.call(_sleep, timeout=0.5)
        assert time.monotonic() - started < 5
    assert ns.deleted
    assert leftover_namespaces() == []


def test_popen_processes_end_with_the_namespace() -> None:
    ns = Namespace()
    try:
        proc = ns.popen([sys.executable, "-c", "import time; time.sleep(60)"])
    finally:
        ns.delete()
    assert proc.poll() is not None
    assert ns.name not in leftover_namespaces()


def test_subnets_outside_the_test_ranges_are_refused() -> None:
    with (
        pytest.raises(ValueError, match=re.escape("198.18.0.0/15")),
        bridge_namespaces(1, "10.0.0.0/24"),
    ):
        pass
    with (
        pytest.raises(ValueError, match=re.escape("fd00::/8")),
        bridge_namespaces(1, "198.18.1.0/24", "2001:db8::/64"),
    ):
        pass
    assert leftover_namespaces() == []
