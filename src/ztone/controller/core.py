"""Answering a NETWORK_CONFIG_REQUEST (PROTOCOL-NETWORK-SERVICE B.2-B.4), pure.

Given the stored network and member JSON objects, the requester's identity and
request meta-data, the time and a source of random numbers, :func:`answer_request`
decides: a signed :class:`NetworkConfig` for an authorized member, or an error
code; and returns the member object as it must be saved (identity learned,
authorization, versions, auto-assigned IPs, default tags and capabilities).
Nothing here does I/O: the service keeps the objects in its store.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ztone.controller import ipassign
from ztone.controller.member_index import NetworkMembers
from ztone.controller.objects import address_hex, init_member, network_id_hex
from ztone.controller.rules_json import rule_from_json
from ztone.node.wire.address import Address
from ztone.node.wire.capability import Capability
from ztone.node.wire.com import CertificateOfMembership
from ztone.node.wire.credentials import CertificateOfOwnership, Revocation, Tag
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import DnsConfig, NetworkConfig, NetworkType, Route
from ztone.node.wire.packet import ErrorCode
from ztone.node.wire.rules import Rule, RuleType, serialize_rules

CTMD_DEFAULT = 1_800_000
CTMD_MIN = 300_000
CTMD_MAX = 7_200_000
FLAG_ENABLE_BROADCAST = 0x02
FLAG_NDP_EMULATION = 0x04
SPECIALIST_ACTIVE_BRIDGE = 0x0000020000000000
MAX_RULES = 1024
MAX_CAPABILITIES = 128
MAX_CAPABILITY_RULES = 64
MAX_TAGS = 128
CREDENTIAL_TYPE_COM = 1


@dataclass(frozen=True, slots=True)
class Answer:
    config: NetworkConfig | None
    error: int | None
    member: dict[str, Any] | None  # the member object to save (None: nothing to save)


def _bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    v = obj.get(key)
    return v if isinstance(v, bool) else default


def _int(obj: Mapping[str, Any], key: str, default: int) -> int:
    v = obj.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _rules(items: Any, limit: int) -> list[Rule]:
    out: list[Rule] = []
    if not isinstance(items, list):
        return out
    for item in items:
        try:
            out.append(rule_from_json(item))
        except ValueError:
            continue  # upstream skips rules it cannot parse
        if len(out) >= limit:
            break
    return out


def answer_request(
    *,
    now: int,
    controller: Identity,
    nwid: int,
    network: Mapping[str, Any] | None,
    member: Mapping[str, Any] | None,
    requester: Identity,
    metadata: Dictionary,
    members: Iterable[Mapping[str, Any]],
    rand64: Callable[[], int],
    real_request: bool = True,
    view: NetworkMembers | None = None,
) -> Answer:
    """``EmbeddedNetworkController::_request`` without the transport.

    ``view``: the network's other members as a kept-up-to-date
    :class:`NetworkMembers` (then ``members`` is not read); without it one is built
    from ``members``."""
    if view is None:
        view = NetworkMembers(members)
    if controller.secret is None or int(controller.address) != nwid >> 24:
        return Answer(None, None, None)
    if not network:
        return Answer(None, ErrorCode.OBJ_NOT_FOUND, None)
    address = int(requester.address)
    new_member = member is None
    m: dict[str, Any] = copy.deepcopy(dict(member)) if member else init_member(nwid, address, now)
    stored_identity = m.get("identity")
    if isinstance(stored_identity, str) and stored_identity:
        try:
            if Identity.from_string(stored_identity) != requester:
                return Answer(None, ErrorCode.NETWORK_ACCESS_DENIED, None)
        except ValueError:
            return Answer(None, ErrorCode.NETWORK_ACCESS_DENIED, None)
    else:
        m["identity"] = requester.to_string(False)
    m["id"] = address_hex(address)
    m["address"] = address_hex(address)
    m["nwid"] = network_id_hex(nwid)

    authorized = m.get("authorized") is True
    if not authorized and not _bool(network, "private", True):
        authorized = True
        m["lastAuthorizedCredentialType"] = "public"
    if not authorized:
        token = metadata.get_str("a")
        tokens = network.get("authTokens")
        if len(token) > 6 and token.startswith("token:") and isinstance(tokens, dict):
            expiry = tokens.get(token[6:])
            if isinstance(expiry, int) and (expiry == 0 or expiry > now):
                authorized = True
                m["lastAuthorizedCredentialType"] = "token"
                m["lastAuthorizedCredential"] = token[6:]
    if authorized and m.get("authorized") is not True:
        m["authorized"] = True
        m["lastAuthorizedTime"] = now
    if not authorized:
        return Answer(None, ErrorCode.NETWORK_ACCESS_DENIED, m)

    if real_request:
        for key, meta in (
            ("vMajor", "majv"),
            ("vMinor", "minv"),
            ("vRev", "revv"),
            ("vProto", "pv"),
        ):
            if meta in metadata:
                m[key] = metadata.get_u64(meta)

    ctmd = _int(network, "certificateTimeoutWindowSize", CTMD_DEFAULT)
    ctmd = max(CTMD_MIN, min(ctmd, CTMD_MAX))
    flags = FLAG_ENABLE_BROADCAST if _bool(network, "enableBroadcast", True) else 0
    mtu = max(1280, min(_int(network, "mtu", 2800), 10000))

    # Remote trace: the member's target if it has one, else the network's.
    target = m.get("remoteTraceTarget")
    if isinstance(target, str) and len(target) == 10:
        trace_target, trace_level = int(target, 16), _int(m, "remoteTraceLevel", 0)
    else:
        nt = network.get("remoteTraceTarget")
        trace_target = int(nt, 16) if isinstance(nt, str) and len(nt) == 10 else 0
        trace_level = _int(network, "remoteTraceLevel", 0)

    specialists = [SPECIALIST_ACTIVE_BRIDGE | a for a in view.active_bridges()]
    if m.get("activeBridge") is True and not any(
        (s & 0xFFFFFFFFFF) == address for s in specialists
    ):
        specialists.append(SPECIALIST_ACTIVE_BRIDGE | address)

    revr = metadata.get_u64("revr", 0)
    if revr <= 0:
        rules = [Rule.make(RuleType.ACTION_ACCEPT)]
    else:
        rules = _rules(network.get("rules"), MAX_RULES)

    capabilities: list[Capability] = []
    tags: list[Tag] = []
    if revr > 0:
        by_id: dict[int, Mapping[str, Any]] = {}
        for cap in network.get("capabilities") or []:
            if isinstance(cap, dict) and isinstance(cap.get("id"), int):
                by_id[cap["id"] & 0xFFFFFFFF] = cap
        member_caps = m.get("capabilities")
        if not isinstance(member_caps, list):
            member_caps = []
        if new_member:
            for cid, cap in by_id.items():
                if cap.get("default") is True and cid not in member_caps:
                    member_caps.append(cid)
        m["capabilities"] = member_caps
        for cid in member_caps:
            cap = by_id.get(cid & 0xFFFFFFFF) if isinstance(cid, int) else None
            if cap is None:
                continue
            cap_rules = _rules(cap.get("rules"), MAX_CAPABILITY_RULES)
            raw = serialize_rules(cap_rules)
            c = Capability(nwid, now, cid & 0xFFFFFFFF, raw, len(cap_rules), 1)
            capabilities.append(c.sign(controller, address))
            if len(capabilities) >= MAX_CAPABILITIES:
                break
        member_tags = m.get("tags")
        if not isinstance(member_tags, list):
            member_tags = []
        have = {t[0] for t in member_tags if isinstance(t, list) and len(t) == 2}
        for nt_obj in network.get("tags") or []:
            if isinstance(nt_obj, dict) and isinstance(nt_obj.get("id"), int):
                dflt = nt_obj.get("default")
                if (
                    isinstance(dflt, int)
                    and not isinstance(dflt, bool)
                    and nt_obj["id"] not in have
                ):
                    member_tags.append([nt_obj["id"], dflt])
        m["tags"] = member_tags
        pairs = sorted(
            (t[0] & 0xFFFFFFFF, t[1] & 0xFFFFFFFF)
            for t in member_tags
            if isinstance(t, list) and len(t) == 2 and all(isinstance(x, int) for x in t)
        )
        for tid, value in pairs[:MAX_TAGS]:
            tags.append(Tag(nwid, now, tid, value, Address(address)).sign(controller))

    routes = ipassign.parse_routes(network.get("routes"))
    config_routes = tuple(
        Route(
            InetAddress(r.target.network_address, r.target.prefixlen),
            InetAddress(r.via, 0) if r.via is not None else None,
        )
        for r in routes
    )
    static_ips, ndp = ipassign.assign(
        nwid, address, network, m, routes, view.allocated_to_others(address), rand64
    )
    if ndp:
        flags |= FLAG_NDP_EMULATION

    dns = DnsConfig()
    dns_obj = network.get("dns")
    if isinstance(dns_obj, dict):
        servers: list[InetAddress] = []
        for s in dns_obj.get("servers") or []:
            if isinstance(s, str) and len(servers) < 4:
                try:
                    servers.append(InetAddress(ipaddress.ip_address(s), 0))
                except ValueError:
                    continue
        domain = dns_obj.get("domain")
        dns = DnsConfig(domain if isinstance(domain, str) else "", tuple(servers))

    coos: tuple[CertificateOfOwnership, ...] = ()
    if static_ips:
        coo = CertificateOfOwnership(nwid, now, 1, Address(address))
        for ip in static_ips[:16]:
            coo = coo.add_ip(ip)
        coos = (coo.sign(controller),)

    com = CertificateOfMembership.make(now, ctmd, nwid, requester).sign(controller)
    name = network.get("name")
    config = NetworkConfig(
        network_id=nwid,
        timestamp=now,
        issued_to=Address(address),
        credential_time_max_delta=ctmd,
        revision=_int(network, "revision", 0),
        remote_trace_target=Address(trace_target),
        remote_trace_level=trace_level,
        flags=flags,
        multicast_limit=_int(network, "multicastLimit", 32),
        type=NetworkType.PRIVATE if _bool(network, "private", True) else NetworkType.PUBLIC,
        name=(name if isinstance(name, str) else "").encode()[:127].decode(errors="ignore"),
        mtu=mtu,
        com=com,
        capabilities=tuple(capabilities),
        tags=tuple(tags),
        coos=coos,
        specialists=tuple(specialists),
        routes=config_routes,
        static_ips=tuple(static_ips),
        rules_raw=serialize_rules(rules),
        rule_count=len(rules),
        dns=dns,
    )
    return Answer(config, None, m)


def make_revocation(
    controller: Identity, nwid: int, member: int, now: int, revocation_id: int
) -> Revocation:
    """The fast-propagating COM revocation sent when a member is deauthorized (B.4)."""
    rev = Revocation(
        id=revocation_id & 0xFFFFFFFF,
        network_id=nwid,
        credential_id=0,
        threshold=now,
        flags=0x01,
        target=Address(member),
        credential_type=CREDENTIAL_TYPE_COM,
    )
    return rev.sign(controller)
