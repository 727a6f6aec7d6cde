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
* Both handles are non-blocking: a flow-controlled send fails with ``EAGAIN`` and
  the frame is dropped (as a full TAP queue would) instead of blocking the loop.
* RX runs from the event loop: ``loop.add_reader(dlpi_fd)`` on a non-blocking
  descriptor; each wake-up drains up to :data:`RX_BATCH` frames with
  ``dlpi_recv(msec=0)`` and stops at "nothing more" (``DLPI_ETIMEDOUT``/``EAGAIN``).
  No thread, no busy polling.
* All links are temporary (``-t``) and all IP configuration is ifconfig's
  non-persistent kind, so a reboot leaves nothing; after a crash
  :meth:`IllumosTapFactory.cleanup_stale` removes links that follow ztone's naming
  (and only those).
"""

from __future__ import annotations

import asyncio
import errno as errno_mod
import logging

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import BatchEnd, FrameHandler, TapError
from ztone.osdep.illumos import libdlpi
from ztone.osdep.illumos.commands import Commands, IPAddress, IPNetwork, LinkInfo
from ztone.osdep.illumos.libdlpi import DlpiError, DlpiHandle, Libdlpi
from ztone.osdep.illumos.names import LinkNames, is_own_link, link_names
from ztone.osdep.managed import route_gateway, route_network

log = logging.getLogger(__name__)

RX_BATCH = 64
"""Frames read per wake-up at most (the loop gets a turn between batches)."""

RX_BUFFER = 16384
MIN_MTU = 576
MAX_MTU = 9000
"""An etherstub VNIC's MTU range (ILLUMOS.md §2.4)."""

BROADCAST_MAC = 0xFFFFFFFFFFFF
_MAX_NAME_TRIALS = 64
_MAX_RX_ERRORS = 3


def backend_mac(mac: int) -> int:
    """The backend VNIC's MAC: the network MAC with bit 2 of the first octet flipped.

    Unicast and locally administered stay as they were (bits 0 and 1 untouched).
    """
    return mac ^ (0x04 << 40)


def multicast_mac(group: IPAddress) -> int:
    """The Ethernet address an IP multicast group maps to (RFC 1112, RFC 2464)."""
    if group.version == 4:
        return 0x01005E000000 | (int(group) & 0x7FFFFF)
    return 0x333300000000 | (int(group) & 0xFFFFFFFF)


def address_resolution_group(ip: IPAddress) -> MulticastGroup:
    """ARP: broadcast with the IPv4 address as ADI; NDP: the solicited-node group."""
    if ip.version == 4:
        return MulticastGroup(BROADCAST_MAC, int(ip))
    return MulticastGroup(0x3333FF000000 | (int(ip) & 0xFFFFFF), 0)


def _common_prefix(a: IPAddress, b: IPAddress) -> int:
    bits = a.max_prefixlen
    diff = int(a) ^ int(b)
    return bits - diff.bit_length()


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
        log.info("%s: DL_PROMISC_FIXUPS not supported, host frames used as they come",
                 handle.linkname)  # fmt: skip
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
        self._cmd = factory.commands
        self.nwid = nwid
        self.friendly_name = friendly_name
        self.names = names
        self._mac = mac
        self._mac_bytes = mac.to_bytes(6, "big")
        self._mtu = mtu
        self._rx = rx
        self._tx = tx
        self._v6_plumbed = False
        self._routes: dict[Route, tuple[IPAddress, bool]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frame: FrameHandler | None = None
        self._on_batch_end: BatchEnd | None = None
        self._rx_fd = -1
        self._rx_buffer = bytearray(RX_BUFFER)
        self._rx_errors = 0
        self._tx_errors = 0
        self.fixups = False
        """Whether the receive stream has ``DL_PROMISC_FIXUPS`` (shown by the selftest)."""
        self.closed = False

    # --- Tap protocol: identity -----------------------------------------------------

    @property
    def device_name(self) -> str:
        return self.names.visible

    @property
    def mac(self) -> int:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    # --- frames ---------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameHandler,
              on_batch_end: BatchEnd | None = None) -> None:  # fmt: skip
        if self.closed:
            raise TapError(f"{self.device_name}: port is closed")
        self._loop = loop
        self._on_frame = on_frame
        self._on_batch_end = on_batch_end
        self._rx_fd = self._rx.fd()
        loop.add_reader(self._rx_fd, self._on_readable)

    def _stop_reader(self) -> None:
        if self._loop is not None and self._rx_fd >= 0:
            try:
                self._loop.remove_reader(self._rx_fd)
            except (ValueError, RuntimeError, OSError):
                pass  # loop already closed
        self._rx_fd = -1

    def _on_readable(self) -> None:
        if self._read_frames() and self._on_batch_end is not None:
            self._on_batch_end()

    def _read_frames(self) -> int:
        """Up to RX_BATCH frames to ``on_frame``; how many went."""
        delivered = 0
        buf = self._rx_buffer
        handler = self._on_frame
        for _ in range(RX_BATCH):
            try:
                n = self._rx.recv_into(buf, 0)
            except DlpiError as e:
                self._rx_errors += 1
                log.warning("%s: dlpi_recv failed: %s", self.device_name, e)
                if self._rx_errors >= _MAX_RX_ERRORS:
                    log.error("%s: giving up reading frames after %d errors",
                              self.device_name, self._rx_errors)  # fmt: skip
                    self._stop_reader()
                return delivered
            if n is None:
                return delivered
            self._rx_errors = 0
            # Only what the host sent: our own frames injected through the backend
            # VNIC (and anything else on the etherstub) have other source MACs.
            if n < libdlpi.ETHER_HEADER or buf[6:12] != self._mac_bytes or handler is None:
                continue
            dst = int.from_bytes(buf[0:6], "big")
            ethertype = (buf[12] << 8) | buf[13]
            end = min(n, libdlpi.ETHER_HEADER + self._mtu)
            delivered += 1
            try:
                handler(self._mac, dst, ethertype, bytes(buf[libdlpi.ETHER_HEADER : end]))
            except Exception:
                log.exception("%s: frame handler failed", self.device_name)
        return delivered

    def put(self, source: int, destination: int, ethertype: int, payload: bytes) -> None:
        if self.closed:
            return
        if len(payload) > self._mtu:
            log.debug("%s: dropping %d-byte frame above MTU %d",
                      self.device_name, len(payload), self._mtu)  # fmt: skip
            return
        frame = (
            destination.to_bytes(6, "big")
            + source.to_bytes(6, "big")
            + (ethertype & 0xFFFF).to_bytes(2, "big")
            + payload
        )
        try:
            self._tx.send(frame)
        except DlpiError as e:
            self._tx_errors += 1
            if e.sys_errno in (errno_mod.EAGAIN, errno_mod.EWOULDBLOCK, errno_mod.ENOBUFS):
                log.debug("%s: dlpi_send flow-controlled, frame dropped", self.device_name)
            elif self._tx_errors == 1 or self._tx_errors % 1000 == 0:
                log.warning("%s: dlpi_send failed (%d so far): %s",
                            self.device_name, self._tx_errors, e)  # fmt: skip

    # --- MTU ------------------------------------------------------------------------

    def set_mtu(self, mtu: int) -> None:
        if self.closed or mtu == self._mtu:
            return
        if not MIN_MTU <= mtu <= MAX_MTU:
            log.warning("%s: MTU %d outside the etherstub range %d..%d; keeping %d",
                        self.device_name, mtu, MIN_MTU, MAX_MTU, self._mtu)  # fmt: skip
            return
        try:
            if mtu > self._mtu:
                self._set_link_mtu(mtu)
                self._set_ip_mtu(mtu)
            else:
                self._set_ip_mtu(mtu)
                self._set_link_mtu(mtu)
        except TapError as e:
            log.warning("%s: could not change the MTU to %d: %s", self.device_name, mtu, e)
            return
        self._mtu = mtu

    def _set_link_mtu(self, mtu: int) -> None:
        for link in (self.names.visible, self.names.backend):
            self._cmd.dladm.set_linkprop(link, "mtu", str(mtu))

    def _set_ip_mtu(self, mtu: int) -> None:
        self._cmd.ifconfig.set_mtu(self.device_name, 4, mtu)
        if self._v6_plumbed:
            self._cmd.ifconfig.set_mtu(self.device_name, 6, mtu)

    # --- addresses ------------------------------------------------------------------

    def _port_addresses(self) -> list[tuple[IPAddress, int]]:
        out: list[tuple[IPAddress, int]] = []
        for a in self._cmd.ifconfig.addresses():
            if a.interface == self.device_name and not a.ip.is_unspecified:
                out.append((a.ip, a.prefixlen))
        return out

    def ips(self) -> list[InetAddress]:
        if self.closed:
            return []
        try:
            found = self._port_addresses()
        except TapError as e:
            log.warning("%s: cannot list addresses: %s", self.device_name, e)
            return []
        return sorted({InetAddress(ip, bits) for ip, bits in found}, key=_inet_key)

    def _ensure_family(self, family: int) -> None:
        if family == 6 and not self._v6_plumbed:
            self._cmd.ifconfig.plumb(self.device_name, 6, self._mtu)
            self._v6_plumbed = True

    def add_ip(self, address: InetAddress) -> bool:
        if self.closed:
            return False
        ip, bits = address.ip, address.port
        if not 0 < bits <= ip.max_prefixlen:
            log.warning("%s: refusing %s: bad prefix length", self.device_name, address)
            return False
        try:
            current = self._port_addresses()
            if (ip, bits) in current:
                return True
            for other_ip, other_bits in current:
                if other_ip == ip:  # same address, other prefix: replace it
                    log.info("%s: replacing %s/%d", self.device_name, other_ip, other_bits)
                    self._cmd.ifconfig.removeif(self.device_name, other_ip)
            self._ensure_family(ip.version)
            self._cmd.ifconfig.addif(self.device_name, ip, bits)
        except TapError as e:
            log.warning("%s: could not add %s: %s", self.device_name, address, e)
            return False
        return True

    def remove_ip(self, address: InetAddress) -> bool:
        if self.closed:
            return False
        try:
            if all(ip != address.ip for ip, _ in self._port_addresses()):
                return True
            self._cmd.ifconfig.removeif(self.device_name, address.ip)
        except TapError as e:
            log.warning("%s: could not remove %s: %s", self.device_name, address, e)
            return False
        return True

    # --- routes ---------------------------------------------------------------------

    def _source_for(self, target: IPNetwork) -> IPAddress | None:
        best: IPAddress | None = None
        best_len = -1
        for ip, _ in self._port_addresses():
            if ip.version != target.version or ip.is_link_local:
                continue
            common = _common_prefix(ip, target.network_address)
            if common > best_len:
                best, best_len = ip, common
        return best

    def _route_args(self, route: Route) -> tuple[IPAddress, bool] | None:
        via = route_gateway(route)
        if via is not None:
            if via.version != route.target.ip.version:
                return None
            return via, False
        source = self._source_for(route_network(route))
        return None if source is None else (source, True)

    def add_route(self, route: Route) -> bool:
        if self.closed:
            return False
        try:
            args = self._route_args(route)
            if args is None:
                log.warning("%s: no address to route %s from", self.device_name, route.target)
                return False
            gateway, on_link = args
            self._cmd.route.add(route_network(route), gateway, self.device_name, on_link)
        except TapError as e:
            log.warning("%s: could not add route %s: %s", self.device_name, route, e)
            return False
        self._routes[route] = args
        return True

    def remove_route(self, route: Route) -> bool:
        if self.closed:
            return False
        args = self._routes.pop(route, None)
        try:
            if args is None:
                args = self._route_args(route)
            if args is None:
                return False
            self._cmd.route.delete(route_network(route), args[0], self.device_name, args[1])
        except TapError as e:
            log.warning("%s: could not remove route %s: %s", self.device_name, route, e)
            return False
        return True

    # --- multicast ------------------------------------------------------------------

    def multicast_groups(self) -> list[MulticastGroup]:
        """Address-resolution groups of the port's IPs plus its IP group memberships."""
        if self.closed:
            return []
        groups: set[MulticastGroup] = set()
        try:
            for ip, _ in self._port_addresses():
                groups.add(address_resolution_group(ip))
            memberships = self._cmd.netstat.group_memberships()
        except TapError as e:
            log.debug("%s: multicast scan incomplete: %s", self.device_name, e)
            memberships = {}
        for group in memberships.get(self.device_name, set()):
            groups.add(MulticastGroup(multicast_mac(group), 0))
        return sorted(groups, key=lambda g: (g.mac, g.adi))

    # --- teardown -------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop_reader()
        self._rx.close()
        self._tx.close()
        for route, (gateway, on_link) in list(self._routes.items()):
            try:
                self._cmd.route.delete(route_network(route), gateway, self.device_name, on_link)
            except TapError as e:
                log.warning("%s: could not remove route %s: %s", self.device_name, route, e)
        self._routes.clear()
        self._factory.remove_links(self.names)
        self._factory.forget(self)


def _inet_key(a: InetAddress) -> tuple[int, int, int]:
    return (a.ip.version, int(a.ip), a.port)


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
            log.info("removing links left from an earlier run: %s",
                     ", ".join(n for n in names.all() if n in links))  # fmt: skip
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
        log.info("network %016x: port %s (backend %s, etherstub %s), MTU %d",
                 nwid, names.visible, names.backend, names.etherstub, mtu)  # fmt: skip
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
    "address_resolution_group",
    "backend_mac",
    "enable_fixups",
    "multicast_mac",
]
