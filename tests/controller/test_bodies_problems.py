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


def test_every_problem_inside_a_tag_pair_is_named() -> None:
    body = {"tags": [["a", -1], [1, 2], [4294967296, 1.5], "x"]}
    assert refusal(MemberBody, body) == [
        "tags[0][0]: 'a' is not a decimal integer",
        "tags[0][1]: -1 is out of range (0..4294967295)",
        "tags[2][0]: 4294967296 is out of range (0..4294967295)",
        "tags[2][1]: 1.5 is not an integer",
        "tags[3]: expected an [id, value] pair, got a string",
    ]


def test_every_problem_inside_the_assign_modes_and_dns_is_named() -> None:
    # v4AssignMode has one key (unknown keys are ignored), so one problem at most.
    body = {
        "v4AssignMode": {"zt": [1], "x": [2]},
        "v6AssignMode": {"rfc4193": "maybe", "zt": None, "6plane": {}},
        "dns": {"domain": 5, "servers": ["10.0.0.1", "nope", 7, "fd00::1", None]},
    }
    assert refusal(NetworkBody, body) == [
        "v4AssignMode.zt: expected a boolean, got an array",
        "v6AssignMode.rfc4193: 'maybe' is not a boolean",
        "v6AssignMode.zt: expected a boolean, got null",
        "v6AssignMode.6plane: expected a boolean, got an object",
        "dns.domain: expected a string, got a number",
        "dns.servers[1]: 'nope' is not an IP address",
        "dns.servers[2]: expected an IP address string, got a number",
        "dns.servers[4]: expected an IP address string, got null",
    ]


def test_the_legacy_forms_of_a_part_are_read_before_it_is_checked() -> None:
    # The string forms become objects first; a wrong JSON type is named once, as a whole.
    assert NetworkBody.read({"v6AssignMode": "zt,6plane"}).changes() == {
        "v6AssignMode": {"rfc4193": False, "zt": True, "6plane": True}
    }
    assert refusal(NetworkBody, {"v6AssignMode": 1, "v4AssignMode": [], "dns": 2}) == [
        'v4AssignMode: expected an object like {"zt": true}, got an array',
        'v6AssignMode: expected an object like {"6plane": true}, got a number',
        'dns: expected an object like {"domain": ..., "servers": [...]}, got a number',
    ]
