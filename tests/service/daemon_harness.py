"""Real ztone daemons as child processes on loopback, for tests.

Every process is started by the harness and ended by pid; every wait is bounded.
Daemons bind 127.0.0.1 only and accept loopback paths (``allowLoopbackPaths``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ztone.cli import idtool

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (checked, then released)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


def vector_identity(i: int) -> tuple[str, str]:
    entry = json.loads((VECTORS / "identities.json").read_text())["identities"][i]
    return entry["secret"], entry["public"]


def loopback_conf(extra: dict[str, object] | None = None) -> str:
    settings: dict[str, object] = {
        "allowSecondaryPort": False,
        "bind": ["127.0.0.1"],
        "allowLoopbackPaths": True,
    }
    settings.update(extra or {})
    return json.dumps({"settings": settings})


def make_home(path: Path, planet: bytes | None, identity_secret: str | None = None,
              local_conf: str | None = None) -> Path:  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    if planet is not None:
        (path / "planet").write_bytes(planet)
    if identity_secret is not None:
        (path / "identity.secret").write_text(identity_secret)
    (path / "local.conf").write_text(local_conf if local_conf is not None else loopback_conf())
    return path


def make_planet(workdir: Path, root_public: str, root_port: int) -> bytes:
    """A private planet with one root at 127.0.0.1, made by ztone-idtool genplanet."""
    out = workdir / "planet"
    rc = idtool.main(
        ["genplanet", "--out", str(out), "--id", "0x5a5a", f"{root_public}@127.0.0.1/{root_port}"]
    )
    assert rc == 0
    return out.read_bytes()


class Daemon:
    def __init__(self, home: Path, port: int, env: dict[str, str] | None = None,
                 prefix: list[str] | None = None) -> None:  # fmt: skip
        self.home = home
        self.port = port
        self.log = home.parent / f"{home.name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("ZTONE_LOG_LEVEL", "INFO")
        self._log_file = open(self.log, "wb")  # noqa: SIM115 (closed in stop())
        command = [sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{port}", str(home)]
        self.proc = subprocess.Popen(
            [*(prefix or []), *command],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
        )

    def token(self) -> str:
        return (self.home / "authtoken.secret").read_text().strip()

    def wait_for_file(self, name: str, timeout: float = 30.0) -> None:
        wait_until(lambda: (self.home / name).exists() or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, self.log.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()
        return int(self.proc.returncode)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@contextmanager
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.stop()
