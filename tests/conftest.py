"""Shared fixtures: the crypto backend parametrization and vector locations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ztone.node import backend

VECTORS = Path(__file__).resolve().parent / "vectors"

BACKENDS = ["pure", "native"] if backend.native_available() else ["pure"]


@pytest.fixture(params=BACKENDS)
def crypto_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test once per available crypto backend, restoring the default after."""
    previous = backend.active()
    name: str = request.param
    backend.use(name)
    try:
        yield name
    finally:
        backend.use(previous)
