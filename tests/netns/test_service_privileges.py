"""The systemd unit's privileges are enough: a daemon running as an unprivileged user
with only CAP_NET_ADMIN (ambient), as packaging/systemd/ztone.service gives it, makes
its TAP port (no PORT_ERROR) and the port appears in its network namespace.

Root only: a namespace made here (no route out), ``setpriv`` for the user and the
capability, a private planet with its root on loopback; the daemon is ended by pid.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ztone.cli import cli, idtool

from .netns import Namespace

NOBODY = 65534
NWID = "8056c2e21c000001"
SRC = Path(__file__).resolve().parents[2] / "src"


def _cli_here(home: Path, args: tuple[str, ...]) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main([f"-D{home}", *args], stdout=out, stderr=io.StringIO())
    return code, out.getvalue()


def _wait(condition: object, timeout: float) -> bool:
    assert callable(condition)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return bool(condition())


def _effective_caps(pid: int) -> int | None:
    """CapEff of the daemon (the python below ``ip netns exec`` and ``setpriv``)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        while children:
            pid = int(children[0])
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        return None
    return None


def test_unit_privileges_make_a_tap(namespace: Namespace) -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is missing")
    if not Path("/dev/net/tun").exists():
        pytest.skip("/dev/net/tun is missing")
    only_net_admin = ["--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin",
                      "--bounding-set=-all,+net_admin"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # As the unit: another user than root. Where that user cannot read this Python
    # (e.g. one under /root) or open /dev/net/tun (udev makes it 0666 on Debian and
    # Ubuntu; some minimal systems leave it 0600), root's uid with only CAP_NET_ADMIN
    # left stands in: the capability is what TAP needs; the uid only owns the files.
    owner = NOBODY
    as_service = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                  *only_net_admin, "--"]  # fmt: skip
    probe = subprocess.run([*as_service, sys.executable, "-c", "import ztone.service.runner"],
                           check=False, capture_output=True, text=True, env=env,
                           timeout=60)  # fmt: skip
    if probe.returncode != 0 or os.stat("/dev/net/tun").st_mode & 0o006 != 0o006:
        owner = 0
        as_service = [setpriv, *only_net_admin, "--"]

    base = Path(tempfile.mkdtemp(prefix="ztone-unit-"))
    base.chmod(0o755)
    home = base / "home"
    home.mkdir()
    try:
        public = base / "root.public"
        assert idtool.main(["generate", str(base / "root.secret"), str(public)]) == 0
        assert idtool.main(["genplanet", "--out", str(home / "planet"),
                            f"{public.read_text().strip()}@127.0.0.1/9"]) == 0  # fmt: skip
        (home / "local.conf").write_text(json.dumps({"settings": {"allowSecondaryPort": False}}))
        for path in [home, *home.iterdir()]:
            os.chown(path, owner, owner)
        log = open(base / "daemon.log", "wb")  # noqa: SIM115 (closed below)
        daemon = namespace.popen(
            [*as_service, sys.executable, "-m", "ztone.cli.daemon", "-U", str(home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "ZTONE_TAP_BACKEND": "linux"},
        )

        def _cli(home: Path, *args: str) -> tuple[int, str]:
            return namespace.call(_cli_here, home, args, timeout=30)  # the daemon's API is there

        try:
            assert _wait(lambda: _cli(home, "info")[0] == 0, 30), (base / "daemon.log").read_text()
            effective = _effective_caps(daemon.pid)
            assert effective in (None, 1 << 12), hex(effective or 0)  # CAP_NET_ADMIN alone
            assert _cli(home, "join", NWID) == (0, "200 join OK\n")

            def port_up() -> bool:
                code, out = _cli(home, "-j", "listnetworks")
                return code == 0 and any(n.get("portDeviceName") for n in json.loads(out))

            assert _wait(port_up, 20), (base / "daemon.log").read_text()
            (network,) = json.loads(_cli(home, "-j", "listnetworks")[1])
            assert network["status"] != "PORT_ERROR" and network["portError"] == 0, network
            assert network["portDeviceName"] in namespace.link_names()
            assert daemon.poll() is None
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(5)
            log.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
