"""Can the selected virtual network backend work here? (``ztone-cli doctor``, daemon start)

:func:`preflight` runs the checks of the backend :func:`~ztone.osdep.factory.selected_backend`
picks and returns a :class:`Report`: the checks it made (name and what a pass means)
and the :class:`~ztone.osdep.base.Problem` list, each with its fix.

* illumos: :func:`ztone.osdep.illumos.run_preflight` (administration commands,
  dlmgmtd and ipmgmtd online, privileges, libdlpi, dladm answering, link names free);
* Linux: :func:`linux_preflight` (``/dev/net/tun`` opens, ``CAP_NET_ADMIN``, iproute2's
  ``ip`` there);
* userspace (no-root mode): the user-space stack imports; nothing else is needed.

The checks look at the process that runs them: run ``ztone-cli doctor`` as the user
(and with the environment) the daemon runs with.
"""

from __future__ import annotations

import importlib
import os
import stat
import sys
from dataclasses import dataclass, field

from ztone.osdep.base import Problem, TapError
from ztone.osdep.factory import ILLUMOS, LINUX, USERSPACE, selected_backend

TUN_PATH = "/dev/net/tun"
CAP_NET_ADMIN = 12

CHECKS: dict[str, tuple[tuple[str, str], ...]] = {
    LINUX: (
        ("tun", f"{TUN_PATH} opens for reading and writing"),
        ("privileges", "CAP_NET_ADMIN (TAP devices, addresses, routes)"),
        ("ip", "ip (iproute2) is there (addresses, routes)"),
    ),
    USERSPACE: (("stack", "the user-space network stack imports (no privileges needed)"),),
    ILLUMOS: (
        ("commands", "dladm, ifconfig, route, svcs and ppriv are there"),
        ("services", "dlmgmtd and ipmgmtd are online"),
        ("privileges", "net_rawaccess, sys_dl_config and sys_ip_config"),
        ("libdlpi", "cffi imports and libdlpi.so.1 loads"),
        ("dladm", "dladm answers"),
        ("names", "the link names of the networks in networks.d are free"),
    ),
}
"""Per backend, the checks in the order they run: (name, what passing means)."""


@dataclass(frozen=True)
class Report:
    backend: str
    checks: tuple[tuple[str, str], ...]
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def effective_capabilities(status_path: str = "/proc/self/status") -> int | None:
    """This process's effective capability set (``CapEff``), None if unreadable."""
    try:
        with open(status_path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split(":", 1)[1].strip(), 16)
    except (OSError, ValueError):
        return None
    return None


def linux_preflight(
    home: str | None = None,
    *,
    tun_path: str = TUN_PATH,
    capabilities: int | None = None,
    status_path: str = "/proc/self/status",
) -> list[Problem]:
    """The Linux TAP backend's checks; an empty list means it should work.

    ``home`` is accepted for symmetry with the illumos checks (nothing there matters
    to the Linux backend). ``capabilities`` overrides the process's ``CapEff``.
    """
    del home
    problems: list[Problem] = []

    try:
        st = os.stat(tun_path)
    except OSError as e:
        problems.append(
            Problem(
                "tun",
                f"{tun_path} is missing ({e.strerror})",
                "load the tun module (modprobe tun); in a container, pass the device in "
                "(e.g. docker run --device /dev/net/tun --cap-add NET_ADMIN)",
            )
        )
    else:
        if not stat.S_ISCHR(st.st_mode):
            problems.append(
                Problem(
                    "tun",
                    f"{tun_path} is not a character device",
                    f"remove it and recreate it: mknod {tun_path} c 10 200",
                )
            )
        else:
            try:
                os.close(os.open(tun_path, os.O_RDWR | os.O_CLOEXEC))
            except OSError as e:
                problems.append(
                    Problem(
                        "tun",
                        f"cannot open {tun_path}: {e.strerror}",
                        "run ztone as root (or with CAP_NET_ADMIN and access to the device)",
                    )
                )

    caps = effective_capabilities(status_path) if capabilities is None else capabilities
    if caps is None or not caps >> CAP_NET_ADMIN & 1:
        problems.append(
            Problem(
                "privileges",
                "this process does not have CAP_NET_ADMIN"
                + ("" if caps is not None else " (cannot read its capabilities)")
                + ": it cannot create TAP devices or set addresses and routes",
                "run ztone as root, or grant CAP_NET_ADMIN (systemd: "
                "AmbientCapabilities=CAP_NET_ADMIN, as packaging/systemd/ztone.service does)",
            )
        )

    from ztone.osdep.linux.netlink import find_ip  # noqa: PLC0415 (Linux only)

    if find_ip() is None:
        problems.append(
            Problem(
                "ip",
                "the ip command (iproute2) is neither on PATH nor in /usr/sbin or /sbin",
                "install iproute2 (apt-get install iproute2, dnf install iproute)",
            )
        )
    return problems


def userspace_preflight() -> list[Problem]:
    """The user-space stack is pure Python: it works wherever ztone imports."""
    try:
        importlib.import_module("ztone.netstack.stack")
    except ImportError as e:
        return [Problem("stack", f"the user-space stack does not import: {e}", "reinstall ztone")]
    return []


def preflight(home: str | None = None, backend: str | None = None) -> Report:
    """Run the checks of ``backend`` (default: the selected one).

    :class:`TapError` if no backend is selected (unknown ``ZTONE_TAP_BACKEND`` value,
    a platform without one).
    """
    if backend is None:
        backend = selected_backend()
    if backend == LINUX:
        return Report(LINUX, CHECKS[LINUX], linux_preflight(home))
    if backend == ILLUMOS:
        from ztone.osdep.illumos.preflight import run_preflight  # noqa: PLC0415 (illumos only)

        return Report(ILLUMOS, CHECKS[ILLUMOS], run_preflight(home))
    if backend == USERSPACE:
        return Report(USERSPACE, CHECKS[USERSPACE], userspace_preflight())
    raise TapError(f"no virtual network backend for {sys.platform}")


__all__ = [
    "CHECKS",
    "Report",
    "effective_capabilities",
    "linux_preflight",
    "preflight",
    "userspace_preflight",
]
