"""No-root mode end to end (issue 15): a ztone member run as ``nobody`` joins a network
through its user-space stack (root only: it builds the namespaces).

Namespaces on one bridge (198.18.0.0/24, no default route), a private planet: a ztone
root, a ztone controller, a ztone member with a Linux TAP port (root) and a ztone
member run as ``nobody`` with ``-U`` (no capabilities, so no TAP: it gets a user-space
port by itself). Checks: the TAP member pings the no-root member (IPv4 and IPv6,
rfc4193 and 6plane); through the no-root member's SOCKS5 server an HTTP GET (curl)
reaches a server on the TAP member, 16 MiB cross byte-identical each way and a UDP
datagram is echoed (UDP ASSOCIATE); a port forward exposes the no-root member's local
echo service to the TAP member; a network set to ``portBackend: tap`` shows PORT_ERROR.

The interpreter of this test run may live where ``nobody`` cannot reach (pyenv under
``/root``): the no-root daemon's command first bind-mounts it onto a directory
``nobody`` can read, inside the private mount namespace ``ip netns exec`` gives every
command, then drops to ``nobody`` with ``setpriv``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ztone.cli import idtool

from .netns import Lan, bridge_namespaces
from .test_private_network import PORT, Member, _identity, _network_of, _skip_reason, wait_until

SRC = Path(__file__).resolve().parents[2] / "src"
TOOLS = str(Path(__file__).resolve().parent / "noroot_tools.py")
NOBODY = "nobody"
SOCKS_PORT = 1080
MIB16 = 16 * 1024 * 1024


def _no_root_skip() -> str | None:
    reason = _skip_reason()
    if reason:
        return reason
    for tool in ("setpriv", "curl", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import pwd  # noqa: PLC0415

        pwd.getpwnam(NOBODY)
    except KeyError:
        return "no user nobody"
    return None


pytestmark = pytest.mark.skipif(_no_root_skip() is not None, reason=str(_no_root_skip()))


@dataclass
class NoRootMember(Member):
    """A member run as ``nobody`` (see the module); ``python`` is the mount point."""

    python: Path = Path()

    def start(self) -> None:
        log = open(self.home.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        prefix = Path(sys.base_prefix)
        exe = self.python / Path(sys.executable).relative_to(Path(sys.executable).parents[1])
        script = (
            f"mount --bind {prefix} {self.python} && exec env "
            f"LD_LIBRARY_PATH={self.python / 'lib'} PYTHONHOME={self.python} "
            f"PYTHONPATH={SRC} HOME={self.home} "
            f"setpriv --reuid={NOBODY} --regid=nogroup --clear-groups -- "
            f"{exe} -m ztone.cli.daemon -U -p{PORT} {self.home}"
        )
        self.proc = self.ns.popen(["sh", "-c", script], stdout=log, stderr=log)


def _tool(m: Member, *args: str, timeout: float = 180) -> str:
    r = m.ns.run([sys.executable, TOOLS, *args], timeout=timeout, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lan, dict[str, Member], Path]]:
    # nobody must reach its home: not under pytest's root-only tmp_path
    shared = Path(tempfile.mkdtemp(prefix="ztone-noroot-"))
    os.chmod(shared, 0o755)
    try:
        with bridge_namespaces(4, "198.18.0.0/24", None) as lan:
            names = ["root", "ctrl", "tap", "noroot"]
            members: dict[str, Member] = {}
            for i, n in enumerate(names):
                base = shared if n == "noroot" else tmp_path
                if n == "noroot":
                    (shared / "python").mkdir()
                    members[n] = NoRootMember(n, lan.hosts[i], base / n, str(lan.v4[i].ip),
                                              python=shared / "python")  # fmt: skip
                else:
                    members[n] = Member(n, lan.hosts[i], base / n, str(lan.v4[i].ip))
            _, root_public = _identity(0)
            assert idtool.main(["genplanet", "--out", str(tmp_path / "planet"), "--id", "0x5a5a",
                                f"{root_public}@{members['root'].ip}/{PORT}"]) == 0  # fmt: skip
            for m in members.values():
                m.home.mkdir()
                shutil.copy(tmp_path / "planet", m.home / "planet")
                (m.home / "local.conf").write_text(
                    json.dumps({"settings": {"allowSecondaryPort": False}})
                )
            (members["root"].home / "identity.secret").write_text(_identity(0)[0])
            (members["ctrl"].home / "identity.secret").write_text(_identity(1)[0])
            try:
                for n in ("root", "ctrl", "tap"):
                    members[n].start()
                yield lan, members, shared
            finally:
                for m in members.values():
                    m.stop()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _chown_tree(path: Path, user: str) -> None:
    shutil.chown(path, user)
    for p in path.rglob("*"):
        shutil.chown(p, user)


def _addresses(net: dict[str, Any]) -> tuple[str, str]:
    """The IPv4 and the rfc4193 (/88) address."""
    v4 = next(x.split("/")[0] for x in net["assignedAddresses"] if "." in x)
    v6 = next(x.split("/")[0] for x in net["assignedAddresses"] if x.endswith("/88"))
    return v4, v6


def test_no_root_member(lab: tuple[Lan, dict[str, Member], Path]) -> None:
    _, m, shared = lab
    root, ctrl, tap, noroot = m["root"], m["ctrl"], m["tap"], m["noroot"]
    for node in (root, ctrl, tap):
        assert wait_until(node.online, 60), (node.name, node.cli("info"))
    ctrl_addr = (ctrl.home / "identity.public").read_text()[:10]
    status, network = ctrl.api("POST", f"/controller/network/{ctrl_addr}______", {
        "name": "noroot",
        "private": True,
        "v4AssignMode": {"zt": True},
        "v6AssignMode": {"rfc4193": True, "6plane": True, "zt": False},
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": "198.19.0.0/24", "via": None}],
    })  # fmt: skip
    assert status == 200, network
    nwid = network["id"]
    # a second network that must not get a user-space port ("tap" for it): it may not
    # say OK without a working port
    status, other = ctrl.api("POST", f"/controller/network/{ctrl_addr}______",
                             {"name": "tap-only", "private": False})  # fmt: skip
    assert status == 200, other

    # the no-root member: SOCKS5 on 127.0.0.1:1080, overlay TCP 7777 -> its local echo 7000
    (noroot.home / "local.conf").write_text(json.dumps({"settings": {
        "allowSecondaryPort": False,
        "socks5": {"enabled": True, "port": SOCKS_PORT},
        "networks": {nwid: {"forwards": [
            {"direction": "in", "proto": "tcp", "listenPort": 7777, "to": "127.0.0.1:7000"},
        ]}, other["id"]: {"portBackend": "tap"}},
    }}))  # fmt: skip
    _chown_tree(noroot.home, NOBODY)
    noroot.start()
    assert wait_until(noroot.online, 60), (noroot.cli("info"), _log(shared))
    assert noroot.proc is not None
    status_line = Path(f"/proc/{noroot.proc.pid}/status").read_text()
    assert "Uid:\t65534" in status_line and "CapEff:\t0000000000000000" in status_line

    for node in (tap, noroot):
        rc, out = node.cli("join", nwid)
        assert rc == 0 and out.strip() == "200 join OK", out
        addr = (node.home / "identity.public").read_text()[:10]
        status, member = ctrl.api("POST", f"/controller/network/{nwid}/member/{addr}",
                                  {"authorized": True})  # fmt: skip
        assert status == 200 and member["authorized"] is True

    def configured(x: Member) -> bool:
        net = _network_of(x, nwid)
        return bool(net and net["status"] == "OK" and len(net["assignedAddresses"]) == 3)

    assert wait_until(lambda: configured(tap) and configured(noroot), 60), (
        _network_of(tap, nwid), _network_of(noroot, nwid), _log(shared),
    )  # fmt: skip
    net_nr, net_tap = _network_of(noroot, nwid), _network_of(tap, nwid)
    assert net_nr is not None and net_tap is not None
    assert net_nr["portDeviceName"] == f"ztus-{nwid}"
    assert net_nr["ztone"]["portBackend"] == "userspace"
    assert net_nr["ztone"]["socks5"] == [f"127.0.0.1:{SOCKS_PORT}"]
    assert "ztone" not in net_tap  # a TAP network's object stays zerotier-one's
    rc, out = noroot.cli("listnetworks")
    line = next(x for x in out.splitlines() if nwid in x and "<nwid>" not in x)
    assert line.split(" ")[2:] == [
        nwid,
        "noroot",
        net_nr["mac"],
        "OK",
        "PRIVATE",
        f"ztus-{nwid}",
        ",".join(net_nr["assignedAddresses"]),
    ], line
    nr4, nr6 = _addresses(net_nr)
    nr6plane = next(x.split("/")[0] for x in net_nr["assignedAddresses"] if x.startswith("fc"))
    tap4, _ = _addresses(net_tap)

    # ping from the TAP member, IPv4 and IPv6
    assert wait_until(lambda: tap.ping(nr4, count=1), 30), _log(shared)
    assert tap.ping(nr4) and tap.ping(nr6, v6=True) and tap.ping(nr6plane, v6=True)
    assert tap.ping(nr4, size=2000)
    assert net_nr["ztone"]["forwards"][0]["status"] == "listening"

    # HTTP through SOCKS5 (curl), to a server on the TAP member
    www = tap.home.parent / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from the TAP member\n")
    (www / "big.bin").write_bytes(os.urandom(MIB16))
    tap.ns.popen([sys.executable, "-m", "http.server", "8080", "--bind", tap4,
                  "--directory", str(www)], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    proxy = f"127.0.0.1:{SOCKS_PORT}"
    r = noroot.ns.run(["curl", "-sS", "--max-time", "60", "--socks5", proxy,
                       f"http://{tap4}:8080/hello.txt"], check=False)  # fmt: skip
    assert r.returncode == 0 and r.stdout == "hello from the TAP member\n", r.stderr
    # 16 MiB TAP member -> no-root member (a GET of big.bin), byte-identical
    got = shared / "big.got"
    r = noroot.ns.run(["curl", "-sS", "--max-time", "170", "--socks5", proxy, "-o", str(got),
                       f"http://{tap4}:8080/big.bin"], timeout=180, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert got.read_bytes() == (www / "big.bin").read_bytes()
    # 16 MiB no-root member -> TAP member, byte-identical (the sink answers a SHA-256)
    tap.ns.popen([sys.executable, TOOLS, "sink", "9000"])
    time.sleep(1.0)
    answer, sent = _tool(noroot, "socks-upload", str(SOCKS_PORT), tap4, "9000",
                         str(MIB16), "15").split()  # fmt: skip
    assert answer == sent
    # UDP through SOCKS5 (UDP ASSOCIATE) to a UDP echo on the TAP member
    tap.ns.popen([sys.executable, TOOLS, "udp-echo", "9053", "5"])
    time.sleep(1.0)
    assert _tool(noroot, "socks-udp", str(SOCKS_PORT), tap4, "9053") == "same"
    # a closed port: connection refused (REP 5); an address no network reaches: REP 3
    assert _tool(noroot, "socks-reply", str(SOCKS_PORT), tap4, "9") == "5"
    assert _tool(noroot, "socks-reply", str(SOCKS_PORT), "203.0.113.9", "80") == "3"

    # without a working port, a network says PORT_ERROR, never OK
    rc, out = noroot.cli("join", other["id"])
    assert rc == 0, out
    assert wait_until(lambda: (_network_of(noroot, other["id"]) or {}).get("status")
                      == "PORT_ERROR", 60), _network_of(noroot, other["id"])  # fmt: skip
    net_other = _network_of(noroot, other["id"])
    assert net_other is not None and net_other["portError"] == -999
    rc, out = noroot.cli("listnetworks")
    assert any(other["id"] in x and " PORT_ERROR " in x for x in out.splitlines()), out

    # the port forward: the TAP member reaches the no-root member's local echo service
    noroot.ns.popen([sys.executable, TOOLS, "echo", "7000", "2"])
    time.sleep(1.0)
    assert _tool(tap, "echo-client", nr4, "7777", str(256 * 1024)) == "same"
    assert noroot.proc.poll() is None, _log(shared)


def _log(shared: Path) -> str:
    try:
        return (shared / "noroot.log").read_text()[-4000:]
    except OSError as e:
        return str(e)
