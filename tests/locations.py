"""Where things are, for tests in any folder (tests/ is on ``sys.path`` under pytest)."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SRC = ROOT / "src"
VECTORS = TESTS / "vectors"
