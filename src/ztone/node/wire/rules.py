"""The network rules engine: rule tables, their wire form and frame filtering (A.4).

A rule table is an ordered list of entries. Each entry's type byte carries the
entry type in its low 6 bits (0..15 actions, 16..63 matches), a NOT bit (0x80)
that inverts a match and an OR bit (0x40) that ORs a match into the current set
instead of ANDing it. A "rule" is zero or more matches followed by an action.

Wire form of one entry: ``u8 type`` ``u8 length`` ``length bytes`` (big-endian
fields, table in A.4.2). Entries of unknown type keep their bytes and re-encode
unchanged (unless ``canonical=True``, which re-encodes exactly like the reference
``serializeRules``: unknown values dropped).

:func:`filter_frame` is one pass over one table (``_doZtFilter``);
:func:`filter_with_capabilities` is the whole per-frame decision with the
capability fallback and the TEE/WATCH/REDIRECT copies (``filterOutgoingPacket`` /
``filterIncomingPacket``). Randomness (the RANDOM match) and credential lookups
(certificates of ownership) are supplied by the caller.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ztone.errors import LocalUsageError, MalformedPacket
from ztone.node.wire.frame_fields import (
    ETH_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    PORT_PROTOCOLS,
    FrameFields,
)

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
    "EXT_FRAME_FLAGS",
    "MAX_CAPABILITY_RULES",
    "MAX_NETWORK_RULES",
    "RULE_FLAG_NOT",
    "RULE_FLAG_OR",
    "RULE_TYPE_MASK",
    "FilterAction",
    "FilterDecision",
    "FilterResult",
    "FilterVerdict",
    "FrameContext",
    "Rule",
    "RuleType",
    "adhoc_port_range_rules",
    "filter_frame",
    "filter_with_capabilities",
    "integer_range_end",
    "ndp_emulation_owns",
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
_FORWARD = frozenset((_T.ACTION_TEE, _T.ACTION_WATCH, _T.ACTION_REDIRECT))
_ZT_MATCHES = frozenset((_T.MATCH_SOURCE_ZEROTIER_ADDRESS, _T.MATCH_DEST_ZEROTIER_ADDRESS))
_MAC_MATCHES = frozenset((_T.MATCH_MAC_SOURCE, _T.MATCH_MAC_DEST))
_IPV4_MATCHES = frozenset((_T.MATCH_IPV4_SOURCE, _T.MATCH_IPV4_DEST))
_IPV6_MATCHES = frozenset((_T.MATCH_IPV6_SOURCE, _T.MATCH_IPV6_DEST))
_PORT_MATCHES = frozenset((_T.MATCH_IP_SOURCE_PORT_RANGE, _T.MATCH_IP_DEST_PORT_RANGE))
_TAG_MATCHES = frozenset(
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
    **{int(t): 14 for t in _FORWARD},
    **{int(t): 5 for t in _ZT_MATCHES},
    _T.MATCH_VLAN_ID: 2,
    _T.MATCH_VLAN_PCP: 1,
    _T.MATCH_VLAN_DEI: 1,
    **{int(t): 6 for t in _MAC_MATCHES},
    **{int(t): 5 for t in _IPV4_MATCHES},
    **{int(t): 17 for t in _IPV6_MATCHES},
    _T.MATCH_IP_TOS: 3,
    _T.MATCH_IP_PROTOCOL: 1,
    _T.MATCH_ETHERTYPE: 2,
    _T.MATCH_ICMP: 3,
    **{int(t): 4 for t in _PORT_MATCHES},
    _T.MATCH_CHARACTERISTICS: 8,
    _T.MATCH_FRAME_SIZE_RANGE: 4,
    _T.MATCH_RANDOM: 4,
    **{int(t): 8 for t in _TAG_MATCHES},
    _T.MATCH_INTEGER_RANGE: 19,
}


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
        if kind in _IPV4_MATCHES or kind in _IPV6_MATCHES:
            want = 4 if kind in _IPV4_MATCHES else 16
            if not self.ip:
                object.__setattr__(self, "ip", bytes(want))
            elif len(self.ip) != want:
                raise LocalUsageError(f"rule type {kind} needs a {want}-byte ip")
        if self.raw and kind in _KNOWN:
            raise LocalUsageError("raw value bytes are only kept for unknown rule types")

    @classmethod
    def make(cls, kind: int, *, negate: bool = False, or_: bool = False, **fields: Any) -> Rule:
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
    if kind in _FORWARD:
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
    if kind in _IPV4_MATCHES:
        return Rule(t, ip=bytes(b[p : p + 4]), ip_bits=b[p + 4])
    if kind in _IPV6_MATCHES:
        return Rule(t, ip=bytes(b[p : p + 16]), ip_bits=b[p + 16])
    if kind == _T.MATCH_IP_TOS:
        return Rule(t, tos_mask=b[p], start=b[p + 1], end=b[p + 2])
    if kind == _T.MATCH_IP_PROTOCOL:
        return Rule(t, ip_protocol=b[p])
    if kind == _T.MATCH_ETHERTYPE:
        return Rule(t, ethertype=_u16(b, p))
    if kind == _T.MATCH_ICMP:
        return Rule(t, icmp_type=b[p], icmp_code=b[p + 1], icmp_flags=b[p + 2])
    if kind in _PORT_MATCHES or kind == _T.MATCH_FRAME_SIZE_RANGE:
        return Rule(t, start=_u16(b, p), end=_u16(b, p + 2))
    if kind == _T.MATCH_CHARACTERISTICS:
        return Rule(t, characteristics=int.from_bytes(b[p : p + 8], "big"))
    if kind == _T.MATCH_RANDOM:
        return Rule(t, probability=int.from_bytes(b[p : p + 4], "big"))
    if kind in _TAG_MATCHES:
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
    elif kind in _FORWARD:
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
    elif kind in _IPV4_MATCHES or kind in _IPV6_MATCHES:
        body = rule.ip + struct.pack(">B", rule.ip_bits)
    elif kind == _T.MATCH_IP_TOS:
        body = struct.pack(">BBB", rule.tos_mask, rule.start, rule.end)
    elif kind == _T.MATCH_IP_PROTOCOL:
        body = struct.pack(">B", rule.ip_protocol)
    elif kind == _T.MATCH_ETHERTYPE:
        body = struct.pack(">H", rule.ethertype)
    elif kind == _T.MATCH_ICMP:
        body = struct.pack(">BBB", rule.icmp_type, rule.icmp_code, rule.icmp_flags)
    elif kind in _PORT_MATCHES or kind == _T.MATCH_FRAME_SIZE_RANGE:
        body = struct.pack(">HH", rule.start, rule.end)
    elif kind == _T.MATCH_CHARACTERISTICS:
        body = struct.pack(">Q", rule.characteristics)
    elif kind == _T.MATCH_RANDOM:
        body = struct.pack(">I", rule.probability)
    elif kind in _TAG_MATCHES:
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


# ---------------------------------------------------------------------- evaluation


class FilterVerdict(IntEnum):
    """Result of one pass over a table (``_doZtFilterResult``)."""

    NO_MATCH = 0
    DROP = 1
    REDIRECT = 2
    ACCEPT = 3
    SUPER_ACCEPT = 4


#: EXT_FRAME flags byte of the copy sent for ``(action, inbound)`` (A.4.5).
EXT_FRAME_FLAGS: dict[tuple[int, bool], int] = {
    (_T.ACTION_TEE, False): 0x02,
    (_T.ACTION_WATCH, False): 0x16,
    (_T.ACTION_REDIRECT, False): 0x04,
    (_T.ACTION_TEE, True): 0x08,
    (_T.ACTION_WATCH, True): 0x1C,
    (_T.ACTION_REDIRECT, True): 0x0A,
}


@dataclass(frozen=True, slots=True)
class FilterAction:
    """A copy of the frame to send as EXT_FRAME (verb 0x07) to ``target``.

    The packet is ``u64 nwid`` ``u8 ext_flags`` ``dest MAC`` ``source MAC``
    ``u16 ethertype`` ``payload[:length]``, compressed.
    """

    kind: RuleType  # ACTION_TEE, ACTION_WATCH or ACTION_REDIRECT
    target: int  # 40-bit ZeroTier address
    length: int  # payload bytes to include
    ext_flags: int  # EXT_FRAME flags byte (EXT_FRAME_FLAGS)
    rule_flags: int = 0  # the rule's own u32 flags field (informational)


@dataclass(frozen=True, slots=True)
class FrameContext:
    """Everything one filtering decision looks at besides the rules.

    ``peer`` is the other node: the sender when ``inbound``, the destination when
    outbound (0 = unknown, e.g. the first pass over a multicast or bridged frame).
    ``payload`` is the Ethernet payload (after the 14-byte header); all rule offsets
    are relative to it and its length is the frame length the rules see.

    ``our_tags`` are my tags from my network config; ``peer_tags`` are the peer's
    timestamp-valid tags from its membership (empty if none / no peer).
    ``unsupported_match_result`` is config flag 0x08 (RULES_RESULT_OF_UNSUPPORTED_MATCH).
    ``vlan_pcp``/``vlan_dei`` are carried for completeness only: the reference never
    looks at the frame's values (a PCP/DEI rule matches iff its own value is 0), and
    ``vlan_id`` is always 0 in practice.

    ``ip_owned`` / ``mac_owned`` answer the sender-authenticated characteristics.
    Inbound: does the peer hold a timestamp-valid certificate of ownership for this
    IP (4 or 16 bytes) / MAC, or (IP only) is it NDP-emulated — see
    :func:`ndp_emulation_owns`. Outbound: does any of my own certificates own it.
    ``None`` means "owns nothing".
    """

    network_id: int
    our_address: int
    peer: int
    inbound: bool
    mac_source: int
    mac_dest: int
    ethertype: int
    payload: bytes
    vlan_id: int = 0
    vlan_pcp: int = 0
    vlan_dei: int = 0
    our_tags: Mapping[int, int] = field(default_factory=dict)
    peer_tags: Mapping[int, int] = field(default_factory=dict)
    unsupported_match_result: bool = False
    ip_owned: Callable[[bytes], bool] | None = None
    mac_owned: Callable[[int], bool] | None = None

    @property
    def zt_source(self) -> int:
        return (self.peer if self.inbound else self.our_address) & _M40

    @property
    def zt_dest(self) -> int:
        return (self.our_address if self.inbound else self.peer) & _M40


@dataclass(frozen=True, slots=True)
class FilterResult:
    """Outcome of :func:`filter_frame` (one table).

    ``zt_dest`` is the destination after a REDIRECT (else unchanged); ``tee`` is the
    TEE/WATCH copy the pass left armed (the last one taken; reported whatever the
    verdict, it is only sent if the frame is accepted); ``qos_bucket`` is set when an
    ACTION_PRIORITY decided.
    """

    verdict: FilterVerdict
    zt_dest: int
    tee: FilterAction | None = None
    qos_bucket: int | None = None


@dataclass(frozen=True, slots=True)
class FilterDecision:
    """Outcome of :func:`filter_with_capabilities` (the whole decision for a frame).

    ``accept``: 0 drop, 1 accept, 2 accept even if bridged (super-accept). It is 0
    when the frame was redirected (deliver/send nothing locally; the REDIRECT copy
    is in ``actions``). Outbound callers treat it as a bool.
    ``actions``: the EXT_FRAME copies to send, in the reference's order.
    ``verdict``: the deciding table verdict (the base table's, or the accepting
    capability's when the base table had no match); ``capability_id`` is that
    capability's ID.
    """

    accept: int
    verdict: FilterVerdict
    actions: tuple[FilterAction, ...] = ()
    capability_id: int | None = None
    qos_bucket: int | None = None


def ndp_emulation_owns(ip: bytes, sixplane: bytes | None, rfc4193: bytes | None) -> bool:
    """The NDP-emulation ownership shortcut for inbound sender-IP authentication.

    True for an IPv6 ``ip`` sharing the first 5 bytes (/40) with my 6PLANE address
    or the first 11 bytes (/88) with my RFC4193 address, each considered only if it
    is among my assigned addresses (pass ``None`` otherwise), and only when the
    network has NDP emulation on (the caller checks that flag).
    """
    if len(ip) != 16:
        return False
    if sixplane is not None and ip[:5] == sixplane[:5]:
        return True
    return rfc4193 is not None and ip[:11] == rfc4193[:11]


def _ipv4_in(rule: Rule, addr: bytes) -> bool:
    # Containment as InetAddress::containsAddress: 0 bits matches everything; the
    # shift count of a 32-bit shift is taken mod 32 (prefix lengths above 32 from a
    # non-reference controller behave as on x86-64).
    bits = rule.ip_bits
    if bits == 0:
        return True
    shift = (32 - bits) & 31
    return (int.from_bytes(addr, "big") >> shift) == (int.from_bytes(rule.ip, "big") >> shift)


def _ipv6_mask(bits: int) -> int:
    if bits == 0:
        return 0
    hi = _M64 if bits >= 64 else (_M64 << (64 - bits)) & _M64
    lo = 0 if bits <= 64 else (_M64 << ((128 - bits) & 63)) & _M64
    return (hi << 64) | lo


def _ipv6_in(rule: Rule, addr: bytes) -> bool:
    # NOTE (quirk, reference behaviour): the packet address is masked but the rule
    # address is not, so a rule address with bits set past its prefix never matches
    # (and ::/0 matches everything while 2001:db8::/0 matches nothing).
    masked = int.from_bytes(addr, "big") & _ipv6_mask(rule.ip_bits)
    return masked == int.from_bytes(rule.ip, "big")


def _integer_at(rule: Rule, data: bytes) -> int:
    fmt = rule.int_format
    bits = (fmt & 63) + 1
    nbytes = (bits + 7) // 8
    value = 0
    if fmt & 0x80 == 0:
        idx = rule.idx + (8 - nbytes)  # NOTE (quirk): offset shifted as in the reference
        if idx + nbytes <= len(data):
            value = int.from_bytes(data[idx : idx + nbytes], "big")
        return value & (_M64 >> (64 - bits))
    idx = rule.idx
    if idx + nbytes <= len(data):
        for i in range(nbytes):
            value = (value >> 8) | (data[idx + i] << 56)
    return value >> (64 - bits)


# Plain-int copies of the entry types the evaluator compares against (enum member
# lookups cost more than the comparisons themselves in the per-frame loop).
_ACTION_ACCEPT = int(_T.ACTION_ACCEPT)
_ACTION_BREAK = int(_T.ACTION_BREAK)
_ACTION_DROP = int(_T.ACTION_DROP)
_ACTION_PRIORITY = int(_T.ACTION_PRIORITY)
_ACTION_REDIRECT = int(_T.ACTION_REDIRECT)
_MATCH_CHARACTERISTICS = int(_T.MATCH_CHARACTERISTICS)
_MATCH_DEST_ZEROTIER_ADDRESS = int(_T.MATCH_DEST_ZEROTIER_ADDRESS)
_MATCH_ETHERTYPE = int(_T.MATCH_ETHERTYPE)
_MATCH_FRAME_SIZE_RANGE = int(_T.MATCH_FRAME_SIZE_RANGE)
_MATCH_ICMP = int(_T.MATCH_ICMP)
_MATCH_INTEGER_RANGE = int(_T.MATCH_INTEGER_RANGE)
_MATCH_IPV4_SOURCE = int(_T.MATCH_IPV4_SOURCE)
_MATCH_IPV6_SOURCE = int(_T.MATCH_IPV6_SOURCE)
_MATCH_IP_DEST_PORT_RANGE = int(_T.MATCH_IP_DEST_PORT_RANGE)
_MATCH_IP_PROTOCOL = int(_T.MATCH_IP_PROTOCOL)
_MATCH_IP_TOS = int(_T.MATCH_IP_TOS)
_MATCH_MAC_DEST = int(_T.MATCH_MAC_DEST)
_MATCH_MAC_SOURCE = int(_T.MATCH_MAC_SOURCE)
_MATCH_RANDOM = int(_T.MATCH_RANDOM)
_MATCH_SOURCE_ZEROTIER_ADDRESS = int(_T.MATCH_SOURCE_ZEROTIER_ADDRESS)
_MATCH_TAGS_BITWISE_AND = int(_T.MATCH_TAGS_BITWISE_AND)
_MATCH_TAGS_BITWISE_OR = int(_T.MATCH_TAGS_BITWISE_OR)
_MATCH_TAGS_BITWISE_XOR = int(_T.MATCH_TAGS_BITWISE_XOR)
_MATCH_TAGS_DIFFERENCE = int(_T.MATCH_TAGS_DIFFERENCE)
_MATCH_TAG_RECEIVER = int(_T.MATCH_TAG_RECEIVER)
_MATCH_TAG_SENDER = int(_T.MATCH_TAG_SENDER)
_MATCH_VLAN_DEI = int(_T.MATCH_VLAN_DEI)
_MATCH_VLAN_ID = int(_T.MATCH_VLAN_ID)
_MATCH_VLAN_PCP = int(_T.MATCH_VLAN_PCP)
_HARD_NO = 2
_HARD_YES = 3


def filter_frame(
    rules: Sequence[Rule],
    ctx: FrameContext,
    prng: Callable[[], int],
) -> FilterResult:
    """Evaluate one rule table against a frame (``_doZtFilter``, A.4.3 / A.4.4).

    ``prng`` is called once per RANDOM match actually evaluated (matches skipped by
    the AND short-circuit draw nothing); its low 32 bits are used.
    """
    inbound = ctx.inbound
    me = ctx.our_address & _M40
    zt_source = ctx.zt_source
    zt_dest = ctx.zt_dest
    data = ctx.payload
    frame_len = len(data)
    ethertype = ctx.ethertype & _M16
    ff = FrameFields(data, ethertype)
    super_accept = False
    set_matches = 1
    skip_drop = False
    tee: FilterAction | None = None
    owned_mask = -1  # sender-authenticated bits, computed on first use

    for rule in rules:
        t = rule.t
        rt = t & RULE_TYPE_MASK

        if rt <= ACTION_MAX_ID:
            if set_matches:
                if rt == _ACTION_PRIORITY:
                    # The bucket is not on the wire: receivers always see 0 (<= 8).
                    return FilterResult(FilterVerdict.ACCEPT, zt_dest, tee, 0)
                if rt == _ACTION_DROP:
                    if skip_drop:
                        skip_drop = False
                        continue
                    return FilterResult(FilterVerdict.DROP, zt_dest, tee)
                if rt == _ACTION_ACCEPT:
                    verdict = FilterVerdict.SUPER_ACCEPT if super_accept else FilterVerdict.ACCEPT
                    return FilterResult(verdict, zt_dest, tee)
                if rt in _FORWARD:
                    target = rule.address & _M40
                    if target == zt_source:
                        pass  # the sender is the target: nothing to do
                    elif target == me:
                        if inbound:
                            return FilterResult(FilterVerdict.SUPER_ACCEPT, zt_dest, tee)
                    elif target == zt_dest:
                        pass  # already going there
                    elif rt == _ACTION_REDIRECT:
                        return FilterResult(FilterVerdict.REDIRECT, target, tee)
                    else:
                        length = min(frame_len, rule.length) if rule.length else frame_len
                        kind = RuleType(rt)
                        tee = FilterAction(
                            kind, target, length, EXT_FRAME_FLAGS[(kind, inbound)], rule.flags
                        )
                    continue
                if rt == _ACTION_BREAK:
                    return FilterResult(FilterVerdict.NO_MATCH, zt_dest, tee)
                continue  # unknown actions are no-ops
            if inbound and rt in _FORWARD and (rule.address & _M40) == me:
                super_accept = True
            set_matches = 1
            continue

        if not set_matches and not t & RULE_FLAG_OR:
            continue  # AND short-circuit

        m: int
        if rt == _MATCH_SOURCE_ZEROTIER_ADDRESS:
            m = rule.zt == zt_source
        elif rt == _MATCH_DEST_ZEROTIER_ADDRESS:
            m = rule.zt == zt_dest
        elif rt == _MATCH_VLAN_ID:
            m = rule.vlan_id == (ctx.vlan_id & _M16)
        elif rt == _MATCH_VLAN_PCP:
            m = rule.vlan_pcp == 0
        elif rt == _MATCH_VLAN_DEI:
            m = rule.vlan_dei == 0
        elif rt == _MATCH_MAC_SOURCE:
            m = rule.mac == ctx.mac_source
        elif rt == _MATCH_MAC_DEST:
            m = rule.mac == ctx.mac_dest
        elif rt in _IPV4_MATCHES:
            if ff.is_ipv4:
                at = 12 if rt == _MATCH_IPV4_SOURCE else 16
                m = _ipv4_in(rule, data[at : at + 4])
            else:
                m = _HARD_NO
        elif rt in _IPV6_MATCHES:
            if ff.is_ipv6:
                at = 8 if rt == _MATCH_IPV6_SOURCE else 24
                m = _ipv6_in(rule, data[at : at + 16])
            else:
                m = _HARD_NO
        elif rt == _MATCH_IP_TOS:
            tos = ff.tos()
            if tos is None:
                m = _HARD_NO
            else:
                tos &= rule.tos_mask
                m = rule.start <= tos <= rule.end
        elif rt == _MATCH_IP_PROTOCOL:
            proto = ff.ip_protocol()
            m = _HARD_NO if proto is None else rule.ip_protocol == proto
        elif rt == _MATCH_ETHERTYPE:
            m = rule.ethertype == ethertype
        elif rt == _MATCH_ICMP:
            m = _match_icmp(rule, ff)
        elif rt in _PORT_MATCHES:
            m = _match_port(rule, rt, ff)
        elif rt == _MATCH_CHARACTERISTICS:
            cf = CHAR_INBOUND if inbound else 0
            if (ctx.mac_dest >> 40) & 1:
                cf |= CHAR_MULTICAST
            if ctx.mac_dest == 0xFFFFFFFFFFFF:
                cf |= CHAR_BROADCAST
            if owned_mask < 0:
                owned_mask = _ownership_bits(ctx, ff)
            cf |= owned_mask | ff.tcp_flag_bits()
            m = (cf & rule.characteristics) != 0
        elif rt == _MATCH_FRAME_SIZE_RANGE:
            m = rule.start <= frame_len <= rule.end
        elif rt == _MATCH_RANDOM:
            m = (prng() & _M32) <= rule.probability
        elif rt in _TAG_MATCHES:
            local = ctx.our_tags.get(rule.tag_id)
            remote = ctx.peer_tags.get(rule.tag_id)
            if rt in (_MATCH_TAG_SENDER, _MATCH_TAG_RECEIVER):
                if super_accept:
                    skip_drop = True
                    m = _HARD_YES
                elif (rt == _MATCH_TAG_SENDER) == inbound:
                    # sender of an inbound frame / receiver of an outbound one: the peer's tag
                    if remote is not None:
                        m = remote == rule.tag_value
                    elif rt == _MATCH_TAG_RECEIVER:
                        skip_drop = True
                        m = _HARD_YES
                    else:
                        m = _HARD_NO
                else:
                    m = _HARD_NO if local is None else local == rule.tag_value
            elif local is None:
                m = _HARD_NO
            elif remote is None:
                if inbound and not super_accept:
                    m = _HARD_NO
                else:
                    skip_drop = True
                    m = _HARD_YES
            else:
                v = rule.tag_value
                if rt == _MATCH_TAGS_DIFFERENCE:
                    m = abs(local - remote) <= v
                elif rt == _MATCH_TAGS_BITWISE_AND:
                    m = (local & remote) == v
                elif rt == _MATCH_TAGS_BITWISE_OR:
                    m = (local | remote) == v
                elif rt == _MATCH_TAGS_BITWISE_XOR:
                    m = (local ^ remote) == v
                else:  # TAGS_EQUAL
                    m = local == v and remote == v
        elif rt == _MATCH_INTEGER_RANGE:
            m = rule.start <= _integer_at(rule, data) <= integer_range_end(rule)
        else:
            m = ctx.unsupported_match_result

        if m == _HARD_YES:
            result = 1
        elif m == _HARD_NO:
            result = 0
        else:
            result = int(m) ^ (t >> 7)
        if t & RULE_FLAG_OR:
            set_matches |= result
        else:
            set_matches &= result

    return FilterResult(FilterVerdict.NO_MATCH, zt_dest, tee)


def _match_icmp(rule: Rule, ff: FrameFields) -> int:
    data = ff.data
    if ff.is_ipv4:
        if data[9] != IPPROTO_ICMP:
            return _HARD_NO
        pos = ff.ipv4_header_length()
    elif ff.ethertype == ETH_IPV6:
        walked = ff.ipv6_walk()
        if walked is None or walked[1] != IPPROTO_ICMPV6:
            return _HARD_NO
        pos = walked[0]
    else:
        return _HARD_NO
    if ff.length < pos + 2 or data[pos] != rule.icmp_type:
        return _HARD_NO
    if rule.icmp_flags & 0x01:
        return int(data[pos + 1] == rule.icmp_code)
    return _HARD_YES


def _match_port(rule: Rule, rt: int, ff: FrameFields) -> int:
    data = ff.data
    if ff.is_ipv4:
        pos = ff.ipv4_header_length()
        proto = data[9]
        ipv6 = False
    elif ff.ethertype == ETH_IPV6:
        walked = ff.ipv6_walk()
        if walked is None:
            return _HARD_NO
        pos, proto = walked
        ipv6 = True
    else:
        return _HARD_NO
    if proto not in PORT_PROTOCOLS or ff.length <= pos + 4:
        return 0  # no port: a plain non-match (the NOT bit applies)
    if rt == _MATCH_IP_DEST_PORT_RANGE:
        pos += 2
    port = (data[pos] << 8) | data[pos + 1]
    if ipv6 and port == 0:
        return 0  # NOTE (quirk): an IPv6 port of 0 never matches
    return int(rule.start <= port <= rule.end)


def _ownership_bits(ctx: FrameContext, ff: FrameFields) -> int:
    ip, auto = ff.sender_ip()
    bits = CHAR_SENDER_IP_AUTHENTICATED if auto else 0
    if ip is not None and ctx.ip_owned is not None and ctx.ip_owned(ip):
        bits |= CHAR_SENDER_IP_AUTHENTICATED
    if ctx.mac_owned is not None and ctx.mac_owned(ctx.mac_source):
        bits |= CHAR_SENDER_MAC_AUTHENTICATED
    return bits


def filter_with_capabilities(
    rules: Sequence[Rule],
    capabilities: Iterable[tuple[int, Sequence[Rule]]],
    ctx: FrameContext,
    prng: Callable[[], int],
    *,
    no_tee: bool = False,
) -> FilterDecision:
    """Decide a frame: base rules, then capabilities, then the copies (A.4.5).

    ``capabilities`` are ``(capability id, rules)`` pairs in evaluation order:
    outbound, my own capabilities (the config keeps them in ascending ID order);
    inbound, the sender's timestamp-valid capabilities from its membership.
    A capability is consulted only when the base table ends without a decision;
    the first one that accepts (ACCEPT, SUPER_ACCEPT or REDIRECT) wins, a DROP in a
    capability only ends that capability.

    ``no_tee`` (outbound only) suppresses TEE/WATCH copies, as for the per-recipient
    passes over a multicast or bridged frame. REDIRECT copies are never suppressed.
    """
    inbound = ctx.inbound
    dest = ctx.zt_dest
    base = filter_frame(rules, ctx, prng)
    actions: list[FilterAction] = []
    qos = base.qos_bucket
    capability_id: int | None = None
    verdict = base.verdict
    final_dest = dest
    accept = 0

    if base.verdict == FilterVerdict.NO_MATCH:
        for cap_id, cap_rules in capabilities:
            r = filter_frame(cap_rules, ctx, prng)
            if r.qos_bucket is not None:
                qos = r.qos_bucket
            if r.verdict in (FilterVerdict.NO_MATCH, FilterVerdict.DROP):
                continue
            capability_id = cap_id
            verdict = r.verdict
            final_dest = r.zt_dest
            accept = 2 if (inbound and r.verdict == FilterVerdict.SUPER_ACCEPT) else 1
            if r.tee is not None and r.tee.target and (inbound or not no_tee):
                actions.append(r.tee)
            break
    elif base.verdict == FilterVerdict.DROP:
        return FilterDecision(0, FilterVerdict.DROP, (), None, qos)
    else:
        final_dest = base.zt_dest
        accept = 2 if base.verdict == FilterVerdict.SUPER_ACCEPT else 1

    if not accept:
        return FilterDecision(0, verdict, (), None, qos)

    if base.tee is not None and base.tee.target and (inbound or not no_tee):
        actions.append(base.tee)
    if final_dest != dest and final_dest:
        actions.append(
            FilterAction(
                RuleType.ACTION_REDIRECT,
                final_dest,
                len(ctx.payload),
                EXT_FRAME_FLAGS[(RuleType.ACTION_REDIRECT, inbound)],
            )
        )
        accept = 0
    return FilterDecision(accept, verdict, tuple(actions), capability_id, qos)


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
