"""zerotier-one's lenient JSON readers as annotated types (B.7, B.8, B.9).

The reference controller reads POSTed values with ``OSUtils::jsonBool``,
``jsonInt`` and ``jsonString``, which accept more than one JSON type. The types here
accept exactly what those accept, and refuse with a :class:`~ztone.util.schema.FieldProblem`
where the reference would silently fall back to a default:

=================  ============================================================  ======
type               accepts                                                       gives
=================  ============================================================  ======
:data:`JsonBool`   a boolean; a number (non-zero after truncation is true); a    bool
                   string starting ``t``/``T``/``1`` (true) or ``f``/``F``/``0``
                   or empty (false)
:data:`U64`,       a number (an integral float too), a decimal string (``+`` and int
:data:`U32`        surrounding blanks allowed), a boolean (0/1); within 0..max
:data:`JsonStr`    a string; an integer (its unsigned 64-bit decimal); a         str
                   boolean (``1``/``0``)
:data:`TraceTarget`  null or anything :data:`JsonStr` reads; kept only if 10     str or
                   characters long, else null                                    None
:data:`IpText`     an ``IP`` or ``IP/n`` string (``/n`` dropped), normalized     str
                   with ``inet_ntop`` (IPv6 compressed)
:data:`CidrText`   an ``IP/bits`` string, bits at most 32/128, normalized; the   str
                   address is not reduced to its network
:data:`RuleJson`   one rule object, parsed and re-rendered by                    dict
                   :mod:`ztone.controller.rules_json` (the stored canonical form)
=================  ============================================================  ======

Each type is ``Annotated[<what it gives>, parse_with(<reader>)]``: the reader, not
msgspec, reads the JSON value when :func:`ztone.util.schema.validate` checks a body
(:mod:`ztone.controller.bodies`). Reasons name the value and what was expected, e.g.
``'lots' is not a decimal integer`` or ``expected a boolean, got an array``; the
validation adds the key path.
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from ztone.controller.rules_json import rule_from_json, rule_to_json
from ztone.util.ctext import U64_MAX
from ztone.util.schema import FieldProblem, parse_with

U32_MAX = 0xFFFFFFFF

T = TypeVar("T")

_DECIMAL = re.compile(r"\+?[0-9]+")


def type_name(value: object) -> str:
    """``a boolean``, ``a number``, ``an array``... for error messages."""
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


def expected(what: str, value: object) -> FieldProblem:
    """``expected <what>, got <the JSON type of value>``."""
    return FieldProblem(f"expected {what}, got {type_name(value)}")


def json_bool(value: object) -> bool:
    """``OSUtils::jsonBool``, refusing what it would turn into the default."""
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
        raise FieldProblem(f"{value!r} is not a boolean")
    raise expected("a boolean", value)


def json_int(maximum: int) -> Callable[[object], int]:
    """``OSUtils::jsonInt`` within ``0 .. maximum``."""

    def read(value: object) -> int:
        result: int
        if isinstance(value, bool):
            result = int(value)
        elif isinstance(value, int):
            result = value
        elif isinstance(value, float):
            if not math.isfinite(value) or value != math.floor(value):
                raise FieldProblem(f"{value!r} is not an integer")
            result = int(value)
        elif isinstance(value, str):
            text = value.strip()
            if not _DECIMAL.fullmatch(text):
                raise FieldProblem(f"{value!r} is not a decimal integer")
            result = int(text)
        else:
            raise expected("an integer", value)
        if not 0 <= result <= maximum:
            raise FieldProblem(f"{result} is out of range (0..{maximum})")
        return result

    return read


def json_string(value: object) -> str:
    """``OSUtils::jsonString``: a string; an integer as unsigned decimal; a boolean as 1/0."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value & U64_MAX)
    raise expected("a string", value)


def trace_target(value: object) -> str | None:
    """A 10-character string is kept; anything else (incl. null) becomes null."""
    if value is None:
        return None
    text = json_string(value)
    return text if len(text) == 10 else None


def _parse_inet(text: str, *, bits_required: bool) -> tuple[int, bytes, int | None]:
    """``IP`` or ``IP/n`` as ``InetAddress::fromString`` reads it (a ``:`` means IPv6,
    else a ``.`` means IPv4): (family, packed address, n or None).

    Unlike the reference, an address ``inet_pton`` rejects is an error, not 0.0.0.0."""
    ip_text, slash, suffix = text.partition("/")
    bits: int | None = None
    if slash:
        if not suffix.isascii() or not suffix.isdigit():
            raise FieldProblem(f"{text!r}: bad /bits part")
        bits = int(suffix)
    elif bits_required:
        raise FieldProblem(f"{text!r} is not of the form IP/bits")
    if ":" in ip_text:
        family = socket.AF_INET6
    elif "." in ip_text:
        family = socket.AF_INET
    else:
        raise FieldProblem(f"{text!r} is not an IP address")
    try:
        packed = socket.inet_pton(family, ip_text)
    except (OSError, ValueError):
        raise FieldProblem(f"{text!r} is not an IP address") from None
    return family, packed, bits


def ip_text(value: object) -> str:
    """An IP string (an ``/n`` suffix is accepted and dropped, as the reference
    does), as ``inet_ntop`` writes it."""
    if not isinstance(value, str):
        raise expected("an IP address string", value)
    family, packed, _ = _parse_inet(value, bits_required=False)
    return socket.inet_ntop(family, packed)


def cidr_text(value: object) -> str:
    """An ``IP/bits`` route target, normalized; bits ≤ 32/128 (``netmaskBitsValid``)."""
    if not isinstance(value, str):
        raise expected("an IP/bits string", value)
    family, packed, bits = _parse_inet(value, bits_required=True)
    assert bits is not None
    limit = 32 if family == socket.AF_INET else 128
    if bits > limit:
        raise FieldProblem(f"{value!r}: more than {limit} bits")
    return f"{socket.inet_ntop(family, packed)}/{bits}"


def is_ipv6_text(text: str) -> bool:
    """Whether a text :data:`IpText` or :data:`CidrText` produced is IPv6."""
    return ":" in text


def rule_json(value: object) -> dict[str, Any]:
    """One rule parsed (``_parseRule``) and re-rendered (``_renderRule``), as the
    reference stores rules. A rule the reference would drop (unknown ``type``,
    ``INTEGER_RANGE``...) or a field it cannot read is refused."""
    if not isinstance(value, dict):
        raise expected("a rule object", value)
    try:
        parsed = rule_from_json(value)
    except ValueError as e:
        raise FieldProblem(str(e)) from e
    return dict(rule_to_json(parsed))


def optional(read: Callable[[object], T]) -> Callable[[object], T | None]:
    """``read``, with null (and the empty string, which the reference parses as no
    address) read as None."""

    def read_optional(value: object) -> T | None:
        return None if value is None or value == "" else read(value)

    return read_optional


JsonBool = Annotated[bool, parse_with(json_bool)]
U64 = Annotated[int, parse_with(json_int(U64_MAX))]
U32 = Annotated[int, parse_with(json_int(U32_MAX))]
JsonStr = Annotated[str, parse_with(json_string)]
TraceTarget = Annotated[str | None, parse_with(trace_target)]
IpText = Annotated[str, parse_with(ip_text)]
CidrText = Annotated[str, parse_with(cidr_text)]
OptionalU32 = Annotated[int | None, parse_with(optional(json_int(U32_MAX)))]
OptionalIpText = Annotated[str | None, parse_with(optional(ip_text))]
RuleJson = Annotated[dict[str, Any], parse_with(rule_json)]
