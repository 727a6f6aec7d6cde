"""The daemon without the native accelerator: as installed where no C compiler was.

``ztone._speedups`` is made unimportable in the daemon processes (a ``sitecustomize``
on their ``PYTHONPATH`` marks it missing), so ``ztone.crypto.backend`` falls back to
the pure-Python crypto. A root and two leaves on loopback must come online and
reach each other, and say which crypto they run. (The netns test
``test_pure_network`` moves real frames over a network with ``ZTONE_PURE=1``.)
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

from daemon_harness import (
    Daemon,
    daemons,
    free_port,
    make_home,
    make_planet,
    vector_identity,
    wait_until,
)

from ztone.cli import cli

SHIM = "import sys\nsys.modules['ztone._speedups'] = None  # as if it was never built\n"


def run_cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(args), stdout=out, stderr=err)
    return rc, out.getvalue() + err.getvalue()


def _online(home: Path) -> bool:
    rc, out = run_cli(f"-D{home}", "info")
    return rc == 0 and out.strip().endswith("ONLINE")


def test_daemons_run_without_the_native_accelerator(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)}
    root_secret, root_public = vector_identity(0)
    ports = [free_port(), free_port(), free_port()]
    planet = make_planet(tmp_path, root_public, ports[0])
    homes = [
        make_home(tmp_path / "root", planet, root_secret),
        make_home(tmp_path / "a", planet, vector_identity(2)[0]),
        make_home(tmp_path / "b", planet, vector_identity(3)[0]),
    ]
    with daemons() as started:
        for home, port in zip(homes, ports, strict=True):
            started.append(Daemon(home, port, env))
        for d in started:
            d.wait_for_file("zerotier-one.port")
        for home in homes:
            assert wait_until(functools.partial(_online, home), 60), home.name
        a_addr = (homes[1] / "identity.public").read_text()[:10]
        b_addr = (homes[2] / "identity.public").read_text()[:10]

        def root_sees_both() -> bool:
            rc, out = run_cli(f"-D{homes[0]}", "listpeers")
            rows = [ln.split() for ln in out.splitlines()[1:]]
            return rc == 0 and {a_addr, b_addr} <= {
                r[2] for r in rows if len(r) > 3 and r[3] != "-"
            }

        assert wait_until(root_sees_both, 30), run_cli(f"-D{homes[0]}", "listpeers")[1]
        codes = [d.stop() for d in started]
        assert codes == [0, 0, 0]
        for d in started:
            log = d.log.read_text()
            assert "(crypto: pure)" in log, log
            assert "Traceback" not in log, log
