"""The identity proof of work (PROTOCOL-CORE §2.5: ``D[0] < 17``) at its boundary.

Two kinds of input:

* an injected hash (``hash_function``) that answers a chosen digest, so the first
  byte can be put exactly on 16, 17 and 18 while the address bytes still match;
* key pairs whose real memory-hard digest starts with 16, 17 and 18. They were found
  once by hashing the public halves of ``sha512(b"ztone-pow-boundary-<i>")`` for
  i = 0, 1, 2, ...; each identity's address is the last five digest bytes, so the
  address check passes and only the proof of work decides. The digests are pinned
  below and re-checked (``test_pinned_digests``) with the hash whose known answer
  comes from the spec (``test_vectors_core.test_memory_hard_hash_a3``).

Per §2.5 the work is checked where an identity is first believed: HELLO from an
unknown identity, ``idtool validate`` and the roots ``idtool genplanet`` signs into a
planet. (§2.5 also says it is *not* checked on OK(WHOIS) answers from a root, on a
world's roots when a planet or moon is read, nor on the node's own peer cache, as
upstream; those paths are left as the spec has them.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sim.network import SimNetwork, make_planet, vector_identities
from ztone.cli import idtool
from ztone.crypto import backend, c25519
from ztone.node.wire.address import Address
from ztone.node.wire.identity import Identity

IDS = vector_identities()
ROOT_IP, LEAF_IP = "198.18.0.10", "198.18.0.12"


def _boundary_identity(index: int) -> Identity:
    private = hashlib.sha512(b"ztone-pow-boundary-%d" % index).digest()
    public = c25519.x25519_public(private[:32]) + c25519.ed25519_public(private[32:])
    return Identity(Address(int.from_bytes(PINNED[index][59:64], "big")), public, private)


# index -> the real memory-hard digest of that key pair's public key
PINNED = {
    192: bytes.fromhex(  # D[0] = 0x11 = 17: fails the work by one
        "11987971dea81523af68d6bf8f850699e668ef2fa91db6571e0af1cf45580c7a"
        "2317250014062fb60edf7e2ecfe97c28f97742fea424940e22ec63b8e37b6e4f"
    ),
    216: bytes.fromhex(  # D[0] = 0x12 = 18
        "1248aae27e6f0ff4064fbbd2b26bd326fca1291be2cd9d3c3689e353cd97a63b"
        "2dcd6c1a6cfc4e1a47b04a545c043ae765bbe81b87c22e17f5e2f9a2f9f0f7c8"
    ),
    429: bytes.fromhex(  # D[0] = 0x10 = 16: passes by one
        "10ca15de94aea73edb6dde53496f9ec1c96915b2fcb085d82163bbb453781279"
        "10abb611d66098afe0c18e6b84db6ba27856e90b3e113b7681c25d750eb7c767"
    ),
}
WORK17, WORK18, WORK16 = (_boundary_identity(i) for i in (192, 216, 429))


def _digest_with_first_byte(identity: Identity, first: int) -> bytes:
    """A 64-byte digest: ``first``, 58 zero bytes, then the identity's 5 address bytes."""
    return bytes([first]) + bytes(58) + identity.address.to_bytes5()


def test_pinned_digests() -> None:
    """The inputs are what the docstring says: real digests, first bytes 17/18/16."""
    for identity, first, address in (
        (WORK17, 17, "b8e37b6e4f"),
        (WORK18, 18, "a2f9f0f7c8"),
        (WORK16, 16, "750eb7c767"),
    ):
        digest = backend.DEFAULT.memory_hard_hash(identity.public)
        assert digest[0] == first
        assert digest[59:64].hex() == address == str(identity.address)
        assert c25519.public_from_private(identity.secret or b"") == identity.public


@pytest.mark.parametrize(
    ("first", "valid"), [(0, True), (15, True), (16, True), (17, False), (18, False), (255, False)]
)
def test_locally_validate_boundary_injected_hash(first: int, valid: bool) -> None:
    """Guards: the ``digest[0] >= 17`` check removed, or its bound moved to 16 or 18
    (``>= 16``, ``>= 18``, ``> 17``), or POW_FIRST_BYTE_LESS_THAN changed."""
    identity = IDS[1].public_only()
    seen: list[bytes] = []

    def fake_hash(public: bytes) -> bytes:
        seen.append(public)
        return _digest_with_first_byte(identity, first)

    assert identity.locally_validate(fake_hash) is valid
    assert seen == [identity.public]  # the hash is of the public key, once


def test_locally_validate_boundary_real_hash() -> None:
    """Guards the same mutations with the real memory-hard hash: D[0] = 16 passes,
    17 and 18 fail although each address equals its digest's last five bytes."""
    assert WORK16.locally_validate()
    assert WORK16.public_only().locally_validate()
    for identity in (WORK17, WORK18):
        assert not identity.locally_validate()
        assert not identity.public_only().locally_validate()


def test_generate_keeps_walking_until_the_work_is_done() -> None:
    """Guards: generation's ``digest[0] < 17`` loop test removed or moved by one.

    The injected hash answers first bytes 18, 17, then 16; the third candidate key
    is the one kept, and its address is that digest's last five bytes.
    """
    firsts = iter([18, 17, 16])
    tried: list[bytes] = []
    address = bytes.fromhex("0badc0ffee")

    def fake_hash(public: bytes) -> bytes:
        tried.append(public)
        return bytes([next(firsts)]) + bytes(58) + address

    identity = Identity.generate(lambda n: bytes(range(n)), fake_hash)
    assert len(tried) == 3
    assert identity.public == tried[2]
    assert str(identity.address) == "0badc0ffee"
    # Upstream's walk: bytes 8..16 +1 and 16..24 -1 (little-endian) per try, 3 tries.
    start = bytes(range(64))
    a = (int.from_bytes(start[8:16], "little") + 3) & (2**64 - 1)
    b = (int.from_bytes(start[16:24], "little") - 3) & (2**64 - 1)
    expected = start[:8] + a.to_bytes(8, "little") + b.to_bytes(8, "little") + start[24:]
    assert identity.secret == expected


# --- HELLO ----------------------------------------------------------------------------


def _hello_to_root(leaf: Identity, **root_options: object) -> SimNetwork:
    """A root and one leaf on a private planet, run for 10 virtual seconds."""
    net = SimNetwork(seed=3)
    planet = make_planet([(IDS[0], ROOT_IP)], c25519.generate(lambda n: b"\x01" * n))
    net.add_node("root", IDS[0], ROOT_IP, planet, **root_options)
    net.add_node("leaf", leaf, LEAF_IP, planet)
    net.run(10_000, lambda: net.nodes["leaf"].node.online)
    return net


@pytest.mark.parametrize(("first", "accepted"), [(16, True), (17, False), (18, False)])
def test_hello_proof_of_work_boundary_injected_hash(first: int, accepted: bool) -> None:
    """Guards: the proof-of-work check removed or moved by one, seen through HELLO
    (``_doHELLO`` validates an unknown identity, §6.2.2)."""
    leaf = IDS[1]

    def root_hash(public: bytes) -> bytes:
        if public == leaf.public:
            return _digest_with_first_byte(leaf, first)
        return backend.DEFAULT.memory_hard_hash(public)

    net = _hello_to_root(leaf, hash_function=root_hash)
    root = net.nodes["root"].node
    assert (int(leaf.address) in root.peers) is accepted
    assert net.nodes["leaf"].node.online is accepted
    assert (root.counters["hello_invalid_identity"] > 0) is not accepted


@pytest.mark.parametrize(("leaf", "accepted"), [(WORK16, True), (WORK17, False), (WORK18, False)])
def test_hello_from_identity_failing_the_work_is_refused(leaf: Identity, accepted: bool) -> None:
    """Guards: the proof-of-work check removed (or moved by one): a HELLO from a key
    pair whose own digest names its address, but whose D[0] is 17 or 18, makes no peer."""
    net = _hello_to_root(leaf)
    root = net.nodes["root"].node
    assert (int(leaf.address) in root.peers) is accepted
    assert (root.counters["hello_invalid_identity"] > 0) is not accepted


# --- ztone-idtool ---------------------------------------------------------------------


@pytest.mark.parametrize("identity", [WORK17, WORK18], ids=["D0=17", "D0=18"])
def test_idtool_validate_refuses_failed_work(
    capsys: pytest.CaptureFixture[str], identity: Identity, tmp_path: Path
) -> None:
    """Guards: the proof-of-work check removed or moved by one (``zerotier-idtool
    validate`` prints ``<arg> FAILED validation.`` and exits 1)."""
    for arg in (identity.to_string(), identity.to_string(include_private=True)):
        capsys.readouterr()
        assert idtool.main(["validate", arg]) == 1
        out, err = capsys.readouterr()
        assert (out, err) == ("", f"{arg} FAILED validation.\n")
    path = tmp_path / "identity.secret"
    path.write_text(identity.to_string(include_private=True))
    assert idtool.main(["validate", str(path)]) == 1
    assert capsys.readouterr().err == f"{path} FAILED validation.\n"


def test_idtool_validate_accepts_work_16(capsys: pytest.CaptureFixture[str]) -> None:
    """Guards: the bound moved down (``>= 16``): D[0] = 16 is valid work."""
    arg = WORK16.to_string()
    assert idtool.main(["validate", arg]) == 0
    assert capsys.readouterr().out == f"{arg} is a valid identity\n"


def test_idtool_genplanet_refuses_a_root_failing_the_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards: the proof-of-work check removed: a planet would carry a root that no
    zerotier-one would accept a HELLO from."""
    monkeypatch.chdir(tmp_path)
    code = idtool.main(["genplanet", "--ts", "1000", f"{WORK17}@198.18.0.10/9993"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == "genplanet: root identity b8e37b6e4f FAILED validation.\n"
    assert not (tmp_path / "planet").exists()
    assert idtool.main(["genplanet", "--ts", "1000", f"{WORK16}@198.18.0.10/9993"]) == 0
    assert (tmp_path / "planet").exists()
