"""The controller API's POST bodies as pydantic models (B.7 network, B.8 member).

:class:`NetworkBody` and :class:`MemberBody` declare every field a POST may set,
with the JSON types zerotier-one 1.14.1 accepts for it (:mod:`.lenient`) and the
normalization it applies (routes and IPs re-written with ``inet_ntop``, rules
re-rendered, tags and capabilities sorted and de-duplicated by id, ``mtu``
clamped, the legacy string forms of ``v4AssignMode``/``v6AssignMode``). Keys a
body may not set (``id``, ``revision``, ``identity``...) and unknown keys are
ignored, as the reference ignores them.

:meth:`_Body.read` validates a decoded JSON body; :meth:`_Body.changes` gives the
JSON values of the fields the body carried, ready to set on the stored record.
Where the reference would silently use a default, drop an entry or answer 500, a
body is refused with :class:`ControllerInputError` naming the field, the value and
what was expected, e.g. ``routes[1].via: 'fd00::1' is not of the target's address
family``; values that GET returns are always accepted back (``"dns": []``,
``"authTokens": [null]``, ``"remoteTraceTarget": null``...).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_serializer,
    model_validator,
)

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
from ztone.util.schema import FieldProblem, problems

MIN_MTU = 1280
MAX_MTU = 10000


class ControllerInputError(ValueError):
    """A POST body (or one of its fields) the controller does not accept.

    The API answers ``400 {"error": <message>}`` and nothing is changed.
    """


T = TypeVar("T")
Array = Annotated[list[T], Field(max_length=MAX_ARRAY_SIZE)]
"""A JSON array of at most ``ZT_CONTROLLER_MAX_ARRAY_SIZE`` entries."""


_PART = ConfigDict(extra="ignore", frozen=True)


# --- network parts ----------------------------------------------------------------------


class V4AssignMode(BaseModel):
    """``{"zt": bool}``; the legacy string ``"zt"`` means ``{"zt": true}``, any other
    string or null ``{"zt": false}``."""

    model_config = _PART
    zt: JsonBool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy_forms(cls, value: object) -> object:
        if isinstance(value, str):
            return {"zt": value == "zt"}
        if value is None:
            return {}
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if not (k == "zt" and v is None)}
        raise expected('an object like {"zt": true}', value)


class V6AssignMode(BaseModel):
    """Only the modes present in the body are kept (the others read as false); the
    legacy form is a comma-separated string of mode names; null is all false."""

    model_config = _PART
    rfc4193: JsonBool = False
    zt: JsonBool = False
    sixplane: JsonBool = Field(default=False, alias="6plane")

    @model_validator(mode="before")
    @classmethod
    def _legacy_forms(cls, value: object) -> object:
        if isinstance(value, str):
            names = set(value.split(","))
            return {name: name in names for name in ("rfc4193", "zt", "6plane")}
        if value is None:
            return {"rfc4193": False, "zt": False, "6plane": False}
        if isinstance(value, dict):
            return value
        raise expected('an object like {"6plane": true}', value)

    @model_serializer
    def _given_modes(self) -> dict[str, bool]:
        fields = type(self).model_fields
        return {
            fields[name].alias or name: getattr(self, name)
            for name in fields
            if name in self.model_fields_set
        }


class RouteBody(BaseModel):
    """``{"target": "IP/bits", "via": "IP" | null}``; ``via`` must be of the target's family."""

    model_config = _PART
    target: CidrText
    via: OptionalIpText = None

    @model_validator(mode="after")
    def _same_family(self) -> Self:
        if self.via is not None and is_ipv6_text(self.via) != is_ipv6_text(self.target):
            raise FieldProblem(f"{self.via!r} is not of the target's address family", at=("via",))
        return self

    @model_serializer
    def _json(self) -> dict[str, str | None]:
        return {"target": self.target, "via": self.via}


class PoolBody(BaseModel):
    """``{"ipRangeStart": "IP", "ipRangeEnd": "IP"}`` of one family."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=False)
    start: IpText = Field(alias="ipRangeStart")
    end: IpText = Field(alias="ipRangeEnd")

    @model_validator(mode="after")
    def _same_family(self) -> Self:
        if is_ipv6_text(self.start) != is_ipv6_text(self.end):
            raise FieldProblem("ipRangeStart and ipRangeEnd differ in family")
        return self

    @model_serializer
    def _json(self) -> dict[str, str]:
        return {"ipRangeStart": self.start, "ipRangeEnd": self.end}


def _null_is(default: object) -> BeforeValidator:
    return BeforeValidator(lambda v: default if v is None else v)


class CapabilityBody(BaseModel):
    """``{"id": u32, "default": bool, "rules": [...]}``."""

    model_config = _PART
    id: U32
    default: Annotated[JsonBool, _null_is(False)] = False
    rules: Annotated[Array[RuleJson], _null_is([])] = Field(default_factory=list)

    @model_serializer
    def _json(self) -> dict[str, Any]:
        return {"id": self.id, "default": self.default, "rules": self.rules}


class TagBody(BaseModel):
    """``{"id": u32, "default": u32 | null}``."""

    model_config = _PART
    id: U32
    default: OptionalU32 = None

    @model_serializer
    def _json(self) -> dict[str, int | None]:
        return {"id": self.id, "default": self.default}


def _str_or_null(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise expected("a string", value)
    return value


def _servers(value: object) -> list[Any] | None:
    """Null, or an array of IP address strings, kept as given."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise expected("an array", value)
    if len(value) > MAX_ARRAY_SIZE:
        raise FieldProblem(f"more than {MAX_ARRAY_SIZE} entries")
    for i, server in enumerate(value):
        try:
            ip_text(server)
        except FieldProblem as e:
            raise FieldProblem(str(e), at=(i,)) from None
    return list(value)


class DnsBody(BaseModel):
    """``{"domain": str, "servers": [IP...]}``: stored as given once the servers are
    checked to be IP addresses (``servers`` absent stays absent)."""

    model_config = _PART
    domain: Annotated[str | None, PlainValidator(_str_or_null)] = None
    servers: Annotated[list[Any] | None, PlainValidator(_servers)] = None

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: object) -> object:
        if not isinstance(value, dict):
            raise expected('an object like {"domain": ..., "servers": [...]}', value)
        return value

    @model_serializer
    def _json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"domain": self.domain}
        if self.servers is not None:
            out["servers"] = self.servers
        return out


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
    if not isinstance(value, list) or len(value) != 2:
        raise expected("an [id, value] pair", value)
    return value


def _pairs_by_id(pairs: list[list[int]]) -> list[list[int]]:
    return [[k, v] for k, v in sorted({p[0]: p[1] for p in pairs}.items())]


def _sorted_ids(ids: list[int]) -> list[int]:
    return sorted(set(ids))


# --- bodies -----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=False)

    @classmethod
    def read(cls, body: object) -> Self:
        """Validate a decoded JSON body; :class:`ControllerInputError` naming every
        bad field (``; ``-separated) if it is not acceptable."""
        if not isinstance(body, dict):
            raise ControllerInputError(
                f"request body: expected a JSON object, got {type_name(body)}"
            )
        try:
            return cls.model_validate(body)
        except ValidationError as e:
            found = problems(e)
            raise ControllerInputError(
                "; ".join(f"{path}: {reason}" if path else reason for path, reason in found)
            ) from None

    def changes(self) -> dict[str, Any]:
        """``{json key: json value}`` for every field the body carried."""
        return self.model_dump(by_alias=True, include=set(self.model_fields_set))


class NetworkBody(_Body):
    """What a network POST may set (``networkUpdateFromPostData``)."""

    name: JsonStr = ""
    private: JsonBool = True
    enable_broadcast: JsonBool = Field(default=True, alias="enableBroadcast")
    multicast_limit: U64 = Field(default=32, alias="multicastLimit")
    mtu: Annotated[U64, AfterValidator(_clamp_mtu)] = 2800
    remote_trace_target: TraceTarget = Field(default=None, alias="remoteTraceTarget")
    remote_trace_level: U64 = Field(default=0, alias="remoteTraceLevel")
    v4_assign_mode: V4AssignMode = Field(default_factory=V4AssignMode, alias="v4AssignMode")
    v6_assign_mode: V6AssignMode = Field(default_factory=V6AssignMode, alias="v6AssignMode")
    routes: Array[RouteBody] = Field(default_factory=list)
    ip_assignment_pools: Array[PoolBody] = Field(default_factory=list, alias="ipAssignmentPools")
    rules: Array[RuleJson] = Field(default_factory=list)
    auth_tokens: Annotated[Any, PlainValidator(_auth_tokens)] = Field(
        default=None, alias="authTokens"
    )
    capabilities: Annotated[Array[CapabilityBody], AfterValidator(_by_id)] = Field(
        default_factory=list, alias="capabilities"
    )
    tags: Annotated[Array[TagBody], AfterValidator(_by_id)] = Field(
        default_factory=list, alias="tags"
    )
    dns: DnsBody = Field(default_factory=DnsBody)

    @model_validator(mode="before")
    @classmethod
    def _dns_not_an_object_is_left(cls, value: object) -> object:
        # The reference ignores a "dns" that is not an object, so the default []
        # round-trips: null or an array leaves the stored value as it is.
        if isinstance(value, dict) and "dns" in value:
            dns = value["dns"]
            if dns is None or isinstance(dns, list):
                return {k: v for k, v in value.items() if k != "dns"}
        return value


class MemberBody(_Body):
    """What a member POST may set (``authorized`` is returned as a value; stamping
    the authorization times is the caller's, see ``apply_member_post``)."""

    authorized: JsonBool = False
    active_bridge: JsonBool = Field(default=False, alias="activeBridge")
    no_auto_assign_ips: JsonBool = Field(default=False, alias="noAutoAssignIps")
    authentication_expiry_time: U64 = Field(default=0, alias="authenticationExpiryTime")
    name: JsonStr = ""
    remote_trace_target: TraceTarget = Field(default=None, alias="remoteTraceTarget")
    remote_trace_level: U64 = Field(default=0, alias="remoteTraceLevel")
    ip_assignments: Array[IpText] = Field(default_factory=list, alias="ipAssignments")
    tags: Annotated[
        Array[Annotated[list[U32], BeforeValidator(_pair)]],
        AfterValidator(_pairs_by_id),
    ] = Field(default_factory=list)
    capabilities: Annotated[Array[U32], AfterValidator(_sorted_ids)] = Field(default_factory=list)
