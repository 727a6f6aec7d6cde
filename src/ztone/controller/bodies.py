"""The controller API's POST bodies as msgspec records (B.7 network, B.8 member).

:class:`NetworkBody` and :class:`MemberBody` declare every field a POST may set,
with the JSON types zerotier-one 1.14.1 accepts for it (:mod:`.lenient`) and the
normalization it applies (routes and IPs re-written with ``inet_ntop``, rules
re-rendered, tags and capabilities sorted and de-duplicated by id, ``mtu``
clamped, the legacy string forms of ``v4AssignMode``/``v6AssignMode``, turned into
their object form by a ``before`` marker so that every problem inside is named). Keys a
body may not set (``id``, ``revision``, ``identity``...) and unknown keys are
ignored, as the reference ignores them.

:meth:`_Body.read` checks a decoded JSON body with :func:`ztone.util.schema.validate`
(every problem, not only the first); :meth:`_Body.changes` gives the JSON values of
the fields the body carried, ready to set on the stored record: a field the body did
not carry keeps the default ``msgspec.UNSET``, which ``msgspec.to_builtins`` leaves
out (in the parts too: a ``v6AssignMode`` keeps only the modes given).
Where the reference would silently use a default, drop an entry or answer 500, a
body is refused with :class:`ControllerInputError` naming the field, the value and
what was expected, e.g. ``routes[1].via: 'fd00::1' is not of the target's address
family``; values that GET returns are always accepted back (``"dns": []``,
``"authTokens": [null]``, ``"remoteTraceTarget": null``...).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Self, TypeVar

import msgspec
from msgspec import UNSET

from ztone.controller.lenient import (
    U32,
    U64,
    CidrText,
    IpText,
    JsonBool,
    JsonStr,
    OptionalIpText,
    OptionalU32,
    RuleJson,
    TraceTarget,
    expected,
    ip_text,
    is_ipv6_text,
    type_name,
)
from ztone.controller.rules_json import MAX_ARRAY_SIZE
from ztone.util.schema import FieldProblem, Invalid, before, parse_with, problems, then, validate

MIN_MTU = 1280
MAX_MTU = 10000


class ControllerInputError(ValueError):
    """A POST body (or one of its fields) the controller does not accept.

    The API answers ``400 {"error": <message>}`` and nothing is changed.
    """


T = TypeVar("T")
Array = Annotated[list[T], msgspec.Meta(max_length=MAX_ARRAY_SIZE)]
"""A JSON array of at most ``ZT_CONTROLLER_MAX_ARRAY_SIZE`` entries."""


def _absent(name: str | None = None) -> Any:
    """The default of a field a body may leave out: ``UNSET`` (the body did not carry
    it; :meth:`_Body.changes` leaves it out). Typed ``Any`` so that the field keeps its
    declared type, which is what it holds whenever the body carried it."""
    return msgspec.field(default=UNSET, name=name)


# --- network parts ----------------------------------------------------------------------


class V4AssignMode(msgspec.Struct, frozen=True):
    """``{"zt": bool}``; the legacy string ``"zt"`` means ``{"zt": true}``, any other
    string or null ``{"zt": false}``."""

    zt: JsonBool = False


def _v4_forms(value: object) -> object:
    if isinstance(value, str):
        return {"zt": value == "zt"}
    if value is None:
        return {}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not (k == "zt" and v is None)}
    raise expected('an object like {"zt": true}', value)


class V6AssignMode(msgspec.Struct, frozen=True):
    """Only the modes present in the body are kept (the others read as false); the
    legacy form is a comma-separated string of mode names; null is all false."""

    rfc4193: JsonBool = _absent()
    zt: JsonBool = _absent()
    sixplane: JsonBool = _absent("6plane")


def _v6_forms(value: object) -> object:
    if isinstance(value, str):
        names = set(value.split(","))
        return {name: name in names for name in ("rfc4193", "zt", "6plane")}
    if value is None:
        return {"rfc4193": False, "zt": False, "6plane": False}
    if isinstance(value, dict):
        return value
    raise expected('an object like {"6plane": true}', value)


class RouteBody(msgspec.Struct, frozen=True):
    """``{"target": "IP/bits", "via": "IP" | null}``; ``via`` must be of the target's family."""

    target: CidrText
    via: OptionalIpText = None

    def __post_init__(self) -> None:
        if self.via is not None and is_ipv6_text(self.via) != is_ipv6_text(self.target):
            raise FieldProblem(f"{self.via!r} is not of the target's address family", at=("via",))


class PoolBody(msgspec.Struct, frozen=True):
    """``{"ipRangeStart": "IP", "ipRangeEnd": "IP"}`` of one family."""

    start: IpText = msgspec.field(name="ipRangeStart")
    end: IpText = msgspec.field(name="ipRangeEnd")

    def __post_init__(self) -> None:
        if is_ipv6_text(self.start) != is_ipv6_text(self.end):
            raise FieldProblem("ipRangeStart and ipRangeEnd differ in family")


class CapabilityBody(msgspec.Struct, frozen=True):
    """``{"id": u32, "default": bool, "rules": [...]}`` (null ``default``/``rules``:
    false/``[]``)."""

    id: U32
    default: JsonBool | None = False
    rules: Array[RuleJson] | None = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        # The struct is frozen; a null read as its default is set once, here.
        if self.default is None:
            msgspec.structs.force_setattr(self, "default", False)
        if self.rules is None:
            msgspec.structs.force_setattr(self, "rules", [])


class TagBody(msgspec.Struct, frozen=True):
    """``{"id": u32, "default": u32 | null}``."""

    id: U32
    default: OptionalU32 = None


def _str_or_null(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise expected("a string", value)
    return value


def _server_list(value: object) -> object:
    """An array (each entry then read by :func:`_server`) or null."""
    if value is not None and not isinstance(value, list):
        raise expected("an array", value)
    return value


def _server(value: object) -> object:
    """An IP address string, kept as given (not normalized)."""
    ip_text(value)
    return value


def _null_is_absent(servers: list[Any] | None) -> list[Any] | msgspec.UnsetType:
    return UNSET if servers is None else servers


class DnsBody(msgspec.Struct, frozen=True):
    """``{"domain": str, "servers": [IP...]}``: stored as given once the servers are
    checked to be IP addresses (``servers`` absent or null stays absent)."""

    domain: Annotated[str | None, parse_with(_str_or_null)] = None
    servers: Annotated[
        Array[Annotated[Any, parse_with(_server)]] | None,
        before(_server_list),
        then(_null_is_absent),
    ] = _absent()


def _dns_forms(value: object) -> object:
    if not isinstance(value, dict):
        raise expected('an object like {"domain": ..., "servers": [...]}', value)
    return value


def _auth_tokens(value: object) -> Any:
    """An object keeps its ``token: expiry`` entries (expiry a number ≥ 0; no entries
    is stored as null, as the reference does); null or an array resets to ``[null]``."""
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for token, expiry in value.items():
            if isinstance(expiry, bool) or not isinstance(expiry, int | float):
                raise FieldProblem(
                    f"expected an expiry time number, got {type_name(expiry)}", at=(token,)
                )
            if not math.isfinite(expiry) or expiry < 0:
                raise FieldProblem(f"{expiry!r} is not >= 0", at=(token,))
            kept[token] = expiry
        return kept if kept else None
    if value is None or isinstance(value, list):
        return [None]
    raise expected("an object of token: expiry", value)


def _by_id(items: list[Any]) -> list[Any]:
    """Sorted by ``id``; of entries with the same id the last wins."""
    return [v for _, v in sorted({item.id: item for item in items}.items())]


def _clamp_mtu(mtu: int) -> int:
    return max(MIN_MTU, min(MAX_MTU, mtu))


# --- member parts -----------------------------------------------------------------------


def _pair(value: object) -> object:
    """``[id, value]``: two entries (each then read as :data:`U32`)."""
    if not isinstance(value, list) or len(value) != 2:
        raise expected("an [id, value] pair", value)
    return value


def _pairs_by_id(pairs: list[list[int]]) -> list[list[int]]:
    return [[k, v] for k, v in sorted({p[0]: p[1] for p in pairs}.items())]


def _sorted_ids(ids: list[int]) -> list[int]:
    return sorted(set(ids))


# --- bodies -----------------------------------------------------------------------------


class _Body(msgspec.Struct, frozen=True, rename="camel"):
    @classmethod
    def prepare(cls, body: dict[str, Any]) -> dict[str, Any]:
        """The body as checked (a subclass may drop what the reference ignores)."""
        return body

    @classmethod
    def read(cls, body: object) -> Self:
        """Check a decoded JSON body; :class:`ControllerInputError` naming every
        bad field (``; ``-separated) if it is not acceptable."""
        if not isinstance(body, dict):
            raise ControllerInputError(
                f"request body: expected a JSON object, got {type_name(body)}"
            )
        try:
            return validate(cls.prepare(body), cls)
        except Invalid as e:
            raise ControllerInputError(
                "; ".join(f"{path}: {reason}" if path else reason for path, reason in problems(e))
            ) from None

    def changes(self) -> dict[str, Any]:
        """``{json key: json value}`` for every field the body carried."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class NetworkBody(_Body, frozen=True):
    """What a network POST may set (``networkUpdateFromPostData``)."""

    name: JsonStr = _absent()
    private: JsonBool = _absent()
    enable_broadcast: JsonBool = _absent()
    multicast_limit: U64 = _absent()
    mtu: Annotated[U64, then(_clamp_mtu)] = _absent()
    remote_trace_target: TraceTarget = _absent()
    remote_trace_level: U64 = _absent()
    v4_assign_mode: Annotated[V4AssignMode, before(_v4_forms)] = _absent()
    v6_assign_mode: Annotated[V6AssignMode, before(_v6_forms)] = _absent()
    routes: Array[RouteBody] = _absent()
    ip_assignment_pools: Array[PoolBody] = _absent()
    rules: Array[RuleJson] = _absent()
    auth_tokens: Annotated[Any, parse_with(_auth_tokens)] = _absent()
    capabilities: Annotated[Array[CapabilityBody], then(_by_id)] = _absent()
    tags: Annotated[Array[TagBody], then(_by_id)] = _absent()
    dns: Annotated[DnsBody, before(_dns_forms)] = _absent()

    @classmethod
    def prepare(cls, body: dict[str, Any]) -> dict[str, Any]:
        # The reference ignores a "dns" that is not an object, so the default []
        # round-trips: null or an array leaves the stored value as it is.
        dns = body.get("dns", {})
        if dns is None or isinstance(dns, list):
            return {k: v for k, v in body.items() if k != "dns"}
        return body


class MemberBody(_Body, frozen=True):
    """What a member POST may set (``authorized`` is returned as a value; stamping
    the authorization times is the caller's, see ``apply_member_post``)."""

    authorized: JsonBool = _absent()
    active_bridge: JsonBool = _absent()
    no_auto_assign_ips: JsonBool = _absent()
    authentication_expiry_time: U64 = _absent()
    name: JsonStr = _absent()
    remote_trace_target: TraceTarget = _absent()
    remote_trace_level: U64 = _absent()
    ip_assignments: Array[IpText] = _absent()
    tags: Annotated[Array[Annotated[list[U32], before(_pair)]], then(_pairs_by_id)] = _absent()
    capabilities: Annotated[Array[U32], then(_sorted_ids)] = _absent()
