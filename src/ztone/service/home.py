"""The zerotier-one home directory (PROTOCOL-NETWORK-SERVICE C.1.1, C.1.2, C.3.1).

Layout (names as zerotier-one 1.14.1, so ztone can run on an existing home)::

    identity.secret        <addr>:0:<public hex>:<private hex>, no newline, mode 0600
    identity.public        <addr>:0:<public hex>, no newline
    authtoken.secret       24 chars of [a-z0-9], no newline, mode 0600
    metricstoken.secret    same format, mode 0600
    zerotier-one.port      primary port in decimal, no newline
    zerotier-one.pid       daemon PID in decimal, no newline
    planet                 serialized planet World
    moons.d/<16 hex>.moon  serialized moon Worlds
    peers.d/<10 hex>.peer  serialized peer state (pruned after 30 days)
    networks.d/<16 hex>.conf        network config dictionary ("\\n" = joined, no config)
    networks.d/<16 hex>.local.conf  per-network local settings (see config.py)
    local.conf             JSON settings (see config.py)

Every write goes through :func:`atomic_write_file` (temporary file in the same
directory, fsync, rename, fsync of the directory) and is skipped when the file
already holds the same bytes, as upstream's state writer does. Files written
without an explicit mode keep the mode of the file they replace, or get
``0666 & ~umask`` when new (upstream writes with ``fopen``).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path, PurePath

from ztone.crypto import c25519
from ztone.errors import MalformedPacket
from ztone.node.actions import PutState, StateKind
from ztone.node.bounds import MAX_PEER_FILES
from ztone.node.wire.identity import Identity
from ztone.node.wire.world import World, WorldType
from ztone.util.atomic import atomic_write_file

log = logging.getLogger(__name__)

IDENTITY_SECRET = "identity.secret"
IDENTITY_PUBLIC = "identity.public"
IDENTITY_SAVED_AFTER_COLLISION = "identity.secret.saved_after_collision"
AUTHTOKEN_SECRET = "authtoken.secret"
METRICSTOKEN_SECRET = "metricstoken.secret"
PORT_FILE = "zerotier-one.port"
PID_FILE = "zerotier-one.pid"
LOCAL_CONF = "local.conf"
PLANET = "planet"
MOONS_DIR = "moons.d"
PEERS_DIR = "peers.d"
NETWORKS_DIR = "networks.d"
OBSOLETE_CONTROLLER_DB = "controller.db"

SECRET_MODE = 0o600
HOME_MODE = 0o700
SUBDIR_MODE = 0o755
TOKEN_LENGTH = 24
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
PEER_MAX_AGE_S = 30 * 24 * 3600.0
MAX_STATE_FILE_SIZE = 1 << 20
"""Reads of state objects larger than this are refused (a network config is < 0.5 MiB)."""

_MOON_NAME = re.compile(r"[0-9a-fA-F]{16}\.moon")
_NETWORK_NAME = re.compile(r"[0-9a-fA-F]{16}\.conf")

RandomBytes = Callable[[int], bytes]


class HomeError(Exception):
    """The home directory cannot be used as it is (the message names the file)."""


def _lock_down(path: Path) -> None:
    """``OSUtils::lockDownFile``: chmod 0600, warning (not failing) if impossible."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != SECRET_MODE:
            os.chmod(path, SECRET_MODE)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot set mode 0600 on %s: %s", path, e)


# --- the home directory ---------------------------------------------------------------


class Home:
    """A zerotier-one compatible home directory at ``path``."""

    def __init__(
        self, path: str | os.PathLike[str], random_bytes: RandomBytes = os.urandom
    ) -> None:
        self._path = Path(path)
        self._random_bytes = random_bytes

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"Home({str(self._path)!r})"

    def file(self, relative_path: str | PurePath) -> Path:
        """The absolute path of a file inside the home; ``ValueError`` if it would escape."""
        rel = PurePath(relative_path)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"not a path inside the home directory: {str(relative_path)!r}")
        return self._path / rel

    @property
    def local_conf_path(self) -> Path:
        return self._path / LOCAL_CONF

    def network_conf_path(self, nwid: int) -> Path:
        return self._path / NETWORKS_DIR / f"{nwid & 0xFFFFFFFFFFFFFFFF:016x}.conf"

    def network_local_conf_path(self, nwid: int) -> Path:
        return self._path / NETWORKS_DIR / f"{nwid & 0xFFFFFFFFFFFFFFFF:016x}.local.conf"

    def ensure(self) -> None:
        """Create the home directory (and its parents); a new one gets mode 0700."""
        if self._path.is_dir():
            return
        try:
            self._path.mkdir(mode=HOME_MODE, parents=True)
            os.chmod(self._path, HOME_MODE)
        except FileExistsError:
            if not self._path.is_dir():
                raise HomeError(f"{self._path}: exists and is not a directory") from None
        except OSError as e:
            raise HomeError(f"{self._path}: cannot create home directory: {e}") from e

    def atomic_write(
        self, relative_path: str | PurePath, data: bytes, mode: int | None = None
    ) -> bool:
        """:func:`atomic_write_file` for a file inside the home; False if unchanged."""
        return atomic_write_file(self.file(relative_path), data, mode)

    def lock_down_secrets(self) -> None:
        """Start-up step (C.3.1): chmod 0600 the identity and token secrets if present."""
        for name in (IDENTITY_SECRET, AUTHTOKEN_SECRET, METRICSTOKEN_SECRET):
            _lock_down(self._path / name)

    def check_obsolete(self) -> None:
        """Start-up step (C.3.1): refuse a home holding the obsolete ``controller.db``."""
        if (self._path / OBSOLETE_CONTROLLER_DB).exists():
            raise HomeError(
                f"{self._path / OBSOLETE_CONTROLLER_DB}: this obsolete controller database "
                "is no longer supported; migrate or remove it"
            )

    # --- identity ------------------------------------------------------------

    def load_or_create_identity(self, generate: Callable[[], Identity]) -> Identity:
        """The node identity from ``identity.secret``, created with ``generate`` if missing.

        An existing secret must parse, hold a private key and that key must
        belong to its public key; otherwise :class:`HomeError` (the file is never
        overwritten). ``identity.secret`` gets mode 0600 at every call and
        ``identity.public`` is (re)written when missing or different.
        """
        secret_path = self._path / IDENTITY_SECRET
        text: str | None
        try:
            raw = secret_path.read_bytes()
        except FileNotFoundError:
            text = None
        except OSError as e:
            raise HomeError(f"{secret_path}: cannot read identity: {e}") from e
        else:
            try:
                text = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                raise HomeError(f"{secret_path}: not a valid identity (not ASCII text)") from None
            if not text:
                log.warning("%s is empty; generating a new identity", secret_path)
                text = None

        if text is None:
            identity = generate()
            if identity.secret is None:
                raise HomeError("the identity generator returned an identity without private key")
            try:
                self.atomic_write(
                    IDENTITY_SECRET, identity.to_string(include_private=True).encode(), SECRET_MODE
                )
            except OSError as e:
                raise HomeError(f"{secret_path}: cannot write identity: {e}") from e
            log.info("generated new identity %s in %s", identity.address, secret_path)
        else:
            try:
                identity = Identity.from_string(text)
            except ValueError as e:
                raise HomeError(f"{secret_path}: not a valid identity: {e}") from None
            if identity.secret is None:
                raise HomeError(f"{secret_path}: the identity has no private key")
            if c25519.public_from_private(identity.secret) != identity.public:
                raise HomeError(f"{secret_path}: the private key does not match the public key")
            _lock_down(secret_path)

        try:
            self.atomic_write(IDENTITY_PUBLIC, identity.to_string(include_private=False).encode())
        except OSError as e:
            raise HomeError(f"{self._path / IDENTITY_PUBLIC}: cannot write: {e}") from e
        return identity

    def set_aside_identity(self) -> bool:
        """After an identity collision: move ``identity.secret`` to
        ``identity.secret.saved_after_collision`` and delete ``identity.public``,
        so the next start generates a new identity. False if there was none.
        """
        secret_path = self._path / IDENTITY_SECRET
        try:
            old = secret_path.read_bytes()
        except FileNotFoundError:
            return False
        if not old:
            return False
        self.atomic_write(IDENTITY_SAVED_AFTER_COLLISION, old, SECRET_MODE)
        secret_path.unlink(missing_ok=True)
        (self._path / IDENTITY_PUBLIC).unlink(missing_ok=True)
        return True

    # --- tokens --------------------------------------------------------------

    def _new_token(self) -> str:
        raw = self._random_bytes(TOKEN_LENGTH)
        if len(raw) != TOKEN_LENGTH:
            raise ValueError("random source returned the wrong number of bytes")
        return "".join(TOKEN_ALPHABET[b % len(TOKEN_ALPHABET)] for b in raw)

    def _token(self, name: str) -> str:
        path = self._path / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = b""
        except OSError as e:
            raise HomeError(f"{path}: cannot read token: {e}") from e
        try:
            token = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise HomeError(f"{path}: the token is not UTF-8 text") from None
        if token:
            _lock_down(path)
            return token
        if raw:
            log.warning("%s holds only white space; writing a new token", path)
        token = self._new_token()
        try:
            self.atomic_write(name, token.encode(), SECRET_MODE)
        except OSError as e:
            raise HomeError(f"{path}: cannot write token: {e}") from e
        return token

    def auth_token(self) -> str:
        """The API token from ``authtoken.secret`` (trimmed), created if missing or empty."""
        return self._token(AUTHTOKEN_SECRET)

    def metrics_token(self) -> str:
        """The ``/metrics`` token from ``metricstoken.secret``, created if missing or empty."""
        return self._token(METRICSTOKEN_SECRET)

    # --- port and pid files --------------------------------------------------

    def write_port(self, port: int) -> None:
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port out of range: {port}")
        self.atomic_write(PORT_FILE, str(port).encode())

    def read_port(self) -> int | None:
        """The port in ``zerotier-one.port`` (as the CLI reads it), or None."""
        try:
            text = (self._path / PORT_FILE).read_text("ascii").strip()
            port = int(text)
        except (OSError, ValueError):
            return None
        return port if 0 < port <= 0xFFFF else None

    def write_pid(self, pid: int) -> None:
        self.atomic_write(PID_FILE, str(pid).encode())

    def remove_pid(self) -> None:
        try:
            (self._path / PID_FILE).unlink(missing_ok=True)
        except OSError as e:
            log.warning("cannot remove %s: %s", self._path / PID_FILE, e)


# --- state objects --------------------------------------------------------------------


class FileStateStore:
    """The core's persistent state objects as files in a :class:`Home` (C.1.2).

    Reads never raise: a missing file is ``None``; an unreadable, oversized or
    (for identities) non-text file is ``None`` with a warning on this module's
    logger. Writes are atomic; failures are logged, not raised.
    """

    def __init__(self, home: Home) -> None:
        self._home = home

    @property
    def home(self) -> Home:
        return self._home

    @staticmethod
    def relative_path(kind: StateKind, object_id: int) -> str:
        """The file of a state object, relative to the home directory."""
        if kind is StateKind.IDENTITY_PUBLIC:
            return IDENTITY_PUBLIC
        if kind is StateKind.IDENTITY_SECRET:
            return IDENTITY_SECRET
        if kind is StateKind.PLANET:
            return PLANET
        if kind is StateKind.MOON:
            return f"{MOONS_DIR}/{object_id & 0xFFFFFFFFFFFFFFFF:016x}.moon"
        if kind is StateKind.PEER:
            return f"{PEERS_DIR}/{object_id & 0xFFFFFFFFFF:010x}.peer"
        if kind is StateKind.NETWORK_CONFIG:
            return f"{NETWORKS_DIR}/{object_id & 0xFFFFFFFFFFFFFFFF:016x}.conf"
        raise ValueError(f"unknown state object kind {kind!r}")

    def get(self, kind: StateKind, object_id: int) -> bytes | None:
        path = self._home.file(self.relative_path(kind, object_id))
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_STATE_FILE_SIZE + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("cannot read %s: %s", path, e)
            return None
        if len(data) > MAX_STATE_FILE_SIZE:
            log.warning("ignoring %s: larger than %d bytes", path, MAX_STATE_FILE_SIZE)
            return None
        is_identity = kind in (StateKind.IDENTITY_PUBLIC, StateKind.IDENTITY_SECRET)
        if is_identity and (b"\x00" in data or not data.isascii()):
            log.warning("ignoring %s: not an identity text", path)
            return None
        return data

    def put(self, kind: StateKind, object_id: int, data: bytes | None) -> None:
        """Store ``data`` (atomically, skipping identical content) or delete if None."""
        rel = self.relative_path(kind, object_id)
        path = self._home.file(rel)
        try:
            if data is None:
                path.unlink(missing_ok=True)
            else:
                mode = SECRET_MODE if kind is StateKind.IDENTITY_SECRET else None
                self._home.atomic_write(rel, bytes(data), mode)
        except OSError as e:
            log.error("cannot %s %s: %s", "delete" if data is None else "write", path, e)

    def apply(self, action: PutState) -> None:
        """Carry out a core :class:`PutState` action."""
        self.put(action.kind, action.object_id, action.data)

    def _ids(self, directory: str, pattern: re.Pattern[str]) -> list[int]:
        path = self._home.path / directory
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return []
        except OSError as e:
            log.warning("cannot list %s: %s", path, e)
            return []
        return sorted({int(n[:16], 16) for n in names if pattern.fullmatch(n)})

    def moon_ids(self) -> list[int]:
        """World ids of ``moons.d/<16 hex>.moon`` files (orbited at start)."""
        return self._ids(MOONS_DIR, _MOON_NAME)

    def check_planet(self) -> None:
        """A ``planet`` file that exists must hold one planet; else :class:`HomeError`.

        Only an absent file means the built-in planet: falling back to it for a file
        that is empty, truncated or garbage would move a node of a private network
        onto the public roots without a word. The signature is not checked against
        the file's own key: a planet updated by its roots is signed by the previous
        revision's key (PROTOCOL-CORE §7.3), which the file no longer holds.
        """
        path = self._home.file(PLANET)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_STATE_FILE_SIZE + 1)
        except FileNotFoundError:
            return
        except OSError as e:
            raise HomeError(f"{path}: cannot read the planet: {e}") from None
        if len(data) > MAX_STATE_FILE_SIZE:
            raise HomeError(f"{path}: not a planet (larger than {MAX_STATE_FILE_SIZE} bytes)")
        try:
            world = World.parse(data)
        except (MalformedPacket, ValueError) as e:
            raise HomeError(
                f"{path}: not a valid planet ({e or 'empty'}); replace it, or delete it"
                " to use the default planet"
            ) from None
        if world.type != WorldType.PLANET:
            raise HomeError(f"{path}: holds a world of type {int(world.type)}, not a planet")

    def valid_moon_ids(self) -> list[int]:
        """:meth:`moon_ids` whose file holds that moon; each other one is logged and skipped.

        A moon only adds roots, so one unreadable moon file is no reason to stay down:
        the node starts with its planet and the other moons, and the error names the
        file so it can be replaced (``zerotier-cli orbit`` fetches it again).
        """
        good = []
        for world_id in self.moon_ids():
            path = self._home.file(self.relative_path(StateKind.MOON, world_id))
            data = self.get(StateKind.MOON, world_id)
            try:
                if data is None:
                    raise MalformedPacket("unreadable")
                world = World.parse(data)
                if world.type != WorldType.MOON or world.id != world_id:
                    raise MalformedPacket(f"holds world {world.id:016x}, not this moon")
            except (MalformedPacket, ValueError) as e:
                log.error("%s: not a valid moon (%s); skipped", path, e or "empty")
                continue
            good.append(world_id)
        return good

    def network_ids(self) -> list[int]:
        """Network ids of ``networks.d/<16 hex>.conf`` files (joined at start)."""
        return self._ids(NETWORKS_DIR, _NETWORK_NAME)

    def prune_peers(
        self, now_s: float, max_age_s: float = PEER_MAX_AGE_S, max_files: int = MAX_PEER_FILES
    ) -> int:
        """Delete files in ``peers.d`` not modified for ``max_age_s``, then the oldest
        beyond ``max_files`` (peers made up by a flood must not fill the disk); return
        how many were deleted."""
        path = self._home.path / PEERS_DIR
        cutoff = now_s - max_age_s
        removed = 0
        try:
            entries = list(os.scandir(path))
        except FileNotFoundError:
            return 0
        except OSError as e:
            log.warning("cannot list %s: %s", path, e)
            return 0
        kept: list[tuple[float, str]] = []
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                mtime = entry.stat().st_mtime
                if mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
                else:
                    kept.append((mtime, entry.path))
            except OSError as e:
                log.warning("cannot prune %s: %s", entry.path, e)
        if len(kept) > max_files:
            kept.sort()
            for _, file in kept[: len(kept) - max_files]:
                try:
                    os.unlink(file)
                    removed += 1
                except OSError as e:
                    log.warning("cannot prune %s: %s", file, e)
        return removed
