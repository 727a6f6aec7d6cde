"""A private network of ztone processes, once on the native accelerator and once
forced onto the pure-Python path with ``ZTONE_PURE=1`` (root only).

The same lab as ``test_private_network`` (root, controller, two members in network
namespaces, private planet): members get configured, ping each other over IPv4
(also 2400 bytes, two datagrams per packet on the underlay) and IPv6, and move 4 MB
over TCP intact (full-size frames both ways; the receiving port writes runs of
segments merged, see ``ztone.osdep.linux.gro``). In pure mode every packet is
armored and de-armored by the pure-Python AES-GMAC-SIV and Salsa20/Poly1305 code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ztone.cli import idtool
from ztone.crypto import backend

from .netns import Lan, bridge_namespaces
from .test_private_network import PORT, Member, _identity, _network_of, _skip_reason, wait_until

pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@dataclass
class BackendMember(Member):
    pure: bool = False

    def start(self) -> None:
        log = open(self.home.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        env = {**os.environ, "ZTONE_PURE": "1" if self.pure else "0"}
        self.proc = self.ns.popen(
            [sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{PORT}", str(self.home)],
            stdout=log, stderr=log, env=env,
        )  # fmt: skip


SERVER = (
    "import hashlib, socket, sys\n"
    "s = socket.create_server((sys.argv[1], 5301))\n"
    "print('ready', flush=True)\n"
    "c, _ = s.accept()\n"
    "h = hashlib.sha256(); n = 0\n"
    "while (d := c.recv(65536)):\n"
    "    h.update(d); n += len(d)\n"
    "print(n, h.hexdigest(), flush=True)\n"
)
CLIENT = (
    "import hashlib, random, socket, sys\n"
    "data = random.Random(1).randbytes(4 << 20)\n"
    "c = socket.create_connection((sys.argv[1], 5301), timeout=60)\n"
    "c.sendall(data); c.close()\n"
    "print(len(data), hashlib.sha256(data).hexdigest())\n"
)


def tcp_transfer(sender: Member, receiver: Member, receiver_ip: str) -> None:
    """4 MB over TCP from ``sender`` to ``receiver_ip``: same length and hash arrive."""
    server = receiver.ns.popen([sys.executable, "-c", SERVER, receiver_ip],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        sent = sender.ns.run([sys.executable, "-c", CLIENT, receiver_ip], timeout=120)
        got, _ = server.communicate(timeout=60)
        assert got.split() == sent.stdout.split()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)


@pytest.fixture(params=["native", "pure"])
def lab_of(request: pytest.FixtureRequest,
           tmp_path: Path) -> Iterator[tuple[Lan, dict[str, BackendMember]]]:  # fmt: skip
    pure = request.param == "pure"
    if not pure and not backend.native_available():
        pytest.skip("the native accelerator is not built")
    with bridge_namespaces(4, "198.18.0.0/24", None) as lan:
        names = ["root", "ctrl", "a", "b"]
        members = {
            n: BackendMember(n, lan.hosts[i], tmp_path / n, str(lan.v4[i].ip), pure=pure)
            for i, n in enumerate(names)
        }
        root_secret, root_public = _identity(0)
        assert idtool.main(["genplanet", "--out", str(tmp_path / "planet"), "--id", "0x5a5a",
                            f"{root_public}@{members['root'].ip}/{PORT}"]) == 0  # fmt: skip
        for i, m in enumerate(members.values()):
            m.home.mkdir()
            shutil.copy(tmp_path / "planet", m.home / "planet")
            (m.home / "local.conf").write_text(
                json.dumps({"settings": {"allowSecondaryPort": False}})
            )
            (m.home / "identity.secret").write_text(root_secret if i == 0 else _identity(i)[0])
        try:
            for m in members.values():
                m.start()
            yield lan, members
        finally:
            for m in members.values():
                m.stop()


def test_network_pings_and_carries_tcp(lab_of: tuple[Lan, dict[str, BackendMember]]) -> None:
    _, m = lab_of
    ctrl, a, b = m["ctrl"], m["a"], m["b"]
    for node in m.values():
        assert wait_until(node.online, 60), (node.name, node.cli("info"))
    ctrl_addr = (ctrl.home / "identity.public").read_text()[:10]
    status, network = ctrl.api("POST", f"/controller/network/{ctrl_addr}______", {
        "name": "pure", "private": True, "v4AssignMode": {"zt": True},
        "v6AssignMode": {"rfc4193": True, "6plane": False, "zt": False},
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": "198.19.0.0/24", "via": None}],
    })  # fmt: skip
    assert status == 200, network
    nwid = network["id"]
    for node in (a, b):
        rc, out = node.cli("join", nwid)
        assert rc == 0, out
        addr = (node.home / "identity.public").read_text()[:10]
        assert wait_until(
            lambda x=addr: ctrl.api("GET", f"/controller/network/{nwid}/member/{x}")[0] == 200, 60
        )
        status, _ = ctrl.api("POST", f"/controller/network/{nwid}/member/{addr}",
                             {"authorized": True})  # fmt: skip
        assert status == 200

    def configured(x: Member) -> bool:
        net = _network_of(x, nwid)
        return bool(net and net["status"] == "OK" and len(net["assignedAddresses"]) == 2)

    assert wait_until(lambda: configured(a) and configured(b), 60)
    net_a, net_b = _network_of(a, nwid), _network_of(b, nwid)
    assert net_a is not None and net_b is not None
    a4 = next(x.split("/")[0] for x in net_a["assignedAddresses"] if "." in x)
    b4 = next(x.split("/")[0] for x in net_b["assignedAddresses"] if "." in x)
    b6 = next(x.split("/")[0] for x in net_b["assignedAddresses"] if ":" in x)
    assert wait_until(lambda: a.ping(b4, count=1), 30)
    assert a.ping(b4) and b.ping(a4)
    assert a.ping(b4, size=2400) and b.ping(a4, size=2400)
    assert a.ping(b6, v6=True)
    tcp_transfer(a, b, b4)
    tcp_transfer(b, a, a4)
    crypto = "pure" if a.pure else "native"
    for node in m.values():
        assert node.stop() == 0
        log = (node.home.parent / f"{node.name}.log").read_text()
        assert f"(crypto: {crypto})" in log and "Traceback" not in log, log
