"""packaging/systemd/ztone.service: systemd's own checker accepts it, and it keeps the
least privileges that work with TAP (the namespace test
``tests/netns/test_service_privileges.py`` runs the daemon with exactly those)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from locations import ROOT

UNIT = ROOT / "packaging" / "systemd" / "ztone.service"
INSTALLED = "/opt/ztone/bin/ztone"


def unit_settings() -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_unit_keeps_least_privilege() -> None:
    service = unit_settings()["Service"]
    assert service["ExecStart"] == [f"{INSTALLED} -U /var/lib/zerotier-one"]
    assert service["DynamicUser"] == ["yes"]  # not root
    assert "User" not in service
    assert service["AmbientCapabilities"] == ["CAP_NET_ADMIN"]
    assert service["CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]
    assert service["StateDirectory"] == ["zerotier-one"]
    assert service["DeviceAllow"] == ["/dev/net/tun rw"]
    assert "PrivateDevices" not in service  # it would hide /dev/net/tun
    assert "PrivateNetwork" not in service
    assert "AF_NETLINK" in service["RestrictAddressFamilies"][0]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian/Ubuntu: apt-get install systemd)")
    # The unit names the service install's path; point it at this environment's ztone
    # so that verify's check that the command exists is meaningful here.
    ztone = Path(sys.executable).parent / "ztone"
    if not ztone.exists():
        found = shutil.which("ztone")
        if found is None:
            pytest.skip("no ztone program installed to stand in for /opt/ztone/bin/ztone")
        ztone = Path(found)
    unit = tmp_path / "ztone.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(ztone)))
    done = subprocess.run([analyze, "verify", str(unit)], check=False, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    about_ours = [ln for ln in (done.stdout + done.stderr).splitlines() if "ztone" in ln]
    assert done.returncode == 0 and not about_ours, done.stdout + done.stderr
    # The checker is not a rubber stamp: a broken copy is refused.
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace(f"ExecStart={ztone}", "ExecStart=ztone-nowhere"))
    done = subprocess.run([analyze, "verify", str(broken)], check=False, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "ztone-nowhere" in done.stdout + done.stderr
