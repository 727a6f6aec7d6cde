"""In-memory virtual ports for tests that cannot (or should not) touch the OS.

:class:`FakeTap` behaves like the Linux port where behaviour is observable through
the :class:`~ztone.osdep.base.Tap` protocol:

* ``put()`` frames are recorded in :attr:`FakeTap.put_frames` (frames whose payload
  exceeds the MTU, or sent after ``close()``, are dropped as the real port drops
  them); :meth:`FakeTap.inject` plays a frame "from the host" into ``on_frame``;
* ``add_ip`` of an address already there is a success; one with the same IP but a
  different prefix length replaces it; ``remove_ip`` of an absent address is False;
* ``add_route`` of an identical route is a success; ``remove_route`` of an absent
  one is False;
* ``multicast_groups()`` = groups joined with :meth:`FakeTap.join` (ADI 0) plus the
  address-resolution group of every address (C.5.4);
* any operation named in :attr:`FakeTap.fail` (``"add_ip"``, ``"remove_ip"``,
  ``"add_route"``, ``"remove_route"``, ``"set_mtu"``) returns False (``set_mtu``
  raises :class:`TapError`), to exercise error paths.

:class:`FakeTapFactory` names ports with the Linux rule, collisions included (the
names in ``existing_names`` and those of open fake ports count as taken).
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import BatchEnd, FrameHandler, TapError
from ztone.osdep.managed import upstream_sort_key
from ztone.osdep.multicast import port_groups
from ztone.osdep.naming import choose_linux_device_name


class Frame(NamedTuple):
    source: int
    destination: int
    ethertype: int
    payload: bytes


class FakeTap:
    """One in-memory virtual port."""

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
        self._device_name = device_name
        self._mac = mac
        self._mtu = mtu
        self._factory = factory
        self.loop: asyncio.AbstractEventLoop | None = None
        self.on_frame: FrameHandler | None = None
        self.on_batch_end: BatchEnd | None = None
        self.put_frames: list[Frame] = []
        self.dropped_frames: list[Frame] = []
        self.addresses: list[InetAddress] = []
        self.routes: list[Route] = []
        self.joined: list[int] = []
        self.mtu_history: list[int] = [mtu]
        self.fail: set[str] = set()
        self.closed = False

    # --- Tap protocol -----------------------------------------------------------

    @property
    def device_name(self) -> str:
        return self._device_name

    @property
    def mac(self) -> int:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameHandler,
              on_batch_end: BatchEnd | None = None) -> None:  # fmt: skip
        self._check_open()
        self.loop = loop
        self.on_frame = on_frame
        self.on_batch_end = on_batch_end

    def put(self, source: int, destination: int, ethertype: int, payload: bytes) -> None:
        frame = Frame(source, destination, ethertype, bytes(payload))
        if self.closed or len(payload) > self._mtu:
            self.dropped_frames.append(frame)
            return
        self.put_frames.append(frame)

    def set_mtu(self, mtu: int) -> None:
        self._check_open()
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

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.routes.clear()
        self.addresses.clear()
        self.joined.clear()
        self.on_frame = None
        if self._factory is not None:
            self._factory._closed(self)

    # --- test controls ----------------------------------------------------------

    def inject(
        self, source: int, destination: int, ethertype: int, payload: bytes | bytearray
    ) -> None:
        """Deliver a frame "from the host" to ``on_frame`` now (the port must be started),
        as one wakeup's batch."""
        if self.closed:
            raise TapError(f"{self._device_name}: closed")
        if self.on_frame is None:
            raise TapError(f"{self._device_name}: not started")
        self.on_frame(source, destination, ethertype, bytes(payload))
        if self.on_batch_end is not None:
            self.on_batch_end()

    def join(self, mac: int) -> None:
        """The host joins Ethernet multicast group ``mac`` on this port."""
        if mac not in self.joined:
            self.joined.append(mac)

    def leave(self, mac: int) -> None:
        if mac in self.joined:
            self.joined.remove(mac)

    def take_frames(self) -> list[Frame]:
        """Return the recorded ``put()`` frames and forget them."""
        frames, self.put_frames = self.put_frames, []
        return frames

    def _check_open(self) -> None:
        if self.closed:
            raise TapError(f"{self._device_name}: closed")


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

    def _closed(self, tap: FakeTap) -> None:
        self.open.pop(id(tap), None)
