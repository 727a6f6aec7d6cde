"""A bad POST body is refused with every problem named at once (the body
validation walks the whole body, not only up to its first problem)."""

from __future__ import annotations

import pytest

from ztone.controller.bodies import ControllerInputError, MemberBody, NetworkBody


def refusal(read: type[NetworkBody] | type[MemberBody], body: object) -> list[str]:
    with pytest.raises(ControllerInputError) as info:
        read.read(body)
    return str(info.value).split("; ")


def test_every_bad_network_field_is_named_in_declaration_order() -> None:
    body = {
        "dns": {"domain": 5},
        "tags": [{"id": -1}, {"default": 1}],
        "routes": [{"target": "10.0.0.0/33"}, {"target": "10.0.0.0/8"}, {"target": 1}],
        "name": [],
        "mtu": "big",
        "capabilities": [{"id": 1, "rules": [{"type": "NOPE"}, 5]}],
        "ipAssignmentPools": [{"ipRangeStart": "10.0.0.1", "ipRangeEnd": "fd00::1"}],
        "authTokens": {"t": -1},
        "private": True,
    }
    assert refusal(NetworkBody, body) == [
        "name: expected a string, got an array",
        "mtu: 'big' is not a decimal integer",
        "routes[0].target: '10.0.0.0/33': more than 32 bits",
        "routes[2].target: expected an IP/bits string, got a number",
        "ipAssignmentPools[0]: ipRangeStart and ipRangeEnd differ in family",
        "authTokens.t: -1 is not >= 0",
        "capabilities[0].rules[0]: unknown rule type 'NOPE'",
        "capabilities[0].rules[1]: expected a rule object, got a number",
        "tags[0].id: -1 is out of range (0..4294967295)",
        "tags[1]: needs id",
        "dns.domain: expected a string, got a number",
    ]


def test_every_bad_member_field_is_named() -> None:
    body = {
        "capabilities": [1, None, -2],
        "ipAssignments": ["10.0.0.1", "zt", 5],
        "authorized": "maybe",
        "tags": [[1, 2], 3, [4, "x"]],
        "name": "fine",
    }
    assert refusal(MemberBody, body) == [
        "authorized: 'maybe' is not a boolean",
        "ipAssignments[1]: 'zt' is not an IP address",
        "ipAssignments[2]: expected an IP address string, got a number",
        "tags[1]: expected an [id, value] pair, got a number",
        "tags[2][1]: 'x' is not a decimal integer",
        "capabilities[1]: expected an integer, got null",
        "capabilities[2]: -2 is out of range (0..4294967295)",
    ]


def test_a_refused_body_is_not_partly_applied() -> None:
    # One bad field refuses the body: the good ones are not returned as changes.
    with pytest.raises(ControllerInputError, match=r"^private: "):
        NetworkBody.read({"name": "kept?", "private": None})
