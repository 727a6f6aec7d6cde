"""The illumos virtual Ethernet port: an etherstub, two VNICs and libdlpi.

Per network (names from :mod:`.names`)::

         host IP stack                                ztone (asyncio loop)
              |  ifconfig addif/removeif, route              ^            |
     +--------+---------+                                    | RX         | TX
     | visible VNIC  zt..0 |--- DLPI_RAW, promiscuous -------+            |
     +--------+---------+    (keeps frames whose source MAC             |
              |              is the visible VNIC's: what the host sent) |
     ======== etherstub zt..2 (a virtual switch, no uplink) ==========  |
              |                                                         |
     +--------+---------+                                               |
     | backend VNIC  zt..1 |<-- DLPI_RAW, dlpi_send of whole frames ----+
     +------------------+     (switched by the etherstub to the visible VNIC)

* Both VNICs get an explicit MTU (``dladm create-vnic -p mtu=``): VNICs on an
  etherstub otherwise default to 9000 and the host would send frames ZeroTier cannot
  carry. The IP MTU is set with it (``ifconfig ... plumb mtu``).
* The backend VNIC's MAC is the network MAC with a different first octet. Every
  member MAC of a ZeroTier network shares the first octet derived from the network
  id, so the backend can never collide with a peer's MAC.
* The receive handle asks for ``DL_PROMISC_FIXUPS`` (see :func:`enable_fixups`).
* The two handles are the port's frame device (:class:`.dlpi_device.DlpiDevice`),
  both non-blocking; the service's frame pump watches the receive handle's
  descriptor. No thread, no busy polling. The visible VNIC's IP configuration is
  the port's link (:class:`.link.IllumosLink`).
* All links are temporary (``-t``) and all IP configuration is ifconfig's
  non-persistent kind, so a reboot leaves nothing; after a crash
  :meth:`IllumosTapFactory.cleanup_stale` removes links that follow ztone's naming
  (and only those).
"""

from __future__ import annotations

import logging

from ztone.osdep.base import TapError
from ztone.osdep.illumos import libdlpi
from ztone.osdep.illumos.commands import Commands, LinkInfo
from ztone.osdep.illumos.dlpi_device import DlpiDevice
from ztone.osdep.illumos.libdlpi import DlpiError, DlpiHandle, Libdlpi
from ztone.osdep.illumos.link import MAX_MTU, MIN_MTU, IllumosLink
from ztone.osdep.illumos.names import LinkNames, is_own_link, link_names

log = logging.getLogger(__name__)

_MAX_NAME_TRIALS = 64


def backend_mac(mac: int) -> int:
    """The backend VNIC's MAC: the network MAC with bit 2 of the first octet flipped.

    Unicast and locally administered stay as they were (bits 0 and 1 untouched).
    """
    return mac ^ (0x04 << 40)


def enable_fixups(handle: DlpiHandle) -> bool:
    """Ask MAC to finish the frames the host itself sends before we see them.

    The receive handle sees the host's transmissions as promiscuous loop-back
    copies, and those may still carry partial checksums left for hardware offload
    or be LSO super-frames; ZeroTier would forward them as they are. illumos' own
    vnd driver enables ``DL_PROMISC_FIXUPS`` for exactly this traffic (last, after
    the levels). A kernel without the modifier answers ``DL_NOTSUPPORTED``: then
    the frames are used as they come. Returns whether the modifier is on.
    """
    try:
        handle.promiscon(libdlpi.DL_PROMISC_FIXUPS)
    except DlpiError as e:
        if e.code != libdlpi.DL_NOTSUPPORTED:
            raise
        log.info(
            "%s: DL_PROMISC_FIXUPS not supported, host frames used as they come", handle.linkname
        )
        return False
    return True


class IllumosTap:
    """One network's port. Made by :meth:`IllumosTapFactory.create`."""

    def __init__(
        self,
        factory: IllumosTapFactory,
        nwid: int,
        mac: int,
        mtu: int,
        friendly_name: str,
        names: LinkNames,
        rx: DlpiHandle,
        tx: DlpiHandle,
    ) -> None:
        self._factory = factory
        self.nwid = nwid
        self.friendly_name = friendly_name
        self.names = names
        self._device = DlpiDevice(names.visible, mac, rx, tx)
        self._link = IllumosLink(factory.commands, names, mac, mtu)
        self.fixups = False
        """Whether the receive stream has ``DL_PROMISC_FIXUPS`` (shown by the selftest)."""
        self.closed = False

    @property
    def device(self) -> DlpiDevice:
        return self._device

    @property
    def link(self) -> IllumosLink:
        return self._link

    @property
    def device_name(self) -> str:
        return self.names.visible

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._device.close()
        self._link.release()
        self._factory.remove_links(self.names)
        self._factory.forget(self)


class IllumosTapFactory:
    """Makes :class:`IllumosTap` ports; ``create`` and ``cleanup_stale`` as in TapFactory.

    ``commands`` defaults to :class:`Commands` from the environment
    (``ZTONE_ILLUMOS_SBIN`` and friends), ``library`` to ``ZTONE_LIBDLPI`` or
    ``libdlpi.so.1``; the library is loaded on the first :meth:`create`.
    """

    def __init__(
        self,
        commands: Commands | None = None,
        library: str | Libdlpi | None = None,
    ) -> None:
        self.commands = commands or Commands()
        self._library = library
        self._dlpi: Libdlpi | None = library if isinstance(library, Libdlpi) else None
        self._taps: dict[int, IllumosTap] = {}

    @property
    def dlpi(self) -> Libdlpi:
        if self._dlpi is None:
            name = self._library if isinstance(self._library, str) else None
            try:
                self._dlpi = Libdlpi(name)
            except (OSError, ImportError) as e:
                raise TapError(f"libdlpi unavailable: {e}") from e
        return self._dlpi

    def taps(self) -> list[IllumosTap]:
        return list(self._taps.values())

    def forget(self, tap: IllumosTap) -> None:
        if self._taps.get(tap.nwid) is tap:
            del self._taps[tap.nwid]

    def _choose_names(self, nwid: int) -> LinkNames:
        taken = {name for tap in self._taps.values() for name in tap.names.all()}
        for trial in range(_MAX_NAME_TRIALS):
            names = link_names(nwid, trial)
            if not taken.intersection(names.all()):
                return names
        raise TapError(f"no free link names for network {nwid:016x}")

    # --- link plumbing shared by create, close and cleanup ------------------------

    def _plumbed(self) -> dict[str, set[int]]:
        plumbed: dict[str, set[int]] = {}
        for a in self.commands.ifconfig.addresses():
            plumbed.setdefault(a.interface, set()).add(a.family)
        return plumbed

    def remove_links(
        self,
        names: LinkNames,
        links: dict[str, LinkInfo] | None = None,
        plumbed: dict[str, set[int]] | None = None,
    ) -> list[str]:
        """Unplumb and delete one network's links (those present); returns what went."""
        cmd = self.commands
        try:
            links = cmd.dladm.show_links() if links is None else links
        except TapError as e:
            log.warning("cannot list datalinks: %s", e)
            links = {name: LinkInfo(name, "", 0, "") for name in names.all()}
        try:
            plumbed = self._plumbed() if plumbed is None else plumbed
        except TapError as e:
            log.warning("cannot list IP interfaces: %s", e)
            plumbed = {names.visible: {4, 6}}
        for family in (6, 4):
            if family in plumbed.get(names.visible, set()):
                cmd.ifconfig.unplumb(names.visible, family, check=False)
        removed: list[str] = []
        for name in (names.backend, names.visible):
            if name in links and cmd.dladm.delete_vnic(name, check=False).ok:
                removed.append(name)
        if names.etherstub in links and cmd.dladm.delete_etherstub(names.etherstub, check=False).ok:
            removed.append(names.etherstub)
        for name in names.all():
            if name in links and name not in removed:
                log.warning("could not remove datalink %s", name)
        return removed

    # --- TapFactory -----------------------------------------------------------------

    def create(self, nwid: int, mac: int, mtu: int, friendly_name: str) -> IllumosTap:
        if nwid in self._taps:
            raise TapError(f"network {nwid:016x} already has a port")
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise TapError(
                f"MTU {mtu} outside what an etherstub VNIC carries ({MIN_MTU}..{MAX_MTU})"
            )
        if mac >> 40 & 0x01:
            raise TapError(f"MAC {mac:012x} is a multicast address")
        dl = self.dlpi
        cmd = self.commands
        names = self._choose_names(nwid)
        links = cmd.dladm.show_links()
        if any(name in links for name in names.all()):
            log.info(
                "removing links left from an earlier run: %s",
                ", ".join(n for n in names.all() if n in links),
            )
            self.remove_links(names, links)
        rx: DlpiHandle | None = None
        tx: DlpiHandle | None = None
        rx_fixups = False
        try:
            cmd.dladm.create_etherstub(names.etherstub)
            cmd.dladm.create_vnic(names.visible, names.etherstub, mac, mtu)
            cmd.dladm.create_vnic(names.backend, names.etherstub, backend_mac(mac), mtu)
            cmd.ifconfig.plumb(names.visible, 4, mtu)
            rx, rx_fixups = self._open(dl, names.visible, mtu, receive=True)
            tx, _ = self._open(dl, names.backend, mtu, receive=False)
        except (TapError, DlpiError) as e:
            for handle in (rx, tx):
                if handle is not None:
                    handle.close()
            self.remove_links(names)
            raise TapError(f"cannot create the port for network {nwid:016x}: {e}") from e
        tap = IllumosTap(self, nwid, mac, mtu, friendly_name, names, rx, tx)
        tap.fixups = rx_fixups
        self._taps[nwid] = tap
        log.info(
            "network %016x: port %s (backend %s, etherstub %s), MTU %d",
            nwid,
            names.visible,
            names.backend,
            names.etherstub,
            mtu,
        )
        return tap

    @staticmethod
    def _open(dl: Libdlpi, link: str, mtu: int, *, receive: bool) -> tuple[DlpiHandle, bool]:
        """The handle, bound (and promiscuous for ``receive``); whether FIXUPS is on."""
        handle = dl.open(link, libdlpi.DLPI_RAW)
        fixups = False
        try:
            handle.bind(libdlpi.DLPI_ANY_SAP)
            if receive:
                # ANY_SAP binds SAP 0 (802.3 only): PROMISC_SAP brings every
                # ethertype, PHYS every frame, including those the host sends.
                for level in (
                    libdlpi.DL_PROMISC_PHYS,
                    libdlpi.DL_PROMISC_SAP,
                    libdlpi.DL_PROMISC_MULTI,
                ):
                    handle.promiscon(level)
                fixups = enable_fixups(handle)
            info = handle.info()
            if info.mactype != libdlpi.DL_ETHER:
                raise TapError(f"{link} is not Ethernet ({dl.mactype(info.mactype)})")
            if info.max_sdu < mtu:
                raise TapError(f"{link} carries {info.max_sdu} bytes, MTU {mtu} wanted")
            # Both descriptors are non-blocking (last, after the control primitives,
            # as bhyve's DLPI backend does): RX is driven by the loop's reader, and a
            # flow-controlled TX must fail with EAGAIN (put() drops the frame) instead
            # of stalling the whole event loop in putmsg.
            handle.set_nonblocking()
        except BaseException:
            handle.close()
            raise
        return handle, fixups

    def cleanup_stale(self) -> list[str]:
        """Remove links with ztone's names that no live port of this factory owns."""
        cmd = self.commands
        try:
            links = cmd.dladm.show_links()
            plumbed = self._plumbed()
        except TapError as e:
            log.warning("stale link cleanup skipped: %s", e)
            return []
        owned = {name for tap in self._taps.values() for name in tap.names.all()}
        stale = sorted(
            name
            for name, info in links.items()
            if is_own_link(name) and name not in owned and info.klass in ("vnic", "etherstub")
        )
        removed: list[str] = []
        stems = sorted({name[:-1] for name in stale})
        for base in stems:
            names = LinkNames(base + "0", base + "1", base + "2")
            if owned.intersection(names.all()):
                continue
            removed += self.remove_links(names, links, plumbed)
        if removed:
            log.info("removed stale links: %s", ", ".join(removed))
        return sorted(removed)


__all__ = [
    "IllumosTap",
    "IllumosTapFactory",
    "backend_mac",
    "enable_fixups",
]
