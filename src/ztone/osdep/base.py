"""The small protocols every OS backend implements (DESIGN.md, OS backends).

A :class:`Tap` is one virtual Ethernet port for one joined network: frames the
host sends into it come out through ``on_frame``; frames for the host go in with
:meth:`Tap.put`. Managed addresses are ``InetAddress`` values whose port is the
netmask bit count (as in network configs). A :class:`TapFactory` makes taps; the
service picks the factory for the platform.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup

FrameHandler = Callable[[int, int, int, bytes], None]
"""``on_frame(source MAC, destination MAC, ethertype, payload)`` for frames from the host."""
BatchEnd = Callable[[], None]
"""Called after the frames of one wakeup went to ``on_frame``: the caller's cue to act."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TapError(Exception):
    """A virtual port could not be created or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A preflight finding: why a backend cannot work here (``check``, ``message``) and
    what to do about it (``fix``)."""

    check: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message}\n    fix: {self.fix}"


class Tap(Protocol):
    """One virtual Ethernet port (``EthernetTap``)."""

    @property
    def device_name(self) -> str: ...

    @property
    def mac(self) -> int: ...

    @property
    def mtu(self) -> int: ...

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameHandler,
              on_batch_end: BatchEnd | None = None) -> None:  # fmt: skip
        """Begin delivering the host's frames to ``on_frame`` (from the event loop),
        then calling ``on_batch_end`` once per wakeup that delivered any."""

    def put(self, source: int, destination: int, ethertype: int, payload: bytes) -> None:
        """Hand a frame to the host's network stack."""

    def set_mtu(self, mtu: int) -> None: ...

    def add_ip(self, address: InetAddress) -> bool:
        """Assign ``ip/bits``; False if it could not be added (logged)."""

    def remove_ip(self, address: InetAddress) -> bool: ...

    def ips(self) -> list[InetAddress]:
        """Addresses currently on the port (those ztone manages and others)."""

    def add_route(self, route: Route) -> bool: ...

    def remove_route(self, route: Route) -> bool: ...

    def multicast_groups(self) -> list[MulticastGroup]:
        """Ethernet multicast groups the host subscribed to on this port."""

    def close(self) -> None:
        """Remove the port with its addresses and routes."""


class TapFactory(Protocol):
    def create(self, nwid: int, mac: int, mtu: int, friendly_name: str) -> Tap:
        """Make the port for network ``nwid``; :class:`TapError` if it cannot."""

    def cleanup_stale(self) -> list[str]:
        """Remove ports a previous run left behind (ztone's own naming only)."""
