"""``ztone-cli doctor --selftest``: a throwaway port, frames both ways, then nothing left.

For the first run on a real illumos box (root, or the SMF method's privileges). It
builds one port exactly as the daemon does (:meth:`IllumosTapFactory.create`: an
etherstub and two VNICs with ztone's names, IPv4 plumbed, libdlpi handles), plays the
ZeroTier side of it itself and checks, printing one line per check::

    ok   <check>: <what held>
    FAIL <check>: <what went wrong>
         fix: <what to do>
    info <check>: <an observation, neither pass nor fail>

Checks, in order: ``preflight`` (the doctor's checks; the test stops if one fails),
``create``, ``fixups`` (``DL_PROMISC_FIXUPS`` accepted), ``mtu`` (dladm, ifconfig and
``dlpi_info`` agree on :data:`MTU`), ``link-state`` (both VNICs ``up``), ``arp-out``
(the host's broadcast ARP request reaches ztone), ``arp-in`` (ztone's ARP reply is
taken: the host then sends to the peer's MAC), ``udp-out`` (the host's UDP datagram
arrives with complete IPv4 and UDP checksums), ``udp-in`` (a datagram ztone sends
reaches a host socket), ``tcp-out`` (the host's SYN, checksum complete), ``tcp-in``
(ztone's SYN-ACK completes the host's ``connect``), ``tcp-data`` (the host sends
:data:`TCP_BYTES` bytes: every segment fits the MTU and has a complete checksum; no
offload super-frame), ``ipv6`` (``ifconfig inet6 plumb`` on the port), ``ndp`` (an
``info`` line: the state of in.ndpd's service and whether the host then sends router
solicitations there, i.e. IPv6 autoconfiguration runs on ztone's links) and
``cleanup`` (every link gone).
Before the port, ``system`` and ``python`` (``info``: the OS, Python, whether pip is
importable and whether ensurepip bundles a pip) record what the box is.

The port lives on its own etherstub (no uplink): nothing leaves the box. The host side
gets :data:`HOST_IP`/30 and the simulated peer :data:`PEER_IP`, both from
198.18.0.0/15 (RFC 2544 benchmarking range). Everything is removed at the end, also
after an error or SIGINT/SIGTERM/SIGHUP; a run killed with SIGKILL leaves links with
ztone's names that the daemon's start-up (or the SMF method) removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import os
import secrets
import signal
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from ztone import __version__
from ztone.crypto import backend
from ztone.node.wire.inetaddress import InetAddress
from ztone.osdep.base import TapError
from ztone.osdep.illumos.commands import Commands
from ztone.osdep.illumos.libdlpi import DlpiError
from ztone.osdep.illumos.names import link_names
from ztone.osdep.illumos.preflight import run_preflight
from ztone.osdep.illumos.tap import IllumosTap, IllumosTapFactory

SELFTEST_NWID = 0x5E1F7E5700005E1F
"""A network id no controller hands out by chance (its names are zt...0/1/2 as always)."""
HOST_MAC = 0x025E1F000001
PEER_MAC = 0x025E1F000002
HOST_IP = ipaddress.IPv4Address("198.19.255.253")
PEER_IP = ipaddress.IPv4Address("198.19.255.254")
PREFIX = 30
MTU = 2800
UDP_PORT = 47811
TCP_PORT = 47812
TCP_BYTES = 8000
WAIT = 5.0
"""Seconds any one step may take."""
NDP_WAIT = 6.0
NDP_FMRI = "svc:/network/routing/ndp:default"

ETH_ARP = 0x0806
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_HEADER = 14


def inet_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The RFC 1071 one's-complement sum, folded to 16 bits (not inverted)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total: int = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    return ~inet_sum(data, initial) & 0xFFFF


def _pseudo4(src: bytes, dst: bytes, proto: int, length: int) -> int:
    return inet_sum(src + dst + struct.pack("!BBH", 0, proto, length))


def ipv4_packet(
    src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, proto: int, l4: bytes, ident: int = 0
) -> bytes:
    """IPv4 header (20 bytes, DF, TTL 64) with its checksum, then ``l4``."""
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000, 64, proto, 0, src.packed, dst.packed
    )
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + l4


def udp_datagram(
    src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, sport: int, dport: int, data: bytes
) -> bytes:
    length = 8 + len(data)
    head = struct.pack("!HHHH", sport, dport, length, 0)
    c = checksum(head + data, _pseudo4(src.packed, dst.packed, 17, length)) or 0xFFFF
    return ipv4_packet(src, dst, 17, head[:6] + struct.pack("!H", c) + data)


def tcp_segment(
    src: ipaddress.IPv4Address,
    dst: ipaddress.IPv4Address,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    options: bytes = b"",
) -> bytes:
    offset = (20 + len(options)) // 4
    head = (
        struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, 65535, 0, 0) + options
    )
    c = checksum(head, _pseudo4(src.packed, dst.packed, 6, len(head)))
    return ipv4_packet(src, dst, 6, head[:16] + struct.pack("!H", c) + head[18:])


def arp_reply(
    sender_mac: int,
    sender_ip: ipaddress.IPv4Address,
    target_mac: int,
    target_ip: ipaddress.IPv4Address,
) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        ETH_IPV4,
        6,
        4,
        2,
        sender_mac.to_bytes(6, "big"),
        sender_ip.packed,
        target_mac.to_bytes(6, "big"),
        target_ip.packed,
    )


@dataclass
class IPv4Seen:
    """An IPv4 packet the host sent, with what its checksums say."""

    proto: int
    header_ok: bool
    l4_ok: bool
    l4: bytes
    length: int


def parse_ipv4(payload: bytes) -> IPv4Seen | None:
    if len(payload) < 20 or payload[0] >> 4 != 4:
        return None
    ihl = (payload[0] & 0xF) * 4
    total = struct.unpack_from("!H", payload, 2)[0]
    if ihl < 20 or total < ihl or total > len(payload):
        return None
    header_ok = inet_sum(payload[:ihl]) == 0xFFFF
    proto = payload[9]
    l4 = payload[ihl:total]
    pseudo = _pseudo4(payload[12:16], payload[16:20], proto, len(l4))
    if proto == 17 and len(l4) >= 8 and l4[6:8] == b"\x00\x00":
        l4_ok = False  # "no checksum": the host always computes one, so it was left out
    else:
        l4_ok = inet_sum(l4, pseudo) == 0xFFFF
    return IPv4Seen(proto, header_ok, l4_ok, bytes(l4), len(payload))


class Report:
    """Writes the check lines as they happen."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = 0

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def ok(self, check: str, message: str) -> None:
        self._write(f"ok   {check}: {message}")

    def fail(self, check: str, message: str, fix: str) -> None:
        self.failed += 1
        self._write(f"FAIL {check}: {message}")
        self._write(f"     fix: {fix}")

    def info(self, check: str, message: str) -> None:
        self._write(f"info {check}: {message}")


def python_packaging() -> str:
    """Whether this Python has pip, ensurepip's bundled pip (``python3 -m venv``) and
    ztone's native accelerator.

    OmniOS builds Python ``--without-ensurepip``; the README's venv recipe uses
    ``--without-pip`` and the IPS pip, and this line records what the box really has.
    """
    try:
        pip = importlib.import_module("pip")
        has_pip = f"pip {getattr(pip, '__version__', '?')} importable"
    except ImportError:
        has_pip = "pip NOT importable"
    try:
        ensurepip = importlib.import_module("ensurepip")
        bundled = f"ensurepip bundles pip {ensurepip.version()}"
    except Exception as e:  # missing module or wheel: any error means "no bundled pip"
        bundled = f"ensurepip has no bundled pip ({type(e).__name__}: {e})"
    native = "built" if backend.native_available() else "NOT built (pure-Python crypto: slow)"
    return f"{has_pip} ({sys.prefix}); {bundled}; native accelerator {native}"


PEER_READ_BATCH = 64


class Peer:
    """The ZeroTier side of the port: sees what the host sends, answers through ``put``."""

    def __init__(self, tap: IllumosTap, loop: asyncio.AbstractEventLoop) -> None:
        self.tap = tap
        self.loop = loop
        self.arp_requests = 0
        self.answer_arp = True
        self.frames: asyncio.Queue[tuple[int, int, bytes]] = asyncio.Queue(maxsize=4096)
        self.router_solicitations = 0

    def __call__(self, src: int, dst: int, ethertype: int, payload: bytes) -> None:
        if ethertype == ETH_ARP and len(payload) >= 28:
            oper = struct.unpack_from("!H", payload, 6)[0]
            target = ipaddress.IPv4Address(payload[24:28])
            if oper == 1 and target == PEER_IP and dst == 0xFFFFFFFFFFFF:
                self.arp_requests += 1
                if self.answer_arp:
                    sender_ip = ipaddress.IPv4Address(payload[14:18])
                    self.send(PEER_MAC, src, ETH_ARP, arp_reply(PEER_MAC, PEER_IP, src, sender_ip))
            return
        if ethertype == ETH_IPV6 and len(payload) >= 41 and payload[6] == 58:
            if payload[40] == 133:  # ICMPv6 router solicitation
                self.router_solicitations += 1
            return
        if ethertype == ETH_IPV4 and dst == PEER_MAC:
            with contextlib.suppress(asyncio.QueueFull):
                self.frames.put_nowait((src, ethertype, payload))

    async def next_ipv4(self, proto: int, timeout: float = WAIT) -> IPv4Seen | None:
        """The next IPv4 packet of ``proto`` the host sent to the peer (None on timeout)."""
        deadline = self.loop.time() + timeout
        while True:
            left = deadline - self.loop.time()
            if left <= 0:
                return None
            try:
                _, _, payload = await asyncio.wait_for(self.frames.get(), left)
            except TimeoutError:
                return None
            seen = parse_ipv4(payload)
            if seen is not None and seen.proto == proto:
                return seen

    def send(self, source: int, destination: int, ethertype: int, payload: bytes) -> None:
        self.tap.device.write_batch([(source, destination, ethertype, payload)])

    def send_ipv4(self, packet: bytes) -> None:
        self.send(PEER_MAC, HOST_MAC, ETH_IPV4, packet)

    def readable(self) -> None:
        """The port's frames (the daemon's frame pump does this for real ports)."""
        for frame in self.tap.device.read_batch(PEER_READ_BATCH):
            self(*frame)


async def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class Selftest:
    def __init__(
        self, report: Report, commands: Commands | None = None, library: str | None = None
    ) -> None:
        self.report = report
        self.commands = commands or Commands()
        self.library = library
        self.factory = IllumosTapFactory(self.commands, library)
        self.names = link_names(SELFTEST_NWID)
        self.tap: IllumosTap | None = None
        self._reading = -1  # the descriptor the loop watches for the peer

    # --- the whole run ---------------------------------------------------------------

    async def run(self) -> None:
        r = self.report
        problems = run_preflight(commands=self.commands, library=self.library)
        if problems:
            for p in problems:
                r.fail("preflight", p.message, p.fix)
            r.info("selftest", "not run: fix the preflight problems first")
            return
        r.ok("preflight", "commands, services, privileges, libdlpi and dladm")
        u = os.uname()
        r.info(
            "system",
            f"{u.sysname} {u.release} {u.version} {u.machine}, Python "
            f"{sys.version.split()[0]}, ztone {__version__}",
        )
        r.info("python", python_packaging())
        try:
            await self._run_port()
        finally:
            self._cleanup()

    async def _run_port(self) -> None:
        r = self.report
        loop = asyncio.get_running_loop()
        try:
            tap = self.factory.create(SELFTEST_NWID, HOST_MAC, MTU, "ztone selftest")
        except (TapError, DlpiError) as e:
            r.fail("create", str(e), "send this output; dladm/ifconfig said why above")
            return
        self.tap = tap
        r.ok(
            "create",
            f"etherstub {self.names.etherstub}, VNICs {self.names.visible} "
            f"(IPv4 plumbed) and {self.names.backend}, libdlpi handles open",
        )
        if tap.fixups:
            r.ok("fixups", "DL_PROMISC_FIXUPS on the receive stream")
        else:
            r.info(
                "fixups",
                "the kernel refused DL_PROMISC_FIXUPS (DL_NOTSUPPORTED): the "
                "host's frames come unfinished if it offloads checksums",
            )
        self._check_mtu(tap)
        self._check_link_state()
        if not tap.link.add_ip(InetAddress(HOST_IP, PREFIX)):
            r.fail(
                "address",
                f"could not add {HOST_IP}/{PREFIX} to {tap.device_name}",
                "send this output (ifconfig's message is in the lines above)",
            )
            return
        peer = Peer(tap, loop)
        self._reading = tap.device.fileno()
        loop.add_reader(self._reading, peer.readable)
        await self._check_udp(peer)
        await self._check_tcp(peer)
        await self._check_ipv6(peer)

    # --- the checks --------------------------------------------------------------

    def _check_mtu(self, tap: IllumosTap) -> None:
        r = self.report
        found: dict[str, int] = {}
        try:
            links = self.commands.dladm.show_links()
            for name in (self.names.visible, self.names.backend):
                found[f"dladm {name}"] = links[name].mtu if name in links else 0
            for a in self.commands.ifconfig.addresses():
                if a.lif == tap.device_name and a.family == 4:
                    found[f"ifconfig {a.lif}"] = a.mtu
            found["dlpi_info rx"] = tap.device.rx.info().max_sdu
            found["dlpi_info tx"] = tap.device.tx.info().max_sdu
        except (TapError, DlpiError) as e:
            r.fail("mtu", f"cannot read the MTU back: {e}", "send this output")
            return
        wrong = {k: v for k, v in found.items() if v != MTU}
        if len(found) < 5 or wrong:
            r.fail(
                "mtu",
                f"expected {MTU} everywhere, read {found}",
                "send this output (dladm show-linkprop -p mtu and ifconfig -a help too)",
            )
        else:
            r.ok("mtu", f"{MTU} on both VNICs (dladm), the IP interface and both streams")

    def _check_link_state(self) -> None:
        r = self.report
        states: dict[str, str] = {}
        for name in (self.names.visible, self.names.backend):
            result = self.commands.runner.run(
                [self.commands.paths.dladm, "show-link", "-p", "-o", "link,state", name],
                check=False,
                query=True,
            )
            line = result.stdout.strip().split(":")
            states[name] = line[1] if result.ok and len(line) >= 2 else (result.text() or "?")
        if all(v == "up" for v in states.values()):
            r.ok("link-state", "both VNICs up")
        else:
            r.fail(
                "link-state",
                f"link states {states}",
                "send this output and `dladm show-link` / `dladm show-vnic`",
            )

    async def _check_udp(self, peer: Peer) -> None:
        r = self.report
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind((str(HOST_IP), UDP_PORT))
            payload = secrets.token_bytes(1200)
            sock.sendto(payload, (str(PEER_IP), UDP_PORT))
            if await _wait_until(lambda: peer.arp_requests > 0, WAIT):
                r.ok("arp-out", f"the host's broadcast ARP request for {PEER_IP} reached ztone")
            else:
                r.fail(
                    "arp-out",
                    f"no ARP request from the host reached ztone in {WAIT:g} s",
                    f"send this output; check `snoop -d {self.names.visible}` while it runs",
                )
                return
            seen = await peer.next_ipv4(17)
            if seen is None:
                r.fail(
                    "arp-in",
                    "ztone answered the ARP request but the host sent nothing to the answered MAC",
                    "send this output (`arp -an` helps)",
                )
                return
            r.ok("arp-in", "ztone's ARP reply was taken (the host sent to the peer's MAC)")
            data = seen.l4[8:]
            if seen.header_ok and seen.l4_ok and data == payload:
                r.ok(
                    "udp-out",
                    "host -> ztone: 1200-byte UDP datagram, IPv4 and UDP checksums complete",
                )
            else:
                r.fail(
                    "udp-out",
                    f"host -> ztone UDP: header checksum "
                    f"{'ok' if seen.header_ok else 'BAD'}, UDP checksum "
                    f"{'ok' if seen.l4_ok else 'BAD/partial'}, payload "
                    f"{'intact' if data == payload else 'changed'}",
                    "send this output: the kernel hands over frames with offloaded "
                    "checksums (DL_PROMISC_FIXUPS missing or not honoured)",
                )
            back = secrets.token_bytes(1000)
            peer.send_ipv4(udp_datagram(PEER_IP, HOST_IP, UDP_PORT + 1, UDP_PORT, back))
            try:
                got = await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)
            except TimeoutError:
                got = b""
            if got == back:
                r.ok("udp-in", "ztone -> host: 1000-byte UDP datagram delivered to a socket")
            else:
                r.fail(
                    "udp-in",
                    f"a UDP datagram ztone sent did not reach the host socket in {WAIT:g} s",
                    "send this output; dlpi_send on "
                    f"{self.names.backend} or the etherstub did not deliver it",
                )

    async def _check_tcp(self, peer: Peer) -> None:
        r = self.report
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind((str(HOST_IP), 0))
            connect = asyncio.ensure_future(loop.sock_connect(sock, (str(PEER_IP), TCP_PORT)))
            syn = await peer.next_ipv4(6)
            if syn is None or len(syn.l4) < 20 or not syn.l4[13] & 0x02:
                connect.cancel()
                r.fail("tcp-out", "no SYN from the host reached ztone", "send this output")
                return
            sport, _, host_isn = struct.unpack_from("!HHI", syn.l4)
            if syn.header_ok and syn.l4_ok:
                r.ok("tcp-out", "host -> ztone: SYN with complete checksums")
            else:
                r.fail(
                    "tcp-out",
                    "the host's SYN arrived with a bad or partial checksum",
                    "send this output (DL_PROMISC_FIXUPS missing or not honoured)",
                )
            isn = secrets.randbits(32)
            mss = struct.pack("!BBH", 2, 4, MTU - 40)
            peer.send_ipv4(
                tcp_segment(
                    PEER_IP, HOST_IP, TCP_PORT, sport, isn, (host_isn + 1) & 0xFFFFFFFF, 0x12, mss
                )
            )
            try:
                await asyncio.wait_for(connect, WAIT)
            except (TimeoutError, OSError) as e:
                r.fail(
                    "tcp-in",
                    f"ztone's SYN-ACK did not complete the host's connect: {e!r}",
                    "send this output",
                )
                return
            r.ok("tcp-in", "ztone -> host: SYN-ACK taken, connection established")
            await self._check_tcp_data(peer, sock, sport, isn, host_isn)
        finally:
            sock.close()

    async def _check_tcp_data(
        self, peer: Peer, sock: socket.socket, sport: int, isn: int, host_isn: int
    ) -> None:
        r = self.report
        loop = asyncio.get_running_loop()
        data = secrets.token_bytes(TCP_BYTES)
        await asyncio.wait_for(loop.sock_sendall(sock, data), WAIT)
        received: dict[int, bytes] = {}
        segments = bad = 0
        start = (host_isn + 1) & 0xFFFFFFFF
        while sum(len(v) for v in received.values()) < TCP_BYTES:
            seen = await peer.next_ipv4(6)
            if seen is None:
                break
            offset = (seen.l4[12] >> 4) * 4
            body = seen.l4[offset:]
            if not body:
                continue
            segments += 1
            if not (seen.header_ok and seen.l4_ok):
                bad += 1
            seq = struct.unpack_from("!I", seen.l4, 4)[0]
            received[(seq - start) & 0xFFFFFFFF] = body
        got = b"".join(received[k] for k in sorted(received))
        # a reset ends the connection on both sides at once (nothing to wait for)
        peer.send_ipv4(
            tcp_segment(PEER_IP, HOST_IP, TCP_PORT, sport, (isn + 1) & 0xFFFFFFFF, 0, 0x04)
        )
        if got == data and not bad:
            r.ok(
                "tcp-data",
                f"host -> ztone: {TCP_BYTES} bytes in {segments} segments, each "
                f"within the MTU with a complete checksum",
            )
        elif got != data:
            r.fail(
                "tcp-data",
                f"{len(got)} of {TCP_BYTES} bytes arrived intact in {segments} segments "
                "(an offload super-frame larger than the MTU is cut to it)",
                "send this output: the kernel hands over unsegmented frames "
                "(DL_PROMISC_FIXUPS missing or not honoured)",
            )
        elif bad:
            r.fail(
                "tcp-data",
                f"{bad} of {segments} TCP segments had a bad or partial checksum",
                "send this output (DL_PROMISC_FIXUPS not honoured)",
            )

    async def _check_ipv6(self, peer: Peer) -> None:
        r = self.report
        try:
            self.commands.ifconfig.plumb(self.names.visible, 6, MTU)
        except TapError as e:
            r.fail("ipv6", f"ifconfig inet6 plumb failed: {e}", "send this output")
            return
        r.ok("ipv6", f"{self.names.visible} plumbed for IPv6 (link-local address)")
        result = self.commands.runner.run(
            [self.commands.paths.svcs, "-H", "-o", "state", NDP_FMRI], check=False, query=True
        )
        state = result.stdout.strip() if result.ok else (result.text() or "unknown")
        if await _wait_until(lambda: peer.router_solicitations > 0, NDP_WAIT):
            r.info(
                "ndp",
                f"{NDP_FMRI} (in.ndpd) is {state}; the host sent IPv6 router "
                "solicitations on the ztone link: IPv6 autoconfiguration is active there, "
                "so a router advertisement on a ZeroTier network would add addresses",
            )
        else:
            r.info(
                "ndp",
                f"{NDP_FMRI} (in.ndpd) is {state}; no IPv6 router solicitation on the "
                f"ztone link in {NDP_WAIT:g} s (autoconfiguration not active there)",
            )

    # --- teardown ------------------------------------------------------------------

    def _cleanup(self) -> None:
        r = self.report
        if self._reading >= 0:
            asyncio.get_running_loop().remove_reader(self._reading)
            self._reading = -1
        if self.tap is not None:
            self.tap.close()
            self.tap = None
        try:
            links = self.commands.dladm.show_links()
        except TapError as e:
            r.fail(
                "cleanup",
                f"cannot list datalinks: {e}",
                f"remove by hand: dladm delete-vnic -t {self.names.backend}; dladm "
                f"delete-vnic -t {self.names.visible}; dladm delete-etherstub -t "
                f"{self.names.etherstub}",
            )
            return
        left = [n for n in self.names.all() if n in links]
        if left:
            self.factory.remove_links(self.names, links)
            left = [n for n in self.names.all() if n in self.commands.dladm.show_links()]
        if left:
            r.fail(
                "cleanup",
                f"links left: {', '.join(left)}",
                f"ifconfig {self.names.visible} unplumb; dladm delete-vnic -t <link>; "
                "dladm delete-etherstub -t <link> (or restart the ztone service)",
            )
        else:
            r.ok("cleanup", "etherstub, VNICs and addresses removed")


def run_selftest(
    out: TextIO | None = None, *, commands: Commands | None = None, library: str | None = None
) -> int:
    """Run the self-test, printing to ``out``; 0 when every check passed, else 1."""
    report = Report(out if out is not None else sys.stdout)
    selftest = Selftest(report, commands, library)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        interrupted: list[str] = []

        def stop(signame: str) -> None:
            interrupted.append(signame)
            if task is not None:
                task.cancel()

        # Interrupted or not, run()'s finally removes what was built: the signals
        # only cancel the task, they do not end the process.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop, sig.name)
        try:
            await selftest.run()
        except asyncio.CancelledError:
            if not interrupted:
                raise
            report.fail(
                "selftest",
                f"interrupted ({interrupted[0]}); links removed",
                "run it again to the end",
            )

    if os.name != "posix":
        report.fail("selftest", "needs illumos (or the OmniOS simulation)", "run it on OmniOS")
        return 1
    asyncio.run(main())
    count = report.failed
    report.info(
        "summary",
        "all checks passed" if count == 0 else f"{count} check{'s' if count != 1 else ''} failed",
    )
    return 0 if count == 0 else 1


__all__ = ["SELFTEST_NWID", "Selftest", "run_selftest"]
