"""JSON form of network rules, as the controller API and stored networks use it (B.9).

Every rule is an object with a ``type`` name; match rules also carry ``not`` and
``or`` booleans (rendering emits them for matches only). Type-specific fields::

    ACTION_TEE, ACTION_WATCH          address (10 hex digits), flags, length
    ACTION_REDIRECT                   address, flags
    MATCH_SOURCE/DEST_ZEROTIER_ADDRESS  zt (10 hex digits)
    MATCH_VLAN_ID / _PCP / _DEI       vlanId / vlanPcp / vlanDei
    MATCH_MAC_SOURCE / _DEST          mac ("xx:xx:xx:xx:xx:xx"; ":"/"-" optional on input)
    MATCH_IPV4_* / MATCH_IPV6_*       ip ("addr/bits", bits clamped to 32 / 128)
    MATCH_IP_TOS                      mask, start, end
    MATCH_IP_PROTOCOL                 ipProtocol
    MATCH_ETHERTYPE                   etherType
    MATCH_ICMP                        icmpType, icmpCode (null = any code)
    MATCH_IP_*_PORT_RANGE             start, end (end defaults to start)
    MATCH_CHARACTERISTICS             mask (number or hex string; rendered as 16 hex digits)
    MATCH_FRAME_SIZE_RANGE            start, end (end defaults to start)
    MATCH_RANDOM                      probability (u32)
    MATCH_TAGS_* / MATCH_TAG_*        id, value
    INTEGER_RANGE                     start, end (hex strings or numbers), idx, little, bits

Input coercions follow the reference helpers: integers may be numbers, decimal
strings or booleans; booleans may be booleans, numbers (non-zero) or strings
starting with ``t``/``T``/``1``; absent fields take the reference defaults.
Unlike the reference, which silently coerces garbage (``strtoull`` of "abc" is 0,
out-of-range numbers are masked), anything that cannot be read as the field's
type or does not fit its width raises :class:`ValueError` naming the field.

Rules the reference parser refuses outright (not an object, no/unknown ``type``,
and INTEGER_RANGE, which it never finishes parsing) raise
:class:`UnsupportedRule`, a ``ValueError`` subclass: the reference controller
drops such entries silently (see :func:`normalize_rules_json`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable

from ztone.node.wire.inetaddress import ntop6
from ztone.node.wire.rules import (
    ACTION_MAX_ID,
    RULE_FLAG_NOT,
    RULE_FLAG_OR,
    RULE_TYPE_MASK,
    Rule,
    RuleType,
    integer_range_end,
)

JsonScalar = str | int | bool | None
RuleJson = dict[str, JsonScalar]

#: ``ZT_CONTROLLER_MAX_ARRAY_SIZE``: most rules kept from one POSTed array.
MAX_ARRAY_SIZE = 16384

#: The rules of a new network (``DB::initNetwork``). This literal, not a rendered
#: rule, is what a fresh network object holds: note ``not``/``or`` on an action,
#: which :func:`rule_to_json` never emits.
DEFAULT_RULES_JSON: tuple[RuleJson, ...] = ({"not": False, "or": False, "type": "ACTION_ACCEPT"},)

_M40 = 0xFFFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF

_DECIMAL = re.compile(r"\+?[0-9]+")
_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]{1,16})")
_HEX_ADDRESS = re.compile(r"[0-9a-fA-F]{1,10}")
_HEX_MAC = re.compile(r"[0-9a-fA-F]{12}")

_T = RuleType
_TAG_TYPES = (
    _T.MATCH_TAGS_DIFFERENCE,
    _T.MATCH_TAGS_BITWISE_AND,
    _T.MATCH_TAGS_BITWISE_OR,
    _T.MATCH_TAGS_BITWISE_XOR,
    _T.MATCH_TAGS_EQUAL,
    _T.MATCH_TAG_SENDER,
    _T.MATCH_TAG_RECEIVER,
)
_NAME_OF: dict[int, str] = {int(t): t.name for t in RuleType if t != _T.ACTION_PRIORITY}
_NAME_OF[_T.MATCH_INTEGER_RANGE] = "INTEGER_RANGE"  # the reference's name lacks MATCH_
_TYPE_OF: dict[str, int] = {name: kind for kind, name in _NAME_OF.items()}


class UnsupportedRule(ValueError):
    """The reference ``_parseRule`` refuses this entry (it drops it without error)."""


# --------------------------------------------------------------------------- render


def _ip_text(ip: bytes, bits: int) -> str:
    text = ".".join(str(b) for b in ip) if len(ip) == 4 else ntop6(ip)
    return f"{text}/{bits}"


def rule_to_json(rule: Rule) -> RuleJson:
    """Render one rule as ``_renderRule`` does (keys sorted).

    Types without a JSON form (ACTION_PRIORITY, unknown types) render as ``{}``,
    as in the reference.
    """
    kind = rule.t & RULE_TYPE_MASK
    name = _NAME_OF.get(kind)
    if name is None:
        return {}
    r: RuleJson = {"type": name}
    if kind in (_T.ACTION_TEE, _T.ACTION_WATCH, _T.ACTION_REDIRECT):
        r["address"] = f"{rule.address & _M40:010x}"
        r["flags"] = rule.flags
        if kind != _T.ACTION_REDIRECT:
            r["length"] = rule.length
    elif kind in (_T.MATCH_SOURCE_ZEROTIER_ADDRESS, _T.MATCH_DEST_ZEROTIER_ADDRESS):
        r["zt"] = f"{rule.zt & _M40:010x}"
    elif kind == _T.MATCH_VLAN_ID:
        r["vlanId"] = rule.vlan_id
    elif kind == _T.MATCH_VLAN_PCP:
        r["vlanPcp"] = rule.vlan_pcp
    elif kind == _T.MATCH_VLAN_DEI:
        r["vlanDei"] = rule.vlan_dei
    elif kind in (_T.MATCH_MAC_SOURCE, _T.MATCH_MAC_DEST):
        r["mac"] = ":".join(f"{b:02x}" for b in rule.mac.to_bytes(6, "big"))
    elif kind in (
        _T.MATCH_IPV4_SOURCE,
        _T.MATCH_IPV4_DEST,
        _T.MATCH_IPV6_SOURCE,
        _T.MATCH_IPV6_DEST,
    ):
        r["ip"] = _ip_text(rule.ip, rule.ip_bits)
    elif kind == _T.MATCH_IP_TOS:
        r["mask"] = rule.tos_mask
        r["start"] = rule.start
        r["end"] = rule.end
    elif kind == _T.MATCH_IP_PROTOCOL:
        r["ipProtocol"] = rule.ip_protocol
    elif kind == _T.MATCH_ETHERTYPE:
        r["etherType"] = rule.ethertype
    elif kind == _T.MATCH_ICMP:
        r["icmpType"] = rule.icmp_type
        r["icmpCode"] = rule.icmp_code if rule.icmp_flags & 0x01 else None
    elif kind in (
        _T.MATCH_IP_SOURCE_PORT_RANGE,
        _T.MATCH_IP_DEST_PORT_RANGE,
        _T.MATCH_FRAME_SIZE_RANGE,
    ):
        r["start"] = rule.start
        r["end"] = rule.end
    elif kind == _T.MATCH_CHARACTERISTICS:
        r["mask"] = f"{rule.characteristics:016x}"
    elif kind == _T.MATCH_RANDOM:
        r["probability"] = rule.probability
    elif kind in _TAG_TYPES:
        r["id"] = rule.tag_id
        r["value"] = rule.tag_value
    elif kind == _T.MATCH_INTEGER_RANGE:
        r["start"] = f"{rule.start:016x}"
        r["end"] = f"{integer_range_end(rule):016x}"
        r["idx"] = rule.idx
        r["little"] = bool(rule.int_format & 0x80)
        r["bits"] = (rule.int_format & 63) + 1
    if kind > ACTION_MAX_ID:
        r["not"] = bool(rule.t & RULE_FLAG_NOT)
        r["or"] = bool(rule.t & RULE_FLAG_OR)
    return dict(sorted(r.items()))


def rules_to_json(rules: Iterable[Rule]) -> list[RuleJson]:
    """Render a rule list (entries without a JSON form render as ``{}``)."""
    return [rule_to_json(r) for r in rules]


# ---------------------------------------------------------------------------- parse


def _int(obj: dict[str, object], key: str, default: int, maximum: int) -> int:
    """``OSUtils::jsonInt``: a number, a decimal string or a boolean; absent/null -> default."""
    v = obj.get(key)
    if v is None:
        return default
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        n = v
    elif isinstance(v, float):
        if not math.isfinite(v) or v != int(v):
            raise ValueError(f"{key}: {v!r} is not an integer")
        n = int(v)
    elif isinstance(v, str):
        s = v.strip()
        if not _DECIMAL.fullmatch(s):
            raise ValueError(f"{key}: {v!r} is not a decimal integer")
        n = int(s)
    else:
        raise ValueError(f"{key}: expected an integer, got {type(v).__name__}")
    if not 0 <= n <= maximum:
        raise ValueError(f"{key}: {n} is out of range 0..{maximum}")
    return n


def _bool(obj: dict[str, object], key: str) -> bool:
    """``OSUtils::jsonBool``: bool, number > 0, or a string starting with t/T/1."""
    v = obj.get(key)
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{key}: {v!r} is not a boolean")
        return int(v) != 0
    if isinstance(v, str):
        return v[:1] in ("t", "T", "1")
    raise ValueError(f"{key}: expected a boolean, got {type(v).__name__}")


def _hex(obj: dict[str, object], key: str, default: int) -> int:
    """A u64 given as a hex string (optionally 0x-prefixed) or as a number."""
    v = obj.get(key)
    if v is None:
        return default
    if isinstance(v, str):
        m = _HEX.fullmatch(v.strip())
        if not m:
            raise ValueError(f"{key}: {v!r} is not a hexadecimal number of at most 16 digits")
        return int(m.group(1), 16)
    return _int(obj, key, default, _M64)


def _address(obj: dict[str, object], key: str) -> int:
    v = obj.get(key)
    if v is None:
        return 0
    if not isinstance(v, str) or not _HEX_ADDRESS.fullmatch(v.strip()):
        raise ValueError(f"{key}: {v!r} is not a ZeroTier address (10 hex digits)")
    return int(v.strip(), 16)


def _mac(obj: dict[str, object]) -> int:
    v = obj.get("mac")
    if v is None:
        return 0
    if not isinstance(v, str):
        raise ValueError(f"mac: expected a string, got {type(v).__name__}")
    digits = v.strip().replace(":", "").replace("-", "")
    if not _HEX_MAC.fullmatch(digits):
        raise ValueError(f"mac: {v!r} is not a MAC address")
    return int(digits, 16)


def _ip(obj: dict[str, object], version: int) -> tuple[bytes, int]:
    v = obj.get("ip")
    if v is None:
        return bytes(4 if version == 4 else 16), 0
    if not isinstance(v, str):
        raise ValueError(f"ip: expected a string, got {type(v).__name__}")
    text, slash, bits_text = v.strip().partition("/")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"ip: {v!r} is not an IP address") from None
    if addr.version != version or "%" in text:
        raise ValueError(f"ip: {v!r} is not an IPv{version} address")
    bits = 0
    if slash:
        if not _DECIMAL.fullmatch(bits_text):
            raise ValueError(f"ip: {v!r} has a bad prefix length")
        # InetAddress::fromString keeps the port in 16 bits; the rule keeps 8, clamped.
        bits = (int(bits_text) & 0xFFFF) & 0xFF
        bits = min(bits, 32 if version == 4 else 128)
    return addr.packed, bits


def rule_from_json(obj: object, *, allow_integer_range: bool = False) -> Rule:
    """Parse one rule object (``_parseRule``).

    Raises :class:`UnsupportedRule` for entries the reference refuses (which it
    drops silently) and :class:`ValueError` for unreadable field values.
    ``allow_integer_range=True`` parses INTEGER_RANGE as its renderer writes it
    (the reference parser never does, so its controller drops these rules).
    """
    if not isinstance(obj, dict):
        raise UnsupportedRule(f"a rule must be an object, got {type(obj).__name__}")
    r: dict[str, object] = obj
    name = r.get("type")
    if not isinstance(name, str) or name not in _TYPE_OF:
        raise UnsupportedRule(f"unknown rule type {name!r}")
    kind = _TYPE_OF[name]
    if kind == _T.MATCH_INTEGER_RANGE and not allow_integer_range:
        raise UnsupportedRule("INTEGER_RANGE rules are not accepted by the controller")
    t = kind | (RULE_FLAG_NOT if _bool(r, "not") else 0) | (RULE_FLAG_OR if _bool(r, "or") else 0)

    if kind in (_T.ACTION_DROP, _T.ACTION_ACCEPT, _T.ACTION_BREAK):
        return Rule(t)
    if kind in (_T.ACTION_TEE, _T.ACTION_WATCH, _T.ACTION_REDIRECT):
        length = 0 if kind == _T.ACTION_REDIRECT else _int(r, "length", 0, 0xFFFF)
        return Rule(
            t,
            address=_address(r, "address"),
            flags=_int(r, "flags", 0, 0xFFFFFFFF),
            length=length,
        )
    if kind in (_T.MATCH_SOURCE_ZEROTIER_ADDRESS, _T.MATCH_DEST_ZEROTIER_ADDRESS):
        return Rule(t, zt=_address(r, "zt"))
    if kind == _T.MATCH_VLAN_ID:
        return Rule(t, vlan_id=_int(r, "vlanId", 0, 0xFFFF))
    if kind == _T.MATCH_VLAN_PCP:
        return Rule(t, vlan_pcp=_int(r, "vlanPcp", 0, 0xFF))
    if kind == _T.MATCH_VLAN_DEI:
        return Rule(t, vlan_dei=_int(r, "vlanDei", 0, 0xFF))
    if kind in (_T.MATCH_MAC_SOURCE, _T.MATCH_MAC_DEST):
        return Rule(t, mac=_mac(r))
    if kind in (_T.MATCH_IPV4_SOURCE, _T.MATCH_IPV4_DEST):
        ip, bits = _ip(r, 4)
        return Rule(t, ip=ip, ip_bits=bits)
    if kind in (_T.MATCH_IPV6_SOURCE, _T.MATCH_IPV6_DEST):
        ip, bits = _ip(r, 6)
        return Rule(t, ip=ip, ip_bits=bits)
    if kind == _T.MATCH_IP_TOS:
        return Rule(
            t,
            tos_mask=_int(r, "mask", 0, 0xFF),
            start=_int(r, "start", 0, 0xFF),
            end=_int(r, "end", 0, 0xFF),
        )
    if kind == _T.MATCH_IP_PROTOCOL:
        return Rule(t, ip_protocol=_int(r, "ipProtocol", 0, 0xFF))
    if kind == _T.MATCH_ETHERTYPE:
        return Rule(t, ethertype=_int(r, "etherType", 0, 0xFFFF))
    if kind == _T.MATCH_ICMP:
        icmp_type = _int(r, "icmpType", 0, 0xFF)
        if r.get("icmpCode") is None:
            return Rule(t, icmp_type=icmp_type)
        return Rule(t, icmp_type=icmp_type, icmp_code=_int(r, "icmpCode", 0, 0xFF), icmp_flags=1)
    if kind in (
        _T.MATCH_IP_SOURCE_PORT_RANGE,
        _T.MATCH_IP_DEST_PORT_RANGE,
        _T.MATCH_FRAME_SIZE_RANGE,
    ):
        start = _int(r, "start", 0, 0xFFFF)
        return Rule(t, start=start, end=_int(r, "end", start, 0xFFFF))
    if kind == _T.MATCH_CHARACTERISTICS:
        mask = r.get("mask")
        if isinstance(mask, bool) or not isinstance(mask, int | float | str | None):
            raise ValueError(f"mask: expected a number or hex string, got {mask!r}")
        return Rule(t, characteristics=_hex(r, "mask", 0))
    if kind == _T.MATCH_RANDOM:
        return Rule(t, probability=_int(r, "probability", 0, 0xFFFFFFFF))
    if kind in _TAG_TYPES:
        return Rule(
            t, tag_id=_int(r, "id", 0, 0xFFFFFFFF), tag_value=_int(r, "value", 0, 0xFFFFFFFF)
        )
    # INTEGER_RANGE (only with allow_integer_range)
    start = _hex(r, "start", 0)
    end = (start + ((_hex(r, "end", 0) - start) & 0xFFFFFFFF)) & _M64
    bits = _int(r, "bits", 1, 64)
    if bits == 0:
        raise ValueError("bits: must be 1..64")
    fmt = (0x80 if _bool(r, "little") else 0) | (bits - 1)
    return Rule(t, start=start, end=end, idx=_int(r, "idx", 0, 0xFFFF), int_format=fmt)


def rules_from_json(items: Iterable[object], *, limit: int | None = None) -> list[Rule]:
    """Parse a rule array the way the controller builds a config (B.2 step 13):
    entries the reference refuses are skipped, at most ``limit`` rules are kept.
    Unreadable field values still raise :class:`ValueError`."""
    out: list[Rule] = []
    for item in items:
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append(rule_from_json(item))
        except UnsupportedRule:
            continue
    return out


def normalize_rules_json(items: Iterable[object]) -> list[RuleJson]:
    """A POSTed ``rules`` array as the reference stores it (``networkUpdateFromPostData``):
    each entry parsed and re-rendered, refused entries dropped, at most
    :data:`MAX_ARRAY_SIZE` kept."""
    return rules_to_json(rules_from_json(items, limit=MAX_ARRAY_SIZE))
