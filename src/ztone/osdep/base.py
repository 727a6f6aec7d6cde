"""The small protocols every OS backend implements (DESIGN.md, OS backends).

A :class:`Tap` is one virtual Ethernet port for one joined network, made by the
platform's :class:`TapFactory`. It has two halves:

* its :class:`FrameDevice` moves frames: a non-blocking descriptor the service's
  event loop watches (``fileno``), :meth:`~FrameDevice.read_batch` for what the
  host sent, :meth:`~FrameDevice.write_batch` for frames to the host. The service's
  frame pump (``ztone.service.frame_pump``) is its only user in the daemon;
* its :class:`LinkConfig` configures the link: MTU, managed addresses (``InetAddress``
  values whose port is the netmask bit count, as in network configs), routes (the
  network config's :class:`~ztone.node.wire.network_config.Route`) and the
  multicast groups the host joined (the wire's
  :class:`~ztone.node.wire.vl2_verbs.MulticastGroup`).

A frame is the tuple :data:`EthernetFrame` ``(source MAC, destination MAC,
ethertype, payload)``; payload is what follows the 14-byte Ethernet header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup

EthernetFrame = tuple[int, int, int, bytes]
"""``(source MAC, destination MAC, ethertype, payload)``: a plain tuple (the data path
makes one per frame)."""

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


class FrameDeviceError(TapError):
    """Reading a port's frames failed (the descriptor is in error, not merely empty)."""


class FrameDevice(Protocol):
    """A port's frame I/O, non-blocking: nothing here ever waits."""

    def fileno(self) -> int:
        """The descriptor that polls readable when :meth:`read_batch` has frames."""

    def read_batch(self, limit: int) -> list[EthernetFrame]:
        """The frames the host sent, from at most ``limit`` reads (so at most ``limit``
        frames); ``[]`` when there is none now. :class:`FrameDeviceError` if reading
        failed before any frame came (an error after some frames is left for the next
        call)."""

    def write_batch(self, frames: Sequence[EthernetFrame]) -> int:
        """Hand ``frames`` to the host's network stack in order; returns how many were
        dropped (a full queue, a closed device). MTU checks are the caller's."""

    def close(self) -> None:
        """Release the descriptor (twice is fine)."""


class LinkConfig(Protocol):
    """A port's link settings as the host sees them (``EthernetTap``'s configuration half)."""

    @property
    def device_name(self) -> str: ...

    @property
    def mac(self) -> int: ...

    @property
    def mtu(self) -> int: ...

    def set_mtu(self, mtu: int) -> None:
        """Change the link's MTU; :class:`TapError` if it cannot."""

    def add_ip(self, address: InetAddress) -> bool:
        """Assign ``ip/bits``; False if it could not be added (logged)."""

    def remove_ip(self, address: InetAddress) -> bool: ...

    def ips(self) -> list[InetAddress]:
        """Addresses currently on the port (those ztone manages and others)."""

    def add_route(self, route: Route) -> bool: ...

    def remove_route(self, route: Route) -> bool: ...

    def multicast_groups(self) -> list[MulticastGroup]:
        """Ethernet multicast groups the host subscribed to on this port."""


class Tap(Protocol):
    """One virtual Ethernet port (``EthernetTap``): a frame device and its link."""

    @property
    def device(self) -> FrameDevice: ...

    @property
    def link(self) -> LinkConfig: ...

    @property
    def device_name(self) -> str: ...

    def close(self) -> None:
        """Remove the port with its addresses and routes (the device is closed)."""


class TapFactory(Protocol):
    def create(self, nwid: int, mac: int, mtu: int, friendly_name: str) -> Tap:
        """Make the port for network ``nwid``; :class:`TapError` if it cannot."""

    def cleanup_stale(self) -> list[str]:
        """Remove ports a previous run left behind (ztone's own naming only)."""
