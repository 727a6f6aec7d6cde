"""The controller's POST body models and record models (B.7, B.8): what a body
carries is all it changes; records keep what they hold and gain the defaults."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ztone.controller.bodies import ControllerInputError, MemberBody, NetworkBody
from ztone.controller.objects import MemberRecord, NetworkRecord, apply_network_post, init_network

NOW = 1_795_310_320_081


def test_only_the_fields_a_body_carries_are_changes() -> None:
    assert NetworkBody.read({}).changes() == {}
    assert NetworkBody.read({"name": 5, "whatever": 1, "id": "x"}).changes() == {"name": "5"}
    assert MemberBody.read({"authorized": "1", "identity": "x"}).changes() == {"authorized": True}


def test_nested_parts_come_out_whole() -> None:
    body = NetworkBody.read(
        {
            "capabilities": [{"id": "7"}, {"id": 2, "default": True, "rules": None}],
            "tags": [{"id": 3}, {"id": 1, "default": "4"}, {"id": 3, "default": None}],
            "routes": [{"target": "10.0.0.0/8", "via": ""}, {"target": "fd00::/8"}],
            "ipAssignmentPools": [{"ipRangeStart": "10.0.0.1", "ipRangeEnd": "10.0.0.9/8"}],
            "mtu": 70000,
            "v4AssignMode": "zt",
        }
    )
    assert body.changes() == {
        "capabilities": [
            {"id": 2, "default": True, "rules": []},
            {"id": 7, "default": False, "rules": []},
        ],
        "tags": [{"id": 1, "default": 4}, {"id": 3, "default": None}],
        "routes": [{"target": "10.0.0.0/8", "via": None}, {"target": "fd00::/8", "via": None}],
        "ipAssignmentPools": [{"ipRangeStart": "10.0.0.1", "ipRangeEnd": "10.0.0.9"}],
        "mtu": 10000,
        "v4AssignMode": {"zt": True},
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"zt": True}, {"zt": True}),
        ({"6plane": "1", "rfc4193": 0}, {"6plane": True, "rfc4193": False}),
        ({}, {}),
        ("zt,6plane", {"rfc4193": False, "zt": True, "6plane": True}),
        (None, {"rfc4193": False, "zt": False, "6plane": False}),
    ],
)
def test_v6_assign_mode_keeps_only_the_given_modes(value: object, expected: Any) -> None:
    assert NetworkBody.read({"v6AssignMode": value}).changes() == {"v6AssignMode": expected}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], None),
        (None, None),
        ({"domain": "lab"}, {"domain": "lab"}),
        ({"servers": ["10.0.0.1"]}, {"domain": None, "servers": ["10.0.0.1"]}),
        ({"domain": "x", "servers": None}, {"domain": "x"}),
    ],
)
def test_dns(value: object, expected: Any) -> None:
    changes = NetworkBody.read({"dns": value}).changes()
    assert changes == ({} if expected is None else {"dns": expected})


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"t": 5, "u": 0.5}, {"t": 5, "u": 0.5}), ({}, None), ([None], [None]), (None, [None])],
)
def test_auth_tokens(value: object, expected: Any) -> None:
    assert NetworkBody.read({"authTokens": value}).changes() == {"authTokens": expected}


def test_member_lists_are_sorted_and_deduplicated() -> None:
    changes = MemberBody.read(
        {"tags": [[5, 1], ["2", 7], [5, 3]], "capabilities": [9, "1", 9.0, True]}
    ).changes()
    assert changes == {"tags": [[2, 7], [5, 3]], "capabilities": [1, 9]}


def test_arrays_are_bounded() -> None:
    with pytest.raises(ControllerInputError, match=r"^ipAssignments: more than 16384 entries$"):
        MemberBody.read({"ipAssignments": ["10.0.0.1"] * 16385})
    with pytest.raises(ControllerInputError, match=r"^dns\.servers: more than 16384 entries$"):
        NetworkBody.read({"dns": {"servers": ["10.0.0.1"] * 16385}})


def test_records_keep_what_they_hold_and_gain_defaults() -> None:
    imported: dict[str, Any] = {"id": "1fad486cafe468e2", "private": 1, "mtu": 1500.0,
                                "objtype": "x", "remoteTraceLevel": 9,
                                "custom": {"a": [1, None]}, "creationTime": 5}  # fmt: skip
    record = NetworkRecord.with_defaults(imported, NOW)
    assert record["private"] == 1 and record["private"] is not True  # not re-typed
    assert isinstance(record["mtu"], float)
    assert record["custom"] == {"a": [1, None]}
    assert record["custom"]["a"] is not imported["custom"]["a"]  # a copy, all the way down
    assert record["creationTime"] == 5
    assert record["objtype"] == "network"
    assert record["remoteTraceLevel"] == 0  # the reference's misspelled-key quirk
    assert record["authTokens"] == [None]
    assert imported["objtype"] == "x"  # the input is not touched
    assert NetworkRecord.with_defaults({"creationTime": None}, NOW)["creationTime"] is None
    assert NetworkRecord.with_defaults({}, NOW)["creationTime"] == NOW


def test_record_defaults_are_fresh_copies() -> None:
    a = init_network(1, NOW)
    a["rules"][0]["type"] = "ACTION_DROP"
    a["v6AssignMode"]["zt"] = True
    b = init_network(2, NOW)
    assert b["rules"] == [{"not": False, "or": False, "type": "ACTION_ACCEPT"}]
    assert b["v6AssignMode"] == {"6plane": False, "rfc4193": False, "zt": False}


def test_member_record_defaults() -> None:
    record = MemberRecord.with_defaults({"objtype": "network"}, NOW)
    assert json.dumps(record, sort_keys=True) == json.dumps(
        {
            "activeBridge": False, "authenticationExpiryTime": 0, "authorized": False,
            "capabilities": [], "creationTime": NOW, "ipAssignments": [],
            "lastAuthorizedCredential": None, "lastAuthorizedCredentialType": None,
            "lastAuthorizedTime": 0, "lastDeauthorizedTime": 0, "noAutoAssignIps": False,
            "objtype": "member", "remoteTraceLevel": 0, "remoteTraceTarget": None,
            "revision": 0, "ssoExempt": False, "tags": [], "vMajor": -1, "vMinor": -1,
            "vProto": -1, "vRev": -1,
        },
        sort_keys=True,
    )  # fmt: skip


def test_unknown_keys_of_a_record_round_trip_verbatim() -> None:
    stored: dict[str, Any] = {"zz": {"k": [1, 2.5, None, {"deep": True}]}, "name": "n",
                              "aa": "x", "big": 2**70, "private": "yes"}  # fmt: skip
    record = NetworkRecord.with_defaults(stored, NOW)
    # Declared keys first (the defaults' order), then the record's own, in its order.
    assert list(record)[:3] == ["private", "creationTime", "name"]
    assert list(record)[-3:] == ["zz", "aa", "big"]
    assert record["zz"] == stored["zz"] and record["zz"]["k"][3] is not stored["zz"]["k"][3]
    assert record["big"] == 2**70 and record["private"] == "yes"
    saved = apply_network_post(dict(record, id="1fad486cafe468e2"), {"name": "m"}, NOW)
    assert {k: saved[k] for k in ("zz", "aa", "big", "private")} == {
        "zz": stored["zz"], "aa": "x", "big": 2**70, "private": "yes"}  # fmt: skip
    assert saved["name"] == "m"
    member = MemberRecord.with_defaults({"objtype": 5, "extra": [[]], "revision": "7"}, NOW)
    assert member["extra"] == [[]] and member["revision"] == "7" and member["objtype"] == "member"
