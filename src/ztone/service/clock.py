"""The daemon's wall clock as the core takes it: milliseconds since the epoch."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["now_ms"]
