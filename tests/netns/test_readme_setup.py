"""Acceptance: README.md's set-up and start commands, pasted as written, on a fresh copy.

The first set-up command (``./install.sh``) runs in a fresh copy of this checkout with
Debian's own, externally managed ``/usr/bin/python3`` first on PATH (PEP 668: only a
virtual environment works there); then the README's "Start" block runs as one shell
script: ``. .venv/bin/activate``, ``ztone -U -d``, ``ztone-cli info``,
``ztone-cli listnetworks``. (The second set-up command, the test run, is what runs
this test: ``.ci/run`` runs both.)

Network safety: a private planet whose only root is on 127.0.0.1 is placed in the home
first, so the daemon never looks for ZeroTier's public roots. As root, the commands
also run inside a network namespace made here, which has no route out, as the unprivileged
user ``nobody`` (the README's "without root" case; the home then is nobody's
``~/.local/share/ztone`` under a temporary HOME). Without root they run as this user
with a free loopback port set in ``local.conf``. The daemon is ended by its pid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ztone.cli import idtool

from .netns import Namespace, netns_unavailable

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
NOBODY = 65534
DEBIAN_PYTHON = "/usr/bin/python3"


def readme_commands(heading: str) -> list[str]:
    """The shell commands of the first ``sh`` block under ``heading``, comments cut."""
    text = README.read_text()
    at = text.index(f"\n{heading}\n")
    block = re.search(r"```sh\n(.*?)```", text[at:], re.S)
    assert block is not None, heading
    commands = []
    for line in block.group(1).splitlines():
        command = re.sub(r"\s+#\s.*$", "", line).strip()
        if command:
            commands.append(command)
    return commands


def fresh_copy(destination: Path) -> None:
    """Every file git would check out (tracked, and new ones not ignored), nothing else."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "ZTONE_HOME", "ZEROTIER_HOME", "XDG_DATA_HOME",
                     "PYTHONHOME")
    }  # fmt: skip
    env["PATH"] = "/usr/bin:" + env.get("PATH", "/bin")
    env["HOME"] = str(home)
    return env


def stop_daemon(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def test_readme_commands_work_when_pasted() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout to copy from")
    if not os.path.exists(DEBIAN_PYTHON):
        pytest.skip(f"{DEBIAN_PYTHON} (the system's Python) is missing")
    probe = "import sys; print(sys.version_info >= (3, 11))"
    version = subprocess.run([DEBIAN_PYTHON, "-c", probe], check=False, capture_output=True,
                             text=True, timeout=30).stdout.strip()  # fmt: skip
    if version != "True":
        pytest.skip(f"{DEBIAN_PYTHON} is older than 3.11, which ztone needs")
    in_namespace = netns_unavailable() is None and shutil.which("setpriv") is not None

    base = Path(tempfile.mkdtemp(prefix="ztone-readme-"))
    base.chmod(0o755)  # nobody must reach the copy and its virtual environment
    namespace: Namespace | None = None
    user = base / "user"
    home = user / ".local" / "share" / "ztone"
    try:
        checkout = base / "ztone"
        fresh_copy(checkout)
        env = clean_env(user)

        (install,) = [c for c in readme_commands("## Set-up") if "install" in c]
        done = subprocess.run(["sh", "-c", install], check=False, cwd=checkout, env=env,
                              capture_output=True, text=True, timeout=1200)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "ztone -U -d" in done.stdout and "ztone -d" in done.stdout  # says how to start
        venv_python = subprocess.run(
            [str(checkout / ".venv/bin/python"), "-c", "import sys; print(sys.base_prefix)"],
            check=False, capture_output=True, text=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        assert venv_python == "/usr", venv_python  # built on the system's Python

        # A private planet (its root on loopback, not running) in the home first.
        home.mkdir(parents=True)
        secret = base / "root.secret"
        public = base / "root.public"
        assert idtool.main(["generate", str(secret), str(public)]) == 0
        root = public.read_text().strip()
        assert idtool.main(["genplanet", "--out", str(base / "planet"),
                            f"{root}@127.0.0.1/9"]) == 0  # fmt: skip
        shutil.copy(base / "planet", home / "planet")

        start = readme_commands("### Start")
        assert start[0] == ". .venv/bin/activate" and "ztone -U -d" in start
        script = "set -e\n" + "\n".join(start) + "\n"
        if in_namespace:
            for path in [user, *user.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
            namespace = Namespace()
            routes = namespace.ip_json("route", "show")
            assert routes == [], routes  # no route out
            command = ["ip", "netns", "exec", namespace.name, "setpriv", f"--reuid={NOBODY}",
                       f"--regid={NOBODY}", "--clear-groups", "--", "sh", "-c", script]  # fmt: skip
        else:
            import socket  # noqa: PLC0415

            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            (home / "local.conf").write_text(
                json.dumps(
                    {
                        "settings": {
                            "primaryPort": port,
                            "allowSecondaryPort": False,
                            "bind": ["127.0.0.1"],
                        }
                    }
                )
            )
            command = ["sh", "-c", script]
        ran = subprocess.run(command, check=False, cwd=checkout, env=env, capture_output=True,
                             text=True, timeout=180)  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        lines = ran.stdout.splitlines()
        assert re.fullmatch(r"200 info [0-9a-f]{10} 1\.14\.1 (ONLINE|OFFLINE)", lines[0]), lines
        assert lines[1] == (
            "200 listnetworks <nwid> <name> <mac> <status> <type> <dev> <ZT assigned ips>"
        )
        address = lines[0].split()[2]
        assert (home / "identity.public").read_text().startswith(address)
    finally:
        stop_daemon(home / "zerotier-one.pid")
        if namespace is not None:
            namespace.delete()
        shutil.rmtree(base, ignore_errors=True)
