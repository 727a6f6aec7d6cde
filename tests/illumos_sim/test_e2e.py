"""Acceptance: a ztone node on the illumos backend in a private ZeroTier network (root only).

Four namespaces on one underlay bridge (198.18.0.0/24, no default route; made by
``tests/netns/netns.py``): a ztone root, a ztone controller, a ztone member on the
Linux TAP backend and a ztone member on the illumos backend. The illumos member's
daemon runs under the OmniOS simulation (``daemon_command``: the environment
``sim_daemon`` and README.md use, ``ZTONE_TAP_BACKEND=illumos``, the simulated
dladm/ifconfig/route and the shim libdlpi); the others use Linux TAP.

The network is created and both members authorized through the controller's API.
Then: pings both ways between the illumos and the Linux member, IPv4 and IPv6
(rfc4193), 56 and 2400 bytes; ``kill -9`` of the illumos daemon leaves its links,
the restarted daemon removes them (``cleanup_stale``), rejoins from ``networks.d``
and the pings work again; ``ztone-cli leave`` removes the addresses, routes, both
VNICs and the etherstub (checked with the simulation's dladm and ifconfig and with
``ip`` in the namespace). Every ping and wait is bounded; the namespaces and every
process started here go away at the end.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netns.netns import bridge_namespaces, netns_unavailable
from ztone.cli import idtool
from ztone.osdep.illumos.names import link_names

from .conftest import daemon_command
from .simenv import SimEnv, unavailable_reason

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
PORT = 9993
SUBNET4 = "198.19.0.0/24"
VIA_SUBNET = "198.19.1.0/24"


def _skip_reason() -> str | None:
    reason = unavailable_reason() or netns_unavailable()
    if reason:
        return reason
    if shutil.which("ping") is None:
        return "ping is not installed (apt-get install iputils-ping)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun (the Linux member needs a TAP device)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def run(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class Node:
    """One ztone daemon in one namespace; ``sim`` set = illumos backend under the simulation."""

    name: str
    netns: str
    home: Path
    underlay: str
    sim: SimEnv | None = None
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.home.parent / f"{self.name}.log"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` inside this node's namespace (and, for illumos, the simulation)."""
        if self.sim is not None:
            return self.sim.command(self.netns, list(argv))
        return ["ip", "netns", "exec", self.netns, *argv]

    def start(self) -> None:
        if self.sim is not None:
            argv = daemon_command(self.sim, self.netns, self.home, PORT)
        else:
            argv = self.wrap(
                [sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{PORT}", str(self.home)]
            )
        with open(self.log, "ab") as log:
            # ip netns exec and env exec the daemon: this pid is the daemon's.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.pids.append(self.proc.pid)

    def stop(self) -> int:
        proc = self.proc
        if proc is None:
            return -1
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return int(proc.returncode)

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def cli(self, *args: str) -> tuple[int, str]:
        r = run(self.wrap([sys.executable, "-m", "ztone.cli.cli", f"-D{self.home}", *args]))
        return r.returncode, r.stdout + r.stderr

    def api(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        script = (
            "import json,sys,urllib.request\n"
            "method, path, body, token, port = sys.argv[1:6]\n"
            "req = urllib.request.Request('http://127.0.0.1:%d' % int(port) + path,\n"
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
        r = run(self.wrap([sys.executable, "-c", script, method, path, payload, token, str(PORT)]))
        status, _, text = r.stdout.partition("\n")
        if not status.strip().isdigit():
            return 0, r.stderr
        return int(status), json.loads(text) if text.strip() else None

    def online(self) -> bool:
        rc, out = self.cli("info")
        return rc == 0 and out.strip().endswith("ONLINE")

    def address(self) -> str:
        return (self.home / "identity.public").read_text()[:10]

    def network(self, nwid: str) -> dict[str, Any] | None:
        status, nets = self.api("GET", "/network")
        if status != 200:
            return None
        return next((n for n in nets if n["id"] == nwid), None)

    def assigned(self, nwid: str) -> tuple[str, str]:
        """(IPv4, IPv6) assigned to this node in ``nwid``."""
        net = self.network(nwid)
        assert net is not None
        addrs = [a.split("/")[0] for a in net["assignedAddresses"]]
        return next(a for a in addrs if "." in a), next(a for a in addrs if ":" in a)

    def ping(self, target: str, size: int = 56, count: int = 2) -> bool:
        v6 = ":" in target
        cmd = ["ping", "-6" if v6 else "-4", "-c", str(count), "-W", "2", "-s", str(size), target]
        return run(self.wrap(cmd), timeout=30).returncode == 0

    def ip(self, *args: str) -> str:
        return run(["ip", "-n", self.netns, *args], timeout=30).stdout

    def sim_tool(self, tool: str, *args: str) -> str:
        assert self.sim is not None
        r = run(self.wrap([str(self.sim.sbin / tool), *args]), timeout=30)
        assert r.returncode == 0, (tool, args, r.stdout, r.stderr)
        return r.stdout

    def sim_links(self) -> dict[str, str]:
        """The simulation's ``dladm show-link``: name -> class."""
        out = self.sim_tool("dladm", "show-link", "-p", "-o", "link,class")
        return dict(line.split(":", 1) for line in out.splitlines() if line)

    def end(self) -> None:
        """End every daemon this node started (by pid)."""
        self.stop()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                os.kill(pid, signal.SIGKILL)


def _identity(i: int) -> tuple[str, str]:
    entry = json.loads((VECTORS / "identities.json").read_text())["identities"][i]
    return entry["secret"], entry["public"]


@pytest.fixture
def lab(sim: SimEnv, tmp_path: Path) -> Iterator[dict[str, Node]]:
    with bridge_namespaces(4, "198.18.0.0/24", None) as lan:
        roles = ["root", "ctrl", "linux", "illumos"]
        nodes = {
            role: Node(role, lan.hosts[i].name, tmp_path / role, str(lan.v4[i].ip),
                       sim if role == "illumos" else None)
            for i, role in enumerate(roles)
        }  # fmt: skip
        root_secret, root_public = _identity(0)
        ctrl_secret, _ = _identity(1)
        assert idtool.main(["genplanet", "--out", str(tmp_path / "planet"), "--id", "0x5a5a",
                            f"{root_public}@{nodes['root'].underlay}/{PORT}"]) == 0  # fmt: skip
        for node in nodes.values():
            node.home.mkdir()
            shutil.copy(tmp_path / "planet", node.home / "planet")
            (node.home / "local.conf").write_text(
                json.dumps({"settings": {"allowSecondaryPort": False}})
            )
        (nodes["root"].home / "identity.secret").write_text(root_secret)
        (nodes["ctrl"].home / "identity.secret").write_text(ctrl_secret)
        try:
            for node in nodes.values():
                node.start()
            yield nodes
        finally:
            for node in nodes.values():
                node.end()


def _diagnose(nodes: dict[str, Node], nwid: str = "") -> str:
    parts = []
    for node in nodes.values():
        tail = node.log.read_text(errors="replace")[-3000:] if node.log.exists() else ""
        net = node.network(nwid) if nwid else None
        parts.append(f"--- {node.name}: {json.dumps(net)}\n{tail}")
    return "\n".join(parts)


def test_illumos_member_in_a_private_network(lab: dict[str, Node]) -> None:
    t_start = time.monotonic()
    root, ctrl, lin, ill = lab["root"], lab["ctrl"], lab["linux"], lab["illumos"]
    for node in (root, ctrl, lin, ill):
        assert wait_until(node.online, 60), (node.name, node.cli("info"), _diagnose(lab))
    # the daemon ran the illumos preflight at start, against the simulation
    assert "illumos preflight checks passed" in ill.log.read_text(), _diagnose(lab)

    status, network = ctrl.api("POST", f"/controller/network/{ctrl.address()}______", {
        "name": "illumos-lab",
        "private": True,
        "v4AssignMode": {"zt": True},
        "v6AssignMode": {"rfc4193": True, "6plane": False, "zt": False},
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": SUBNET4, "via": None}],
    })  # fmt: skip
    assert status == 200, network
    nwid = network["id"]
    names = link_names(int(nwid, 16))

    for node in (lin, ill):
        rc, out = node.cli("join", nwid)
        assert rc == 0 and out.strip() == "200 join OK", out
        status, member = ctrl.api("POST", f"/controller/network/{nwid}/member/{node.address()}",
                                  {"authorized": True})  # fmt: skip
        assert status == 200 and member["authorized"] is True, member

    def configured(node: Node) -> bool:
        net = node.network(nwid)
        return bool(net and net["status"] == "OK" and len(net["assignedAddresses"]) == 2)

    assert wait_until(lambda: configured(lin) and configured(ill), 90), _diagnose(lab, nwid)
    net_ill = ill.network(nwid)
    assert net_ill is not None and net_ill["portDeviceName"] == names.visible, net_ill
    ill4, ill6 = ill.assigned(nwid)
    lin4, lin6 = lin.assigned(nwid)
    assert ill6.startswith("fd") and lin6.startswith("fd")

    # the illumos topology, as illumos and as Linux see it
    assert ill.sim_links() == {
        "eth0": "phys", names.etherstub: "etherstub", names.visible: "vnic",
        names.backend: "vnic",
    }  # fmt: skip
    ifconfig = ill.sim_tool("ifconfig", "-a")
    assert ill4 in ifconfig and ill6 in ifconfig, ifconfig
    shown = ill.ip("-j", "addr", "show", "dev", names.visible)
    assert ill4 in shown and ill6 in shown, shown
    assert SUBNET4 in ill.ip("route"), ill.ip("route")
    six = next(a for a in net_ill["assignedAddresses"] if ":" in a)
    rfc4193 = ipaddress.ip_interface(six).network
    assert str(rfc4193) in ill.ip("-6", "route"), ill.ip("-6", "route")

    # a route via the Linux member: ``route -n add`` on the illumos side
    status, _ = ctrl.api("POST", f"/controller/network/{nwid}", {"routes": [
        {"target": SUBNET4, "via": None}, {"target": VIA_SUBNET, "via": lin4},
    ]})  # fmt: skip
    assert status == 200
    via_route = f"{VIA_SUBNET} via {lin4} dev {names.visible}"
    assert wait_until(lambda: via_route in ill.ip("route"), 30), (ill.ip("route"), _diagnose(lab))
    t_configured = time.monotonic()

    def pings() -> None:
        assert wait_until(lambda: ill.ping(lin4, count=1), 30), _diagnose(lab, nwid)
        assert ill.ping(lin4) and lin.ping(ill4)
        assert wait_until(lambda: ill.ping(lin6, count=1), 20), _diagnose(lab, nwid)
        assert ill.ping(lin6) and lin.ping(ill6)
        assert ill.ping(lin4, size=2400) and lin.ping(ill4, size=2400)
        assert ill.ping(lin6, size=2400) and lin.ping(ill6, size=2400)

    pings()
    t_pinged = time.monotonic()

    # kill -9: the links stay behind; the restarted daemon removes them, rejoins the
    # network from networks.d, builds the port again and the pings work again
    ill.kill9()
    assert set(names.all()) <= set(ill.sim_links())
    assert (ill.home / "networks.d" / f"{nwid}.conf").exists()
    ill.start()
    assert wait_until(ill.online, 60), _diagnose(lab, nwid)
    assert wait_until(lambda: configured(ill), 60), _diagnose(lab, nwid)
    log = ill.log.read_text()
    for name in names.all():
        assert f"removed a stale virtual port {name}" in log, log[-3000:]
    assert ill.sim_links() == {
        "eth0": "phys", names.etherstub: "etherstub", names.visible: "vnic",
        names.backend: "vnic",
    }  # fmt: skip
    assert ill.assigned(nwid) == (ill4, ill6)
    assert wait_until(lambda: via_route in ill.ip("route"), 30), ill.ip("route")
    pings()
    t_restarted = time.monotonic()

    # leave: addresses, routes, both VNICs and the etherstub go
    rc, out = ill.cli("leave", nwid)
    assert rc == 0 and out.strip() == "200 leave OK", out
    assert wait_until(lambda: ill.sim_links() == {"eth0": "phys"}, 15), ill.sim_links()
    ifconfig = ill.sim_tool("ifconfig", "-a")
    assert names.visible not in ifconfig and ill4 not in ifconfig and ill6 not in ifconfig
    links = ill.ip("-j", "link")
    assert all(name not in links for name in names.all()), links
    routes = ill.ip("route") + ill.ip("-6", "route")
    assert SUBNET4 not in routes and str(rfc4193) not in routes, routes
    assert VIA_SUBNET not in routes, routes
    assert ill4 not in ill.ip("addr") and ill6 not in ill.ip("addr")
    assert not (ill.home / "networks.d" / f"{nwid}.conf").exists()
    assert not ill.ping(lin4, count=1)

    # a clean shutdown afterwards leaves nothing either
    assert ill.stop() == 0
    assert ill.sim_links() == {"eth0": "phys"}
    print(
        f"timings: configured {t_configured - t_start:.1f} s, pinged "
        f"{t_pinged - t_configured:.1f} s, kill -9 + restart + pings "
        f"{t_restarted - t_pinged:.1f} s, total {time.monotonic() - t_start:.1f} s"
    )
