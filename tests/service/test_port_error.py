"""A network whose virtual port could not be made says PORT_ERROR, as zerotier-one's
does (PROTOCOL-NETWORK-SERVICE A.5.5, C.5.1): in ``/network`` (``status``,
``portError`` -999) and in ``ztone-cli listnetworks``.

The daemon runs the real Linux TAP backend without CAP_NET_ADMIN, which is what a
user without root gets: as root the capability is dropped from the bounding set with
``setpriv``. Loopback only, a private planet; the daemon is ended by pid.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from daemon_harness import (
    Daemon,
    daemons,
    free_port,
    make_home,
    make_planet,
    vector_identity,
    wait_until,
)

from ztone.cli import cli

NWID = "8056c2e21c000001"


def _cli(home: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main([f"-D{home}", *args], stdout=out, stderr=io.StringIO())
    return code, out.getvalue()


def _without_net_admin() -> list[str]:
    if os.geteuid() != 0:
        return []  # no capabilities at all: TUNSETIFF is refused
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing to drop CAP_NET_ADMIN")
    return [setpriv, "--bounding-set", "-net_admin", "--"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux TAP backend")
def test_failed_port_reports_port_error(tmp_path: Path) -> None:
    _, root_public = vector_identity(0)
    node_secret, _ = vector_identity(1)
    planet = make_planet(tmp_path, root_public, free_port())  # a root nobody runs
    home = make_home(tmp_path / "node", planet, node_secret)
    with daemons() as started:
        daemon = Daemon(home, free_port(), env={"ZTONE_TAP_BACKEND": "linux"},
                        prefix=_without_net_admin())  # fmt: skip
        started.append(daemon)
        daemon.wait_for_file("zerotier-one.port")
        assert wait_until(lambda: _cli(home, "info")[0] == 0, 30), daemon.log.read_text()
        assert _cli(home, "join", NWID) == (0, "200 join OK\n")

        def listed() -> str:
            code, out = _cli(home, "listnetworks")
            assert code == 0, out
            return out

        assert wait_until(lambda: NWID in listed(), 10), listed()
        line = next(x for x in listed().splitlines() if NWID in x)
        assert line.split(" ")[5] == "PORT_ERROR", line  # the name is empty
        code, out = _cli(home, "-j", "listnetworks")
        assert code == 0
        (network,) = json.loads(out)
        assert (network["status"], network["portError"], network["portDeviceName"]) == (
            "PORT_ERROR",
            -999,
            "",
        )
        assert daemon.alive()
        assert "cannot create its virtual port" in daemon.log.read_text()
        # Honest status elsewhere too: the TCP relay is allowed (the default), not active.
        code, out = _cli(home, "-j", "info")
        settings = json.loads(out)["config"]["settings"]
        assert (settings["allowTcpFallbackRelay"], json.loads(out)["tcpFallbackActive"]) == (
            True,
            False,
        )
