"""One joined virtual network: config, status, members' credentials, multicast groups
(PROTOCOL-NETWORK-SERVICE A.5.2-A.5.9).

The network owns its config (:meth:`Network.set_configuration`), its members'
credentials (:meth:`Network.add_credential`, :meth:`Network.push_credentials`) and
its rule filter (:meth:`Network.filter`); what it sends or tells the host goes
through a :class:`NetworkHost` (the node's port). The packet handlers live beside
it: :mod:`~ztone.node.vl2.frames`, :mod:`~ztone.node.vl2.multicast`,
:mod:`~ztone.node.vl2.controller_link`.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from ztone.errors import MalformedPacket
from ztone.node.actions import Action, NetworkConfigChanged, PutState, StateKind
from ztone.node.bounds import MAX_BRIDGE_ROUTES, MAX_MEMBERSHIPS
from ztone.node.metrics import RX_ACCEPTED, TX_ACCEPTED
from ztone.node.vl1.peer import Peer
from ztone.node.vl2.filter import FrameContext, Verdict, filter_with_capabilities
from ztone.node.vl2.membership import (
    CREDENTIAL_TYPE_CAPABILITY,
    CREDENTIAL_TYPE_COO,
    CREDENTIAL_TYPE_TAG,
    AddResult,
    Membership,
)
from ztone.node.vl2.view import ConfigOp, Failure, NetworkView
from ztone.node.wire import credentials as cr
from ztone.node.wire.config_chunk import ConfigAssembler
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.mac import MAC, first_octet_for_network
from ztone.node.wire.network_config import NetworkConfig
from ztone.node.wire.packet import Verb
from ztone.node.wire.rules import RULE_TYPE_MASK, Rule, RuleType, parse_rules
from ztone.node.wire.vl2_verbs import (
    BROADCAST_GROUP,
    MulticastGroup,
    serialize_ext_frame,
    serialize_multicast_likes,
)

AUTOCONF_DELAY = 60_000
MULTICAST_ANNOUNCE_PERIOD = 60_000
MULTICAST_EXPLICIT_GATHER_DELAY = 60_000
CREDENTIAL_PUSH_TIMEOUT = 500_000
CREDENTIAL_REQUEST_INTERVAL = 1_000
LOCAL_CONTROLLER_AUTH_MEMORY = 180_000


MAX_FILTER_RULE_CACHE = 1024

Credential = (
    cr.CertificateOfMembership | cr.Capability | cr.Tag | cr.CertificateOfOwnership | cr.Revocation
)
"""Every credential a network holds about its members (A.3.7)."""

__all__ = ["ConfigOp", "Failure", "Network", "NetworkHost", "NetworkView"]


class NetworkHost(Protocol):
    """What a network needs of its node (a part of :class:`ztone.node.port.NodePort`)."""

    identity: Identity
    counters: Counter[str]
    peers: dict[int, Peer]
    emit: Callable[[Action], None]
    random: Callable[[int], bytes]

    def send(
        self,
        now: int,
        destination: int,
        verb: int,
        payload: bytes,
        encrypt: bool = True,
        compress: bool = False,
    ) -> None: ...

    def get_peer(self, now: int, address: int) -> Peer | None: ...

    def request_whois(self, now: int, address: int) -> None: ...


def overlay_owns(
    networks: dict[int, Network], ip: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    """True if ``ip`` is inside a network assigned to us (no ZeroTier over ZeroTier)."""
    for net in networks.values():
        if net.config is None:
            continue
        for a in net.config.static_ips:
            if a.ip.version != ip.version:
                continue
            network = ipaddress.ip_network(f"{a.ip}/{a.port}", strict=False)
            if ip in network:
                return True
    return False


def _rules(raw: bytes, count: int) -> list[Rule]:
    try:
        rules, _ = parse_rules(raw, 0, count)
    except MalformedPacket:
        return []  # an unreadable table matches nothing: everything is dropped
    return rules


def _cached_rules(cache: dict[tuple[bytes, int], list[Rule]], raw: bytes, count: int) -> list[Rule]:
    """``_rules`` of a capability, parsed once per network config."""
    key = (raw, count)
    rules = cache.get(key)
    if rules is None:
        if len(cache) >= MAX_FILTER_RULE_CACHE:
            cache.clear()
        rules = cache[key] = _rules(raw, count)
    return rules


def _ownership(
    coos: list[cr.CertificateOfOwnership],
) -> tuple[Callable[[bytes], bool], Callable[[int], bool]]:
    def ip_owned(ip: bytes) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(c.owns_ip(addr) for c in coos)

    def mac_owned(mac: int) -> bool:
        return any(c.owns_mac(mac) for c in coos)

    return ip_owned, mac_owned


_ACTION_ACCEPT = int(RuleType.ACTION_ACCEPT)


class Network:
    """One joined network; packet handlers reach it through ``port.networks``."""

    def __init__(self, nwid: int, my_address: int) -> None:
        self.nwid = nwid
        self.my_address = my_address
        self.controller = nwid >> 24
        self.mac = int(MAC.from_address(my_address, nwid))
        self.mac_first_octet = first_octet_for_network(nwid)
        self.mac_mask = int(MAC.from_address(0, nwid)) & 0xFFFFFFFFFF
        """The 40-bit mask a member's address is XORed with in its MAC (§1.4)."""
        self.config: NetworkConfig | None = None
        self.config_bytes: bytes = b""
        self.failure = Failure.NONE
        self.last_config_update = 0
        self.last_request_sent = 0
        self.port_error = 0
        self.filter_counts = [0, 0, 0, 0]  # metrics.RX_ACCEPTED, RX_DROPPED, TX_...
        self.destroyed = False
        self.up = False
        self.memberships: dict[int, Membership] = {}
        self.subscriptions: set[MulticastGroup] = set()
        self.bridged_groups: dict[MulticastGroup, int] = {}
        self.bridge_routes: dict[int, int] = {}  # MAC -> address of the bridge behind which it is
        self.last_upstream_announce = 0
        self.assembler: ConfigAssembler | None = None
        self.parsed_rules: list[Rule] | None = None  # of the current config, parsed lazily
        self.rule_cache: dict[tuple[bytes, int], list[Rule]] = {}  # capabilities' rules
        self.authorized_by_me: dict[int, int] = {}  # member -> time (when we are its controller)

    def clean(self, now: int) -> None:
        """Housekeeping: forget old bridged groups and old local authorizations."""
        self.bridged_groups = {g: t for g, t in self.bridged_groups.items() if now - t < 1_200_000}
        self.authorized_by_me = {
            a: t for a, t in self.authorized_by_me.items() if now - t < LOCAL_CONTROLLER_AUTH_MEMORY
        }

    def controller_authorized(self, address: int, now: int) -> bool:
        """Did we, as this network's controller, recently send ``address`` a config?"""
        t = self.authorized_by_me.get(address)
        return t is not None and now - t < LOCAL_CONTROLLER_AUTH_MEMORY

    # --- join, config, leave ----------------------------------------------------------

    def start(self, host: NetworkHost, now: int, stored: bytes | None) -> None:
        """Just joined: restore the stored config (then ask for a fresh one at once),
        else bring the port up waiting for one."""
        if stored is not None and len(stored) > 1:
            try:
                config = NetworkConfig.from_dictionary(Dictionary.parse(stored))
                self.set_configuration(host, now, config, save=False)
                self.last_config_update = 0
            except MalformedPacket:
                host.counters["state_bad_network_config"] += 1
        if self.config is None:
            host.emit(PutState(StateKind.NETWORK_CONFIG, self.nwid, b"\n"))
            self.up = True
            host.emit(NetworkConfigChanged(self.nwid, ConfigOp.UP, self.view()))

    def destroy(self, host: NetworkHost) -> None:
        """Left: the port goes and the stored config with it."""
        self.destroyed = True
        host.emit(NetworkConfigChanged(self.nwid, ConfigOp.DESTROY, self.view()))
        host.emit(PutState(StateKind.NETWORK_CONFIG, self.nwid, None))

    def set_configuration(
        self, host: NetworkHost, now: int, config: NetworkConfig, save: bool
    ) -> bool:
        """Take ``config`` if it is for us and this network; tell the host if it changed."""
        if config.issued_to != self.my_address or config.network_id != self.nwid:
            host.counters["config_not_for_us"] += 1
            return False
        data = config.to_dictionary().serialize()
        if data == self.config_bytes and self.config is not None:
            return True
        first = not self.up
        self.config = config
        self.config_bytes = data
        self.parsed_rules = None
        self.rule_cache = {}
        self.last_config_update = now
        self.failure = Failure.NONE
        self.up = True
        host.emit(
            NetworkConfigChanged(
                self.nwid, ConfigOp.UP if first else ConfigOp.CONFIG_UPDATE, self.view()
            )
        )
        if save:
            host.emit(PutState(StateKind.NETWORK_CONFIG, self.nwid, data))
        for address in config.always_contact_addresses():
            if address != self.my_address and host.get_peer(now, address) is None:
                host.request_whois(now, address)
        return True

    def announce_status(self, host: NetworkHost) -> None:
        """The status changed (a failure): the host's view must be refreshed."""
        host.emit(NetworkConfigChanged(self.nwid, ConfigOp.CONFIG_UPDATE, self.view()))

    # --- credentials ------------------------------------------------------------------

    def push_credentials(self, host: NetworkHost, now: int, address: int) -> None:
        """Send our COM, capabilities, tags and COOs to ``address`` (A.3.7)."""
        c = self.config
        if c is None:
            return
        m = self.membership(address)
        m.last_pushed_credentials = now
        creds = cr.NetworkCredentials(
            coms=[c.com] if c.com is not None else [],
            capabilities=list(c.capabilities),
            tags=list(c.tags),
            revocations=[],
            coos=list(c.coos),
        )
        for payload in creds.split():
            host.send(now, address, Verb.NETWORK_CREDENTIALS, payload, compress=True)

    def push_credentials_if_needed(self, host: NetworkHost, now: int, address: int) -> None:
        if self.config is not None and self.should_push_credentials(address, now):
            self.push_credentials(host, now, address)

    def add_credential(
        self, host: NetworkHost, now: int, cred: Credential, source: int
    ) -> AddResult:
        """Check a member's credential against the controller's signature and keep it."""
        if self.config is None:
            return AddResult.REJECTED
        signer_identity: Identity | None
        if self.controller == self.my_address:
            signer_identity = host.identity
        else:
            signer = host.peers.get(self.controller)
            signer_identity = signer.identity if signer is not None else None
        if signer_identity is None:
            host.request_whois(now, self.controller)
            return AddResult.NEEDS_WHOIS
        if isinstance(cred, cr.Revocation):
            if not cred.verify(signer_identity):
                return AddResult.REJECTED
            m = self.membership(int(cred.target))
            result = m.add_revocation(cred.credential_type, cred.credential_id, cred.threshold)
            if result is AddResult.ACCEPTED_NEW and cred.flags & 0x01:
                payload = cr.NetworkCredentials(revocations=[cred]).serialize()
                for address in list(self.memberships):
                    if address not in (source, self.controller, self.my_address):
                        host.send(now, address, Verb.NETWORK_CREDENTIALS, payload, compress=True)
            return result
        checked: list[bool] = []
        signer_known: Identity = signer_identity

        def verified() -> bool:
            if not checked:
                checked.append(bool(cred.verify(signer_known)))
            return checked[0]

        member = int(cred.issued_to)
        if member not in self.memberships and (
            len(self.memberships) >= MAX_MEMBERSHIPS or not verified()
        ):
            return AddResult.REJECTED  # only a credential that verifies creates a record
        m = self.membership(member)
        if isinstance(cred, cr.CertificateOfMembership):
            return m.add_com(cred, verified)
        if isinstance(cred, cr.Capability):
            return m.add_keyed(CREDENTIAL_TYPE_CAPABILITY, m.capabilities, cred, verified)
        if isinstance(cred, cr.Tag):
            return m.add_keyed(CREDENTIAL_TYPE_TAG, m.tags, cred, verified)
        return m.add_keyed(CREDENTIAL_TYPE_COO, m.coos, cred, verified)

    # --- multicast announcements ------------------------------------------------------

    def announce_groups_to(
        self, host: NetworkHost, now: int, address: int, groups: list[MulticastGroup]
    ) -> None:
        """MULTICAST_LIKE for ``groups`` to ``address``."""
        for payload in serialize_multicast_likes(self.nwid, groups):
            host.send(now, address, Verb.MULTICAST_LIKE, payload, compress=True)

    def gate(self, host: NetworkHost, now: int, peer: Peer) -> bool:
        """``Network::gate``: may this peer talk on the network? Also triggers LIKE pushes."""
        address = int(peer.address)
        if not self.is_allowed(address, peer.identity, now):
            return False
        m = self.membership(address)
        if now - m.last_updated_multicast >= MULTICAST_ANNOUNCE_PERIOD:
            m.last_updated_multicast = now
            self.announce_groups_to(host, now, address, sorted(self.all_groups()))
        return True

    # --- filtering --------------------------------------------------------------------

    def rules(self) -> list[Rule]:
        """The current config's base rule table, parsed (empty without a config)."""
        c = self.config
        if c is None:
            return []
        rules = self.parsed_rules
        if rules is None:
            rules = self.parsed_rules = _rules(c.rules_raw, c.rule_count)
        return rules

    def filter(
        self,
        host: NetworkHost,
        now: int,
        inbound: bool,
        other: int,
        src: int,
        dst: int,
        ethertype: int,
        payload: bytes,
        no_tee: bool = False,
    ) -> Verdict:
        """The rules engine's :class:`Verdict` on a frame; sends the TEE/WATCH/REDIRECT
        copies. Each verdict is counted per direction (``zt_network_packets``)."""
        counted = RX_ACCEPTED if inbound else TX_ACCEPTED  # +1: dropped
        c = self.config
        if c is None:
            self.filter_counts[counted + 1] += 1
            return Verdict.DROP
        rules = self.parsed_rules
        if rules is None:
            rules = self.parsed_rules = _rules(c.rules_raw, c.rule_count)
        if rules and rules[0].t & RULE_TYPE_MASK == _ACTION_ACCEPT:
            # The engine's answer when the table starts with ACCEPT (the default table):
            # plain accept, capabilities unconsulted, no copies, no random draw.
            self.filter_counts[counted] += 1
            return Verdict.ACCEPT
        cache = self.rule_cache
        if inbound:
            m = self.memberships.get(other)
            coos = [
                x
                for x in (m.coos.values() if m is not None else [])
                if m is not None
                and m.credential_timestamp_valid(
                    CREDENTIAL_TYPE_COO, x, c.timestamp, c.credential_time_max_delta
                )
            ]
            caps = [
                (cap.id, _cached_rules(cache, cap.rules_raw, cap.rule_count))
                for cap in self.remote_capabilities(other)
            ]
        else:
            coos = list(c.coos)
            caps = [
                (cap.id, _cached_rules(cache, cap.rules_raw, cap.rule_count))
                for cap in sorted(c.capabilities, key=lambda x: x.id)
            ]
        ip_owned, mac_owned = _ownership(coos)
        ctx = FrameContext(
            network_id=self.nwid,
            our_address=self.my_address,
            peer=other,
            inbound=inbound,
            mac_source=src,
            mac_dest=dst,
            ethertype=ethertype,
            payload=payload,
            our_tags=self.my_tags(),
            peer_tags=self.remote_tags(other) if other else {},
            unsupported_match_result=bool(c.flags & 0x08),
            ip_owned=ip_owned,
            mac_owned=mac_owned,
        )
        decision = filter_with_capabilities(
            rules,
            caps,
            ctx,
            lambda: int.from_bytes(host.random(4), "big"),
            no_tee=no_tee,
        )
        for action in decision.actions:
            body = payload[: action.length]
            ext = serialize_ext_frame(self.nwid, action.ext_flags, dst, src, ethertype, body)
            host.send(now, action.target, Verb.EXT_FRAME, ext, compress=True)
        self.filter_counts[counted if decision.accept else counted + 1] += 1
        return decision.accept

    # --- status -------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.port_error:
            return "PORT_ERROR"
        if self.failure is Failure.ACCESS_DENIED:
            return "ACCESS_DENIED"
        if self.failure is Failure.NOT_FOUND:
            return "NOT_FOUND"
        if self.failure is Failure.AUTHENTICATION_REQUIRED:
            return "AUTHENTICATION_REQUIRED"
        return "OK" if self.config is not None else "REQUESTING_CONFIGURATION"

    def needs_config_request(self, now: int) -> bool:
        if self.destroyed or self.nwid >> 56 == 0xFF:
            return False
        return self.config is None or now - self.last_config_update >= AUTOCONF_DELAY

    def view(self) -> NetworkView:
        c = self.config
        if c is None:
            return NetworkView(
                self.nwid,
                self.mac,
                "",
                self.status,
                "PRIVATE",
                2800,
                False,
                False,
                0,
                (),
                (),
                tuple(sorted(self.subscriptions)),
                "",
                (),
            )
        return NetworkView(
            nwid=self.nwid,
            mac=self.mac,
            name=c.name,
            status=self.status,
            type="PUBLIC" if c.is_public else "PRIVATE",
            mtu=c.mtu,
            bridge=c.permits_bridging(self.my_address),
            broadcast_enabled=c.enable_broadcast,
            netconf_revision=c.revision,
            assigned_addresses=tuple(c.static_ips),
            routes=tuple(c.routes),
            multicast_subscriptions=tuple(sorted(self.subscriptions)),
            dns_domain=c.dns.domain if c.dns is not None else "",
            dns_servers=tuple(c.dns.servers) if c.dns is not None else (),
        )

    # --- MACs of members (``MAC.from_address`` / ``to_address`` without objects) ---

    def member_mac(self, address: int) -> int:
        """``MAC.from_address(address, nwid)`` as a plain int."""
        return (self.mac_first_octet << 40) | ((address ^ self.mac_mask) & 0xFFFFFFFFFF)

    def mac_to_member(self, mac: int) -> int | None:
        """The member address behind a ZeroTier MAC of this network, else None."""
        if (mac >> 40) != self.mac_first_octet:
            return None
        return (mac ^ self.mac_mask) & 0xFFFFFFFFFF

    # --- membership -----------------------------------------------------------------

    def membership(self, address: int) -> Membership:
        m = self.memberships.get(address)
        if m is None:
            m = Membership()
            self.memberships[address] = m
        return m

    def is_allowed(self, address: int, identity: Identity | None, now: int) -> bool:
        """``gate()`` / ``isAllowedOnNetwork``: public, or a live agreeing COM."""
        c = self.config
        if c is None:
            return False
        if c.is_public:
            return True
        m = self.memberships.get(address)
        if m is None or m.com is None or identity is None or c.com is None:
            return False
        return m.com_allows(c.com, identity)

    def remote_tags(self, address: int) -> dict[int, int]:
        m = self.memberships.get(address)
        c = self.config
        if m is None or c is None:
            return {}
        return {
            t.id: t.value
            for t in m.tags.values()
            if m.credential_timestamp_valid(3, t, c.timestamp, c.credential_time_max_delta)
        }

    def remote_capabilities(self, address: int) -> list[cr.Capability]:
        m = self.memberships.get(address)
        c = self.config
        if m is None or c is None:
            return []
        return [
            cap
            for cap in m.capabilities.values()
            if m.credential_timestamp_valid(2, cap, c.timestamp, c.credential_time_max_delta)
        ]

    def my_tags(self) -> dict[int, int]:
        c = self.config
        return {t.id: t.value for t in c.tags} if c is not None else {}

    def should_push_credentials(self, address: int, now: int) -> bool:
        m = self.membership(address)
        return (
            m.last_pushed_credentials < self.last_config_update
            or now - m.last_pushed_credentials > CREDENTIAL_PUSH_TIMEOUT
        )

    # --- multicast ------------------------------------------------------------------

    def all_groups(self) -> set[MulticastGroup]:
        groups = set(self.subscriptions) | set(self.bridged_groups)
        if self.config is not None and self.config.enable_broadcast:
            groups.add(BROADCAST_GROUP)
        return groups

    def subscribed_or_bridged(self, group: MulticastGroup) -> bool:
        return group in self.subscriptions or group in self.bridged_groups

    def is_active_bridge(self, address: int) -> bool:
        return self.config is not None and bool(self.config.permits_bridging(address))

    def active_bridges(self) -> list[int]:
        return list(self.config.active_bridges()) if self.config is not None else []

    def learn_bridge_route(self, mac: int, address: int) -> None:
        self.bridge_routes[mac] = address
        if len(self.bridge_routes) > MAX_BRIDGE_ROUTES:
            counts: dict[int, int] = {}
            for a in self.bridge_routes.values():
                counts[a] = counts.get(a, 0) + 1
            worst = max(counts, key=lambda a: counts[a])
            self.bridge_routes = {m: a for m, a in self.bridge_routes.items() if a != worst}
