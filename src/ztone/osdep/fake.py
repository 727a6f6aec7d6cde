"""In-memory virtual ports for tests that cannot (or should not) touch the OS.

A :class:`FakeTap` is a :class:`FakeDevice` and a :class:`FakeLink`; they behave
like the Linux port where behaviour is observable through the
:class:`~ztone.osdep.base.FrameDevice` and :class:`~ztone.osdep.base.LinkConfig`
protocols:

* the device is a real non-blocking descriptor (one end of a Unix datagram socket
  pair), so an event loop can watch it: :meth:`FakeDevice.inject` plays a frame "from
  the host" into it; frames written with ``write_batch`` are recorded in
  :attr:`FakeDevice.put_frames` (after ``close()`` they are dropped, as the real port
  drops them);
* ``add_ip`` of an address already there is a success; one with the same IP but a
  different prefix length replaces it; ``remove_ip`` of an absent address is False;
* ``add_route`` of an identical route is a success; ``remove_route`` of an absent
  one is False;
* ``multicast_groups()`` = groups joined with :meth:`FakeLink.join` (ADI 0) plus the
  address-resolution group of every address (C.5.4);
* any operation named in a ``fail`` set returns False or fails, to exercise error
  paths: the link's ``"add_ip"``, ``"remove_ip"``, ``"add_route"``,
  ``"remove_route"``, ``"set_mtu"`` (raises :class:`TapError`); the device's
  ``"read"`` (``read_batch`` raises :class:`FrameDeviceError`), ``"read_once"``
  (the same, once) and ``"write"`` (``write_batch`` drops everything).

:class:`FakeTapFactory` names ports with the Linux rule, collisions included (the
names in ``existing_names`` and those of open fake ports count as taken).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import NamedTuple

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import EthernetFrame, FrameDeviceError, TapError
from ztone.osdep.managed import upstream_sort_key
from ztone.osdep.multicast import port_groups
from ztone.osdep.naming import choose_linux_device_name

MAX_FRAME = 65536


class Frame(NamedTuple):
    source: int
    destination: int
    ethertype: int
    payload: bytes


class FakeDevice:
    """A frame device over a Unix datagram socket pair (the host's end is internal)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._port, self._host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._port.setblocking(False)
        self._host.setblocking(False)
        self.put_frames: list[Frame] = []
        self.dropped_frames: list[Frame] = []
        self.fail: set[str] = set()
        self.closed = False

    # --- FrameDevice protocol -------------------------------------------------------

    def fileno(self) -> int:
        return self._port.fileno()

    def read_batch(self, limit: int) -> list[EthernetFrame]:
        if self.closed:
            return []
        if "read" in self.fail or "read_once" in self.fail:
            self.fail.discard("read_once")
            raise FrameDeviceError(f"{self.name}: read failed (injected failure)")
        frames: list[EthernetFrame] = []
        for _ in range(limit):
            try:
                data = self._port.recv(MAX_FRAME)
            except BlockingIOError:
                break
            frames.append(
                (
                    int.from_bytes(data[6:12], "big"),
                    int.from_bytes(data[0:6], "big"),
                    int.from_bytes(data[12:14], "big"),
                    data[14:],
                )
            )
        return frames

    def write_batch(self, frames: Sequence[EthernetFrame]) -> int:
        recorded = [Frame(s, d, e, bytes(p)) for s, d, e, p in frames]
        if self.closed or "write" in self.fail:
            self.dropped_frames += recorded
            return len(recorded)
        self.put_frames += recorded
        return 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._port.close()
            self._host.close()

    # --- test controls --------------------------------------------------------------

    def inject(
        self, source: int, destination: int, ethertype: int, payload: bytes | bytearray
    ) -> None:
        """The host sends a frame: it is readable from the device from now on."""
        if self.closed:
            raise TapError(f"{self.name}: closed")
        header = destination.to_bytes(6, "big") + source.to_bytes(6, "big")
        self._host.send(header + (ethertype & 0xFFFF).to_bytes(2, "big") + bytes(payload))

    def take_frames(self) -> list[Frame]:
        """Return the recorded written frames and forget them."""
        frames, self.put_frames = self.put_frames, []
        return frames


class FakeLink:
    """In-memory link configuration (see the module's rules)."""

    def __init__(self, name: str, mac: int, mtu: int) -> None:
        self._device_name = name
        self._mac = mac
        self._mtu = mtu
        self.addresses: list[InetAddress] = []
        self.routes: list[Route] = []
        self.joined: list[int] = []
        self.mtu_history: list[int] = [mtu]
        self.fail: set[str] = set()
        self.closed = False

    @property
    def device_name(self) -> str:
        return self._device_name

    @property
    def mac(self) -> int:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    def set_mtu(self, mtu: int) -> None:
        if self.closed:
            raise TapError(f"{self._device_name}: closed")
        if "set_mtu" in self.fail:
            raise TapError(f"{self._device_name}: cannot set MTU {mtu} (injected failure)")
        if mtu != self._mtu:
            self._mtu = mtu
            self.mtu_history.append(mtu)

    def add_ip(self, address: InetAddress) -> bool:
        if self.closed or "add_ip" in self.fail:
            return False
        if address in self.addresses:
            return True
        self.addresses = [a for a in self.addresses if a.ip != address.ip]
        self.addresses.append(address)
        return True

    def remove_ip(self, address: InetAddress) -> bool:
        if self.closed or "remove_ip" in self.fail or address not in self.addresses:
            return False
        self.addresses.remove(address)
        return True

    def ips(self) -> list[InetAddress]:
        if self.closed:
            return []
        return sorted(set(self.addresses), key=upstream_sort_key)

    def add_route(self, route: Route) -> bool:
        if self.closed or "add_route" in self.fail:
            return False
        if route not in self.routes:
            self.routes.append(route)
        return True

    def remove_route(self, route: Route) -> bool:
        if self.closed or "remove_route" in self.fail or route not in self.routes:
            return False
        self.routes.remove(route)
        return True

    def multicast_groups(self) -> list[MulticastGroup]:
        if self.closed:
            return []
        return port_groups(self.joined, self.addresses)

    # --- test controls --------------------------------------------------------------

    def join(self, mac: int) -> None:
        """The host joins Ethernet multicast group ``mac`` on this port."""
        if mac not in self.joined:
            self.joined.append(mac)

    def leave(self, mac: int) -> None:
        if mac in self.joined:
            self.joined.remove(mac)

    def release(self) -> None:
        self.closed = True
        self.routes.clear()
        self.addresses.clear()
        self.joined.clear()


class FakeTap:
    """One in-memory virtual port: :attr:`device` and :attr:`link`."""

    def __init__(
        self,
        nwid: int,
        mac: int,
        mtu: int,
        friendly_name: str,
        device_name: str,
        factory: FakeTapFactory | None = None,
    ) -> None:
        self.nwid = nwid
        self.friendly_name = friendly_name
        self._device = FakeDevice(device_name)
        self._link = FakeLink(device_name, mac, mtu)
        self._factory = factory
        self.closed = False

    @property
    def device(self) -> FakeDevice:
        return self._device

    @property
    def link(self) -> FakeLink:
        return self._link

    @property
    def device_name(self) -> str:
        return self._link.device_name

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._link.release()
        self._device.close()
        if self._factory is not None:
            self._factory.forget(self)


class FakeTapFactory:
    """Makes :class:`FakeTap` ports and remembers them."""

    def __init__(
        self,
        *,
        fail_create: bool = False,
        existing_names: set[str] | None = None,
        stale_names: list[str] | None = None,
    ) -> None:
        self.fail_create = fail_create
        self.existing_names: set[str] = set(existing_names or ())
        self.stale_names: list[str] = list(stale_names or ())
        self.created: list[FakeTap] = []
        self.open: dict[int, FakeTap] = {}

    def create(self, nwid: int, mac: int, mtu: int, friendly_name: str) -> FakeTap:
        if self.fail_create:
            raise TapError(f"cannot create a port for network {nwid:016x} (injected failure)")
        taken = self.existing_names | {t.device_name for t in self.open.values()}
        name = choose_linux_device_name(nwid, exists=taken.__contains__)
        tap = FakeTap(nwid, mac, mtu, friendly_name, name, self)
        self.created.append(tap)
        self.open[id(tap)] = tap
        return tap

    def cleanup_stale(self) -> list[str]:
        removed, self.stale_names = self.stale_names, []
        return removed

    def taps_for(self, nwid: int) -> list[FakeTap]:
        """Open ports of network ``nwid``."""
        return [t for t in self.open.values() if t.nwid == nwid]

    def forget(self, tap: FakeTap) -> None:
        """``tap`` closed: its name is free again."""
        self.open.pop(id(tap), None)
