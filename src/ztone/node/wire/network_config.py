"""The network configuration a controller issues to a member (PROTOCOL-NETWORK-SERVICE A.2).

A :class:`NetworkConfig` travels (and is stored in ``networks.d/<nwid>.conf``) as a
:class:`~ztone.node.wire.dictionary.Dictionary`. :meth:`NetworkConfig.to_dictionary`
writes the keys of A.2.2 in upstream's order and encodings (so the bytes are
``NetworkConfig::toDictionary``'s); :meth:`NetworkConfig.from_dictionary` applies
the reader rules of A.2.4 and raises :class:`MalformedPacket` where upstream's
``fromDictionary`` returns false.

Deliberate simplifications (no effect on any config a 1.14.1 controller writes):

* null InetAddresses (type 0, or the reserved types 1..3) in the ``I`` list, as a
  route target, or as a DNS server are dropped rather than kept as empty entries;
* the base rule table (``R``) is kept raw and must be well framed (a final entry
  whose length runs past the blob is an error; upstream tolerates it for rule
  types it does not decode);
* text fields are decoded as UTF-8 (invalid bytes become U+FFFD).

Also here: :class:`Status` (a network's ``ZT_VirtualNetworkStatus``) and
:func:`request_metadata`, the NETWORK_CONFIG_REQUEST meta-data dictionary (A.2.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum

from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.capability import Capability, rule_table_end
from ztone.node.wire.com import CertificateOfMembership
from ztone.node.wire.coo import CertificateOfOwnership
from ztone.node.wire.credential_base import NULL_ADDRESS, WireReader, to_int64
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.inetaddress import InetAddress, parse_inet, serialize_inet
from ztone.node.wire.tag import Tag

CONFIG_VERSION = 7
MIN_CONFIG_VERSION = 6
DEFAULT_CREDENTIAL_TIME_MAX_DELTA = 1_800_000
MAX_CREDENTIAL_TIME_MAX_DELTA = 7_200_000
MIN_CREDENTIAL_TIME_MAX_DELTA = 300_000
DEFAULT_MTU = 2800
MIN_MTU = 1280
MAX_MTU = 10000
MAX_NAME_LENGTH = 127
MAX_ROUTES = 128
MAX_STATIC_IPS = 32
MAX_SPECIALISTS = 256
MAX_RULES = 1024
MAX_CAPABILITIES = 128
MAX_CAPABILITY_RULES = 64
MAX_TAGS = 128
MAX_COOS = 4
MAX_DNS_SERVERS = 4
DNS_DOMAIN_LENGTH = 128
RULES_ENGINE_REVISION = 1
PROTOCOL_VERSION = 12
VENDOR_ZEROTIER = 1

FLAG_ENABLE_BROADCAST = 0x02
FLAG_ENABLE_IPV6_NDP_EMULATION = 0x04
FLAG_RULES_RESULT_OF_UNSUPPORTED_MATCH = 0x08
FLAG_DISABLE_COMPRESSION = 0x10

SPECIALIST_ACTIVE_BRIDGE = 0x0000020000000000
SPECIALIST_ANCHOR = 0x0000040000000000
SPECIALIST_MULTICAST_REPLICATOR = 0x0000080000000000

_ADDRESS_MASK = 0xFFFFFFFFFF
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
# Sizes of upstream's fixed char arrays (a value keeps at most size - 1 bytes).
_SSO_FIELD_SIZES = {
    "aurl": 2048,
    "iurl": 2048,
    "ssoce": 2048,
    "sson": 128,
    "ssos": 256,
    "ssocid": 256,
    "ssop": 64,
}


class NetworkType(IntEnum):
    PRIVATE = 0
    PUBLIC = 1


class Status(IntEnum):
    """``ZT_VirtualNetworkStatus``; the API prints the member name (A.5.5)."""

    REQUESTING_CONFIGURATION = 0
    OK = 1
    ACCESS_DENIED = 2
    NOT_FOUND = 3
    PORT_ERROR = 4
    CLIENT_TOO_OLD = 5
    AUTHENTICATION_REQUIRED = 6

    @property
    def api_string(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Route:
    """A managed route: ``target`` carries the netmask bits in its port."""

    target: InetAddress
    via: InetAddress | None = None
    flags: int = 0
    metric: int = 0


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """The ``DNS`` block: a search domain and up to four servers."""

    domain: str = ""
    servers: tuple[InetAddress, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Every field of upstream's ``NetworkConfig`` that travels in the dictionary."""

    network_id: int
    timestamp: int
    issued_to: Address
    credential_time_max_delta: int = DEFAULT_CREDENTIAL_TIME_MAX_DELTA
    revision: int = 0
    remote_trace_target: Address = NULL_ADDRESS
    remote_trace_level: int = 0
    flags: int = 0
    multicast_limit: int = 0
    type: int = NetworkType.PRIVATE
    name: str = ""
    mtu: int = DEFAULT_MTU
    com: CertificateOfMembership | None = None
    capabilities: tuple[Capability, ...] = ()
    tags: tuple[Tag, ...] = ()
    coos: tuple[CertificateOfOwnership, ...] = ()
    specialists: tuple[int, ...] = ()
    routes: tuple[Route, ...] = ()
    static_ips: tuple[InetAddress, ...] = ()
    rules_raw: bytes = b""
    rule_count: int = 0
    dns: DnsConfig = field(default_factory=DnsConfig)
    sso_version: int = 0
    sso_enabled: bool = False
    authentication_url: str = ""
    authentication_expiry_time: int = 0
    issuer_url: str = ""
    central_auth_url: str = ""
    sso_nonce: str = ""
    sso_state: str = ""
    sso_client_id: str = ""
    sso_provider: str = "default"

    # --- derived ------------------------------------------------------------------

    @property
    def enable_broadcast(self) -> bool:
        return bool(self.flags & FLAG_ENABLE_BROADCAST)

    @property
    def ndp_emulation(self) -> bool:
        return bool(self.flags & FLAG_ENABLE_IPV6_NDP_EMULATION)

    @property
    def rules_result_of_unsupported_match(self) -> bool:
        return bool(self.flags & FLAG_RULES_RESULT_OF_UNSUPPORTED_MATCH)

    @property
    def disable_compression(self) -> bool:
        return bool(self.flags & FLAG_DISABLE_COMPRESSION)

    @property
    def is_public(self) -> bool:
        return self.type == NetworkType.PUBLIC

    @property
    def is_private(self) -> bool:
        return self.type == NetworkType.PRIVATE

    def _specialists_with(self, role: int) -> list[Address]:
        return [Address(s & _ADDRESS_MASK) for s in self.specialists if s & role]

    def active_bridges(self) -> list[Address]:
        return self._specialists_with(SPECIALIST_ACTIVE_BRIDGE)

    def anchors(self) -> list[Address]:
        return self._specialists_with(SPECIALIST_ANCHOR)

    def multicast_replicators(self) -> list[Address]:
        return self._specialists_with(SPECIALIST_MULTICAST_REPLICATOR)

    def always_contact_addresses(self) -> list[Address]:
        """Anchors and multicast replicators (pinged like upstreams)."""
        return self._specialists_with(SPECIALIST_ANCHOR | SPECIALIST_MULTICAST_REPLICATOR)

    def permits_bridging(self, address: int) -> bool:
        """``address`` is an active bridge (may send frames with foreign MACs)."""
        return address in self.active_bridges()

    def is_multicast_replicator(self, address: int) -> bool:
        return address in self.multicast_replicators()

    def capability(self, capability_id: int) -> Capability | None:
        return next((c for c in self.capabilities if c.id == capability_id), None)

    def tag(self, tag_id: int) -> Tag | None:
        return next((t for t in self.tags if t.id == tag_id), None)

    def with_specialist(self, address: int, role: int) -> NetworkConfig:
        """``addSpecialist``: OR ``role`` into ``address``'s entry, or append one."""
        address &= _ADDRESS_MASK
        words = list(self.specialists)
        for i, word in enumerate(words):
            if word & _ADDRESS_MASK == address:
                words[i] = word | role
                return replace(self, specialists=tuple(words))
        if len(words) >= MAX_SPECIALISTS:
            return self
        return replace(self, specialists=(*words, role | address))

    # --- writing ------------------------------------------------------------------

    def to_dictionary(self) -> Dictionary:
        """``toDictionary(d, includeLegacy=false)``: keys and encodings of A.2.2."""
        d = Dictionary()
        d.add("v", CONFIG_VERSION)
        d.add("nwid", self.network_id & _U64)
        d.add("ts", to_int64(self.timestamp))
        d.add("ctmd", to_int64(self.credential_time_max_delta))
        d.add("r", self.revision & _U64)
        d.add("id", f"{self.issued_to & _ADDRESS_MASK:010x}")
        d.add("tt", f"{self.remote_trace_target & _ADDRESS_MASK:010x}")
        d.add("tl", self.remote_trace_level & _U64)
        d.add("f", self.flags & _U64)
        d.add("ml", self.multicast_limit & _U64)
        d.add("t", self.type & _U64)
        d.add("n", _c_string(self.name, MAX_NAME_LENGTH + 1))
        d.add("mtu", self.mtu & _U64)
        if self.com is not None and not self.com.is_empty:
            d.add("C", self.com.serialize())
        if self.capabilities:
            d.add("CAP", b"".join(c.serialize() for c in self.capabilities))
        if self.tags:
            d.add("TAG", b"".join(t.serialize() for t in self.tags))
        if self.coos:
            d.add("COO", b"".join(c.serialize() for c in self.coos))
        if self.specialists:
            d.add("S", b"".join((s & _U64).to_bytes(8, "big") for s in self.specialists))
        if self.routes:
            d.add("RT", b"".join(_serialize_route(r) for r in self.routes))
        if self.static_ips:
            d.add("I", b"".join(serialize_inet(ip) for ip in self.static_ips))
        if self.rule_count and self.rules_raw:
            d.add("R", self.rules_raw)
        d.add("DNS", _serialize_dns(self.dns))
        if self.sso_version == 0:
            d.add("ssov", 0)
            d.add("ssoe", self.sso_enabled)
            if self.sso_enabled:
                if self.authentication_url:
                    d.add("aurl", _c_string(self.authentication_url, 2048))
                d.add("aexpt", self.authentication_expiry_time & _U64)
        elif self.sso_version == 1:
            d.add("ssov", 1)
            d.add("ssoe", self.sso_enabled)
            # Quirk (A.2.2): aurl is not written for SSO v1.
            d.add("iurl", _c_string(self.issuer_url, 2048))
            d.add("ssoce", _c_string(self.central_auth_url, 2048))
            d.add("sson", _c_string(self.sso_nonce, 128))
            d.add("ssos", _c_string(self.sso_state, 256))
            d.add("ssocid", _c_string(self.sso_client_id, 256))
            d.add("ssop", _c_string(self.sso_provider, 64))
        return d

    def serialize(self) -> bytes:
        """The dictionary text (as sent in config chunks and stored in ``<nwid>.conf``)."""
        return self.to_dictionary().serialize()

    # --- reading ------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> NetworkConfig:
        """Decode dictionary text (stops at a NUL, as a C string)."""
        return cls.from_dictionary(Dictionary.parse(data))

    @classmethod
    def from_dictionary(cls, d: Dictionary) -> NetworkConfig:
        """``fromDictionary`` (A.2.4); :class:`MalformedPacket` where it returns false."""
        network_id = d.get_u64("nwid", 0)
        if not network_id:
            raise MalformedPacket("network config without a network id")
        issued_to = d.get_u64("id", 0) & _ADDRESS_MASK
        if not issued_to:
            raise MalformedPacket("network config without an issued-to address")
        mtu = min(max(d.get_u64("mtu", DEFAULT_MTU) & _U32, MIN_MTU), MAX_MTU)
        if d.get_u64("v", 0) < MIN_CONFIG_VERSION:
            raise MalformedPacket("legacy (pre-v6) network config")

        com = None
        blob = d.get("C")
        if blob is not None:
            com, _ = CertificateOfMembership.parse(blob)
            if com.is_empty:
                com = None
        sso = _read_sso(d)
        return cls(
            network_id=network_id,
            timestamp=to_int64(d.get_u64("ts", 0)),
            credential_time_max_delta=to_int64(d.get_u64("ctmd", 0)),
            revision=d.get_u64("r", 0),
            issued_to=Address(issued_to),
            remote_trace_target=Address(d.get_u64("tt", 0) & _ADDRESS_MASK),
            remote_trace_level=d.get_u64("tl", 0) & _U32,
            flags=d.get_u64("f", 0),
            multicast_limit=d.get_u64("ml", 0) & _U32,
            type=d.get_u64("t", NetworkType.PRIVATE) & _U32,
            name=_text(d.get("n") or b"", MAX_NAME_LENGTH + 1),
            mtu=mtu,
            com=com,
            capabilities=_read_capabilities(d.get("CAP")),
            tags=_read_tags(d.get("TAG")),
            coos=_read_coos(d.get("COO")),
            specialists=_read_specialists(d.get("S")),
            routes=_read_routes(d.get("RT")),
            static_ips=_read_static_ips(d.get("I")),
            rules_raw=(rules := _read_rules(d.get("R")))[0],
            rule_count=rules[1],
            dns=_read_dns(d.get("DNS")),
            sso_version=sso.version,
            sso_enabled=sso.enabled,
            authentication_url=sso.authentication_url,
            authentication_expiry_time=sso.authentication_expiry_time,
            issuer_url=sso.issuer_url,
            central_auth_url=sso.central_auth_url,
            sso_nonce=sso.nonce,
            sso_state=sso.state,
            sso_client_id=sso.client_id,
            sso_provider=sso.provider,
        )


# --- blob codecs ---------------------------------------------------------------------


def _c_string(text: str, size: int) -> bytes:
    """What a C ``char[size]`` holding ``text`` writes: up to a NUL, at most size-1 bytes."""
    raw = text.encode("utf-8")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raw = raw[:nul]
    return raw[: size - 1]


def _text(raw: bytes, size: int) -> str:
    """A value read into a C ``char[size]``: at most size-1 bytes, up to its first NUL."""
    raw = raw[: size - 1]
    nul = raw.find(b"\x00")
    if nul >= 0:
        raw = raw[:nul]
    return raw.decode("utf-8", errors="replace")


def _serialize_route(route: Route) -> bytes:
    return (
        serialize_inet(route.target)
        + serialize_inet(route.via)
        + (route.flags & 0xFFFF).to_bytes(2, "big")
        + (route.metric & 0xFFFF).to_bytes(2, "big")
    )


def _serialize_dns(dns: DnsConfig) -> bytes:
    domain = _c_string(dns.domain, DNS_DOMAIN_LENGTH).ljust(DNS_DOMAIN_LENGTH, b"\x00")
    servers: list[InetAddress | None] = list(dns.servers[:MAX_DNS_SERVERS])
    servers += [None] * (MAX_DNS_SERVERS - len(servers))
    return domain + b"".join(serialize_inet(s) for s in servers)


def _read_capabilities(blob: bytes | None) -> tuple[Capability, ...]:
    """Back-to-back capabilities; a bad one silently ends the list; sorted by id."""
    caps: list[Capability] = []
    pos = 0
    while blob is not None and pos < len(blob) and len(caps) < MAX_CAPABILITIES:
        try:
            cap, pos = Capability.parse(blob, pos)
        except MalformedPacket:
            break
        caps.append(cap)
    return tuple(sorted(caps, key=lambda c: c.id))


def _read_tags(blob: bytes | None) -> tuple[Tag, ...]:
    tags: list[Tag] = []
    pos = 0
    while blob is not None and pos < len(blob) and len(tags) < MAX_TAGS:
        try:
            tag, pos = Tag.parse(blob, pos)
        except MalformedPacket:
            break
        tags.append(tag)
    return tuple(sorted(tags, key=lambda t: t.id))


def _read_coos(blob: bytes | None) -> tuple[CertificateOfOwnership, ...]:
    """Every COO must parse; those beyond the fourth are parsed and dropped."""
    coos: list[CertificateOfOwnership] = []
    pos = 0
    while blob is not None and pos < len(blob):
        coo, pos = CertificateOfOwnership.parse(blob, pos)
        if len(coos) < MAX_COOS:
            coos.append(coo)
    return tuple(coos)


def _read_specialists(blob: bytes | None) -> tuple[int, ...]:
    if blob is None:
        return ()
    words = [int.from_bytes(blob[p : p + 8], "big") for p in range(0, len(blob) - 7, 8)]
    return tuple(words[:MAX_SPECIALISTS])


def _read_routes(blob: bytes | None) -> tuple[Route, ...]:
    routes: list[Route] = []
    if blob is None:
        return ()
    r = WireReader(blob)
    read = 0
    while r.remaining > 0 and read < MAX_ROUTES:
        target, r.pos = parse_inet(blob, r.pos)
        via, r.pos = parse_inet(blob, r.pos)
        flags = r.u16("route flags")
        metric = r.u16("route metric")
        read += 1
        if target is not None:
            routes.append(Route(target, via, flags, metric))
    return tuple(routes)


def _read_static_ips(blob: bytes | None) -> tuple[InetAddress, ...]:
    ips: list[InetAddress] = []
    pos = 0
    read = 0
    while blob is not None and pos < len(blob) and read < MAX_STATIC_IPS:
        ip, pos = parse_inet(blob, pos)
        read += 1
        if ip is not None:
            ips.append(ip)
    return tuple(ips)


def _read_rules(blob: bytes | None) -> tuple[bytes, int]:
    if blob is None:
        return b"", 0
    count, end = rule_table_end(blob, 0, None, MAX_RULES)
    return blob[:end], count


def _read_dns(blob: bytes | None) -> DnsConfig:
    if blob is None:
        return DnsConfig()
    if len(blob) < DNS_DOMAIN_LENGTH:
        raise MalformedPacket("truncated DNS block")
    domain = _text(blob[: DNS_DOMAIN_LENGTH - 1], DNS_DOMAIN_LENGTH)
    servers: list[InetAddress] = []
    pos = DNS_DOMAIN_LENGTH
    for _ in range(MAX_DNS_SERVERS):
        server, pos = parse_inet(blob, pos)
        if server is not None:
            servers.append(server)
    return DnsConfig(domain, tuple(servers))


@dataclass(frozen=True, slots=True)
class _Sso:
    version: int = 0
    enabled: bool = False
    authentication_url: str = ""
    authentication_expiry_time: int = 0
    issuer_url: str = ""
    central_auth_url: str = ""
    nonce: str = ""
    state: str = ""
    client_id: str = ""
    provider: str = "default"


def _read_sso(d: Dictionary) -> _Sso:
    version = d.get_u64("ssov", 0)
    enabled = d.get_bool("ssoe", False)

    def text(key: str) -> str:
        return _text(d.get(key) or b"", _SSO_FIELD_SIZES[key])

    if version == 0 and enabled:
        return _Sso(version, enabled, text("aurl"), d.get_i64("aexpt", 0) & _U64)
    if version == 1 and enabled:
        return _Sso(
            version,
            enabled,
            authentication_url=text("aurl"),
            issuer_url=text("iurl"),
            central_auth_url=text("ssoce"),
            nonce=text("sson"),
            state=text("ssos"),
            client_id=text("ssocid"),
            provider=text("ssop") or "default",
        )
    if version == 1:
        return _Sso(version, enabled, provider="")
    return _Sso(version, enabled)


def request_metadata(
    version: tuple[int, int, int],
    os_arch: str,
    *,
    protocol_version: int = PROTOCOL_VERSION,
    auth_token: str | None = None,
) -> Dictionary:
    """The NETWORK_CONFIG_REQUEST meta-data of ``Network::requestConfiguration`` (A.2.7).

    ``auth_token`` (key ``a``) is defined upstream but never sent by the node; it is
    appended last only when given.
    """
    major, minor, revision = version
    d = Dictionary()
    d.add("v", CONFIG_VERSION)
    d.add("vend", VENDOR_ZEROTIER)
    d.add("pv", protocol_version)
    d.add("majv", major)
    d.add("minv", minor)
    d.add("revv", revision)
    d.add("mr", MAX_RULES)
    d.add("mc", MAX_CAPABILITIES)
    d.add("mcr", MAX_CAPABILITY_RULES)
    d.add("mt", MAX_TAGS)
    d.add("f", 0)
    d.add("revr", RULES_ENGINE_REVISION)
    d.add("o", os_arch)
    if auth_token is not None:
        d.add("a", auth_token)
    return d
