"""Fixtures for the OmniOS simulation.

``sim`` prepares the shim libdlpi and the command wrappers once per session (skips the
tests that need them when this machine cannot: not Linux, not root, no gcc or ip).
``netns`` makes a fresh namespace ``ztill-<pid>-<n>`` and always deletes it.
``sim_daemon`` is the building block for end-to-end tests: it returns the exact
command (``simenv`` style) that starts a ztone daemon under the simulation inside a
namespace, the same command README.md documents.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .simenv import (
    SimEnv,
    SimUnavailable,
    build_shim,
    create_netns,
    delete_netns,
    prepare,
)

_counter = itertools.count()


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimEnv:
    try:
        return prepare(tmp_path_factory.mktemp("illumos-sim"))
    except SimUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the shim libdlpi.so.1 (needs gcc, not root)."""
    if sys.platform != "linux" or shutil.which("gcc") is None:
        pytest.skip("the shim libdlpi needs Linux and gcc")
    try:
        return build_shim(tmp_path_factory.mktemp("shim"))
    except SimUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def netns(sim: SimEnv) -> Iterator[str]:
    name = f"ztill-{os.getpid()}-{next(_counter)}"
    create_netns(name)
    try:
        yield name
    finally:
        delete_netns(name)


def run_in(
    sim: SimEnv, netns: str, argv: list[str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``netns`` under the simulation environment (bounded)."""
    return subprocess.run(
        sim.command(netns, argv), capture_output=True, text=True, timeout=timeout, check=False
    )


DaemonCommand = Callable[[Path, int], list[str]]


def daemon_command(sim: SimEnv, netns: str, home: Path, port: int) -> list[str]:
    """argv starting ``ztone -U -p<port> <home>`` in ``netns`` under the simulation.

    Any namespace will do (``sim_daemon`` uses a loopback-only one; the end-to-end
    test one on a bridge with other ztone nodes).
    """
    return sim.command(
        netns, [sys.executable, "-m", "ztone.cli.daemon", "-U", f"-p{port}", str(home)]
    )


@pytest.fixture
def sim_daemon(sim: SimEnv, netns: str) -> DaemonCommand:
    """``make(home, port)`` -> argv starting ``ztone -U -p<port> <home>`` in ``netns``.

    The process runs with ZTONE_TAP_BACKEND=illumos, ZTONE_ILLUMOS_SBIN and
    ZTONE_LIBDLPI pointing at the simulation. The caller starts it (Popen), ends it
    by pid and waits; the namespace (and every link in it) goes with the fixture.
    """

    def make(home: Path, port: int) -> list[str]:
        return daemon_command(sim, netns, home, port)

    return make
