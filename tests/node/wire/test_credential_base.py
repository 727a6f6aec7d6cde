"""What the credentials share (PROTOCOL-NETWORK-SERVICE A.3.1), on its own: the bounded
reader, the signature section, the for-sign form, the controller check, and the
:class:`SignedCredential` contract that Tag, Revocation and the COO state once.

The recorded lab configs (real zerotier-one 1.14.1 output) carry a COO signed by the
real controller: it re-serializes byte for byte and verifies through the shared code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import VECTORS
from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.coo import CertificateOfOwnership
from ztone.node.wire.credential_base import (
    FOR_SIGN_MARK,
    NO_SIGNATURE,
    SignedCredential,
    WireReader,
    controller_for,
    for_sign,
    read_signature,
    signature_section,
    signed_by_controller,
    skip_extension,
    to_int64,
)
from ztone.node.wire.identity import Identity
from ztone.node.wire.network_config import NetworkConfig
from ztone.node.wire.revocation import Revocation
from ztone.node.wire.tag import Tag

LAB1 = VECTORS / "lab1"
NETCONF = VECTORS / "netconf"
CTRL = Identity.from_string((LAB1 / "ctrl" / "identity.secret").read_text())
A = Identity.from_string((LAB1 / "a" / "identity.secret").read_text())
NWID = 0x1FAD486CAFE468E2  # controlled by CTRL (1fad486caf)
ISSUED_TO = Address(0x4B3BACDDB4)

# One of each credential built on SignedCredential, unsigned, with its body length.
Simple = Tag | Revocation | CertificateOfOwnership
UNSIGNED: list[tuple[Simple, int]] = [
    (Tag(NWID, 1_700_000_000_000, 7, 42, ISSUED_TO), 34),
    (Revocation(0xDEADBEEF, NWID, 5, 1_700_000_000_000, 1, ISSUED_TO, 3), 51),
    (CertificateOfOwnership(NWID, 1_700_000_000_000, 1, ISSUED_TO).add_mac(0x32AABBCCDDEE), 57),
]
IDS = ["tag", "revocation", "coo"]


# --- the reader and the sections --------------------------------------------------------


def test_reader_reads_big_endian_and_refuses_overruns() -> None:
    r = WireReader(bytes.fromhex("0102 03040506 1122334455 ff"), 0)
    assert (r.u16(), r.u32(), r.address(), r.remaining) == (0x0102, 0x03040506, 0x1122334455, 1)
    with pytest.raises(MalformedPacket, match="truncated u16"):
        r.u16()
    assert r.u8() == 0xFF and r.remaining == 0
    with pytest.raises(MalformedPacket):
        WireReader(b"", -1)
    with pytest.raises(MalformedPacket):
        WireReader(b"abc").take(-1)


def test_signature_section_and_reader() -> None:
    sig = bytes(range(96))
    section = signature_section(sig)
    assert section == b"\x01\x00\x60" + sig
    assert read_signature(WireReader(section)) == sig
    assert signature_section(b"short") == b"\x01\x00\x60" + NO_SIGNATURE
    # another signature type: its bytes are skipped and no signature is kept
    r = WireReader(b"\x02\x00\x03abcZ")
    assert read_signature(r) == NO_SIGNATURE and r.u8() == ord("Z")
    with pytest.raises(MalformedPacket, match="signature length 95"):
        read_signature(WireReader(b"\x01\x00\x5f" + bytes(95)))
    r = WireReader(b"\x00\x02xyZ")
    skip_extension(r)
    assert r.u8() == ord("Z")


def test_for_sign_and_small_helpers() -> None:
    assert for_sign(b"body") == FOR_SIGN_MARK + b"body" + b"\x00\x00" + FOR_SIGN_MARK
    assert FOR_SIGN_MARK == b"\x7f" * 8
    assert controller_for(NWID) == 0x1FAD486CAF
    assert to_int64((1 << 64) - 1) == -1 and to_int64(5) == 5


def test_signed_by_controller() -> None:
    message = b"message"
    good = CTRL.sign(message)
    ctrl = CTRL.public_only()
    assert signed_by_controller(NWID, CTRL.address, ctrl, message, good)
    assert not signed_by_controller(NWID, 0, ctrl, message, good)  # unsigned
    assert not signed_by_controller(NWID + (1 << 24), CTRL.address, ctrl, message, good)
    assert not signed_by_controller(NWID, CTRL.address, A, message, A.sign(message))
    assert not signed_by_controller(NWID, CTRL.address, ctrl, message + b"!", good)


# --- the SignedCredential contract, once per credential -----------------------------------


@pytest.mark.parametrize(("cred", "body_length"), UNSIGNED, ids=IDS)
def test_wire_form_is_body_signature_empty_extension(cred: Simple, body_length: int) -> None:
    body = cred.body()
    assert len(body) == body_length
    assert cred.serialize() == body + b"\x01\x00\x60" + NO_SIGNATURE + b"\x00\x00"
    assert cred.signed_message() == for_sign(body)


@pytest.mark.parametrize(("cred", "body_length"), UNSIGNED, ids=IDS)
def test_sign_then_verify(cred: Simple, body_length: int) -> None:
    signed = cred.sign(CTRL)
    assert type(signed) is type(cred)
    assert signed.signed_by == CTRL.address and cred.signed_by == 0  # a copy
    # the signer's address is inside what is signed
    assert signed.body()[body_length - (6 if isinstance(cred, Revocation) else 5) :][:5] == (
        CTRL.address.to_bytes5()
    )
    assert CTRL.verify(signed.signed_message(), signed.signature)
    assert signed.verify(CTRL.public_only())
    assert not cred.verify(CTRL)  # unsigned
    assert not signed.verify(A)  # the wrong identity
    assert not replace(signed, network_id=NWID ^ 1).verify(CTRL)  # changed after signing
    by_member = cred.sign(A)  # validly signed, but not by the network's controller
    assert A.verify(by_member.signed_message(), by_member.signature)
    assert not by_member.verify(A)
    parsed, end = type(signed).parse(signed.serialize() + b"tail")
    assert parsed == signed and end == len(signed.serialize())


@pytest.mark.parametrize("node", ["a", "b"])
def test_recorded_coo_reserializes_and_verifies(node: str) -> None:
    config = NetworkConfig.parse((NETCONF / f"{node}.1fad486cafe468e2.conf").read_bytes())
    ctrl = Identity.from_string((NETCONF / "ctrl.identity.public").read_text())
    (coo,) = config.coos
    wire = coo.serialize()
    assert CertificateOfOwnership.parse(wire) == (coo, len(wire))
    assert coo.signed_message() == for_sign(wire[: len(coo.body())])
    assert coo.verify(ctrl)
    assert not replace(coo, timestamp=coo.timestamp + 1).verify(ctrl)


# --- fuzz ---------------------------------------------------------------------------------


@given(st.binary(max_size=120))
def test_random_signature_sections_raise_only_malformed(data: bytes) -> None:
    r = WireReader(data)
    try:
        sig = read_signature(r)
    except MalformedPacket:
        return
    assert len(sig) == 96 and r.pos <= len(data)


Parse = Callable[[bytes], tuple[SignedCredential, int]]
PARSERS: list[Parse] = [Tag.parse, Revocation.parse, CertificateOfOwnership.parse]


@given(st.sampled_from(PARSERS), st.binary(max_size=200))
def test_random_credentials_raise_only_malformed(parse: Parse, data: bytes) -> None:
    try:
        cred, end = parse(data)
    except MalformedPacket:
        return
    assert end <= len(data)
    assert isinstance(cred, SignedCredential)
