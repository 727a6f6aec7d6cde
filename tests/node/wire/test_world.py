"""Worlds (planet and moon): parse, serialize, sign, update rules (PROTOCOL-CORE §7).

Known answers: the default planet of 1.14.1 (§7.5), the lab1 private planet and the
moon made by the real ``zerotier-idtool genmoon`` (``vectors/worlds/SOURCE.md``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VECTORS
from ztone.crypto import c25519
from ztone.errors import LocalUsageError, MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.default_planet import DEFAULT_PLANET_BYTES, default_planet
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import (
    MAX_SERIALIZED_LENGTH,
    SIGNATURE_PREFIX,
    SIGNATURE_SUFFIX,
    WORLD_ID_EARTH,
    Root,
    World,
    WorldType,
)

WORLDS = VECTORS / "worlds"
LAB1_PLANET = (WORLDS / "lab1.planet").read_bytes()
LAB1_KEY = (WORLDS / "lab1.planet.signingkey").read_bytes()
MOON = (WORLDS / "000000d41df8ed6a.moon").read_bytes()
MOON_JSON = json.loads((WORLDS / "moon.json").read_text())
ALL = {"default": DEFAULT_PLANET_BYTES, "lab1": LAB1_PLANET, "moon": MOON}

# A fixed key pair for worlds made here (any 64 bytes make a private key).
KEY_PRIVATE = bytes(range(64))
KEY_PUBLIC = c25519.public_from_private(KEY_PRIVATE)
OTHER_PRIVATE = bytes(range(1, 65))


def ep(text: str) -> InetAddress:
    return InetAddress.parse(text)


def test_default_planet_known_answer() -> None:
    w = default_planet()
    assert len(DEFAULT_PLANET_BYTES) == 570
    assert w.type == WorldType.PLANET
    assert w.id == WORLD_ID_EARTH == 0x8EAC90A
    assert w.timestamp == 1644592324813
    assert w.updates_must_be_signed_by.hex().startswith("b8b388a469221491")
    assert w.signature.hex().startswith("3600927637ef4d14")
    assert [(str(r.identity.address), [str(e) for e in r.stable_endpoints]) for r in w.roots] == [
        ("cafe9efeb9", ["104.194.8.134/9993", "2605:9880:200:1200:30:571:e34:51/9993"]),
        ("778cde7190", ["103.195.103.66/9993", "2605:9880:400:c3:254:f2bc:a1f7:19/9993"]),
        ("62f865ae71", ["50.7.252.138/9993", "2001:49f0:d0db:2::2/9993"]),
        ("cafe04eba9", ["84.17.53.155/9993", "2a02:6ea0:d405::9993/9993"]),
    ]
    assert str(w.roots[0].identity) == (
        "cafe9efeb9:0:ccdef76bc7b97ded904eabc5df09886d9c1514a610036cb9139cc214001a2958"
        "978efcec15712dd3948c6e6b3a8e893df01ff493d1f8d9806a860c5420571bf0"
    )
    assert w.verify_signature(w.updates_must_be_signed_by)
    assert w.serialize() == DEFAULT_PLANET_BYTES
    assert default_planet() is w


def test_lab1_planet() -> None:
    w = World.parse(LAB1_PLANET)
    assert w.type == WorldType.PLANET
    assert w.id == WORLD_ID_EARTH
    assert w.timestamp == 1795310304886
    assert len(w.roots) == 1
    assert w.roots[0].identity.address == Address(0x9DB2FC9CE1)
    assert w.roots[0].stable_endpoints == (ep("198.18.0.10/9993"),)
    # planet.signingkey = public || private of the update-signing pair.
    assert len(LAB1_KEY) == 128
    assert c25519.public_from_private(LAB1_KEY[64:]) == LAB1_KEY[:64]
    assert w.updates_must_be_signed_by == LAB1_KEY[:64]
    assert w.verify_signature(LAB1_KEY[:64])
    assert not w.verify_signature(default_planet().updates_must_be_signed_by)
    # The same message signed again with the recorded key gives the same bytes.
    assert c25519.sign(LAB1_KEY[64:], w.signed_message()) == w.signature
    assert w.serialize() == LAB1_PLANET


def test_recorded_moon_matches_its_json() -> None:
    w = World.parse(MOON)
    assert w.type == WorldType.MOON
    assert w.id == int(MOON_JSON["id"], 16) == 0xD41DF8ED6A
    assert w.updates_must_be_signed_by.hex() == MOON_JSON["updatesMustBeSignedBy"]
    assert w.verify_signature(bytes.fromhex(MOON_JSON["signingKey"]))
    assert w.dictionary == b""
    assert MOON.endswith(b"\x00\x00")
    assert [
        {"identity": str(r.identity), "stableEndpoints": [str(e) for e in r.stable_endpoints]}
        for r in w.roots
    ] == MOON_JSON["roots"]
    assert w.serialize() == MOON
    assert (
        World.make(
            WorldType.MOON,
            w.id,
            w.timestamp,
            w.updates_must_be_signed_by,
            w.roots,
            bytes.fromhex(MOON_JSON["signingKey_SECRET"]),
        ).serialize()
        == MOON
    )


@pytest.mark.parametrize("name", sorted(ALL))
def test_round_trip_and_signed_message(name: str) -> None:
    data = ALL[name]
    w = World.parse(data)
    assert w.serialize() == data
    assert World.parse(w.serialize()) == w
    unsigned = w.serialize(include_signature=False)
    assert unsigned == data[:81] + data[177:]
    assert w.signed_message() == SIGNATURE_PREFIX + unsigned + SIGNATURE_SUFFIX
    assert w.signed_message()[:8] == b"\x7f" * 8 and w.signed_message()[-8:] == b"\xf7" * 8


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_truncation_is_malformed(name: str) -> None:
    data = ALL[name]
    for n in range(len(data)):
        with pytest.raises(MalformedPacket):
            World.parse(data[:n])
        with pytest.raises(MalformedPacket):
            World.parse_prefix(data[:n])


def test_trailing_bytes_and_concatenation() -> None:
    with pytest.raises(MalformedPacket):
        World.parse(MOON + b"\x00")
    blob = b"junk" + MOON + LAB1_PLANET
    first, end = World.parse_prefix(blob, 4)
    second, end2 = World.parse_prefix(blob, end)
    assert (first.type, second.type) == (WorldType.MOON, WorldType.PLANET)
    assert end2 == len(blob)
    with pytest.raises(MalformedPacket):
        World.parse_prefix(blob, -1)


def _with_byte(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes((value,)) + data[index + 1 :]


def test_invalid_fields() -> None:
    for bad_type in (2, 126, 128, 255):
        with pytest.raises(MalformedPacket):
            World.parse(_with_byte(LAB1_PLANET, 0, bad_type))
    # Root count at offset 177, then the first root's identity type byte and its
    # private-key length byte, then its endpoint count.
    with pytest.raises(MalformedPacket):
        World.parse(_with_byte(DEFAULT_PLANET_BYTES, 177, 5))
    with pytest.raises(MalformedPacket):
        World.parse(_with_byte(LAB1_PLANET, 178 + 5, 1))
    with pytest.raises(MalformedPacket):
        World.parse(_with_byte(LAB1_PLANET, 178 + 70, 32))
    with pytest.raises(MalformedPacket):
        World.parse(_with_byte(LAB1_PLANET, 178 + 71, 33))
    # An endpoint of an unknown InetAddress type.
    with pytest.raises(MalformedPacket):
        World.parse(_with_byte(LAB1_PLANET, 178 + 72, 5))


def test_null_type_world_is_accepted() -> None:
    data = bytes(177) + b"\x00"
    w = World.parse(data)
    assert w.type == WorldType.NULL and w.is_null and w.roots == ()
    assert w.serialize() == data


def test_root_with_private_key_keeps_public_only() -> None:
    identity = default_planet().roots[0].identity
    with_secret = Identity(identity.address, identity.public, bytes(64))
    w = World.make(WorldType.PLANET, 7, 1, KEY_PUBLIC, [Root(with_secret)], KEY_PRIVATE)
    assert (
        w.serialize()
        == World.make(WorldType.PLANET, 7, 1, KEY_PUBLIC, [Root(identity)], KEY_PRIVATE).serialize()
    )
    raw = bytearray(w.serialize())
    at = 178 + 70
    raw[at : at + 1] = b"\x40" + bytes(range(64))  # private key length 64 + key
    parsed = World.parse(bytes(raw))
    assert parsed.roots[0].identity.secret is None
    assert parsed.serialize() == w.serialize()
    assert parsed.verify_signature(KEY_PUBLIC)


def test_reserved_and_null_endpoints_are_kept_as_null_slots() -> None:
    identity = default_planet().roots[0].identity
    root = Root(identity, (ep("198.18.0.10/9993"),), null_endpoint_slots=(0,))
    w = World.make(WorldType.MOON, 9, 2, KEY_PUBLIC, [root], KEY_PRIVATE)
    data = w.serialize()
    assert data[178 + 71 : 178 + 71 + 9] == bytes.fromhex("02" + "00" + "04c612000a2709")
    assert World.parse(data) == w and World.parse(data).verify_signature(KEY_PUBLIC)
    assert root.wire_endpoints() == [None, ep("198.18.0.10/9993")]
    # A reserved type-1 entry (7 bytes) decodes to a null slot, re-serialized as 00
    # as the reference does.
    reserved = data[: 178 + 72] + b"\x01" + bytes(6) + data[178 + 73 :]
    parsed = World.parse(reserved)
    assert parsed.roots[0].null_endpoint_slots == (0,)
    assert parsed.serialize() == data
    assert parsed.verify_signature(KEY_PUBLIC)


def test_moon_dictionary_is_kept_but_not_signed() -> None:
    w = World.parse(MOON)
    with_dict = MOON[:-2] + b"\x00\x03abc"
    parsed = World.parse(with_dict)
    assert parsed.dictionary == b"abc"
    assert parsed.serialize() == with_dict
    assert parsed.signed_message() == w.signed_message()
    assert parsed.verify_signature(w.updates_must_be_signed_by)
    assert parsed == w  # like World::operator==, the dictionary is not compared
    with pytest.raises(MalformedPacket):
        World.parse(MOON[:-2] + b"\x00\x03ab")
    too_long = MOON[:-2] + (MAX_SERIALIZED_LENGTH - len(MOON) + 1).to_bytes(2, "big")
    too_long += bytes(MAX_SERIALIZED_LENGTH - len(MOON) + 1)
    assert len(too_long) == MAX_SERIALIZED_LENGTH + 1
    with pytest.raises(MalformedPacket):
        World.parse(too_long)
    at_limit = too_long[: len(MOON) - 2] + (MAX_SERIALIZED_LENGTH - len(MOON)).to_bytes(2, "big")
    at_limit += bytes(MAX_SERIALIZED_LENGTH - len(MOON))
    assert len(World.parse(at_limit).serialize()) == MAX_SERIALIZED_LENGTH


def test_make_and_local_limits() -> None:
    roots = [Root(r.identity, r.stable_endpoints) for r in default_planet().roots]
    w = World.make(WorldType.PLANET, 42, 1000, KEY_PUBLIC, roots, KEY_PRIVATE)
    assert w.verify_signature(KEY_PUBLIC)
    assert not w.verify_signature(c25519.public_from_private(OTHER_PRIVATE))
    assert World.parse(w.serialize()) == w
    identity = roots[0].identity
    with pytest.raises(LocalUsageError):
        World.make(WorldType.PLANET, 1, 1, KEY_PUBLIC, [Root(identity)] * 5, KEY_PRIVATE)
    with pytest.raises(LocalUsageError):
        Root(identity, (ep("198.18.0.1/1"),) * 33)
    with pytest.raises(LocalUsageError):
        Root(identity, (), null_endpoint_slots=(1,))
    with pytest.raises(LocalUsageError):
        World.make(2, 1, 1, KEY_PUBLIC, [], KEY_PRIVATE)
    with pytest.raises(LocalUsageError):
        World.make(WorldType.PLANET, 1 << 64, 1, KEY_PUBLIC, [], KEY_PRIVATE)
    with pytest.raises(LocalUsageError):
        dataclasses.replace(w, dictionary=b"x")  # only moons carry one


def _planet(ts: int, signer: bytes, world_id: int = 42, kind: int = WorldType.PLANET) -> World:
    roots = [Root(default_planet().roots[0].identity, (ep("198.18.0.10/9993"),))]
    return World.make(kind, world_id, ts, KEY_PUBLIC, roots, signer)


def test_should_be_replaced_by() -> None:
    current = _planet(1000, KEY_PRIVATE)
    assert current.should_be_replaced_by(_planet(1001, KEY_PRIVATE))
    # Signed with a key other than current's updatesMustBeSignedBy.
    assert not current.should_be_replaced_by(_planet(1001, OTHER_PRIVATE))
    # Not strictly newer.
    assert not current.should_be_replaced_by(_planet(1000, KEY_PRIVATE))
    assert not current.should_be_replaced_by(_planet(999, KEY_PRIVATE))
    # Another world id or type.
    assert not current.should_be_replaced_by(_planet(1001, KEY_PRIVATE, world_id=43))
    assert not current.should_be_replaced_by(_planet(1001, KEY_PRIVATE, kind=WorldType.MOON))
    # A tampered update fails the signature check.
    update = _planet(1001, KEY_PRIVATE)
    tampered = dataclasses.replace(update, roots=(Root(update.roots[0].identity),))
    assert not current.should_be_replaced_by(tampered)
    # The chain: an update names a new key; the next update must be signed with it.
    new_public = c25519.public_from_private(OTHER_PRIVATE)
    rotated = World.make(WorldType.PLANET, 42, 2000, new_public, update.roots, KEY_PRIVATE)
    assert current.should_be_replaced_by(rotated)
    assert rotated.should_be_replaced_by(_planet(3000, OTHER_PRIVATE))
    assert not rotated.should_be_replaced_by(_planet(3000, KEY_PRIVATE))
    # A null current world is replaced by anything, unchecked.
    null = World.parse(bytes(178))
    assert null.should_be_replaced_by(_planet(1, OTHER_PRIVATE))
    zero_id = dataclasses.replace(current, id=0)
    assert zero_id.should_be_replaced_by(_planet(1, OTHER_PRIVATE, world_id=5))
    # The recorded worlds: the default planet does not replace the lab1 planet.
    lab1 = World.parse(LAB1_PLANET)
    assert not lab1.should_be_replaced_by(default_planet())
    assert not default_planet().should_be_replaced_by(lab1)  # another signing key


# --- property tests ---------------------------------------------------------------------

_ipv4 = st.builds(ipaddress.IPv4Address, st.integers(0, (1 << 32) - 1))
_ipv6 = st.builds(ipaddress.IPv6Address, st.integers(0, (1 << 128) - 1))
_endpoint = st.builds(InetAddress, st.one_of(_ipv4, _ipv6), st.integers(0, 0xFFFF))
_identity = st.builds(
    Identity,
    st.builds(Address, st.integers(0, (1 << 40) - 1)),
    st.binary(min_size=64, max_size=64),
)


@st.composite
def _roots(draw: st.DrawFn) -> Root:
    endpoints = draw(st.lists(_endpoint, max_size=6))
    nulls = draw(st.integers(0, 2))
    slots = draw(st.permutations(range(len(endpoints) + nulls)))[:nulls]
    return Root(draw(_identity), tuple(endpoints), tuple(sorted(slots)))


@st.composite
def _worlds(draw: st.DrawFn) -> World:
    kind = draw(st.sampled_from(list(WorldType)))
    return World(
        kind,
        draw(st.integers(0, (1 << 64) - 1)),
        draw(st.integers(0, (1 << 64) - 1)),
        draw(st.binary(min_size=64, max_size=64)),
        draw(st.binary(min_size=96, max_size=96)),
        tuple(draw(st.lists(_roots(), max_size=4))),
        draw(st.binary(max_size=40)) if kind == WorldType.MOON else b"",
    )


@given(_worlds())
@settings(max_examples=200)
def test_random_worlds_round_trip(world: World) -> None:
    data = world.serialize()
    parsed = World.parse(data)
    assert parsed == world
    assert parsed.dictionary == world.dictionary
    assert parsed.serialize() == data
    assert World.parse_prefix(data + b"tail") == (world, len(data))


@given(st.binary(max_size=600))
@settings(max_examples=300)
def test_random_bytes_parse_or_raise_malformed(data: bytes) -> None:
    try:
        World.parse(data)
    except MalformedPacket:
        pass


@given(st.sampled_from(sorted(ALL)), st.data())
@settings(max_examples=300)
def test_mutated_worlds_parse_or_raise_malformed(name: str, data: st.DataObject) -> None:
    blob = bytearray(ALL[name])
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        w = World.parse(bytes(blob))
    except MalformedPacket:
        return
    assert World.parse(w.serialize()) == w
