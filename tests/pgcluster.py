"""A throwaway PostgreSQL cluster for tests (Debian's server binaries).

``PgCluster.start(dir)`` runs ``initdb`` and ``pg_ctl start`` as an unprivileged user
(PostgreSQL refuses root): the cluster listens on a unix socket in ``dir`` only (no
TCP: nothing leaves the machine, and processes in other network namespaces reach it
through the file system). :meth:`PgCluster.new_database` makes a fresh database per
test; :meth:`PgCluster.stop` stops the server and removes the cluster. Tests call
:func:`why_no_postgres` and skip with its reason when the binaries are missing.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PG_USER = "postgres"
_counter = itertools.count(1)


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def why_no_postgres() -> str | None:
    """None if a cluster can be started here, else the reason."""
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if pg_bindir() is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and there is no '{PG_USER}' user to run the server"
    return None


@dataclass
class PgCluster:
    root: Path
    bindir: Path
    port: int
    databases: list[str] = field(default_factory=list)

    @property
    def socket_dir(self) -> Path:
        return self.root

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid", PG_USER, "--regid", PG_USER, "--init-groups", *cmd]
        done = subprocess.run(cmd, capture_output=True, timeout=120, cwd="/", check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")

    @classmethod
    def start(cls, parent: Path | None = None) -> PgCluster:
        bindir = pg_bindir()
        assert bindir is not None
        root = Path(tempfile.mkdtemp(prefix="ztone-pg-", dir=parent))
        os.chmod(root, 0o755)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        # Unix socket port numbers only name the socket file; keep them distinct anyway.
        port = 20000 + (os.getpid() * 7 + next(_counter)) % 20000
        cluster = cls(root, bindir, port)
        data = root / "data"
        try:
            cluster._run("initdb", "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8")
            opts = f"-c listen_addresses='' -c unix_socket_directories={root} -p {port} -c fsync=on"
            cluster._run(
                "pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o", opts, "start"
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cluster

    def new_database(self) -> str:
        import psycopg  # noqa: PLC0415

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.conninfo(name)

    def drop_database(self, conninfo: str) -> None:
        import psycopg  # noqa: PLC0415

        name = conninfo.rsplit("/", maxsplit=1)[-1].split("?", maxsplit=1)[0]
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.conninfo(), autocommit=True) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        except RuntimeError:
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
