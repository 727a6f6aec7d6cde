"""The rules engine's evaluator: one frame against a network's rule tables (A.4.3-A.4.5).

:func:`filter_frame` is one pass over one table (``_doZtFilter``);
:func:`filter_with_capabilities` is the whole per-frame decision with the
capability fallback and the TEE/WATCH/REDIRECT copies (``filterOutgoingPacket`` /
``filterIncomingPacket``), answered as a :class:`Verdict`. Randomness (the RANDOM
match) and credential lookups (certificates of ownership) are supplied by the
caller. The tables themselves and their wire form are :mod:`ztone.node.wire.rules`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from ztone.node.wire.frame_fields import (
    ETH_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    PORT_PROTOCOLS,
    FrameFields,
)
from ztone.node.wire.rules import (
    ACTION_MAX_ID,
    CHAR_BROADCAST,
    CHAR_INBOUND,
    CHAR_MULTICAST,
    CHAR_SENDER_IP_AUTHENTICATED,
    CHAR_SENDER_MAC_AUTHENTICATED,
    FORWARD_ACTIONS,
    IPV4_MATCHES,
    IPV6_MATCHES,
    PORT_MATCHES,
    RULE_FLAG_OR,
    RULE_TYPE_MASK,
    TAG_MATCHES,
    Rule,
    RuleType,
    integer_range_end,
)

__all__ = [
    "EXT_FRAME_FLAGS",
    "FilterAction",
    "FilterDecision",
    "FilterResult",
    "FilterVerdict",
    "FrameContext",
    "Verdict",
    "filter_frame",
    "filter_with_capabilities",
    "ndp_emulation_owns",
]

_T = RuleType
_M16 = 0xFFFF
_M32 = 0xFFFFFFFF
_M40 = 0xFFFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF


class Verdict(IntEnum):
    """What happens to a frame (the whole decision, ``filterIncomingPacket``'s result).

    ``DROP`` also when the frame was redirected (its REDIRECT copy goes out instead);
    ``SUPER_ACCEPT`` delivers an inbound frame even if bridged. Falsy only for
    ``DROP``, so ``if verdict:`` reads "accepted".
    """

    DROP = 0
    ACCEPT = 1
    SUPER_ACCEPT = 2


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

    ``accept``: the :class:`Verdict`. It is ``DROP`` when the frame was redirected
    (deliver/send nothing locally; the REDIRECT copy is in ``actions``). Outbound
    callers treat it as a bool.
    ``actions``: the EXT_FRAME copies to send, in the reference's order.
    ``verdict``: the deciding table verdict (the base table's, or the accepting
    capability's when the base table had no match); ``capability_id`` is that
    capability's ID.
    """

    accept: Verdict
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
                if rt in FORWARD_ACTIONS:
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
            if inbound and rt in FORWARD_ACTIONS and (rule.address & _M40) == me:
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
        elif rt in IPV4_MATCHES:
            if ff.is_ipv4:
                at = 12 if rt == _MATCH_IPV4_SOURCE else 16
                m = _ipv4_in(rule, data[at : at + 4])
            else:
                m = _HARD_NO
        elif rt in IPV6_MATCHES:
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
        elif rt in PORT_MATCHES:
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
        elif rt in TAG_MATCHES:
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
    accept = Verdict.DROP

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
            super_accept = inbound and r.verdict == FilterVerdict.SUPER_ACCEPT
            accept = Verdict.SUPER_ACCEPT if super_accept else Verdict.ACCEPT
            if r.tee is not None and r.tee.target and (inbound or not no_tee):
                actions.append(r.tee)
            break
    elif base.verdict == FilterVerdict.DROP:
        return FilterDecision(Verdict.DROP, FilterVerdict.DROP, (), None, qos)
    else:
        final_dest = base.zt_dest
        super_accept = base.verdict == FilterVerdict.SUPER_ACCEPT
        accept = Verdict.SUPER_ACCEPT if super_accept else Verdict.ACCEPT

    if not accept:
        return FilterDecision(Verdict.DROP, verdict, (), None, qos)

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
        accept = Verdict.DROP
    return FilterDecision(accept, verdict, tuple(actions), capability_id, qos)
