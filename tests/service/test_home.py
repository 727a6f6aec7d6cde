"""The home directory and the file state store (PROTOCOL-NETWORK-SERVICE C.1.2, C.3.1)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path

import pytest

from ztone.node.actions import PutState, StateKind
from ztone.node.wire.identity import Identity
from ztone.service.home import FileStateStore, Home, HomeError
from ztone.util.atomic import atomic_write_file

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
HOME_A = VECTORS / "homes" / "a"
HOME_A_ADDRESS = "4b3bacddb4"
NWID = 0x1FAD486CAFE468E2


def _vector_identities() -> list[Identity]:
    data = json.loads((VECTORS / "identities.json").read_text())
    return [Identity.from_string(entry["secret"]) for entry in data["identities"]]


IDENTITIES = _vector_identities()


class FakeGenerate:
    """Hands out vector identities (generation is slow in pure Python) and counts calls."""

    def __init__(self, identity: Identity = IDENTITIES[0]) -> None:
        self.identity = identity
        self.calls = 0

    def __call__(self) -> Identity:
        self.calls += 1
        return self.identity


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def home_a(tmp_path: Path) -> Path:
    """A copy of the recorded zerotier-one home of node a, with modes as a real home has."""
    dst = tmp_path / "home-a"
    shutil.copytree(HOME_A, dst)
    for p in dst.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return dst


# --- Home ---------------------------------------------------------------------------------


def test_ensure_creates_private_home(tmp_path: Path) -> None:
    home = Home(tmp_path / "x" / "y" / "home")
    home.ensure()
    assert home.path.is_dir()
    assert mode_of(home.path) == 0o700
    home.ensure()  # idempotent


def test_ensure_keeps_existing_mode(tmp_path: Path) -> None:
    d = tmp_path / "home"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    Home(d).ensure()
    assert mode_of(d) == 0o755


def test_ensure_refuses_a_file(tmp_path: Path) -> None:
    f = tmp_path / "home"
    f.write_text("x")
    with pytest.raises(HomeError, match="home"):
        Home(f).ensure()


def test_identity_created_once_and_reused(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    gen = FakeGenerate()
    first = home.load_or_create_identity(gen)
    assert gen.calls == 1
    secret = home.path / "identity.secret"
    public = home.path / "identity.public"
    assert mode_of(secret) == 0o600
    assert secret.read_bytes() == gen.identity.to_string(True).encode()
    assert public.read_bytes() == gen.identity.to_string(False).encode()  # no newline

    other = FakeGenerate(IDENTITIES[1])
    second = Home(tmp_path / "home").load_or_create_identity(other)
    assert other.calls == 0
    assert second == first
    assert second.secret == first.secret
    assert leftovers(home.path) == []


def test_identity_mode_reapplied_and_public_repaired(tmp_path: Path) -> None:
    home = Home(tmp_path)
    ident = IDENTITIES[2]
    (tmp_path / "identity.secret").write_text(ident.to_string(True) + "\n")
    os.chmod(tmp_path / "identity.secret", 0o644)
    (tmp_path / "identity.public").write_text(IDENTITIES[3].to_string(False))
    got = home.load_or_create_identity(FakeGenerate())
    assert got == ident
    assert mode_of(tmp_path / "identity.secret") == 0o600
    # The secret is read trimmed and not rewritten; the wrong public file is fixed.
    assert (tmp_path / "identity.secret").read_text() == ident.to_string(True) + "\n"
    assert (tmp_path / "identity.public").read_text() == ident.to_string(False)


def test_missing_public_is_written(tmp_path: Path) -> None:
    (tmp_path / "identity.secret").write_text(IDENTITIES[4].to_string(True))
    Home(tmp_path).load_or_create_identity(FakeGenerate())
    assert (tmp_path / "identity.public").read_text() == IDENTITIES[4].to_string(False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage", "not a valid identity"),
        (IDENTITIES[0].to_string(False).encode(), "no private key"),
        (
            (IDENTITIES[0].to_string(False) + ":" + (IDENTITIES[1].secret or b"").hex()).encode(),
            "does not match",
        ),
        (b"\xff\xfe" * 10, "not ASCII"),
    ],
)
def test_broken_secret_is_an_error_and_never_overwritten(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "identity.secret"
    path.write_bytes(content)
    gen = FakeGenerate()
    with pytest.raises(HomeError, match=message) as info:
        Home(tmp_path).load_or_create_identity(gen)
    assert "identity.secret" in str(info.value)
    assert gen.calls == 0
    assert path.read_bytes() == content
    assert not (tmp_path / "identity.public").exists()


def test_empty_secret_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "identity.secret").write_bytes(b"\n")
    gen = FakeGenerate()
    assert Home(tmp_path).load_or_create_identity(gen) == gen.identity
    assert gen.calls == 1


def test_set_aside_identity(tmp_path: Path) -> None:
    home = Home(tmp_path)
    ident = home.load_or_create_identity(FakeGenerate())
    assert home.set_aside_identity()
    saved = tmp_path / "identity.secret.saved_after_collision"
    assert saved.read_text() == ident.to_string(True)
    assert mode_of(saved) == 0o600
    assert not (tmp_path / "identity.secret").exists()
    assert not (tmp_path / "identity.public").exists()
    assert not home.set_aside_identity()


def test_existing_zerotier_home_is_read_as_is(home_a: Path) -> None:
    before = {p: p.read_bytes() for p in home_a.rglob("*") if p.is_file()}
    home = Home(home_a)
    home.ensure()
    home.lock_down_secrets()
    gen = FakeGenerate()
    ident = home.load_or_create_identity(gen)
    assert gen.calls == 0
    assert str(ident.address) == HOME_A_ADDRESS
    assert home.auth_token() == "zmlsksjc8t0ez9w0wd4f32ln"
    assert home.metrics_token() == (HOME_A / "metricstoken.secret").read_text().strip()
    assert home.read_port() == 9993
    store = FileStateStore(home)
    assert store.network_ids() == [NWID]
    assert store.moon_ids() == []
    assert store.get(StateKind.PLANET, 0) == (HOME_A / "planet").read_bytes()
    conf = store.get(StateKind.NETWORK_CONFIG, NWID)
    assert conf == (HOME_A / "networks.d" / "1fad486cafe468e2.conf").read_bytes()
    secret = store.get(StateKind.IDENTITY_SECRET, 0)
    assert secret is not None
    assert Identity.from_string(secret.decode()) == ident
    # Nothing was rewritten; only the secrets' modes changed.
    after = {p: p.read_bytes() for p in home_a.rglob("*") if p.is_file()}
    assert after == before
    for name in ("identity.secret", "authtoken.secret", "metricstoken.secret"):
        assert mode_of(home_a / name) == 0o600
    assert mode_of(home_a / "identity.public") == 0o644


def test_tokens_created(tmp_path: Path) -> None:
    rng = iter(range(1000))
    home = Home(tmp_path, random_bytes=lambda n: bytes(next(rng) % 256 for _ in range(n)))
    token = home.auth_token()
    assert token == "abcdefghijklmnopqrstuvwx"  # byte i -> alphabet[i % 36]
    path = tmp_path / "authtoken.secret"
    assert path.read_bytes() == token.encode()  # no newline
    assert mode_of(path) == 0o600
    assert home.auth_token() == token
    metrics = home.metrics_token()
    assert metrics == "yz0123456789abcdefghijkl"
    assert mode_of(tmp_path / "metricstoken.secret") == 0o600


def test_token_random_format(tmp_path: Path) -> None:
    token = Home(tmp_path).auth_token()
    assert len(token) == 24
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyz0123456789")


def test_token_trimmed_and_locked_down(tmp_path: Path) -> None:
    path = tmp_path / "authtoken.secret"
    path.write_text("  mytoken \r\n")
    os.chmod(path, 0o644)
    assert Home(tmp_path).auth_token() == "mytoken"
    assert mode_of(path) == 0o600
    assert path.read_bytes() == b"  mytoken \r\n"


def test_blank_token_replaced(tmp_path: Path) -> None:
    (tmp_path / "authtoken.secret").write_text(" \n")
    token = Home(tmp_path).auth_token()
    assert len(token) == 24
    assert (tmp_path / "authtoken.secret").read_text() == token


def test_port_and_pid_files(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert home.read_port() is None
    home.write_port(9993)
    assert (tmp_path / "zerotier-one.port").read_bytes() == b"9993"
    assert home.read_port() == 9993
    with pytest.raises(ValueError):
        home.write_port(70000)
    home.write_pid(12345)
    assert (tmp_path / "zerotier-one.pid").read_bytes() == b"12345"
    home.remove_pid()
    assert not (tmp_path / "zerotier-one.pid").exists()
    home.remove_pid()  # already gone: no error
    assert leftovers(tmp_path) == []


def test_check_obsolete(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.check_obsolete()
    (tmp_path / "controller.db").write_bytes(b"")
    with pytest.raises(HomeError, match=r"controller\.db"):
        home.check_obsolete()


# --- atomic writes ------------------------------------------------------------------------


def test_atomic_write_no_temp_files_and_modes(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert home.atomic_write("sub/dir/file", b"one")
    assert (tmp_path / "sub" / "dir" / "file").read_bytes() == b"one"
    assert home.atomic_write("sub/dir/file", b"two")
    assert (tmp_path / "sub" / "dir" / "file").read_bytes() == b"two"
    assert home.atomic_write("secret", b"s", 0o600)
    assert mode_of(tmp_path / "secret") == 0o600
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "sub" / "dir").iterdir()) == ["file"]


def test_atomic_write_skips_identical_content(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"same")
    old = os.stat(path)
    assert not atomic_write_file(path, b"same")
    new = os.stat(path)
    assert (new.st_ino, new.st_mtime_ns) == (old.st_ino, old.st_mtime_ns)
    # Identical content but a mode to enforce: only chmod.
    assert not atomic_write_file(path, b"same", 0o600)
    assert mode_of(path) == 0o600
    assert os.stat(path).st_ino == old.st_ino


def test_atomic_write_keeps_existing_mode(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    assert atomic_write_file(path, b"new")
    assert mode_of(path) == 0o640


def test_atomic_write_follows_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"a")
    link = tmp_path / "link"
    link.symlink_to(real)
    atomic_write_file(link, b"b")
    assert link.is_symlink()
    assert real.read_bytes() == b"b"


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    target.mkdir()
    (target / "x").write_bytes(b"")
    with pytest.raises(OSError):
        atomic_write_file(target, b"data")
    assert leftovers(tmp_path) == []
    assert target.is_dir()


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", ""])
def test_home_paths_cannot_escape(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        Home(tmp_path).atomic_write(bad, b"x")


# --- FileStateStore -----------------------------------------------------------------------

STATE_CASES = [
    (StateKind.PLANET, 149604618, "planet"),
    (StateKind.MOON, 0x00000000DEADBEEF, "moons.d/00000000deadbeef.moon"),
    (StateKind.PEER, 0x89E92CEEE5, "peers.d/89e92ceee5.peer"),
    (StateKind.PEER, 0x1, "peers.d/0000000001.peer"),
    (StateKind.NETWORK_CONFIG, NWID, "networks.d/1fad486cafe468e2.conf"),
    (StateKind.IDENTITY_PUBLIC, 0, "identity.public"),
    (StateKind.IDENTITY_SECRET, 0, "identity.secret"),
]


@pytest.mark.parametrize(("kind", "object_id", "relative"), STATE_CASES)
def test_state_round_trip(tmp_path: Path, kind: StateKind, object_id: int, relative: str) -> None:
    store = FileStateStore(Home(tmp_path))
    assert FileStateStore.relative_path(kind, object_id) == relative
    assert store.get(kind, object_id) is None
    data = (
        b"abc:0:123"
        if kind in (StateKind.IDENTITY_PUBLIC, StateKind.IDENTITY_SECRET)
        else bytes(range(256))
    )
    store.put(kind, object_id, data)
    assert (tmp_path / relative).read_bytes() == data
    assert store.get(kind, object_id) == data
    if kind is StateKind.IDENTITY_SECRET:
        assert mode_of(tmp_path / relative) == 0o600
    store.apply(PutState(kind, object_id, b"second"))
    assert store.get(kind, object_id) == b"second"
    store.put(kind, object_id, None)
    assert not (tmp_path / relative).exists()
    assert store.get(kind, object_id) is None
    store.put(kind, object_id, None)  # deleting a missing object is fine
    assert leftovers(tmp_path) == []


def test_network_config_joined_marker(tmp_path: Path) -> None:
    store = FileStateStore(Home(tmp_path))
    store.put(StateKind.NETWORK_CONFIG, NWID, b"\n")
    assert store.get(StateKind.NETWORK_CONFIG, NWID) == b"\n"
    assert store.network_ids() == [NWID]


def test_garbage_files_read_as_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FileStateStore(Home(tmp_path))
    (tmp_path / "planet").mkdir()  # a directory where a file belongs
    (tmp_path / "identity.secret").write_bytes(b"\x00\xffbinary")
    (tmp_path / "identity.public").write_bytes("idé".encode())
    (tmp_path / "peers.d").mkdir()
    (tmp_path / "peers.d" / "0000000001.peer").write_bytes(b"\x00" * ((1 << 20) + 1))
    with caplog.at_level(logging.WARNING, logger="ztone.service.home"):
        assert store.get(StateKind.PLANET, 0) is None
        assert store.get(StateKind.IDENTITY_SECRET, 0) is None
        assert store.get(StateKind.IDENTITY_PUBLIC, 0) is None
        assert store.get(StateKind.PEER, 1) is None
    assert len(caplog.records) == 4


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_reads_as_none(tmp_path: Path) -> None:
    store = FileStateStore(Home(tmp_path))
    (tmp_path / "planet").write_bytes(b"x")
    os.chmod(tmp_path / "planet", 0)
    assert store.get(StateKind.PLANET, 0) is None


def test_put_failure_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "moons.d").write_bytes(b"a file where a directory belongs")
    store = FileStateStore(Home(tmp_path))
    moon = tmp_path / "moons.d" / "0000000000000001.moon"
    with caplog.at_level(logging.ERROR, logger="ztone.service.home"):
        store.put(StateKind.MOON, 1, b"moon")
    [record] = caplog.records
    assert (record.name, record.levelno) == ("ztone.service.home", logging.ERROR)
    assert record.getMessage().startswith(f"cannot write {moon}: [Errno ")
    assert (tmp_path / "moons.d").read_bytes() == b"a file where a directory belongs"
    # a failed delete is reported the same way (here the name is a directory)
    (tmp_path / "moons.d").unlink()
    moon.mkdir(parents=True)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ztone.service.home"):
        store.put(StateKind.MOON, 1, None)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith(f"cannot delete {moon}: ")
    assert moon.is_dir()


def test_ids_only_exact_names(tmp_path: Path) -> None:
    nets = tmp_path / "networks.d"
    nets.mkdir()
    for name in (
        "1fad486cafe468e2.conf",
        "8056C2E21C000001.conf",
        "1fad486cafe468e2.local.conf",
        "abcdef.conf",
        "1fad486cafe468e2.conf.bak",
        "x1fad486cafe468e2.conf",
        "zzzzzzzzzzzzzzzz.conf",
        ".1fad486cafe468e3.conf.1.ab.tmp",
    ):
        (nets / name).write_bytes(b"\n")
    moons = tmp_path / "moons.d"
    moons.mkdir()
    for name in ("000000000badf00d.moon", "badf00d.moon", "000000000badf00d.moon.old"):
        (moons / name).write_bytes(b"")
    store = FileStateStore(Home(tmp_path))
    assert store.network_ids() == [0x1FAD486CAFE468E2, 0x8056C2E21C000001]
    assert store.moon_ids() == [0x0BADF00D]


def test_ids_without_directories(tmp_path: Path) -> None:
    store = FileStateStore(Home(tmp_path))
    assert store.network_ids() == []
    assert store.moon_ids() == []
    assert store.prune_peers(0.0) == 0


def test_prune_peers(tmp_path: Path) -> None:
    store = FileStateStore(Home(tmp_path))
    store.put(StateKind.PEER, 1, b"old")
    store.put(StateKind.PEER, 2, b"new")
    now = 2_000_000_000.0
    os.utime(tmp_path / "peers.d" / "0000000001.peer", (now - 31 * 86400, now - 31 * 86400))
    os.utime(tmp_path / "peers.d" / "0000000002.peer", (now - 29 * 86400, now - 29 * 86400))
    (tmp_path / "peers.d" / "subdir").mkdir()
    assert store.prune_peers(now) == 1
    assert store.get(StateKind.PEER, 1) is None
    assert store.get(StateKind.PEER, 2) == b"new"
    assert store.prune_peers(now, max_age_s=86400) == 1
    assert (tmp_path / "peers.d" / "subdir").is_dir()
