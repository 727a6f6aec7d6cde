"""The controller's answer to a config request, by exact value (IP assignment
itself: test_ipassign.py).

Every expected address below is worked out by hand from PROTOCOL-NETWORK-SERVICE
A.5.1 (rfc4193, 6plane) and B.3 (pools), with the arithmetic in the comments; the
authorization cases follow B.2 step 5 (stored identity) and step 7 (member flag,
public network, ``authTokens`` expiry).

Numbers used throughout:

* controller ``d41df8ed6a`` (vector identity 0), network ``d41df8ed6a000001``;
* requester ``2d299c6c91`` (vector identity 1): its low 32 bits are ``0x299c6c91``
  = 41*2^24 + 156*2^16 + 108*2^8 + 145 = 698117265.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from locations import VECTORS
from ztone.controller.core import FLAG_ENABLE_BROADCAST, FLAG_NDP_EMULATION, answer_request
from ztone.controller.objects import init_member, init_network
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.network_config import NetworkType
from ztone.node.wire.packet import ErrorCode

IDS = [
    Identity.from_string(e["secret"])
    for e in json.loads((VECTORS / "identities.json").read_text())["identities"]
]
CONTROLLER = IDS[0]
REQUESTER = IDS[1].public_only()
NWID = 0xD41DF8ED6A000001
ADDR = 0x2D299C6C91
NOW = 1_700_000_000_000


def _no_random() -> int:
    raise AssertionError("no random number expected here")


def _network(**fields: Any) -> dict[str, Any]:
    n = init_network(NWID, NOW - 1000)
    n.update(fields)
    return n


def _ask(network: dict[str, Any] | None, member: dict[str, Any] | None = None,
         requester: Identity = REQUESTER, metadata: bytes = b"",
         members: list[dict[str, Any]] | None = None) -> Any:  # fmt: skip
    return answer_request(
        now=NOW,
        controller=CONTROLLER,
        nwid=NWID,
        network=network,
        member=member,
        requester=requester,
        metadata=Dictionary.parse(metadata),
        members=members or [],
        rand64=_no_random,
    )


def _ips(ips: list[Any] | tuple[Any, ...]) -> list[str]:
    return [str(a) for a in ips]


# --- B.2 answer_request --------------------------------------------------------------


def test_new_member_of_private_network_is_denied_and_saved() -> None:
    answer = _ask(_network())
    assert answer.config is None and answer.error == ErrorCode.NETWORK_ACCESS_DENIED
    assert answer.member["authorized"] is False
    assert answer.member["identity"] == REQUESTER.to_string()
    assert (answer.member["id"], answer.member["nwid"]) == ("2d299c6c91", "d41df8ed6a000001")


def test_public_network_authorizes_automatically() -> None:
    """Guards: ``private: false`` no longer auto-authorizing (B.2 step 7)."""
    answer = _ask(_network(private=False))
    assert answer.error is None and answer.config is not None
    assert answer.config.type == NetworkType.PUBLIC
    assert answer.member["authorized"] is True
    assert answer.member["lastAuthorizedCredentialType"] == "public"
    assert answer.member["lastAuthorizedTime"] == NOW


@pytest.mark.parametrize(
    ("expiry", "authorized"),
    [(0, True), (NOW + 1, True), (NOW + 86_400_000, True), (NOW, False), (NOW - 1, False)],
)
def test_auth_token_expiry(expiry: int, authorized: bool) -> None:
    """Guards: the authTokens expiry check flipped or loosened (``expiry > now`` as
    ``<``, ``>=``, or dropped): a token is good if its value is 0 or later than now."""
    network = _network(authTokens={"s3cret": expiry, "other": 0})
    answer = _ask(network, metadata=b"a=token:s3cret")
    if authorized:
        assert answer.error is None and answer.config is not None
        assert answer.member["lastAuthorizedCredentialType"] == "token"
        assert answer.member["lastAuthorizedCredential"] == "s3cret"
        assert answer.member["authorized"] is True
    else:
        assert answer.config is None and answer.error == ErrorCode.NETWORK_ACCESS_DENIED
        assert answer.member["authorized"] is False


def test_auth_token_must_be_known_and_well_formed() -> None:
    network = _network(authTokens={"s3cret": 0})
    for meta in (b"a=token:nope", b"a=s3cret", b"a=token:", b"", b"a=tokens3cret"):
        assert _ask(network, metadata=meta).error == ErrorCode.NETWORK_ACCESS_DENIED, meta
    # the shortest token there is: "token:" and one character (guards "> 6" -> "> 7")
    answer = _ask(_network(authTokens={"k": 0}), metadata=b"a=token:k")
    assert answer.error is None and answer.member["lastAuthorizedCredential"] == "k"
    # the default authTokens value [null] (an array) authorizes nobody
    assert _ask(_network(), metadata=b"a=token:s3cret").error == ErrorCode.NETWORK_ACCESS_DENIED


def test_stored_identity_different_from_requester_is_denied() -> None:
    """Guards: a stored identity different from the requester's no longer denied
    (B.2 step 5) even when the member is authorized; nothing is saved."""
    member = init_member(NWID, ADDR, NOW - 5000)
    member["authorized"] = True
    # same address, another key: what an impostor without the key pair would send
    member["identity"] = f"2d299c6c91:0:{IDS[2].public.hex()}"
    answer = _ask(_network(), member)
    assert (answer.config, answer.error, answer.member) == (
        None,
        ErrorCode.NETWORK_ACCESS_DENIED,
        None,
    )
    member["identity"] = "not an identity"
    assert _ask(_network(), member).error == ErrorCode.NETWORK_ACCESS_DENIED
    member["identity"] = REQUESTER.to_string()
    assert _ask(_network(), member).error is None


def test_unknown_network_and_foreign_controller() -> None:
    assert _ask(None).error == ErrorCode.OBJ_NOT_FOUND
    assert _ask({}).error == ErrorCode.OBJ_NOT_FOUND
    other = answer_request(now=NOW, controller=IDS[3], nwid=NWID, network=_network(), member=None,
                           requester=REQUESTER, metadata=Dictionary(), members=[],
                           rand64=_no_random)  # fmt: skip
    assert (other.config, other.error, other.member) == (None, None, None)


def test_authorized_member_gets_exact_addresses() -> None:
    """An authorized member of a network with rfc4193 and a v4 pool gets the
    hand-worked addresses; another member's 10.1.0.66 pushes it to 10.1.0.67."""
    network = _network(
        v4AssignMode={"zt": True},
        v6AssignMode={"rfc4193": True, "6plane": False, "zt": False},
        ipAssignmentPools=[{"ipRangeStart": "10.1.0.1", "ipRangeEnd": "10.1.0.101"}],
        routes=[{"target": "10.1.0.0/24", "via": None}],
    )
    member = init_member(NWID, ADDR, NOW - 5000)
    member["authorized"] = True
    other = init_member(NWID, 0x1E26EB3BF1, NOW - 5000)
    other["ipAssignments"] = ["10.1.0.66"]
    answer = _ask(network, member, members=[other, member])
    assert answer.error is None
    assert _ips(answer.config.static_ips) == [
        "fdd4:1df8:ed6a:0:199:932d:299c:6c91/88",
        "10.1.0.67/24",
    ]
    assert answer.config.flags == FLAG_ENABLE_BROADCAST | FLAG_NDP_EMULATION
    assert answer.member["ipAssignments"] == ["10.1.0.67"]
    assert int(answer.config.issued_to) == ADDR and answer.config.network_id == NWID
    # the member's own earlier address is not "another member's"
    again = _ask(network, answer.member, members=[other, answer.member])
    assert _ips(again.config.static_ips)[1:] == ["10.1.0.67/24"]
    assert again.member["ipAssignments"] == ["10.1.0.67"]


def test_certificate_of_ownership_holds_the_first_16_addresses() -> None:
    """B.2 step 19: one COO (id 1) with the first 16 static IPs; the config still
    carries all of them (up to 32). Guards ``static_ips[:16]`` -> ``[:17]``."""
    network = _network(routes=[{"target": "10.5.0.0/24", "via": None}])
    member = init_member(NWID, ADDR, NOW - 5000)
    member["authorized"] = True
    member["ipAssignments"] = [f"10.5.0.{i}" for i in range(1, 21)]
    answer = _ask(network, member)
    assert _ips(answer.config.static_ips) == [f"10.5.0.{i}/24" for i in range(1, 21)]
    [coo] = answer.config.coos
    assert (coo.id, int(coo.issued_to), coo.timestamp) == (1, ADDR, NOW)
    # each thing: type 2 (IPv4 address, A.3.5) and the address in the first 4 of 16 bytes
    assert [(int(t), ipaddress.IPv4Address(raw[:4])) for t, raw in coo.things] == [
        (2, ipaddress.IPv4Address(f"10.5.0.{i}")) for i in range(1, 17)
    ]
    assert coo.verify(CONTROLLER)


def test_active_bridges_are_specialists() -> None:
    """B.2 step 12: every member with ``activeBridge: true`` is listed with the
    active-bridge flag 0x0000020000000000; others are not. Guards ``is True`` ->
    ``is not True``."""
    bridge = init_member(NWID, 0x1E26EB3BF1, NOW)
    bridge["activeBridge"] = True
    plain = init_member(NWID, 0xB5F5A2C9AE, NOW)
    member = init_member(NWID, ADDR, NOW)
    member["authorized"] = True
    answer = _ask(_network(), member, members=[bridge, plain, member])
    assert answer.config.specialists == (0x0000021E26EB3BF1,)
    member["activeBridge"] = True  # the requester itself, not yet in the stored list
    answer = _ask(_network(), member, members=[bridge, plain])
    assert answer.config.specialists == (0x0000021E26EB3BF1, 0x0000022D299C6C91)


def test_capabilities_with_junk_entries() -> None:
    """Capabilities that are not objects or have no integer id are skipped (B.2 step 14),
    never a crash. Guards the ``and`` of that test turned into ``or``."""
    network = _network(
        capabilities=[
            5,
            {"id": "seven", "default": True, "rules": []},
            {"id": 7, "default": True, "rules": [{"type": "ACTION_ACCEPT"}]},
        ]
    )
    answer = _ask(network, init_member(NWID, ADDR, NOW) | {"authorized": True},
                  metadata=b"revr=1")  # fmt: skip
    # not a new member: defaults are not added, and it holds none
    assert answer.error is None and answer.config.capabilities == ()
    assert answer.member["capabilities"] == []
    fresh = _ask(network | {"private": False}, metadata=b"revr=1")
    assert fresh.member["capabilities"] == [7]
    assert [c.id for c in fresh.config.capabilities] == [7]
