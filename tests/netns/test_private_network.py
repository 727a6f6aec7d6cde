"""A whole private ZeroTier network made of ztone processes in network namespaces (root only).

ztone root + ztone controller + two ztone members, each in its own namespace on
one bridge (198.18.0.0/24, no default route). A private planet comes from
``ztone-idtool genplanet``; the network is created and members authorized through
the controller's ``/controller`` API; members get IPs from the pool and ping each
other over IPv4 and IPv6 (rfc4193), including 2400-byte pings fragmented on the
underlay. Then: deauthorization cuts a member off, restarting the controller keeps
everything, leaving removes the port, shutdown removes every port.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ztone.cli import idtool

from .netns import Lan, Namespace, bridge_namespaces, netns_unavailable

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
PORT = 9993


def _skip_reason() -> str | None:
    reason = netns_unavailable()
    if reason:
        return reason
    if shutil.which("ping") is None:
        return "ping is not installed (apt-get install iputils-ping)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def _identity(i: int) -> tuple[str, str]:
    entry = json.loads((VECTORS / "identities.json").read_text())["identities"][i]
    return entry["secret"], entry["public"]


def wait_until(condition: Any, timeout: float, interval: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


@dataclass
class Member:
    name: str
    ns: Namespace
    home: Path
    ip: str
    proc: Any = None

    def start(self) -> None:
        log = open(self.home.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        self.proc = self.ns.popen(
            [sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{PORT}", str(self.home)],
            stdout=log, stderr=log,
        )  # fmt: skip

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return -1 if self.proc is None else int(self.proc.returncode)
        self.proc.terminate()
        try:
            return int(self.proc.wait(15))
        except Exception:
            self.proc.kill()
            return int(self.proc.wait(5))

    def cli(self, *args: str, check: bool = False) -> tuple[int, str]:
        r = self.ns.run([sys.executable, "-m", "ztone.cli.cli", f"-D{self.home}", *args],
                        timeout=60, check=check)  # fmt: skip
        return r.returncode, r.stdout + r.stderr

    def api(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        script = (
            "import json,sys,urllib.request\n"
            "method, path, body, token = sys.argv[1:5]\n"
            "req = urllib.request.Request('http://127.0.0.1:%d' % int(sys.argv[5]) + path,\n"
            "    data=body.encode() if body else None, method=method,\n"
            "    headers={'X-ZT1-Auth': token})\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=20)\n"
            "    print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); print(e.read().decode())\n"
        )
        token = (self.home / "authtoken.secret").read_text().strip()
        payload = json.dumps(body) if body is not None else ""
        r = self.ns.run([sys.executable, "-c", script, method, path, payload, token, str(PORT)],
                        timeout=60)  # fmt: skip
        status, _, text = r.stdout.partition("\n")
        return int(status), json.loads(text) if text.strip() else None

    def ping(self, target: str, size: int = 56, count: int = 2, v6: bool = False) -> bool:
        cmd = ["ping", "-6" if v6 else "-4", "-c", str(count), "-W", "2", "-s", str(size), target]
        return self.ns.run(cmd, timeout=30, check=False).returncode == 0

    def online(self) -> bool:
        rc, out = self.cli("info")
        return rc == 0 and out.strip().endswith("ONLINE")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lan, dict[str, Member]]]:
    with bridge_namespaces(4, "198.18.0.0/24", None) as lan:
        names = ["root", "ctrl", "a", "b"]
        members = {
            n: Member(n, lan.hosts[i], tmp_path / n, str(lan.v4[i].ip)) for i, n in enumerate(names)
        }
        root_secret, root_public = _identity(0)
        ctrl_secret, _ = _identity(1)
        assert idtool.main(["genplanet", "--out", str(tmp_path / "planet"), "--id", "0x5a5a",
                            f"{root_public}@{members['root'].ip}/{PORT}"]) == 0  # fmt: skip
        for m in members.values():
            m.home.mkdir()
            shutil.copy(tmp_path / "planet", m.home / "planet")
            (m.home / "local.conf").write_text(
                json.dumps({"settings": {"allowSecondaryPort": False}})
            )
        (members["root"].home / "identity.secret").write_text(root_secret)
        (members["ctrl"].home / "identity.secret").write_text(ctrl_secret)
        try:
            for m in members.values():
                m.start()
            yield lan, members
        finally:
            for m in members.values():
                m.stop()


def _network_of(m: Member, nwid: str) -> dict[str, Any] | None:
    status, nets = m.api("GET", "/network")
    if status != 200:
        return None
    return next((n for n in nets if n["id"] == nwid), None)


@dataclass
class Joined:
    """A network the controller made, with members a and b authorized and configured."""

    nwid: str
    net_a: dict[str, Any]
    net_b: dict[str, Any]
    a4: str
    b4: str
    a6: str
    b6: str


def create_network(m: dict[str, Member]) -> Joined:
    """Wait for every node, create a network on ``ctrl``, let a and b join (denied
    first), authorize them and wait for both to be configured."""
    root, ctrl, a, b = m["root"], m["ctrl"], m["a"], m["b"]
    for node in (root, ctrl, a, b):
        assert wait_until(node.online, 60), (node.name, node.cli("info"))
    ctrl_addr = (ctrl.home / "identity.public").read_text()[:10]

    # the controller creates the network (random id under its address)
    status, network = ctrl.api("POST", f"/controller/network/{ctrl_addr}______", {
        "name": "lab",
        "private": True,
        "v4AssignMode": {"zt": True},
        "v6AssignMode": {"rfc4193": True, "6plane": False, "zt": False},
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": "198.19.0.0/24", "via": None}],
    })  # fmt: skip
    assert status == 200, network
    nwid = network["id"]
    assert nwid.startswith(ctrl_addr)

    for node in (a, b):
        rc, out = node.cli("join", nwid)
        assert rc == 0 and out.strip() == "200 join OK", out
    # unauthorized at first: the controller lists them, they are denied
    assert wait_until(lambda: all((_network_of(x, nwid) or {}).get("status") == "ACCESS_DENIED"
                                  for x in (a, b)), 60)  # fmt: skip
    for node in (a, b):
        addr = (node.home / "identity.public").read_text()[:10]
        status, member = ctrl.api("POST", f"/controller/network/{nwid}/member/{addr}",
                                  {"authorized": True})  # fmt: skip
        assert status == 200 and member["authorized"] is True

    def configured(x: Member) -> bool:
        net = _network_of(x, nwid)
        return bool(net and net["status"] == "OK" and len(net["assignedAddresses"]) == 2)

    assert wait_until(lambda: configured(a) and configured(b), 60), (
        _network_of(a, nwid),
        _network_of(b, nwid),
    )
    net_a, net_b = _network_of(a, nwid), _network_of(b, nwid)
    assert net_a is not None and net_b is not None
    a4 = next(x.split("/")[0] for x in net_a["assignedAddresses"] if "." in x)
    b4 = next(x.split("/")[0] for x in net_b["assignedAddresses"] if "." in x)
    b6 = next(x.split("/")[0] for x in net_b["assignedAddresses"] if ":" in x)
    a6 = next(x.split("/")[0] for x in net_a["assignedAddresses"] if ":" in x)
    return Joined(nwid, net_a, net_b, a4, b4, a6, b6)


def test_private_network_end_to_end(lab: tuple[Lan, dict[str, Member]]) -> None:
    _, m = lab
    ctrl, a, b = m["ctrl"], m["a"], m["b"]
    joined = create_network(m)
    nwid, net_a, net_b = joined.nwid, joined.net_a, joined.net_b
    a4, b4, a6, b6 = joined.a4, joined.b4, joined.a6, joined.b6
    assert a4.startswith("198.19.0.") and b4.startswith("198.19.0.")
    assert (
        net_a["portDeviceName"].startswith("zt") and net_a["routes"][0]["target"] == "198.19.0.0/24"
    )
    # the addresses and the route are on the member's TAP
    dev = net_a["portDeviceName"]
    shown = a.ns.ip("-j", "addr", "show", "dev", dev).stdout
    assert a4 in shown and a6 in shown

    # ping both ways, IPv4 and IPv6, small and 2400 bytes (fragmented on the underlay)
    assert wait_until(lambda: a.ping(b4, count=1), 30)
    assert a.ping(b4) and b.ping(a4)
    assert a.ping(b6, v6=True) and b.ping(a6, v6=True)
    assert a.ping(b4, size=2400) and b.ping(a4, size=2400)
    assert a.ping(b6, size=2400, v6=True)

    # deauthorizing b cuts it off (revocation pushed by the controller)
    b_addr = (b.home / "identity.public").read_text()[:10]
    t0 = time.monotonic()
    status, _ = ctrl.api(
        "POST", f"/controller/network/{nwid}/member/{b_addr}", {"authorized": False}
    )
    assert status == 200
    assert wait_until(lambda: not a.ping(b4, count=1), 30)
    cut_after = time.monotonic() - t0
    assert cut_after < 30

    # restarting the controller keeps every network and member
    assert ctrl.stop() == 0
    ctrl.start()
    assert wait_until(ctrl.online, 60)
    status, nets = ctrl.api("GET", "/controller/network")
    assert status == 200 and nwid in nets
    status, members = ctrl.api("GET", f"/controller/network/{nwid}/member")
    assert status == 200 and b_addr in members and len(members) == 2
    status, member_b = ctrl.api("GET", f"/controller/network/{nwid}/member/{b_addr}")
    assert status == 200 and member_b["authorized"] is False

    # leaving removes the port with its addresses and route
    rc, out = a.cli("leave", nwid)
    assert rc == 0 and out.strip() == "200 leave OK"
    assert wait_until(lambda: dev not in a.ns.ip("-j", "link").stdout, 15)
    assert "198.19.0.0/24" not in a.ns.ip("route").stdout
    assert not (a.home / "networks.d" / f"{nwid}.conf").exists()

    # shutdown removes b's port too
    dev_b = net_b["portDeviceName"]
    assert dev_b in b.ns.ip("-j", "link").stdout
    assert b.stop() == 0
    assert dev_b not in b.ns.ip("-j", "link").stdout
