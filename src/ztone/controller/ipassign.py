"""IP address assignment for a member (PROTOCOL-NETWORK-SERVICE B.3).

Order of the result: rfc4193, 6plane, manual assignments, auto IPv6, auto IPv4
(at most 32). ``noAutoAssignIps`` turns off everything but manual assignments.
Auto-assigned addresses are appended to the member's ``ipAssignments``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.vl2_verbs import rfc4193_address, sixplane_address

MAX_STATIC_IPS = 32
TRIALS = 1000

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ConfigRoute:
    target: IPNet
    via: IPAddr | None


def parse_routes(routes: Any) -> list[ConfigRoute]:
    """The network's ``routes`` JSON as config routes (B.2 step 16), max 128."""
    out: list[ConfigRoute] = []
    if not isinstance(routes, list):
        return out
    for r in routes:
        if not isinstance(r, dict) or not isinstance(r.get("target"), str):
            continue
        try:
            target = ipaddress.ip_network(r["target"], strict=False)
        except ValueError:
            continue
        via: IPAddr | None = None
        if isinstance(r.get("via"), str):
            try:
                v = ipaddress.ip_address(r["via"])
                via = v if v.version == target.version else None
            except ValueError:
                via = None
        out.append(ConfigRoute(target, via))
        if len(out) >= 128:
            break
    return out


def _route_target_contains(route: ConfigRoute, ip: IPAddr) -> bool:
    return route.target.version == ip.version and ip in route.target


def assign(
    nwid: int,
    address: int,
    network: Mapping[str, Any],
    member: dict[str, Any],
    routes: list[ConfigRoute],
    allocated: Container[IPAddr],
    rand64: Callable[[], int],
) -> tuple[list[InetAddress], bool]:
    """The member's static IPs (port = prefix bits) and whether NDP emulation is needed.

    ``member["ipAssignments"]`` gains any auto-assigned address; ``allocated`` holds
    every address already assigned to any member of the network.
    """
    ips: list[InetAddress] = []
    ndp = False
    no_auto = member.get("noAutoAssignIps") is True
    v6mode = network.get("v6AssignMode") if isinstance(network.get("v6AssignMode"), dict) else {}
    v4mode = network.get("v4AssignMode") if isinstance(network.get("v4AssignMode"), dict) else {}
    assert isinstance(v6mode, dict) and isinstance(v4mode, dict)
    if not no_auto and v6mode.get("rfc4193") is True:
        ips.append(rfc4193_address(nwid, address))
        ndp = True
    if not no_auto and v6mode.get("6plane") is True:
        ips.append(sixplane_address(nwid, address))
        ndp = True
    assignments = member.get("ipAssignments")
    if not isinstance(assignments, list):
        assignments = []
        member["ipAssignments"] = assignments
    have4 = have6 = False
    for text in assignments:
        if not isinstance(text, str):
            continue
        try:
            ip = ipaddress.ip_address(text.split("/")[0])
        except ValueError:
            continue
        bits = max(
            (r.target.prefixlen for r in routes if _route_target_contains(r, ip)), default=-1
        )
        if bits < 0:
            continue  # no route covers it: stays in the member, not in the config
        ips.append(InetAddress(ip, bits))
        have4 = have4 or ip.version == 4
        have6 = have6 or ip.version == 6
    mine = {a.ip for a in ips}
    pools = network.get("ipAssignmentPools")
    pools = pools if isinstance(pools, list) else []
    if not no_auto and v6mode.get("zt") is True and not have6:
        for pool in pools:
            got = _auto_v6(address, pool, routes, allocated, mine, rand64)
            if got is not None:
                assignments.append(got.ip_string())
                ips.append(got)
                break
    if not no_auto and v4mode.get("zt") is True and not have4:
        for pool in pools:
            got = _auto_v4(address, pool, routes, allocated, mine)
            if got is not None:
                assignments.append(got.ip_string())
                ips.append(got)
                break
    return ips[:MAX_STATIC_IPS], ndp


def _pool_bounds(pool: Any, version: int) -> tuple[int, int] | None:
    if not isinstance(pool, dict):
        return None
    try:
        start = ipaddress.ip_address(str(pool.get("ipRangeStart")))
        end = ipaddress.ip_address(str(pool.get("ipRangeEnd")))
    except ValueError:
        return None
    if start.version != version or end.version != version:
        return None
    return int(start), int(end)


def _auto_v6(
    address: int,
    pool: Any,
    routes: list[ConfigRoute],
    allocated: Container[IPAddr],
    mine: set[IPAddr],
    rand64: Callable[[], int],
) -> InetAddress | None:
    bounds = _pool_bounds(pool, 6)
    if bounds is None:
        return None
    s, e = bounds
    s_hi, s_lo, e_hi, e_lo = s >> 64, s & ((1 << 64) - 1), e >> 64, e & ((1 << 64) - 1)
    for trial in range(TRIALS):
        if trial == 0 and e_lo > s_lo and e_lo - s_lo >= 0xFFFFFFFFFF:
            hi, lo = s_hi, (s_lo + address) & ((1 << 64) - 1)
        else:
            hi = s_hi + (rand64() % (e_hi - s_hi) if e_hi > s_hi else 0)
            lo = s_lo + (rand64() % (e_lo - s_lo) if e_lo > s_lo else 0)
        ip = ipaddress.IPv6Address(((hi & ((1 << 64) - 1)) << 64) | (lo & ((1 << 64) - 1)))
        bits = 0
        for r in routes:  # the last on-link IPv6 route containing it
            if r.via is None and _route_target_contains(r, ip):
                bits = r.target.prefixlen
        if bits > 0 and ip not in allocated and ip not in mine:
            return InetAddress(ip, bits)
    return None


def _auto_v4(
    address: int,
    pool: Any,
    routes: list[ConfigRoute],
    allocated: Container[IPAddr],
    mine: set[IPAddr],
) -> InetAddress | None:
    bounds = _pool_bounds(pool, 4)
    if bounds is None:
        return None
    s, e = bounds
    if s == 0 or e < s:
        return None
    span = e - s
    counter = address & 0xFFFFFFFF
    for _ in range(TRIALS):
        value = s + (counter % span) if span else s
        counter += 1
        if value > e:
            break
        if value & 0xFF == 0xFF:
            continue
        ip = ipaddress.IPv4Address(value)
        bits = 0
        for r in routes:  # the first IPv4 route whose network contains it
            if r.target.version == 4 and ip in r.target:
                bits = r.target.prefixlen
                break
        if bits > 0 and ip not in allocated and ip not in mine:
            return InetAddress(ip, bits)
    return None
