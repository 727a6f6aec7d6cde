"""What the scenario scripts share: a failed check, and running a scenario as a
script (its report as JSON on stdout, exit 0; or ``SCENARIO FAILED: <why>``, exit 1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any


class Failed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


def run_scenario(scenario: Callable[[], Coroutine[Any, Any, dict[str, Any]]],
                 timeout: float) -> int:  # fmt: skip
    try:
        report = asyncio.run(asyncio.wait_for(scenario(), timeout=timeout))
    except Failed as e:
        print(f"SCENARIO FAILED: {e}")
        return 1
    print(json.dumps(report, sort_keys=True))
    return 0
