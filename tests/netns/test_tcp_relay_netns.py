"""TCP fallback relay in namespaces (root only): a member whose UDP is blocked joins
and works through ``ztone-relay``, then returns to direct UDP when UDP is let through.

Namespaces on one bridge (198.18.0.0/24, no default route): ztone root, ztone
controller, members a and b, and a ``ztone-relay``. Every node's
``tcpFallbackRelay`` names that relay (never the default, public one). In a's
namespace, policy-routing rules turn every UDP datagram to or from the LAN into a
blackhole (the ``local`` table is moved behind them so incoming datagrams are
dropped as well); TCP is untouched. ``tcpFallbackRelayAnyScope`` lets the tunnel
carry these private-scope addresses; ``tcpFallbackAfter`` shortens the 60 s wait.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ztone.cli import idtool

from .netns import Lan, Namespace, bridge_namespaces
from .test_private_network import PORT, Member, _identity, _network_of, _skip_reason, wait_until

pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))

RELAY_PORT = 4443
FALLBACK_AFTER = 10_000
HELLO_1_14_1 = bytes([0x17, 0x03, 0x03, 0x00, 0x04, 0x01, 0x0E, 0x00, 0x01])
NAMES = ["root", "ctrl", "a", "b", "relay"]


def block_udp(ns: Namespace) -> None:
    ns.ip("rule", "add", "pref", "100", "lookup", "local")
    ns.ip("rule", "del", "pref", "0")
    ns.ip("rule", "add", "pref", "10", "ipproto", "udp", "to", "198.18.0.0/24", "blackhole")
    ns.ip("rule", "add", "pref", "11", "ipproto", "udp", "from", "198.18.0.0/24",
          "iif", "eth0", "blackhole")  # fmt: skip


def unblock_udp(ns: Namespace) -> None:
    ns.ip("rule", "del", "pref", "10")
    ns.ip("rule", "del", "pref", "11")


def start_relay(ns: Namespace, ip: str, log_path: Path) -> Any:
    log = open(log_path, "ab")  # noqa: SIM115
    return ns.popen(
        [sys.executable, "-m", "ztone.relay.main", "--listen", ip, "--port", str(RELAY_PORT),
         "--udp-bind", ip, "--allow-dest", "198.18.0.0/24", "--stats-interval", "5", "-v"],
        stdout=log, stderr=log,
    )  # fmt: skip


def stop(proc: Any) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except Exception:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def relay_lab(tmp_path: Path) -> Iterator[tuple[Lan, dict[str, Member], Path]]:
    with bridge_namespaces(len(NAMES), "198.18.0.0/24", None) as lan:
        members = {
            n: Member(n, lan.hosts[i], tmp_path / n, str(lan.v4[i].ip)) for i, n in enumerate(NAMES)
        }
        relay_ip = members["relay"].ip
        root_secret, root_public = _identity(0)
        ctrl_secret, _ = _identity(1)
        assert idtool.main(["genplanet", "--out", str(tmp_path / "planet"), "--id", "0x5a5b",
                            f"{root_public}@{members['root'].ip}/{PORT}"]) == 0  # fmt: skip
        for name, m in members.items():
            if name == "relay":
                continue
            m.home.mkdir()
            shutil.copy(tmp_path / "planet", m.home / "planet")
            settings: dict[str, object] = {
                "allowSecondaryPort": False,
                "tcpFallbackRelay": f"{relay_ip}/{RELAY_PORT}",  # never the public default
            }
            if name == "a":
                settings.update(tcpFallbackRelayAnyScope=True, tcpFallbackAfter=FALLBACK_AFTER)
            (m.home / "local.conf").write_text(json.dumps({"settings": settings}))
        (members["root"].home / "identity.secret").write_text(root_secret)
        (members["ctrl"].home / "identity.secret").write_text(ctrl_secret)
        block_udp(members["a"].ns)
        relay_log = tmp_path / "relay.log"
        relay = start_relay(members["relay"].ns, relay_ip, relay_log)
        try:
            for name, m in members.items():
                if name != "relay":
                    m.start()
            yield lan, members, relay_log
        finally:
            for name, m in members.items():
                if name != "relay":
                    m.stop()
            stop(relay)


def status(m: Member) -> dict[str, Any]:
    code, body = m.api("GET", "/status")
    return body if code == 200 and isinstance(body, dict) else {}


def test_tcp_relay_member_behind_udp_block(
    relay_lab: tuple[Lan, dict[str, Member], Path],
) -> None:
    _, m, relay_log = relay_lab
    root, ctrl, a, b = m["root"], m["ctrl"], m["a"], m["b"]
    for node in (root, ctrl, b):
        assert wait_until(node.online, 60), (node.name, node.cli("info"))
    # a only gets online through the tunnel, after the fallback interval
    assert wait_until(lambda: status(a).get("online") is True, 90), (
        a.cli("info"), (a.home.parent / "a.log").read_text()[-3000:], relay_log.read_text()[-2000:]
    )  # fmt: skip
    assert status(a)["tcpFallbackActive"] is True
    assert status(a)["config"]["settings"]["allowTcpFallbackRelay"] is True
    assert a.cli("info")[1].strip().endswith("TUNNELED")
    assert status(b)["tcpFallbackActive"] is False

    ctrl_addr = (ctrl.home / "identity.public").read_text()[:10]
    code, network = ctrl.api("POST", f"/controller/network/{ctrl_addr}______", {
        "name": "relay-lab",
        "private": True,
        "v4AssignMode": {"zt": True},
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": "198.19.0.0/24", "via": None}],
    })  # fmt: skip
    assert code == 200, network
    nwid = network["id"]
    for node in (a, b):
        rc, out = node.cli("join", nwid)
        assert rc == 0 and out.strip() == "200 join OK", out
        addr = (node.home / "identity.public").read_text()[:10]
        code, member = ctrl.api("POST", f"/controller/network/{nwid}/member/{addr}",
                                {"authorized": True})  # fmt: skip
        assert code == 200 and member["authorized"] is True

    def v4(x: Member) -> str | None:
        net = _network_of(x, nwid)
        if not net or net["status"] != "OK":
            return None
        return next((s.split("/")[0] for s in net["assignedAddresses"] if "." in s), None)

    assert wait_until(lambda: v4(a) is not None and v4(b) is not None, 90), (
        _network_of(a, nwid), _network_of(b, nwid)
    )  # fmt: skip
    a4, b4 = v4(a), v4(b)
    assert a4 is not None and b4 is not None
    assert wait_until(lambda: a.ping(b4, count=1), 60)
    assert a.ping(b4) and b.ping(a4)
    assert a.ping(b4, size=2400) and b.ping(a4, size=2400)  # fragments through the tunnel

    # still tunnelled: /peer and listpeers say so, paths carry the real addresses
    assert status(a)["tcpFallbackActive"] is True
    code, peers = a.api("GET", "/peer")
    assert code == 200 and peers and all(p["tunneled"] is True for p in peers)
    root_peer = next(p for p in peers if p["role"] == "PLANET")
    assert any(path["address"] == f"{root.ip}/{PORT}" for path in root_peer["paths"])
    rc, out = a.cli("peers")  # as zerotier-cli: RELAY links and a note (listpeers has none)
    assert rc == 0 and "Currently tunneling through a TCP relay" in out, out
    assert "RELAY " in out and f" {root.ip}/{PORT}" in out, out
    assert "client" in relay_log.read_text()

    # let UDP through: a returns to direct UDP paths and closes the tunnel
    unblock_udp(a.ns)
    assert wait_until(lambda: status(a).get("tcpFallbackActive") is False, 90), (
        a.home.parent / "a.log"
    ).read_text()[-3000:]
    assert a.cli("info")[1].strip().endswith("ONLINE")
    assert wait_until(lambda: a.ping(b4, count=1), 30)

    def direct_to_b() -> bool:
        b_addr = (b.home / "identity.public").read_text()[:10]
        code, peer = a.api("GET", f"/peer/{b_addr}")
        if code != 200 or peer["tunneled"]:
            return False
        return any(p["preferred"] and p["address"] == f"{b.ip}/{PORT}" for p in peer["paths"])

    assert wait_until(lambda: a.ping(b4, count=1) and direct_to_b(), 60), a.api("GET", "/peer")
    assert b.ping(a4)
    rc, out = a.cli("peers")
    assert rc == 0 and "tunneling" not in out, out
    assert "DIRECT   " in out and f" {b.ip}/{PORT}" in out, out


def test_tcp_relay_upstream_framing_across_namespaces(tmp_path: Path) -> None:
    """The relay in its namespace forwards upstream-format records from a namespace
    without UDP to a UDP echo in a third one, and wraps the reply as upstream does."""
    with bridge_namespaces(3, "198.18.0.0/24", None) as lan:
        client_ns, relay_ns, echo_ns = lan.hosts
        relay_ip, echo_ip = str(lan.v4[1].ip), str(lan.v4[2].ip)
        block_udp(client_ns)
        relay = start_relay(relay_ns, relay_ip, tmp_path / "relay.log")
        echo = echo_ns.popen([sys.executable, "-c", (
            "import socket,time\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',7777))\n"
            "s.settimeout(1); end=time.time()+30\n"
            "while time.time()<end:\n"
            "    try: d,a=s.recvfrom(2048); s.sendto(b'echo:'+d,a)\n"
            "    except socket.timeout: pass\n"
        )])  # fmt: skip
        try:
            payload = bytes(range(32))
            dest = bytes([4, *map(int, echo_ip.split("."))]) + struct.pack(">H", 7777)
            record = b"\x17\x03\x03" + struct.pack(">H", len(payload) + 7) + dest + payload
            script = (
                "import socket,sys,time\n"
                "out=bytes.fromhex(sys.argv[3])\n"
                "for _ in range(100):\n"
                "    try: c=socket.create_connection((sys.argv[1],int(sys.argv[2])),2); break\n"
                "    except OSError: time.sleep(0.2)\n"
                "c.settimeout(10); got=b''\n"
                "for _ in range(20):\n"
                "    c.sendall(out)\n"
                "    try: got+=c.recv(4096)\n"
                "    except socket.timeout: continue\n"
                "    if got: break\n"
                "print(got.hex())\n"
                "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "try: u.sendto(b'x',(sys.argv[4],7777)); print('udp-sent')\n"
                "except OSError: print('udp-blocked')\n"
            )
            r = client_ns.run([sys.executable, "-c", script, relay_ip, str(RELAY_PORT),
                               (HELLO_1_14_1 + record).hex(), echo_ip], timeout=120)  # fmt: skip
            got_hex, udp = r.stdout.split()
            reply = b"echo:" + payload
            src = bytes([4, *map(int, echo_ip.split("."))]) + struct.pack(">H", 7777)
            assert bytes.fromhex(got_hex)[: 5 + 7 + len(reply)] == (
                b"\x17\x03\x03" + struct.pack(">H", len(reply) + 7) + src + reply
            )
            assert udp == "udp-blocked"  # the client's own UDP does go nowhere
        finally:
            stop(relay)
            echo.kill()
            echo.wait(5)
