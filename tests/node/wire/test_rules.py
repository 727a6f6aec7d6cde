"""The rule table's wire codec (PROTOCOL-NETWORK-SERVICE A.4.1, A.4.2): every entry
type, canonical and non-canonical lengths, truncation, random bytes and tables.

The evaluator's tests, and the frame and table builders shared here, are in
``tests/node/vl2/test_filter.py``.
"""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.vl2.test_filter import (
    ACCEPT,
    BCAST,
    MAC_ME,
    ME,
    OTHER,
    PEER,
    Entropy,
    R,
    T,
    entropy,
    table_of,
)
from ztone.errors import MalformedPacket
from ztone.node.wire.rules import (
    CHAR_INBOUND,
    CHAR_TCP_SYN,
    DEFAULT_RULES,
    Rule,
    RuleType,
    parse_rules,
    serialize_rules,
)


def _rule_examples() -> list[Rule]:
    ip4 = bytes((10, 1, 0, 0))
    ip6 = ipaddress.IPv6Address("fd00:1::").packed
    return [
        R(T.ACTION_DROP),
        R(T.ACTION_ACCEPT),
        R(T.ACTION_TEE, address=OTHER, flags=0xDEADBEEF, length=64),
        R(T.ACTION_WATCH, address=(1 << 63) | OTHER, flags=1, length=0xFFFF),
        R(T.ACTION_REDIRECT, address=OTHER),
        R(T.ACTION_BREAK),
        R(T.ACTION_PRIORITY),
        R(T.MATCH_SOURCE_ZEROTIER_ADDRESS, zt=PEER),
        R(T.MATCH_DEST_ZEROTIER_ADDRESS, negate=True, zt=ME),
        R(T.MATCH_VLAN_ID, vlan_id=4095),
        R(T.MATCH_VLAN_PCP, vlan_pcp=7),
        R(T.MATCH_VLAN_DEI, vlan_dei=1),
        R(T.MATCH_MAC_SOURCE, mac=MAC_ME),
        R(T.MATCH_MAC_DEST, or_=True, mac=BCAST),
        R(T.MATCH_IPV4_SOURCE, ip=ip4, ip_bits=16),
        R(T.MATCH_IPV4_DEST, ip=ip4, ip_bits=32),
        R(T.MATCH_IPV6_SOURCE, ip=ip6, ip_bits=32),
        R(T.MATCH_IPV6_DEST, ip=ip6, ip_bits=128),
        R(T.MATCH_IP_TOS, tos_mask=0xFC, start=8, end=16),
        R(T.MATCH_IP_PROTOCOL, ip_protocol=17),
        R(T.MATCH_ETHERTYPE, ethertype=0x86DD),
        R(T.MATCH_ICMP, icmp_type=3, icmp_code=1, icmp_flags=1),
        R(T.MATCH_IP_SOURCE_PORT_RANGE, start=1024, end=65535),
        R(T.MATCH_IP_DEST_PORT_RANGE, start=80, end=443),
        R(T.MATCH_CHARACTERISTICS, characteristics=CHAR_INBOUND | CHAR_TCP_SYN),
        R(T.MATCH_FRAME_SIZE_RANGE, start=0, end=1500),
        R(T.MATCH_RANDOM, probability=0x7FFFFFFF),
        R(T.MATCH_TAGS_DIFFERENCE, tag_id=1, tag_value=2),
        R(T.MATCH_TAGS_BITWISE_AND, tag_id=3, tag_value=4),
        R(T.MATCH_TAGS_BITWISE_OR, tag_id=5, tag_value=6),
        R(T.MATCH_TAGS_BITWISE_XOR, tag_id=7, tag_value=8),
        R(T.MATCH_TAGS_EQUAL, tag_id=9, tag_value=10),
        R(T.MATCH_TAG_SENDER, tag_id=11, tag_value=12),
        R(T.MATCH_TAG_RECEIVER, tag_id=0xFFFFFFFF, tag_value=0xFFFFFFFF),
        R(T.MATCH_INTEGER_RANGE, start=5, end=1000, idx=14, int_format=0x80 | 31),
        Rule(20, raw=b"\x01\x02"),
        Rule(0x40 | 63),
        Rule(9, raw=b"abc"),
    ]


EXAMPLES = _rule_examples()


def test_every_type_is_exercised_on_the_wire() -> None:
    assert {int(t) for t in RuleType} <= {r.t & 0x3F for r in EXAMPLES}


@pytest.mark.parametrize("rule", EXAMPLES, ids=lambda r: str(r.kind))
def test_wire_roundtrip_each(rule: Rule) -> None:
    blob = serialize_rules([rule])
    assert blob[0] == rule.t and blob[1] == len(blob) - 2
    assert parse_rules(blob) == ([rule], len(blob))


def test_wire_known_encodings() -> None:
    assert serialize_rules(DEFAULT_RULES) == b"\x01\x00"
    assert serialize_rules([R(T.MATCH_ETHERTYPE, negate=True, ethertype=0x86DD)]) == bytes.fromhex(
        "a50286dd"
    )
    assert serialize_rules([R(T.ACTION_TEE, address=OTHER, flags=2, length=3)]) == bytes.fromhex(
        "020e0000001122334455000000020003"
    )
    assert serialize_rules(
        [R(T.MATCH_IPV4_SOURCE, ip=bytes((10, 0, 0, 0)), ip_bits=8)]
    ) == bytes.fromhex("1f050a00000008")


def test_wire_table_roundtrip_and_offsets() -> None:
    blob = serialize_rules(EXAMPLES)
    assert parse_rules(blob) == (EXAMPLES, len(blob))
    assert parse_rules(b"xx" + blob + b"tail", 2, len(EXAMPLES)) == (EXAMPLES, 2 + len(blob))
    rules, end = parse_rules(blob, limit=3)
    assert rules == EXAMPLES[:3] and end == len(serialize_rules(EXAMPLES[:3]))
    assert parse_rules(b"") == ([], 0)


def test_wire_canonical_mode_matches_reference_serializer() -> None:
    unknown = Rule(20, raw=b"\x01\x02")
    assert serialize_rules([unknown], canonical=True) == b"\x14\x00"
    wide = R(T.MATCH_INTEGER_RANGE, start=1, end=(1 << 40), idx=0, int_format=63)
    blob = serialize_rules([wide], canonical=True)
    assert int.from_bytes(blob[10:18], "big") == 1 + (((1 << 40) - 1) & 0xFFFFFFFF)
    assert serialize_rules(EXAMPLES[:-3], canonical=True) == serialize_rules(EXAMPLES[:-3])


def test_wire_noncanonical_lengths() -> None:
    # longer than needed: extra bytes ignored; shorter: fields read on from the table
    long = bytes((T.MATCH_ETHERTYPE, 4)) + b"\x08\x00\xff\xff" + b"\x01\x00"
    assert parse_rules(long)[0] == [R(T.MATCH_ETHERTYPE, ethertype=0x800), ACCEPT]
    short = bytes((T.MATCH_IP_PROTOCOL, 0)) + b"\x01\x00"
    assert parse_rules(short)[0] == [R(T.MATCH_IP_PROTOCOL, ip_protocol=1), ACCEPT]
    with pytest.raises(MalformedPacket):
        parse_rules(bytes((T.MATCH_ETHERTYPE, 0)) + b"\x01")


def test_wire_every_truncated_prefix_raises() -> None:
    blob = serialize_rules(EXAMPLES)
    for n in range(len(blob)):
        with pytest.raises(MalformedPacket):
            parse_rules(blob[:n], 0, len(EXAMPLES))
    # without a count a cut inside an entry is still an error
    bounds = set(itertools.accumulate(len(serialize_rules([r])) for r in EXAMPLES))
    for n in range(1, len(blob)):
        if n not in bounds:
            with pytest.raises(MalformedPacket):
                parse_rules(blob[:n])


@given(st.binary(max_size=200), st.integers(0, 10), st.one_of(st.none(), st.integers(0, 20)))
def test_wire_random_bytes_raise_only_malformed(
    data: bytes, offset: int, count: int | None
) -> None:
    try:
        rules, end = parse_rules(data, offset, count)
    except MalformedPacket:
        return
    assert offset <= end <= len(data)
    # known types re-encode at their canonical length, keeping every field
    assert parse_rules(serialize_rules(rules))[0] == rules


@given(entropy)
def test_wire_roundtrip_random_tables(e: Entropy) -> None:
    rules = table_of(e)
    blob = serialize_rules(rules)
    assert parse_rules(blob) == (rules, len(blob))
    assert parse_rules(blob, 0, len(rules)) == (rules, len(blob))
