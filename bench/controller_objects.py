"""Controller record work per API call: ``python bench/controller_objects.py``.

Prints the median time of the pure functions behind the controller API's POSTs
(B.7, B.8) on the lab1 network and member (tests/vectors/lab1_api): a network POST
with the lab body, a network POST with 1000 routes, a member authorization, a new
member's defaults. Numbers only; run it against two trees (``PYTHONPATH=<src>``) to
compare them.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ztone.controller.objects import apply_member_post, apply_network_post, init_member

API = json.loads(
    (Path(__file__).resolve().parents[1] / "tests/vectors/lab1_api/ctrl/api.json").read_text()
)
NETWORK = API["/controller/network/1fad486cafe468e2"][1]
MEMBER = API["/controller/network/1fad486cafe468e2/member/4b3bacddb4"][1]
NOW = 1_795_310_320_081
LAB_BODY = {
    "name": "lab",
    "v4AssignMode": {"zt": True},
    "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
    "routes": [{"target": "198.19.0.0/24", "via": None}],
}
ROUTES_BODY = {"routes": [{"target": f"10.{i // 256}.{i % 256}.0/24"} for i in range(1000)]}


def median_us(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    authorize = {"authorized": True}
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("network POST, lab body", lambda: apply_network_post(NETWORK, LAB_BODY, NOW), 2000),
        ("network POST, 1000 routes", lambda: apply_network_post(NETWORK, ROUTES_BODY, NOW), 50),
        ("member POST, authorize", lambda: apply_member_post(MEMBER, authorize, NOW), 2000),
        ("new member defaults", lambda: init_member(0x1FAD486CAFE468E2, 0x4B3BACDDB4, NOW), 2000),
    ]
    for name, fn, runs in cases:
        fn()  # warm up
        print(f"{name:28s} median {median_us(fn, runs):9.1f} us (n={runs})")


if __name__ == "__main__":
    main()
