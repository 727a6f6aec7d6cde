"""The native receive data plane in real daemons (root, network namespaces).

The lab of test_private_network (ztone root, controller, members a and b on a private
planet): the steady state's frames reach the member's TAP through the native table
and leave it through the same table's send side (its counters in ``/metrics`` grow),
``/peer`` still shows a fresh lastReceive (by the reactor thread unless
``ZTONE_DATAPLANE_THREAD=0``), and a change the general path would act on
stops native delivery at once: the network's rules turned to drop, then (rules
restored) a member deauthorized. A TCP transfer through the native table arrives
intact, its segments merged into GSO writes to the real TAP (_dp_gro.h).
"""

from __future__ import annotations

import os
import re
import sys
import time

import pytest

from ztone.crypto import backend
from ztone.service.dataplane import native_dataplane_module

from .netns import Lan
from .test_network_backends import tcp_transfer
from .test_private_network import Member, create_network, lab, wait_until

NATIVE = backend.NATIVE.native if backend.NATIVE is not None else None
pytestmark = pytest.mark.skipif(
    native_dataplane_module(NATIVE) is None, reason="the native data plane is not built"
)

__all__ = ["lab"]  # the fixture, imported to be used here


def metrics(m: Member) -> dict[str, int]:
    """The member's ``ztone_packets_total`` counters from ``GET /metrics``."""
    script = (
        "import sys,urllib.request\n"
        "req = urllib.request.Request('http://127.0.0.1:9993/metrics',"
        " headers={'X-ZT1-Auth': sys.argv[1]})\n"
        "print(urllib.request.urlopen(req, timeout=20).read().decode())\n"
    )
    token = (m.home / "authtoken.secret").read_text().strip()
    out = m.ns.run([sys.executable, "-c", script, token], timeout=60).stdout
    return {
        k: int(float(v))
        for k, v in re.findall(r'^ztone_packets_total\{what="([a-z_]+)"\} (\S+)$', out, re.M)
    }


def burst_ping(m: Member, target: str, count: int = 40, size: int = 56) -> bool:
    """``count`` pings 20 ms apart (bounded: at most ~10 s); True if any came back."""
    cmd = ["ping", "-4", "-q", "-c", str(count), "-i", "0.02", "-W", "1", "-w", "10"]
    r = m.ns.run([*cmd, "-s", str(size), target], timeout=30, check=False)
    return r.returncode == 0


def test_native_delivery_and_revocation(lab: tuple[Lan, dict[str, Member]]) -> None:
    _, m = lab
    ctrl, a, b = m["ctrl"], m["a"], m["b"]
    joined = create_network(m)
    nwid, b4 = joined.nwid, joined.b4
    assert wait_until(lambda: a.ping(b4, count=1), 30)

    # steady state: b's port gets a's echo requests natively, small and fragmented
    before = metrics(b)
    assert burst_ping(a, b4) and burst_ping(a, b4, size=2400)
    sent_at = time.time()
    after = metrics(b)
    assert after["dataplane_delivered"] - before.get("dataplane_delivered", 0) >= 40
    assert after["fast_rx_frames"] > before.get("fast_rx_frames", 0)
    # and b's answers left natively (send grants), a's echo requests too
    assert after["dataplane_sent"] > before.get("dataplane_sent", 0)
    # by the reactor thread unless it is turned off (then by event-loop bursts)
    reactor = os.environ.get("ZTONE_DATAPLANE_THREAD", "1") != "0"
    assert after["dataplane_reactor"] == int(reactor)
    if reactor:
        assert after["dataplane_reactor_wakeups"] > before.get("dataplane_reactor_wakeups", 0)
    assert after["fast_tx_frames"] > 0 and metrics(a)["dataplane_sent"] >= 40
    # the API tells the truth about what the native path received
    a_addr = (a.home / "identity.public").read_text()[:10]
    status, peers = b.api("GET", "/peer")
    assert status == 200
    peer = next(p for p in peers if p["address"] == a_addr)
    last = max(p["lastReceive"] for p in peer["paths"])
    assert last >= (sent_at - 2) * 1000, (last, sent_at)

    # the rules turn to drop: b's next config revokes the grant, nothing more arrives
    status, _ = ctrl.api(
        "POST", f"/controller/network/{nwid}", {"rules": [{"type": "ACTION_DROP"}]}
    )
    assert status == 200
    assert wait_until(lambda: not a.ping(b4, count=1), 30)
    frozen = metrics(b)["dataplane_delivered"]
    assert not burst_ping(a, b4, count=20)
    assert metrics(b)["dataplane_delivered"] == frozen

    # rules back to accept: native delivery resumes
    status, _ = ctrl.api(
        "POST", f"/controller/network/{nwid}", {"rules": [{"type": "ACTION_ACCEPT"}]}
    )
    assert status == 200
    assert wait_until(lambda: a.ping(b4, count=1), 30)
    assert burst_ping(a, b4)
    assert metrics(b)["dataplane_delivered"] > frozen

    # deauthorizing a: b (which gets the revocation) stops taking a's frames
    status, _ = ctrl.api(
        "POST", f"/controller/network/{nwid}/member/{a_addr}", {"authorized": False}
    )
    assert status == 200
    assert wait_until(lambda: not a.ping(b4, count=1), 30)
    frozen = metrics(b)["dataplane_delivered"]
    burst_ping(a, b4, count=20)
    assert metrics(b)["dataplane_delivered"] == frozen


def test_tcp_through_the_native_table_arrives_intact_and_merged(
    lab: tuple[Lan, dict[str, Member]],
) -> None:
    _, m = lab
    a, b = m["a"], m["b"]
    joined = create_network(m)
    b4 = joined.b4
    assert wait_until(lambda: a.ping(b4, count=1), 30)
    assert burst_ping(a, b4)  # the grants are made (and the kernel's ARP is settled)
    before = metrics(b)
    tcp_transfer(a, b, b4)  # 4 MB, same length and SHA-256 at the far end
    after = metrics(b)
    delivered = after["dataplane_delivered"] - before.get("dataplane_delivered", 0)
    assert delivered >= (4 << 20) // 9000  # the bulk came through the native table
    # b's kernel took runs of segments as GSO writes (the receive window makes them)
    assert after["dataplane_gro_writes"] > before.get("dataplane_gro_writes", 0)
    assert after["dataplane_gro_frames"] >= 2 * after["dataplane_gro_writes"]
    assert after.get("dataplane_tap_errors", 0) == 0
