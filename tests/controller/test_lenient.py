"""zerotier-one's lenient JSON readers (OSUtils::jsonBool/jsonInt/jsonString, B.7-B.9)
as annotated types: what each accepts, what it gives, what it refuses and how it says so."""

from __future__ import annotations

from typing import Any

import pytest

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
    type_name,
)
from ztone.util.schema import Invalid, problems, validate


def read(kind: Any, value: object) -> object:
    return validate(value, kind)


def refusal(kind: Any, value: object) -> str:
    with pytest.raises(Invalid) as info:
        validate(value, kind)
    ((path, reason),) = problems(info.value)
    assert path == ""
    return reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True), (False, False), (1, True), (0, False), (-3, True), (0.5, False),
        (2.0, True), ("true", True), ("T", True), ("1", True), ("false", False), ("F", False),
        ("0", False), ("", False),
    ],
)  # fmt: skip
def test_json_bool_accepts(value: object, expected: bool) -> None:
    assert read(JsonBool, value) is expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "expected a boolean, got null"),
        ([True], "expected a boolean, got an array"),
        ({}, "expected a boolean, got an object"),
        ("yes", "'yes' is not a boolean"),
        (float("nan"), "expected a boolean, got a number"),
    ],
)
def test_json_bool_refuses(value: object, reason: str) -> None:
    assert refusal(JsonBool, value) == reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (True, 1), (False, 0), (7.0, 7), ("42", 42), (" +5 ", 5), (2**64 - 1, 2**64 - 1)],
)
def test_u64_accepts(value: object, expected: int) -> None:
    assert read(U64, value) == expected


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (U64, -1, "-1 is out of range (0..18446744073709551615)"),
        (U64, 2**64, "18446744073709551616 is out of range (0..18446744073709551615)"),
        (U64, 1.5, "1.5 is not an integer"),
        (U64, float("inf"), "inf is not an integer"),
        (U64, "0x10", "'0x10' is not a decimal integer"),
        (U64, "-1", "'-1' is not a decimal integer"),
        (U64, None, "expected an integer, got null"),
        (U64, [1], "expected an integer, got an array"),
        (U32, 1 << 32, "4294967296 is out of range (0..4294967295)"),
        (OptionalU32, "x", "'x' is not a decimal integer"),
    ],
)
def test_integers_refuse(kind: Any, value: object, reason: str) -> None:
    assert refusal(kind, value) == reason


def test_optional_types_read_null_as_none() -> None:
    assert read(OptionalU32, None) is None
    assert read(OptionalU32, "9") == 9
    assert read(OptionalIpText, None) is None
    assert read(OptionalIpText, "") is None
    assert read(OptionalIpText, "10.0.0.1/8") == "10.0.0.1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), ("", ""), (True, "1"), (False, "0"), (5, "5"), (-1, str(2**64 - 1))],
)
def test_json_str(value: object, expected: str) -> None:
    assert read(JsonStr, value) == expected


@pytest.mark.parametrize("value", [None, 1.5, [], {}])
def test_json_str_refuses(value: object) -> None:
    assert refusal(JsonStr, value) == f"expected a string, got {type_name(value)}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("0123456789", "0123456789"), ("short", None), (1234567890, "1234567890")],
)
def test_trace_target_keeps_only_ten_characters(value: object, expected: str | None) -> None:
    assert read(TraceTarget, value) == expected


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (IpText, "10.0.0.1", "10.0.0.1"),
        (IpText, "10.0.0.1/24", "10.0.0.1"),
        (IpText, "FD00:0:0::0001", "fd00::1"),
        (CidrText, "10.1.2.3/8", "10.1.2.3/8"),
        (CidrText, "FD00::/8", "fd00::/8"),
        (CidrText, "::/0", "::/0"),
    ],
)
def test_addresses_are_normalized(kind: Any, value: str, expected: str) -> None:
    assert read(kind, value) == expected


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (IpText, 5, "expected an IP address string, got a number"),
        (IpText, "zt", "'zt' is not an IP address"),
        (IpText, "10.0.0.300", "'10.0.0.300' is not an IP address"),
        (CidrText, None, "expected an IP/bits string, got null"),
        (CidrText, "10.0.0.0", "'10.0.0.0' is not of the form IP/bits"),
        (CidrText, "10.0.0.0/33", "'10.0.0.0/33': more than 32 bits"),
        (CidrText, "::/129", "'::/129': more than 128 bits"),
        (CidrText, "10.0.0.0/-1", "'10.0.0.0/-1': bad /bits part"),
    ],
)
def test_addresses_refuse(kind: Any, value: object, reason: str) -> None:
    assert refusal(kind, value) == reason


def test_rules_are_re_rendered_or_refused() -> None:
    assert read(RuleJson, {"type": "ACTION_ACCEPT", "not": False, "or": False}) == {
        "type": "ACTION_ACCEPT"
    }
    assert read(RuleJson, {"type": "MATCH_ETHERTYPE", "etherType": "2048"}) == {
        "etherType": 2048,
        "not": False,
        "or": False,
        "type": "MATCH_ETHERTYPE",
    }
    assert refusal(RuleJson, 5) == "expected a rule object, got a number"
    assert refusal(RuleJson, {"type": "NOPE"}) == "unknown rule type 'NOPE'"
