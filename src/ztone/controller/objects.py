"""The controller's network and member records: defaults, POST semantics, revisions.

No I/O, no clock (``now_ms`` is an argument), no randomness.
PROTOCOL-NETWORK-SERVICE B.7 (network object), B.8 (member object), B.5 (revisions).

A record is the JSON object the store keeps and GET returns. :class:`NetworkRecord`
and :class:`MemberRecord` declare its keys and the defaults of zerotier-one 1.14.1
(``DB::initNetwork``, ``DB::initMember``); a record keeps whatever else it holds
(unknown keys, and values of a record imported from a reference ``controller.d``
exactly as they were: upstream never re-validates what it stored, so neither do
the record models; what a POST sets is validated by :mod:`ztone.controller.bodies`).
Two quirks of the reference are kept on purpose because stored records and API
answers must look the same:

* the default ``authTokens`` is the JSON array ``[null]``;
* ``remoteTraceLevel`` is reset to 0 whenever defaults are applied to a record (the
  reference tests for a misspelled key), so every POST that does not carry
  ``remoteTraceLevel`` sets it back to 0.

A POST (:func:`apply_network_post`, :func:`apply_member_post`) reads its body with
:class:`~ztone.controller.bodies.NetworkBody` / :class:`~ztone.controller.bodies.MemberBody`
and sets the fields the body carried on the record with its defaults applied. A body
the controller does not accept raises :class:`ControllerInputError` naming the field,
and nothing is changed. Rules (network ``rules`` and capability rules) are parsed and
re-rendered by :mod:`ztone.controller.rules_json` as the reference does, so a POSTed
rule is stored in its canonical form (the default ``ACTION_ACCEPT`` literal, which
carries ``not``/``or``, comes back without them once POSTed).

Revisions (B.5) are not touched by the POST functions: :func:`revise` is what a
store applies when it saves a record (``revision + 1`` if anything other than
``revision`` changed, else nothing is written).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import msgspec

from ztone.controller.bodies import MemberBody, NetworkBody
from ztone.controller.lenient import json_bool, json_int
from ztone.util.ctext import U64_MAX

JsonObject = dict[str, Any]

DEFAULT_MTU = 2800
DEFAULT_MULTICAST_LIMIT = 32

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

DEFAULT_RULES: list[Any] = [{"not": False, "or": False, "type": "ACTION_ACCEPT"}]

_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_HEX10 = re.compile(r"[0-9a-fA-F]{10}")


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


# --- records and their defaults ---------------------------------------------------------


class _Record(msgspec.Struct):
    """A stored record's declared keys (JSON spellings by ``rename``) and defaults;
    ``OBJTYPE`` is what ``objtype`` is always set to.

    Every field is ``Any``: a record's values are kept exactly as they are (JSON
    values, not re-typed), and keys a record holds beyond the declared ones are kept
    too (:meth:`with_defaults` copies them after the declared keys)."""

    OBJTYPE: ClassVar[str]

    @classmethod
    def with_defaults(cls, record: Mapping[str, Any], now_ms: int) -> JsonObject:
        """A deep copy of ``record`` with every missing key set to its default
        (``creationTime`` to ``now_ms``), ``objtype`` reset and ``remoteTraceLevel``
        reset to 0 (quirk: the reference checks ``removeTraceLevel``).

        The declared keys come first, in declaration order, then the record's other
        keys in the record's order."""
        # convert() takes the declared keys (values as they are, unknown keys
        # skipped); to_builtins() rebuilds every container, so nothing is shared
        # with ``record`` or with the defaults.
        out: JsonObject = msgspec.to_builtins(msgspec.convert(dict(record), cls))
        extra = {key: value for key, value in record.items() if key not in out}
        if extra:
            out.update(msgspec.to_builtins(extra))
        if "creationTime" not in record:
            out["creationTime"] = now_ms
        out["objtype"] = cls.OBJTYPE
        out["remoteTraceLevel"] = 0
        return out


def _fresh(value: Callable[[], Any]) -> Any:
    """A default built anew for every record (a list or object default)."""
    return msgspec.field(default_factory=value)


class NetworkRecord(_Record, rename="camel"):
    """A network's keys and defaults (``DB::initNetwork``, B.7)."""

    OBJTYPE: ClassVar[str] = "network"

    private: Any = True
    creation_time: Any = None  # missing: now_ms
    name: Any = ""
    multicast_limit: Any = DEFAULT_MULTICAST_LIMIT
    enable_broadcast: Any = True
    v4_assign_mode: Any = _fresh(lambda: {"zt": False})
    v6_assign_mode: Any = _fresh(lambda: {"rfc4193": False, "zt": False, "6plane": False})
    auth_tokens: Any = _fresh(lambda: [None])
    capabilities: Any = _fresh(list)
    tags: Any = _fresh(list)
    routes: Any = _fresh(list)
    ip_assignment_pools: Any = _fresh(list)
    mtu: Any = DEFAULT_MTU
    remote_trace_target: Any = None
    remote_trace_level: Any = 0
    rules_source: Any = ""
    rules: Any = _fresh(lambda: copy.deepcopy(DEFAULT_RULES))
    dns: Any = _fresh(list)
    sso_enabled: Any = False
    client_id: Any = ""
    authorization_endpoint: Any = ""
    objtype: Any = "network"


class MemberRecord(_Record, rename="camel"):
    """A member's keys and defaults (``DB::initMember``, B.8)."""

    OBJTYPE: ClassVar[str] = "member"

    authorized: Any = False
    sso_exempt: Any = False
    ip_assignments: Any = _fresh(list)
    active_bridge: Any = False
    tags: Any = _fresh(list)
    capabilities: Any = _fresh(list)
    creation_time: Any = None  # missing: now_ms
    no_auto_assign_ips: Any = False
    revision: Any = 0
    last_deauthorized_time: Any = 0
    last_authorized_time: Any = 0
    last_authorized_credential_type: Any = None
    last_authorized_credential: Any = None
    authentication_expiry_time: Any = 0
    v_major: Any = -1
    v_minor: Any = -1
    v_rev: Any = -1
    v_proto: Any = -1
    remote_trace_target: Any = None
    remote_trace_level: Any = 0
    objtype: Any = "member"


def network_defaults(network: Mapping[str, Any], now_ms: int) -> JsonObject:
    """``DB::initNetwork``: a copy of ``network`` with every missing key defaulted,
    ``objtype`` reset to ``"network"`` and ``remoteTraceLevel`` reset to 0 (quirk)."""
    return NetworkRecord.with_defaults(network, now_ms)


def member_defaults(member: Mapping[str, Any], now_ms: int) -> JsonObject:
    """``DB::initMember``: a copy of ``member`` with every missing key defaulted,
    ``objtype`` reset to ``"member"`` and ``remoteTraceLevel`` reset to 0 (quirk)."""
    return MemberRecord.with_defaults(member, now_ms)


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
        return json_int(U64_MAX)(record.get("revision", 0))
    except ValueError:
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


# --- network POST (networkUpdateFromPostData) ------------------------------------------


def apply_network_post(current: Mapping[str, Any], body: object, now_ms: int) -> JsonObject:
    """``networkUpdateFromPostData``: the record to save after a POST of ``body``.

    ``current`` is the stored network, or :func:`init_network` for a new one (its
    ``id`` names the network). Defaults are applied (:func:`network_defaults`), the
    fields the body carried set (:class:`~ztone.controller.bodies.NetworkBody`),
    ``id``/``nwid`` rewritten and the computed fields dropped. Raises
    :class:`ControllerInputError` (and changes nothing) on bad input.
    """
    nwid = parse_network_id(current.get("id"))
    if nwid is None:
        raise ValueError("current network has no 16-hex id")
    changes = NetworkBody.read(body).changes()
    n = network_defaults(current, now_ms)
    n.update(changes)
    n["id"] = n["nwid"] = network_id_hex(nwid)
    return clean_network(n)


def apply_member_post(current: Mapping[str, Any], body: object, now_ms: int) -> JsonObject:
    """The member POST handler: the record to save after a POST of ``body``.

    ``current`` is the stored member, or :func:`init_member` for a new one (its
    ``nwid`` and ``id`` name it). Defaults are applied (:func:`member_defaults`), the
    fields the body carried set (:class:`~ztone.controller.bodies.MemberBody`);
    an ``authorized`` flip stamps ``lastAuthorizedTime`` or ``lastDeauthorizedTime``
    with ``now_ms``, and a new authorization records the credential type ``"api"``.
    ``id``/``address``/``nwid`` are rewritten and the computed fields dropped.
    ``identity``, ``ssoExempt``, ``vMajor``... are not settable.
    Raises :class:`ControllerInputError` (and changes nothing) on bad input.
    """
    nwid = parse_network_id(current.get("nwid"))
    address = parse_address(current.get("id"))
    if nwid is None or address is None:
        raise ValueError("current member has no 16-hex nwid or 10-hex id")
    changes = MemberBody.read(body).changes()
    m = member_defaults(current, now_ms)
    authorized = changes.pop("authorized", None)
    m.update(changes)
    if authorized is not None and authorized != is_authorized(m):
        m["authorized"] = authorized
        if authorized:
            m["lastAuthorizedTime"] = now_ms
            m["lastAuthorizedCredentialType"] = "api"
            m["lastAuthorizedCredential"] = None
        else:
            m["lastDeauthorizedTime"] = now_ms
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
        return json_bool(member.get("authorized", False))
    except ValueError:
        return False


def member_revisions(members: Iterable[Mapping[str, Any]]) -> JsonObject:
    """``GET .../member``: ``{<10-hex id>: revision}`` for members with a 10-char id."""
    out: JsonObject = {}
    for m in members:
        member_id = m.get("id")
        if isinstance(member_id, str) and len(member_id) == 10:
            try:
                out[member_id] = json_int(U64_MAX)(m.get("revision", 0))
            except ValueError:
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
