"""Stale TAP devices: telling ztone's leftovers from anyone else's devices.

Each device ztone makes carries an interface alias ``ztone:<nwid>:<pid>:<start
time>`` (zerotier-one sets none), so :func:`cleanup_stale` can tell ztone's
leftovers from devices of a zerotier-one that names them identically, and from
those of another running ztone. This process's open ports are registered here
(:func:`register`, :func:`unregister`) so they are never taken for leftovers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass

from ztone.osdep.linux.netlink import Netlink, delete_link, describe_error
from ztone.osdep.naming import is_linux_ztone_name

log = logging.getLogger(__name__)

ALIAS_PREFIX = "ztone:"


# --- process identity for the alias marker -----------------------------------------


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks since boot), None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class AliasMarker:
    """``ztone:<nwid 16 hex>:<pid>:<start time>`` in a device's interface alias."""

    nwid: int
    pid: int
    start_time: int

    def __str__(self) -> str:
        return f"{ALIAS_PREFIX}{self.nwid:016x}:{self.pid}:{self.start_time}"

    @classmethod
    def mine(cls, nwid: int) -> AliasMarker:
        pid = os.getpid()
        return cls(nwid, pid, process_start_time(pid) or 0)

    @classmethod
    def parse(cls, alias: str | None) -> AliasMarker | None:
        if not alias or not alias.startswith(ALIAS_PREFIX):
            return None
        parts = alias[len(ALIAS_PREFIX) :].split(":")
        if len(parts) != 3:
            return None
        try:
            return cls(int(parts[0], 16), int(parts[1]), int(parts[2]))
        except ValueError:
            return None

    def process_alive(self) -> bool:
        """The process that made the device still runs (same pid and start time)."""
        return process_start_time(self.pid) == self.start_time


# --- live devices of this process ---------------------------------------------------

_live_lock = threading.Lock()
_live: set[tuple[int, str]] = set()
"""(ifindex, name) of every open Linux port in this process."""


def register(ifindex: int, name: str) -> None:
    """An open port of this process: never stale."""
    with _live_lock:
        _live.add((ifindex, name))


def unregister(ifindex: int, name: str) -> None:
    with _live_lock:
        _live.discard((ifindex, name))


def cleanup_stale(netlink: Netlink) -> list[str]:
    """Delete TAP devices a ztone left behind; return their names.

    A device is removed only if all of these hold: its name has the generated
    shape (``zt`` + 8 base32; ``devicemap`` names are never touched), it is a
    tun/tap device, its alias is a ztone marker (zerotier-one, which uses the
    same names, sets none), the process the marker names is gone (pid and start
    time), or it is this process and no open :class:`LinuxTap` owns the device.
    """
    # The names come without running ip (if_nameindex): with no device of the
    # generated shape there is nothing to look at.
    try:
        candidates = [name for _, name in socket.if_nameindex() if is_linux_ztone_name(name)]
    except OSError as e:
        log.warning("cleanup: listing interfaces failed: %s", e)
        candidates = ["?"]  # look at ip's listing anyway
    if not candidates:
        return []
    try:
        links = netlink.json("-d", "link", "show")
    except Exception as e:
        log.warning("cleanup: listing links failed: %s", describe_error(e))
        return []
    with _live_lock:
        live = set(_live)
    removed: list[str] = []
    for link in links:
        if not isinstance(link, dict):
            continue
        name, index = link.get("ifname"), link.get("ifindex")
        if not isinstance(name, str) or not is_linux_ztone_name(name) or not isinstance(index, int):
            continue
        info = link.get("linkinfo")
        kind = info.get("info_kind") if isinstance(info, dict) else None
        if kind != "tun":
            continue
        alias = link.get("ifalias")
        marker = AliasMarker.parse(alias if isinstance(alias, str) else None)
        if marker is None or (index, name) in live:
            continue
        if marker.pid != os.getpid() and marker.process_alive():
            continue  # another running ztone's port
        if delete_link(netlink, int(index), name):
            log.info("cleanup: removed stale port %s (network %016x)", name, marker.nwid)
            removed.append(name)
    return removed


__all__ = [
    "ALIAS_PREFIX",
    "AliasMarker",
    "cleanup_stale",
    "process_start_time",
    "register",
    "unregister",
]
