"""``ztone-cli doctor --selftest`` under the OmniOS simulation (root).

* every check passes and nothing is left;
* with ``DL_PROMISC_FIXUPS`` refused (the shim's ``ZTONE_SHIM_UNSUPPORTED=7``, as an
  older kernel answers) the host's offloaded checksums and super-frames come through
  unfinished: the UDP, TCP and TCP-data checks fail with a clear line and a fix;
* SIGTERM in the middle: the run says it was interrupted and still removes the links.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from ztone.osdep.illumos.names import link_names
from ztone.osdep.illumos.selftest import SELFTEST_NWID

from .conftest import run_in
from .simenv import SimEnv

SELFTEST = [sys.executable, "-m", "ztone.cli.cli", "doctor", "--selftest"]
CHECKS = [
    "preflight",
    "system",
    "python",
    "create",
    "fixups",
    "mtu",
    "link-state",
    "arp-out",
    "arp-in",
    "udp-out",
    "udp-in",
    "tcp-out",
    "tcp-in",
    "tcp-data",
    "ipv6",
    "ndp",
    "cleanup",
    "summary",
]


def _lines(out: str) -> list[tuple[str, str]]:
    """(status, check) of each result line (fix lines skipped)."""
    found = []
    for line in out.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("ok", "FAIL", "info"):
            found.append((status, rest.strip().split(":")[0]))
    return found


def _links(sim: SimEnv, netns: str) -> list[str]:
    out = run_in(sim, netns, [str(sim.sbin / "dladm"), "show-link", "-p", "-o", "link"]).stdout
    return out.split()


def test_selftest_passes_and_leaves_nothing(sim: SimEnv, netns: str) -> None:
    proc = run_in(sim, netns, SELFTEST, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = _lines(proc.stdout)
    assert [c for _, c in lines] == CHECKS, proc.stdout
    assert all(s != "FAIL" for s, _ in lines), proc.stdout
    assert ("ok", "fixups") in lines
    assert proc.stdout.splitlines()[-1] == "info summary: all checks passed"
    assert _links(sim, netns) == []


def test_selftest_fails_clearly_without_fixups(sim: SimEnv, netns: str) -> None:
    proc = run_in(sim, netns, ["env", "ZTONE_SHIM_UNSUPPORTED=7", *SELFTEST], timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    failed = [c for s, c in _lines(out) if s == "FAIL"]
    assert failed == ["udp-out", "tcp-out", "tcp-data"], out
    assert "FAIL udp-out: host -> ztone UDP: header checksum ok, UDP checksum BAD/partial" in out
    assert "DL_PROMISC_FIXUPS missing or not honoured" in out
    assert "info fixups: the kernel refused DL_PROMISC_FIXUPS" in out
    assert ("ok", "cleanup") in _lines(out)
    assert out.splitlines()[-1] == "info summary: 3 checks failed"
    assert _links(sim, netns) == []


def test_selftest_interrupted_removes_everything(sim: SimEnv, netns: str, tmp_path: Path) -> None:
    log = tmp_path / "selftest.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(sim.command(netns, SELFTEST), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "ok   create" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.05)
            assert "ok   create" in log.read_text()
            names = link_names(SELFTEST_NWID)
            assert names.visible in _links(sim, netns)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    said = log.read_text()
    assert code == 1, said
    assert "FAIL selftest: interrupted (SIGTERM); links removed" in said
    assert "ok   cleanup: etherstub, VNICs and addresses removed" in said
    assert _links(sim, netns) == []
