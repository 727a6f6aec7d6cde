"""Shared fixtures: the crypto backend parametrization and vector locations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgcluster import PgCluster, why_no_postgres
from ztone.crypto.backend import Backend, named

VECTORS = Path(__file__).resolve().parent / "vectors"


def _native_importable() -> bool:
    """What ``backend.native_available()`` answers, found the way the backend finds it
    (importing the extension) so that loading this file runs no ztone function: under
    mutation testing (bench/mutation.py) every ztone function can be made to fail."""
    try:
        from ztone import _speedups  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


BACKENDS = ["pure", "native"] if _native_importable() else ["pure"]


@pytest.fixture(params=BACKENDS)
def crypto_backend(request: pytest.FixtureRequest) -> Backend:
    """Run a test once per available crypto backend; the test passes it on."""
    return named(request.param)


# --- PostgreSQL (issue 16): one throwaway cluster per session, a database per test ---


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server of our own, stopped and removed at the end of the session
    (under /tmp: pytest's own temporary folders are closed to the server's user)."""
    reason = why_no_postgres()
    if reason is not None:
        pytest.skip(reason)
    cluster = PgCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_conninfo(pg_cluster: PgCluster) -> Iterator[str]:
    """The connection string of a fresh, empty database (dropped afterwards)."""
    conninfo = pg_cluster.new_database()
    try:
        yield conninfo
    finally:
        pg_cluster.drop_database(conninfo)
