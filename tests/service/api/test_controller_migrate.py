"""``ztone-cli controller migrate`` (issue 16): a controller.d tree and a SQLite store
move into PostgreSQL, and the controller API answers the same GETs identically before
and after; running it again changes nothing."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from test_controller_routes import (
    API,
    CONTROLLER_D,
    LAB_BODY,
    NWID_HEX,
    Backend,
    Client,
    ServerThread,
    make_router,
)

from ztone.cli.cli import main
from ztone.controller.store import ControllerStore, SqliteStore, open_controller_store
from ztone.controller.stores import open_store

PATHS = [p for p in API if p.startswith("/controller/")]


def _gets(store: ControllerStore, paths: list[str]) -> dict[str, Any]:
    with ServerThread(make_router(Backend(store))) as server:
        client = Client(server.port)
        return {p: client.call("GET", p) for p in paths}


def _migrate(source: Path, target: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["controller", "migrate", "--from", str(source), "--to", target], stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


def test_controller_d_into_postgres_answers_the_same_postgres(
    tmp_path: Path, pg_conninfo: str
) -> None:
    with contextlib.closing(open_controller_store(CONTROLLER_D, tmp_path / "c.db")) as sqlite:
        before = _gets(sqlite, PATHS)
    assert before[f"/controller/network/{NWID_HEX}"][0] == 200
    code, out, err = _migrate(CONTROLLER_D, pg_conninfo)
    assert (code, err) == (0, ""), out
    assert out == (
        "copied 1 networks and 2 members to PostgreSQL\n"
        "check OK: every record reads back identical\n"
    )
    with contextlib.closing(open_store(pg_conninfo)) as pg:
        assert _gets(pg, PATHS) == before
    # The reference's own answers, too (the lab's zerotier-one served this tree).
    for path in PATHS:
        assert json.dumps(before[path][1], sort_keys=True) == json.dumps(
            API[path][1], sort_keys=True
        )


def test_sqlite_into_postgres_twice_answers_the_same_postgres(
    tmp_path: Path, pg_conninfo: str
) -> None:
    db = tmp_path / "ztone-controller.db"
    with contextlib.closing(SqliteStore(db)) as sqlite:
        backend = Backend(sqlite)
        with ServerThread(make_router(backend)) as server:
            client = Client(server.port)
            backend.randoms.append(0x0123456789E468E2)
            assert client.call("POST", "/controller/network/1fad486caf______", LAB_BODY)[0] == 200
            for i, address in enumerate(("4b3bacddb4", "a49ecf6441", "0000000077")):
                body = {
                    "authorized": i != 1,
                    "name": f"m{i}",
                    "ipAssignments": [f"198.19.0.{i + 5}"],
                }
                path = f"/controller/network/{NWID_HEX}/member/{address}"
                assert client.call("POST", path, body)[0] == 200
                assert client.call("POST", path, {"name": f"again{i}"})[0] == 200  # revision 2
        paths = [
            "/controller/network",
            f"/controller/network/{NWID_HEX}",
            f"/controller/network/{NWID_HEX}/member",
            *(f"/controller/network/{NWID_HEX}/member/{a}" for a in ("4b3bacddb4", "0000000077")),
        ]
        before = _gets(sqlite, paths)
    for _ in range(2):  # idempotent: the second run copies the same and checks the same
        code, out, _err = _migrate(db, pg_conninfo)
        assert code == 0 and out.startswith("copied 1 networks and 3 members"), out
        with contextlib.closing(open_store(pg_conninfo)) as pg:
            assert _gets(pg, paths) == before
            member = pg.get_member(int(NWID_HEX, 16), 0x77)
            assert member is not None and member["revision"] == 2


def test_bad_arguments_and_sources_are_clear_errors(tmp_path: Path) -> None:
    code, _out, err = _migrate(tmp_path / "missing", str(tmp_path / "x.db"))
    assert code == 1 and "no such controller.d directory or SQLite database" in err
    assert not (tmp_path / "x.db").exists()  # nothing created for a bad source
    out, err_io = io.StringIO(), io.StringIO()
    assert main(["controller", "migrate", "--to", "x"], stdout=out, stderr=err_io) == 2
