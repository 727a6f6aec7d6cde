"""Fixtures for namespace tests: skip cleanly where namespaces cannot be made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .netns import Namespace, netns_unavailable


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    """A fresh network namespace, deleted afterwards (skips if namespaces are unavailable)."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    ns = Namespace()
    try:
        yield ns
    finally:
        ns.delete()
