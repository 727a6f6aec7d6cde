"""Shared fixtures: the crypto backend parametrization and vector locations."""

from __future__ import annotations

from pathlib import Path

import pytest

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
