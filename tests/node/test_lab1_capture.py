"""Acceptance: every datagram of lab1's underlay capture, dissected with ztone's core.

``vectors/lab1/underlay.pcap`` is every UDP datagram on the bridge of a four-node lab of
real zerotier-one 1.14.1 nodes (see ``vectors/lab1/SOURCE.md``). With the nodes'
``identity.secret`` files this module derives every peer key and, for each datagram:
classifies it (packet head, fragment or other), reassembles fragmented packets,
de-armors every packet (suites 0, 1 and 3), undoes LZ4 compression, identifies the verb
and parses HELLO, OK(HELLO) and a few other payloads, cross-checking them against the
capture itself (relayed copies, in-re packet IDs, echoed timestamps, signed config
chunks). Anything unexpected is collected as a failure string; the tests assert there
are none and pin the exact counts found in the capture.

Run ``python tests/test_lab1_capture.py`` for the summary table alone.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import BACKENDS, VECTORS
from pcap import IpAddress, IpPacket, PcapStats, UdpDatagram, read_ip, udp_of
from ztone.crypto.armor import (
    SUITE_AES_GMAC_SIV,
    SUITE_POLY1305_NONE,
    SUITE_POLY1305_SALSA2012,
    PeerKey,
    cipher_of,
    dearmor,
)
from ztone.crypto.backend import DEFAULT, named
from ztone.errors import MalformedPacket
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.fragment import Reassembler, is_fragment, parse_fragment
from ztone.node.wire.hello import Hello, OkHello, parse_hello
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.packet import (
    FLAG_ENCRYPTED,
    IDX_PAYLOAD,
    IDX_VERB,
    VERB_FLAG_COMPRESSED,
    ErrorCode,
    Header,
    Verb,
    parse_header,
    uncompress,
    verb_name,
    verb_of,
)

LAB1 = VECTORS / "lab1"
PCAP = LAB1 / "underlay.pcap"
NODES = ("root", "ctrl", "a", "b")
NODE_IPS = {
    "root": ipaddress.IPv4Address("198.18.0.10"),
    "ctrl": ipaddress.IPv4Address("198.18.0.11"),
    "a": ipaddress.IPv4Address("198.18.0.12"),
    "b": ipaddress.IPv4Address("198.18.0.13"),
}
ZT_PORT = 9993
NWID = 0x1FAD486CAFE468E2  # scenario.json
PLANET_ID = 149604618  # the private planet (api.json planetWorldId)
PLANET_TIMESTAMP = 1795310304886
PROTOCOL_VERSION = 12
SOFTWARE_VERSION = (1, 14, 1)
IDX_OK_PAYLOAD = 37  # OK/ERROR: verb, in-re verb (28), in-re packet id (29..36), payload
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
KNOWN_VERBS = frozenset(int(v) for v in Verb)
KNOWN_ERROR_CODES = frozenset(int(c) for c in ErrorCode)


# --- what the core lacks: small wire parsers (candidates for ztone.node) ------------------


class InRe(NamedTuple):
    """The common head of OK and ERROR payloads (§6.3, §6.4)."""

    verb: int
    packet_id: bytes  # on-wire id of the packet answered


def parse_in_re(plain: bytes) -> InRe:
    if len(plain) < IDX_OK_PAYLOAD:
        raise MalformedPacket("OK/ERROR shorter than its in-re fields")
    return InRe(plain[28] & 0x1F, plain[29:37])


class Rendezvous(NamedTuple):
    """RENDEZVOUS payload (§6.6)."""

    flags: int
    peer: int
    endpoint: InetAddress


def parse_rendezvous(plain: bytes) -> Rendezvous:
    if len(plain) < 37:
        raise MalformedPacket("truncated RENDEZVOUS")
    flags, port, length = plain[28], *struct.unpack_from(">HB", plain, 34)
    peer = int.from_bytes(plain[29:34], "big")
    if length not in (4, 16) or len(plain) < 37 + length:
        raise MalformedPacket("bad RENDEZVOUS address")
    ip = ipaddress.ip_address(plain[37 : 37 + length])
    return Rendezvous(flags, peer, InetAddress(ip, port))


class ConfigChunk(NamedTuple):
    """A signed network-config chunk (§6.13), as carried by OK(NCR) and NETWORK_CONFIG."""

    nwid: int
    data: bytes
    flags: int
    update_id: int
    total: int
    offset: int  # of this chunk's data in the whole dictionary
    signed: bytes  # relative bytes [0, 27 + C): what the controller signed
    signature: bytes


def parse_config_chunk(payload: bytes) -> ConfigChunk:
    if len(payload) < 10:
        raise MalformedPacket("truncated config chunk")
    nwid, length = struct.unpack_from(">QH", payload, 0)
    end = 10 + length
    if len(payload) < end + 20:
        raise MalformedPacket("config chunk is not in the signed form")
    flags = payload[end]
    update_id, total, offset, sig_type, sig_length = struct.unpack_from(">QIIBH", payload, end + 1)
    if sig_type != 1 or sig_length != 96 or len(payload) != end + 20 + 96:
        raise MalformedPacket("bad config chunk signature fields")
    return ConfigChunk(
        nwid,
        payload[10:end],
        flags,
        update_id,
        total,
        offset,
        payload[: end + 17],
        payload[end + 20 :],
    )


def load_identities() -> dict[str, Identity]:
    """The four nodes' identities (with their secrets), by node name."""
    return {n: Identity.from_string((LAB1 / n / "identity.secret").read_text()) for n in NODES}


def node_names() -> dict[int, str]:
    """Node name by ZeroTier address."""
    return {i.address: n for n, i in load_identities().items()}


# --- the dissection ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One packet as it crossed the bridge (a relayed packet is seen twice)."""

    index: int  # datagram index (0-based) of its last piece
    timestamp: float
    udp_src: IpAddress
    udp_dst: IpAddress
    header: Header
    wire: bytes  # as armored (reassembled if fragmented)
    plain: bytes  # de-armored and uncompressed
    pieces: int  # 1, or the head plus its fragments
    compressed: bool

    @property
    def verb(self) -> int:
        return verb_of(self.plain)

    @property
    def suite(self) -> int:
        return cipher_of(self.wire)

    @property
    def label(self) -> str:
        """The verb name; OK and ERROR with their in-re verb, e.g. ``OK(HELLO)``."""
        name = verb_name(self.verb)
        if self.verb in (Verb.OK, Verb.ERROR) and len(self.plain) >= IDX_OK_PAYLOAD:
            return f"{name}({verb_name(self.plain[28] & 0x1F)})"
        return name


@dataclass
class Dissection:
    backend: str
    stats: PcapStats = field(default_factory=PcapStats)
    datagrams: int = 0
    # "head", "fragmented head", "fragment" or "other", per datagram
    kinds: Counter[str] = field(default_factory=Counter)
    others: Counter[str] = field(default_factory=Counter)  # explanation of each non-packet
    packets: list[Seen] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    hellos: list[tuple[Seen, Hello]] = field(default_factory=list)
    ok_hellos: list[tuple[Seen, OkHello]] = field(default_factory=list)
    chunks: list[tuple[Seen, ConfigChunk]] = field(default_factory=list)
    frame_ethertypes: Counter[str] = field(default_factory=Counter)
    relay_pairs: int = 0
    ip_of_hello_source: dict[int, set[IpAddress]] = field(default_factory=dict)

    @property
    def reassembled(self) -> list[Seen]:
        return [p for p in self.packets if p.pieces > 1]

    def verbs(self, relayed: bool | None = None) -> Counter[str]:
        """Packets per label; ``relayed`` False/True: only hop count 0 / > 0."""
        return Counter(
            p.label for p in self.packets if relayed is None or (p.header.hops > 0) == relayed
        )

    def suites(self) -> Counter[int]:
        return Counter(p.suite for p in self.packets)


class _Dissector:
    def __init__(self, backend_name: str, pcap: Path = PCAP) -> None:
        self.out = Dissection(backend_name)
        crypto = named(backend_name)
        self.current = -1  # index of the datagram being dissected, for failure messages
        self.pcap = pcap
        self.ids = load_identities()
        self.name = node_names()
        self.node_at: dict[IpAddress, str] = {ip: n for n, ip in NODE_IPS.items()}
        self.keys: dict[tuple[int, int], PeerKey] = {}
        for x in self.ids.values():
            for y in self.ids.values():
                if x.address < y.address:
                    key = PeerKey(x.agree(y), crypto)
                    if y.agree(x) != key.key:
                        self.fail(f"key agreement {x.address}/{y.address} is not symmetric")
                    self.keys[(x.address, y.address)] = self.keys[(y.address, x.address)] = key
        self.flows: dict[tuple[IpAddress, IpAddress], Reassembler] = {}
        self.fragment_datagrams = 0
        self.totals: dict[tuple[IpAddress, IpAddress, bytes], int] = {}  # pieces per packet
        self.originals: dict[bytes, Seen] = {}  # hop-0 packets by on-wire id
        self.into_relay: dict[bytes, Seen] = {}  # hop-0 packets sent to the root for another node
        self.hello_ts: dict[bytes, int] = {}
        self.whois_asked: dict[bytes, list[int]] = {}
        self.punches: set[tuple[str, IpAddress, int]] = set()  # (node, ip, port) from RENDEZVOUS
        self.knows_version: set[tuple[int, int]] = set()  # (x, y): x has y's protocol version

    def fail(self, what: str) -> None:
        self.out.failures.append(f"datagram {self.current}: {what}")

    # -- datagrams --

    def run(self) -> Dissection:
        for index, (ip, udp) in enumerate(self._datagrams()):
            self.current = index
            self.out.datagrams += 1
            if udp.src_port != ZT_PORT or udp.dst_port != ZT_PORT:
                self.fail(f"UDP ports {udp.src_port}->{udp.dst_port}")
            if udp.src_ip not in self.node_at or udp.dst_ip not in self.node_at:
                self.fail(f"unknown underlay address {udp.src_ip}->{udp.dst_ip}")
                continue
            self._datagram(udp.timestamp, udp.src_ip, udp.dst_ip, udp.payload, ip.ttl)
        self.current = -1
        for (src, dst), reassembler in self.flows.items():
            if reassembler.pending() or reassembler.evicted:
                self.fail(f"flow {src}->{dst}: {reassembler.pending()} incomplete fragment sets")
        pieces = sum(p.pieces - 1 for p in self.out.reassembled)
        if pieces != self.fragment_datagrams:
            self.fail(f"{self.fragment_datagrams} fragments, {pieces} used by reassembled packets")
        for packet_id, seen in self.into_relay.items():
            self.fail(f"packet {packet_id.hex()} sent to the root (#{seen.index}) never relayed")
        return self.out

    def _datagrams(self) -> Iterator[tuple[IpPacket, UdpDatagram]]:
        for ip in read_ip(self.pcap, self.out.stats):
            udp = udp_of(ip)
            if isinstance(udp, str):
                self.out.stats.skipped[udp] += 1
            else:
                yield ip, udp

    def _datagram(self, ts: float, src: IpAddress, dst: IpAddress, data: bytes, ttl: int) -> None:
        now = int(ts * 1000)
        reassembler = self.flows.setdefault((src, dst), Reassembler())
        if is_fragment(data):
            self.out.kinds["fragment"] += 1
            self.fragment_datagrams += 1
            fragment = parse_fragment(data)
            self.totals[(src, dst, data[:8])] = fragment.total
            if fragment.destination not in self.name:
                self.fail(f"fragment for unknown node {fragment.destination}")
            try:
                whole = reassembler.add_fragment(now, fragment)
            except MalformedPacket as e:
                self.fail(f"fragment rejected: {e}")
                return
            if whole is not None:
                self._packet(ts, src, dst, whole, fragment.total)
        elif len(data) >= IDX_PAYLOAD:
            header = parse_header(data)
            if header.fragmented:
                self.out.kinds["fragmented head"] += 1
                whole = reassembler.add_head(now, data)
                if whole is not None:
                    self._packet(ts, src, dst, whole, self.totals[(src, dst, data[:8])])
            else:
                self.out.kinds["head"] += 1
                self._packet(ts, src, dst, data, 1)
        else:
            self.out.kinds["other"] += 1
            self.out.others[self._explain(src, dst, data, ttl)] += 1

    def _explain(self, src: IpAddress, dst: IpAddress, data: bytes, ttl: int) -> str:
        if len(data) == 13:
            return "13-byte LAN beacon"
        if len(data) == 4 and ttl == 2 and (self.node_at[src], dst, ZT_PORT) in self.punches:
            return "4-byte NAT-punch junk (TTL 2) after a RENDEZVOUS"
        self.fail(f"unexplained {len(data)}-byte datagram (TTL {ttl}): {data.hex()}")
        return f"UNEXPLAINED {len(data)} bytes"

    # -- packets --

    def _packet(self, ts: float, src: IpAddress, dst: IpAddress, wire: bytes, pieces: int) -> None:
        header = parse_header(wire)
        if header.source not in self.name or header.destination not in self.name:
            self.fail(f"packet {header.source}->{header.destination} between unknown nodes")
            return
        plain = bytearray(wire)
        if not dearmor(plain, self.keys[(header.source, header.destination)]):
            self.fail(f"de-armor failed: {self._who(header)} suite {header.cipher}")
            return
        compressed = bool(plain[IDX_VERB] & VERB_FLAG_COMPRESSED)
        try:
            uncompress(plain)
        except MalformedPacket as e:
            self.fail(f"{self._who(header)}: {e}")
            return
        seen = Seen(self.current, ts, src, dst, header, wire, bytes(plain), pieces, compressed)
        self.out.packets.append(seen)
        if seen.verb not in KNOWN_VERBS:
            self.fail(f"unknown verb {seen.verb:#04x}")
            return
        self._check_path(seen)
        self._check_suite(seen)
        handler = getattr(self, f"_verb_{Verb(seen.verb).name.lower()}", None)
        try:
            if handler is not None:
                handler(seen)
        except MalformedPacket as e:
            self.fail(f"{seen.label} {self._who(header)}: {e}")

    def _who(self, header: Header) -> str:
        return f"{self.name.get(header.source)}->{self.name.get(header.destination)}"

    def _check_path(self, seen: Seen) -> None:
        """Direct, into the root for relaying, or out of the root as a relayed copy (§5.8)."""
        h = seen.header
        src_node, dst_node = self.node_at[seen.udp_src], self.node_at[seen.udp_dst]
        source, destination = self.name[h.source], self.name[h.destination]
        packet_id = seen.wire[:8]
        if h.hops == 0:
            if src_node != source:
                self.fail(f"hop-0 packet from {source} sent by {src_node}")
            self.originals.setdefault(packet_id, seen)
            if dst_node != destination:
                if dst_node != "root":
                    self.fail(f"packet for {destination} sent to {dst_node}")
                self.into_relay[packet_id] = seen
            return
        if src_node != "root" or dst_node != destination or source == "root":
            self.fail(f"relayed {source}->{destination} seen {src_node}->{dst_node}")
        original = self.into_relay.pop(packet_id, None)
        if original is None:
            self.fail(f"relayed copy of {packet_id.hex()} without its original")
            return
        expected = bytearray(original.wire)
        expected[18] = (expected[18] & 0xF8) | ((expected[18] + h.hops) & 7)
        if h.hops != 1 or bytes(expected) != seen.wire:
            self.fail(f"relayed copy of {packet_id.hex()} differs from #{original.index} + 1 hop")
        else:
            self.out.relay_pairs += 1

    def _check_suite(self, seen: Seen) -> None:
        """HELLO alone is MAC-only here (no QoS/path negotiation in this lab); 0x80 iff suite 1."""
        suite, flags = seen.suite, seen.wire[18]
        if (suite == SUITE_POLY1305_NONE) != (seen.verb == Verb.HELLO):
            self.fail(f"{seen.label} with suite {suite}")
        if suite not in (SUITE_POLY1305_NONE, SUITE_POLY1305_SALSA2012, SUITE_AES_GMAC_SIV):
            self.fail(f"{seen.label} with suite {suite}")
        if bool(flags & FLAG_ENCRYPTED) != (suite == SUITE_POLY1305_SALSA2012):
            self.fail(f"flag 0x80 is {bool(flags & FLAG_ENCRYPTED)} with suite {suite}")

    def _answered(self, seen: Seen) -> tuple[InRe, Seen | None]:
        """The in-re fields of an OK/ERROR and the packet it answers (checked)."""
        in_re = parse_in_re(seen.plain)
        request = self.originals.get(in_re.packet_id)
        if request is None:
            self.fail(f"{seen.label} answers unseen packet {in_re.packet_id.hex()}")
            return in_re, None
        if (request.header.source, request.header.destination) != (
            seen.header.destination,
            seen.header.source,
        ):
            self.fail(f"{seen.label} {self._who(seen.header)} answers {self._who(request.header)}")
        # Quirk (§6.13): a completed NETWORK_CONFIG push is answered with in-re verb ECHO.
        if in_re.verb != request.verb and not (
            in_re.verb == Verb.ECHO and request.verb == Verb.NETWORK_CONFIG
        ):
            self.fail(f"{seen.label} answers a {request.label}")
        return in_re, request

    # -- verbs (only those with something worth checking) --

    def _verb_hello(self, seen: Seen) -> None:
        h = seen.header
        hello = parse_hello(seen.wire, self.keys[(h.source, h.destination)])
        self.out.hellos.append((seen, hello))
        source = self.name[h.source]
        if hello.identity.public != self.ids[source].public:
            self.fail(f"HELLO from {source} presents another key")
        if hello.protocol_version != PROTOCOL_VERSION or hello.version != SOFTWARE_VERSION:
            self.fail(f"HELLO from {source}: {hello.protocol_version} {hello.version}")
        if hello.timestamp <= 0:
            self.fail(f"HELLO from {source}: timestamp {hello.timestamp}")
        if hello.destination != InetAddress(seen.udp_dst, ZT_PORT):
            self.fail(f"HELLO sent to {seen.udp_dst} names {hello.destination}")
        if (hello.planet_id, hello.planet_timestamp, hello.moons) != (
            PLANET_ID,
            PLANET_TIMESTAMP,
            (),
        ):
            self.fail(f"HELLO from {source}: planet {hello.planet_id}, moons {hello.moons}")
        self.hello_ts[seen.wire[:8]] = hello.timestamp
        if h.hops == 0:
            self.out.ip_of_hello_source.setdefault(h.source, set()).add(seen.udp_src)

    def _verb_ok(self, seen: Seen) -> None:
        in_re, request = self._answered(seen)
        payload = seen.plain[IDX_OK_PAYLOAD:]
        h = seen.header
        if in_re.verb == Verb.HELLO:
            ok = OkHello.parse(payload)
            self.out.ok_hellos.append((seen, ok))
            if (ok.protocol_version, ok.version, ok.worlds) != (
                PROTOCOL_VERSION,
                SOFTWARE_VERSION,
                b"",
            ):
                self.fail(f"OK(HELLO): {ok.protocol_version} {ok.version} {len(ok.worlds)}")
            if request is not None:
                if ok.timestamp != self.hello_ts.get(in_re.packet_id):
                    self.fail("OK(HELLO) does not echo the HELLO's timestamp")
                if ok.external_address != InetAddress(request.udp_src, ZT_PORT):
                    self.fail(
                        f"OK(HELLO) reports {ok.external_address}, HELLO came from "
                        f"{request.udp_src}"
                    )
            # §4.2 quirk: the reply is armored before the requester's version is recorded,
            # so it is Salsa20/12 unless the responder already had that version.
            expected = (
                SUITE_AES_GMAC_SIV
                if (h.source, h.destination) in self.knows_version
                else SUITE_POLY1305_SALSA2012
            )
            if seen.suite != expected:
                self.fail(f"OK(HELLO) {self._who(h)} with suite {seen.suite}, expected {expected}")
            self.knows_version.add((h.source, h.destination))
            self.knows_version.add((h.destination, h.source))
        elif in_re.verb == Verb.WHOIS:
            identity, end = Identity.parse(seen.plain, IDX_OK_PAYLOAD)
            asked = self.whois_asked.get(in_re.packet_id, [])
            known = self.ids.get(self.name.get(identity.address, ""))
            if identity.address not in asked or known is None or end != len(seen.plain):
                self.fail(f"OK(WHOIS) returns {identity.address} for {asked}")
            elif identity.public != known.public:
                self.fail(f"OK(WHOIS) returns a wrong key for {identity.address}")
        elif in_re.verb == Verb.NETWORK_CONFIG_REQUEST:
            self._chunk(seen, payload)
        elif in_re.verb == Verb.ECHO and payload and payload[:8] != NWID.to_bytes(8, "big"):
            self.fail(f"OK(ECHO) for a config push: {payload.hex()}")

    def _verb_error(self, seen: Seen) -> None:
        self._answered(seen)
        code = seen.plain[IDX_OK_PAYLOAD] if len(seen.plain) > IDX_OK_PAYLOAD else -1
        if code not in KNOWN_ERROR_CODES:
            self.fail(f"{seen.label} with error code {code}")

    def _verb_whois(self, seen: Seen) -> None:
        body = seen.plain[IDX_PAYLOAD:]
        if not body or len(body) % 5:
            self.fail(f"WHOIS payload of {len(body)} bytes")
        asked = [int.from_bytes(body[i : i + 5], "big") for i in range(0, len(body), 5)]
        self.whois_asked[seen.wire[:8]] = asked

    def _verb_rendezvous(self, seen: Seen) -> None:
        r = parse_rendezvous(seen.plain)
        peer = self.name.get(r.peer)
        if self.name[seen.header.source] != "root" or peer is None:
            self.fail(f"RENDEZVOUS {self._who(seen.header)} about {r.peer:010x}")
        elif r.endpoint != InetAddress(NODE_IPS[peer], ZT_PORT):
            self.fail(f"RENDEZVOUS puts {peer} at {r.endpoint}")
        else:
            destination = self.name[seen.header.destination]
            self.punches.add((destination, r.endpoint.ip, r.endpoint.port))

    def _verb_network_config_request(self, seen: Seen) -> None:
        if int.from_bytes(seen.plain[IDX_PAYLOAD : IDX_PAYLOAD + 8], "big") != NWID:
            self.fail("NETWORK_CONFIG_REQUEST for another network")

    def _verb_network_config(self, seen: Seen) -> None:
        self._chunk(seen, seen.plain[IDX_PAYLOAD:])

    def _chunk(self, seen: Seen, payload: bytes) -> None:
        chunk = parse_config_chunk(payload)
        self.out.chunks.append((seen, chunk))
        if seen.header.source != self.ids["ctrl"].address:
            self.fail(f"config chunk from {self.name[seen.header.source]}")
        if not self.ids["ctrl"].verify(chunk.signed, chunk.signature):
            self.fail("config chunk signature does not verify with ctrl's identity")
        if chunk.nwid != NWID or chunk.offset + len(chunk.data) > chunk.total:
            self.fail(f"config chunk {chunk.nwid:016x} [{chunk.offset}+{len(chunk.data)}]")
        if chunk.offset == 0 and len(chunk.data) == chunk.total:
            config = Dictionary.parse(chunk.data)
            if config.get_u64("nwid") != NWID or config.get_u64("id") != seen.header.destination:
                self.fail("network config dictionary for another network or member")

    def _verb_frame(self, seen: Seen) -> None:
        body = seen.plain[IDX_PAYLOAD:]
        if len(body) < 10 or int.from_bytes(body[:8], "big") != NWID:
            self.fail("FRAME for another network")
            return
        ethertype = int.from_bytes(body[8:10], "big")
        frame = body[10:]
        if ethertype == ETHERTYPE_ARP:
            self.out.frame_ethertypes["ARP"] += 1
        elif ethertype == ETHERTYPE_IPV4 and len(frame) >= 20 and frame[9] == 1:
            total_length = int.from_bytes(frame[2:4], "big")
            if total_length != len(frame):
                self.fail(f"FRAME IPv4 length {total_length} in {len(frame)} bytes")
            self.out.frame_ethertypes[f"IPv4 ICMP, {total_length} bytes"] += 1
        else:
            self.out.frame_ethertypes[f"ethertype {ethertype:#06x}"] += 1


_CACHE: dict[str, Dissection] = {}


def dissect(backend_name: str | None = None) -> Dissection:
    """Dissect the capture with the named crypto backend (default: the best built); cached."""
    name = backend_name or DEFAULT.name
    if name not in _CACHE:
        _CACHE[name] = _Dissector(name).run()
    return _CACHE[name]


def summary_table(d: Dissection) -> str:
    """The counts, as a Markdown table for the lead's notes."""
    suite_names = {0: "0 Poly1305 only", 1: "1 Salsa20/12-Poly1305", 3: "3 AES-GMAC-SIV"}
    rows: list[tuple[str, str]] = [
        ("backend", d.backend),
        ("pcap records (link type)", f"{d.stats.records} ({d.stats.link_type})"),
        ("pcap records skipped", str(sum(d.stats.skipped.values()))),
        ("UDP datagrams", str(d.datagrams)),
    ]
    rows += [(f"datagrams: {k}", str(v)) for k, v in sorted(d.kinds.items())]
    rows += [(f"non-packet: {k}", str(v)) for k, v in sorted(d.others.items())]
    rows += [
        ("packets (relayed ones counted on both legs)", str(len(d.packets))),
        ("  originals (hops 0)", str(sum(1 for p in d.packets if p.header.hops == 0))),
        ("  relayed copies (hops 1), each paired", str(d.relay_pairs)),
        ("reassembled packets", str(len(d.reassembled))),
        ("  bytes/pieces", " ".join(f"{len(p.wire)}/{p.pieces}" for p in d.reassembled)),
        ("LZ4-compressed packets", str(sum(1 for p in d.packets if p.compressed))),
        ("failures", str(len(d.failures))),
    ]
    rows += [(f"suite {suite_names.get(k, k)}", str(v)) for k, v in sorted(d.suites().items())]
    direct, relayed = d.verbs(False), d.verbs(True)
    rows += [
        (f"verb {label}", f"{n} ({direct[label]} + {relayed[label]} relayed)")
        for label, n in sorted(d.verbs().items())
    ]
    rows += [(f"FRAME payload: {k}", str(v)) for k, v in sorted(d.frame_ethertypes.items())]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'what'.ljust(width)} | count |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


# --- the tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def lab1(request: pytest.FixtureRequest) -> Dissection:
    """The whole capture, dissected once per crypto backend (pure Python and native)."""
    name: str = request.param
    return dissect(name)


def test_summary(lab1: Dissection) -> None:
    print(f"\nlab1 underlay capture, {lab1.backend} backend:\n{summary_table(lab1)}")
    assert lab1.failures == []


def test_capture_is_only_zerotier_udp(lab1: Dissection) -> None:
    assert lab1.stats.link_type == 1  # Ethernet, microsecond timestamps
    assert not lab1.stats.nanosecond
    assert lab1.stats.records == 241
    assert lab1.stats.skipped == Counter()  # no ARP, no TCP, no IP fragments on the bridge
    assert lab1.datagrams == 241


def test_every_datagram_is_classified(lab1: Dissection) -> None:
    assert lab1.kinds == {"head": 230, "fragmented head": 4, "fragment": 4, "other": 3}
    assert sum(lab1.kinds.values()) == lab1.datagrams
    # No LAN beacons (13 bytes) in this lab; the only non-packets are the 4-byte datagrams
    # a node sends with IP TTL 2 toward an endpoint it was just given by a RENDEZVOUS
    # (a->ctrl, b->ctrl, a->b), each followed by a HELLO on the same path (§6.6).
    assert lab1.others == {"4-byte NAT-punch junk (TTL 2) after a RENDEZVOUS": 3}


def test_zero_failures(lab1: Dissection) -> None:
    """Every packet de-armored, decompressed, has a known verb and passed its checks."""
    assert lab1.failures == []
    assert len(lab1.packets) == 234  # 230 whole heads + 4 reassembled packets
    assert all(p.verb in KNOWN_VERBS for p in lab1.packets)


def test_verb_counts(lab1: Dissection) -> None:
    """Exact counts found in the capture; relayed packets count once per leg."""
    assert lab1.verbs() == {
        "HELLO": 20,
        "OK(HELLO)": 16,
        "WHOIS": 24,
        "OK(WHOIS)": 24,
        "RENDEZVOUS": 6,
        "NETWORK_CONFIG_REQUEST": 7,  # 4 sent, 3 of them via the root
        "OK(NETWORK_CONFIG_REQUEST)": 3,  # signed config chunks (one relayed)
        "NETWORK_CONFIG": 3,  # config pushes after authorization (one relayed)
        "OK(ECHO)": 4,  # 3 answers to a completed NETWORK_CONFIG push (quirk) + 1 to an ECHO
        "ERROR(NETWORK_CONFIG_REQUEST)": 3,  # NETWORK_ACCESS_DENIED before authorization
        "MULTICAST_LIKE": 27,
        "MULTICAST_GATHER": 17,
        "OK(MULTICAST_GATHER)": 2,
        "MULTICAST_FRAME": 12,  # ARP who-has, a to b, via the root
        "OK(MULTICAST_FRAME)": 12,
        "NETWORK_CREDENTIALS": 4,
        "PUSH_DIRECT_PATHS": 4,
        "ECHO": 2,
        "FRAME": 44,  # ARP and ICMP; no EXT_FRAME in this capture
    }
    assert lab1.verbs(relayed=True).total() == lab1.relay_pairs == 41
    assert lab1.frame_ethertypes == {
        "ARP": 12,
        "IPv4 ICMP, 84 bytes": 28,  # the ordinary pings
        "IPv4 ICMP, 2428 bytes": 4,  # the two 2400-byte pings and their replies
    }
    errors = {ErrorCode(p.plain[IDX_OK_PAYLOAD]) for p in lab1.packets if p.verb == Verb.ERROR}
    assert errors == {ErrorCode.NETWORK_ACCESS_DENIED}


def test_cipher_suites(lab1: Dissection) -> None:
    assert lab1.suites() == {
        SUITE_POLY1305_NONE: 20,  # exactly the HELLOs
        SUITE_POLY1305_SALSA2012: 75,
        SUITE_AES_GMAC_SIV: 139,
    }
    hello_suites = {p.suite for p in lab1.packets if p.verb == Verb.HELLO}
    assert hello_suites == {SUITE_POLY1305_NONE}
    assert sum(1 for p in lab1.packets if p.compressed) == 21


def test_fragmented_packets_reassembled(lab1: Dissection) -> None:
    # The 2400-byte pings a->b and b's replies: 2466-byte FRAMEs cut into a 1432-byte head
    # and one fragment of 16 header + 1034 data bytes.
    reassembled = lab1.reassembled
    assert [(p.pieces, len(p.wire), p.label, p.suite) for p in reassembled] == [
        (2, 2466, "FRAME", SUITE_AES_GMAC_SIV)
    ] * 4
    directions = [(p.header.source, p.header.destination) for p in reassembled]
    ids = load_identities()
    a, b = ids["a"].address, ids["b"].address
    assert directions == [(a, b), (b, a), (a, b), (b, a)]
    assert lab1.kinds["fragment"] == sum(p.pieces - 1 for p in reassembled)


def test_hellos(lab1: Dissection) -> None:
    assert len(lab1.hellos) == 20
    for seen, hello in lab1.hellos:
        assert hello.identity.address == seen.header.source
        assert hello.protocol_version == PROTOCOL_VERSION == 12
        assert hello.version == SOFTWARE_VERSION
        assert hello.timestamp > 0
        assert seen.header.hops == 0
    # The underlay address of every node, learned from its HELLOs alone, is the lab's.
    names = node_names()
    learned = {names[address]: ips for address, ips in lab1.ip_of_hello_source.items()}
    assert learned == {n: {ip} for n, ip in NODE_IPS.items()}


def test_ok_hellos(lab1: Dissection) -> None:
    assert len(lab1.ok_hellos) == 16
    for _seen, ok in lab1.ok_hellos:
        assert ok.protocol_version == 12 and ok.version == SOFTWARE_VERSION
        assert ok.external_address is not None and ok.external_address.port == ZT_PORT
    # The first OK(HELLO) each node sent to each peer. It is Salsa20/12 exactly when the
    # responder had not yet learned that peer's protocol version (§4.2 quirk: the reply is
    # armored before the HELLO's version is recorded). The other direction of each pair is
    # AES: by then the responder had received an OK(HELLO) from that peer. The same model
    # holds for all 16 OK(HELLO)s (checked per packet during the dissection).
    first: dict[tuple[str, str], int] = {}
    names = node_names()
    for seen, _ok in lab1.ok_hellos:
        pair = (names[seen.header.source], names[seen.header.destination])
        first.setdefault(pair, seen.suite)
    assert first == {
        ("root", "ctrl"): SUITE_POLY1305_SALSA2012,
        ("ctrl", "root"): SUITE_AES_GMAC_SIV,
        ("root", "a"): SUITE_POLY1305_SALSA2012,
        ("a", "root"): SUITE_AES_GMAC_SIV,
        ("root", "b"): SUITE_POLY1305_SALSA2012,
        ("b", "root"): SUITE_AES_GMAC_SIV,
        ("ctrl", "a"): SUITE_POLY1305_SALSA2012,
        ("a", "ctrl"): SUITE_AES_GMAC_SIV,
        ("b", "a"): SUITE_POLY1305_SALSA2012,
        ("a", "b"): SUITE_AES_GMAC_SIV,
    }


def test_unanswered_hellos_are_rate_limited(lab1: Dissection) -> None:
    """4 HELLOs get no OK: each reached a node within 2 s of an accepted HELLO from another
    new peer in the same /24 (the identity-verification rate limit of §6.2.2 step 5)."""
    answered_ids = {bytes(s.plain[29:37]) for s, _ in lab1.ok_hellos}
    answered = [s for s, _ in lab1.hellos if s.wire[:8] in answered_ids]
    unanswered = [s for s, _ in lab1.hellos if s.wire[:8] not in answered_ids]
    assert [s.index for s in unanswered] == [1, 2, 9, 65]
    for hello in unanswered:
        assert any(
            other.udp_dst == hello.udp_dst
            and other.header.source != hello.header.source
            and 0 <= hello.timestamp - other.timestamp < 2.0
            for other in answered
        ), hello.index


def test_config_chunks_are_signed_by_the_controller(lab1: Dissection) -> None:
    # Each chunk's signature was verified with ctrl's identity during the dissection;
    # each carries a whole config dictionary issued to its recipient.
    assert len(lab1.chunks) == 6
    assert {c.nwid for _, c in lab1.chunks} == {NWID}
    assert all(c.offset == 0 and c.total == len(c.data) for _, c in lab1.chunks)
    assert len({c.update_id for _, c in lab1.chunks}) == 4  # relayed copies share theirs


def _rewrite_pcap(source: Path, target: Path, drop: set[int], corrupt: set[int]) -> None:
    """Copy a little-endian classic pcap, dropping records and flipping a frame's last byte."""
    data = source.read_bytes()
    out = bytearray(data[:24])
    pos, index = 24, 0
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        record = bytearray(data[pos : pos + 16 + incl])
        pos += 16 + incl
        if index in corrupt:
            record[-1] ^= 0x01
        if index not in drop:
            out += record
        index += 1
    target.write_bytes(out)


def test_damage_is_detected(tmp_path: Path) -> None:
    """The zero-failure result is not vacuous: a flipped bit or a lost datagram shows."""
    assert PCAP.read_bytes()[:4] == bytes.fromhex("d4c3b2a1")
    damaged = tmp_path / "damaged.pcap"
    # 65: a suite-0 HELLO, 100: a suite-3 MULTICAST_GATHER, 76: the relayed (hops 1) copy
    # of a suite-1 ERROR, 224: the fragment of the first 2400-byte ping.
    _rewrite_pcap(PCAP, damaged, drop={224}, corrupt={65, 100, 76})
    failures = _Dissector(DEFAULT.name, damaged).run().failures
    assert len(failures) == 5, failures
    assert failures[0].startswith("datagram 65: de-armor failed: b->ctrl suite 0")
    assert failures[1].startswith("datagram 76: de-armor failed: ctrl->b suite 1")
    assert failures[2].startswith("datagram 100: de-armor failed: a->ctrl suite 3")
    assert "1 incomplete fragment sets" in failures[3]
    assert "never relayed" in failures[4]


if __name__ == "__main__":
    result = dissect()
    print(summary_table(result))
    for failure in result.failures:
        print("FAILURE", failure)
