"""Linux link configuration through iproute2's ``ip`` and the ioctls of :mod:`.tun`.

:class:`LinuxLink` is the :class:`~ztone.osdep.base.LinkConfig` of one TAP device:
MTU (``SIOCSIFMTU``, as upstream), addresses, routes, the interface alias and the
multicast groups the host joined (``/proc/net/dev_mcast``).

Managed routes are added as ``ManagedRoute`` does on Linux: table main, protocol
static, scope universe, the tap as output interface; a default target is split in
two halves (``0.0.0.0/1`` + ``128.0.0.0/1``, ``::/1`` + ``8000::/1``); gateway
routes get metric 5000 unless the route carries its own metric.

Why ``ip`` commands and not a netlink library in the daemon: pyroute2, the library
this used, loads ~200 modules on import (+10 MB RSS, as much as the rest of the
service) for the few requests a port makes: a handful when a network's config
changes, and one address listing every 10 s. Each request here is one short-lived
``ip`` process (iproute2, present wherever Linux networking is administered; the
illumos backend drives dladm/ifconfig/route the same way), a few milliseconds, with
JSON output (``ip -j``) for what is read back.

Requests stay synchronous, as they were on the former netlink worker thread: link
changes are made while the service carries out the core's actions, because the
port's error goes back to the core before its next call and a network's addresses
must be in place before the frames that follow its config. The command inherits the
network namespace of the thread that runs it (tests run ports in namespaces). Each
is bounded by a timeout.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
import subprocess
import threading
import time
from typing import Any

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import IPNetwork, TapError
from ztone.osdep.managed import (
    fork_default_route,
    route_gateway,
    route_network,
    upstream_sort_key,
)
from ztone.osdep.multicast import port_groups

log = logging.getLogger(__name__)

DEV_MCAST = "/proc/net/dev_mcast"
GATEWAY_ROUTE_METRIC = 5000
"""``ZT_RTE_METRIC``: priority of gateway routes, so they never beat physical ones."""
IPS_REFRESH_INTERVAL = 10.0
"""Seconds a listing of the device's addresses is reused (upstream: 10 s)."""
NETLINK_TIMEOUT = 10.0
IP_FALLBACK_PATHS = ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
"""Where ``ip`` is looked for when it is not on ``PATH`` (a daemon's PATH may lack sbin)."""

_STRERROR = {os.strerror(code): code for code in errno.errorcode}


# --- ip commands ---------------------------------------------------------------------


class IpCommandError(Exception):
    """An ``ip`` command failed; ``errno`` is the kernel's answer when ``ip`` printed it
    (``RTNETLINK answers: File exists``), else 0."""

    def __init__(self, command: list[str], message: str) -> None:
        super().__init__(message)
        self.command = command
        self.errno = _errno_of(message)


def _errno_of(message: str) -> int:
    for line in message.splitlines():
        text = line.rsplit(": ", 1)[-1].strip().rstrip(".")
        if text in _STRERROR:
            return _STRERROR[text]
    return 0


def find_ip() -> str | None:
    """The ``ip`` executable: on ``PATH``, else in the usual sbin directories."""
    import shutil  # noqa: PLC0415 (with bz2 and lzma: only once a port is configured)

    found = shutil.which("ip")
    if found:
        return found
    return next((p for p in IP_FALLBACK_PATHS if os.access(p, os.X_OK)), None)


class Netlink:
    """Runs ``ip`` commands (iproute2) for the ports of one factory; see the module
    docstring for why commands and not a library."""

    def __init__(self, timeout: float = NETLINK_TIMEOUT) -> None:
        self.timeout = timeout
        self._ip: str | None = None

    def run(self, *args: str) -> str:
        """``ip args...``; its standard output. :class:`IpCommandError` if it failed,
        :class:`TapError` if ``ip`` is missing or timed out."""
        if self._ip is None:
            self._ip = find_ip()
            if self._ip is None:
                raise TapError("the ip command (iproute2) is not installed")
        command = [self._ip, *args]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise TapError(f"ip {' '.join(args)}: timed out after {self.timeout:g} s") from None
        except OSError as e:
            raise TapError(f"cannot run {self._ip}: {e}") from None
        if done.returncode != 0:
            raise IpCommandError(command, done.stderr.strip() or f"exit status {done.returncode}")
        return done.stdout

    def json(self, *args: str) -> list[Any]:
        """``ip -j args...`` parsed (a list; empty when ``ip`` printed nothing)."""
        text = self.run("-j", *args).strip()
        try:
            value = json.loads(text) if text else []
        except ValueError as e:
            raise IpCommandError(["ip", "-j", *args], f"unreadable JSON from ip: {e}") from None
        if not isinstance(value, list):
            raise IpCommandError(["ip", "-j", *args], "ip printed JSON that is not a list")
        return value

    def close(self) -> None:
        """Nothing stays open between commands."""


def describe_error(e: BaseException) -> str:
    """An ``ip`` or OS error as a log message (``strerror (errno N)`` when known)."""
    if isinstance(e, IpCommandError):
        return f"{os.strerror(e.errno)} (errno {e.errno})" if e.errno else str(e)
    return str(e) or type(e).__name__


def error_code(e: BaseException) -> int:
    """The errno of an ``ip`` or OS error, 0 if it has none."""
    if isinstance(e, IpCommandError):
        return e.errno
    if isinstance(e, OSError):
        return e.errno or 0
    return 0


# --- the link -----------------------------------------------------------------------


class LinuxLink:
    """The :class:`~ztone.osdep.base.LinkConfig` of one TAP device (by interface index)."""

    def __init__(self, netlink: Netlink, name: str, ifindex: int, mac: int, mtu: int) -> None:
        self._nl = netlink
        self._name = name
        self._ifindex = ifindex
        self._mac = mac
        self._mtu = mtu
        self._managed_ips: list[InetAddress] = []
        self._ips_cache: tuple[float, list[InetAddress]] | None = None
        self._ips_generation = 0  # counts our address changes
        self._ips_refreshing = False
        self._managed_routes: list[Route] = []
        self.closed = False

    @property
    def device_name(self) -> str:
        return self._name

    @property
    def ifindex(self) -> int:
        return self._ifindex

    @property
    def mac(self) -> int:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    def set_mtu(self, mtu: int) -> None:
        if self.closed:
            raise TapError(f"{self._name}: closed")
        if mtu == self._mtu:
            return
        # A link exists only beside its TAP, which loaded the TAP code already.
        from ztone.osdep.linux import tun  # noqa: PLC0415

        try:
            tun.set_mtu(self._name, mtu)
        except OSError as e:
            log.warning("%s: set MTU %d failed: %s", self._name, mtu, e)
            raise TapError(f"{self._name}: set MTU {mtu} failed: {e}") from None
        self._mtu = mtu

    def add_ip(self, address: InetAddress) -> bool:
        if self.closed:
            return False
        if not _valid_prefix(address):
            log.warning("%s: not adding %s: bad prefix length", self._name, address)
            return False
        current = self.ips()
        if address in current:
            if address not in self._managed_ips:
                self._managed_ips.append(address)
            return True
        for other in current:
            if other.ip == address.ip:
                self._addr("del", other)
        if not self._addr("add", address):
            return False
        self._managed_ips.append(address)
        return True

    def remove_ip(self, address: InetAddress) -> bool:
        if self.closed:
            return False
        if address in self._managed_ips:
            self._managed_ips.remove(address)
        if address not in self.ips():
            return False
        return self._addr("del", address)

    def ips(self) -> list[InetAddress]:
        """The device's addresses; re-read at most every 10 s, as ``LinuxEthernetTap::ips``.

        The multicast scan asks every second. Our own address changes make the next
        call read them at once; when the listing is merely 10 s old, the call answers
        from it and a thread re-reads it (an ``ip`` run takes milliseconds, which
        would otherwise hold up every packet behind the scan).
        """
        if self.closed:
            return []
        cached = self._ips_cache
        if cached is None:
            generation = self._ips_generation
            found = self._read_ips()
            if found is None:
                return []
            if generation == self._ips_generation:
                self._ips_cache = (time.monotonic(), found)
            return list(found)
        if time.monotonic() - cached[0] >= IPS_REFRESH_INTERVAL and not self._ips_refreshing:
            self._ips_refreshing = True
            threading.Thread(
                target=self._refresh_ips, name=f"ztone-ips-{self._name}", daemon=True
            ).start()
        return list(cached[1])

    def _refresh_ips(self) -> None:
        try:
            generation = self._ips_generation
            found = self._read_ips()
            # An address change meanwhile made this listing stale before it was done.
            if found is not None and generation == self._ips_generation and not self.closed:
                self._ips_cache = (time.monotonic(), found)
        finally:
            self._ips_refreshing = False

    def _read_ips(self) -> list[InetAddress] | None:
        """None if ``ip`` failed (then nothing is remembered)."""
        try:
            links = self._nl.json("addr", "show", "dev", self._name)
        except (IpCommandError, TapError) as e:
            log.warning("%s: listing addresses failed: %s", self._name, describe_error(e))
            return None
        found: set[InetAddress] = set()
        for link in links:
            if not isinstance(link, dict) or link.get("ifindex") != self._ifindex:
                continue
            for info in link.get("addr_info") or []:
                text, bits = info.get("local"), info.get("prefixlen")
                if not isinstance(text, str) or not isinstance(bits, int):
                    continue
                try:
                    found.add(InetAddress(ipaddress.ip_address(text), bits))
                except ValueError:
                    continue
        return sorted(found, key=upstream_sort_key)

    def add_route(self, route: Route) -> bool:
        if self.closed:
            return False
        ok = True
        for piece in fork_default_route(route_network(route)):
            ok = self._route("add", route, piece) and ok
        if ok and route not in self._managed_routes:
            self._managed_routes.append(route)
        return ok

    def remove_route(self, route: Route) -> bool:
        if self.closed:
            return False
        if route in self._managed_routes:
            self._managed_routes.remove(route)
        ok = True
        for piece in fork_default_route(route_network(route)):
            ok = self._route("del", route, piece) and ok
        return ok

    def multicast_groups(self) -> list[MulticastGroup]:
        if self.closed:
            return []
        return port_groups(self._joined_macs(), self.ips())

    def release(self) -> None:
        """Remove the routes and addresses ztone added; no change is made afterwards."""
        if self.closed:
            return
        for route in list(reversed(self._managed_routes)):
            self.remove_route(route)
        for address in list(self._managed_ips):
            self.remove_ip(address)
        self.closed = True

    # --- internals ------------------------------------------------------------------

    def set_alias(self, alias: str) -> None:
        """Set the interface alias (failures are logged)."""
        try:
            self._nl.run("link", "set", "dev", self._name, "alias", alias)
        except (IpCommandError, TapError) as e:
            log.warning("%s: setting interface alias failed: %s", self._name, describe_error(e))

    def _addr(self, command: str, address: InetAddress) -> bool:
        self._ips_generation += 1
        self._ips_cache = None
        args = ["addr", command, f"{address.ip}/{address.port}"]
        if address.ip.version == 4 and command == "add":
            if address.port < 31:
                net = ipaddress.ip_network((address.ip, address.port), strict=False)
                args += ["broadcast", str(net.broadcast_address)]
            args += ["label", self._name]
        args += ["dev", self._name]
        try:
            self._nl.run(*args)
        except (IpCommandError, TapError) as e:
            if command == "add" and error_code(e) == errno.EEXIST:
                return True
            log.warning(
                "%s: ip address %s %s failed: %s", self._name, command, address, describe_error(e)
            )
            return False
        log.info("%s: ip address %s %s", self._name, command, address)
        return True

    def _route(self, command: str, route: Route, piece: IPNetwork) -> bool:
        metric = route.metric
        via = route_gateway(route)
        if via is not None:
            metric = metric or GATEWAY_ROUTE_METRIC
        family = "-4" if piece.version == 4 else "-6"
        # ip's defaults would be protocol boot and, for an IPv4 route without a
        # gateway, scope link: say static and universe (global), as upstream does.
        args = [family, "route", command, "unicast", str(piece)]
        if via is not None:
            args += ["via", str(via)]
        args += ["dev", self._name, "table", "main", "proto", "static", "scope", "global"]
        if metric:
            args += ["metric", str(metric)]
        text = f"{piece} via {via or '-'} dev {self._name} metric {metric or '-'}"
        try:
            self._nl.run(*args)
        except (IpCommandError, TapError) as e:
            code = error_code(e)
            present = code == errno.EEXIST and self._route_present(piece, via, metric)
            if command == "add" and present:
                return True
            level = logging.DEBUG if command == "del" and code == errno.ESRCH else logging.WARNING
            log.log(
                level, "%s: route %s %s failed: %s", self._name, command, text, describe_error(e)
            )
            return False
        log.info("%s: route %s %s", self._name, command, text)
        return True

    def _route_present(
        self,
        piece: IPNetwork,
        via: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
        metric: int,
    ) -> bool:
        """An identical route exists (``LinuxNetLink::routeIsSet``): same target, this
        device, same gateway and metric, in table main."""
        family = "-4" if piece.version == 4 else "-6"
        try:
            found = self._nl.json(
                family, "route", "show", "table", "main", "exact", str(piece), "dev", self._name
            )
        except (IpCommandError, TapError):
            return False
        gateway = str(via) if via is not None else None
        return any(
            isinstance(r, dict)
            and r.get("gateway") == gateway
            and int(r.get("metric") or 0) == metric
            for r in found
        )

    def _joined_macs(self) -> list[int]:
        """MACs the device joined, from ``/proc/net/dev_mcast`` (this network namespace)."""
        try:
            with open(DEV_MCAST, encoding="ascii", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError as e:
            log.debug("%s: cannot read %s: %s", self._name, DEV_MCAST, e)
            return []
        macs: list[int] = []
        for line in lines:
            fields = line.split()
            if len(fields) >= 5 and fields[1] == self._name and len(fields[4]) == 12:
                try:
                    macs.append(int(fields[4], 16))
                except ValueError:
                    continue
        return macs


def _valid_prefix(address: InetAddress) -> bool:
    return 0 <= address.port <= (32 if address.ip.version == 4 else 128)


def link_name(nl: Netlink, index: int) -> str | None:
    """The name of interface ``index``, None if there is none."""
    try:
        return socket.if_indextoname(index)
    except OSError as e:
        if e.errno not in (errno.ENODEV, errno.ENXIO, errno.ENOENT):
            log.debug("looking up link %d: %s", index, e)
        return None


def delete_link(nl: Netlink, index: int, name: str) -> bool:
    """``ip link del`` of ``name`` if it is still interface ``index``; False (logged)
    if it failed."""
    if link_name(nl, index) != name:
        log.warning("%s: not deleted: interface %d is no longer that device", name, index)
        return False
    try:
        nl.run("link", "del", "dev", name)
    except (IpCommandError, TapError) as e:
        log.warning("%s: ip link del failed: %s", name, describe_error(e))
        return False
    log.info("%s: deleted", name)
    return True


__all__ = [
    "GATEWAY_ROUTE_METRIC",
    "IpCommandError",
    "LinuxLink",
    "Netlink",
    "delete_link",
    "describe_error",
    "error_code",
    "find_ip",
    "link_name",
]
