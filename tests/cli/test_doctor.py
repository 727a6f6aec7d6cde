"""``ztone-cli doctor``, the backend choice (``ZTONE_TAP_BACKEND``) and the Linux checks.

No root needed: the Linux checks are pointed at files the test makes and given
capability sets; the illumos path runs against commands and a library that are not
there. The same command under the OmniOS simulation is in tests/illumos_sim.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import sys
from pathlib import Path

import pytest

from ztone.cli import cli
from ztone.osdep import preflight as preflight_module
from ztone.osdep.base import TapError
from ztone.osdep.factory import BACKEND_ENV, default_tap_factory, selected_backend
from ztone.osdep.preflight import (
    CAP_NET_ADMIN,
    effective_capabilities,
    linux_preflight,
)


def doctor(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([*args, "doctor"], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# --- the backend choice ------------------------------------------------------------------


def test_backend_follows_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    for platform, backend in (("linux", "linux"), ("sunos5", "illumos"), ("darwin", None)):
        monkeypatch.setattr(sys, "platform", platform)
        assert selected_backend() == backend
    monkeypatch.setenv(BACKEND_ENV, "")
    assert selected_backend() is None  # empty = unset


def test_backend_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert selected_backend({BACKEND_ENV: "illumos"}) == "illumos"
    assert selected_backend({BACKEND_ENV: "linux"}) == "linux"
    with pytest.raises(TapError, match="'solaris' is not a virtual network backend"):
        selected_backend({BACKEND_ENV: "solaris"})
    monkeypatch.setenv(BACKEND_ENV, "illumos")
    factory = default_tap_factory("/nonexistent-home")
    assert type(factory).__name__ == "IllumosTapFactory"
    monkeypatch.setenv(BACKEND_ENV, "Linux")
    with pytest.raises(TapError, match="ZTONE_TAP_BACKEND"):
        default_tap_factory()


def test_illumos_factory_takes_commands_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BACKEND_ENV, "illumos")
    monkeypatch.setenv("ZTONE_ILLUMOS_SBIN", "/opt/sim/sbin")
    factory = default_tap_factory("/var/lib/zerotier-one")
    assert factory.commands.paths.dladm == "/opt/sim/sbin/dladm"  # type: ignore[attr-defined]


# --- the Linux checks -----------------------------------------------------------------------


def test_linux_checks(tmp_path: Path) -> None:
    every = (1 << 41) - 1
    missing = linux_preflight(tun_path=str(tmp_path / "tun"), capabilities=every)
    assert [p.check for p in missing] == ["tun"] and "modprobe tun" in missing[0].fix
    regular = tmp_path / "file"
    regular.write_text("")
    problems = linux_preflight(tun_path=str(regular), capabilities=every & ~(1 << CAP_NET_ADMIN))
    assert [p.check for p in problems] == ["tun", "privileges"]
    assert "not a character device" in problems[0].message
    assert "CAP_NET_ADMIN" in problems[1].message and "root" in problems[1].fix
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000001000\n")
    assert effective_capabilities(str(status)) == 1 << CAP_NET_ADMIN
    status.write_text("Name:\tx\n")
    assert effective_capabilities(str(status)) is None
    assert effective_capabilities(str(tmp_path / "none")) is None


def _failing_linux_checks() -> list[str]:
    """The Linux checks this process should fail, found without ztone's helpers:
    open /dev/net/tun read-write, read CapEff from /proc/self/status, find ip."""
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR))
        tun = True
    except OSError:
        tun = False
    cap_eff = [
        int(line.split()[1], 16)
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("CapEff:")
    ]
    net_admin = bool(cap_eff) and bool(cap_eff[0] & (1 << 12))  # CAP_NET_ADMIN is 12
    ip = shutil.which("ip") is not None or any(
        os.access(p, os.X_OK) for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
    )
    return [name for name, ok in (("tun", tun), ("privileges", net_admin), ("ip", ip)) if not ok]


def test_linux_checks_of_this_process() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    assert [p.check for p in linux_preflight()] == _failing_linux_checks()


# --- ztone-cli doctor ------------------------------------------------------------------------


def test_doctor_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    failing = _failing_linux_checks()
    code, out, err = doctor()  # no daemon, no home: it runs locally
    lines = out.splitlines()
    assert lines[0] == "virtual network backend: linux" and err == ""
    assert code == (1 if failing else 0)
    if not failing:
        assert lines[1:] == [
            "ok   tun: /dev/net/tun opens for reading and writing",
            "ok   privileges: CAP_NET_ADMIN (TAP devices, addresses, routes)",
            "ok   ip: ip (iproute2) is there (addresses, routes)",
        ]
    else:
        assert [line.split(":")[0] for line in lines[1:-1:2]] == [f"FAIL {n}" for n in failing]
        assert all(line.startswith("     fix: ") for line in lines[2:-1:2])
        plural = "s" if len(failing) != 1 else ""
        assert lines[-1] == f"{len(failing)} problem{plural} found"


def test_doctor_linux_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BACKEND_ENV, "linux")
    checks = functools.partial(linux_preflight, tun_path=str(tmp_path / "tun"), capabilities=0)
    monkeypatch.setattr(preflight_module, "linux_preflight", checks)
    code, out, _ = doctor(f"-D{tmp_path}")
    assert code == 1
    assert out.splitlines()[1].startswith(f"FAIL tun: {tmp_path / 'tun'} is missing")
    assert "FAIL privileges: this process does not have CAP_NET_ADMIN" in out
    assert out.endswith("problems found\n")


def test_doctor_illumos_without_illumos(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BACKEND_ENV, "illumos")
    monkeypatch.setenv("ZTONE_ILLUMOS_SBIN", str(tmp_path / "sbin"))
    monkeypatch.setenv("ZTONE_LIBDLPI", str(tmp_path / "libdlpi.so.1"))
    code, out, _ = doctor(f"-D{tmp_path}")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "virtual network backend: illumos"
    fails = [line for line in lines if line.startswith("FAIL ")]
    assert [f.split(":")[0] for f in fails] == ["FAIL commands"] * 5 + ["FAIL libdlpi"]
    assert all(lines[lines.index(f) + 1].startswith("     fix: ") for f in fails)
    assert "ZTONE_LIBDLPI" in out and lines[-1] == "6 problems found"


def test_doctor_bad_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, "windows")
    code, out, _ = doctor()
    assert code == 1 and out.startswith("FAIL backend: ZTONE_TAP_BACKEND='windows'")


def test_doctor_in_the_help() -> None:
    assert "  doctor  " in cli.help_text("ztone-cli")


def test_userspace_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    assert selected_backend({BACKEND_ENV: "userspace"}) == "userspace"
    monkeypatch.setenv(BACKEND_ENV, "userspace")
    assert type(default_tap_factory()).__name__ == "UserspaceTapFactory"
    code, out, _ = doctor()
    assert code == 0
    assert out.splitlines() == [
        "virtual network backend: userspace",
        "ok   stack: the user-space network stack imports (no privileges needed)",
    ]
