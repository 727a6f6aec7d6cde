"""A private network of ztone processes forced onto the pure-Python path (root only).

The same lab as ``test_private_network`` (root, controller, two members in network
namespaces, private planet), every daemon started with ``ZTONE_PURE=1``: members get
configured and ping each other over IPv4 (also 2400 bytes, two datagrams per packet
on the underlay) and IPv6, with every packet armored and de-armored by the
pure-Python AES-GMAC-SIV and Salsa20/Poly1305 code.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ztone.cli import idtool

from .netns import Lan, bridge_namespaces
from .test_private_network import PORT, Member, _identity, _network_of, _skip_reason, wait_until

pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


class PureMember(Member):
    def start(self) -> None:
        log = open(self.home.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        self.proc = self.ns.popen(
            [sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{PORT}", str(self.home)],
            stdout=log, stderr=log, env={**os.environ, "ZTONE_PURE": "1"},
        )  # fmt: skip


@pytest.fixture
def pure_lab(tmp_path: Path) -> Iterator[tuple[Lan, dict[str, PureMember]]]:
    with bridge_namespaces(4, "198.18.0.0/24", None) as lan:
        names = ["root", "ctrl", "a", "b"]
        members = {
            n: PureMember(n, lan.hosts[i], tmp_path / n, str(lan.v4[i].ip))
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


def test_pure_python_network_pings(pure_lab: tuple[Lan, dict[str, PureMember]]) -> None:
    _, m = pure_lab
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
    for node in m.values():
        assert node.stop() == 0
        log = (node.home.parent / f"{node.name}.log").read_text()
        assert "(crypto: pure)" in log and "Traceback" not in log, log
