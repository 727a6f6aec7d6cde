"""``ztone-idtool`` against the real ``zerotier-idtool`` 1.14.1 outputs.

Identities, signatures and verify lines come from ``vectors/identities.json``; the
moon and planet from ``vectors/worlds`` (see the SOURCE notes). Only one identity is
generated for real in this file (the ``generated`` fixture): the rest use vectors.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import VECTORS
from ztone.cli import idtool
from ztone.crypto import c25519
from ztone.node.wire.identity import Identity
from ztone.node.wire.world import Root, World, WorldType

WORLDS = VECTORS / "worlds"
DATA: dict[str, Any] = json.loads((VECTORS / "identities.json").read_text())
IDENTITIES: list[dict[str, Any]] = DATA["identities"]
INVALID: list[dict[str, Any]] = DATA["invalid"]
MOON_TIMESTAMP = 1795310302531
LAB1_PLANET = (WORLDS / "lab1.planet").read_bytes()

Run = tuple[int, str, str]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()
    code = idtool.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The one real ``generate`` of this file: (secret path, public path, its stdout)."""
    directory = tmp_path_factory.mktemp("generated")
    secret, public = directory / "identity.secret", directory / "identity.public"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert idtool.main(["generate", str(secret), str(public)]) == 0
    return secret, public, out.getvalue()


# --- help and dispatch -------------------------------------------------------------------


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert len(lines) >= 13
    assert lines[3:12] == [
        "Usage: ztone-idtool <command> [<args>]",
        "",
        "Commands:",
        "  generate [<identity.secret>] [<identity.public>] [<vanity>]",
        "  validate <identity.secret/public>",
        "  getpublic <identity.secret>",
        "  sign <identity.secret> <file>",
        "  verify <identity.secret/public> <file> <signature>",
        "  initmoon <identity.public of first seed>",
    ]
    assert lines[12] == "  genmoon <moon json>"
    assert lines[13].startswith("  genplanet ")
    assert run(capsys, "bogus")[:2] == (1, out)
    for command in ("validate", "getpublic", "sign", "verify"):
        assert run(capsys, command)[:2] == (1, out)
    assert run(capsys, "sign", "x")[:2] == (1, out)
    assert run(capsys, "verify", "x", "y")[:2] == (1, out)
    assert run(capsys, "initmoon")[:2] == (0, out)
    assert run(capsys, "genmoon")[:2] == (0, out)
    assert idtool.main([], prog="zerotier-idtool") == 1
    assert "Usage: zerotier-idtool <command>" in capsys.readouterr().out


# --- validate, getpublic, sign, verify ----------------------------------------------------


@pytest.mark.parametrize("entry", IDENTITIES, ids=lambda e: str(e["address"]))
def test_validate_vectors(capsys: pytest.CaptureFixture[str], entry: dict[str, Any]) -> None:
    public = entry["public"]
    assert run(capsys, "validate", public) == (0, f"{public} is a valid identity\n", "")


def test_validate_from_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "identity.secret"
    path.write_text(IDENTITIES[1]["secret"] + "\n")
    assert run(capsys, "validate", str(path)) == (0, f"{path} is a valid identity\n", "")


@pytest.mark.parametrize("entry", INVALID, ids=["flipped-key", "other-address"])
def test_validate_invalid(capsys: pytest.CaptureFixture[str], entry: dict[str, Any]) -> None:
    code, out, err = run(capsys, "validate", entry["public"])
    assert (code, out) == (entry["reference_exit"], entry["reference_output"])
    assert err == f"{entry['public']} FAILED validation.\n"


def test_unreadable_identity(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    message = f"Identity argument invalid or file unreadable: {missing}\n"
    assert run(capsys, "validate", missing) == (1, "", message)
    assert run(capsys, "getpublic", missing) == (1, "", message)
    broken = IDENTITIES[0]["public"][:-2]  # a literal (':' at 10) that does not parse
    assert run(capsys, "validate", broken) == (
        1,
        "",
        f"Identity argument invalid or file unreadable: {broken}\n",
    )


def test_getpublic(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for entry in IDENTITIES:
        assert run(capsys, "getpublic", entry["secret"]) == (0, entry["public"], "")
    path = tmp_path / "identity.secret"
    path.write_text(IDENTITIES[2]["secret"])
    assert run(capsys, "getpublic", str(path)) == (0, IDENTITIES[2]["public"], "")


def test_sign_reproduces_every_reference_signature(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = tmp_path / "identity.secret"
    for entry in IDENTITIES:
        secret.write_text(entry["secret"])
        for n, sig in enumerate(entry["signatures"]):
            message = tmp_path / f"m{n}"
            message.write_bytes(bytes.fromhex(sig["message_hex"]))
            assert run(capsys, "sign", entry["secret"], str(message)) == (
                0,
                sig["signature_hex"],
                "",
            )
            assert run(capsys, "sign", str(secret), str(message))[1] == sig["signature_hex"]


def test_sign_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    public = IDENTITIES[0]["public"]
    message = tmp_path / "m"
    message.write_bytes(b"hello")
    assert run(capsys, "sign", public, str(message)) == (
        1,
        "",
        f"{public} does not contain a private key (must use private to sign)\n",
    )
    missing = str(tmp_path / "missing")
    assert run(capsys, "sign", IDENTITIES[0]["secret"], missing) == (
        1,
        "",
        f"{missing} is not readable\n",
    )


def test_verify_reference_signatures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for entry in IDENTITIES:
        for n, sig in enumerate(entry["signatures"]):
            message = tmp_path / f"m{n}"
            message.write_bytes(bytes.fromhex(sig["message_hex"]))
            expected = sig["reference_verify"].replace("/path/to/", f"{tmp_path}/") + "\n"
            assert expected == f"{message} signature valid\n"
            assert run(capsys, "verify", entry["public"], str(message), sig["signature_hex"]) == (
                0,
                expected,
                "",
            )


def test_verify_signature_file_and_failures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    entry = IDENTITIES[3]
    sig = entry["signatures"][1]
    message = tmp_path / "m1"
    message.write_bytes(bytes.fromhex(sig["message_hex"]))
    sig_file = tmp_path / "m1.sig"
    sig_file.write_text(sig["signature_hex"] + "\n")
    assert run(capsys, "verify", entry["public"], str(message), str(sig_file)) == (
        0,
        f"{message} signature valid\n",
        "",
    )
    assert (
        run(capsys, "verify", entry["public"], str(message), sig["signature_hex"].upper())[0] == 0
    )
    failed = (1, "", f"{message} signature check FAILED\n")
    corrupted = sig["signature_hex"][:10] + ("0" if sig["signature_hex"][10] != "0" else "1")
    corrupted += sig["signature_hex"][11:]
    assert run(capsys, "verify", entry["public"], str(message), corrupted) == failed
    assert run(capsys, "verify", IDENTITIES[4]["public"], str(message), sig["signature_hex"]) == (
        failed
    )
    assert run(capsys, "verify", entry["public"], str(message), sig["signature_hex"][:-2]) == (
        failed
    )
    sig_file.write_text(corrupted)
    assert run(capsys, "verify", entry["public"], str(message), str(sig_file)) == failed
    assert run(capsys, "verify", entry["public"], str(tmp_path / "none"), "00")[2] == (
        f"{tmp_path / 'none'} is not readable\n"
    )


# --- generate -------------------------------------------------------------------------------


def test_generate_writes_files_that_validate(
    capsys: pytest.CaptureFixture[str], generated: tuple[Path, Path, str]
) -> None:
    secret, public, out = generated
    assert out == f"{secret} written\n{public} written\n"
    identity = Identity.from_string(secret.read_text())
    assert identity.has_private and identity.locally_validate()
    assert public.read_text() == identity.to_string()
    assert "\n" not in secret.read_text()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert run(capsys, "validate", str(secret)) == (0, f"{secret} is a valid identity\n", "")


@pytest.fixture
def fake_generate(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Identity]]:
    """Make ``Identity.generate`` hand out the vector identities in order."""
    pool = [Identity.from_string(e["secret"]) for e in IDENTITIES]
    handed: list[Identity] = []

    def generate(random_bytes: Any, hash_function: Any = None) -> Identity:
        identity = pool[len(handed) % len(pool)]
        handed.append(identity)
        return identity

    monkeypatch.setattr(Identity, "generate", generate)
    yield handed


def test_generate_to_stdout(
    capsys: pytest.CaptureFixture[str], fake_generate: list[Identity]
) -> None:
    assert run(capsys, "generate") == (0, IDENTITIES[0]["secret"], "")


def test_generate_vanity(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_generate: list[Identity]
) -> None:
    secret, public = tmp_path / "s", tmp_path / "p"
    # The third vector identity is 1e26eb3bf1: looking for "1e2" (12 bits).
    code, out, err = run(capsys, "generate", str(secret), str(public), "1e2")
    assert code == 0 and len(fake_generate) == 3
    assert err == (
        "vanity address: tried d41df8ed6a looking for first 12 bits of 1e20000000\n"
        "vanity address: tried 2d299c6c91 looking for first 12 bits of 1e20000000\n"
        "vanity address: found 1e26eb3bf1 !\n"
    )
    assert out == f"{secret} written\n{public} written\n"
    assert secret.read_text() == IDENTITIES[2]["secret"]
    assert public.read_text() == IDENTITIES[2]["public"]


def test_generate_write_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_generate: list[Identity]
) -> None:
    bad = str(tmp_path / "no" / "such" / "dir")
    assert run(capsys, "generate", bad) == (1, "", f"Error writing to {bad}\n")
    ok = tmp_path / "secret"
    assert run(capsys, "generate", str(ok), bad) == (
        1,
        f"{ok} written\n",
        f"Error writing to {bad}\n",
    )


# --- initmoon and genmoon ---------------------------------------------------------------


def test_initmoon(capsys: pytest.CaptureFixture[str]) -> None:
    seed = WORLDS / "seed.public"
    code, out, err = run(capsys, "initmoon", str(seed))
    assert (code, err) == (0, "")
    assert out.endswith("}\n")
    moon = json.loads(out)
    assert out == json.dumps(moon, indent=1, sort_keys=True) + "\n"
    assert list(moon) == sorted(moon)
    assert out.startswith('{\n "id": "d41df8ed6a",\n "objtype": "world",\n "roots": [\n  {\n')
    assert moon["roots"] == [{"identity": seed.read_text().strip(), "stableEndpoints": []}]
    assert '"stableEndpoints": []' in out
    assert moon["objtype"] == "world" and moon["worldType"] == "moon"
    assert moon["signingKey"] == moon["updatesMustBeSignedBy"]
    secret = bytes.fromhex(moon["signingKey_SECRET"])
    assert c25519.public_from_private(secret).hex() == moon["signingKey"]
    # The reference's moon.json (before its endpoints were filled in) has this shape.
    reference = json.loads((WORLDS / "moon.json").read_text())
    assert set(reference) == set(moon)
    # A secret identity is accepted and printed public; garbage is refused.
    assert (
        json.loads(run(capsys, "initmoon", IDENTITIES[0]["secret"])[1])["roots"][0]["identity"]
        == (IDENTITIES[0]["public"])
    )
    assert run(capsys, "initmoon", "nonsense") == (1, "", "nonsense is not a valid identity\n")


def test_genmoon_reproduces_the_reference_moon(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "moon.json").write_bytes((WORLDS / "moon.json").read_bytes())
    monkeypatch.setattr(idtool, "_now_ms", lambda: MOON_TIMESTAMP)
    assert run(capsys, "genmoon", "moon.json") == (
        0,
        f"wrote 000000d41df8ed6a.moon (signed world with timestamp {MOON_TIMESTAMP})\n",
        "",
    )
    produced = (tmp_path / "000000d41df8ed6a.moon").read_bytes()
    assert produced == (WORLDS / "000000d41df8ed6a.moon").read_bytes()


def test_genmoon_now(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    definition = json.loads((WORLDS / "moon.json").read_text())
    path = tmp_path / "moon.json"
    path.write_text(json.dumps(definition))
    with contextlib.chdir(tmp_path):
        code, out, err = run(capsys, "genmoon", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("wrote 000000d41df8ed6a.moon (signed world with timestamp ")
    moon = World.parse((tmp_path / "000000d41df8ed6a.moon").read_bytes())
    reference = World.parse((WORLDS / "000000d41df8ed6a.moon").read_bytes())
    assert moon.type == WorldType.MOON and moon.id == reference.id
    assert moon.roots == reference.roots
    assert moon.timestamp == int(out.split()[-1].rstrip(")"))
    assert moon.verify_signature(bytes.fromhex(definition["signingKey"]))
    assert reference.should_be_replaced_by(moon)


def test_genmoon_sorts_roots_and_endpoints(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    public, secret = c25519.generate(lambda n: bytes(range(n)))
    endpoints = [
        "2001:db8::2/9993",
        "198.18.0.2/443",
        "2.0.0.1/9993",
        "2001:db8::1/9993",
        "1.0.0.2/9993",
        "bogus",
        "1.2.3/7",
    ]
    definition = {
        "id": "0x1234",
        "worldType": "planet",
        "signingKey": public.hex(),
        "signingKey_SECRET": secret.hex(),
        "updatesMustBeSignedBy": public.hex(),
        "roots": [
            {"identity": IDENTITIES[0]["public"], "stableEndpoints": endpoints},
            "not an object",
            {"identity": IDENTITIES[1]["secret"]},
        ],
    }
    (tmp_path / "m.json").write_text(json.dumps(definition))
    code, out, err = run(capsys, "genmoon", "m.json")
    assert (code, err) == (0, "")
    assert out.startswith("wrote 0000000000001234.moon ")
    world = World.parse((tmp_path / "0000000000001234.moon").read_bytes())
    assert world.type == WorldType.PLANET and world.id == 0x1234
    assert world.verify_signature(public)
    # Roots by address; endpoints as InetAddress::operator< on a little-endian host:
    # null first, IPv4 before IPv6, then by port and address as in-memory integers.
    assert [str(r.identity) for r in world.roots] == [
        IDENTITIES[1]["public"],
        IDENTITIES[0]["public"],
    ]
    assert world.roots[0] == Root(world.roots[0].identity)
    root = world.roots[1]
    assert root.null_endpoint_slots == (0,)
    assert [str(e) for e in root.stable_endpoints] == [
        "0.0.0.0/7",
        "2.0.0.1/9993",
        "1.0.0.2/9993",
        "198.18.0.2/443",
        "2001:db8::1/9993",
        "2001:db8::2/9993",
    ]


def test_genmoon_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.json")
    assert run(capsys, "genmoon", missing) == (1, "", f"cannot read {missing}\n")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"id": "0", "worldType": "moon"}))
    assert run(capsys, "genmoon", str(path)) == (1, "", f"ID in {path} is invalid\n")
    path.write_text(json.dumps({"id": "abc", "worldType": "star"}))
    assert run(capsys, "genmoon", str(path)) == (1, "", "invalid worldType\n")
    path.write_text("{not json")
    assert run(capsys, "genmoon", str(path))[0] == 1
    path.write_text(json.dumps({"id": "abc", "worldType": "moon", "roots": [{"identity": "x"}]}))
    code, out, err = run(capsys, "genmoon", str(path))
    assert (code, out) == (1, "") and "invalid root identity" in err


# --- genplanet ------------------------------------------------------------------------------


def test_genplanet_reproduces_the_lab1_planet(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    recorded = World.parse(LAB1_PLANET)
    key = tmp_path / "planet.signingkey"
    key.write_bytes((WORLDS / "lab1.planet.signingkey").read_bytes())
    out = tmp_path / "planet"
    root = f"{recorded.roots[0].identity}@198.18.0.10/9993"
    args = ["genplanet", "--id", "149604618", "--ts", str(recorded.timestamp), "--out", str(out)]
    assert run(capsys, *args, root) == (
        0,
        f"wrote {out} (signed world with timestamp {recorded.timestamp})\nsigned with {key}\n",
        "",
    )
    assert out.read_bytes() == LAB1_PLANET


def test_genplanet_round_trip_and_update(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    generated: tuple[Path, Path, str],
) -> None:
    monkeypatch.chdir(tmp_path)
    fresh = Identity.from_string(generated[1].read_text())
    seed = WORLDS / "seed.public"
    roots = [f"{fresh}@198.18.0.10/9993,2001:db8::10/9993", f"{seed}@198.18.0.11/9993"]
    code, out, err = run(capsys, "genplanet", "--ts", "1000", *roots)
    assert (code, err) == (0, "")
    assert out == (
        "wrote planet (signed world with timestamp 1000)\n"
        "wrote planet.signingkey (new signing key: keep it private, it must sign every update)\n"
    )
    key = (tmp_path / "planet.signingkey").read_bytes()
    assert len(key) == 128 and c25519.public_from_private(key[64:]) == key[:64]
    assert stat.S_IMODE(os.stat("planet.signingkey").st_mode) == 0o600
    first = World.parse((tmp_path / "planet").read_bytes())
    assert first.type == WorldType.PLANET and first.id != 0 and first.timestamp == 1000
    assert first.updates_must_be_signed_by == key[:64]
    assert first.verify_signature(key[:64])
    by_address = {r.identity.address: r for r in first.roots}
    assert [r.identity.address for r in first.roots] == sorted(by_address)
    assert by_address[fresh.address].identity == fresh
    assert [str(e) for e in by_address[fresh.address].stable_endpoints] == [
        "198.18.0.10/9993",
        "2001:db8::10/9993",
    ]

    # An update: same key file, same id (taken from the existing planet), newer --ts.
    code, out, err = run(capsys, "genplanet", "--ts=2000", f"{seed}@198.18.0.12/9993")
    assert (code, out, err) == (
        0,
        "wrote planet (signed world with timestamp 2000)\nsigned with planet.signingkey\n",
        "",
    )
    second = World.parse((tmp_path / "planet").read_bytes())
    assert second.id == first.id and len(second.roots) == 1
    assert first.should_be_replaced_by(second)

    # Refusals leave the planet as it is.
    before = (tmp_path / "planet").read_bytes()
    code, out, err = run(capsys, "genplanet", "--ts", "2000", f"{seed}@198.18.0.12/9993")
    assert (code, out) == (1, "") and "greater --ts" in err and "2000" in err
    code, out, err = run(capsys, "genplanet", "--id", "7", "--ts", "3000", f"{seed}@1.2.3.4/9")
    assert (code, out) == (1, "") and "refusing to overwrite" in err
    other = tmp_path / "other.key"
    code, out, err = run(
        capsys, "genplanet", "--key", str(other), "--ts", "3000", f"{seed}@1.2.3.4/9"
    )
    assert (code, out) == (1, "") and "does not" in err and "--key" in err
    assert not other.exists()
    other.write_bytes(c25519.public_from_private(bytes(64)) + bytes(64))
    code, out, err = run(
        capsys, "genplanet", "--key", str(other), "--ts", "3000", f"{seed}@1.2.3.4/9"
    )
    assert (code, out) == (1, "") and "is not the key" in err and "refuse" in err
    assert (tmp_path / "planet").read_bytes() == before

    # An update signed with a different key is one nodes refuse.
    forged = World.make(
        WorldType.PLANET, second.id, 3000, second.updates_must_be_signed_by, second.roots, bytes(64)
    )
    assert not second.should_be_replaced_by(forged)
    # A planet written elsewhere with the other key does not chain to this one.
    code, out, err = run(
        capsys,
        "genplanet",
        "--out",
        "elsewhere",
        "--key",
        str(other),
        "--id",
        str(second.id),
        "--ts",
        "3000",
        f"{seed}@198.18.0.12/9993",
    )
    assert code == 0
    assert not second.should_be_replaced_by(World.parse((tmp_path / "elsewhere").read_bytes()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "at least one root"),
        (["--bogus", "x"], "unknown option --bogus"),
        (["--ts"], "--ts needs a value"),
        (["--ts", "soon", "ROOT"], "not a number"),
        (["--id", "0", "ROOT"], "must not be 0"),
        (["--id", "0x1" + "0" * 16, "ROOT"], "out of range"),
        (["ROOT"] * 5, "at most 4"),
        (["nowhere@1.2.3.4/9993"], "invalid or file unreadable: nowhere"),
        ([IDENTITIES[0]["public"]], "must be <identity.public or file>@"),
        ([IDENTITIES[0]["public"] + "@"], "has no endpoint"),
        ([IDENTITIES[0]["public"] + "@1.2.3.4"], "bad endpoint '1.2.3.4'"),
        ([IDENTITIES[0]["public"] + "@1.2.3.4/0"], "bad endpoint"),
        ([IDENTITIES[0]["public"] + "@1.2.3.4/9,1.2.3.4/9"], "endpoint twice"),
        ([IDENTITIES[0]["public"] + "@[2001:db8::1]/9"] * 2, "listed twice"),
        ([INVALID[0]["public"] + "@1.2.3.4/9"], "FAILED validation"),
    ],
)
def test_genplanet_bad_arguments(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [IDENTITIES[0]["public"] + "@1.2.3.4/9" if a == "ROOT" else a for a in args]
    code, out, err = run(capsys, "genplanet", *args)
    assert (code, out) == (1, "")
    assert err.startswith("genplanet: ") and message in err
    assert not (tmp_path / "planet").exists() and not (tmp_path / "planet.signingkey").exists()


def test_genplanet_refuses_a_non_planet_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = IDENTITIES[0]["public"] + "@1.2.3.4/9"
    (tmp_path / "planet").write_bytes((WORLDS / "000000d41df8ed6a.moon").read_bytes())
    code, out, err = run(capsys, "genplanet", root)
    assert (code, out) == (1, "") and "not a planet" in err
    (tmp_path / "planet").write_bytes(b"garbage")
    code, out, err = run(capsys, "genplanet", root)
    assert (code, out) == (1, "") and "is not a planet file" in err
    (tmp_path / "k").write_bytes(bytes(100))
    code, out, err = run(capsys, "genplanet", "--out", "p2", "--key", "k", root)
    assert (code, out) == (1, "") and "not a signing key file" in err
