"""JSON rule representation of the controller (PROTOCOL-NETWORK-SERVICE B.9)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locations import VECTORS
from ztone.controller.rules_json import (
    DEFAULT_RULES_JSON,
    UnsupportedRule,
    normalize_rules_json,
    rule_from_json,
    rule_to_json,
    rules_from_json,
    rules_to_json,
)
from ztone.node.wire.rules import DEFAULT_RULES, Rule, RuleType

T = RuleType
R = Rule.make
M64 = (1 << 64) - 1


def _stored_rule_arrays() -> list[tuple[str, list[object]]]:
    """Every ``rules`` array in the lab1 controller's API dump and network files."""
    found: list[tuple[str, list[object]]] = []

    def walk(obj: object, where: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k == "rules" and isinstance(v, list):
                    found.append((where, v))
                else:
                    walk(v, f"{where}/{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{where}/{i}")

    api = VECTORS / "lab1_api" / "ctrl" / "api.json"
    walk(json.loads(api.read_text()), "api.json")
    for path in sorted((VECTORS / "lab1_controller" / "controller.d" / "network").glob("*.json")):
        walk(json.loads(path.read_text()), path.name)
    return found


STORED = _stored_rule_arrays()


def test_vectors_found() -> None:
    assert len(STORED) >= 2


@pytest.mark.parametrize(("where", "rules"), STORED, ids=[w for w, _ in STORED])
def test_stored_default_rules(where: str, rules: list[object]) -> None:
    # A fresh network holds DB::initNetwork's literal default ...
    assert rules == list(DEFAULT_RULES_JSON)
    # ... which parses to the single ACCEPT rule ...
    assert [rule_from_json(r) for r in rules] == list(DEFAULT_RULES)
    # ... and re-renders (as a POST would store it) without not/or on the action.
    assert normalize_rules_json(rules) == [{"type": "ACTION_ACCEPT"}]
    assert json.dumps(list(DEFAULT_RULES_JSON), separators=(",", ":"), sort_keys=True) == (
        '[{"not":false,"or":false,"type":"ACTION_ACCEPT"}]'
    )


# ------------------------------------------------------------------ exact renderings

RENDERED: list[tuple[Rule, dict[str, object]]] = [
    (R(T.ACTION_DROP), {"type": "ACTION_DROP"}),
    (R(T.ACTION_ACCEPT), {"type": "ACTION_ACCEPT"}),
    (R(T.ACTION_BREAK), {"type": "ACTION_BREAK"}),
    (
        R(T.ACTION_TEE, address=0x1122334455, flags=3, length=128),
        {"address": "1122334455", "flags": 3, "length": 128, "type": "ACTION_TEE"},
    ),
    (
        R(T.ACTION_WATCH, address=0x0000000AB1, flags=0, length=0),
        {"address": "0000000ab1", "flags": 0, "length": 0, "type": "ACTION_WATCH"},
    ),
    (
        R(T.ACTION_REDIRECT, address=0xDEADBEEF00, flags=1),
        {"address": "deadbeef00", "flags": 1, "type": "ACTION_REDIRECT"},
    ),
    (
        R(T.MATCH_SOURCE_ZEROTIER_ADDRESS, zt=0x4B3BACDDB4),
        {"not": False, "or": False, "type": "MATCH_SOURCE_ZEROTIER_ADDRESS", "zt": "4b3bacddb4"},
    ),
    (
        R(T.MATCH_DEST_ZEROTIER_ADDRESS, negate=True, zt=0x12),
        {"not": True, "or": False, "type": "MATCH_DEST_ZEROTIER_ADDRESS", "zt": "0000000012"},
    ),
    (
        R(T.MATCH_VLAN_ID, or_=True, vlan_id=42),
        {"not": False, "or": True, "type": "MATCH_VLAN_ID", "vlanId": 42},
    ),
    (
        R(T.MATCH_VLAN_PCP, vlan_pcp=3),
        {"not": False, "or": False, "type": "MATCH_VLAN_PCP", "vlanPcp": 3},
    ),
    (
        R(T.MATCH_VLAN_DEI, vlan_dei=1),
        {"not": False, "or": False, "type": "MATCH_VLAN_DEI", "vlanDei": 1},
    ),
    (
        R(T.MATCH_MAC_SOURCE, mac=0x32AABBCC0D0E),
        {"mac": "32:aa:bb:cc:0d:0e", "not": False, "or": False, "type": "MATCH_MAC_SOURCE"},
    ),
    (
        R(T.MATCH_MAC_DEST, negate=True, or_=True, mac=0xFFFFFFFFFFFF),
        {"mac": "ff:ff:ff:ff:ff:ff", "not": True, "or": True, "type": "MATCH_MAC_DEST"},
    ),
    (
        R(T.MATCH_IPV4_SOURCE, ip=bytes((10, 147, 17, 0)), ip_bits=24),
        {"ip": "10.147.17.0/24", "not": False, "or": False, "type": "MATCH_IPV4_SOURCE"},
    ),
    (
        R(T.MATCH_IPV4_DEST, ip=bytes(4), ip_bits=0),
        {"ip": "0.0.0.0/0", "not": False, "or": False, "type": "MATCH_IPV4_DEST"},
    ),
    (
        R(T.MATCH_IPV6_SOURCE, ip=ipaddress.IPv6Address("fd80:56c2:e21c::").packed, ip_bits=88),
        {"ip": "fd80:56c2:e21c::/88", "not": False, "or": False, "type": "MATCH_IPV6_SOURCE"},
    ),
    (
        R(T.MATCH_IPV6_DEST, ip=ipaddress.IPv6Address("::ffff:10.1.2.3").packed, ip_bits=128),
        {"ip": "::ffff:10.1.2.3/128", "not": False, "or": False, "type": "MATCH_IPV6_DEST"},
    ),
    (
        R(T.MATCH_IPV6_DEST, ip=bytes(16), ip_bits=0),
        {"ip": "::/0", "not": False, "or": False, "type": "MATCH_IPV6_DEST"},
    ),
    (
        R(T.MATCH_IP_TOS, tos_mask=0xFC, start=8, end=16),
        {"end": 16, "mask": 252, "not": False, "or": False, "start": 8, "type": "MATCH_IP_TOS"},
    ),
    (
        R(T.MATCH_IP_PROTOCOL, ip_protocol=6),
        {"ipProtocol": 6, "not": False, "or": False, "type": "MATCH_IP_PROTOCOL"},
    ),
    (
        R(T.MATCH_ETHERTYPE, negate=True, ethertype=0x86DD),
        {"etherType": 34525, "not": True, "or": False, "type": "MATCH_ETHERTYPE"},
    ),
    (
        R(T.MATCH_ICMP, icmp_type=8),
        {"icmpCode": None, "icmpType": 8, "not": False, "or": False, "type": "MATCH_ICMP"},
    ),
    (
        R(T.MATCH_ICMP, icmp_type=3, icmp_code=1, icmp_flags=1),
        {"icmpCode": 1, "icmpType": 3, "not": False, "or": False, "type": "MATCH_ICMP"},
    ),
    (
        R(T.MATCH_IP_SOURCE_PORT_RANGE, start=1024, end=65535),
        {
            "end": 65535,
            "not": False,
            "or": False,
            "start": 1024,
            "type": "MATCH_IP_SOURCE_PORT_RANGE",
        },
    ),
    (
        R(T.MATCH_IP_DEST_PORT_RANGE, start=80, end=80),
        {"end": 80, "not": False, "or": False, "start": 80, "type": "MATCH_IP_DEST_PORT_RANGE"},
    ),
    (
        R(T.MATCH_CHARACTERISTICS, characteristics=0x8000000000000002),
        {"mask": "8000000000000002", "not": False, "or": False, "type": "MATCH_CHARACTERISTICS"},
    ),
    (
        R(T.MATCH_FRAME_SIZE_RANGE, start=0, end=1500),
        {"end": 1500, "not": False, "or": False, "start": 0, "type": "MATCH_FRAME_SIZE_RANGE"},
    ),
    (
        R(T.MATCH_RANDOM, probability=0xFFFFFFFF),
        {"not": False, "or": False, "probability": 4294967295, "type": "MATCH_RANDOM"},
    ),
    *(
        (
            R(kind, tag_id=7, tag_value=0x80000000),
            {"id": 7, "not": False, "or": False, "type": kind.name, "value": 2147483648},
        )
        for kind in (
            T.MATCH_TAGS_DIFFERENCE,
            T.MATCH_TAGS_BITWISE_AND,
            T.MATCH_TAGS_BITWISE_OR,
            T.MATCH_TAGS_BITWISE_XOR,
            T.MATCH_TAGS_EQUAL,
            T.MATCH_TAG_SENDER,
            T.MATCH_TAG_RECEIVER,
        )
    ),
    (
        R(T.MATCH_INTEGER_RANGE, start=0x10, end=0x20, idx=14, int_format=0x80 | 15),
        {
            "bits": 16,
            "end": "0000000000000020",
            "idx": 14,
            "little": True,
            "not": False,
            "or": False,
            "start": "0000000000000010",
            "type": "INTEGER_RANGE",
        },
    ),
]


@pytest.mark.parametrize(("rule", "obj"), RENDERED, ids=[str(o["type"]) for _, o in RENDERED])
def test_render_and_parse(rule: Rule, obj: dict[str, object]) -> None:
    rendered = rule_to_json(rule)
    assert rendered == obj
    assert list(rendered) == sorted(rendered)  # keys in nlohmann's sorted order
    assert rule_from_json(obj, allow_integer_range=True) == rule
    assert rule_from_json(json.loads(json.dumps(obj)), allow_integer_range=True) == rule


def test_every_json_type_is_covered() -> None:
    kinds = {r.t & 0x3F for r, _ in RENDERED}
    assert kinds == {int(t) for t in RuleType} - {T.ACTION_PRIORITY}


def test_no_json_form_renders_empty() -> None:
    assert rule_to_json(R(T.ACTION_PRIORITY)) == {}
    assert rule_to_json(Rule(20, raw=b"x")) == {}
    assert rule_to_json(Rule(9)) == {}


def test_render_masks_and_quirks() -> None:
    # addresses render as their low 40 bits; actions never carry not/or
    tee = rule_to_json(Rule(0x80 | T.ACTION_TEE, address=(1 << 63) | 0xAB))
    assert tee == {"address": "00000000ab", "flags": 0, "length": 0, "type": "ACTION_TEE"}
    # INTEGER_RANGE's end is start + u32(end - start), as held in memory
    wide = rule_to_json(R(T.MATCH_INTEGER_RANGE, start=1, end=(1 << 40) + 5, int_format=63))
    assert wide["end"] == f"{1 + (((1 << 40) + 4) & 0xFFFFFFFF):016x}"
    assert (wide["bits"], wide["little"]) == (64, False)
    # glibc inet_ntop forms
    for text in ("::1", "::", "1::", "fe80::1:2", "::0.2.0.3", "::ffff:1.2.3.4", "1:0:0:2::3"):
        r = R(T.MATCH_IPV6_SOURCE, ip=ipaddress.IPv6Address(text).packed, ip_bits=64)
        assert rule_to_json(r)["ip"] == f"{text}/64"


# ------------------------------------------------------------------------ parsing


def test_parse_coercions() -> None:
    assert rule_from_json({"type": "ACTION_ACCEPT", "not": "true", "or": 1}).t == 0xC1
    assert rule_from_json({"type": "MATCH_ETHERTYPE", "etherType": "2048", "not": "False"}) == R(
        T.MATCH_ETHERTYPE, ethertype=0x800
    )
    assert rule_from_json({"type": "MATCH_VLAN_ID", "vlanId": True}) == R(
        T.MATCH_VLAN_ID, vlan_id=1
    )
    assert rule_from_json({"type": "MATCH_IP_PROTOCOL", "ipProtocol": 17.0}).ip_protocol == 17
    assert rule_from_json({"type": "MATCH_ICMP", "icmpType": 8, "icmpCode": "0"}) == R(
        T.MATCH_ICMP, icmp_type=8, icmp_flags=1
    )
    # absent fields take the reference defaults
    assert rule_from_json({"type": "MATCH_ICMP"}) == R(T.MATCH_ICMP)
    assert rule_from_json({"type": "MATCH_IP_DEST_PORT_RANGE", "start": 22}) == R(
        T.MATCH_IP_DEST_PORT_RANGE, start=22, end=22
    )
    assert rule_from_json({"type": "MATCH_FRAME_SIZE_RANGE", "start": 9}).end == 9
    assert rule_from_json({"type": "MATCH_IPV4_SOURCE"}) == R(T.MATCH_IPV4_SOURCE)
    assert rule_from_json({"type": "ACTION_TEE"}) == R(T.ACTION_TEE)
    assert rule_from_json({"type": "MATCH_MAC_DEST"}) == R(T.MATCH_MAC_DEST)
    # MACs with or without separators; ZeroTier addresses without leading zeros
    for text in ("32:aa:bb:cc:dd:ee", "32-AA-BB-CC-DD-EE", "32aabbccddee"):
        assert rule_from_json({"type": "MATCH_MAC_SOURCE", "mac": text}).mac == 0x32AABBCCDDEE
    assert rule_from_json({"type": "MATCH_SOURCE_ZEROTIER_ADDRESS", "zt": "ab"}).zt == 0xAB
    # characteristics: a number or a hex string
    assert rule_from_json({"type": "MATCH_CHARACTERISTICS", "mask": 18}).characteristics == 18
    assert rule_from_json({"type": "MATCH_CHARACTERISTICS", "mask": "12"}).characteristics == 18
    assert rule_from_json({"type": "MATCH_CHARACTERISTICS", "mask": "0x12"}).characteristics == 18
    # REDIRECT has no length
    assert rule_from_json({"type": "ACTION_REDIRECT", "address": "1", "length": 9}).length == 0


def test_parse_ip_prefix_lengths() -> None:
    def bits(text: str, kind: str = "MATCH_IPV4_DEST") -> int:
        return rule_from_json({"type": kind, "ip": text}).ip_bits

    assert bits("10.0.0.1") == 0  # no /bits: a zero-length prefix, as the reference reads it
    assert bits("10.0.0.0/8") == 8
    assert bits("10.0.0.0/40") == 32  # clamped
    assert bits("10.0.0.0/300") == 32  # 300 & 0xff = 44, clamped
    assert bits("10.0.0.0/256") == 0  # 256 & 0xff
    assert bits("fd00::/200", "MATCH_IPV6_SOURCE") == 128
    assert bits("fd00::/64", "MATCH_IPV6_SOURCE") == 64


def test_integer_range_is_refused_like_the_reference() -> None:
    obj = rule_to_json(R(T.MATCH_INTEGER_RANGE, start=1, end=2, int_format=7))
    with pytest.raises(UnsupportedRule):
        rule_from_json(obj)
    assert rules_from_json([obj, {"type": "ACTION_DROP"}]) == [R(T.ACTION_DROP)]
    # numbers are accepted too when parsing is allowed
    r = rule_from_json(
        {"type": "INTEGER_RANGE", "start": 5, "end": 9, "bits": 8}, allow_integer_range=True
    )
    assert (r.start, r.end, r.int_format) == (5, 9, 7)


@pytest.mark.parametrize(
    "obj",
    [
        [],
        "ACTION_ACCEPT",
        None,
        {},
        {"type": "ACTION_PRIORITY"},
        {"type": "MATCH_NOPE"},
        {"type": 1},
        {"type": "action_accept"},
    ],
)
def test_unsupported(obj: object) -> None:
    with pytest.raises(UnsupportedRule):
        rule_from_json(obj)


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "MATCH_ETHERTYPE", "etherType": "0x800"},
        {"type": "MATCH_ETHERTYPE", "etherType": 65536},
        {"type": "MATCH_ETHERTYPE", "etherType": -1},
        {"type": "MATCH_ETHERTYPE", "etherType": 1.5},
        {"type": "MATCH_ETHERTYPE", "etherType": [1]},
        {"type": "MATCH_IP_PROTOCOL", "ipProtocol": 256},
        {"type": "MATCH_IP_DEST_PORT_RANGE", "start": 1, "end": "x"},
        {"type": "MATCH_MAC_SOURCE", "mac": "32:aa:bb:cc:dd"},
        {"type": "MATCH_MAC_SOURCE", "mac": "zz:aa:bb:cc:dd:ee"},
        {"type": "MATCH_MAC_SOURCE", "mac": 5},
        {"type": "MATCH_IPV4_SOURCE", "ip": "fd00::1/8"},
        {"type": "MATCH_IPV4_SOURCE", "ip": "10.0.0.256/8"},
        {"type": "MATCH_IPV4_SOURCE", "ip": "10.0.0.0/x"},
        {"type": "MATCH_IPV6_SOURCE", "ip": "10.0.0.1/8"},
        {"type": "MATCH_IPV6_SOURCE", "ip": 7},
        {"type": "MATCH_SOURCE_ZEROTIER_ADDRESS", "zt": "12345678901"},
        {"type": "MATCH_SOURCE_ZEROTIER_ADDRESS", "zt": 1234},
        {"type": "ACTION_TEE", "address": "g"},
        {"type": "ACTION_TEE", "address": "1", "length": 70000},
        {"type": "ACTION_TEE", "address": "1", "flags": 1 << 32},
        {"type": "MATCH_CHARACTERISTICS", "mask": True},
        {"type": "MATCH_CHARACTERISTICS", "mask": "xyz"},
        {"type": "MATCH_CHARACTERISTICS", "mask": {}},
        {"type": "MATCH_TAGS_EQUAL", "id": 1 << 32},
        {"type": "MATCH_RANDOM", "probability": 1 << 32},
        {"type": "ACTION_ACCEPT", "not": []},
        {"type": "INTEGER_RANGE", "bits": 65},
    ],
)
def test_bad_values_raise_value_error(obj: dict[str, object]) -> None:
    with pytest.raises(ValueError) as info:
        rule_from_json(obj, allow_integer_range=True)
    assert not isinstance(info.value, UnsupportedRule)
    assert str(info.value)


def test_normalize_drops_refused_and_rerenders() -> None:
    posted: list[object] = [
        {"type": "MATCH_ETHERTYPE", "etherType": 2048},
        {"type": "whatever"},
        "junk",
        {"type": "ACTION_ACCEPT", "not": False, "or": False},
    ]
    assert normalize_rules_json(posted) == [
        {"etherType": 2048, "not": False, "or": False, "type": "MATCH_ETHERTYPE"},
        {"type": "ACTION_ACCEPT"},
    ]
    assert rules_from_json([{"type": "ACTION_DROP"}] * 5, limit=2) == [R(T.ACTION_DROP)] * 2
    assert rules_to_json(DEFAULT_RULES) == [{"type": "ACTION_ACCEPT"}]


# ------------------------------------------------------------------------ property


def _renderable_rules() -> st.SearchStrategy[Rule]:
    u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
    a40 = st.integers(0, (1 << 40) - 1)
    flags = st.sampled_from([0, 0x40, 0x80, 0xC0])

    def match(kind: int, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Rule]:
        return st.builds(lambda f, kw: Rule(kind | f, **kw), flags, st.fixed_dictionaries(fields))

    def action(kind: int, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Rule]:
        return st.fixed_dictionaries(fields).map(lambda kw: Rule.make(kind, **kw))

    ip4 = st.binary(min_size=4, max_size=4)
    ip6 = st.binary(min_size=16, max_size=16)
    tag = {"tag_id": u32, "tag_value": u32}
    tags = [
        match(k, **tag)
        for k in (
            T.MATCH_TAGS_DIFFERENCE,
            T.MATCH_TAGS_BITWISE_AND,
            T.MATCH_TAGS_BITWISE_OR,
            T.MATCH_TAGS_BITWISE_XOR,
            T.MATCH_TAGS_EQUAL,
            T.MATCH_TAG_SENDER,
            T.MATCH_TAG_RECEIVER,
        )
    ]
    int_range = st.builds(
        lambda f, start, span, idx, fmt: Rule(
            T.MATCH_INTEGER_RANGE | f,
            start=start,
            end=(start + span) & M64,
            idx=idx,
            int_format=fmt,
        ),
        flags,
        st.integers(0, M64),
        st.integers(0, 0xFFFFFFFF),
        u16,
        st.integers(0, 63) | st.integers(0x80, 0xBF),
    )
    return st.one_of(
        action(T.ACTION_DROP),
        action(T.ACTION_ACCEPT),
        action(T.ACTION_BREAK),
        action(T.ACTION_TEE, address=a40, flags=u32, length=u16),
        action(T.ACTION_WATCH, address=a40, flags=u32, length=u16),
        action(T.ACTION_REDIRECT, address=a40, flags=u32),
        match(T.MATCH_SOURCE_ZEROTIER_ADDRESS, zt=a40),
        match(T.MATCH_DEST_ZEROTIER_ADDRESS, zt=a40),
        match(T.MATCH_VLAN_ID, vlan_id=u16),
        match(T.MATCH_VLAN_PCP, vlan_pcp=u8),
        match(T.MATCH_VLAN_DEI, vlan_dei=u8),
        match(T.MATCH_MAC_SOURCE, mac=st.integers(0, (1 << 48) - 1)),
        match(T.MATCH_MAC_DEST, mac=st.integers(0, (1 << 48) - 1)),
        match(T.MATCH_IPV4_SOURCE, ip=ip4, ip_bits=st.integers(0, 32)),
        match(T.MATCH_IPV4_DEST, ip=ip4, ip_bits=st.integers(0, 32)),
        match(T.MATCH_IPV6_SOURCE, ip=ip6, ip_bits=st.integers(0, 128)),
        match(T.MATCH_IPV6_DEST, ip=ip6, ip_bits=st.integers(0, 128)),
        match(T.MATCH_IP_TOS, tos_mask=u8, start=u8, end=u8),
        match(T.MATCH_IP_PROTOCOL, ip_protocol=u8),
        match(T.MATCH_ETHERTYPE, ethertype=u16),
        match(T.MATCH_ICMP, icmp_type=u8),
        match(T.MATCH_ICMP, icmp_type=u8, icmp_code=u8, icmp_flags=st.just(1)),
        match(T.MATCH_IP_SOURCE_PORT_RANGE, start=u16, end=u16),
        match(T.MATCH_IP_DEST_PORT_RANGE, start=u16, end=u16),
        match(T.MATCH_CHARACTERISTICS, characteristics=st.integers(0, M64)),
        match(T.MATCH_FRAME_SIZE_RANGE, start=u16, end=u16),
        match(T.MATCH_RANDOM, probability=u32),
        *tags,
        int_range,
    )


@given(_renderable_rules())
def test_roundtrip_every_type(rule: Rule) -> None:
    obj = rule_to_json(rule)
    again = rule_from_json(json.loads(json.dumps(obj)), allow_integer_range=True)
    assert again == rule
    assert rule_to_json(again) == obj


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
RULE_KEYS = [
    "type", "not", "or", "address", "flags", "length", "zt", "vlanId", "vlanPcp", "vlanDei",
    "mac", "ip", "mask", "start", "end", "ipProtocol", "etherType", "icmpType", "icmpCode",
    "probability", "id", "value", "idx", "little", "bits",
]  # fmt: skip
TYPE_NAMES = [t.name for t in RuleType] + ["INTEGER_RANGE", "junk"]


# No deadline: on a loaded machine (several suites at once) one example once took
# longer than hypothesis' 200 ms and failed a run; replaying its seed passed.
@settings(deadline=None)
@given(
    st.sampled_from(TYPE_NAMES),
    st.dictionaries(st.sampled_from(RULE_KEYS), json_values, max_size=6),
    st.booleans(),
)
def test_random_json_raises_only_value_error(
    type_name: str, fields: dict[str, object], allow: bool
) -> None:
    obj = {**fields, "type": fields.get("type", type_name)}
    try:
        rule = rule_from_json(obj, allow_integer_range=allow)
    except ValueError:
        return
    rendered = rule_to_json(rule)
    again = rule_from_json(rendered, allow_integer_range=True)
    # not/or on actions are parsed but never rendered
    assert again == (replace(rule, t=rule.t & 0x3F) if rule.is_action else rule)


def test_icmp_type_and_code_are_bytes() -> None:
    """MATCH_ICMP's ``icmpType`` and ``icmpCode`` are one byte each (A.4.2): 255 is
    read, 256 is refused. Guards the 0xFF bound of ``icmpType``."""
    rule = rule_from_json({"type": "MATCH_ICMP", "icmpType": 255, "icmpCode": 255})
    assert rule_to_json(rule)["icmpType"] == 255
    for key in ("icmpType", "icmpCode"):
        with pytest.raises(ValueError, match=rf"^{key}: 256 is out of range 0\.\.255$"):
            rule_from_json({"type": "MATCH_ICMP", "icmpType": 3, "icmpCode": 3} | {key: 256})
