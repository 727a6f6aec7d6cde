"""C25519 on both primitive sets: the native one (``ztone._speedups`` through the system
libcrypto) and the ``cryptography`` one it replaces on a daemon (issue 17, memory).

* known answers on each: RFC 7748 §6.1, RFC 8032 §7.1 test 1, the identities and
  signatures made by the real zerotier-idtool (tests/vectors/identities.json) and the
  recorded planet's signature, so neither can merely agree with a wrong other;
* hypothesis: both give the same bytes for key pairs, agreement, signatures and
  verification (good, tampered and malformed) on random keys and messages;
* the choice: without a usable native module the functions run on ``cryptography``,
  imported only at first use, never a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ztone
from locations import SRC, VECTORS
from ztone.crypto import c25519
from ztone.crypto.c25519 import KeyAgreementError, Primitives
from ztone.node.wire.world import World

NATIVE_MISSING = "ztone._speedups is not built, or its libcrypto lacks X25519/Ed25519"
if c25519.NATIVE is None and os.environ.get("ZTONE_REQUIRE_NATIVE") == "1":
    pytest.fail(NATIVE_MISSING + " and ZTONE_REQUIRE_NATIVE=1", pytrace=False)

H = bytes.fromhex
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(params=["native", "library"])
def prims(request: pytest.FixtureRequest) -> Primitives:
    if request.param == "library":
        return c25519.LIBRARY
    if c25519.NATIVE is None:
        pytest.skip(NATIVE_MISSING)
    return c25519.NATIVE


def _identities() -> list[dict[str, object]]:
    data = json.loads((VECTORS / "identities.json").read_text())
    entries: list[dict[str, object]] = data["identities"]
    return entries


def _keys(entry: dict[str, object]) -> tuple[bytes, bytes]:
    """(public, private) of one identities.json entry (``addr:0:public:private``)."""
    fields = str(entry["secret"]).split(":")
    return H(fields[2]), H(fields[3])


# ---------------------------------------------------------------------------------------
# Known answers, on each primitive set
# ---------------------------------------------------------------------------------------


def test_rfc7748_agreement(prims: Primitives) -> None:
    alice = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    alice_public = prims.x25519_public(alice)
    bob_public = prims.x25519_public(bob)
    assert alice_public == H("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert bob_public == H("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = H("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert prims.x25519(alice, bob_public) == shared == prims.x25519(bob, alice_public)


def test_rfc8032_test1(prims: Primitives) -> None:
    seed = H("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = H("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = H(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert prims.ed25519_public(seed) == public
    assert prims.ed25519_sign(seed, b"") == signature
    assert prims.ed25519_verify(public, signature, b"")
    assert not prims.ed25519_verify(public, signature, b"x")


def test_upstream_identities_and_signatures(prims: Primitives) -> None:
    count = 0
    entries = _identities()
    for entry in entries:
        public, private = _keys(entry)
        assert c25519.public_from_private(private, prims) == public
        signatures = entry["signatures"]
        assert isinstance(signatures, list)
        for sig in signatures:
            message, signature = H(sig["message_hex"]), H(sig["signature_hex"])
            assert c25519.sign(private, message, prims) == signature
            assert c25519.verify(public, message, signature, prims)
            assert not c25519.verify(public, message + b"!", signature, prims)
            bad = bytearray(signature)
            bad[5] ^= 1  # the Ed25519 part only: the appended hash still matches
            assert not c25519.verify(public, message, bytes(bad), prims)
            count += 1
    assert count == 32
    # Agreement is symmetric between every pair of the upstream identities.
    (pa, ka), (pb, kb) = _keys(entries[0]), _keys(entries[1])
    assert c25519.agree(ka, pb, 48, prims) == c25519.agree(kb, pa, 48, prims)


def test_recorded_planet_signature(prims: Primitives) -> None:
    world = World.parse((VECTORS / "worlds" / "lab1.planet").read_bytes())
    signer = world.updates_must_be_signed_by
    message = world.signed_message()
    assert c25519.verify(signer, message, world.signature, prims)
    assert not c25519.verify(signer, message[:-1], world.signature, prims)
    keys = (VECTORS / "worlds" / "lab1.planet.signingkey").read_bytes()
    assert keys[:64] == signer
    assert c25519.public_from_private(keys[64:], prims) == signer
    assert c25519.sign(keys[64:], message, prims) == world.signature


def test_low_order_peer_and_malformed_input(prims: Primitives) -> None:
    _, private = _keys(_identities()[0])
    for low_order in (bytes(32), b"\x01" + bytes(31)):
        with pytest.raises(KeyAgreementError):
            c25519.agree(private, low_order + bytes(32), 48, prims)
    public, _ = _keys(_identities()[0])
    signature = c25519.sign(private, b"m", prims)
    assert not c25519.verify(public[:63], b"m", signature, prims)
    assert not c25519.verify(public, b"m", signature[:95], prims)
    # y = 2**255 - 1 is not a field element: no curve point, so never valid.
    not_a_point = public[:32] + b"\xff" * 31 + b"\x7f"
    assert not c25519.verify(not_a_point, b"m", signature, prims)
    assert not prims.ed25519_verify(b"short", signature[:64], b"m")
    with pytest.raises(ValueError):
        prims.x25519_public(b"short")


# ---------------------------------------------------------------------------------------
# Native == cryptography on random input
# ---------------------------------------------------------------------------------------

keys64 = st.binary(min_size=64, max_size=64)


@pytest.mark.skipif(c25519.NATIVE is None, reason=NATIVE_MISSING)
@FUZZ
@given(mine=keys64, theirs=keys64, message=st.binary(max_size=2000), length=st.integers(1, 200))
def test_native_equals_cryptography(
    mine: bytes, theirs: bytes, message: bytes, length: int
) -> None:
    native, library = c25519.NATIVE, c25519.LIBRARY
    assert native is not None
    public = c25519.public_from_private(mine, native)
    assert public == c25519.public_from_private(mine, library)
    peer = c25519.public_from_private(theirs, library)
    assert c25519.agree(mine, peer, length, native) == c25519.agree(mine, peer, length, library)
    signature = c25519.sign(mine, message, native)
    assert signature == c25519.sign(mine, message, library)
    for prims in (native, library):
        assert c25519.verify(public, message, signature, prims)
        assert not c25519.verify(public, message + b"!", signature, prims)
        if peer[32:] != public[32:]:
            assert not c25519.verify(peer, message, signature, prims)


@pytest.mark.skipif(c25519.NATIVE is None, reason=NATIVE_MISSING)
@FUZZ
@given(public=st.binary(min_size=32, max_size=32), signature=st.binary(min_size=64, max_size=64))
def test_native_equals_cryptography_on_garbage(public: bytes, signature: bytes) -> None:
    native = c25519.NATIVE
    assert native is not None
    h = b"\x5a" * 32
    expected = c25519.LIBRARY.ed25519_verify(public, signature, h)
    assert native.ed25519_verify(public, signature, h) == expected
    try:
        library_secret: bytes | None = c25519.LIBRARY.x25519(h, public)
    except ValueError:
        library_secret = None
    try:
        native_secret: bytes | None = native.x25519(h, public)
    except ValueError:
        native_secret = None
    assert native_secret == library_secret


@pytest.mark.skipif(c25519.NATIVE is None, reason=NATIVE_MISSING)
def test_native_remembered_key_follows_the_key_given() -> None:
    """The extension keeps the last private key per curve: alternating keys must never
    answer with the previous one."""
    native, library = c25519.NATIVE, c25519.LIBRARY
    assert native is not None
    entries = _identities()
    peer, _ = _keys(entries[-1])
    for _ in range(3):
        for entry in entries[:3]:
            public, private = _keys(entry)
            assert c25519.public_from_private(private, native) == public
            assert c25519.agree(private, peer, 48, native) == c25519.agree(
                private, peer, 48, library
            )
            assert c25519.sign(private, b"m", native) == c25519.sign(private, b"m", library)


# ---------------------------------------------------------------------------------------
# Which set is used
# ---------------------------------------------------------------------------------------


def test_default_is_native_when_it_works() -> None:
    assert c25519.ACTIVE is (c25519.NATIVE if c25519.NATIVE is not None else c25519.LIBRARY)


def test_a_refusing_or_old_native_module_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: bytes) -> bytes:
        raise RuntimeError("libcrypto refused the key")

    refusing = types.ModuleType("ztone._speedups")
    for name in ("x25519_public", "ed25519_public", "x25519", "ed25519_sign", "ed25519_verify"):
        setattr(refusing, name, refuse)
    monkeypatch.setitem(sys.modules, "ztone._speedups", refusing)
    monkeypatch.setattr(ztone, "_speedups", refusing, raising=False)
    assert c25519._native_primitives() is None
    # X25519 works, Ed25519 is refused (a libcrypto build without it)
    half = types.ModuleType("ztone._speedups")
    for name in ("x25519_public", "ed25519_public", "x25519", "ed25519_sign", "ed25519_verify"):
        setattr(half, name, getattr(c25519.LIBRARY, name))
    half.ed25519_public = refuse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ztone._speedups", half)
    monkeypatch.setattr(ztone, "_speedups", half, raising=False)
    assert c25519._native_primitives() is None
    old = types.ModuleType("ztone._speedups")  # a build from before these functions
    monkeypatch.setitem(sys.modules, "ztone._speedups", old)
    monkeypatch.setattr(ztone, "_speedups", old, raising=False)
    assert c25519._native_primitives() is None


FALLBACK = r"""
import sys
sys.modules["ztone._speedups"] = None  # as if built without a compiler
from ztone.crypto import c25519
assert c25519.NATIVE is None and c25519.ACTIVE is c25519.LIBRARY
assert not any(m.startswith("cryptography") for m in sys.modules), "imported eagerly"
public, private = c25519.generate(lambda n: bytes(range(n)))
assert c25519.verify(public, b"m", c25519.sign(private, b"m"))
assert "cryptography" in sys.modules
print(c25519.agree(private, public).hex())
"""


def test_without_the_extension_cryptography_does_it_lazily() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", FALLBACK],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    private = bytes(range(64))
    expected = c25519.agree(private, c25519.public_from_private(private))
    assert out.stdout.strip() == expected.hex()
