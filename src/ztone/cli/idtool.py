"""``ztone-idtool``: identities, signatures, moons and planets (PROTOCOL-NETWORK-SERVICE §C.3.3).

Commands, arguments, output text and exit codes follow ``zerotier-idtool`` 1.14.1:

* ``generate [<secret path>] [<public path>] [<vanity hex>]``
* ``validate <identity>``, ``getpublic <identity>``
* ``sign <identity.secret> <file>``, ``verify <identity> <file> <signature>``
* ``initmoon <seed identity.public>``, ``genmoon <moon json>``

An ``<identity>`` argument is a literal identity string when it is longer than 32
characters and has ``:`` at index 10, otherwise the path of a file holding one.

``genplanet`` is a ztone extension: it makes (or updates) a private planet signed
with a C25519 key pair kept in a 128-byte file (public key then private key), so
successive revisions chain as nodes require (PROTOCOL-CORE §7.3).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ztone import PROTOCOL_VERSION, __version__, version_line
from ztone.crypto import c25519
from ztone.errors import LocalUsageError, MalformedPacket
from ztone.node.wire.dictionary import parse_hex_u64
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import (
    MAX_ROOTS,
    MAX_STABLE_ENDPOINTS_PER_ROOT,
    Root,
    World,
    WorldType,
)
from ztone.util.atomic import atomic_write_file
from ztone.util.ctext import U64_MAX
from ztone.util.jsontext import json_string

PROGRAM = "ztone-idtool"
# The reference prints its product name, copyright and licence in these three lines.
HELP_HEADER = (
    f"ztone version {__version__} (compatible with ZeroTier One 1.14.1)\n"
    "Copyright (c) the ztone authors\n"
    "Licensed under the MIT license\n"
)
HELP_COMMANDS = (
    "  generate [<identity.secret>] [<identity.public>] [<vanity>]\n"
    "  validate <identity.secret/public>\n"
    "  getpublic <identity.secret>\n"
    "  sign <identity.secret> <file>\n"
    "  verify <identity.secret/public> <file> <signature>\n"
    "  initmoon <identity.public of first seed>\n"
    "  genmoon <moon json>\n"
    "  genplanet [--id <id>] [--ts <ms>] [--out <path>] [--key <path>] <root> [<root> ...]\n"
    "      (ztone) make or update a private planet. <root> is\n"
    "      <identity.public or its file>@<ip>/<port>[,<ip>/<port>...], at most 4 roots\n"
    "      of at most 32 endpoints each. --id: world id, decimal or 0x-hex (default:\n"
    "      the existing planet's, else random); --ts: timestamp in ms (default: now);\n"
    "      --out: default ./planet; --key: default <out>.signingkey, created if absent\n"
    "      (keep it: every later update of the planet must be signed with it).\n"
)

IDENTITY_STRING_BUFFER_LENGTH = 384  # longer identity text is refused, as upstream
UNHEX_BUFFER_LENGTH = 4096
_ADDRESS_LENGTH = 5
_VANITY_MASK = (1 << 40) - 1
_SIGNING_KEY_FILE_LENGTH = c25519.PUBLIC_KEY_LEN + c25519.PRIVATE_KEY_LEN


class _Failure(Exception):
    """A command failed: the message goes to stderr and the exit code is 1."""


def print_help(out: TextIO, prog: str) -> None:
    out.write(HELP_HEADER)
    out.write(f"Usage: {prog} <command> [<args>]\n\nCommands:\n")
    out.write(HELP_COMMANDS)
    out.write(
        "\nSwitches (ztone): -h, --help this help; -v the protocol version (1.14.1);\n"
        "  --version ztone's version and the protocol version.\n"
    )


# --- helpers reproducing the reference's parsing -------------------------------------


def _unhex(text: bytes, limit: int) -> bytes:
    """Decode hex pairs as upstream's ``Utils::unhex``: stops at NUL or an odd tail,
    a non-hex digit counts as 0, at most ``limit`` bytes."""

    def nibble(c: int) -> int:
        if 48 <= c <= 57:
            return c - 48
        if 97 <= c <= 102:
            return c - 87
        if 65 <= c <= 70:
            return c - 55
        return 0

    text = text.split(b"\0", 1)[0]
    pairs = min(len(text) // 2, limit)
    return bytes((nibble(text[2 * i]) << 4) | nibble(text[2 * i + 1]) for i in range(pairs))


def _identity_from_text(text: str) -> Identity | None:
    if len(text) >= IDENTITY_STRING_BUFFER_LENGTH:
        return None
    try:
        return Identity.from_string(text)
    except ValueError:
        return None


def _identity_from_arg(arg: str) -> Identity | None:
    """A literal identity (longer than 32, ``:`` at index 10) or a file holding one."""
    if len(arg) > 32 and arg[10] == ":":
        return _identity_from_text(arg)
    try:
        raw = Path(arg).read_bytes()
    except OSError:
        return None
    return _identity_from_text(raw.split(b"\0", 1)[0].decode("latin-1"))


def _strtoul10(text: str) -> int:
    """C ``strtoul(text, NULL, 10)`` on a 64-bit platform."""
    s = text.lstrip(" \t\n\r\f\v")
    negative = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    digits = ""
    for c in s:
        if not "0" <= c <= "9":
            break
        digits += c
    value = min(int(digits), U64_MAX) if digits else 0
    return (-value) & U64_MAX if negative else value


def _endpoint_from_json_string(text: str) -> InetAddress | None:
    """``InetAddress::fromString`` as genmoon uses it; ``None`` is the null address.

    An address with ``:`` is IPv6 and one with ``.`` IPv4; if it does not parse it
    becomes the all-zero address of that family, keeping the port.
    """
    if not text or len(text.encode("utf-8", "surrogateescape")) >= 64:
        return None
    ip_text, slash, port_text = text.partition("/")
    port = _strtoul10(port_text) & 0xFFFF if slash else 0
    if ":" in ip_text:
        family, length = socket.AF_INET6, 16
    elif "." in ip_text:
        family, length = socket.AF_INET, 4
    else:
        return None
    try:
        packed = socket.inet_pton(family, ip_text)
    except (OSError, ValueError):
        packed = bytes(length)
    return InetAddress(ipaddress.ip_address(packed), port)


def _endpoint_sort_key(endpoint: InetAddress) -> tuple[int, int, int, bytes]:
    """``InetAddress::operator<`` on a little-endian host (x86-64, arm64).

    IPv4 sorts before IPv6; within a family by the port, then (IPv4) the address,
    both read as the in-memory network-order fields compare as host integers.
    """
    port = int.from_bytes(endpoint.port.to_bytes(2, "big"), "little")
    if endpoint.ip.version == 4:
        return 4, port, int.from_bytes(endpoint.ip.packed, "little"), b""
    return 6, port, 0, endpoint.ip.packed


def _sorted_root(identity: Identity, endpoints: list[InetAddress | None]) -> Root:
    """A root whose endpoints are sorted as genmoon sorts them (null entries first)."""
    usable = sorted((e for e in endpoints if e is not None), key=_endpoint_sort_key)
    nulls = len(endpoints) - len(usable)
    return Root(identity.public_only(), tuple(usable), tuple(range(nulls)))


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- commands --------------------------------------------------------------------------


def _require_identity(arg: str) -> Identity:
    identity = _identity_from_arg(arg)
    if identity is None:
        raise _Failure(f"Identity argument invalid or file unreadable: {arg}")
    return identity


def _generate(args: list[str]) -> int:
    vanity = 0
    vanity_bits = 0
    if len(args) >= 3:
        vanity = parse_hex_u64(args[2].encode("utf-8", "surrogateescape")) & _VANITY_MASK
        vanity_bits = min(4 * len(args[2].encode("utf-8", "surrogateescape")), 40)
    while True:
        identity = Identity.generate(os.urandom)
        address = int(identity.address)
        if (address >> (40 - vanity_bits)) == vanity:
            if vanity_bits > 0:
                sys.stderr.write(f"vanity address: found {address:010x} !\n")
            break
        wanted = (vanity << (40 - vanity_bits)) & U64_MAX
        sys.stderr.write(
            f"vanity address: tried {address:010x} looking for first {vanity_bits} bits of "
            f"{wanted:010x}\n"
        )
        sys.stderr.flush()
    if not args:
        sys.stdout.write(identity.to_string(include_private=True))
        return 0
    outputs = [(args[0], identity.to_string(include_private=True), 0o600)]
    if len(args) >= 2:
        outputs.append((args[1], identity.to_string(), 0o644))
    for path, text, mode in outputs:
        try:
            atomic_write_file(path, text.encode(), mode, make_parents=False)
        except OSError as e:
            raise _Failure(f"Error writing to {path}") from e
        sys.stdout.write(f"{path} written\n")
    return 0


def _validate(arg: str) -> int:
    identity = _require_identity(arg)
    if not identity.locally_validate():
        raise _Failure(f"{arg} FAILED validation.")
    sys.stdout.write(f"{arg} is a valid identity\n")
    return 0


def _getpublic(arg: str) -> int:
    sys.stdout.write(_require_identity(arg).to_string())
    return 0


def _read_message(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise _Failure(f"{path} is not readable") from e


def _sign(identity_arg: str, path: str) -> int:
    identity = _require_identity(identity_arg)
    if not identity.has_private:
        raise _Failure(f"{identity_arg} does not contain a private key (must use private to sign)")
    message = _read_message(path)
    sys.stdout.write(identity.sign(message).hex())
    return 0


def _verify(identity_arg: str, path: str, signature_arg: str) -> int:
    identity = _require_identity(identity_arg)
    message = _read_message(path)

    def ok(signature: bytes) -> bool:
        return len(signature) > _ADDRESS_LENGTH and identity.verify(message, signature)

    signature = _unhex(signature_arg.encode("utf-8", "surrogateescape"), UNHEX_BUFFER_LENGTH)
    if not ok(signature):
        try:
            text = Path(signature_arg).read_bytes()
        except OSError as e:
            raise _Failure(f"{path} signature check FAILED") from e
        if not ok(_unhex(text, UNHEX_BUFFER_LENGTH)):
            raise _Failure(f"{path} signature check FAILED")
    sys.stdout.write(f"{path} signature valid\n")
    return 0


def _initmoon(arg: str) -> int:
    identity = _identity_from_arg(arg)
    if identity is None:
        raise _Failure(f"{arg} is not a valid identity")
    public, private = c25519.generate(os.urandom)
    moon = {
        "objtype": "world",
        "worldType": "moon",
        "updatesMustBeSignedBy": public.hex(),
        "signingKey": public.hex(),
        "signingKey_SECRET": private.hex(),
        "id": str(identity.address),
        "roots": [{"identity": identity.to_string(), "stableEndpoints": []}],
    }
    sys.stdout.write(_json_dump(moon) + "\n")
    return 0


def _json_dump(value: Any) -> str:
    """nlohmann::json ``dump(1)``: one-space indent, keys in sorted order."""
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


def _genmoon(path: str) -> int:
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        raise _Failure(f"cannot read {path}") from e
    try:
        definition = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise _Failure(f"{path} is not valid JSON: {e}") from e
    if definition is None:
        definition = {}
    if not isinstance(definition, dict):
        raise _Failure(f"ID in {path} is invalid")
    world_id = parse_hex_u64(json_string(definition.get("id"), "0"))
    if not world_id:
        raise _Failure(f"ID in {path} is invalid")
    kind = definition.get("worldType")
    if kind == "moon":
        world_type = WorldType.MOON
    elif kind == "planet":
        world_type = WorldType.PLANET
    else:
        raise _Failure("invalid worldType")

    def key(name: str, length: int) -> bytes:
        raw = _unhex(json_string(definition.get(name), "").encode("latin-1", "replace"), length)
        return raw + bytes(length - len(raw))

    signing_private = key("signingKey_SECRET", c25519.PRIVATE_KEY_LEN)
    updates_must_be_signed_by = key("updatesMustBeSignedBy", c25519.PUBLIC_KEY_LEN)

    roots: list[Root] = []
    roots_json = definition.get("roots")
    for r in roots_json if isinstance(roots_json, list) else []:
        if not isinstance(r, dict):
            continue
        identity_text = json_string(r.get("identity"), "")
        identity = _identity_from_text(identity_text)
        if identity is None:
            raise _Failure(f"{path}: invalid root identity {identity_text!r}")
        endpoints_json = r.get("stableEndpoints")
        endpoints = [
            _endpoint_from_json_string(json_string(e, ""))
            for e in (endpoints_json if isinstance(endpoints_json, list) else [])
        ]
        roots.append(_sorted_root(identity, endpoints))
    roots.sort(key=Root.sort_key)

    now = _now_ms()
    try:
        world = World.make(
            world_type, world_id, now, updates_must_be_signed_by, roots, signing_private
        )
    except LocalUsageError as e:
        raise _Failure(f"{path}: {e}") from e
    name = f"{world.id:016x}.moon"
    try:
        atomic_write_file(name, world.serialize(), make_parents=False)
    except OSError as e:
        raise _Failure(f"cannot write {name}: {e.strerror}") from e
    sys.stdout.write(f"wrote {name} (signed world with timestamp {now})\n")
    return 0


# --- genplanet (ztone extension) -----------------------------------------------------


def _parse_u64_option(name: str, text: str, allow_hex: bool) -> int:
    try:
        hex_form = allow_hex and text[:2].lower() == "0x"
        value = int(text[2:], 16) if hex_form else int(text, 10)
    except ValueError as e:
        raise _Failure(f"genplanet: {name} {text!r} is not a number") from e
    if not 0 <= value <= U64_MAX:
        raise _Failure(f"genplanet: {name} {text!r} is out of range (unsigned 64-bit)")
    return value


def _parse_planet_endpoint(text: str) -> InetAddress:
    ip_text, slash, port_text = text.strip().partition("/")
    if ip_text.startswith("[") and ip_text.endswith("]"):
        ip_text = ip_text[1:-1]
    try:
        if not slash or not port_text.isdigit():
            raise ValueError
        endpoint = InetAddress.parse(f"{ip_text}/{int(port_text)}")
        if "%" in ip_text or endpoint.port == 0:
            raise ValueError
    except ValueError as e:
        raise _Failure(
            f"genplanet: bad endpoint {text!r} (expected <ip>/<port>, "
            "e.g. 198.18.0.10/9993 or 2001:db8::10/9993)"
        ) from e
    return endpoint


def _parse_planet_root(arg: str) -> tuple[Identity, list[InetAddress]]:
    identity_arg, at, endpoints_text = arg.rpartition("@")
    if not at or not identity_arg:
        raise _Failure(
            f"genplanet: root {arg!r} must be <identity.public or file>@<ip>/<port>[,...]"
        )
    identity = _identity_from_arg(identity_arg)
    if identity is None:
        raise _Failure(f"genplanet: identity argument invalid or file unreadable: {identity_arg}")
    endpoints = [_parse_planet_endpoint(t) for t in endpoints_text.split(",") if t.strip()]
    if not endpoints:
        raise _Failure(f"genplanet: root {identity.address} has no endpoint")
    if len(endpoints) > MAX_STABLE_ENDPOINTS_PER_ROOT:
        raise _Failure(
            f"genplanet: root {identity.address} has {len(endpoints)} endpoints "
            f"(at most {MAX_STABLE_ENDPOINTS_PER_ROOT})"
        )
    if len(set(endpoints)) != len(endpoints):
        raise _Failure(f"genplanet: root {identity.address} lists an endpoint twice")
    return identity.public_only(), endpoints


def _load_signing_key(path: Path) -> tuple[bytes, bytes]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise _Failure(f"genplanet: cannot read signing key {path}: {e.strerror}") from e
    if len(raw) != _SIGNING_KEY_FILE_LENGTH:
        raise _Failure(
            f"genplanet: {path} is not a signing key file "
            f"({len(raw)} bytes; expected {_SIGNING_KEY_FILE_LENGTH}: public then private key)"
        )
    public, private = raw[: c25519.PUBLIC_KEY_LEN], raw[c25519.PUBLIC_KEY_LEN :]
    if c25519.public_from_private(private) != public:
        raise _Failure(f"genplanet: {path} is corrupt (its public half does not match)")
    return public, private


def _load_existing_planet(path: Path) -> World | None:
    if not path.exists():
        return None
    try:
        data = path.read_bytes()
        existing = World.parse(data)
    except OSError as e:
        raise _Failure(f"genplanet: cannot read existing {path}: {e.strerror}") from e
    except MalformedPacket as e:
        raise _Failure(
            f"genplanet: {path} exists and is not a planet file ({e}); refusing to overwrite it"
        ) from e
    if existing.type != WorldType.PLANET:
        raise _Failure(
            f"genplanet: {path} holds a world of type {int(existing.type)}, not a planet; "
            "refusing to overwrite it"
        )
    return existing


def _genplanet(args: list[str]) -> int:
    options: dict[str, str | None] = {"--id": None, "--ts": None, "--out": None, "--key": None}
    root_args: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            root_args.extend(args[i + 1 :])
            break
        name, eq, value = arg.partition("=")
        if name in options:
            if not eq:
                if i + 1 >= len(args):
                    raise _Failure(f"genplanet: {name} needs a value")
                i += 1
                value = args[i]
            options[name] = value
        elif arg.startswith("--"):
            raise _Failure(f"genplanet: unknown option {arg}")
        else:
            root_args.append(arg)
        i += 1
    if not root_args:
        raise _Failure("genplanet: at least one root is needed (see help)")
    if len(root_args) > MAX_ROOTS:
        raise _Failure(
            f"genplanet: {len(root_args)} roots given (a planet has at most {MAX_ROOTS})"
        )

    out = Path(options["--out"] or "planet")
    key_path = Path(options["--key"] or f"{out}.signingkey")
    timestamp = (
        _parse_u64_option("--ts", options["--ts"], False)
        if options["--ts"] is not None
        else _now_ms()
    )
    roots_in = [_parse_planet_root(a) for a in root_args]
    addresses = [identity.address for identity, _ in roots_in]
    if len(set(addresses)) != len(addresses):
        raise _Failure("genplanet: the same root identity is listed twice")

    existing = _load_existing_planet(out)
    if options["--id"] is not None:
        world_id = _parse_u64_option("--id", options["--id"], True)
        if world_id == 0:
            raise _Failure("genplanet: --id must not be 0 (that is the null world)")
    elif existing is not None:
        world_id = existing.id
    else:
        world_id = 0
        while world_id == 0:
            world_id = secrets.randbits(64)

    new_key = not key_path.exists()
    if new_key:
        key_public, key_private = c25519.generate(os.urandom)
    else:
        key_public, key_private = _load_signing_key(key_path)

    if existing is not None:
        if existing.id != world_id:
            raise _Failure(
                f"genplanet: {out} holds planet id {existing.id} (0x{existing.id:x}), not "
                f"{world_id} (0x{world_id:x}); refusing to overwrite it with another planet "
                "(remove it or choose another --out)"
            )
        if timestamp <= existing.timestamp:
            raise _Failure(
                f"genplanet: {out} already has timestamp {existing.timestamp}; nodes only "
                f"accept an update with a greater --ts (got {timestamp})"
            )
        if new_key:
            raise _Failure(
                f"genplanet: {out} exists but the signing key {key_path} does not; an update "
                "must be signed with the key the planet names for its updates "
                f"(updatesMustBeSignedBy {existing.updates_must_be_signed_by.hex()[:16]}...): "
                "pass its file with --key"
            )
        if existing.updates_must_be_signed_by != key_public:
            raise _Failure(
                f"genplanet: {key_path} is not the key {out} names for its updates "
                f"(updatesMustBeSignedBy {existing.updates_must_be_signed_by.hex()[:16]}..., "
                f"key {key_public.hex()[:16]}...); nodes would refuse the update"
            )

    for identity, _ in roots_in:
        if not identity.locally_validate():
            raise _Failure(f"genplanet: root identity {identity.address} FAILED validation.")
    roots = sorted(
        (_sorted_root(identity, list(endpoints)) for identity, endpoints in roots_in),
        key=Root.sort_key,
    )
    world = World.make(WorldType.PLANET, world_id, timestamp, key_public, roots, key_private)
    if existing is not None and not existing.should_be_replaced_by(world):
        raise _Failure(f"genplanet: internal error: {out} would not accept the update")

    if new_key:
        try:
            atomic_write_file(key_path, key_public + key_private, 0o600, make_parents=False)
        except OSError as e:
            raise _Failure(f"genplanet: cannot write {key_path}: {e.strerror}") from e
    try:
        atomic_write_file(out, world.serialize(), make_parents=False)
    except OSError as e:
        raise _Failure(f"genplanet: cannot write {out}: {e.strerror}") from e
    sys.stdout.write(f"wrote {out} (signed world with timestamp {timestamp})\n")
    if new_key:
        sys.stdout.write(
            f"wrote {key_path} (new signing key: keep it private, it must sign every update)\n"
        )
    else:
        sys.stdout.write(f"signed with {key_path}\n")
    return 0


# --- entry points ----------------------------------------------------------------------


def _dispatch(argv: list[str], prog: str) -> int:
    if not argv:
        print_help(sys.stdout, prog)
        return 1
    command, args = argv[0], argv[1:]
    if command in ("-h", "--help", "-?", "help"):
        print_help(sys.stdout, prog)
        return 0
    if command == "-v":
        sys.stdout.write(f"{PROTOCOL_VERSION}\n")
        return 0
    if command == "--version":
        sys.stdout.write(version_line(prog))
        return 0
    # Commands and how many arguments they need (upstream prints help and exits 1
    # when one is missing, except initmoon and genmoon, which exit 0).
    needed = {"validate": 1, "getpublic": 1, "sign": 2, "verify": 3, "initmoon": 1, "genmoon": 1}
    if command in needed and len(args) < needed[command]:
        print_help(sys.stdout, prog)
        return 0 if command in ("initmoon", "genmoon") else 1
    if command == "generate":
        return _generate(args)
    if command == "validate":
        return _validate(args[0])
    if command == "getpublic":
        return _getpublic(args[0])
    if command == "sign":
        return _sign(args[0], args[1])
    if command == "verify":
        return _verify(args[0], args[1], args[2])
    if command == "initmoon":
        return _initmoon(args[0])
    if command == "genmoon":
        return _genmoon(args[0])
    if command == "genplanet":
        return _genplanet(args)
    print_help(sys.stdout, prog)
    return 1


def main(argv: list[str], prog: str = PROGRAM) -> int:
    """Run one idtool command; ``argv`` excludes the program name. Returns the exit code."""
    try:
        return _dispatch(argv, prog)
    except _Failure as e:
        sys.stderr.write(f"{e}\n")
        return 1


def console_main() -> None:
    sys.exit(main(sys.argv[1:], os.path.basename(sys.argv[0]) or PROGRAM))


if __name__ == "__main__":
    console_main()
