"""Prepare the OmniOS simulation: shim libdlpi, command wrappers, environment, netns.

One command starts anything (a ztone daemon, a shell) under the simulation::

    python3 tests/illumos_sim/simenv.py --netns ztsim -- ztone -U -p9993 /tmp/zt-home

It compiles ``libdlpi_shim.c`` into ``<workdir>/lib/libdlpi.so.1`` (gcc), writes the
wrappers ``<workdir>/sbin/{dladm,ifconfig,route,routeadm,netstat,svcs,ppriv}``
(Python scripts with a shebang for this interpreter), creates the network namespace if
it does not exist (loopback up, no other interface, no default route) and runs the
command inside it with ``ZTONE_ILLUMOS_SBIN``, ``ZTONE_LIBDLPI`` and
``ZTONE_TAP_BACKEND=illumos`` set. The namespace is left in place (``--delete`` removes
it afterwards); ``ip netns del <name>`` removes it and everything in it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIM_SOURCE = HERE / "libdlpi_shim.c"
SIMTOOLS = HERE / "simtools.py"
TOOLS = ("dladm", "ifconfig", "route", "routeadm", "netstat", "svcs", "ppriv")
DEFAULT_WORKDIR = Path(f"/tmp/ztone-illumos-sim-{os.getuid()}")


class SimUnavailable(Exception):
    """This machine cannot run the simulation (no root, no gcc, no ip)."""


def unavailable_reason() -> str | None:
    if sys.platform != "linux":
        return "the OmniOS simulation runs on Linux"
    if os.geteuid() != 0:
        return "the OmniOS simulation needs root (network namespaces)"
    for tool in ("gcc", "ip"):
        if shutil.which(tool) is None:
            return f"the OmniOS simulation needs {tool}"
    return None


def build_shim(out_dir: Path) -> Path:
    """Compile the shim libdlpi.so.1 into ``out_dir`` (only when the source is newer)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "libdlpi.so.1"
    if target.exists() and target.stat().st_mtime >= SHIM_SOURCE.stat().st_mtime:
        return target
    tmp = out_dir / f".libdlpi.so.1.{os.getpid()}"
    cmd = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Wno-format-truncation",
           "-o", str(tmp), str(SHIM_SOURCE)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SimUnavailable(f"cannot build the shim libdlpi: {proc.stderr.strip()}")
    tmp.replace(target)
    return target


def write_tools(out_dir: Path) -> Path:
    """Write the illumos command wrappers into ``out_dir``; returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        path = out_dir / tool
        path.write_text(
            f"#!{sys.executable}\n"
            "import sys\n"
            f"sys.path.insert(0, {str(HERE)!r})\n"
            "from simtools import main\n"
            f"sys.exit(main({tool!r}, sys.argv[1:]))\n"
        )
        path.chmod(0o755)
    return out_dir


@dataclass(frozen=True)
class SimEnv:
    """What a process needs to run ztone's illumos backend under the simulation."""

    workdir: Path
    sbin: Path
    libdlpi: Path

    def env(self) -> dict[str, str]:
        src = str(HERE.parents[1] / "src")
        path = os.environ.get("PYTHONPATH", "")
        return {
            "ZTONE_ILLUMOS_SBIN": str(self.sbin),
            "ZTONE_LIBDLPI": str(self.libdlpi),
            "ZTONE_TAP_BACKEND": "illumos",
            "ZTONE_SIM_STATE": str(self.workdir / "state"),
            "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src,
        }

    def command(self, netns: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``netns`` with this environment."""
        assignments = [f"{k}={v}" for k, v in self.env().items()]
        return ["ip", "netns", "exec", netns, "env", *assignments, *argv]


def prepare(workdir: Path = DEFAULT_WORKDIR) -> SimEnv:
    reason = unavailable_reason()
    if reason:
        raise SimUnavailable(reason)
    return SimEnv(workdir, write_tools(workdir / "sbin"), build_shim(workdir / "lib"))


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def create_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)


def delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--netns", default="ztsim", help="network namespace (made if missing)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--delete", action="store_true", help="delete the namespace after")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command args...")
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    command = command or [os.environ.get("SHELL", "/bin/sh")]
    try:
        sim = prepare(args.workdir)
    except SimUnavailable as e:
        sys.stderr.write(f"simenv: {e}\n")
        return 1
    if not netns_exists(args.netns):
        create_netns(args.netns)
    try:
        return subprocess.call(sim.command(args.netns, command))
    finally:
        if args.delete:
            delete_netns(args.netns)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
