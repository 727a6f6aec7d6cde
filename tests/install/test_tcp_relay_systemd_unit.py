"""packaging/systemd/ztone-relay.service: systemd's checker accepts it; it runs
unprivileged with only the capability to bind port 443, with a command line
``ztone-relay`` accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from locations import ROOT
from ztone.relay.main import parser

UNIT = ROOT / "packaging" / "systemd" / "ztone-relay.service"
INSTALLED = "/opt/ztone/bin/ztone-relay"


def service_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#") and section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_tcp_relay_unit_least_privilege() -> None:
    s = service_settings()
    assert s["DynamicUser"] == ["yes"] and "User" not in s
    assert s["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert s["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    program, *args = shlex.split(s["ExecStart"][0])
    assert program == INSTALLED
    assert parser().parse_args(args).port == 443


def test_tcp_relay_unit_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian/Ubuntu: apt-get install systemd)")
    # verify checks that the program exists: stand in this environment's Python
    unit = tmp_path / "ztone-relay.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, sys.executable))
    done = subprocess.run([analyze, "verify", str(unit)], check=False, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    about_ours = [ln for ln in (done.stdout + done.stderr).splitlines() if "ztone-relay" in ln]
    assert done.returncode == 0 and not about_ours, done.stdout + done.stderr
