"""How long reading ``local.conf`` takes: ``python3 bench/local_conf.py [--number N]``.

Times :func:`ztone.service.config.parse_local_conf` (strict JSON, the schema check,
the unknown-key warnings) on three texts: the recorded home's three settings, a
typical hand-written file (ports, bind, management networks, one physical and one
virtual entry, the no-root keys) and the same file with five bad values (the error
path, every problem named). Prints the best of five runs per text, in microseconds
per parse; asserts nothing. ``PYTHONPATH`` picks the tree (before/after comparisons).
"""

from __future__ import annotations

import argparse
import json
import timeit
from functools import partial
from pathlib import Path

from ztone.service.config import ConfigError, parse_local_conf

ROOT = Path(__file__).resolve().parents[1]
RECORDED = (ROOT / "tests" / "vectors" / "homes" / "a" / "local.conf").read_bytes()

TYPICAL = {
    "physical": {
        "198.18.0.0/24": {"trustedPathId": 12345, "mtu": 1400},
        "0.0.0.0/0": {"blacklist": True},
    },
    "virtual": {"89e92ceee5": {"try": ["198.18.0.5/9993"], "blacklist": ["198.19.0.0/16"]}},
    "settings": {
        "primaryPort": 9994,
        "allowSecondaryPort": False,
        "portMappingEnabled": False,
        "allowTcpFallbackRelay": False,
        "bind": ["198.18.0.5", "::1"],
        "interfacePrefixBlacklist": ["docker", "veth"],
        "allowManagementFrom": ["198.18.0.0/15"],
        "softwareUpdate": "disable",
        "portBackend": "auto",
        "socks5": {"enabled": True, "port": 1080},
    },
}

BAD = json.loads(json.dumps(TYPICAL))
BAD["settings"].update(
    {"primaryPort": "x", "bind": ["1.2.3"], "concurrency": -1, "forceTcpRelay": 1}
)
BAD["physical"]["198.18.0.0/24"]["mtu"] = "1400"


def parse_or_refuse(text: bytes) -> None:
    try:
        parse_local_conf(text)
    except ConfigError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="parses per run")
    args = parser.parse_args()
    texts = {
        "recorded home (3 settings)": RECORDED,
        "typical file": json.dumps(TYPICAL).encode(),
        "typical file, 5 bad values": json.dumps(BAD).encode(),
    }
    for name, text in texts.items():
        runs = timeit.repeat(partial(parse_or_refuse, text), number=args.number, repeat=5)
        print(f"{name:30s} {min(runs) / args.number * 1e6:8.1f} us per parse")


if __name__ == "__main__":
    main()
