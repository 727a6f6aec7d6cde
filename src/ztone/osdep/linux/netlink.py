"""Linux link configuration through netlink (pyroute2) and the ioctls of :mod:`.tun`.

:class:`LinuxLink` is the :class:`~ztone.osdep.base.LinkConfig` of one TAP device:
MTU (``SIOCSIFMTU``, as upstream), addresses, routes, the interface alias and the
multicast groups the host joined (``/proc/net/dev_mcast``).

Managed routes are added as ``ManagedRoute`` does on Linux: table main, protocol
static, scope universe, the tap as output interface; a default target is split in
two halves (``0.0.0.0/1`` + ``128.0.0.0/1``, ``::/1`` + ``8000::/1``); gateway
routes get metric 5000 unless the route carries its own metric.

Why a worker thread and not pyroute2's asyncio API (``AsyncIPRoute``): link changes
are made while the service carries out the core's actions, synchronously, because
the port's error goes back to the core before its next call and a network's
addresses must be in place before the frames that follow its config. An awaitable
netlink call would turn every change into a task finishing at some later loop pass
(reordering them against frames and the port error), and pyroute2 0.9's synchronous
``IPRoute`` refuses to run inside a running event loop. So every request runs on one
worker thread per factory (:class:`Netlink`), the caller waiting for it (a few
milliseconds; bounded by a timeout). The thread lives only here.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, TypeVar

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import IPNetwork, TapError
from ztone.osdep.linux import tun
from ztone.osdep.managed import (
    fork_default_route,
    route_gateway,
    route_network,
    upstream_sort_key,
)
from ztone.osdep.multicast import port_groups

log = logging.getLogger(__name__)

T = TypeVar("T")

# <linux/rtnetlink.h>
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

DEV_MCAST = "/proc/net/dev_mcast"
GATEWAY_ROUTE_METRIC = 5000
"""``ZT_RTE_METRIC``: priority of gateway routes, so they never beat physical ones."""
IPS_REFRESH_INTERVAL = 10.0
"""Seconds a listing of the device's addresses is reused (upstream: 10 s)."""
NETLINK_TIMEOUT = 10.0


# --- netlink on a worker thread ------------------------------------------------------


class Netlink:
    """One pyroute2 ``IPRoute`` used from one worker thread.

    The thread (and so the netlink socket) is created on first use and belongs to
    the network namespace of the thread that first calls :meth:`call`.
    """

    def __init__(self, timeout: float = NETLINK_TIMEOUT) -> None:
        self.timeout = timeout
        self._executor: ThreadPoolExecutor | None = None
        self._ipr: Any = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(ipr)`` on the worker; its exceptions propagate; TapError on timeout."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="ztone-netlink")
            executor = self._executor
        future = executor.submit(self._run, fn)
        try:
            return future.result(self.timeout)
        except FutureTimeoutError:
            raise TapError(f"netlink request timed out after {self.timeout:g} s") from None

    def _run(self, fn: Callable[[Any], T]) -> T:
        if self._ipr is None:
            # pyroute2 loads ~200 modules (+7-10 MB RSS): only a daemon that has a port
            # pays for it, on its first netlink request.
            from pyroute2 import IPRoute  # noqa: PLC0415

            self._ipr = IPRoute()
        return fn(self._ipr)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            if self._ipr is not None:
                try:
                    self._ipr.close()
                finally:
                    self._ipr = None

        try:
            executor.submit(shut).result(self.timeout)
        except Exception as e:
            log.debug("closing netlink socket: %s", e)
        executor.shutdown(wait=False)


def _is_netlink_error(e: BaseException) -> bool:
    """``e`` is pyroute2's ``NetlinkError`` (which only exists once pyroute2 is loaded,
    and only a netlink request loads it)."""
    pyroute2 = sys.modules.get("pyroute2")
    error_type = getattr(pyroute2, "NetlinkError", None)
    return isinstance(error_type, type) and isinstance(e, error_type)


def describe_error(e: BaseException) -> str:
    """A netlink or OS error as a log message (``strerror (errno N)``)."""
    if _is_netlink_error(e):
        code = int(getattr(e, "code", 0) or 0)
        return f"{os.strerror(code)} (errno {code})" if code else str(e)
    return str(e) or type(e).__name__


def error_code(e: BaseException) -> int:
    """The errno of a netlink or OS error, 0 if it has none."""
    if _is_netlink_error(e):
        return int(getattr(e, "code", 0) or 0)
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

        The multicast scan asks every second; a netlink dump (parsed in Python, on a
        thread that holds the GIL meanwhile) each time would stall the data path.
        Our own address changes refresh it at once.
        """
        if self.closed:
            return []
        now = time.monotonic()
        cached = self._ips_cache
        if cached is not None and now - cached[0] < IPS_REFRESH_INTERVAL:
            return list(cached[1])
        found = self._read_ips()
        if found is None:
            return []
        self._ips_cache = (now, found)
        return list(found)

    def _read_ips(self) -> list[InetAddress] | None:
        """None if netlink failed (then nothing is remembered)."""
        index = self._ifindex

        def dump(ipr: Any) -> list[Any]:
            return list(ipr.get_addr(index=index))

        try:
            msgs = self._nl.call(dump)
        except Exception as e:
            log.warning("%s: listing addresses failed: %s", self._name, describe_error(e))
            return None
        found: set[InetAddress] = set()
        for msg in msgs:
            if msg.get("index") != index:
                continue
            text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if not text:
                continue
            try:
                found.add(InetAddress(ipaddress.ip_address(text), int(msg["prefixlen"])))
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
        index = self._ifindex

        def set_alias(ipr: Any) -> None:
            ipr.link("set", index=index, ifalias=alias)

        try:
            self._nl.call(set_alias)
        except Exception as e:
            log.warning("%s: setting interface alias failed: %s", self._name, describe_error(e))

    def _addr(self, command: str, address: InetAddress) -> bool:
        self._ips_cache = None
        index = self._ifindex
        kwargs: dict[str, Any] = {
            "index": index,
            "address": str(address.ip),
            "prefixlen": address.port,
        }
        if address.ip.version == 4:
            kwargs["local"] = str(address.ip)
            if command == "add":
                kwargs["label"] = self._name
                if address.port < 31:
                    net = ipaddress.ip_network((address.ip, address.port), strict=False)
                    kwargs["broadcast"] = str(net.broadcast_address)

        def run(ipr: Any) -> None:
            ipr.addr(command, **kwargs)

        try:
            self._nl.call(run)
        except Exception as e:
            if command == "add" and error_code(e) == errno.EEXIST:
                return True
            log.warning(
                "%s: ip address %s %s failed: %s", self._name, command, address, describe_error(e)
            )
            return False
        log.info("%s: ip address %s %s", self._name, command, address)
        return True

    def _route(self, command: str, route: Route, piece: IPNetwork) -> bool:
        family = socket.AF_INET if piece.version == 4 else socket.AF_INET6
        spec: dict[str, Any] = {
            "family": family,
            "dst": str(piece.network_address),
            "dst_len": piece.prefixlen,
            "oif": self._ifindex,
            "table": RT_TABLE_MAIN,
            "proto": RTPROT_STATIC,
            "scope": RT_SCOPE_UNIVERSE,
            "type": RTN_UNICAST,
        }
        metric = route.metric
        via = route_gateway(route)
        if via is not None:
            spec["gateway"] = str(via)
            metric = metric or GATEWAY_ROUTE_METRIC
        if metric:
            spec["priority"] = metric
        text = f"{piece} via {via or '-'} dev {self._name} metric {metric or '-'}"

        def run(ipr: Any) -> None:
            ipr.route(command, **spec)

        try:
            self._nl.call(run)
        except Exception as e:
            code = error_code(e)
            if command == "add" and code == errno.EEXIST and self._route_present(spec):
                return True
            level = logging.DEBUG if command == "del" and code == errno.ESRCH else logging.WARNING
            log.log(
                level, "%s: route %s %s failed: %s", self._name, command, text, describe_error(e)
            )
            return False
        log.info("%s: route %s %s", self._name, command, text)
        return True

    def _route_present(self, spec: dict[str, Any]) -> bool:
        """An identical route exists (``LinuxNetLink::routeIsSet``)."""

        def dump(ipr: Any) -> list[Any]:
            return list(ipr.get_routes(family=spec["family"], table=RT_TABLE_MAIN))

        try:
            msgs = self._nl.call(dump)
        except Exception:
            return False
        for msg in msgs:
            if (
                msg.get("dst_len") == spec["dst_len"]
                and (msg.get_attr("RTA_DST") or _zero(spec["family"])) == spec["dst"]
                and msg.get_attr("RTA_OIF") == spec["oif"]
                and msg.get_attr("RTA_GATEWAY") == spec.get("gateway")
                and (msg.get_attr("RTA_PRIORITY") or 0) == spec.get("priority", 0)
            ):
                return True
        return False

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


def _zero(family: int) -> str:
    return "0.0.0.0" if family == socket.AF_INET else "::"


def _valid_prefix(address: InetAddress) -> bool:
    return 0 <= address.port <= (32 if address.ip.version == 4 else 128)


def link_name(nl: Netlink, index: int) -> str | None:
    """The name of interface ``index``, None if there is none."""

    def get(ipr: Any) -> Any:
        return ipr.get_links(index)

    try:
        msgs = nl.call(get)
    except Exception as e:
        if error_code(e) not in (errno.ENODEV, errno.ENOENT):
            log.debug("looking up link %d: %s", index, describe_error(e))
        return None
    for msg in msgs:
        name = msg.get_attr("IFLA_IFNAME")
        if isinstance(name, str):
            return name
    return None


def delete_link(nl: Netlink, index: int, name: str) -> bool:
    """``ip link del``; False (logged) if it failed."""

    def delete(ipr: Any) -> None:
        ipr.link("del", index=index)

    try:
        nl.call(delete)
    except Exception as e:
        log.warning("%s: ip link del failed: %s", name, describe_error(e))
        return False
    log.info("%s: deleted", name)
    return True


__all__ = [
    "GATEWAY_ROUTE_METRIC",
    "LinuxLink",
    "Netlink",
    "delete_link",
    "describe_error",
    "error_code",
    "link_name",
]
