"""Controller JSON objects: defaults, POST semantics, revisions (B.5, B.7, B.8).

The reference objects are the lab1 controller's API answers
(tests/vectors/lab1_api/ctrl/api.json, zerotier-one 1.14.1).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from locations import VECTORS
from ztone.controller.bodies import ControllerInputError
from ztone.controller.objects import (
    apply_member_post,
    apply_network_post,
    init_member,
    init_network,
    json_equal,
    member_defaults,
    member_for_api,
    member_revisions,
    network_defaults,
    network_for_api,
    revise,
    same_record,
    unstable_member_list,
    unstable_network_entry,
)

API = json.loads((VECTORS / "lab1_api" / "ctrl" / "api.json").read_text())

NWID = 0x1FAD486CAFE468E2
A = 0x4B3BACDDB4
B = 0xA49ECF6441
REF_NETWORK: dict[str, Any] = API["/controller/network/1fad486cafe468e2"][1]
REF_MEMBER_A: dict[str, Any] = API["/controller/network/1fad486cafe468e2/member/4b3bacddb4"][1]
REF_MEMBER_B: dict[str, Any] = API["/controller/network/1fad486cafe468e2/member/a49ecf6441"][1]
NOW = 1_795_310_320_081

LAB_BODY = {
    "name": "lab",
    "v4AssignMode": {"zt": True},
    "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
    "routes": [{"target": "198.19.0.0/24", "via": None}],
}


def dump(value: object) -> str:
    """The reference's compact form: a bool never passes for a number here."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def saved(record: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    out = revise(old, record)
    assert out is not None
    return out


def new_network(body: object = None, now: int = NOW) -> dict[str, Any]:
    return saved(apply_network_post(init_network(NWID, now), body or {}, now))


# --- defaults ------------------------------------------------------------------------------


def test_new_network_has_the_reference_keys_and_defaults() -> None:
    network = new_network()
    assert sorted(network) == sorted(REF_NETWORK)
    assert network["revision"] == 1
    assert network["creationTime"] == NOW
    assert network["id"] == network["nwid"] == "1fad486cafe468e2"
    # Every value the lab did not configure is the reference default.
    configured = {"name", "v4AssignMode", "ipAssignmentPools", "routes", "creationTime"}
    for key, value in REF_NETWORK.items():
        if key not in configured:
            assert json_equal(network[key], value), key
    assert network["authTokens"] == [None]
    assert network["v4AssignMode"] == {"zt": False}
    assert network["name"] == ""


def test_lab_network_post_reproduces_the_reference_object() -> None:
    network = new_network(LAB_BODY, now=REF_NETWORK["creationTime"])
    assert dump(network) == dump(REF_NETWORK)


def test_new_member_has_the_reference_keys_and_defaults() -> None:
    member = saved(init_member(NWID, A, NOW))
    # "identity" is learned from the member's first request (B.2 step 5), not a default.
    assert sorted([*member, "identity"]) == sorted(REF_MEMBER_A)
    assert member["revision"] == 1
    assert member["id"] == member["address"] == "4b3bacddb4"
    assert member["nwid"] == "1fad486cafe468e2"
    assert member["authorized"] is False
    assert member["lastAuthorizedCredentialType"] is None
    assert (member["vMajor"], member["vMinor"], member["vRev"], member["vProto"]) == (
        -1,
        -1,
        -1,
        -1,
    )
    assert "name" not in member


def test_lab_member_post_reproduces_the_reference_object() -> None:
    ref = REF_MEMBER_A
    current = init_member(NWID, A, ref["creationTime"])
    body = {"authorized": True, "ipAssignments": ["198.19.0.222"]}
    member = apply_member_post(current, body, ref["lastAuthorizedTime"])
    # What the controller adds when the member asks for its config (B.2): not the API's.
    for key in ("identity", "vMajor", "vMinor", "vRev", "vProto", "revision"):
        member[key] = ref[key]
    assert dump(member) == dump(ref)


def test_posting_a_fetched_network_back_changes_only_the_default_rules() -> None:
    ref = REF_NETWORK
    after = apply_network_post(ref, copy.deepcopy(ref), NOW)
    # As in the reference, POSTed rules are parsed and re-rendered, and the rendering
    # of ACCEPT has no not/or (the initNetwork literal has them).
    assert after["rules"] == [{"type": "ACTION_ACCEPT"}]
    assert same_record(after, dict(ref, rules=[{"type": "ACTION_ACCEPT"}]))
    body = {k: v for k, v in ref.items() if k != "rules"}
    after = apply_network_post(ref, body, NOW)
    assert same_record(after, ref)
    assert revise(ref, after) is None
    rendered = apply_network_post(ref, {"rules": ref["rules"]}, NOW)
    again = apply_network_post(rendered, {"rules": rendered["rules"]}, NOW)
    assert revise(rendered, again) is None


@pytest.mark.parametrize("ref", [REF_MEMBER_A, REF_MEMBER_B])
def test_posting_a_fetched_member_back_changes_nothing(ref: dict[str, Any]) -> None:
    after = apply_member_post(ref, copy.deepcopy(ref), NOW)
    assert same_record(after, ref)


def test_defaults_fill_missing_keys_and_keep_present_ones() -> None:
    n = network_defaults({"name": "x", "mtu": 1500, "objtype": "junk"}, NOW)
    assert n["name"] == "x" and n["mtu"] == 1500 and n["objtype"] == "network"
    m = member_defaults({"authorized": True, "objtype": "junk"}, NOW)
    assert m["authorized"] is True and m["objtype"] == "member"


def test_remote_trace_level_quirk() -> None:
    # initNetwork/initMember test a misspelled key: every POST resets the level...
    network = dict(REF_NETWORK, remoteTraceLevel=3)
    assert apply_network_post(network, {}, NOW)["remoteTraceLevel"] == 0
    # ...unless the body sets it.
    assert apply_network_post(network, {"remoteTraceLevel": 3}, NOW)["remoteTraceLevel"] == 3
    member = dict(REF_MEMBER_A, remoteTraceLevel=2)
    assert apply_member_post(member, {}, NOW)["remoteTraceLevel"] == 0


# --- network POST ------------------------------------------------------------------------


def post_network(body: dict[str, Any]) -> dict[str, Any]:
    return apply_network_post(REF_NETWORK, body, NOW)


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ({"name": "x"}, "name", "x"),
        ({"name": 12}, "name", "12"),
        ({"name": True}, "name", "1"),
        ({"private": False}, "private", False),
        ({"private": "false"}, "private", False),
        ({"private": "True"}, "private", True),
        ({"private": 0}, "private", False),
        ({"private": 2}, "private", True),
        ({"private": ""}, "private", False),
        ({"enableBroadcast": False}, "enableBroadcast", False),
        ({"multicastLimit": 64}, "multicastLimit", 64),
        ({"multicastLimit": "64"}, "multicastLimit", 64),
        ({"multicastLimit": 64.0}, "multicastLimit", 64),
        ({"multicastLimit": True}, "multicastLimit", 1),
        ({"mtu": 1500}, "mtu", 1500),
        ({"mtu": 100}, "mtu", 1280),
        ({"mtu": 20000}, "mtu", 10000),
        ({"remoteTraceTarget": "0123456789"}, "remoteTraceTarget", "0123456789"),
        ({"remoteTraceTarget": "short"}, "remoteTraceTarget", None),
        ({"remoteTraceTarget": None}, "remoteTraceTarget", None),
        ({"v4AssignMode": {"zt": False}}, "v4AssignMode", {"zt": False}),
        ({"v4AssignMode": {"zt": "true"}}, "v4AssignMode", {"zt": True}),
        ({"v4AssignMode": {}}, "v4AssignMode", {"zt": False}),
        ({"v4AssignMode": "zt"}, "v4AssignMode", {"zt": True}),
        ({"v4AssignMode": "none"}, "v4AssignMode", {"zt": False}),
        ({"v4AssignMode": None}, "v4AssignMode", {"zt": False}),
        # Only the keys present are kept (the others read as false).
        ({"v6AssignMode": {"6plane": True}}, "v6AssignMode", {"6plane": True}),
        (
            {"v6AssignMode": {"rfc4193": 1, "zt": False, "6plane": "f", "x": 1}},
            "v6AssignMode",
            {"rfc4193": True, "zt": False, "6plane": False},
        ),
        (
            {"v6AssignMode": "rfc4193,zt,junk"},
            "v6AssignMode",
            {"rfc4193": True, "zt": True, "6plane": False},
        ),
        (
            {"v6AssignMode": None},
            "v6AssignMode",
            {"rfc4193": False, "zt": False, "6plane": False},
        ),
        ({"authTokens": {"tok": 0, "t2": 1795310}}, "authTokens", {"tok": 0, "t2": 1795310}),
        ({"authTokens": {}}, "authTokens", None),
        ({"authTokens": [None]}, "authTokens", [None]),
        ({"authTokens": None}, "authTokens", [None]),
        ({"dns": {"domain": "lab.example", "servers": ["198.19.0.1", "fd00::1"]}},
         "dns", {"domain": "lab.example", "servers": ["198.19.0.1", "fd00::1"]}),
        ({"dns": {"servers": []}}, "dns", {"domain": None, "servers": []}),
        ({"dns": {"domain": "x"}}, "dns", {"domain": "x"}),
        ({"dns": []}, "dns", []),  # a non-object is ignored: GET's default round-trips
        ({"dns": None}, "dns", []),
    ],
)  # fmt: skip
def test_network_field_conversions(body: dict[str, Any], key: str, expected: object) -> None:
    assert json_equal(post_network(body)[key], expected)


def test_routes_are_normalized() -> None:
    n = post_network(
        {
            "routes": [
                {"target": "10.147.17.0/24"},
                {"target": "192.168.50.0/24", "via": "10.147.17.1"},
                {"target": "fd00:0:0:0::/64", "via": "fd00:0::1"},
                {"target": "10.0.0.7/8", "via": ""},
                {"target": "0.0.0.0/0", "via": None},
            ]
        }
    )
    assert n["routes"] == [
        {"target": "10.147.17.0/24", "via": None},
        {"target": "192.168.50.0/24", "via": "10.147.17.1"},
        {"target": "fd00::/64", "via": "fd00::1"},
        {"target": "10.0.0.7/8", "via": None},  # not reduced to the network address
        {"target": "0.0.0.0/0", "via": None},
    ]
    assert post_network({"routes": []})["routes"] == []


def test_ip_assignment_pools_are_normalized() -> None:
    n = post_network(
        {
            "ipAssignmentPools": [
                {"ipRangeStart": "10.0.0.1", "ipRangeEnd": "10.0.0.254"},
                {"ipRangeStart": "fd00:0:0:0::1", "ipRangeEnd": "FD00::FFFF"},
            ]
        }
    )
    assert n["ipAssignmentPools"] == [
        {"ipRangeStart": "10.0.0.1", "ipRangeEnd": "10.0.0.254"},
        {"ipRangeStart": "fd00::1", "ipRangeEnd": "fd00::ffff"},
    ]


def test_rules_are_parsed_and_re_rendered() -> None:
    rules = [
        {"type": "MATCH_ETHERTYPE", "etherType": "2048", "not": "true"},
        {"type": "MATCH_MAC_SOURCE", "mac": "AABBCCDDEEFF", "or": 1},
        {"type": "MATCH_IPV4_DEST", "ip": "10.0.0.0/8"},
        {"type": "ACTION_DROP", "not": False, "or": False},
        {"type": "ACTION_ACCEPT"},
    ]
    assert post_network({"rules": rules})["rules"] == [
        {"type": "MATCH_ETHERTYPE", "etherType": 2048, "not": True, "or": False},
        {"type": "MATCH_MAC_SOURCE", "mac": "aa:bb:cc:dd:ee:ff", "not": False, "or": True},
        {"type": "MATCH_IPV4_DEST", "ip": "10.0.0.0/8", "not": False, "or": False},
        {"type": "ACTION_DROP"},
        {"type": "ACTION_ACCEPT"},
    ]
    assert post_network({"rules": []})["rules"] == []
    assert new_network()["rules"] == [{"not": False, "or": False, "type": "ACTION_ACCEPT"}]


def test_tags_and_capabilities_are_sorted_and_deduplicated() -> None:
    n = post_network(
        {
            "tags": [{"id": 5, "default": 1}, {"id": 2}, {"id": "5", "default": None}],
            "capabilities": [
                {"id": 9, "default": True, "rules": [{"type": "ACTION_ACCEPT"}]},
                {"id": 1},
            ],
        }
    )
    assert n["tags"] == [{"id": 2, "default": None}, {"id": 5, "default": None}]
    assert n["capabilities"][0] == {"id": 1, "default": False, "rules": []}
    assert n["capabilities"][1]["id"] == 9 and n["capabilities"][1]["default"] is True
    assert len(n["capabilities"][1]["rules"]) == 1


def test_unknown_and_read_only_fields_are_ignored() -> None:
    body = {
        "id": "0000000000000001",
        "nwid": "0000000000000001",
        "objtype": "member",
        "revision": 99,
        "creationTime": 5,
        "ssoEnabled": True,
        "clientId": "x",
        "authorizationEndpoint": "x",
        "rulesSource": "x",
        "totalMemberCount": 4,
        "clock": 1,
        "whatever": [1, 2],
    }
    n = post_network(body)
    assert same_record(n, REF_NETWORK)
    assert n["revision"] == REF_NETWORK["revision"]


BAD_NETWORK_BODIES: list[Any] = [
    [],
    "x",
    None,
    {"name": None},
    {"name": [1]},
    {"name": 1.5},
    {"private": None},
    {"private": "yes"},
    {"private": [True]},
    {"enableBroadcast": {}},
    {"multicastLimit": -1},
    {"multicastLimit": "lots"},
    {"multicastLimit": 1.5},
    {"multicastLimit": None},
    {"mtu": "big"},
    {"remoteTraceTarget": [1]},
    {"remoteTraceLevel": -2},
    {"v4AssignMode": True},
    {"v4AssignMode": {"zt": [1]}},
    {"v6AssignMode": 1},
    {"v6AssignMode": {"6plane": None}},
    {"routes": {"target": "10.0.0.0/8"}},
    {"routes": None},
    {"routes": ["10.0.0.0/8"]},
    {"routes": [{"via": "10.0.0.1"}]},
    {"routes": [{"target": "10.0.0.0"}]},
    {"routes": [{"target": "10.0.0.0/33"}]},
    {"routes": [{"target": "fd00::/129"}]},
    {"routes": [{"target": "10.0.0.999/8"}]},
    {"routes": [{"target": "10.0.0.0/x"}]},
    {"routes": [{"target": "host/8"}]},
    {"routes": [{"target": "10.0.0.0/8", "via": "fd00::1"}]},
    {"routes": [{"target": "10.0.0.0/8", "via": "nope"}]},
    {"routes": [{"target": "10.0.0.0/8", "via": 5}]},
    {"ipAssignmentPools": "10.0.0.0/24"},
    {"ipAssignmentPools": [{"ipRangeStart": "10.0.0.1"}]},
    {"ipAssignmentPools": [{"ipRangeStart": "10.0.0.1", "ipRangeEnd": "fd00::1"}]},
    {"ipAssignmentPools": [{"ipRangeStart": "10.0.0.1", "ipRangeEnd": 5}]},
    {"ipAssignmentPools": [{"ipRangeStart": "10.0.0.1", "ipRangeEnd": "10.0.0"}]},
    {"rules": {"type": "ACTION_ACCEPT"}},
    {"rules": [5]},
    {"rules": [{"type": "ACTION_NOPE"}]},
    {"rules": [{"not": True}]},
    {"rules": [{"type": "INTEGER_RANGE", "start": 0, "end": 1}]},  # the reference drops it
    {"rules": [{"type": "MATCH_ETHERTYPE", "etherType": "ipv4"}]},
    {"rules": [{"type": "MATCH_SOURCE_ZEROTIER_ADDRESS", "zt": "not hex"}]},
    {"authTokens": "token"},
    {"authTokens": 5},
    {"authTokens": {"t": "1"}},
    {"authTokens": {"t": -1}},
    {"authTokens": {"t": True}},
    {"capabilities": {}},
    {"capabilities": [1]},
    {"capabilities": [{"default": True}]},
    {"capabilities": [{"id": "x"}]},
    {"capabilities": [{"id": 1, "rules": [{"type": "BAD"}]}]},
    {"capabilities": [{"id": 1 << 32}]},
    {"tags": [[1, 2]]},
    {"tags": [{"default": 1}]},
    {"tags": [{"id": 1, "default": "x"}]},
    {"dns": "lab.example"},
    {"dns": 1},
    {"dns": {"domain": 5}},
    {"dns": {"domain": "x", "servers": "10.0.0.1"}},
    {"dns": {"domain": "x", "servers": ["not-an-ip"]}},
    {"dns": {"domain": "x", "servers": [1]}},
    {"routes": [{"target": "10.0.0.0/8"}] * 16385},
]


@pytest.mark.parametrize("body", BAD_NETWORK_BODIES)
def test_bad_network_input_raises_and_changes_nothing(body: object) -> None:
    current = copy.deepcopy(REF_NETWORK)
    with pytest.raises(ControllerInputError) as info:
        apply_network_post(current, body, NOW)
    assert str(info.value)
    assert current == REF_NETWORK


def test_error_messages_name_the_field() -> None:
    with pytest.raises(ControllerInputError, match=r"routes\[1\]\.via"):
        post_network({"routes": [{"target": "10.0.0.0/8"}, {"target": "10.1.0.0/16", "via": 7}]})
    with pytest.raises(ControllerInputError, match="private"):
        post_network({"private": None})


# --- member POST -------------------------------------------------------------------------


def new_member() -> dict[str, Any]:
    return saved(init_member(NWID, B, NOW))


def test_authorize_and_deauthorize_stamp_times() -> None:
    m0 = new_member()
    m1 = apply_member_post(m0, {"authorized": True}, NOW + 10)
    assert m1["authorized"] is True
    assert m1["lastAuthorizedTime"] == NOW + 10
    assert m1["lastDeauthorizedTime"] == 0
    assert m1["lastAuthorizedCredentialType"] == "api"
    assert m1["lastAuthorizedCredential"] is None
    # Authorizing again is no change: the time stays.
    m2 = apply_member_post(m1, {"authorized": "true"}, NOW + 20)
    assert m2["lastAuthorizedTime"] == NOW + 10
    assert same_record(m1, m2)
    m3 = apply_member_post(m2, {"authorized": False}, NOW + 30)
    assert m3["authorized"] is False
    assert m3["lastDeauthorizedTime"] == NOW + 30
    assert m3["lastAuthorizedTime"] == NOW + 10
    assert m3["lastAuthorizedCredentialType"] == "api"
    m4 = apply_member_post(m3, {"authorized": 1}, NOW + 40)
    assert m4["lastAuthorizedTime"] == NOW + 40


def test_token_authorized_member_gets_api_credential_on_reauthorization() -> None:
    m = dict(new_member(), lastAuthorizedCredentialType="token", lastAuthorizedCredential="t")
    m = apply_member_post(m, {"authorized": True}, NOW)
    assert (m["lastAuthorizedCredentialType"], m["lastAuthorizedCredential"]) == ("api", None)


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ({"activeBridge": True}, "activeBridge", True),
        ({"noAutoAssignIps": "1"}, "noAutoAssignIps", True),
        ({"authenticationExpiryTime": 1795310325031}, "authenticationExpiryTime", 1795310325031),
        ({"name": "laptop"}, "name", "laptop"),
        ({"remoteTraceTarget": "0123456789"}, "remoteTraceTarget", "0123456789"),
        (
            {"ipAssignments": ["198.19.0.5", "FD00:0::5", "10.0.0.1/24"]},
            "ipAssignments",
            ["198.19.0.5", "fd00::5", "10.0.0.1"],
        ),
        ({"ipAssignments": []}, "ipAssignments", []),
        ({"tags": [[5, 1], [2, "7"], [5, 3]]}, "tags", [[2, 7], [5, 3]]),
        ({"capabilities": [9, 1, "9", 3]}, "capabilities", [1, 3, 9]),
    ],
)
def test_member_field_conversions(body: dict[str, Any], key: str, expected: object) -> None:
    assert json_equal(apply_member_post(REF_MEMBER_A, body, NOW)[key], expected)


def test_member_read_only_and_computed_fields() -> None:
    body = {
        "identity": "0000000001:0:00",
        "ssoExempt": True,
        "vMajor": 9,
        "lastAuthorizedTime": 1,
        "revision": 77,
        "authenticationURL": "https://x",
        "physicalAddr": "1.2.3.4/5",
        "id": "0000000001",
        "nwid": "0000000000000001",
    }
    m = apply_member_post(REF_MEMBER_A, body, NOW)
    assert same_record(m, REF_MEMBER_A)
    stale = dict(REF_MEMBER_A, clock=5, recentLog=[], lastRequestMetaData="x")
    assert same_record(apply_member_post(stale, {}, NOW), REF_MEMBER_A)


BAD_MEMBER_BODIES: list[Any] = [
    [],
    7,
    {"authorized": None},
    {"authorized": "maybe"},
    {"authorized": {}},
    {"activeBridge": [True]},
    {"noAutoAssignIps": None},
    {"authenticationExpiryTime": -5},
    {"authenticationExpiryTime": "soon"},
    {"name": None},
    {"ipAssignments": "10.0.0.1"},
    {"ipAssignments": [5]},
    {"ipAssignments": [None]},
    {"ipAssignments": ["10.0.0.300"]},
    {"ipAssignments": ["zt"]},
    {"tags": [5]},
    {"tags": [[1, 2, 3]]},
    {"tags": [[1, "x"]]},
    {"tags": {"1": 2}},
    {"capabilities": [None]},
    {"capabilities": [-1]},
    {"capabilities": 5},
    {"remoteTraceLevel": "high"},
]


@pytest.mark.parametrize("body", BAD_MEMBER_BODIES)
def test_bad_member_input_raises_and_changes_nothing(body: object) -> None:
    current = copy.deepcopy(REF_MEMBER_A)
    with pytest.raises(ControllerInputError) as info:
        apply_member_post(current, body, NOW)
    assert str(info.value)
    assert current == REF_MEMBER_A


# --- revisions ---------------------------------------------------------------------------


def test_revise_bumps_only_on_change() -> None:
    first = new_network()
    assert first["revision"] == 1
    assert revise(first, dict(first)) is None
    assert revise(first, dict(first, revision=40)) is None  # revision alone is no change
    second = revise(first, apply_network_post(first, {"name": "n"}, NOW))
    assert second is not None and second["revision"] == 2
    member = init_member(NWID, A, NOW)
    assert member["revision"] == 0
    assert saved(member)["revision"] == 1


def test_json_equal_is_nlohmann_equality() -> None:
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert json_equal(1, 1.0)
    assert json_equal({"a": [1, None]}, {"a": [1, None]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal([], {})
    n = new_network()
    assert revise(n, dict(n, private=1)) is not None


# --- GET helpers -------------------------------------------------------------------------


def test_api_objects_are_the_stored_records() -> None:
    assert network_for_api(REF_NETWORK, [REF_MEMBER_A], NOW) == REF_NETWORK
    assert member_for_api(REF_MEMBER_A, NOW) == REF_MEMBER_A
    copy_ = network_for_api(REF_NETWORK)
    copy_["routes"].append(1)
    assert REF_NETWORK["routes"] == [{"target": "198.19.0.0/24", "via": None}]


def test_member_list_and_unstable_helpers() -> None:
    members = [REF_MEMBER_A, dict(REF_MEMBER_B, authorized=False)]
    assert member_revisions(members) == API["/controller/network/1fad486cafe468e2/member"][1]
    entry = unstable_network_entry(REF_NETWORK, members)
    assert entry["meta"] == {"totalMemberCount": 2, "authorizedMemberCount": 1}
    listed = unstable_member_list(members)
    assert listed["meta"] == {"totalCount": 2, "authorizedCount": 1}
    assert listed["data"][0] == REF_MEMBER_A


def test_rule_that_is_not_an_object_is_named_in_the_error() -> None:
    """Guards the text of the error for a rule that is not a JSON object."""
    with pytest.raises(ControllerInputError, match=r"^rules\[1\]: expected a rule object, got "):
        apply_network_post(init_network(0x1FAD486CAFE468E2, 0), {"rules": [
            {"type": "ACTION_ACCEPT"}, 5]}, 0)  # fmt: skip


# --- every refusal names the field, the value and what was expected ---------------------

EXPECTED_NETWORK_MESSAGES = [
    "request body: expected a JSON object, got an array",
    "request body: expected a JSON object, got a string",
    "request body: expected a JSON object, got null",
    "name: expected a string, got null",
    "name: expected a string, got an array",
    "name: expected a string, got a number",
    "private: expected a boolean, got null",
    "private: 'yes' is not a boolean",
    "private: expected a boolean, got an array",
    "enableBroadcast: expected a boolean, got an object",
    "multicastLimit: -1 is out of range (0..18446744073709551615)",
    "multicastLimit: 'lots' is not a decimal integer",
    "multicastLimit: 1.5 is not an integer",
    "multicastLimit: expected an integer, got null",
    "mtu: 'big' is not a decimal integer",
    "remoteTraceTarget: expected a string, got an array",
    "remoteTraceLevel: -2 is out of range (0..18446744073709551615)",
    'v4AssignMode: expected an object like {"zt": true}, got a boolean',
    "v4AssignMode.zt: expected a boolean, got an array",
    'v6AssignMode: expected an object like {"6plane": true}, got a number',
    "v6AssignMode.6plane: expected a boolean, got null",
    'routes: expected a JSON array, got {"target": "10.0.0.0/8"}',
    "routes: expected a JSON array, got null",
    'routes[0]: expected a JSON object, got "10.0.0.0/8"',
    "routes[0]: needs target",
    "routes[0].target: '10.0.0.0' is not of the form IP/bits",
    "routes[0].target: '10.0.0.0/33': more than 32 bits",
    "routes[0].target: 'fd00::/129': more than 128 bits",
    "routes[0].target: '10.0.0.999/8' is not an IP address",
    "routes[0].target: '10.0.0.0/x': bad /bits part",
    "routes[0].target: 'host/8' is not an IP address",
    "routes[0].via: 'fd00::1' is not of the target's address family",
    "routes[0].via: 'nope' is not an IP address",
    "routes[0].via: expected an IP address string, got a number",
    'ipAssignmentPools: expected a JSON array, got "10.0.0.0/24"',
    "ipAssignmentPools[0]: needs ipRangeEnd",
    "ipAssignmentPools[0]: ipRangeStart and ipRangeEnd differ in family",
    "ipAssignmentPools[0].ipRangeEnd: expected an IP address string, got a number",
    "ipAssignmentPools[0].ipRangeEnd: '10.0.0' is not an IP address",
    'rules: expected a JSON array, got {"type": "ACTION_ACCEPT"}',
    "rules[0]: expected a rule object, got a number",
    "rules[0]: unknown rule type 'ACTION_NOPE'",
    "rules[0]: unknown rule type None",
    "rules[0]: INTEGER_RANGE rules are not accepted by the controller",
    "rules[0]: etherType: 'ipv4' is not a decimal integer",
    "rules[0]: zt: 'not hex' is not a ZeroTier address (10 hex digits)",
    "authTokens: expected an object of token: expiry, got a string",
    "authTokens: expected an object of token: expiry, got a number",
    "authTokens.t: expected an expiry time number, got a string",
    "authTokens.t: -1 is not >= 0",
    "authTokens.t: expected an expiry time number, got a boolean",
    "capabilities: expected a JSON array, got {}",
    "capabilities[0]: expected a JSON object, got 1",
    "capabilities[0]: needs id",
    "capabilities[0].id: 'x' is not a decimal integer",
    "capabilities[0].rules[0]: unknown rule type 'BAD'",
    "capabilities[0].id: 4294967296 is out of range (0..4294967295)",
    "tags[0]: expected a JSON object, got [1, 2]",
    "tags[0]: needs id",
    "tags[0].default: 'x' is not a decimal integer",
    'dns: expected an object like {"domain": ..., "servers": [...]}, got a string',
    'dns: expected an object like {"domain": ..., "servers": [...]}, got a number',
    "dns.domain: expected a string, got a number",
    "dns.servers: expected an array, got a string",
    "dns.servers[0]: 'not-an-ip' is not an IP address",
    "dns.servers[0]: expected an IP address string, got a number",
    "routes: more than 16384 entries",
]

EXPECTED_MEMBER_MESSAGES = [
    "request body: expected a JSON object, got an array",
    "request body: expected a JSON object, got a number",
    "authorized: expected a boolean, got null",
    "authorized: 'maybe' is not a boolean",
    "authorized: expected a boolean, got an object",
    "activeBridge: expected a boolean, got an array",
    "noAutoAssignIps: expected a boolean, got null",
    "authenticationExpiryTime: -5 is out of range (0..18446744073709551615)",
    "authenticationExpiryTime: 'soon' is not a decimal integer",
    "name: expected a string, got null",
    'ipAssignments: expected a JSON array, got "10.0.0.1"',
    "ipAssignments[0]: expected an IP address string, got a number",
    "ipAssignments[0]: expected an IP address string, got null",
    "ipAssignments[0]: '10.0.0.300' is not an IP address",
    "ipAssignments[0]: 'zt' is not an IP address",
    "tags[0]: expected an [id, value] pair, got a number",
    "tags[0]: expected an [id, value] pair, got an array",
    "tags[0][1]: 'x' is not a decimal integer",
    'tags: expected a JSON array, got {"1": 2}',
    "capabilities[0]: expected an integer, got null",
    "capabilities[0]: -1 is out of range (0..4294967295)",
    "capabilities: expected a JSON array, got 5",
    "remoteTraceLevel: 'high' is not a decimal integer",
]


def test_exact_messages_for_every_bad_body() -> None:
    """The models' refusals, one per bad body above, word for word (pinned when the
    hand-written checks became validated records: same words, or the value shown)."""
    network = []
    for body in BAD_NETWORK_BODIES:
        with pytest.raises(ControllerInputError) as info:
            apply_network_post(REF_NETWORK, body, NOW)
        network.append(str(info.value))
    assert network == EXPECTED_NETWORK_MESSAGES
    member = []
    for body in BAD_MEMBER_BODIES:
        with pytest.raises(ControllerInputError) as info:
            apply_member_post(REF_MEMBER_A, body, NOW)
        member.append(str(info.value))
    assert member == EXPECTED_MEMBER_MESSAGES


def test_several_bad_fields_are_all_named() -> None:
    with pytest.raises(ControllerInputError) as info:
        apply_network_post(REF_NETWORK, {"mtu": "big", "routes": [{"target": 1}]}, NOW)
    assert str(info.value) == (
        "mtu: 'big' is not a decimal integer; routes[0].target: expected an IP/bits string, "
        "got a number"
    )
