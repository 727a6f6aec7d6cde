"""The native accelerator ``ztone._speedups`` against the spec and the pure reference.

Two kinds of checks:

* known answers from PROTOCOL-CORE Appendix A (A.1 Salsa20, A.2 Poly1305, A.3 the
  memory-hard hash, A.4 armor of the synthetic packet in suites 0, 1 and 3, A.6 the
  suite-0 HELLO), so a native path that merely agrees with a wrong pure path fails;
* hypothesis: native and pure give the same bytes on random keys, nonces, counters,
  headers and payloads of 0..3000 bytes, and dearmor of tampered packets returns
  False on both with the packet left untouched.

The tests skip (with a reason) where the extension was not built; set
``ZTONE_REQUIRE_NATIVE=1`` to make its absence a failure instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.poly1305 import Poly1305
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ztone.crypto import mhash, poly1305, salsa20
from ztone.crypto.armor import _pure_armor_salsa, _pure_dearmor_salsa, _PureAesGmacSiv

try:
    from ztone import _speedups as native

    HAVE_NATIVE = True
except ImportError:  # no C compiler or OpenSSL headers when ztone was installed
    HAVE_NATIVE = False

NATIVE_MISSING = "ztone._speedups is not built (no C compiler or OpenSSL headers at install)"
if not HAVE_NATIVE and os.environ.get("ZTONE_REQUIRE_NATIVE") == "1":
    pytest.fail(NATIVE_MISSING + " and ZTONE_REQUIRE_NATIVE=1", pytrace=False)
pytestmark = pytest.mark.skipif(not HAVE_NATIVE, reason=NATIVE_MISSING)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------
# Appendix A vectors
# ---------------------------------------------------------------------------------------

A1_KEY = bytes.fromhex("0f62b5085bae0154a7fa4da0f34699ec3f92e5388bde3184d72a7dd02376c91c")
A1_NONCE = bytes.fromhex("288ff65dc42b92f9")
A1_S12 = bytes.fromhex(
    "99db33ad11ce0ccb3bfdbf8d0c18160452d014cde989b4c411a559ff7c20a169"
    "e6dc9909d816becedc4063ce07cea828f44bf9b6c9a0a0b200e1b52af41859c5"
)
A1_S20 = bytes.fromhex(
    "5e5e71f90199340304abb22a37b6625bf883fb89ce3b21f54a10b81066ef87da"
    "30b77699aa7379da595c77dd59542da208e5954f89e40eb7aa80a84a6176663f"
)

A2_KEY = b"this is 32-byte key for Poly1305"

A3_PUBLIC = bytes.fromhex(
    "ac3d46abe0c21f3cfe7a6c8d6a85cfcffcb82fbd55af6a4d6350657c68200843"
    "fa2e16f9418bbd9702cae365f2af5fb4c420908b803a681d4daef6114d78a2d7"
)
A3_DIGEST = bytes.fromhex(
    "10b1afd388c4c1561f184ed54cd5bd012a1c8edf5a5975200bb15608dba0b5eb"
    "b9faa360a0c6bf99cf684e015bf5bda9d347a4867a5515fa48c6c58e4df28b72"
)

A4_KEY = bytes((3 * i + 1) & 0xFF for i in range(48))
A4_PLAIN = bytes.fromhex(
    "deadbeef01020304112233445566778899aa00000000000000000006040b121920272e353c434a51585f666d74"
)
A4_SUITE1 = bytes.fromhex(
    "deadbeef01020304112233445566778899aa881b52616a6d94495b718bd33ae21e30c5f7a46faa4233b100846f"
)
A4_SUITE0 = bytes.fromhex(
    "deadbeef01020304112233445566778899aa000e5373cba009562b06040b121920272e353c434a51585f666d74"
)
A4_SUITE3 = bytes.fromhex(
    "9c959f8d1d8a7ef5112233445566778899aa180241cdf6b96f8c94147e3af46ebb1a50decd5f14f3c9b0d98a6d"
)
A4_EMPTY_PLAIN = bytes.fromhex("deadbeef01020304112233445566778899aa00000000000000000006")
A4_EMPTY_SUITE1 = bytes.fromhex("deadbeef01020304112233445566778899aa88add8ea4fd36f87c266")
A4_EMPTY_SUITE3 = bytes.fromhex("39e58ac4d30cc0c5112233445566778899aa1852778c00e5d80dea78")

A6_KEY = bytes.fromhex(
    "4058415d411d2d76758a4a90a899ba57b315f4a6c1cc8031c5f621821f8f1ebc"
    "0e46edbfef742c49d0b77e06c0ed35bf"
)
A6_PLAIN = bytes.fromhex(
    "112233445566778f4a13489c818e4df28b72000000000000000000010c010e00"
    "010000018bcfe568008e4df28b7200ac3d46abe0c21f3cfe7a6c8d6a85cfcffc"
    "b82fbd55af6a4d6350657c68200843fa2e16f9418bbd9702cae365f2af5fb4c4"
    "20908b803a681d4daef6114d78a2d70004cb00710527090000000008eac90a00"
    "00017ee95760cd00017f00000012345678900000000000000000"
)
A6_WIRE = bytes.fromhex(
    "112233445566778f4a13489c818e4df28b7200a4a91728d4b2b88e010c010e00"
    "010000018bcfe568008e4df28b7200ac3d46abe0c21f3cfe7a6c8d6a85cfcffc"
    "b82fbd55af6a4d6350657c68200843fa2e16f9418bbd9702cae365f2af5fb4c4"
    "20908b803a681d4daef6114d78a2d70004cb00710527090000000008eac90a00"
    "00017ee95760cd3687bb8fa4ec0fb0adb1d05a4fa1b619487563"
)
A6_CRYPTFIELD_START = 135


def kbkdf(key48: bytes, label: bytes) -> bytes:
    """§4.5.1, written out here so the vectors do not lean on the code under test."""
    return hmac.new(
        key48, b"\x00\x00\x00\x00ZT" + label + b"\x00\x00\x00\x00\x01\x80", hashlib.sha384
    ).digest()


def with_flags(packet: bytes, flags: int) -> bytearray:
    p = bytearray(packet)
    p[18] = flags
    return p


def test_a1_salsa20_keystreams() -> None:
    assert native.salsa20_xor(A1_KEY, A1_NONCE, bytes(64), 12) == A1_S12
    assert native.salsa20_xor(A1_KEY, A1_NONCE, bytes(64), 20) == A1_S20
    # block 1 of the stream is the keystream from first_block=1
    two = native.salsa20_xor(A1_KEY, A1_NONCE, bytes(128), 12)
    assert native.salsa20_xor(A1_KEY, A1_NONCE, bytes(64), 12, 1) == two[64:]


def test_a2_poly1305() -> None:
    assert native.poly1305(A2_KEY, bytes(32)).hex() == "49ec78090e481ec6c26b33b91ccc0307"
    assert native.poly1305(A2_KEY, b"Hello world!").hex() == "a6f745008f81c916a20dcc74eef2b2f0"


def test_a3_memory_hard_hash() -> None:
    digest = native.memory_hard_hash(hashlib.sha512(A3_PUBLIC).digest())
    assert digest == A3_DIGEST
    assert digest[0] < 17
    assert digest[59:].hex() == "8e4df28b72"


def test_a4_kdf_keys() -> None:
    assert A4_KEY.hex() == (
        "0104070a0d101316191c1f2225282b2e3134373a3d404346494c4f5255585b5e"
        "6164676a6d707376797c7f8285888b8e"
    )
    assert kbkdf(A4_KEY, b"0")[:32].hex() == (
        "d797df80d8ad95c233430cdf5bc36a1228ddbd61daa7e1a90f60961237cb965f"
    )
    assert kbkdf(A4_KEY, b"1")[:32].hex() == (
        "36725b1ee8f19c35b6c7f9d43b1ba4dd4f6692014f130292a0bca1f0fb0db675"
    )


@pytest.mark.parametrize(
    ("plain", "flags", "encrypt", "wire"),
    [
        (A4_PLAIN, 0x88, True, A4_SUITE1),
        (A4_PLAIN, 0x00, False, A4_SUITE0),
        (A4_EMPTY_PLAIN, 0x88, True, A4_EMPTY_SUITE1),
    ],
    ids=["suite1", "suite0", "suite1-empty"],
)
def test_a4_salsa_armor(plain: bytes, flags: int, encrypt: bool, wire: bytes) -> None:
    key32 = A4_KEY[:32]
    packet = with_flags(plain, flags)
    native.armor_salsa(key32, packet, encrypt)
    assert bytes(packet) == wire
    # verify only: True, nothing changes
    assert native.dearmor_salsa(key32, packet, False) is True
    assert bytes(packet) == wire
    # dearmor (decrypting for suite 1) gives back the plaintext with the MAC in place
    assert native.dearmor_salsa(key32, packet, encrypt) is True
    expected = with_flags(plain, flags)
    expected[19:27] = wire[19:27]
    assert packet == expected


@pytest.mark.parametrize(
    ("plain", "wire"),
    [(A4_PLAIN, A4_SUITE3), (A4_EMPTY_PLAIN, A4_EMPTY_SUITE3)],
    ids=["suite3", "suite3-empty"],
)
def test_a4_aes_gmac_siv(plain: bytes, wire: bytes) -> None:
    siv = native.AesGmacSiv(kbkdf(A4_KEY, b"0")[:32], kbkdf(A4_KEY, b"1")[:32])
    packet = with_flags(plain, 0x18)
    siv.armor(packet)
    assert bytes(packet) == wire
    assert siv.dearmor(packet) is True
    # dearmor restores the payload; the packet ID and MAC field keep the SIV tag
    assert bytes(packet[27:]) == plain[27:]
    assert bytes(packet[:8]) == wire[:8] and bytes(packet[8:27]) == wire[8:27]


def test_a4_dearmor_tolerates_hop_count() -> None:
    siv = native.AesGmacSiv(kbkdf(A4_KEY, b"0")[:32], kbkdf(A4_KEY, b"1")[:32])
    packet = bytearray(A4_SUITE3)
    packet[18] |= 0x05  # a relay bumped the hops
    assert siv.dearmor(packet) is True
    assert bytes(packet[27:]) == A4_PLAIN[27:]
    packet = bytearray(A4_SUITE1)
    packet[18] |= 0x03
    assert native.dearmor_salsa(A4_KEY[:32], packet, True) is True
    assert bytes(packet[27:]) == A4_PLAIN[27:]


def test_a6_hello_cryptfield_and_suite0() -> None:
    packet = bytearray(A6_PLAIN)
    nonce = bytearray(packet[:8])
    nonce[7] &= 0xF8
    start = A6_CRYPTFIELD_START
    packet[start:] = native.salsa20_xor(A6_KEY[:32], bytes(nonce), packet[start:], 12)
    native.armor_salsa(A6_KEY[:32], packet, False)
    assert bytes(packet) == A6_WIRE


# ---------------------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------------------


def test_wrong_lengths_raise_value_error() -> None:
    packet = bytearray(A4_PLAIN)
    with pytest.raises(ValueError):
        native.salsa20_xor(bytes(31), bytes(8), b"x", 12)
    with pytest.raises(ValueError):
        native.salsa20_xor(bytes(32), bytes(9), b"x", 12)
    with pytest.raises(ValueError):
        native.salsa20_xor(bytes(32), bytes(8), b"x", 10)
    with pytest.raises(ValueError):
        native.poly1305(bytes(16), b"x")
    with pytest.raises(ValueError):
        native.memory_hard_hash(bytes(63))
    with pytest.raises(ValueError):
        native.armor_salsa(bytes(48), packet, True)
    with pytest.raises(ValueError):
        native.dearmor_salsa(bytes(31), packet, True)
    with pytest.raises(ValueError):
        native.AesGmacSiv(bytes(32), bytes(16))
    with pytest.raises(ValueError):
        native.AesGmacSiv(bytes(24), bytes(32))
    assert bytes(packet) == A4_PLAIN


def test_short_packets_raise_value_error() -> None:
    siv = native.AesGmacSiv(bytes(32), bytes(32))
    for n in (0, 1, 27):
        with pytest.raises(ValueError):
            native.armor_salsa(bytes(32), bytearray(n), True)
        with pytest.raises(ValueError):
            native.dearmor_salsa(bytes(32), bytearray(n), False)
        with pytest.raises(ValueError):
            siv.armor(bytearray(n))
        with pytest.raises(ValueError):
            siv.dearmor(bytearray(n))


def test_packets_must_be_writable() -> None:
    siv = native.AesGmacSiv(bytes(32), bytes(32))
    with pytest.raises(TypeError):
        native.armor_salsa(bytes(32), A4_PLAIN, True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native.dearmor_salsa(bytes(32), A4_PLAIN, True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        siv.armor(A4_PLAIN)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        siv.dearmor(A4_PLAIN)  # type: ignore[arg-type]


def test_any_buffer_for_data() -> None:
    data = bytes(range(200))
    expected = native.salsa20_xor(A1_KEY, A1_NONCE, data, 12)
    assert native.salsa20_xor(A1_KEY, A1_NONCE, bytearray(data), 12) == expected
    assert native.salsa20_xor(A1_KEY, A1_NONCE, memoryview(data), 12) == expected
    assert native.salsa20_xor(A1_KEY, A1_NONCE, b"", 12) == b""
    tag = native.poly1305(A2_KEY, data)
    assert native.poly1305(A2_KEY, memoryview(bytearray(data))) == tag


def test_keyword_arguments_as_in_the_stub() -> None:
    packet = bytearray(A4_PLAIN)
    packet[18] = 0x88
    native.armor_salsa(key=A4_KEY[:32], packet=packet, encrypt=True)
    assert bytes(packet) == A4_SUITE1
    assert native.dearmor_salsa(key=A4_KEY[:32], packet=packet, decrypt=False) is True
    assert (
        native.salsa20_xor(key=A1_KEY, nonce=A1_NONCE, data=bytes(64), rounds=12, first_block=0)
        == A1_S12
    )
    assert native.poly1305(key=A2_KEY, message=b"Hello world!").hex().startswith("a6f745")
    siv = native.AesGmacSiv(k0=kbkdf(A4_KEY, b"0")[:32], k1=kbkdf(A4_KEY, b"1")[:32])
    packet = with_flags(A4_PLAIN, 0x18)
    siv.armor(packet=packet)
    assert bytes(packet) == A4_SUITE3
    assert siv.dearmor(packet=packet) is True
    assert len(native.memory_hard_hash(digest=bytes(64))) == 64


def test_one_byte_results_are_fresh_objects() -> None:
    # one-byte bytes objects are interpreter-wide singletons: the result must be a new
    # object, never one of those written over
    data = bytes(range(256))
    for i in range(256):
        native.salsa20_xor(A1_KEY, A1_NONCE, data[i : i + 1], 12)
    assert all(data[i : i + 1][0] == i for i in range(256))


def test_uninitialized_aes_object_refuses() -> None:
    siv = native.AesGmacSiv.__new__(native.AesGmacSiv)
    with pytest.raises(RuntimeError):
        siv.armor(bytearray(A4_PLAIN))


# ---------------------------------------------------------------------------------------
# Native vs pure, byte for byte
# ---------------------------------------------------------------------------------------

keys32 = st.binary(min_size=32, max_size=32)
# hypothesis favours short binaries; the second branch spreads lengths evenly to 3000
payloads = st.one_of(
    st.binary(max_size=80),
    st.integers(0, 3000).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
)
# random 28-byte head (ID, dest, source, any flags byte, MAC field, verb) + payload
packets = st.tuples(st.binary(min_size=28, max_size=28), payloads).map(lambda hp: hp[0] + hp[1])
counters = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 2**32 - 2, 2**32 - 1, 2**64 - 3, 2**64 - 1]),
)


@FUZZ
@given(
    key=keys32,
    nonce=st.binary(min_size=8, max_size=8),
    data=payloads,
    rounds=st.sampled_from([8, 12, 20]),
    first_block=counters,
)
def test_salsa20_matches_pure(
    key: bytes, nonce: bytes, data: bytes, rounds: int, first_block: int
) -> None:
    assert native.salsa20_xor(key, nonce, data, rounds, first_block) == salsa20.xor(
        key, nonce, data, rounds, first_block
    )


@FUZZ
@given(key=keys32, message=payloads)
def test_poly1305_matches_pure_and_cryptography(key: bytes, message: bytes) -> None:
    tag = native.poly1305(key, message)
    assert tag == poly1305.poly1305(key, message)
    assert tag == Poly1305.generate_tag(key, message)


@pytest.mark.parametrize("r_byte", [0x00, 0x01, 0x02, 0xFF])
@pytest.mark.parametrize("s_byte", [0x00, 0xFF])
@pytest.mark.parametrize("fill", [0x00, 0xFF])
@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 32, 48, 63, 64, 1000])
def test_poly1305_edge_cases(r_byte: int, s_byte: int, fill: int, length: int) -> None:
    # extreme r, s and all-ones messages drive h next to 2**130 - 5 and the final
    # conditional subtraction and the carry out of the s addition
    key = bytes([r_byte]) * 16 + bytes([s_byte]) * 16
    message = bytes([fill]) * length
    assert native.poly1305(key, message) == Poly1305.generate_tag(key, message)


def test_memory_hard_hash_matches_pure() -> None:
    digest = hashlib.sha512(b"not an identity").digest()
    assert native.memory_hard_hash(digest) == mhash.memory_hard_hash_from_digest(digest)


def flip_authenticated_bit(data: st.DataObject, packet: bytes | bytearray) -> bytearray:
    """A copy of ``packet`` with one bit flipped anywhere but the hop count (byte 18 & 7)."""
    pos = data.draw(st.integers(0, len(packet) - 1), label="byte")
    bits = [0x08, 0x10, 0x20, 0x40, 0x80] if pos == 18 else [1 << k for k in range(8)]
    bad = bytearray(packet)
    bad[pos] ^= data.draw(st.sampled_from(bits), label="bit")
    return bad


@FUZZ
@given(key=keys32, plain=packets, encrypt=st.booleans(), data=st.data())
def test_salsa_armor_matches_pure(
    key: bytes, plain: bytes, encrypt: bool, data: st.DataObject
) -> None:
    # the flags byte is random: the cipher bits do not steer these functions, and all
    # but the hop count go into the per-packet key
    ours, theirs = bytearray(plain), bytearray(plain)
    native.armor_salsa(key, ours, encrypt)
    _pure_armor_salsa(key, theirs, encrypt)
    assert ours == theirs
    wire = bytes(ours)

    # tamper with one authenticated bit: both refuse and leave the packet alone
    bad = flip_authenticated_bit(data, wire)
    bad_native, bad_pure = bytearray(bad), bytearray(bad)
    assert native.dearmor_salsa(key, bad_native, encrypt) is False
    assert _pure_dearmor_salsa(key, bad_pure, encrypt) is False
    assert bad_native == bad == bad_pure

    # verify-only leaves the packet as it is
    check = bytearray(wire)
    assert native.dearmor_salsa(key, check, False) is True
    assert check == wire

    ours, theirs = bytearray(wire), bytearray(wire)
    assert native.dearmor_salsa(key, ours, encrypt) is True
    assert _pure_dearmor_salsa(key, theirs, encrypt) is True
    assert ours == theirs
    assert ours[27:] == plain[27:]


@FUZZ
@given(key=keys32, packet=st.binary(min_size=28, max_size=400), decrypt=st.booleans())
def test_salsa_dearmor_garbage_matches_pure(key: bytes, packet: bytes, decrypt: bool) -> None:
    ours, theirs = bytearray(packet), bytearray(packet)
    assert native.dearmor_salsa(key, ours, decrypt) is _pure_dearmor_salsa(key, theirs, decrypt)
    assert ours == theirs == packet


@FUZZ
@given(k0=keys32, k1=keys32, plain=packets, data=st.data())
def test_aes_gmac_siv_matches_pure(k0: bytes, k1: bytes, plain: bytes, data: st.DataObject) -> None:
    ours_siv, pure_siv = native.AesGmacSiv(k0, k1), _PureAesGmacSiv(k0, k1)
    # any flags byte: a non-zero hop count at the sender makes both receivers refuse
    ours, theirs = bytearray(plain), bytearray(plain)
    ours_siv.armor(ours)
    pure_siv.armor(theirs)
    assert ours == theirs
    mine, pures = bytearray(ours), bytearray(ours)
    assert ours_siv.dearmor(mine) is pure_siv.dearmor(pures) is ((plain[18] & 7) == 0)
    assert mine == pures

    plain = bytes(with_flags(plain, plain[18] & 0xF8))  # originators send hop count 0
    wire = bytearray(plain)
    ours_siv.armor(wire)

    bad = flip_authenticated_bit(data, wire)
    bad_native, bad_pure = bytearray(bad), bytearray(bad)
    assert ours_siv.dearmor(bad_native) is False
    assert pure_siv.dearmor(bad_pure) is False
    assert bad_native == bad == bad_pure

    ours, theirs = bytearray(wire), bytearray(wire)
    assert ours_siv.dearmor(ours) is True
    assert pure_siv.dearmor(theirs) is True
    assert ours == theirs
    assert ours[27:] == plain[27:]


@FUZZ
@given(k0=keys32, k1=keys32, packet=st.binary(min_size=28, max_size=400))
def test_aes_dearmor_garbage_matches_pure(k0: bytes, k1: bytes, packet: bytes) -> None:
    ours, theirs = bytearray(packet), bytearray(packet)
    assert native.AesGmacSiv(k0, k1).dearmor(ours) is _PureAesGmacSiv(k0, k1).dearmor(theirs)
    assert ours == theirs == packet


def test_large_packet_round_trip() -> None:
    # past the native dearmor's on-stack buffer (10 KiB) onto its heap path
    payload = bytes(i * 7 & 0xFF for i in range(20000))
    plain = with_flags(A4_PLAIN[:27] + payload, 0x18)
    siv = native.AesGmacSiv(bytes(range(32)), bytes(range(32, 64)))
    wire = bytearray(plain)
    siv.armor(wire)
    bad = bytearray(wire)
    bad[-1] ^= 1
    assert siv.dearmor(bad) is False
    assert bad[:-1] == wire[:-1]
    assert siv.dearmor(wire) is True
    assert wire[27:] == plain[27:]
