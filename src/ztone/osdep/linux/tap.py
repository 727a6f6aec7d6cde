"""Linux virtual ports: a TAP device per network (PROTOCOL-NETWORK-SERVICE C.5).

A :class:`LinuxTap` puts together the pieces of ``LinuxEthernetTap``:

* :mod:`.tun` - the TAP descriptor and its ioctls; :class:`~.tun.TunDevice` is the
  port's frame device;
* :mod:`.netlink` - :class:`~.netlink.LinuxLink`, the port's link configuration
  (addresses, routes, MTU, multicast groups), over pyroute2;
* :mod:`.stale` - the alias marker each device carries and the removal of devices a
  ztone left behind.

Devices are named by :mod:`ztone.osdep.naming` (``devicemap`` or ``zt`` + base32).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from ztone.crypto.backend import DEFAULT, Backend
from ztone.osdep.base import TapError
from ztone.osdep.linux import stale
from ztone.osdep.linux.netlink import LinuxLink, Netlink, delete_link, link_name
from ztone.osdep.naming import choose_linux_device_name, read_devicemap
from ztone.util.inet_checksum import inet_sum_function

if TYPE_CHECKING:
    from ztone.osdep.linux.tun import TunDevice

log = logging.getLogger(__name__)


class LinuxTap:
    """One TAP device (``LinuxEthernetTap``); made by :class:`LinuxTapFactory`."""

    def __init__(
        self,
        nwid: int,
        mac: int,
        mtu: int,
        friendly_name: str,
        netlink: Netlink,
        devicemap: dict[str, str] | None = None,
        crypto: Backend = DEFAULT,
    ) -> None:
        self.nwid = nwid
        self.friendly_name = friendly_name
        self._nl = netlink
        if not 0 <= mac < 1 << 48 or mac & 0x010000000000:
            raise TapError(f"network {nwid:016x}: invalid unicast MAC {mac:#x}")
        if not 68 <= mtu <= 65535:
            raise TapError(f"network {nwid:016x}: invalid MTU {mtu}")

        # The device code (and its offload helpers) loads with the first port: a daemon
        # that never joins, such as a root or a controller, never needs it.
        from ztone.osdep.linux import tun  # noqa: PLC0415

        fd = tun.open_tun()
        try:
            name, vnet = tun.attach_tap(
                fd, choose_linux_device_name(nwid, devicemap=devicemap), tun.offload_wanted()
            )
            try:
                tun.set_mac(name, mac)
                tun.set_mtu(name, mtu)
                tun.bring_up(name)
            except OSError as e:
                raise TapError(
                    f"{name}: setting MAC/MTU or bringing the link up failed: {e}"
                ) from None
            try:
                ifindex = socket.if_nametoindex(name)
            except OSError as e:
                raise TapError(f"{name}: no interface index: {e}") from None
        except BaseException:
            os.close(fd)
            raise
        self._device = tun.TunDevice(fd, name, vnet, inet_sum_function(crypto))
        self._link = LinuxLink(netlink, name, ifindex, mac, mtu)
        stale.register(ifindex, name)
        self._link.set_alias(str(stale.AliasMarker.mine(nwid)))
        self.closed = False
        log.info("%s: created for network %016x (MAC %012x, MTU %d)", name, nwid, mac, mtu)

    @property
    def device(self) -> TunDevice:
        return self._device

    @property
    def link(self) -> LinuxLink:
        return self._link

    @property
    def device_name(self) -> str:
        return self._link.device_name

    @property
    def ifindex(self) -> int:
        return self._link.ifindex

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._link.release()
        self._device.close()
        name, index = self._link.device_name, self._link.ifindex
        stale.unregister(index, name)
        # Non-persistent: the device goes with its last file descriptor. If a copy of the
        # descriptor lives on (a forked child), delete the link explicitly.
        if link_name(self._nl, index) == name:
            delete_link(self._nl, index, name)
        log.info("%s: closed", name)


class LinuxTapFactory:
    """Makes :class:`LinuxTap` ports; ``home`` is where ``devicemap`` is looked for."""

    def __init__(
        self, home: str | os.PathLike[str] | None = None, crypto: Backend = DEFAULT
    ) -> None:
        self.home = Path(home) if home is not None else None
        self.crypto = crypto  # the GRO checksums follow the daemon's backend
        self.netlink = Netlink()

    def create(self, nwid: int, mac: int, mtu: int, friendly_name: str) -> LinuxTap:
        try:
            return LinuxTap(
                nwid,
                mac,
                mtu,
                friendly_name,
                self.netlink,
                read_devicemap(self.home),
                self.crypto,
            )
        except TapError as e:
            log.warning("network %016x: cannot create port: %s", nwid, e)
            raise

    def cleanup_stale(self) -> list[str]:
        """Delete TAP devices a ztone left behind (:func:`.stale.cleanup_stale`)."""
        return stale.cleanup_stale(self.netlink)

    def close(self) -> None:
        """Stop the netlink worker (ports made by this factory stop working)."""
        self.netlink.close()


__all__ = ["LinuxTap", "LinuxTapFactory"]
