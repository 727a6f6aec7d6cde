"""A planet file that exists but is no planet stops the daemon (issue 11, item 6).

Only an absent ``planet`` means the built-in (public) planet. Each daemon here runs
in a network namespace of its own with nothing but loopback, so even a daemon that
wrongly fell back to the public planet could not reach its roots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import (
    free_port,
    make_home,
    make_planet,
    vector_identity,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs root and unshare(1) to run the daemon in an isolated network namespace",
)

_ISOLATED = 'ip link set lo up 2>/dev/null; exec "$@"'


def _daemon_argv(home: Path, port: int) -> list[str]:
    return ["unshare", "--net", "sh", "-c", _ISOLATED, "sh",
            sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{port}", str(home)]  # fmt: skip


def _valid_planet(workdir: Path) -> bytes:
    workdir.mkdir(parents=True, exist_ok=True)
    return make_planet(workdir, vector_identity(0)[1], free_port())


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "a moon"])
def test_corrupt_planet_stops_the_daemon(tmp_path: Path, kind: str) -> None:
    good = _valid_planet(tmp_path / "gen")
    data = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "garbage": bytes((i * 37 + 11) & 0xFF for i in range(300)),
        "a moon": b"\x7f" + good[1:],  # world type 127 (moon) with a planet's body
    }[kind]
    home = make_home(tmp_path / "n", data, vector_identity(1)[0])
    proc = subprocess.run(_daemon_argv(home, free_port()), capture_output=True, timeout=60,
                          text=True, check=False)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"{home / 'planet'}:" in proc.stderr, out
    assert "fatal error" in proc.stderr and "planet" in proc.stderr
    # Stopped before any socket or peer existed: nothing was contacted.
    assert "listening on UDP" not in out
    assert not (home / "zerotier-one.port").exists()
    assert not (home / "peers.d").exists() or not any((home / "peers.d").iterdir())
    assert (home / "planet").read_bytes() == data  # the operator's file is left as it was


def test_absent_planet_is_the_default_and_a_bad_moon_is_skipped(tmp_path: Path) -> None:
    """A corrupt moon is logged with its file name and skipped; the daemon runs."""
    planet = _valid_planet(tmp_path / "gen")
    home = make_home(tmp_path / "n", planet, vector_identity(1)[0])
    moons = home / "moons.d"
    moons.mkdir()
    bad = moons / "00000000deadbeef.moon"
    bad.write_bytes(b"\x01\x02truncated")
    port = free_port()
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(_daemon_argv(home, port), stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "ZTONE_LOG_LEVEL": "INFO"})  # fmt: skip
        try:
            assert wait_until(lambda: "listening on UDP" in log.read_text()
                              or proc.poll() is not None, 60)  # fmt: skip
            assert proc.poll() is None, log.read_text()
            text = log.read_text()
            assert f"{bad}: not a valid moon" in text, text
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    assert bad.read_bytes() == b"\x01\x02truncated"
