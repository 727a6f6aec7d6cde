"""Known-answer tests: PROTOCOL-CORE Appendix A and the reference identities.

Appendix A was produced by a harness compiled from copies of zerotier-one 1.14.1's
``node/`` sources; ``vectors/identities.json`` by the real ``zerotier-idtool``.
Every crypto test runs once per backend (pure Python and native) via ``crypto_backend``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import VECTORS
from ztone.crypto import c25519, mhash
from ztone.crypto.armor import PeerKey, armor, crypt_field, dearmor, kbkdf_hmac_sha384
from ztone.crypto.backend import Backend
from ztone.node.wire.address import Address
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.fragment import Fragment, split
from ztone.node.wire.hello import Hello, MoonRecord, make_hello_packet, parse_hello
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress, parse_inet, serialize_inet
from ztone.node.wire.mac import MAC
from ztone.node.wire.packet import build_packet, compress, uncompress

H = bytes.fromhex

# A.1
SALSA_KEY = H("0f62b5085bae0154a7fa4da0f34699ec3f92e5388bde3184d72a7dd02376c91c")
SALSA_NONCE = H("288ff65dc42b92f9")
SALSA12_KS = H(
    "99db33ad11ce0ccb3bfdbf8d0c18160452d014cde989b4c411a559ff7c20a169"
    "e6dc9909d816becedc4063ce07cea828f44bf9b6c9a0a0b200e1b52af41859c5"
)
SALSA20_KS = H(
    "5e5e71f90199340304abb22a37b6625bf883fb89ce3b21f54a10b81066ef87da"
    "30b77699aa7379da595c77dd59542da208e5954f89e40eb7aa80a84a6176663f"
)
# A.3
KNOWN_GOOD = (
    "8e4df28b72:0:ac3d46abe0c21f3cfe7a6c8d6a85cfcffcb82fbd55af6a4d6350657c68200843fa2e16f9418bbd"
    "9702cae365f2af5fb4c420908b803a681d4daef6114d78a2d7:bd8dd6e4ce7022d2f812797a80c6ee8ad180dc4ebf"
    "301dec8b06d1be08832bddd63a2f1cfa7b2c504474c75bdc8898ba476ef92e8e2d0509f8441985171ff16e"
)
KNOWN_GOOD_HASH = H(
    "10b1afd388c4c1561f184ed54cd5bd012a1c8edf5a5975200bb15608dba0b5eb"
    "b9faa360a0c6bf99cf684e015bf5bda9d347a4867a5515fa48c6c58e4df28b72"
)
# A.4
SYNTH_KEY = bytes((3 * i + 1) & 0xFF for i in range(48))
PLAIN = H(
    "deadbeef01020304112233445566778899aa00000000000000000006040b121920272e353c434a51585f666d74"
)
ARMORED = {
    1: H(
        "deadbeef01020304112233445566778899aa881b52616a6d94495b718bd33ae21e30c5f7a46faa4233b100846f"
    ),
    0: H(
        "deadbeef01020304112233445566778899aa000e5373cba009562b06040b121920272e353c434a51585f666d74"
    ),
    3: H(
        "9c959f8d1d8a7ef5112233445566778899aa180241cdf6b96f8c94147e3af46ebb1a50decd5f14f3c9b0d98a6d"
    ),
}
EMPTY = H("deadbeef01020304112233445566778899aa00000000000000000006")
EMPTY_ARMORED = {
    1: H("deadbeef01020304112233445566778899aa88add8ea4fd36f87c266"),
    3: H("39e58ac4d30cc0c5112233445566778899aa1852778c00e5d80dea78"),
}
# A.6
RECEIVER_B = (
    "4a13489c81:0:1a0940ed8476a33fbade453f23ca9f9d26d39ee5ca0527c2c02d700ad2c56c4291cccda2ad9bff"
    "b51e3466bfb846c79e6f3797ff097bcd6842760830f1d21ed0:020e7fa3a9e183cb489f0c70fa54b7ced0cdd1553a"
    "cc330e461fda7c611f703b0ac1ba86efd40ab689782e8baf08e583e9d15f71ce6e4e8fd4c631f5be1a3141"
)
HELLO_SHARED_KEY = H(
    "4058415d411d2d76758a4a90a899ba57b315f4a6c1cc8031c5f621821f8f1ebc0e46edbfef742c49d0b77e06c0ed35bf"
)
HELLO_PLAIN = H(
    "112233445566778f4a13489c818e4df28b72000000000000000000010c010e00"
    "010000018bcfe568008e4df28b7200ac3d46abe0c21f3cfe7a6c8d6a85cfcffc"
    "b82fbd55af6a4d6350657c68200843fa2e16f9418bbd9702cae365f2af5fb4c4"
    "20908b803a681d4daef6114d78a2d70004cb00710527090000000008eac90a00"
    "00017ee95760cd00017f00000012345678900000000000000000"
)
HELLO_WIRE = H(
    "112233445566778f4a13489c818e4df28b7200a4a91728d4b2b88e010c010e00"
    "010000018bcfe568008e4df28b7200ac3d46abe0c21f3cfe7a6c8d6a85cfcffc"
    "b82fbd55af6a4d6350657c68200843fa2e16f9418bbd9702cae365f2af5fb4c4"
    "20908b803a681d4daef6114d78a2d70004cb00710527090000000008eac90a00"
    "00017ee95760cd3687bb8fa4ec0fb0adb1d05a4fa1b619487563"
)


def _identities() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "identities.json").read_text())
    return data


def test_salsa20_a1(crypto_backend: Backend) -> None:
    assert crypto_backend.salsa20_xor(SALSA_KEY, SALSA_NONCE, bytes(64), 12) == SALSA12_KS
    assert crypto_backend.salsa20_xor(SALSA_KEY, SALSA_NONCE, bytes(64), 20) == SALSA20_KS
    # block offsets: block 1 of a 128-byte stream equals first_block=1
    two = crypto_backend.salsa20_xor(SALSA_KEY, SALSA_NONCE, bytes(128), 12)
    assert crypto_backend.salsa20_xor(SALSA_KEY, SALSA_NONCE, bytes(64), 12, 1) == two[64:]


def test_poly1305_a2(crypto_backend: Backend) -> None:
    key = b"this is 32-byte key for Poly1305"
    tag = crypto_backend.poly1305_tag
    assert tag(key, bytes(32)) == H("49ec78090e481ec6c26b33b91ccc0307")
    assert tag(key, b"Hello world!") == H("a6f745008f81c916a20dcc74eef2b2f0")


def test_memory_hard_hash_a3(crypto_backend: Backend) -> None:
    ident = Identity.from_string(KNOWN_GOOD)
    assert crypto_backend.memory_hard_hash(ident.public) == KNOWN_GOOD_HASH
    assert ident.locally_validate(crypto_backend.memory_hard_hash)
    bad = Identity.from_string("9e4df28b72" + KNOWN_GOOD[10:])
    assert not bad.locally_validate(crypto_backend.memory_hard_hash)


def test_pure_hash_matches_known_answer() -> None:
    assert mhash.memory_hard_hash(Identity.from_string(KNOWN_GOOD).public) == KNOWN_GOOD_HASH


def test_kbkdf_a4() -> None:
    assert kbkdf_hmac_sha384(SYNTH_KEY, 0x30) == H(
        "d797df80d8ad95c233430cdf5bc36a1228ddbd61daa7e1a90f60961237cb965f"
        "1f2b29e127681de7513f193b80e74322"
    )
    assert kbkdf_hmac_sha384(SYNTH_KEY, 0x31) == H(
        "36725b1ee8f19c35b6c7f9d43b1ba4dd4f6692014f130292a0bca1f0fb0db675"
        "2180f2bfa1fe8ae1813cbea2459fe473"
    )


@pytest.mark.parametrize("suite", [0, 1, 3])
def test_armor_a4(crypto_backend: Backend, suite: int) -> None:
    key = PeerKey(SYNTH_KEY, crypto_backend)
    packet = bytearray(PLAIN)
    armor(packet, key, suite)
    assert bytes(packet) == ARMORED[suite]
    assert dearmor(packet, key)
    assert packet[27:] == PLAIN[27:]
    assert packet[8:18] == PLAIN[8:18]


@pytest.mark.parametrize("suite", [1, 3])
def test_armor_empty_payload_a4(crypto_backend: Backend, suite: int) -> None:
    key = PeerKey(SYNTH_KEY, crypto_backend)
    packet = bytearray(EMPTY)
    armor(packet, key, suite)
    assert bytes(packet) == EMPTY_ARMORED[suite]
    assert dearmor(packet, key)
    assert bytes(packet[27:]) == EMPTY[27:]


@pytest.mark.parametrize("suite", [0, 1, 3])
def test_dearmor_rejects_tampering(crypto_backend: Backend, suite: int) -> None:
    key = PeerKey(SYNTH_KEY, crypto_backend)
    for index in (0, 9, 14, 18, 20, 27, len(PLAIN) - 1):
        packet = bytearray(ARMORED[suite])
        packet[index] ^= 0x10
        before = bytes(packet)
        assert not dearmor(packet, key), f"suite {suite} accepted a flip at byte {index}"
        assert bytes(packet) == before
    wrong = PeerKey(bytes(48), crypto_backend)
    assert not dearmor(bytearray(ARMORED[suite]), wrong)


def test_relay_hop_increment_keeps_mac_valid(crypto_backend: Backend) -> None:
    key = PeerKey(SYNTH_KEY, crypto_backend)
    for suite in (0, 1, 3):
        packet = bytearray(ARMORED[suite])
        packet[18] = (packet[18] & 0xF8) | 2
        assert dearmor(packet, key), suite


def test_unknown_suites_rejected(crypto_backend: Backend) -> None:
    key = PeerKey(SYNTH_KEY, crypto_backend)
    for suite in (2, 4, 5, 6, 7):
        packet = bytearray(ARMORED[1])
        packet[18] = (packet[18] & 0x47) | (suite << 3)
        assert not dearmor(packet, key)


def test_fragment_header_a5() -> None:
    frag = Fragment(0xDEADBEEF01020304, Address(0x1122334455), 3, 1, 0, b"")
    assert frag.serialize() == H("deadbeef010203041122334455ff3100")


def test_fragment_split_layout() -> None:
    # upstream would cut 3072 bytes into 1432 + (16 + 1416) + (16 + 224): three pieces;
    # ztone makes three pieces of even length: 1035 + (16 + 1019) + (16 + 1018)
    packet = bytes(range(256)) * 12
    pieces = split(packet, 1432)
    assert [len(p) for p in pieces] == [1035, 1035, 1034]
    assert pieces[1][:16] == packet[:13] + b"\xff\x31\x00"
    assert pieces[2][14] == 0x32
    assert pieces[0] + pieces[1][16:] + pieces[2][16:] == packet


def test_fragment_split_piece_count_is_upstreams() -> None:
    per = 1432 - 16
    for n in range(1433, 9929, 7):
        pieces = split(bytes(n), 1432)
        assert len(pieces) == 1 + -(-(n - 1432) // per)
        assert max(len(p) for p in pieces) <= 1432
        assert len({len(p) for p in pieces[:-1]}) == 1 and len(pieces[-1]) <= len(pieces[0])
        assert len(pieces[-1]) > 16


def test_mac_a5() -> None:
    assert MAC.from_address(0x1122334455, 0x8056C2E21C000001).to_bytes6() == H("0211222fa697")
    assert str(MAC.from_address(0x89E92CEEE5, 0x5200000000000052)) == "32:89:e9:2c:ee:e5"
    mac = MAC.from_address(0x1122334455, 0x8056C2E21C000001)
    assert mac.to_address(0x8056C2E21C000001) == 0x1122334455
    assert mac.is_zerotier_member(0x8056C2E21C000001)


def test_inetaddress_a5() -> None:
    a = InetAddress.parse("10.1.2.3/9993")
    b = InetAddress.parse("2001:db8::1/443")
    blob = serialize_inet(a) + serialize_inet(b) + serialize_inet(None)
    assert blob == H("040a01020327090620010db800000000000000000000000101bb00")
    x, pos = parse_inet(blob, 0)
    y, pos = parse_inet(blob, pos)
    z, pos = parse_inet(blob, pos)
    assert (x, y, z, pos) == (a, b, None, len(blob))
    assert str(b) == "2001:db8::1/443"


def test_lz4_a5() -> None:
    payload = b"hello hello hello " * 20
    packet = compress(build_packet(bytes(8), 1, 2, 0x06, payload))
    assert bytes(packet[27:]) == H("86") + H("6f68656c6c6f200600ff4b50656c6c6f20")
    assert bytes(uncompress(packet)[28:]) == payload
    assert packet[27] == 0x06


def test_short_payload_not_compressed() -> None:
    packet = compress(build_packet(bytes(8), 1, 2, 0x06, b"a" * 64))
    assert packet[27] == 0x06 and len(packet) == 28 + 64


def test_dictionary_example_a16() -> None:
    d = Dictionary()
    d.add("C", b"\x01\x00=\n\xff")
    assert d.serialize() == H("433d015c305c655c6eff")
    assert Dictionary.parse(d.serialize()).get("C") == b"\x01\x00=\n\xff"
    d2 = Dictionary()
    d2.add("v", 7)
    d2.add("n", -2)
    assert d2.serialize() == b"v=0000000000000007\nn=-0000000000000002"
    assert d2.get_u64("v") == 7 and d2.get_i64("n") == -2


def test_hello_a6(crypto_backend: Backend) -> None:
    a = Identity.from_string(KNOWN_GOOD)
    b = Identity.from_string(RECEIVER_B)
    assert a.agree(b) == HELLO_SHARED_KEY == b.agree(a)
    key = PeerKey(HELLO_SHARED_KEY, crypto_backend)
    assert key.aes_k0 == H("d1fdffb7651c4fa214f4a93eb951a9b4ba94aba2d10b513d5f7b30c45c550c9a")
    assert key.aes_k1 == H("a5a7f8303c9c2895828f3c1fa49447a684c5f86693e83adfc487e95e68170da5")
    hello = Hello(
        protocol_version=12,
        version=(1, 14, 1),
        timestamp=1700000000000,
        identity=a.public_only(),
        destination=InetAddress.parse("203.0.113.5/9993"),
        planet_id=149604618,
        planet_timestamp=1644592324813,
        moons=(MoonRecord(127, 0x1234567890, 0),),
    )
    wire = make_hello_packet(H("112233445566778f"), b.address, key, hello)
    assert wire == HELLO_WIRE
    # the plaintext form: undo the MAC field and cryptField by hand
    plain = bytearray(HELLO_WIRE)
    crypt_field(key, plain, 135)
    plain[19:27] = bytes(8)
    assert bytes(plain) == HELLO_PLAIN
    assert parse_hello(HELLO_WIRE, key) == hello


def test_signature_a6() -> None:
    a = Identity.from_string(KNOWN_GOOD)
    assert a.sign(b"hello") == H(
        "5cc06833aa2bc5d6db0bda30d881ba7bbbfc1b56b92e5ec8dd21502fa70de321"
        "1072baf6d1eb328509bf5d3146b19fe0c4ca90a19b7e962a128f7fc28c73040b"
        "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7"
    )


def test_reference_identities_validate(crypto_backend: Backend) -> None:
    data = _identities()
    assert len(data["identities"]) == 8
    for entry in data["identities"]:
        secret = Identity.from_string(entry["secret"])
        public = Identity.from_string(entry["public"])
        assert str(secret.address) == entry["address"]
        assert secret == public
        assert public.locally_validate(crypto_backend.memory_hard_hash), entry["address"]
        if crypto_backend.name == "native":  # the same hash again; the pure path is slow
            assert secret.locally_validate(crypto_backend.memory_hard_hash), entry["address"]
        assert secret.to_string(True) == entry["secret"]
        assert public.to_string() == entry["public"]
        assert c25519.public_from_private(secret.secret or b"") == secret.public


def test_reference_invalid_identities_rejected(crypto_backend: Backend) -> None:
    data = _identities()
    assert len(data["invalid"]) == 2
    for entry in data["invalid"]:
        assert entry["reference_exit"] == 1
        identity = Identity.from_string(entry["public"])
        assert not identity.locally_validate(crypto_backend.memory_hard_hash)


def test_reference_signatures_reproduced() -> None:
    count = 0
    for entry in _identities()["identities"]:
        ident = Identity.from_string(entry["secret"])
        public = Identity.from_string(entry["public"])
        for sig in entry["signatures"]:
            message = H(sig["message_hex"])
            signature = H(sig["signature_hex"])
            assert ident.sign(message) == signature
            assert public.verify(message, signature)
            assert not public.verify(message + b"!", signature)
            count += 1
    assert count == 32


def test_generated_identity_validates(crypto_backend: Backend) -> None:
    counter = iter(range(1, 1 << 30))

    def rng(n: int) -> bytes:
        # deterministic "randomness" for a reproducible test
        seed = next(counter).to_bytes(4, "big")
        return (seed * ((n // 4) + 1))[:n]

    ident = Identity.generate(rng, crypto_backend.memory_hard_hash)
    assert ident.locally_validate(crypto_backend.memory_hard_hash)
    assert Identity.from_string(ident.to_string(True)) == ident
    parsed, end = Identity.parse(ident.serialize(True))
    assert parsed == ident and parsed.secret == ident.secret and end == 135
