"""``ztone-cli doctor`` under the OmniOS simulation (root): the illumos checks pass,
and a service in maintenance is reported with its fix (exit 1)."""

from __future__ import annotations

import sys
from pathlib import Path

from .conftest import run_in
from .simenv import SimEnv

CHECKS = ("commands", "services", "privileges", "libdlpi", "dladm", "names")


def test_doctor_under_the_simulation(sim: SimEnv, netns: str, tmp_path: Path) -> None:
    doctor = [sys.executable, "-m", "ztone.cli.cli", f"-D{tmp_path}", "doctor"]
    proc = run_in(sim, netns, doctor)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "virtual network backend: illumos"
    assert [line.split(":")[0] for line in lines[1:]] == [f"ok   {c}" for c in CHECKS]

    offline = ["env", "ZTONE_SIM_SVCS_OFFLINE=datalink-management", *doctor]
    proc = run_in(sim, netns, offline)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].startswith(
        "FAIL services: svc:/network/datalink-management:default (dlmgmtd) is maintenance"
    )
    assert lines[2].startswith("     fix: svcs -xv svc:/network/datalink-management:default")
    assert lines[-1] == "1 problem found"
