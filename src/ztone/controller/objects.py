"""The controller's JSON objects: defaults, API POST semantics, revisions.

Pure functions over plain JSON values (``dict``/``list``/``str``/``int``/``float``/
``bool``/``None``): no I/O, no clock (``now_ms`` is an argument), no randomness.
PROTOCOL-NETWORK-SERVICE B.7 (network object), B.8 (member object), B.5 (revisions).

Defaults and keys are those of zerotier-one 1.14.1 (``DB::initNetwork``,
``DB::initMember``), including two of its quirks, kept on purpose because stored
records and API answers must look the same:

* the default ``authTokens`` is the JSON array ``[null]``;
* ``remoteTraceLevel`` is reset to 0 whenever defaults are applied to a record (the
  reference tests for a misspelled key), so every POST that does not carry
  ``remoteTraceLevel`` sets it back to 0.

POST bodies are read field by field as the reference reads them (same accepted JSON
types, same conversions and normalizations, unknown keys ignored, the legacy string
forms of ``v4AssignMode``/``v6AssignMode`` understood), with one deliberate
difference: where the reference would silently turn a value of the wrong type into a
default, drop a malformed entry (a route whose target is not an address, an IP that
does not parse, ...) or fail with a 500, these functions raise
:class:`ControllerInputError` naming the field, and nothing is changed. Values that
GET returns are always accepted back (``"dns": []``, ``"authTokens": [null]``,
``"remoteTraceTarget": null``, ...), so a client can POST a fetched object back.
Rules (network ``rules`` and capability rules) are parsed and re-rendered by
:mod:`ztone.controller.rules_json` as the reference does, so a POSTed rule is stored
in its canonical form (the default ``ACTION_ACCEPT`` literal, which carries
``not``/``or``, comes back without them once POSTed).

Revisions (B.5) are not touched by the POST functions: :func:`revise` is what a
store applies when it saves a record (``revision + 1`` if anything other than
``revision`` changed, else nothing is written).
"""

from __future__ import annotations

import copy
import math
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from ztone.controller.rules_json import rule_from_json, rule_to_json
from ztone.util.ctext import U64_MAX

JsonObject = dict[str, Any]

U32_MAX = 0xFFFFFFFF

DEFAULT_MTU = 2800
MIN_MTU = 1280
MAX_MTU = 10000
DEFAULT_MULTICAST_LIMIT = 32
MAX_ARRAY_SIZE = 16384
"""``ZT_CONTROLLER_MAX_ARRAY_SIZE``: the longest routes/pools/rules/... array kept."""

NETWORK_COMPUTED_FIELDS = (
    "clock",
    "authorizedMemberCount",
    "activeMemberCount",
    "totalMemberCount",
    "lastModified",
)
"""Dropped from a network before every save (``DB::cleanNetwork``)."""

MEMBER_COMPUTED_FIELDS = (
    "clock",
    "physicalAddr",
    "recentLog",
    "lastModified",
    "lastRequestMetaData",
    "authenticationURL",
    "authenticationClientID",
)
"""Dropped from a member before every save (``DB::cleanMember``)."""

DEFAULT_RULES: list[JsonObject] = [{"not": False, "or": False, "type": "ACTION_ACCEPT"}]

_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_HEX10 = re.compile(r"[0-9a-fA-F]{10}")
_DECIMAL = re.compile(r"\+?[0-9]+")


class ControllerInputError(ValueError):
    """A POST body (or one of its fields) the controller does not accept.

    The API answers ``400 {"error": <message>}`` and nothing is changed.
    """


# --- ids --------------------------------------------------------------------------------


def network_id_hex(nwid: int) -> str:
    """``%.16llx``."""
    return f"{nwid & U64_MAX:016x}"


def address_hex(address: int) -> str:
    """``%.10llx``."""
    return f"{address & 0xFFFFFFFFFF:010x}"


def parse_network_id(text: object) -> int | None:
    """A record's 16-hex ``id``/``nwid`` as an int (None if it is not 16 hex digits)."""
    if isinstance(text, str) and _HEX16.fullmatch(text):
        return int(text, 16)
    return None


def parse_address(text: object) -> int | None:
    """A member's 10-hex ``id``/``address`` as an int (None if not 10 hex digits)."""
    if isinstance(text, str) and _HEX10.fullmatch(text):
        return int(text, 16)
    return None


# --- defaults ---------------------------------------------------------------------------


def network_defaults(network: Mapping[str, Any], now_ms: int) -> JsonObject:
    """``DB::initNetwork``: a copy of ``network`` with every missing key defaulted,
    ``objtype`` reset to ``"network"`` and ``remoteTraceLevel`` reset to 0 (quirk)."""
    n: JsonObject = copy.deepcopy(dict(network))
    n.setdefault("private", True)
    n.setdefault("creationTime", now_ms)
    n.setdefault("name", "")
    n.setdefault("multicastLimit", DEFAULT_MULTICAST_LIMIT)
    n.setdefault("enableBroadcast", True)
    n.setdefault("v4AssignMode", {"zt": False})
    n.setdefault("v6AssignMode", {"rfc4193": False, "zt": False, "6plane": False})
    n.setdefault("authTokens", [None])
    n.setdefault("capabilities", [])
    n.setdefault("tags", [])
    n.setdefault("routes", [])
    n.setdefault("ipAssignmentPools", [])
    n.setdefault("mtu", DEFAULT_MTU)
    n.setdefault("remoteTraceTarget", None)
    n["remoteTraceLevel"] = 0  # the reference checks "removeTraceLevel" (sic)
    n.setdefault("rulesSource", "")
    if "rules" not in n:
        n["rules"] = copy.deepcopy(DEFAULT_RULES)
    n.setdefault("dns", [])
    n.setdefault("ssoEnabled", False)
    n.setdefault("clientId", "")
    n.setdefault("authorizationEndpoint", "")
    n["objtype"] = "network"
    return n


def member_defaults(member: Mapping[str, Any], now_ms: int) -> JsonObject:
    """``DB::initMember``: a copy of ``member`` with every missing key defaulted,
    ``objtype`` reset to ``"member"`` and ``remoteTraceLevel`` reset to 0 (quirk)."""
    m: JsonObject = copy.deepcopy(dict(member))
    m.setdefault("authorized", False)
    m.setdefault("ssoExempt", False)
    m.setdefault("ipAssignments", [])
    m.setdefault("activeBridge", False)
    m.setdefault("tags", [])
    m.setdefault("capabilities", [])
    m.setdefault("creationTime", now_ms)
    m.setdefault("noAutoAssignIps", False)
    m.setdefault("revision", 0)
    m.setdefault("lastDeauthorizedTime", 0)
    m.setdefault("lastAuthorizedTime", 0)
    m.setdefault("lastAuthorizedCredentialType", None)
    m.setdefault("lastAuthorizedCredential", None)
    m.setdefault("authenticationExpiryTime", 0)
    m.setdefault("vMajor", -1)
    m.setdefault("vMinor", -1)
    m.setdefault("vRev", -1)
    m.setdefault("vProto", -1)
    m.setdefault("remoteTraceTarget", None)
    m["remoteTraceLevel"] = 0  # the reference checks "removeTraceLevel" (sic)
    m["objtype"] = "member"
    return m


def init_network(nwid: int, now_ms: int) -> JsonObject:
    """A new network as the reference builds it before its first save: the defaults
    plus ``id``/``nwid``. (``revision`` is absent; the first save makes it 1.)"""
    n = network_defaults({}, now_ms)
    n["id"] = n["nwid"] = network_id_hex(nwid)
    return n


def init_member(nwid: int, address: int, now_ms: int) -> JsonObject:
    """A new member: the defaults (``revision`` 0, the first save makes it 1) plus
    ``id``/``address`` (10 hex) and ``nwid`` (16 hex)."""
    m = member_defaults({}, now_ms)
    m["id"] = m["address"] = address_hex(address)
    m["nwid"] = network_id_hex(nwid)
    return m


def clean_network(network: JsonObject) -> JsonObject:
    """``DB::cleanNetwork`` (in place; returns ``network``)."""
    for key in NETWORK_COMPUTED_FIELDS:
        network.pop(key, None)
    return network


def clean_member(member: JsonObject) -> JsonObject:
    """``DB::cleanMember`` (in place; returns ``member``)."""
    for key in MEMBER_COMPUTED_FIELDS:
        member.pop(key, None)
    return member


# --- revisions (B.5) --------------------------------------------------------------------


def json_equal(a: object, b: object) -> bool:
    """JSON equality as nlohmann compares values: booleans never equal numbers,
    integers and floats compare by value, objects ignore key order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def same_record(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """``DB::_compareRecords``: equal in every field other than ``revision`` (here a
    missing ``revision`` is no difference either)."""
    keys = a.keys() - {"revision"}
    if keys != b.keys() - {"revision"}:
        return False
    return all(json_equal(a[k], b[k]) for k in keys)


def _revision(record: Mapping[str, Any] | None) -> int:
    if record is None:
        return 0
    try:
        return _json_int(record.get("revision", 0), "revision")
    except ControllerInputError:
        return 0


def revise(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> JsonObject | None:
    """What a save writes (``FileDB::save``): None if ``new`` equals ``old`` apart from
    ``revision`` (nothing to write, no listeners called); otherwise a copy of ``new``
    with ``revision`` one more than the larger of the two records' revisions (the
    reference uses ``new``'s; taking the larger keeps revisions increasing even when
    a caller saves a stale copy). A missing or non-numeric revision counts as 0."""
    if old is not None and same_record(old, new):
        return None
    record: JsonObject = copy.deepcopy(dict(new))
    record["revision"] = max(_revision(old), _revision(new)) + 1
    return record


# --- JSON value conversions (OSUtils::jsonBool / jsonInt / jsonString, strict) ----------


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _bad(field: str, expected: str, value: object) -> ControllerInputError:
    return ControllerInputError(f"{field}: expected {expected}, got {_type_name(value)}")


def _json_bool(value: object, field: str) -> bool:
    """``jsonBool``: a boolean; a number (non-zero after truncation is true); a string starting with
    ``t``/``T``/``1`` (true) or ``f``/``F``/``0`` or empty (false)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, float) and math.isfinite(value):
        return int(value) != 0  # (uint64_t) cast: 0.5 is false
    if isinstance(value, str):
        if value[:1] in ("t", "T", "1"):
            return True
        if value[:1] in ("", "f", "F", "0"):
            return False
        raise ControllerInputError(f"{field}: {value!r} is not a boolean")
    raise _bad(field, "a boolean", value)


def _json_int(value: object, field: str, maximum: int = U64_MAX) -> int:
    """``jsonInt``: a number (an integral float is accepted), a decimal string, or a
    boolean (0/1); it must be within ``0 .. maximum``."""
    result: int
    if isinstance(value, bool):
        result = int(value)
    elif isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value != math.floor(value):
            raise ControllerInputError(f"{field}: {value!r} is not an integer")
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise ControllerInputError(f"{field}: {value!r} is not a decimal integer")
        result = int(text)
    else:
        raise _bad(field, "an integer", value)
    if not 0 <= result <= maximum:
        raise ControllerInputError(f"{field}: {result} is out of range (0..{maximum})")
    return result


def _json_string(value: object, field: str) -> str:
    """``jsonString``: a string; a number (as unsigned decimal); a boolean (``1``/``0``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value & U64_MAX)
    raise _bad(field, "a string", value)


def _remote_trace_target(value: object, field: str) -> str | None:
    """A 10-character string is kept; anything else (incl. null) becomes null."""
    if value is None:
        return None
    text = _json_string(value, field)
    return text if len(text) == 10 else None


def _array(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(field, "an array", value)
    if len(value) > MAX_ARRAY_SIZE:
        raise ControllerInputError(f"{field}: more than {MAX_ARRAY_SIZE} entries")
    return value


# --- IP addresses (InetAddress::fromString, toIpString, toString) ------------------------


def _parse_inet(text: str, field: str, *, bits_required: bool) -> tuple[int, bytes, int | None]:
    """``IP`` or ``IP/n`` as ``InetAddress::fromString`` reads it (a ``:`` means IPv6,
    else a ``.`` means IPv4); returns (family, packed address, n or None).

    Unlike the reference, an address ``inet_pton`` rejects is an error, not 0.0.0.0."""
    ip_text, slash, suffix = text.partition("/")
    bits: int | None = None
    if slash:
        if not suffix.isascii() or not suffix.isdigit():
            raise ControllerInputError(f"{field}: {text!r}: bad /bits part")
        bits = int(suffix)
    elif bits_required:
        raise ControllerInputError(f"{field}: {text!r} is not of the form IP/bits")
    if ":" in ip_text:
        family = socket.AF_INET6
    elif "." in ip_text:
        family = socket.AF_INET
    else:
        raise ControllerInputError(f"{field}: {text!r} is not an IP address")
    try:
        packed = socket.inet_pton(family, ip_text)
    except (OSError, ValueError) as e:
        raise ControllerInputError(f"{field}: {text!r} is not an IP address") from e
    return family, packed, bits


def _ip_string(family: int, packed: bytes) -> str:
    return socket.inet_ntop(family, packed)


def normalize_ip(text: object, field: str) -> tuple[int, str]:
    """An IP string (an ``/n`` suffix is accepted and dropped, as the reference does)
    as (family, ``inet_ntop`` text)."""
    if not isinstance(text, str):
        raise _bad(field, "an IP address string", text)
    family, packed, _ = _parse_inet(text, field, bits_required=False)
    return family, _ip_string(family, packed)


def normalize_cidr(text: object, field: str) -> tuple[int, str]:
    """An ``IP/bits`` route target as (family, normalized ``IP/bits``); bits ≤ 32/128
    (``netmaskBitsValid``). The address is not reduced to its network address."""
    if not isinstance(text, str):
        raise _bad(field, "an IP/bits string", text)
    family, packed, bits = _parse_inet(text, field, bits_required=True)
    assert bits is not None
    limit = 32 if family == socket.AF_INET else 128
    if bits > limit:
        raise ControllerInputError(f"{field}: {text!r}: more than {limit} bits")
    return family, f"{_ip_string(family, packed)}/{bits}"


# --- rules -----------------------------------------------------------------------------


def _check_rule(rule: object, field: str) -> JsonObject:
    """One rule, parsed by :func:`~ztone.controller.rules_json.rule_from_json` and
    re-rendered (``_parseRule`` then ``_renderRule``, as the reference stores rules:
    e.g. ``not``/``or`` appear on match rules only, integers become numbers). A rule
    the reference would drop (unknown ``type``, ``INTEGER_RANGE``...) or a field that
    cannot be read is an error here."""
    if not isinstance(rule, dict):
        raise _bad(field, "a rule object", rule)
    try:
        parsed = rule_from_json(rule)
    except ValueError as e:
        raise ControllerInputError(f"{field}: {e}") from e
    return dict(rule_to_json(parsed))


def _rules(value: object, field: str) -> list[JsonObject]:
    return [_check_rule(r, f"{field}[{i}]") for i, r in enumerate(_array(value, field))]


# --- network POST (networkUpdateFromPostData) ------------------------------------------


def _body_object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ControllerInputError(f"request body: expected a JSON object, got {_type_name(body)}")
    return body


def _v4_assign_mode(value: object) -> JsonObject:
    if isinstance(value, str):  # legacy form
        return {"zt": value == "zt"}
    if isinstance(value, dict):
        zt = value.get("zt")
        return {"zt": False if zt is None else _json_bool(zt, "v4AssignMode.zt")}
    if value is None:
        return {"zt": False}
    raise _bad("v4AssignMode", 'an object like {"zt": true}', value)


def _v6_assign_mode(value: object) -> JsonObject:
    if isinstance(value, str):  # legacy form: comma-separated mode names
        names = set(value.split(","))
        return {name: name in names for name in ("rfc4193", "zt", "6plane")}
    if isinstance(value, dict):
        # Only the keys present in the body are kept (the others read as false).
        return {
            name: _json_bool(value[name], f"v6AssignMode.{name}")
            for name in ("rfc4193", "zt", "6plane")
            if name in value
        }
    if value is None:
        return {"rfc4193": False, "zt": False, "6plane": False}
    raise _bad("v6AssignMode", 'an object like {"6plane": true}', value)


def _routes(value: object) -> list[JsonObject]:
    out: list[JsonObject] = []
    for i, rt in enumerate(_array(value, "routes")):
        field = f"routes[{i}]"
        if not isinstance(rt, dict):
            raise _bad(field, "an object", rt)
        family, target = normalize_cidr(rt.get("target"), f"{field}.target")
        via_value = rt.get("via")
        via: str | None = None
        if via_value is not None and via_value != "":
            via_family, via = normalize_ip(via_value, f"{field}.via")
            if via_family != family:
                raise ControllerInputError(
                    f"{field}.via: {via_value!r} is not of the target's address family"
                )
        out.append({"target": target, "via": via})
    return out


def _ip_assignment_pools(value: object) -> list[JsonObject]:
    out: list[JsonObject] = []
    for i, pool in enumerate(_array(value, "ipAssignmentPools")):
        field = f"ipAssignmentPools[{i}]"
        if not isinstance(pool, dict):
            raise _bad(field, "an object", pool)
        if "ipRangeStart" not in pool or "ipRangeEnd" not in pool:
            raise ControllerInputError(f"{field}: needs ipRangeStart and ipRangeEnd")
        f_family, start = normalize_ip(pool["ipRangeStart"], f"{field}.ipRangeStart")
        t_family, end = normalize_ip(pool["ipRangeEnd"], f"{field}.ipRangeEnd")
        if f_family != t_family:
            raise ControllerInputError(f"{field}: ipRangeStart and ipRangeEnd differ in family")
        out.append({"ipRangeStart": start, "ipRangeEnd": end})
    return out


def _auth_tokens(value: object) -> Any:
    if isinstance(value, dict):
        kept: JsonObject = {}
        for token, expiry in value.items():
            if isinstance(expiry, bool) or not isinstance(expiry, int | float):
                raise _bad(f"authTokens[{token!r}]", "an expiry time number", expiry)
            if not math.isfinite(expiry) or expiry < 0:
                raise ControllerInputError(f"authTokens[{token!r}]: {expiry!r} is not >= 0")
            kept[token] = expiry
        # An object with no entries is stored as null, as the reference does.
        return kept if kept else None
    if value is None or isinstance(value, list):
        return [None]  # the reference's reset value
    raise _bad("authTokens", "an object of token: expiry", value)


def _capabilities(value: object) -> list[JsonObject]:
    caps: dict[int, JsonObject] = {}
    for i, cap in enumerate(_array(value, "capabilities")):
        field = f"capabilities[{i}]"
        if not isinstance(cap, dict):
            raise _bad(field, "an object", cap)
        if "id" not in cap:
            raise ControllerInputError(f"{field}: needs an id")
        cap_id = _json_int(cap["id"], f"{field}.id", U32_MAX)
        default = cap.get("default")
        rules = cap.get("rules")
        caps[cap_id] = {
            "id": cap_id,
            "default": False if default is None else _json_bool(default, f"{field}.default"),
            "rules": [] if rules is None else _rules(rules, f"{field}.rules"),
        }
    return [caps[k] for k in sorted(caps)]


def _network_tags(value: object) -> list[JsonObject]:
    tags: dict[int, JsonObject] = {}
    for i, tag in enumerate(_array(value, "tags")):
        field = f"tags[{i}]"
        if not isinstance(tag, dict):
            raise _bad(field, "an object", tag)
        if "id" not in tag:
            raise ControllerInputError(f"{field}: needs an id")
        tag_id = _json_int(tag["id"], f"{field}.id", U32_MAX)
        default = tag.get("default")
        tags[tag_id] = {
            "id": tag_id,
            "default": None if default is None else _json_int(default, f"{field}.default", U32_MAX),
        }
    return [tags[k] for k in sorted(tags)]


def _dns(value: object) -> JsonObject | None:
    """The new ``dns`` object, or None to leave it unchanged (the reference ignores a
    non-object, so the default ``[]`` round-trips)."""
    if isinstance(value, list) or value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("dns", 'an object like {"domain": ..., "servers": [...]}', value)
    domain = value.get("domain")
    if domain is not None and not isinstance(domain, str):
        raise _bad("dns.domain", "a string", domain)
    out: JsonObject = {"domain": domain}
    servers = value.get("servers")
    if servers is not None:
        checked = _array(servers, "dns.servers")
        for i, server in enumerate(checked):
            normalize_ip(server, f"dns.servers[{i}]")
        out["servers"] = list(checked)
    return out


def apply_network_post(current: Mapping[str, Any], body: object, now_ms: int) -> JsonObject:
    """``networkUpdateFromPostData``: the record to save after a POST of ``body``.

    ``current`` is the stored network, or :func:`init_network` for a new one (its
    ``id`` names the network). Defaults are applied (:func:`network_defaults`), the
    recognized body fields set, ``id``/``nwid`` rewritten and the computed fields
    dropped. Raises :class:`ControllerInputError` (and changes nothing) on bad input.
    """
    nwid = parse_network_id(current.get("id"))
    if nwid is None:
        raise ValueError("current network has no 16-hex id")
    b = _body_object(body)
    n = network_defaults(current, now_ms)
    if "name" in b:
        n["name"] = _json_string(b["name"], "name")
    if "private" in b:
        n["private"] = _json_bool(b["private"], "private")
    if "enableBroadcast" in b:
        n["enableBroadcast"] = _json_bool(b["enableBroadcast"], "enableBroadcast")
    if "multicastLimit" in b:
        n["multicastLimit"] = _json_int(b["multicastLimit"], "multicastLimit")
    if "mtu" in b:
        n["mtu"] = max(MIN_MTU, min(MAX_MTU, _json_int(b["mtu"], "mtu")))
    if "remoteTraceTarget" in b:
        n["remoteTraceTarget"] = _remote_trace_target(b["remoteTraceTarget"], "remoteTraceTarget")
    if "remoteTraceLevel" in b:
        n["remoteTraceLevel"] = _json_int(b["remoteTraceLevel"], "remoteTraceLevel")
    if "v4AssignMode" in b:
        n["v4AssignMode"] = _v4_assign_mode(b["v4AssignMode"])
    if "v6AssignMode" in b:
        n["v6AssignMode"] = _v6_assign_mode(b["v6AssignMode"])
    if "routes" in b:
        n["routes"] = _routes(b["routes"])
    if "ipAssignmentPools" in b:
        n["ipAssignmentPools"] = _ip_assignment_pools(b["ipAssignmentPools"])
    if "rules" in b:
        n["rules"] = _rules(b["rules"], "rules")
    if "authTokens" in b:
        n["authTokens"] = _auth_tokens(b["authTokens"])
    if "capabilities" in b:
        n["capabilities"] = _capabilities(b["capabilities"])
    if "tags" in b:
        n["tags"] = _network_tags(b["tags"])
    if "dns" in b:
        dns = _dns(b["dns"])
        if dns is not None:
            n["dns"] = dns
    n["id"] = n["nwid"] = network_id_hex(nwid)
    return clean_network(n)


# --- member POST -----------------------------------------------------------------------


def _ip_assignments(value: object) -> list[str]:
    out: list[str] = []
    for i, ip in enumerate(_array(value, "ipAssignments")):
        _, text = normalize_ip(ip, f"ipAssignments[{i}]")
        out.append(text)
    return out


def _member_tags(value: object) -> list[list[int]]:
    tags: dict[int, int] = {}
    for i, pair in enumerate(_array(value, "tags")):
        field = f"tags[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise _bad(field, "an [id, value] pair", pair)
        tags[_json_int(pair[0], f"{field}[0]", U32_MAX)] = _json_int(
            pair[1], f"{field}[1]", U32_MAX
        )
    return [[k, tags[k]] for k in sorted(tags)]


def _member_capabilities(value: object) -> list[int]:
    ids = {
        _json_int(c, f"capabilities[{i}]", U32_MAX)
        for i, c in enumerate(_array(value, "capabilities"))
    }
    return sorted(ids)


def apply_member_post(current: Mapping[str, Any], body: object, now_ms: int) -> JsonObject:
    """The member POST handler: the record to save after a POST of ``body``.

    ``current`` is the stored member, or :func:`init_member` for a new one (its
    ``nwid`` and ``id`` name it). Defaults are applied (:func:`member_defaults`), the
    recognized body fields set (``authorized`` flips stamp ``lastAuthorizedTime`` or
    ``lastDeauthorizedTime`` with ``now_ms``; a new authorization records the
    credential type ``"api"``), ``id``/``address``/``nwid`` rewritten and the computed
    fields dropped. ``identity``, ``ssoExempt``, ``vMajor``... are not settable.
    Raises :class:`ControllerInputError` (and changes nothing) on bad input.
    """
    nwid = parse_network_id(current.get("nwid"))
    address = parse_address(current.get("id"))
    if nwid is None or address is None:
        raise ValueError("current member has no 16-hex nwid or 10-hex id")
    b = _body_object(body)
    m = member_defaults(current, now_ms)
    if "activeBridge" in b:
        m["activeBridge"] = _json_bool(b["activeBridge"], "activeBridge")
    if "noAutoAssignIps" in b:
        m["noAutoAssignIps"] = _json_bool(b["noAutoAssignIps"], "noAutoAssignIps")
    if "authenticationExpiryTime" in b:
        m["authenticationExpiryTime"] = _json_int(
            b["authenticationExpiryTime"], "authenticationExpiryTime"
        )
    if "name" in b:
        m["name"] = _json_string(b["name"], "name")
    if "remoteTraceTarget" in b:
        m["remoteTraceTarget"] = _remote_trace_target(b["remoteTraceTarget"], "remoteTraceTarget")
    if "remoteTraceLevel" in b:
        m["remoteTraceLevel"] = _json_int(b["remoteTraceLevel"], "remoteTraceLevel")
    if "authorized" in b:
        authorized = _json_bool(b["authorized"], "authorized")
        try:
            was = _json_bool(m.get("authorized"), "authorized")
        except ControllerInputError:
            was = False
        if authorized != was:
            m["authorized"] = authorized
            if authorized:
                m["lastAuthorizedTime"] = now_ms
                m["lastAuthorizedCredentialType"] = "api"
                m["lastAuthorizedCredential"] = None
            else:
                m["lastDeauthorizedTime"] = now_ms
    if "ipAssignments" in b:
        m["ipAssignments"] = _ip_assignments(b["ipAssignments"])
    if "tags" in b:
        m["tags"] = _member_tags(b["tags"])
    if "capabilities" in b:
        m["capabilities"] = _member_capabilities(b["capabilities"])
    m["id"] = m["address"] = address_hex(address)
    m["nwid"] = network_id_hex(nwid)
    return clean_member(m)


# --- GET answers -----------------------------------------------------------------------


def network_for_api(
    network: Mapping[str, Any], members: Iterable[Mapping[str, Any]] = (), now_ms: int = 0
) -> JsonObject:
    """The ``GET /controller/network/<nwid>`` object.

    1.14.1 answers with the stored record as it is: no computed fields (no
    ``clock``, member counts...; the recorded lab answers have none). ``members``
    and ``now_ms`` are accepted for callers that compute extra fields; unused.
    """
    return copy.deepcopy(dict(network))


def member_for_api(member: Mapping[str, Any], now_ms: int = 0) -> JsonObject:
    """The ``GET .../member/<addr>`` object: the stored record as it is (1.14.1)."""
    return copy.deepcopy(dict(member))


def is_authorized(member: Mapping[str, Any]) -> bool:
    """``jsonBool(member["authorized"], false)``."""
    try:
        return _json_bool(member.get("authorized", False), "authorized")
    except ControllerInputError:
        return False


def member_revisions(members: Iterable[Mapping[str, Any]]) -> JsonObject:
    """``GET .../member``: ``{<10-hex id>: revision}`` for members with a 10-char id."""
    out: JsonObject = {}
    for m in members:
        member_id = m.get("id")
        if isinstance(member_id, str) and len(member_id) == 10:
            try:
                out[member_id] = _json_int(m.get("revision", 0), "revision")
            except ControllerInputError:
                out[member_id] = 0
    return out


def unstable_network_entry(
    network: Mapping[str, Any], members: Iterable[Mapping[str, Any]]
) -> JsonObject:
    """One ``data`` entry of ``GET /unstable/controller/network``: the network with
    ``meta: {totalMemberCount, authorizedMemberCount}``."""
    listed = list(members)
    out = copy.deepcopy(dict(network))
    out["meta"] = {
        "totalMemberCount": len(listed),
        "authorizedMemberCount": sum(1 for m in listed if is_authorized(m)),
    }
    return out


def unstable_member_list(members: Iterable[Mapping[str, Any]]) -> JsonObject:
    """``GET /unstable/controller/network/<nwid>/member``."""
    listed = [copy.deepcopy(dict(m)) for m in members]
    return {
        "data": listed,
        "meta": {
            "totalCount": len(listed),
            "authorizedCount": sum(1 for m in listed if is_authorized(m)),
        },
    }
