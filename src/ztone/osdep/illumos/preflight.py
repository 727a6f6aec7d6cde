"""Checks that the illumos backend can work here, each failure with its fix.

:func:`run_preflight` is meant for daemon start on illumos and for
``ztone-cli doctor``. It checks (ILLUMOS.md §8):

1. the administration commands exist (dladm, ifconfig, route, svcs, ppriv);
2. ``svc:/network/datalink-management`` (dlmgmtd) and
   ``svc:/network/ip-interface-management`` (ipmgmtd) are online;
3. the process has ``net_rawaccess`` (open DLPI links), ``sys_dl_config`` (create
   and delete VNICs) and ``sys_ip_config`` (addresses and routes);
4. cffi is importable and ``libdlpi.so.1`` loads;
5. dladm answers, and the link names of the networks in ``networks.d`` are not held
   by links that are not ztone's (ztone removes its own leftovers at start).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ztone.osdep.base import Problem, TapError
from ztone.osdep.illumos.commands import CommandPaths, Commands, Runner
from ztone.osdep.illumos.libdlpi import Libdlpi
from ztone.osdep.illumos.names import link_names

REQUIRED_PRIVILEGES = ("net_rawaccess", "sys_dl_config", "sys_ip_config")
SERVICES = (
    ("svc:/network/datalink-management:default", "dlmgmtd"),
    ("svc:/network/ip-interface-management:default", "ipmgmtd"),
)
_ENV_FOR = {
    "dladm": "ZTONE_DLADM",
    "ifconfig": "ZTONE_IFCONFIG",
    "route": "ZTONE_ROUTE",
    "svcs": "ZTONE_SVCS",
    "ppriv": "ZTONE_PPRIV",
}


def parse_ppriv_effective(text: str) -> set[str] | None:
    """The effective set from ``ppriv -v <pid>`` output (None if not found)."""
    for line in text.splitlines():
        label, sep, rest = line.strip().partition(":")
        if sep and label == "E":
            return {p.strip() for p in rest.split(",") if p.strip()}
    return None


def _missing_privileges(effective: set[str]) -> list[str]:
    if effective & {"all", "zone"}:
        return []
    return [p for p in REQUIRED_PRIVILEGES if p not in effective]


def _network_ids(home: str | None) -> list[int]:
    if not home:
        return []
    nwids: list[int] = []
    for conf in sorted(Path(home, "networks.d").glob("*.conf")):
        stem = conf.name[: -len(".conf")]
        if len(stem) == 16 and not stem.endswith(".local"):
            try:
                nwids.append(int(stem, 16))
            except ValueError:
                continue
    return nwids


def run_preflight(
    home: str | None = None,
    *,
    commands: Commands | None = None,
    library: str | None = None,
    pid: int | None = None,
    nwids: Iterable[int] = (),
) -> list[Problem]:
    """Run every check; an empty list means the backend should work."""
    cmd = commands or Commands(CommandPaths.from_env(), Runner(timeout=15.0))
    problems: list[Problem] = []

    for tool in ("dladm", "ifconfig", "route", "svcs", "ppriv"):
        path = getattr(cmd.paths, tool)
        if not os.access(path, os.X_OK):
            problems.append(
                Problem(
                    "commands",
                    f"{path} is missing or not executable",
                    f"this is not an illumos system, or set {_ENV_FOR[tool]} (or "
                    "ZTONE_ILLUMOS_SBIN) to where the command is",
                )
            )
    have = {tool for tool in _ENV_FOR if os.access(getattr(cmd.paths, tool), os.X_OK)}

    if "svcs" in have:
        for fmri, daemon in SERVICES:
            result = cmd.runner.run(
                [cmd.paths.svcs, "-H", "-o", "state", fmri], check=False, query=True
            )
            state = result.stdout.strip() or result.text() or "unknown"
            if not result.ok or state != "online":
                problems.append(
                    Problem(
                        "services",
                        f"{fmri} ({daemon}) is {state}: "
                        + (
                            "datalinks cannot be created"
                            if "datalink" in fmri
                            else "ifconfig cannot configure addresses"
                        ),
                        f"svcs -xv {fmri}; then svcadm clear {fmri} (if in maintenance) "
                        f"and svcadm enable -r {fmri}",
                    )
                )

    if "ppriv" in have:
        target = os.getpid() if pid is None else pid
        result = cmd.runner.run([cmd.paths.ppriv, "-v", str(target)], check=False, query=True)
        effective = parse_ppriv_effective(result.stdout) if result.ok else None
        if effective is None:
            problems.append(
                Problem(
                    "privileges",
                    f"cannot read this process's privileges: {result.text() or 'no E: set'}",
                    "run ztone as root or from the SMF service (smf/ztone.xml)",
                )
            )
        else:
            missing = _missing_privileges(effective)
            if missing:
                problems.append(
                    Problem(
                        "privileges",
                        "missing privileges: " + ", ".join(missing),
                        "run ztone as root, or through the SMF service whose method "
                        "credential grants basic,net_rawaccess,sys_dl_config,"
                        "sys_ip_config (smf/ztone.xml)",
                    )
                )

    try:
        Libdlpi(library)
    except ImportError as e:
        problems.append(
            Problem(
                "libdlpi",
                f"cffi is not importable: {e}",
                "pkg install library/python-3/cffi-313 and create the venv with "
                "--system-site-packages (README.md, Install on OmniOS r151054)",
            )
        )
    except OSError as e:
        problems.append(
            Problem(
                "libdlpi",
                str(e),
                "libdlpi.so.1 ships with the OS in /lib/64; if it lives elsewhere set "
                "ZTONE_LIBDLPI to its path",
            )
        )

    if "dladm" in have:
        try:
            links = cmd.dladm.show_links()
        except TapError as e:
            problems.append(
                Problem(
                    "dladm",
                    f"dladm does not answer: {e}",
                    "svcadm enable -r svc:/network/datalink-management:default",
                )
            )
        else:
            wanted = [*nwids, *_network_ids(home)]
            for nwid in dict.fromkeys(wanted):
                for name in link_names(nwid).all():
                    info = links.get(name)
                    if info is not None and info.klass not in ("vnic", "etherstub"):
                        problems.append(
                            Problem(
                                "names",
                                f"link name {name} (network {nwid:016x}) is taken by a "
                                f"{info.klass or 'link'} that is not ztone's",
                                f"rename it (dladm rename-link {name} <new-name>) or remove it",
                            )
                        )
    return problems


__all__ = ["REQUIRED_PRIVILEGES", "SERVICES", "Problem", "parse_ppriv_effective", "run_preflight"]
