"""The OmniOS dependency set: what ``pip install ztone`` pulls on OmniOS r151054 / Python 3.13.

README.md ("Install on OmniOS r151054") installs cffi and cryptography from IPS and
lets pip add the rest. This test proves that set from PyPI's real metadata:

1. the project's requirements are evaluated for ``sys_platform == "sunos5"``,
   Python 3.13 (pyroute2 drops out, cffi comes in, numpy is not there);
2. pip resolves them for CPython 3.13 (``--dry-run --report``); the tree is walked
   again with the illumos markers;
3. every distribution in it is pure Python (a ``py3-none-any`` wheel) or one of
   :data:`ALLOWED_COMPILED`, each with the toolchain the README names for it. Nothing
   needs C++ or Fortran (numpy, the only such dependency, is the optional ``speedups``
   extra) or Rust (the controller's pydantic needed it until ztone moved to
   msgspec, which is C);
4. the project is installed into a fresh venv without extras (so without numpy) and
   the daemon from that venv starts on loopback with a private planet and answers
   ``ztone-cli info``.

Needs PyPI (skipped with the reason when it cannot be reached). Slow: about a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from locations import ROOT, VECTORS
from ztone.cli import idtool

OMNIOS_MARKERS = {
    "os_name": "posix",
    "sys_platform": "sunos5",
    "platform_system": "SunOS",
    "platform_release": "5.11",
    "platform_machine": "i86pc",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
    "python_version": "3.13",
    "python_full_version": "3.13.9",
    "extra": "",
}
"""Environment markers of OmniOS r151054's runtime/python-313 (3.13.9 on amd64)."""

ALLOWED_COMPILED = {
    "cffi": "library/python-3/cffi-313",
    "cryptography": "library/python-3/cryptography-313",
    "lz4": "developer/build-essential",
    "msgspec": "developer/build-essential",
}
"""Compiled distributions allowed on the OmniOS path -> the IPS package README.md names
(cffi, cryptography: shipped by OmniOS; lz4: C only, its own bundled liblz4, built by
gcc14; msgspec: C only, gcc14). Nothing needs Rust."""

NEEDS_CXX_OR_FORTRAN = {"numpy", "scipy", "pandas"}

PIP_TIMEOUT = 900


def _pypi_reachable() -> str | None:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10) as r:
            r.read(64)
    except OSError as e:
        return f"PyPI unreachable: {e}"
    return None


def omnios_requirements() -> list[str]:
    """The project's runtime requirements that apply on OmniOS, markers removed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = []
    for text in project["dependencies"]:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(OMNIOS_MARKERS):
            req.marker = None
            out.append(str(req))
    return out


def resolve(requirements: list[str], work: Path) -> dict[str, dict[str, Any]]:
    """pip's resolution for CPython 3.13 (wheels' metadata): name -> report item."""
    report = work / "report.json"
    argv = [
        sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
        "--dry-run", "--ignore-installed", "--target", str(work / "unused"),
        "--report", str(report), "--python-version", "3.13", "--implementation", "cp",
        "--abi", "cp313", "--platform", "manylinux_2_28_x86_64",
        "--platform", "manylinux2014_x86_64", "--only-binary=:all:", *requirements,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i for i in items}


def omnios_closure(roots: list[str], index: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every distribution the roots need on OmniOS -> the wheel pip picked for it."""
    found: dict[str, str] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(OMNIOS_MARKERS):
            continue
        name = canonicalize_name(req.name)
        if name in found:
            continue
        assert name in index, f"{name} is needed on OmniOS but pip did not resolve it"
        item = index[name]
        found[name] = item["download_info"]["url"].rsplit("/", 1)[-1]
        todo += [Requirement(r) for r in item["metadata"].get("requires_dist") or []]
    return found


@pytest.fixture(scope="module")
def pypi() -> None:
    reason = _pypi_reachable()
    if reason:
        pytest.skip(reason)


@pytest.mark.slow
def test_omnios_dependency_set(pypi: None, tmp_path: Path) -> None:
    roots = omnios_requirements()
    names = {canonicalize_name(Requirement(r).name) for r in roots}
    assert "cffi" in names and "pyroute2" not in names and "numpy" not in names, roots
    closure = omnios_closure(roots, resolve(roots, tmp_path))
    compiled = {n: wheel for n, wheel in closure.items() if not wheel.endswith("-none-any.whl")}
    assert not NEEDS_CXX_OR_FORTRAN & set(closure), closure
    assert set(compiled) <= set(ALLOWED_COMPILED), f"compiled, not allowed: {compiled}"
    readme = (ROOT / "README.md").read_text()
    for name in compiled:
        assert ALLOWED_COMPILED[name] in readme, f"README does not name {ALLOWED_COMPILED[name]}"
    # Nothing is built with Rust any more: the README no longer sends users to the
    # extra.omnios publisher's toolchain.
    assert "ooce/developer/rust" not in readme and "cargo" not in readme


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _copy_project(dest: Path) -> Path:
    """The project's sources without build products (pip builds in the tree it gets)."""
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "src",
        dest / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"),
    )
    return dest


@pytest.mark.slow
def test_daemon_starts_from_a_venv_without_extras(pypi: None, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    project = tmp_path / "project"
    project.mkdir()
    _copy_project(project)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    proc = subprocess.run([*pip, "install", "--quiet", str(project)], capture_output=True,
                          text=True, timeout=PIP_TIMEOUT, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run([*pip, "list", "--format", "json"], capture_output=True, text=True,
                            timeout=120, check=True).stdout  # fmt: skip
    installed = {canonicalize_name(d["name"]) for d in json.loads(listed)}
    assert "ztone" in installed and "numpy" not in installed, installed

    home = tmp_path / "home"
    home.mkdir()
    entry = json.loads((VECTORS / "identities.json").read_text())["identities"][0]
    (home / "identity.secret").write_text(entry["secret"])
    assert idtool.main(["genplanet", "--out", str(home / "planet"), "--id", "0x5a5b",
                        f"{entry['public']}@127.0.0.1/9999"]) == 0  # fmt: skip
    settings = {"bind": ["127.0.0.1"], "allowSecondaryPort": False}
    (home / "local.conf").write_text(json.dumps({"settings": settings}))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 (closed in finally)
    daemon = subprocess.Popen(
        [str(venv / "bin" / "ztone"), "-U", f"-p{port}", str(home)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        cli = [str(venv / "bin" / "ztone-cli"), f"-p{port}", f"-D{home}", "info"]
        said = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and daemon.poll() is None:
            out = subprocess.run(cli, capture_output=True, text=True, timeout=30, env=env,
                                 check=False)  # fmt: skip
            said = out.stdout + out.stderr
            if out.returncode == 0 and said.startswith("200 info "):
                break
            time.sleep(0.5)
        logged = (tmp_path / "daemon.log").read_text(errors="replace")
        assert said.startswith(f"200 info {entry['public'][:10]}"), said + logged
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
