"""Active/standby controllers in network namespaces (issue 16 acceptance; root only).

A ztone root, two controller hosts with the same controller identity sharing one
PostgreSQL database (the test's own cluster, reached through its unix socket, which
crosses network namespaces), and ztone members with TAP ports, each in its own
namespace on one bridge (198.18.0.0/24, no default route), with a private planet.
``kill -9`` of the active controller: the standby takes over; a new member authorized
through the new active's API joins; the existing members keep pinging each other
throughout; deauthorizing a member through the new active cuts it off. Then the
first host, restarted, stands by, takes over from the second in turn, and its API's
authorization changes reach the members as well (either host serves the network).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ztone.cli import idtool

from .netns import Lan, bridge_namespaces
from .test_private_network import PORT, Member, _identity, _network_of, _skip_reason, wait_until

pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))

NAMES = ["root", "ctrl1", "ctrl2", "a", "b", "c"]
PING_COUNT = 150
PING_INTERVAL = 0.2


@pytest.fixture
def lab(tmp_path: Path, pg_conninfo: str) -> Iterator[tuple[Lan, dict[str, Member]]]:
    with bridge_namespaces(len(NAMES), "198.18.0.0/24", None) as lan:
        nodes = {
            n: Member(n, lan.hosts[i], tmp_path / n, str(lan.v4[i].ip)) for i, n in enumerate(NAMES)
        }
        root_secret, root_public = _identity(0)
        ctrl_secret, _ = _identity(1)
        assert idtool.main(["genplanet", "--out", str(tmp_path / "planet"), "--id", "0x5a5a",
                            f"{root_public}@{nodes['root'].ip}/{PORT}"]) == 0  # fmt: skip
        url = tmp_path / "db.url"
        url.write_text(pg_conninfo)
        url.chmod(0o600)
        for m in nodes.values():
            m.home.mkdir()
            shutil.copy(tmp_path / "planet", m.home / "planet")
            settings: dict[str, object] = {"allowSecondaryPort": False}
            if m.name.startswith("ctrl"):
                settings["controllerDbUrlFile"] = str(url)
                (m.home / "identity.secret").write_text(ctrl_secret)
            (m.home / "local.conf").write_text(json.dumps({"settings": settings}))
        (nodes["root"].home / "identity.secret").write_text(root_secret)
        try:
            yield lan, nodes
        finally:
            for m in nodes.values():
                m.stop()


def _addr(m: Member) -> str:
    return (m.home / "identity.public").read_text()[:10]


def _v4(m: Member, nwid: str) -> str | None:
    net = _network_of(m, nwid)
    if not net or net["status"] != "OK":
        return None
    return next((x.split("/")[0] for x in net["assignedAddresses"] if "." in x), None)


def _log(m: Member) -> str:
    return (m.home.parent / f"{m.name}.log").read_text(errors="replace")


def test_standby_takes_over_after_kill_9_failover_postgres(
    lab: tuple[Lan, dict[str, Member]],
) -> None:
    _, n = lab
    root, ctrl1, ctrl2, a, b, c = (n[x] for x in NAMES)
    for node in (root, ctrl1, a, b):
        node.start()
    for node in (root, ctrl1, a, b):
        assert wait_until(node.online, 60), (node.name, node.cli("info"))
    ctrl2.start()
    assert wait_until(lambda: "standing by" in _log(ctrl2), 30), _log(ctrl2)
    assert not (ctrl2.home / "zerotier-one.port").exists()  # off the network

    ctrl = _addr(ctrl1)
    status, network = ctrl1.api("POST", f"/controller/network/{ctrl}______", {
        "name": "ha", "private": True, "v4AssignMode": {"zt": True},
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": "198.19.0.0/24", "via": None}],
    })  # fmt: skip
    assert status == 200, network
    nwid = network["id"]
    for m in (a, b):
        assert m.cli("join", nwid)[0] == 0
        assert wait_until(lambda m=m: _network_of(m, nwid) is not None, 30)
        status, _ = ctrl1.api("POST", f"/controller/network/{nwid}/member/{_addr(m)}",
                              {"authorized": True})  # fmt: skip
        assert status == 200
    assert wait_until(lambda: _v4(a, nwid) is not None and _v4(b, nwid) is not None, 60)
    a4, b4 = _v4(a, nwid), _v4(b, nwid)
    assert a4 and b4
    assert wait_until(lambda: a.ping(b4, count=1), 30)

    # Existing members ping each other through the whole switch.
    pinger = a.ns.popen(
        ["ping", "-4", "-n", "-c", str(PING_COUNT), "-i", str(PING_INTERVAL), "-W", "1", b4],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(2)
        killed = time.monotonic()
        assert ctrl1.proc is not None
        ctrl1.proc.send_signal(signal.SIGKILL)
        ctrl1.proc.wait(10)
        assert wait_until(ctrl2.online, 30), _log(ctrl2)
        takeover = time.monotonic() - killed
        # A new member authorized through the new active's API joins and is served.
        c.start()
        assert wait_until(c.online, 60)
        assert c.cli("join", nwid)[0] == 0
        assert wait_until(lambda: _network_of(c, nwid) is not None, 30)
        status, _ = ctrl2.api("POST", f"/controller/network/{nwid}/member/{_addr(c)}",
                              {"authorized": True})  # fmt: skip
        assert status == 200
        assert wait_until(lambda: _v4(c, nwid) is not None, 60), _network_of(c, nwid)
        c4 = _v4(c, nwid)
        assert c4 and wait_until(lambda: c.ping(a4, count=1), 30)
        out, _ = pinger.communicate(timeout=PING_COUNT * PING_INTERVAL + 30)
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.wait(5)
    got = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert got, out
    sent, received = int(got.group(1)), int(got.group(2))
    print(f"takeover {takeover:.1f} s; a->b pings during the switch: {received}/{sent}")
    assert takeover < 30
    assert received >= sent - 3, out  # members kept their addresses and their path

    # Members keep their addresses; deauthorizing b through the new active cuts it off.
    assert _v4(a, nwid) == a4 and _v4(b, nwid) == b4
    status, _ = ctrl2.api("POST", f"/controller/network/{nwid}/member/{_addr(b)}",
                          {"authorized": False})  # fmt: skip
    assert status == 200
    cut = time.monotonic()
    assert wait_until(lambda: not a.ping(b4, count=1), 180)
    print(f"b cut off {time.monotonic() - cut:.1f} s after its deauthorization")

    # Either host: the first one comes back as the standby, takes over when the second
    # dies in turn, and authorization changes through its API reach the members too.
    stood_by = _log(ctrl1).count("standing by")
    ctrl1.start()
    assert wait_until(lambda: _log(ctrl1).count("standing by") > stood_by, 30), _log(ctrl1)
    assert ctrl2.proc is not None
    ctrl2.proc.send_signal(signal.SIGKILL)
    ctrl2.proc.wait(10)
    assert wait_until(ctrl1.online, 30), _log(ctrl1)
    status, _ = ctrl1.api("POST", f"/controller/network/{nwid}/member/{_addr(b)}",
                          {"authorized": True})  # fmt: skip
    assert status == 200
    assert wait_until(lambda: a.ping(b4, count=1), 180), _network_of(b, nwid)
    status, _ = ctrl1.api("POST", f"/controller/network/{nwid}/member/{_addr(c)}",
                          {"authorized": False})  # fmt: skip
    assert status == 200
    assert wait_until(lambda: not a.ping(c4, count=1), 180)
