"""Real daemons as separate processes on loopback UDP (issue: VL1 runtime acceptance).

A ztone root and two ztone leaves with a private planet made by ``ztone-idtool
genplanet``; ``ztone-cli`` talks to each over its local API. Loopback only; every
wait is bounded; every process is ended by pid.
"""

from __future__ import annotations

import functools
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from daemon_harness import (
    Daemon,
    daemons,
    free_port,
    loopback_conf,
    make_home,
    make_planet,
    vector_identity,
    wait_until,
)

from ztone.cli import cli


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    err = io.StringIO()
    rc = cli.main(list(args), stdout=out, stderr=err)
    return rc, out.getvalue() + err.getvalue()


def _online(home: Path) -> bool:
    rc, out = run_cli(f"-D{home}", "info")
    return rc == 0 and out.strip().endswith("ONLINE")


def test_root_and_two_leaves_on_loopback(tmp_path: Path) -> None:
    root_secret, root_public = vector_identity(0)
    root_port, a_port, b_port = free_port(), free_port(), free_port()
    planet = make_planet(tmp_path, root_public, root_port)
    root_home = make_home(tmp_path / "root", planet, root_secret)
    a_home = make_home(tmp_path / "a", planet)  # leaves make their own identities
    b_home = make_home(tmp_path / "b", planet)
    with daemons() as started:
        started.append(Daemon(root_home, root_port))
        started.append(Daemon(a_home, a_port))
        started.append(Daemon(b_home, b_port))
        for d in started:
            d.wait_for_file("zerotier-one.port")
        for home in (root_home, a_home, b_home):
            assert wait_until(functools.partial(_online, home), 45), home.name
        a_addr = (a_home / "identity.public").read_text()[:10]
        b_addr = (b_home / "identity.public").read_text()[:10]

        def root_sees_both() -> bool:
            """Both leaves listed by the root with a direct path (not "-")."""
            rc, out = run_cli(f"-D{root_home}", "listpeers")
            rows = [ln.split() for ln in out.splitlines()[1:]]
            direct = {r[2] for r in rows if len(r) > 3 and r[3] != "-"}
            return rc == 0 and {a_addr, b_addr} <= direct

        assert wait_until(root_sees_both, 30), run_cli(f"-D{root_home}", "listpeers")[1]
        rc, out = run_cli(f"-D{root_home}", "listpeers")
        lines = out.splitlines()
        assert lines[0] == "200 listpeers <ztaddr> <path> <latency> <version> <role>"
        for addr, port in ((a_addr, a_port), (b_addr, b_port)):
            (line,) = [ln for ln in lines if ln.split()[2] == addr]
            path = line.split()[3]
            assert path.startswith(f"127.0.0.1/{port};"), line
            assert line.split()[5] == "1.14.1"  # ztone reports the protocol-compatible version
            assert line.split()[6] == "LEAF"
        # the leaves see the root as PLANET
        rc, out = run_cli(f"-D{a_home}", "peers")
        assert rc == 0 and "PLANET" in out and "DIRECT" in out
        # the local API refuses requests without the token
        req = urllib.request.Request(f"http://127.0.0.1:{root_port}/status")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 401
        assert e.value.read() == b"{}"
        for d in started:
            assert d.alive()
        codes = [d.stop() for d in started]
        assert codes == [0, 0, 0]
        # state was flushed: the root cached both leaves
        assert {p.name for p in (root_home / "peers.d").iterdir()} >= {
            f"{a_addr}.peer",
            f"{b_addr}.peer",
        }
        assert not (root_home / "zerotier-one.pid").exists()


def test_garbage_datagrams_never_crash_the_daemon(tmp_path: Path) -> None:
    root_secret, root_public = vector_identity(0)
    port = free_port()
    planet = make_planet(tmp_path, root_public, port)
    home = make_home(tmp_path / "root", planet, root_secret)
    rng = random.Random(1234)
    sent = 0
    with daemons() as started:
        d = Daemon(home, port)
        started.append(d)
        d.wait_for_file("zerotier-one.port")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for length in range(0, 1600):  # every length up to past the MTU, once
                data = rng.randbytes(length)
                if length > 20 and rng.random() < 0.3:
                    data = data[:13] + b"\xff" + data[14:]  # also fuzz the fragment path
                s.sendto(data, ("127.0.0.1", port))
                sent += 1
                if sent % 200 == 0:
                    wait_until(lambda: False, 0.05)  # let the daemon drain its buffer
        token = d.token()

        def metrics() -> dict[str, int]:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/metrics", headers={"X-ZT1-Auth": token}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
            out = {}
            for line in text.splitlines():
                if line.startswith("ztone_packets_total{"):
                    name = line.split('"')[1]
                    out[name] = int(line.rsplit(" ", 1)[1])
            return out

        assert wait_until(lambda: metrics().get("rx_datagrams", 0) >= sent, 20), metrics()
        m = metrics()
        assert d.alive()
        assert m["bugs"] == 0
        dropped = sum(v for k, v in m.items() if k.startswith(("rx_bad", "rx_malformed")))
        # every garbage datagram was refused and counted as such (none was a packet
        # from a known peer, so nothing can have been accepted)
        assert dropped + m.get("rx_unknown_source", 0) + m.get("relay_refused", 0) > 0
        assert m["rx_datagrams"] == sent
        rc, out = run_cli(f"-D{home}", "info")
        assert rc == 0 and "ONLINE" in out
        assert d.stop() == 0


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"primaryPort": "abc"}, "settings.primaryPort"),
        ({"allowSecondaryPort": "yes"}, "settings.allowSecondaryPort"),
        ({"bind": ["not-an-ip"]}, "settings.bind"),
        ({"allowManagementFrom": [12]}, "settings.allowManagementFrom"),
    ],
)
def test_bad_local_conf_refuses_to_start(tmp_path: Path, settings: dict[str, object],
                                         key: str) -> None:  # fmt: skip
    conf = json.dumps({"settings": settings})
    home = make_home(tmp_path / "n", None, vector_identity(1)[0], conf)
    proc = subprocess.run(
        [sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{free_port()}", str(home)],
        capture_output=True,
        timeout=60,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert key in proc.stderr, proc.stderr
    assert "fatal error" in proc.stderr


def test_invalid_json_local_conf(tmp_path: Path) -> None:
    home = make_home(tmp_path / "n", None, vector_identity(1)[0], "{not json")
    proc = subprocess.run(
        [sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{free_port()}", str(home)],
        capture_output=True, timeout=60, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "local.conf" in proc.stderr


def test_loopback_conf_helper_is_valid_json() -> None:
    assert json.loads(loopback_conf())["settings"]["allowLoopbackPaths"] is True


def test_fork_returns_once_the_api_answers(tmp_path: Path) -> None:
    """``ztone -d`` returns 0 once its API answers (a CLI command right after works),
    and returns the daemon's failure when it cannot start."""
    _, root_public = vector_identity(0)
    port = free_port()
    home = make_home(tmp_path / "n", make_planet(tmp_path, root_public, free_port()),
                     vector_identity(1)[0])  # fmt: skip
    daemon = [sys.executable, "-m", "ztone.cli.daemon", "-U", "-d", f"-p{port}", str(home)]
    proc = subprocess.run(daemon, capture_output=True, timeout=90, text=True, check=False)
    pid = int((home / "zerotier-one.pid").read_text())
    try:
        assert proc.returncode == 0, proc.stderr
        rc, out = run_cli(f"-D{home}", "info")
        assert rc == 0 and out.startswith("200 info "), out
    finally:
        os.kill(pid, signal.SIGTERM)  # the daemon this test started, by its pid
        assert wait_until(lambda: not (home / "zerotier-one.pid").exists(), 15)
    bad = make_home(tmp_path / "bad", None, vector_identity(1)[0],
                    json.dumps({"settings": {"primaryPort": "abc"}}))  # fmt: skip
    proc = subprocess.run([*daemon[:-1], str(bad)], capture_output=True, timeout=90, text=True,
                          check=False)  # fmt: skip
    assert proc.returncode == 1 and "settings.primaryPort" in proc.stderr, proc.stderr
