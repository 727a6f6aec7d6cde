"""What a config answer needs from the other members of a network, kept up to date
instead of re-read per request (issue 16: 10,000-member networks).

A config answer (``core.answer_request``) looks at every other member for two things:
the active bridges (the config's specialists) and the IPs already assigned (automatic
assignment must not hand one out twice). :class:`NetworkMembers` holds exactly those,
built once from the stored members and then changed member by member from the store's
change events, so an answer costs the same for 10 or 10,000 members.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Container, Iterable, Mapping
from typing import Any

from ztone.controller.ipassign import IPAddr


def member_ips(member: Mapping[str, Any]) -> tuple[IPAddr, ...]:
    """The member's ``ipAssignments`` as addresses (port-less; junk skipped)."""
    out: list[IPAddr] = []
    for text in member.get("ipAssignments") or []:
        if isinstance(text, str):
            try:
                out.append(ipaddress.ip_address(text.split("/")[0]))
            except ValueError:
                continue
    return tuple(out)


def _member_address(member: Mapping[str, Any]) -> int | None:
    ident = member.get("id")
    if not isinstance(ident, str):
        return None
    try:
        return int(ident, 16)
    except ValueError:
        return None


class _AllocatedToOthers(Container[IPAddr]):
    """Whether an IP is assigned to a member other than one."""

    __slots__ = ("_counts", "_own")

    def __init__(self, counts: Counter[IPAddr], own: tuple[IPAddr, ...]) -> None:
        self._counts = counts
        self._own = own

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        n = self._counts.get(ip, 0)
        return n > 0 and n > self._own.count(ip)


class NetworkMembers:
    """The active bridges and assigned IPs of one network's members."""

    def __init__(self, members: Iterable[Mapping[str, Any]] = ()) -> None:
        self._ips: dict[int, tuple[IPAddr, ...]] = {}
        self._bridges: set[int] = set()
        self._counts: Counter[IPAddr] = Counter()
        for member in members:
            self.put(member)

    def __len__(self) -> int:
        return len(self._ips)

    def put(self, member: Mapping[str, Any]) -> None:
        """Add or replace a member (by its ``id``)."""
        address = _member_address(member)
        if address is None:
            return
        self.remove(address)
        ips = member_ips(member)
        self._ips[address] = ips
        self._counts.update(ips)
        if member.get("activeBridge") is True:
            self._bridges.add(address)

    def remove(self, address: int) -> None:
        ips = self._ips.pop(address, None)
        if ips:
            self._counts.subtract(ips)
            for ip in ips:
                if self._counts[ip] <= 0:
                    del self._counts[ip]
        self._bridges.discard(address)

    def active_bridges(self) -> list[int]:
        """Addresses of the active bridges, ascending (the stored members' order)."""
        return sorted(self._bridges)

    def allocated_to_others(self, address: int) -> Container[IPAddr]:
        """IPs assigned to any member but ``address`` (a live view)."""
        return _AllocatedToOthers(self._counts, self._ips.get(address, ()))
