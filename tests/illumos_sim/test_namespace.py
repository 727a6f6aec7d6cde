"""Root tests in network namespaces: the simulation's rules, the binding, the tap, SMF.

Every namespace is ``ztill-<pid>-<n>``, has only loopback and the links the test
makes, no default route, and is deleted afterwards. Every command is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ztone.cli import idtool
from ztone.osdep.illumos.commands import CommandPaths, Commands
from ztone.osdep.illumos.preflight import run_preflight

from .conftest import run_in
from .simenv import SimEnv

HERE = Path(__file__).resolve().parent
METHOD = HERE.parents[1] / "smf" / "ztone-method.sh"
VECTORS = HERE.parent / "vectors"


def test_simulation_enforces_illumos_rules(sim: SimEnv, netns: str) -> None:
    dladm, ifconfig, route = (str(sim.sbin / t) for t in ("dladm", "ifconfig", "route"))
    steps: list[tuple[list[str], int, str]] = [
        ([dladm, "create-etherstub", "-t", "stub"], 1, "dladm: invalid link name 'stub'"),
        ([dladm, "create-etherstub", "-t", "stub01"], 1, "dladm: invalid link name 'stub01'"),
        ([dladm, "create-etherstub", "-t", "s" * 31 + "1"], 1, "link name too long"),
        ([dladm, "create-etherstub", "-t", "stub2"], 0, ""),
        ([dladm, "create-etherstub", "-t", "stub2"], 1,
         "dladm: etherstub creation failed: object already exists"),
        ([dladm, "create-vnic", "-t", "-l", "nope0", "v0"], 1, "dladm: invalid link name 'nope0'"),
        ([dladm, "create-vnic", "-t", "-l", "stub2", "-m", "1:2:3:4:5:6", "v0"], 1,
         "invalid MAC address"),
        ([dladm, "create-vnic", "-t", "-l", "stub2", "-m", "2:2:3:4:5:6", "v0"], 0, ""),
        ([dladm, "create-vnic", "-t", "-l", "stub2", "-p", "mtu=9001", "v1"], 1, "invalid value"),
        ([dladm, "delete-vnic", "stub2"], 1, "dladm: 'stub2' is not a vnic"),
        ([dladm, "delete-etherstub", "v0"], 1, "dladm: 'v0' is not an etherstub"),
        ([dladm, "delete-etherstub", "stub2"], 1, "dladm: vnic deletion failed: link busy"),
        ([ifconfig, "v0", "addif", "198.18.0.1/24"], 1,
         "ifconfig: addif: SIOCLIFADDIF: v0: no such interface"),
        ([ifconfig, "v0", "plumb"], 0, ""),
        ([ifconfig, "v0", "addif", "198.18.0.1/24", "up"], 0, ""),
        ([dladm, "delete-vnic", "v0"], 1, "dladm: vnic deletion failed: link busy"),
        ([ifconfig, "v0", "mtu", "9100"], 1, "SIOCSLIFMTU: v0: Invalid argument"),
        ([route, "-n", "add", "-net", "198.19.0.0/16", "198.18.0.2", "-ifp", "v0"], 0, ""),
        ([route, "-n", "add", "-net", "198.19.0.0/16", "198.18.0.2", "-ifp", "v0"], 17,
         "entry exists"),
        ([route, "-n", "delete", "-net", "198.21.0.0/16", "198.18.0.2", "-ifp", "v0"], 3,
         "not in table"),
        ([route, "-n", "add", "-net", "198.22.0.0/16", "198.30.0.1", "-ifp", "v0"], 128,
         "Network is unreachable"),
        ([ifconfig, "v0", "removeif", "198.18.0.9"], 1, "Cannot assign requested address"),
        ([ifconfig, "v0", "unplumb"], 0, ""),
        ([dladm, "delete-vnic", "v0"], 0, ""),
        ([dladm, "delete-etherstub", "stub2"], 0, ""),
    ]  # fmt: skip
    for argv, code, text in steps:
        proc = run_in(sim, netns, argv)
        assert proc.returncode == code, (argv, proc.stdout, proc.stderr)
        assert text in proc.stdout + proc.stderr, (argv, proc.stdout, proc.stderr)
    proc = run_in(sim, netns, [dladm, "create-etherstub", "-t", "stub2"])
    proc = run_in(sim, netns, [dladm, "create-vnic", "-t", "-l", "stub2", "v0"])
    proc = run_in(sim, netns, [dladm, "show-link", "-p", "-o", "link,class,mtu,over"])
    assert proc.stdout.splitlines() == ["stub2:etherstub:9000:", "v0:vnic:9000:stub2"]


def test_binding_on_real_links(sim: SimEnv, netns: str) -> None:
    proc = run_in(sim, netns, [sys.executable, str(HERE / "scenario_binding.py")])
    assert proc.returncode == 0 and "BINDING OK" in proc.stdout, proc.stdout + proc.stderr


def test_tap_in_the_simulation(sim: SimEnv, netns: str) -> None:
    proc = run_in(sim, netns, [sys.executable, str(HERE / "scenario_tap.py")], timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["pings"] == {"v4": 3, "v4-2400": 3, "v6": 3, "v6-2400": 3}
    assert report["topology"]["ztmjfmfyq52"] == {"kind": "bridge", "mtu": 9000}
    assert report["topology"]["ztmjfmfyq50"] == {"kind": "macvlan", "mtu": 2800}


def test_port_under_libdlpi_faults(sim: SimEnv, netns: str) -> None:
    """FIXUPS requested (DL_NOTSUPPORTED tolerated), a full send queue never blocks
    the loop, a hang-up after an EAGAIN stops the reader (scenario_faults.py)."""
    proc = run_in(sim, netns, [sys.executable, str(HERE / "scenario_faults.py")], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["blocked_sends"] == 0 and report["after_drain"] == "drained"
    assert report["reader_stopped"] and report["recv_calls_after_hangup"] <= 3


def test_preflight_under_the_simulation(sim: SimEnv, monkeypatch: object) -> None:
    commands = Commands(CommandPaths.from_env({"ZTONE_ILLUMOS_SBIN": str(sim.sbin)}))
    assert run_preflight(commands=commands, library=str(sim.libdlpi)) == []
    problems = run_preflight(commands=commands, library="/nonexistent/libdlpi.so.1")
    assert [p.check for p in problems] == ["libdlpi"] and "ZTONE_LIBDLPI" in problems[0].fix
    os.environ["ZTONE_SIM_SVCS_OFFLINE"] = "ip-interface-management"
    try:
        problems = run_preflight(commands=commands, library=str(sim.libdlpi))
    finally:
        del os.environ["ZTONE_SIM_SVCS_OFFLINE"]
    assert [p.check for p in problems] == ["services"]
    assert "maintenance" in problems[0].message and "svcadm clear" in problems[0].fix
    missing = Commands(CommandPaths.from_env({"ZTONE_ILLUMOS_SBIN": "/nonexistent"}))
    problems = run_preflight(commands=missing, library=str(sim.libdlpi))
    assert {p.check for p in problems} == {"commands"} and len(problems) == 5


def _wrapper(path: Path, module: str, extra: str = "") -> Path:
    path.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH={HERE.parents[1] / "src"} exec {sys.executable} -m {module} {extra} "$@"\n'
    )
    path.chmod(0o755)
    return path


def test_smf_method_start_and_stop(sim: SimEnv, netns: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    entry = json.loads((VECTORS / "identities.json").read_text())["identities"][0]
    (home / "identity.secret").write_text(entry["secret"])
    assert idtool.main(["genplanet", "--out", str(home / "planet"), "--id", "0x5a5a",
                        f"{entry['public']}@127.0.0.1/9999"]) == 0  # fmt: skip
    settings = {"bind": ["127.0.0.1"], "allowSecondaryPort": False}
    (home / "local.conf").write_text(json.dumps({"settings": settings}))
    env = [
        "env",
        f"ZTONE_HOME={home}",
        f"ZTONE_BIN={_wrapper(tmp_path / 'ztone', 'ztone.cli.daemon', '-U -p19993')}",
        f"ZTONE_CLI={_wrapper(tmp_path / 'ztone-cli', 'ztone.cli.cli', '-p19993')}",
        "ZTONE_START_WAIT=45",
        "ZTONE_STOP_WAIT=15",
        # show-vnic/show-etherstub refuse -o: the cleanup must go through show-link
        "ZTONE_SIM_DLADM_REFUSE=show-vnic,show-etherstub",
    ]
    dladm = str(sim.sbin / "dladm")
    own = ["ztaaaaaaaa2", "ztaaaaaaaa0", "ztaaaaaaaa1"]

    def make_links() -> None:
        for argv in (
            [dladm, "create-etherstub", "-t", own[0]],
            [dladm, "create-vnic", "-t", "-l", own[0], own[1]],
            [dladm, "create-vnic", "-t", "-l", own[0], own[2]],
            [str(sim.sbin / "ifconfig"), own[1], "plumb"],
        ):
            assert run_in(sim, netns, argv).returncode == 0

    def links() -> list[str]:
        out = run_in(sim, netns, [dladm, "show-link", "-p", "-o", "link"]).stdout
        return sorted(out.split())

    def method(verb: str, timeout: float) -> tuple[int, str]:
        # The daemon keeps the method's stdout/stderr (SMF's log file): use a file.
        log = tmp_path / f"method-{verb}.log"
        with open(log, "wb") as out:
            proc = subprocess.run(
                sim.command(netns, [*env, "sh", str(METHOD), verb]),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )  # fmt: skip
        return proc.returncode, log.read_text()

    make_links()
    assert run_in(sim, netns, [dladm, "create-etherstub", "-t", "other2"]).returncode == 0
    pid = 0
    try:
        code, said = method("start", 90)
        assert code == 0, said
        assert links() == ["other2"]  # only ztone's links went
        pid = int((home / "zerotier-one.pid").read_text())
        os.kill(pid, 0)
        make_links()  # as if the daemon had joined a network
        code, said = method("stop", 60)
        assert code == 0, said
        assert links() == ["other2"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists(), said
    finally:
        # A start that failed its checks may still have left the daemon running:
        # end it by the pid it wrote (only a process this test started writes there).
        pid_file = home / "zerotier-one.pid"
        if not pid and pid_file.exists():
            try:
                pid = int(pid_file.read_text())
            except ValueError:
                pid = 0
        if pid and Path(f"/proc/{pid}").exists():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
