"""Rule tables and their wire form (PROTOCOL-NETWORK-SERVICE A.4.1, A.4.2).

A rule table is an ordered list of entries. Each entry's type byte carries the
entry type in its low 6 bits (0..15 actions, 16..63 matches), a NOT bit (0x80)
that inverts a match and an OR bit (0x40) that ORs a match into the current set
instead of ANDing it. A "rule" is zero or more matches followed by an action.

Wire form of one entry: ``u8 type`` ``u8 length`` ``length bytes`` (big-endian
fields, table in A.4.2). Entries of unknown type keep their bytes and re-encode
unchanged (unless ``canonical=True``, which re-encodes exactly like the reference
``serializeRules``: unknown values dropped).

The evaluator that runs a table against a frame is :mod:`ztone.node.vl2.filter`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypedDict, Unpack

from ztone.errors import LocalUsageError, MalformedPacket
from ztone.node.wire.frame_fields import ETH_IPV6, IPPROTO_ICMPV6

__all__ = [
    "ACTION_MAX_ID",
    "CHAR_BROADCAST",
    "CHAR_INBOUND",
    "CHAR_MULTICAST",
    "CHAR_SENDER_IP_AUTHENTICATED",
    "CHAR_SENDER_MAC_AUTHENTICATED",
    "CHAR_TCP_ACK",
    "CHAR_TCP_CWR",
    "CHAR_TCP_ECE",
    "CHAR_TCP_FIN",
    "CHAR_TCP_NS",
    "CHAR_TCP_PSH",
    "CHAR_TCP_RESERVED_0",
    "CHAR_TCP_RESERVED_1",
    "CHAR_TCP_RESERVED_2",
    "CHAR_TCP_RST",
    "CHAR_TCP_SYN",
    "CHAR_TCP_URG",
    "DEFAULT_RULES",
    "FORWARD_ACTIONS",
    "IPV4_MATCHES",
    "IPV6_MATCHES",
    "MAX_CAPABILITY_RULES",
    "MAX_NETWORK_RULES",
    "PORT_MATCHES",
    "RULE_FLAG_NOT",
    "RULE_FLAG_OR",
    "RULE_TYPE_MASK",
    "TAG_MATCHES",
    "Rule",
    "RuleFields",
    "RuleType",
    "adhoc_port_range_rules",
    "integer_range_end",
    "parse_rules",
    "serialize_rules",
]

RULE_FLAG_NOT = 0x80
RULE_FLAG_OR = 0x40
RULE_TYPE_MASK = 0x3F
ACTION_MAX_ID = 15

MAX_NETWORK_RULES = 1024
MAX_CAPABILITY_RULES = 64

_M16 = 0xFFFF
_M32 = 0xFFFFFFFF
_M40 = 0xFFFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF

# ZT_RULE_PACKET_CHARACTERISTICS_* bits of the MATCH_CHARACTERISTICS word.
CHAR_INBOUND = 0x8000000000000000
CHAR_MULTICAST = 0x4000000000000000
CHAR_BROADCAST = 0x2000000000000000
CHAR_SENDER_IP_AUTHENTICATED = 0x1000000000000000
CHAR_SENDER_MAC_AUTHENTICATED = 0x0800000000000000
CHAR_TCP_RESERVED_0 = 0x800
CHAR_TCP_RESERVED_1 = 0x400
CHAR_TCP_RESERVED_2 = 0x200
CHAR_TCP_NS = 0x100
CHAR_TCP_CWR = 0x80
CHAR_TCP_ECE = 0x40
CHAR_TCP_URG = 0x20
CHAR_TCP_ACK = 0x10
CHAR_TCP_PSH = 0x08
CHAR_TCP_RST = 0x04
CHAR_TCP_SYN = 0x02
CHAR_TCP_FIN = 0x01


class RuleType(IntEnum):
    """Entry types (``ZT_VirtualNetworkRuleType``), the low 6 bits of the type byte."""

    ACTION_DROP = 0
    ACTION_ACCEPT = 1
    ACTION_TEE = 2
    ACTION_WATCH = 3
    ACTION_REDIRECT = 4
    ACTION_BREAK = 5
    ACTION_PRIORITY = 6
    MATCH_SOURCE_ZEROTIER_ADDRESS = 24
    MATCH_DEST_ZEROTIER_ADDRESS = 25
    MATCH_VLAN_ID = 26
    MATCH_VLAN_PCP = 27
    MATCH_VLAN_DEI = 28
    MATCH_MAC_SOURCE = 29
    MATCH_MAC_DEST = 30
    MATCH_IPV4_SOURCE = 31
    MATCH_IPV4_DEST = 32
    MATCH_IPV6_SOURCE = 33
    MATCH_IPV6_DEST = 34
    MATCH_IP_TOS = 35
    MATCH_IP_PROTOCOL = 36
    MATCH_ETHERTYPE = 37
    MATCH_ICMP = 38
    MATCH_IP_SOURCE_PORT_RANGE = 39
    MATCH_IP_DEST_PORT_RANGE = 40
    MATCH_CHARACTERISTICS = 41
    MATCH_FRAME_SIZE_RANGE = 42
    MATCH_RANDOM = 43
    MATCH_TAGS_DIFFERENCE = 44
    MATCH_TAGS_BITWISE_AND = 45
    MATCH_TAGS_BITWISE_OR = 46
    MATCH_TAGS_BITWISE_XOR = 47
    MATCH_TAGS_EQUAL = 48
    MATCH_TAG_SENDER = 49
    MATCH_TAG_RECEIVER = 50
    MATCH_INTEGER_RANGE = 51


_T = RuleType
# Entry kinds grouped as both the codec here and the evaluator (ztone.node.vl2.filter)
# test them.
FORWARD_ACTIONS = frozenset((_T.ACTION_TEE, _T.ACTION_WATCH, _T.ACTION_REDIRECT))
_ZT_MATCHES = frozenset((_T.MATCH_SOURCE_ZEROTIER_ADDRESS, _T.MATCH_DEST_ZEROTIER_ADDRESS))
_MAC_MATCHES = frozenset((_T.MATCH_MAC_SOURCE, _T.MATCH_MAC_DEST))
IPV4_MATCHES = frozenset((_T.MATCH_IPV4_SOURCE, _T.MATCH_IPV4_DEST))
IPV6_MATCHES = frozenset((_T.MATCH_IPV6_SOURCE, _T.MATCH_IPV6_DEST))
PORT_MATCHES = frozenset((_T.MATCH_IP_SOURCE_PORT_RANGE, _T.MATCH_IP_DEST_PORT_RANGE))
TAG_MATCHES = frozenset(
    (
        _T.MATCH_TAGS_DIFFERENCE,
        _T.MATCH_TAGS_BITWISE_AND,
        _T.MATCH_TAGS_BITWISE_OR,
        _T.MATCH_TAGS_BITWISE_XOR,
        _T.MATCH_TAGS_EQUAL,
        _T.MATCH_TAG_SENDER,
        _T.MATCH_TAG_RECEIVER,
    )
)
_KNOWN = frozenset(int(t) for t in RuleType)

# Canonical value length per known type (serializeRules); types not listed here
# that are known (DROP, ACCEPT, BREAK, PRIORITY) have length 0.
_FIELD_LEN: dict[int, int] = {
    **{int(t): 14 for t in FORWARD_ACTIONS},
    **{int(t): 5 for t in _ZT_MATCHES},
    _T.MATCH_VLAN_ID: 2,
    _T.MATCH_VLAN_PCP: 1,
    _T.MATCH_VLAN_DEI: 1,
    **{int(t): 6 for t in _MAC_MATCHES},
    **{int(t): 5 for t in IPV4_MATCHES},
    **{int(t): 17 for t in IPV6_MATCHES},
    _T.MATCH_IP_TOS: 3,
    _T.MATCH_IP_PROTOCOL: 1,
    _T.MATCH_ETHERTYPE: 2,
    _T.MATCH_ICMP: 3,
    **{int(t): 4 for t in PORT_MATCHES},
    _T.MATCH_CHARACTERISTICS: 8,
    _T.MATCH_FRAME_SIZE_RANGE: 4,
    _T.MATCH_RANDOM: 4,
    **{int(t): 8 for t in TAG_MATCHES},
    _T.MATCH_INTEGER_RANGE: 19,
}


class RuleFields(TypedDict, total=False):
    """The value fields of a :class:`Rule`, as keywords of :meth:`Rule.make`."""

    address: int
    flags: int
    length: int
    zt: int
    vlan_id: int
    vlan_pcp: int
    vlan_dei: int
    mac: int
    ip: bytes
    ip_bits: int
    tos_mask: int
    start: int
    end: int
    ip_protocol: int
    ethertype: int
    icmp_type: int
    icmp_code: int
    icmp_flags: int
    characteristics: int
    probability: int
    tag_id: int
    tag_value: int
    idx: int
    int_format: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule table entry.

    ``t`` is the whole type byte (type | NOT 0x80 | OR 0x40). Only the fields of
    the entry's type are meaningful; the others stay 0. Field use by type:

    * TEE / WATCH / REDIRECT: ``address`` (u64 on the wire, target = low 40 bits),
      ``flags`` (u32, carried but unused), ``length`` (u16, TEE/WATCH copy length,
      0 = whole frame; carried but unused for REDIRECT)
    * SOURCE/DEST_ZEROTIER_ADDRESS: ``zt`` (40-bit address)
    * VLAN_ID / VLAN_PCP / VLAN_DEI: ``vlan_id`` / ``vlan_pcp`` / ``vlan_dei``
    * MAC_SOURCE / MAC_DEST: ``mac`` (48-bit integer)
    * IPV4_* / IPV6_*: ``ip`` (4 / 16 bytes; defaults to zeros) and ``ip_bits``
      (u8 prefix length)
    * IP_TOS: ``tos_mask``, ``start``, ``end`` (u8 each)
    * IP_PROTOCOL: ``ip_protocol``; ETHERTYPE: ``ethertype``
    * ICMP: ``icmp_type``, ``icmp_code``, ``icmp_flags`` (bit 0: also match the code)
    * IP_SOURCE/DEST_PORT_RANGE, FRAME_SIZE_RANGE: ``start``, ``end`` (u16)
    * CHARACTERISTICS: ``characteristics`` (u64 mask)
    * RANDOM: ``probability`` (u32; 0xFFFFFFFF = always)
    * TAGS_* / TAG_SENDER / TAG_RECEIVER: ``tag_id``, ``tag_value`` (u32)
    * INTEGER_RANGE: ``start``, ``end`` (u64, absolute as on the wire), ``idx``
      (u16 payload offset), ``int_format`` (u8: low 6 bits = bit width - 1,
      0x80 = little-endian)
    * any unknown type: ``raw`` (the value bytes, re-encoded unchanged)

    ACTION_PRIORITY carries no value on the wire (a receiver always sees QoS bucket 0).
    """

    t: int
    address: int = 0
    flags: int = 0
    length: int = 0
    zt: int = 0
    vlan_id: int = 0
    vlan_pcp: int = 0
    vlan_dei: int = 0
    mac: int = 0
    ip: bytes = b""
    ip_bits: int = 0
    tos_mask: int = 0
    start: int = 0
    end: int = 0
    ip_protocol: int = 0
    ethertype: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    icmp_flags: int = 0
    characteristics: int = 0
    probability: int = 0
    tag_id: int = 0
    tag_value: int = 0
    idx: int = 0
    int_format: int = 0
    raw: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.t <= 0xFF:
            raise LocalUsageError(f"rule type byte out of range: {self.t}")
        kind = self.t & RULE_TYPE_MASK
        if kind in IPV4_MATCHES or kind in IPV6_MATCHES:
            want = 4 if kind in IPV4_MATCHES else 16
            if not self.ip:
                object.__setattr__(self, "ip", bytes(want))
            elif len(self.ip) != want:
                raise LocalUsageError(f"rule type {kind} needs a {want}-byte ip")
        if self.raw and kind in _KNOWN:
            raise LocalUsageError("raw value bytes are only kept for unknown rule types")

    @classmethod
    def make(
        cls, kind: int, *, negate: bool = False, or_: bool = False, **fields: Unpack[RuleFields]
    ) -> Rule:
        """``Rule(kind | NOT? | OR?, **fields)``, e.g. ``Rule.make(RuleType.MATCH_ETHERTYPE,
        negate=True, ethertype=0x86DD)``."""
        if not 0 <= kind <= RULE_TYPE_MASK:
            raise LocalUsageError(f"rule kind out of range: {kind}")
        t = kind | (RULE_FLAG_NOT if negate else 0) | (RULE_FLAG_OR if or_ else 0)
        return cls(t, **fields)

    @property
    def kind(self) -> int:
        """The entry type (low 6 bits); a :class:`RuleType` member when known."""
        k = self.t & RULE_TYPE_MASK
        return RuleType(k) if k in _KNOWN else k

    @property
    def negate(self) -> bool:
        return bool(self.t & RULE_FLAG_NOT)

    @property
    def is_or(self) -> bool:
        return bool(self.t & RULE_FLAG_OR)

    @property
    def is_action(self) -> bool:
        return (self.t & RULE_TYPE_MASK) <= ACTION_MAX_ID


#: Controller default for a new network and the rule set of pre-rules clients.
DEFAULT_RULES: tuple[Rule, ...] = (Rule(RuleType.ACTION_ACCEPT),)


# --------------------------------------------------------------------------- wire


def _u16(b: bytes, p: int) -> int:
    return (b[p] << 8) | b[p + 1]


def _decode(t: int, b: bytes, p: int, field_len: int) -> Rule:
    """Decode one entry's value starting at ``p`` (fields read as the reference does:
    from the table buffer at ``p``, however long the entry claims to be)."""
    kind = t & RULE_TYPE_MASK
    need = _FIELD_LEN.get(kind, 0)
    if kind not in _KNOWN:
        return Rule(t, raw=bytes(b[p : p + field_len]))
    if p + need > len(b):
        raise MalformedPacket(f"rule type {kind}: value runs past the end of the table")
    if need == 0:
        return Rule(t)
    if kind in FORWARD_ACTIONS:
        address, flags, length = struct.unpack_from(">QIH", b, p)
        return Rule(t, address=address, flags=flags, length=length)
    if kind in _ZT_MATCHES:
        return Rule(t, zt=int.from_bytes(b[p : p + 5], "big"))
    if kind == _T.MATCH_VLAN_ID:
        return Rule(t, vlan_id=_u16(b, p))
    if kind == _T.MATCH_VLAN_PCP:
        return Rule(t, vlan_pcp=b[p])
    if kind == _T.MATCH_VLAN_DEI:
        return Rule(t, vlan_dei=b[p])
    if kind in _MAC_MATCHES:
        return Rule(t, mac=int.from_bytes(b[p : p + 6], "big"))
    if kind in IPV4_MATCHES:
        return Rule(t, ip=bytes(b[p : p + 4]), ip_bits=b[p + 4])
    if kind in IPV6_MATCHES:
        return Rule(t, ip=bytes(b[p : p + 16]), ip_bits=b[p + 16])
    if kind == _T.MATCH_IP_TOS:
        return Rule(t, tos_mask=b[p], start=b[p + 1], end=b[p + 2])
    if kind == _T.MATCH_IP_PROTOCOL:
        return Rule(t, ip_protocol=b[p])
    if kind == _T.MATCH_ETHERTYPE:
        return Rule(t, ethertype=_u16(b, p))
    if kind == _T.MATCH_ICMP:
        return Rule(t, icmp_type=b[p], icmp_code=b[p + 1], icmp_flags=b[p + 2])
    if kind in PORT_MATCHES or kind == _T.MATCH_FRAME_SIZE_RANGE:
        return Rule(t, start=_u16(b, p), end=_u16(b, p + 2))
    if kind == _T.MATCH_CHARACTERISTICS:
        return Rule(t, characteristics=int.from_bytes(b[p : p + 8], "big"))
    if kind == _T.MATCH_RANDOM:
        return Rule(t, probability=int.from_bytes(b[p : p + 4], "big"))
    if kind in TAG_MATCHES:
        tag_id, tag_value = struct.unpack_from(">II", b, p)
        return Rule(t, tag_id=tag_id, tag_value=tag_value)
    # INTEGER_RANGE
    start, end, idx, fmt = struct.unpack_from(">QQHB", b, p)
    return Rule(t, start=start, end=end, idx=idx, int_format=fmt)


def parse_rules(
    data: bytes | bytearray | memoryview,
    offset: int = 0,
    count: int | None = None,
    *,
    limit: int | None = None,
) -> tuple[list[Rule], int]:
    """Decode rule entries from ``data[offset:]``; returns ``(rules, end offset)``.

    ``count`` given: exactly that many entries (a Capability's rule table).
    ``count`` None: entries until the end of ``data`` (a config's ``R`` blob), or
    until ``limit`` entries have been read (the reference stops at its maximum and
    ignores the rest; the returned offset tells where it stopped).

    Raises :class:`MalformedPacket` if an entry header or value runs past the end.
    An entry whose declared length is shorter than its type's value has its fields
    read from the bytes that follow (as the reference does) and is then skipped by
    its declared length; a longer one has the extra bytes ignored.
    """
    b = bytes(data)
    n = len(b)
    if offset < 0 or offset > n:
        raise MalformedPacket("rule table offset out of range")
    p = offset
    rules: list[Rule] = []
    while True:
        if count is not None:
            if len(rules) >= count:
                break
        elif p >= n or (limit is not None and len(rules) >= limit):
            break
        if p + 2 > n:
            raise MalformedPacket("truncated rule entry header")
        t = b[p]
        field_len = b[p + 1]
        p += 2
        if p + field_len > n:
            raise MalformedPacket("truncated rule entry value")
        rules.append(_decode(t, b, p, field_len))
        p += field_len
    return rules, p


def _encode(rule: Rule, canonical: bool) -> bytes:
    t = rule.t
    kind = t & RULE_TYPE_MASK
    head = bytes((t,))
    if kind not in _KNOWN:
        if canonical or not rule.raw:
            return head + b"\x00"
        if len(rule.raw) > 0xFF:
            raise LocalUsageError("raw rule value longer than 255 bytes")
        return head + bytes((len(rule.raw),)) + rule.raw
    need = _FIELD_LEN.get(kind, 0)
    if need == 0:
        body = b""
    elif kind in FORWARD_ACTIONS:
        body = struct.pack(">QIH", rule.address, rule.flags, rule.length)
    elif kind in _ZT_MATCHES:
        body = (rule.zt & _M40).to_bytes(5, "big")
    elif kind == _T.MATCH_VLAN_ID:
        body = struct.pack(">H", rule.vlan_id)
    elif kind == _T.MATCH_VLAN_PCP:
        body = struct.pack(">B", rule.vlan_pcp)
    elif kind == _T.MATCH_VLAN_DEI:
        body = struct.pack(">B", rule.vlan_dei)
    elif kind in _MAC_MATCHES:
        body = rule.mac.to_bytes(6, "big")
    elif kind in IPV4_MATCHES or kind in IPV6_MATCHES:
        body = rule.ip + struct.pack(">B", rule.ip_bits)
    elif kind == _T.MATCH_IP_TOS:
        body = struct.pack(">BBB", rule.tos_mask, rule.start, rule.end)
    elif kind == _T.MATCH_IP_PROTOCOL:
        body = struct.pack(">B", rule.ip_protocol)
    elif kind == _T.MATCH_ETHERTYPE:
        body = struct.pack(">H", rule.ethertype)
    elif kind == _T.MATCH_ICMP:
        body = struct.pack(">BBB", rule.icmp_type, rule.icmp_code, rule.icmp_flags)
    elif kind in PORT_MATCHES or kind == _T.MATCH_FRAME_SIZE_RANGE:
        body = struct.pack(">HH", rule.start, rule.end)
    elif kind == _T.MATCH_CHARACTERISTICS:
        body = struct.pack(">Q", rule.characteristics)
    elif kind == _T.MATCH_RANDOM:
        body = struct.pack(">I", rule.probability)
    elif kind in TAG_MATCHES:
        body = struct.pack(">II", rule.tag_id, rule.tag_value)
    else:  # INTEGER_RANGE
        end = integer_range_end(rule) if canonical else rule.end
        body = struct.pack(">QQHB", rule.start, end, rule.idx, rule.int_format)
    return head + bytes((need,)) + body


def serialize_rules(rules: Iterable[Rule], *, canonical: bool = False) -> bytes:
    """Encode rule entries (A.4.2).

    ``canonical=True`` reproduces the reference ``serializeRules`` byte for byte,
    which is what a capability signature covers: unknown types are written with an
    empty value and INTEGER_RANGE's end is ``start + u32(end - start)``. The default
    keeps unknown values and the end as given, so parse/serialize round-trips.
    """
    try:
        return b"".join(_encode(r, canonical) for r in rules)
    except (struct.error, OverflowError) as e:
        raise LocalUsageError(f"rule field out of range: {e}") from e


def integer_range_end(rule: Rule) -> int:
    """INTEGER_RANGE upper bound as the reference holds it: ``start + u32(end - start)``."""
    return (rule.start + ((rule.end - rule.start) & _M32)) & _M64


def adhoc_port_range_rules(start: int, end: int) -> list[Rule]:
    """The 14-entry table of an ad-hoc ``ffSSSSEEEE000000`` network (A.5.8)."""
    mk = Rule.make
    return [
        mk(_T.MATCH_ETHERTYPE, negate=True, ethertype=ETH_IPV6),
        mk(_T.ACTION_DROP),
        mk(_T.MATCH_IP_PROTOCOL, ip_protocol=IPPROTO_ICMPV6),
        mk(_T.ACTION_ACCEPT),
        mk(_T.MATCH_IP_PROTOCOL, ip_protocol=17),
        mk(_T.MATCH_IP_PROTOCOL, or_=True, ip_protocol=6),
        mk(_T.MATCH_IP_DEST_PORT_RANGE, start=start, end=end),
        mk(_T.ACTION_ACCEPT),
        mk(_T.MATCH_CHARACTERISTICS, negate=True, characteristics=CHAR_TCP_SYN),
        mk(_T.ACTION_ACCEPT),
        mk(_T.MATCH_CHARACTERISTICS, characteristics=CHAR_TCP_SYN),
        mk(_T.MATCH_CHARACTERISTICS, characteristics=CHAR_TCP_ACK),
        mk(_T.ACTION_ACCEPT),
        mk(_T.ACTION_DROP),
    ]
