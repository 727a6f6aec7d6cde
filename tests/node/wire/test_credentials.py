"""Credentials (A.3, §6.22): codecs, signatures, COM agreement, NETWORK_CREDENTIALS payloads."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VECTORS
from ztone.errors import LocalUsageError, MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.capability import Capability, CustodyEntry, rule_table_end
from ztone.node.wire.com import CertificateOfMembership, Qualifier, identity_hash_words
from ztone.node.wire.coo import CertificateOfOwnership
from ztone.node.wire.credential_base import NO_SIGNATURE, CooThing, CredentialType, controller_for
from ztone.node.wire.credentials import (
    MAX_PACKET_LENGTH,
    PACKET_HEADER_LENGTH,
    NetworkCredentials,
    pack_credentials,
)
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.revocation import Revocation
from ztone.node.wire.tag import Tag

LAB1 = VECTORS / "lab1"
CTRL = Identity.from_string((LAB1 / "ctrl" / "identity.secret").read_text())
A = Identity.from_string((LAB1 / "a" / "identity.secret").read_text())
B = Identity.from_string((LAB1 / "b" / "identity.secret").read_text())
NWID = 0x1FAD486CAFE468E2  # controlled by CTRL (1fad486caf)
OTHER_NWID = 0x4B3BACDDB4000001  # controlled by A
TS = 1795310329992
DELTA = 1_800_000
ACCEPT = b"\x01\x00"  # ACTION_ACCEPT
RULES = b"\x2c\x02\x08\x00" + b"\x01\x00" + b"\x3f\x03abc" + b"\x00\x00"  # 4 entries


def _prefixes_raise(blob: bytes, parse: Callable[[bytes], Any]) -> None:
    for n in range(len(blob)):
        with pytest.raises(MalformedPacket):
            parse(blob[:n])


def _com(identity: Identity = A, ts: int = TS, nwid: int = NWID) -> CertificateOfMembership:
    return CertificateOfMembership.make(ts, DELTA, nwid, identity).sign(CTRL)


# --- Certificate of Membership -------------------------------------------------------------


def test_com_make_sign_roundtrip() -> None:
    com = _com()
    assert [q.id for q in com.qualifiers] == [0, 1, 2, 3, 4, 5, 6]
    assert com.qualifiers[0] == Qualifier(0, TS, DELTA)
    assert com.qualifiers[1] == Qualifier(1, NWID, 0)
    assert com.qualifiers[2] == Qualifier(2, A.address, (1 << 64) - 1)
    assert tuple(q.value for q in com.qualifiers[3:]) == identity_hash_words(A)
    assert (com.timestamp, com.network_id, com.issued_to, com.id) == (TS, NWID, A.address, 0)
    assert com.signed_by == CTRL.address and com.is_signed
    blob = com.serialize()
    assert len(blob) == 1 + 2 + 7 * 24 + 5 + 96 == 272
    assert blob[:3] == b"\x01\x00\x07"
    assert blob[3 : 3 + 168] == com.signed_message()
    assert CertificateOfMembership.parse(blob) == (com, 272)
    assert CertificateOfMembership.parse(b"xx" + blob + b"junk", 2) == (com, 274)
    _prefixes_raise(blob, CertificateOfMembership.parse)


def test_com_unsigned_has_no_signature_bytes() -> None:
    com = CertificateOfMembership.make(TS, DELTA, NWID, A)
    blob = com.serialize()
    assert len(blob) == 1 + 2 + 168 + 5 and blob.endswith(bytes(5))
    assert CertificateOfMembership.parse(blob) == (com, len(blob))
    assert not com.is_signed and not com.verify(CTRL)
    empty = CertificateOfMembership()
    assert empty.is_empty and empty.serialize() == b"\x01\x00\x00" + bytes(5)
    assert (empty.timestamp, empty.network_id, empty.issued_to) == (0, 0, 0)


def test_com_verify_and_tamper() -> None:
    com = _com()
    assert com.verify(CTRL)
    assert not com.verify(A)  # not the signer
    tampered = replace(com, qualifiers=(Qualifier(0, TS + 1, DELTA), *com.qualifiers[1:]))
    assert not tampered.verify(CTRL)
    blob = bytearray(com.serialize())
    blob[-1] ^= 1
    assert not CertificateOfMembership.parse(bytes(blob))[0].verify(CTRL)
    # Signed by someone other than the network's controller: invalid even if the signature is.
    foreign = CertificateOfMembership.make(TS, DELTA, OTHER_NWID, B).sign(CTRL)
    assert not foreign.verify(CTRL)
    assert CertificateOfMembership.make(TS, DELTA, OTHER_NWID, B).sign(A).verify(A)


def test_com_parse_rejects() -> None:
    good = _com().serialize()
    with pytest.raises(MalformedPacket):
        CertificateOfMembership.parse(b"\x02" + good[1:])
    q = (1).to_bytes(8, "big") * 3
    nine = b"\x01\x00\x09" + q * 9 + bytes(5)
    with pytest.raises(MalformedPacket):
        CertificateOfMembership.parse(nine)
    eight = b"\x01\x00\x08" + q * 8 + bytes(5)
    assert len(CertificateOfMembership.parse(eight)[0].qualifiers) == 8
    descending = b"\x01\x00\x02" + (2).to_bytes(8, "big") * 3 + q + bytes(5)
    with pytest.raises(MalformedPacket):
        CertificateOfMembership.parse(descending)
    equal_ids = b"\x01\x00\x02" + q + q + bytes(5)  # non-decreasing: equal ids are fine
    assert len(CertificateOfMembership.parse(equal_ids)[0].qualifiers) == 2


def test_com_agreement() -> None:
    com_a, com_b = _com(A, TS), _com(B, TS + 19)
    assert com_a.agrees_with(com_b, B) and com_b.agrees_with(com_a, A)
    # Time window: |ts difference| <= my max delta.
    assert com_a.agrees_with(_com(B, TS + DELTA), B)
    assert com_a.agrees_with(_com(B, TS - DELTA), B)
    assert not com_a.agrees_with(_com(B, TS + DELTA + 1), B)
    assert not com_a.agrees_with(_com(B, TS - DELTA - 1), B)
    # My max delta decides, not theirs.
    narrow = CertificateOfMembership.make(TS, 10, NWID, A).sign(CTRL)
    assert not narrow.agrees_with(com_b, B) and com_b.agrees_with(narrow, A)
    # Another network (max delta 0).
    assert not com_a.agrees_with(_com(B, TS, NWID + 1), B)
    # The peer's COM must be bound to the identity it authenticated with.
    assert not com_a.agrees_with(com_b, A)
    assert not com_a.agrees_with(_com(A, TS), B)
    # A peer COM without the identity-hash qualifiers fails against mine...
    short_b = replace(com_b, qualifiers=com_b.qualifiers[:3])
    assert not com_a.agrees_with(short_b, B)
    # ...but a COM from an old controller (no 3..6) only compares what it has.
    old_a = replace(com_a, qualifiers=com_a.qualifiers[:3])
    assert old_a.agrees_with(short_b, B) and old_a.agrees_with(com_b, A)
    # Issued-to is not compared (max delta 2^64-1); an empty COM agrees with nothing.
    empty = CertificateOfMembership()
    assert not empty.agrees_with(com_b, B) and not com_a.agrees_with(empty, B)


def test_identity_hash_words() -> None:
    digest = hashlib.sha384(A.address.to_bytes5() + A.public).digest()
    words = identity_hash_words(A)
    assert b"".join(w.to_bytes(8, "big") for w in words) == digest[:32]


# --- Capability ----------------------------------------------------------------------------


def _cap(rules: bytes = RULES, count: int = 4, mccl: int = 1) -> Capability:
    return Capability(NWID, TS, 7, rules, count, mccl)


def test_rule_table_end() -> None:
    assert rule_table_end(RULES, 0, 4, 64) == (4, len(RULES))
    assert rule_table_end(RULES, 0, None, 64) == (4, len(RULES))
    assert rule_table_end(RULES, 0, None, 2) == (2, 6)
    assert rule_table_end(RULES, 4, 1, 64) == (1, 6)
    for n in range(1, len(RULES)):
        prefix = RULES[:n]
        if n in (4, 6, 11):
            continue
        with pytest.raises(MalformedPacket):
            rule_table_end(prefix, 0, None, 64)
    with pytest.raises(MalformedPacket):
        rule_table_end(RULES, 0, 5, 64)


def test_capability_sign_roundtrip_verify() -> None:
    cap = _cap().sign(CTRL, A.address)
    assert cap.custody == (CustodyEntry(A.address, CTRL.address, cap.custody[0].signature),)
    assert cap.issued_to == A.address and cap.verify(CTRL)
    blob = cap.serialize()
    head = 8 + 8 + 4 + 2 + len(RULES) + 1
    assert len(blob) == head + 5 + 5 + 3 + 96 + 5 + 2
    assert blob[head + 13 + 96 :] == bytes(5) + b"\x00\x00"
    assert cap.signed_message() == b"\x7f" * 8 + blob[:head] + b"\x00\x00" + b"\x7f" * 8
    assert Capability.parse(blob) == (cap, len(blob))
    _prefixes_raise(blob, Capability.parse)
    # Tampering with the rules, the chain recipient or the signature breaks it.
    assert not replace(cap, rules_raw=RULES[:-1] + b"\x01").verify(CTRL)
    assert not replace(cap, timestamp=TS + 1).verify(CTRL)
    bad = replace(cap, custody=(replace(cap.custody[0], signature=NO_SIGNATURE),))
    assert not bad.verify(CTRL)
    # The chain is not signed, so its recipient can change without breaking anything
    # (the receiver routes the capability by issued_to); the first link must be the controller.
    assert replace(cap, custody=(replace(cap.custody[0], to=B.address),)).verify(CTRL)
    not_ctrl = _cap().sign(A, B.address)
    assert not not_ctrl.verify(A) and not not_ctrl.verify(CTRL)
    assert not _cap().verify(CTRL)  # no custody at all


def test_capability_custody_chain() -> None:
    cap = _cap(mccl=2).sign(CTRL, A.address)
    assert cap.verify(CTRL)
    passed = cap.sign(A, B.address)
    assert passed.issued_to == B.address and passed.custody_signers() == [CTRL.address, A.address]
    lookup = {int(A.address): A}.get
    assert passed.verify(CTRL, lookup) and not passed.verify(CTRL)
    assert Capability.parse(passed.serialize())[0] == passed
    with pytest.raises(LocalUsageError):
        passed.sign(B, CTRL.address)  # max chain length 2 reached
    with pytest.raises(LocalUsageError):
        _cap().sign(CTRL, 0)
    # Each link must come from the previous holder.
    broken = _cap(mccl=2).sign(CTRL, A.address).sign(B, B.address)
    assert not broken.verify(CTRL, {int(B.address): B}.get)


def test_capability_parse_rejects() -> None:
    cap = _cap(mccl=1).sign(CTRL, A.address)
    blob = cap.serialize()
    head = 8 + 8 + 4 + 2 + len(RULES)
    for mccl in (0, 8):
        bad = blob[:head] + bytes((mccl,)) + blob[head + 1 :]
        with pytest.raises(MalformedPacket):
            Capability.parse(bad)
    # Two custody entries with a maximum of one.
    entry = blob[head + 1 : head + 1 + 109]
    with pytest.raises(MalformedPacket):
        Capability.parse(blob[: head + 1] + entry + entry + blob[head + 1 + 109 :])
    # More than 64 rules.
    many = Capability(NWID, TS, 1, ACCEPT * 65, 65).serialize()
    with pytest.raises(MalformedPacket):
        Capability.parse(many)
    ok = Capability(NWID, TS, 1, ACCEPT * 64, 64).serialize()
    assert Capability.parse(ok)[0].rule_count == 64
    # Signature type 1 with a length other than 96.
    bad_len = bytearray(blob)
    bad_len[head + 1 + 10 + 2] = 95
    with pytest.raises(MalformedPacket):
        Capability.parse(bytes(bad_len))


def test_unknown_signature_type_and_extension_are_skipped() -> None:
    cap = _cap().sign(CTRL, A.address)
    blob = cap.serialize()
    head = 8 + 8 + 4 + 2 + len(RULES) + 1
    odd = blob[: head + 10] + b"\x02\x00\x03xyz" + bytes(5) + b"\x00\x04abcd"
    parsed, end = Capability.parse(odd + b"tail")
    assert end == len(odd)
    assert parsed.custody == (CustodyEntry(A.address, CTRL.address, NO_SIGNATURE),)


# --- Tag -------------------------------------------------------------------------------


def test_tag_roundtrip_sign_verify() -> None:
    tag = Tag(NWID, TS, 1000, 42, A.address).sign(CTRL)
    assert tag.signed_by == CTRL.address and tag.verify(CTRL)
    blob = tag.serialize()
    assert len(blob) == 135
    assert blob[:8] == NWID.to_bytes(8, "big") and blob[20:24] == (42).to_bytes(4, "big")
    assert blob[24:29] == A.address.to_bytes5() and blob[29:34] == CTRL.address.to_bytes5()
    assert blob[34:37] == b"\x01\x00\x60" and blob[-2:] == b"\x00\x00"
    assert tag.signed_message() == b"\x7f" * 8 + blob[:34] + b"\x00\x00" + b"\x7f" * 8
    assert Tag.parse(blob) == (tag, 135)
    _prefixes_raise(blob, Tag.parse)
    assert not replace(tag, value=43).verify(CTRL)
    assert not replace(tag, issued_to=B.address).verify(CTRL)
    assert not tag.verify(A)
    assert not Tag(OTHER_NWID, TS, 1, 1, B.address).sign(CTRL).verify(CTRL)
    # Extension bytes are skipped; type-1 signature of the wrong length is refused.
    extended = blob[:-2] + b"\x00\x03xyz"
    assert Tag.parse(extended) == (tag, 138)
    with pytest.raises(MalformedPacket):
        Tag.parse(blob[:35] + b"\x5f" + blob[36:])
    unsigned = Tag.parse(blob[:34] + b"\x00\x00\x01z" + b"\x00\x00")[0]
    assert unsigned.signature == NO_SIGNATURE and not unsigned.verify(CTRL)


# --- Certificate of Ownership --------------------------------------------------------------


def test_coo_things_and_roundtrip() -> None:
    v4 = InetAddress(ipaddress.IPv4Address("198.19.0.222"), 24)
    v6 = ipaddress.IPv6Address("fd1f:ad48:6caf:e468:e299:934b:3bac:ddb4")
    coo = CertificateOfOwnership(NWID, TS, 1, A.address).add_ip(v4).add_ip(v6).add_mac(0x32AB0011)
    assert [t for t, _ in coo.things] == [CooThing.IPV4, CooThing.IPV6, CooThing.MAC]
    assert coo.things[0][1] == bytes([198, 19, 0, 222]) + bytes(12)
    assert coo.owns_ip(v4) and coo.owns_ip(v4.ip) and coo.owns_ip(v6)
    assert not coo.owns_ip(ipaddress.IPv4Address("198.19.0.75"))
    assert coo.owns_mac(0x32AB0011) and not coo.owns_mac(0x32AB0012)
    signed = coo.sign(CTRL)
    assert signed.verify(CTRL) and not coo.verify(CTRL)
    blob = signed.serialize()
    assert len(blob) == 8 + 8 + 8 + 4 + 2 + 3 * 17 + 5 + 5 + 99 + 2
    assert CertificateOfOwnership.parse(blob) == (signed, len(blob))
    _prefixes_raise(blob, CertificateOfOwnership.parse)
    assert not replace(signed, things=signed.things[:2]).verify(CTRL)
    assert not replace(signed, flags=1).verify(CTRL)
    full = CertificateOfOwnership(NWID, TS, 1, A.address)
    for i in range(20):
        full = full.add_mac(i)
    assert len(full.things) == 16  # silently full, as addThing


def test_coo_more_than_16_things_quirk() -> None:
    coo = CertificateOfOwnership(NWID, TS, 1, A.address)
    for i in range(16):
        coo = coo.add_mac(i + 1)
    blob = bytearray(coo.sign(CTRL).serialize())
    blob[28:30] = (17).to_bytes(2, "big")  # claims 17 things: the 17th is never consumed
    parsed, end = CertificateOfOwnership.parse(bytes(blob))
    assert len(parsed.things) == 16 and end == len(blob)


# --- Revocation ----------------------------------------------------------------------------


def test_revocation_roundtrip_sign_verify() -> None:
    rev = Revocation(0xDEADBEEF, NWID, 0, TS, 1, A.address, CredentialType.COM).sign(CTRL)
    assert rev.signer == CTRL.address and rev.fast_propagate and rev.verify(CTRL)
    blob = rev.serialize()
    assert len(blob) == 152  # A.3.6
    assert blob[:4] == bytes(4) and blob[4:8] == bytes.fromhex("deadbeef")
    assert blob[8:16] == NWID.to_bytes(8, "big") and blob[16:24] == bytes(8)
    assert blob[24:32] == TS.to_bytes(8, "big") and blob[32:40] == (1).to_bytes(8, "big")
    assert blob[40:45] == A.address.to_bytes5() and blob[45:50] == CTRL.address.to_bytes5()
    assert blob[50] == 1 and blob[51:54] == b"\x01\x00\x60" and blob[-2:] == b"\x00\x00"
    assert rev.signed_message() == b"\x7f" * 8 + blob[:51] + b"\x00\x00" + b"\x7f" * 8
    assert Revocation.parse(blob) == (rev, 152)
    _prefixes_raise(blob, Revocation.parse)
    assert not replace(rev, threshold=TS + 1).verify(CTRL)
    assert not replace(rev, credential_type=CredentialType.TAG).verify(CTRL)
    assert not Revocation(1, OTHER_NWID, 0, TS, 0, B.address, 1).sign(CTRL).verify(CTRL)
    negative = Revocation(1, NWID, 0, -5, 0, A.address, 1)
    assert Revocation.parse(negative.serialize())[0].threshold == -5


# --- NETWORK_CREDENTIALS ------------------------------------------------------------------


def _all_kinds() -> NetworkCredentials:
    return NetworkCredentials(
        coms=[_com(A), _com(B)],
        capabilities=[_cap().sign(CTRL, A.address)],
        tags=[Tag(NWID, TS, 1, 2, A.address).sign(CTRL), Tag(NWID, TS, 3, 4, A.address)],
        revocations=[Revocation(9, NWID, 0, TS, 1, B.address, 1).sign(CTRL)],
        coos=[CertificateOfOwnership(NWID, TS, 1, A.address).add_mac(5).sign(CTRL)],
    )


def test_network_credentials_roundtrip() -> None:
    creds = _all_kinds()
    assert isinstance(creds.coms, tuple)
    blob = creds.serialize()
    assert NetworkCredentials.parse(blob) == creds
    assert NetworkCredentials.parse(b"head" + blob, 4) == creds
    assert NetworkCredentials.parse(blob + b"ignored") == creds


def test_network_credentials_revocation_push_z3() -> None:
    rev = Revocation(0x01020304, NWID, 0, TS, 1, A.address, CredentialType.COM).sign(CTRL)
    blob = NetworkCredentials(revocations=[rev]).serialize()
    assert blob == b"\x00" + b"\x00\x00" + b"\x00\x00" + b"\x00\x01" + rev.serialize() + b"\x00\x00"
    assert NetworkCredentials.parse(blob).revocations == (rev,)


def test_network_credentials_older_senders() -> None:
    com = _com()
    only_coms = com.serialize() + b"\x00"
    assert NetworkCredentials.parse(only_coms) == NetworkCredentials(coms=[com])
    assert NetworkCredentials.parse(com.serialize()) == NetworkCredentials(coms=[com])
    assert NetworkCredentials.parse(b"") == NetworkCredentials()
    assert NetworkCredentials.parse(b"\x00") == NetworkCredentials()
    tag = Tag(NWID, TS, 1, 2, A.address).sign(CTRL)
    caps_and_tags = b"\x00\x00\x00\x00\x01" + tag.serialize()
    assert NetworkCredentials.parse(caps_and_tags) == NetworkCredentials(tags=[tag])
    for broken in (b"\x00\x00", b"\x00\x00\x01", b"\x02", only_coms + b"\x00\x00\x00"):
        with pytest.raises(MalformedPacket):
            NetworkCredentials.parse(broken)


def test_network_credentials_prefixes() -> None:
    """Each prefix parses (as an older sender's payload) or raises MalformedPacket."""
    blob = _all_kinds().serialize()
    outcomes = {"ok": 0, "malformed": 0}
    for n in range(len(blob)):
        try:
            NetworkCredentials.parse(blob[:n])
            outcomes["ok"] += 1
        except MalformedPacket:
            outcomes["malformed"] += 1
    # Whole-COM boundaries (0, 272, 544) and the section boundaries parse.
    assert outcomes["ok"] >= 3 and outcomes["malformed"] > len(blob) - 12


def test_pack_credentials() -> None:
    com = _com()
    assert pack_credentials(None) == []
    assert pack_credentials([CertificateOfMembership()]) == []
    assert pack_credentials(com) == [NetworkCredentials(coms=[com]).serialize()]
    coo = CertificateOfOwnership(NWID, TS, 1, A.address).add_mac(5).sign(CTRL)
    one = pack_credentials(com, coos=[coo])
    assert one == [NetworkCredentials(coms=[com], coos=[coo]).serialize()]
    tags = [Tag(NWID, TS, i, i, A.address).sign(CTRL) for i in range(128)]
    rules = b"\x2c\x08" + bytes(8)  # 10-byte rule entries: 64 of them make a 779-byte capability
    caps = [Capability(NWID, TS, i, rules * 64, 64).sign(CTRL, A.address) for i in range(20)]
    assert len(caps[0].serialize()) == 779 and len(tags[0].serialize()) == 135
    payloads = NetworkCredentials(coms=[com], capabilities=caps, tags=tags).split()
    parsed = [NetworkCredentials.parse(p) for p in payloads]
    assert [len(p.coms) for p in parsed] == [1, 0, 0, 0]
    assert [c for p in parsed for c in p.capabilities] == caps
    assert [t for p in parsed for t in p.tags] == tags
    for payload in payloads:
        assert PACKET_HEADER_LENGTH + len(payload) <= MAX_PACKET_LENGTH
    # Upstream's budget: an item goes in while 28 + size + sizeof(item) + 16 < 10024, with
    # sizeof(Capability) = 2864 and sizeof(Tag) = 136. Packet 1: COM (272) + 0x00 + count,
    # then capabilities while size < 7116 (9), tags while size < 9844 (19); packet 2: 10
    # capabilities and 16 tags; packet 3: the last capability and 68 tags; packet 4: 25 tags.
    assert [len(p.capabilities) for p in parsed] == [9, 10, 1, 0]
    assert [len(p.tags) for p in parsed] == [19, 16, 68, 25]


def test_pack_credentials_tiny_budget_still_progresses() -> None:
    tags = [Tag(NWID, TS, i, i, A.address).sign(CTRL) for i in range(3)]
    payloads = pack_credentials(None, tags=tags, max_packet_length=100)
    assert [NetworkCredentials.parse(p).tags for p in payloads] == [(t,) for t in tags]


def test_controller_for() -> None:
    assert controller_for(NWID) == CTRL.address == Address(0x1FAD486CAF)


# --- fuzz ----------------------------------------------------------------------------------

PARSERS: list[Callable[[bytes], object]] = [
    CertificateOfMembership.parse,
    Capability.parse,
    Tag.parse,
    CertificateOfOwnership.parse,
    Revocation.parse,
    NetworkCredentials.parse,
]


@settings(max_examples=300)
@given(st.binary(max_size=400), st.sampled_from(range(len(PARSERS))))
def test_random_bytes_raise_only_malformed(data: bytes, which: int) -> None:
    try:
        PARSERS[which](data)
    except MalformedPacket:
        pass


@settings(max_examples=200)
@given(st.data())
def test_mutated_credentials_raise_only_malformed(data: st.DataObject) -> None:
    blob = bytearray(_MUTABLE[data.draw(st.integers(0, len(_MUTABLE) - 1))])
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    for parse in PARSERS:
        try:
            parse(bytes(blob))
        except MalformedPacket:
            pass


_MUTABLE = [
    _com().serialize(),
    _cap(mccl=3).sign(CTRL, A.address).serialize(),
    _all_kinds().serialize(),
]


@given(
    st.integers(0, (1 << 64) - 1),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.integers(0, (1 << 32) - 1),
    st.integers(0, (1 << 32) - 1),
    st.integers(0, (1 << 40) - 1),
)
def test_tag_roundtrip_property(nwid: int, ts: int, tid: int, value: int, to: int) -> None:
    tag = Tag(nwid, ts, tid, value, Address(to), Address(to ^ 1), bytes(range(96)))
    assert Tag.parse(tag.serialize()) == (tag, 135)
