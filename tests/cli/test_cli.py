"""ztone-cli against a tiny HTTP server replaying the lab1 nodes' recorded API answers.

Expected outputs are the reference zerotier-cli's recorded stdout
(tests/vectors/lab1_api/<node>/cli.json), compared byte for byte.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from locations import VECTORS
from ztone.cli import cli
from ztone.util.jsontext import json_string

LAB = VECTORS / "lab1_api"
NODES = ("root", "ctrl", "a", "b")
NWID = "1fad486cafe468e2"
TOKEN = "abcdefghijklmnopqrstuvwx"
CONNECT_ERROR = (
    "Error connecting to the ZeroTier service: {}\n\nPlease check that the service is running "
    "and that TCP port 9993 can be contacted via 127.0.0.1.\n"
)


def api(node: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((LAB / node / "api.json").read_text())
    return data


def expected(node: str, command: str) -> str:
    data: dict[str, str] = json.loads((LAB / node / "cli.json").read_text())
    return data[command]


def compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    token: str | None


@dataclass
class FakeDaemon:
    """What the test server answers; switch ``node`` between calls."""

    node: str = "root"
    garbage: bool = False
    requests: list[Seen] = field(default_factory=list)

    def answer(self, method: str, path: str) -> tuple[int, str]:
        if self.garbage:
            return 200, "this is not json"
        data = api(self.node)
        if method == "GET" and path in data:
            status, body = data[path]
            return status, compact(body)
        if path.startswith("/network/") and method in ("POST", "DELETE"):
            status, body = data.get(path, (200, {}))
            return 200, compact({"result": True} if method == "DELETE" else body)
        if path.startswith("/moon/") and method == "POST":
            return 200, compact({"id": "0000001234567890", "waiting": True})
        if path.startswith("/moon/") and method == "DELETE":
            return 200, compact({"result": True})
        return 404, ""


def make_handler(daemon: FakeDaemon) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            token = self.headers.get("X-ZT1-Auth")
            daemon.requests.append(Seen(self.command, self.path, body, token))
            if token != TOKEN:
                status, text = 401, "{}"
            else:
                status, text = daemon.answer(self.command, self.path)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class Result:
    code: int
    out: str
    err: str


class Runner:
    def __init__(self, daemon: FakeDaemon, port: int) -> None:
        self.daemon = daemon
        self.port = port

    def __call__(self, node: str, *args: str, now: int | None = None, auth: bool = True) -> Result:
        self.daemon.node = node
        out, err = io.StringIO(), io.StringIO()
        prefix = [f"-p{self.port}", f"-T{TOKEN}"] if auth else []
        code = cli.main(
            [*prefix, *args],
            now_ms=(lambda: now) if now is not None else None,
            stdout=out,
            stderr=err,
        )
        return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


@pytest.fixture
def run(daemon: FakeDaemon) -> Iterator[Runner]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(daemon))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Runner(daemon, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def now_for(node: str, command: str) -> int:
    """The clock at which the reference printed ``command``'s peer ages.

    The recorded /peer snapshot was taken a little before the CLI ran, so the ages
    printed are larger than "api clock - lastSend". One instant explains every line
    of a command (lastSend/lastReceive of each peer plus the printed age always give
    the same time), so it is derived from the first line that shows an age.
    """
    peers = {p["address"]: p for p in api(node)["/peer"][1]}
    for line in expected(node, command).splitlines()[2:]:
        words = line.split()
        if command == "listpeers" and words[3] != "-":
            send_age = int(words[3].split(";")[1])
            return int(peers[words[2]]["paths"][0]["lastSend"]) + send_age
        if command == "peers" and words[4] == "DIRECT":
            return int(peers[words[0]]["paths"][0]["lastSend"]) + int(words[5])
    raise AssertionError("no peer with a path")


# --- the recorded outputs ------------------------------------------------------------------


@pytest.mark.parametrize("node", NODES)
def test_info(run: Runner, node: str) -> None:
    assert run(node, "info") == Result(0, expected(node, "info"), "")
    assert run(node, "status").out == expected(node, "info")


@pytest.mark.parametrize("node", NODES)
def test_json_info(run: Runner, node: str) -> None:
    # The CLI ran a moment after the /status snapshot: only the clock differs.
    api_clock = api(node)["/status"][1]["clock"]
    cli_clock = json.loads(expected(node, "-j info"))["clock"]
    want = expected(node, "-j info").replace(f'"clock": {cli_clock},', f'"clock": {api_clock},')
    assert run(node, "-j", "info") == Result(0, want, "")


@pytest.mark.parametrize("node", NODES)
def test_listpeers(run: Runner, node: str) -> None:
    now = now_for(node, "listpeers")
    assert run(node, "listpeers", now=now) == Result(0, expected(node, "listpeers"), "")
    assert run(node, "-j", "listpeers").out == expected(node, "-j listpeers")


@pytest.mark.parametrize("node", NODES)
def test_peers(run: Runner, node: str) -> None:
    now = now_for(node, "peers")
    assert run(node, "peers", now=now) == Result(0, expected(node, "peers"), "")


@pytest.mark.parametrize("node", NODES)
def test_listnetworks(run: Runner, node: str) -> None:
    assert run(node, "listnetworks") == Result(0, expected(node, "listnetworks"), "")
    assert run(node, "-j", "listnetworks") == Result(0, expected(node, "-j listnetworks"), "")


@pytest.mark.parametrize("node", NODES)
def test_listmoons(run: Runner, node: str) -> None:
    assert run(node, "listmoons") == Result(0, expected(node, "listmoons"), "")


@pytest.mark.parametrize("node", NODES)
def test_get_ip(run: Runner, node: str) -> None:
    result = run(node, "get", NWID, "ip")
    assert (result.code, result.out) == (0, expected(node, f"get {NWID} ip"))
    if node in ("root", "ctrl"):  # not members of the network
        assert result.err == "unknown network ID, check that you are a member of the network\n"
    else:
        assert result.err == ""


# --- more of get ------------------------------------------------------------------------------


def test_get_properties(run: Runner) -> None:
    assert run("a", "get", NWID, "name").out == "lab\n"
    assert run("a", "get", NWID, "mtu").out == "2800\n"
    assert run("a", "get", NWID, "allowManaged").out == "1\n"
    assert run("a", "get", NWID, "allowDNS").out == "0\n"
    assert run("a", "get", NWID, "ip4").out == "198.19.0.222\n"
    assert run("a", "get", NWID, "ip6").out == "\n"
    assert run("a", "get", NWID, "ip6plane").out == "\n"
    assert run("a", "get", NWID, "routes") == Result(0, "error, unknown property name\n", "")
    assert run("a", "get", NWID, "nothing").out == "error, unknown property name\n"


def test_get_addresses_quirks() -> None:
    addresses = ["10.0.0.1/24", "fc12:3456:78ab:cdef::1/40", "fd00::5/88", 7]
    get = cli._Cli._addresses
    assert get(addresses, "ip") == "10.0.0.1\nfc12:3456:78ab:cdef::1\nfd00::5\n"
    assert get(addresses, "ip4") == "10.0.0.1"
    assert get(addresses, "ip6") == "fc12:3456:78ab:cdef::1\nfd00::5"
    # The 6PLANE address is not the last IPv6 one: the reference leaves a newline.
    assert get(addresses, "ip6plane") == "fc12:3456:78ab:cdef::1\n"
    assert get(addresses, "ip6prefix") == "fc12:3456:78ab:cdef::1\n"[:24]
    assert json_string(-999, "-") == "18446744073709550617"
    assert json_string(True, "-") == "1"
    assert json_string(None, "-") == "-"


# --- commands that change things --------------------------------------------------------------


def test_join_leave(run: Runner, daemon: FakeDaemon) -> None:
    assert run("a", "join", NWID) == Result(0, "200 join OK\n", "")
    seen = daemon.requests[-1]
    assert (seen.method, seen.path, seen.body) == ("POST", f"/network/{NWID}", b"{}")
    network = compact(api("a")[f"/network/{NWID}"][1])
    assert run("a", "-j", "join", NWID) == Result(0, network, "")
    assert run("a", "leave", NWID) == Result(0, "200 leave OK\n", "")
    assert (daemon.requests[-1].method, daemon.requests[-1].path) == ("DELETE", f"/network/{NWID}")
    assert run("a", "-j", "leave", NWID) == Result(0, '{"result":true}', "")


def test_network_argument_errors(run: Runner, daemon: FakeDaemon) -> None:
    assert run("a", "join", "1234") == Result(2, "invalid network id\n", "")
    assert run("a", "join") == Result(2, "invalid network id\n", "")
    assert run("a", "leave", NWID + "0") == Result(2, "invalid network id\n", "")
    bad_id = "invalid format: must be a 16-digit (network) ID\n"
    assert run("a", "set", "12", "allowDNS=1") == Result(2, "", bad_id)
    assert run("a", "get", "12", "ip") == Result(2, "", bad_id)
    assert run("a", "set", NWID) == Result(
        2, "", "invalid format: include a property name to set\n"
    )
    assert run("a", "get", NWID) == Result(
        2, "", "invalid format: include a property name to get\n"
    )
    no_eq = run("a", "set", NWID, "allowDNS")
    assert (no_eq.code, no_eq.out) == (2, "")
    assert no_eq.err.startswith("ztone version ") and "Usage: ztone-cli" in no_eq.err
    assert daemon.requests == []


def test_set(run: Runner, daemon: FakeDaemon) -> None:
    network = compact(api("a")[f"/network/{NWID}"][1])
    assert run("a", "set", NWID, "allowDNS=1") == Result(0, network, "")
    assert daemon.requests[-1].body == b'{"allowDNS":true}'
    run("a", "set", NWID, "allowGlobal=true")
    assert daemon.requests[-1].body == b'{"allowGlobal":true}'
    run("a", "set", NWID, "allowDefault=True")  # only "t" and "1" mean true
    assert daemon.requests[-1].body == b'{"allowDefault":false}'
    count = len(daemon.requests)
    assert run("a", "set", NWID, "mtu=1000") == Result(0, "", "")
    assert len(daemon.requests) == count


def test_orbit_deorbit(run: Runner, daemon: FakeDaemon) -> None:
    assert run("a", "orbit", "1234567890", "1234567890") == Result(0, "200 orbit OK\n", "")
    seen = daemon.requests[-1]
    assert (seen.method, seen.path, seen.body) == (
        "POST",
        "/moon/1234567890",
        b'{"seed":"1234567890"}',
    )
    count = len(daemon.requests)
    assert run("a", "orbit", "0", "1234567890") == Result(0, "", "")
    assert run("a", "orbit", "1234567890") == Result(0, "", "")
    assert len(daemon.requests) == count
    assert run("a", "deorbit", "1234567890") == Result(0, "200 deorbit OK\n", "")
    assert (daemon.requests[-1].method, daemon.requests[-1].path) == ("DELETE", "/moon/1234567890")


def test_raw_path(run: Runner) -> None:
    assert run("root", "/status") == Result(0, compact(api("root")["/status"][1]), "")
    assert run("root", f"/network/{NWID}") == Result(1, f"404 /network/{NWID} {{}}\n", "")


# --- errors and switches ----------------------------------------------------------------------


def test_http_errors(run: Runner, daemon: FakeDaemon) -> None:
    out = io.StringIO()
    port = run.port
    code = cli.main([f"-p{port}", "-Twrong", "info"], stdout=out, stderr=io.StringIO())
    assert (code, out.getvalue()) == (1, "401 info {}\n")
    daemon.garbage = True
    result = run("root", "listpeers")
    assert result.code == 1
    assert result.out.startswith("200 listpeers invalid JSON response ([json.exception.parse_error")
    daemon.garbage = False
    result = run("root", "/nothing/here")
    assert result == Result(1, "404 /nothing/here \n", "")


def test_connection_refused() -> None:
    port = unused_port()
    for command in ("info", "listpeers", "peers", "listnetworks", "listmoons"):
        out = io.StringIO()
        code = cli.main([f"-p{port}", "-Tx", command], stdout=out, stderr=io.StringIO())
        assert (code, out.getvalue()) == (1, CONNECT_ERROR.format("connection failed")), command
    out = io.StringIO()
    code = cli.main([f"-p{port}", "-Tx", "join", NWID], stdout=out, stderr=io.StringIO())
    assert (code, out.getvalue()) == (1, "0 join connection failed\n")
    out = io.StringIO()
    code = cli.main(["-Hnot-an-ip", f"-p{port}", "-Tx", "info"], stdout=out, stderr=io.StringIO())
    assert (code, out.getvalue()) == (1, CONNECT_ERROR.format("connection failed (2)"))


def test_home_directory(run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("ZEROTIER_HOME", raising=False)
    monkeypatch.delenv("ZTONE_HOME", raising=False)

    def call(*args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(args), stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue())

    missing_port = f"ztone-cli: missing port and zerotier-one.port not found in {home}\n"
    assert call(f"-D{home}", "info") == Result(2, "", missing_port)
    (home / "zerotier-one.port").write_text("0")
    assert call(f"-D{home}", "info") == Result(2, "", missing_port)
    (home / "zerotier-one.port").write_text(str(run.port))
    no_token = f"ztone-cli: authtoken.secret not found or readable in {home} (try again as root)\n"
    assert call(f"-D{home}", "info") == Result(2, "", no_token)
    (home / "authtoken.secret").write_text(TOKEN)
    assert call(f"-D{home}", "info") == Result(0, expected("root", "info"), "")
    # $ZEROTIER_HOME is the default home directory.
    monkeypatch.setenv("ZEROTIER_HOME", str(home))
    assert call("info") == Result(0, expected("root", "info"), "")
    # The token file is sent as is: a trailing newline makes it wrong.
    (home / "authtoken.secret").write_text(TOKEN + "\n")
    assert call("info") == Result(1, "401 info {}\n", "")
    # Without a token file, $HOME/.zeroTierOneAuthToken is tried.
    (home / "authtoken.secret").unlink()
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / ".zeroTierOneAuthToken").write_text(TOKEN)
    assert call("info") == Result(0, expected("root", "info"), "")
    # An empty $ZEROTIER_HOME means no home directory at all.
    monkeypatch.setenv("ZEROTIER_HOME", "")
    assert call("-p9993", "info") == Result(
        2,
        "",
        "ztone-cli: missing port or authentication token and no home directory specified "
        "to auto-detect\n",
    )
    # Discovery happens before the command is looked at.
    (home / "zerotier-one.port").unlink()
    assert call(f"-D{home}", "-Tx", "whatever").code == 2


def test_switches(run: Runner) -> None:
    def call(*args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(args), stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue())

    assert call("-v") == Result(0, "1.14.1\n", "")
    help_text = cli.help_text("ztone-cli")
    assert help_text.startswith("ztone version ")
    assert "Usage: ztone-cli [-switches] <command/path> [<args>]\n\nAvailable switches:\n" in (
        help_text
    )
    for args, code in (
        (["-h"], 0),
        (["-?"], 0),
        (["-x"], 0),
        (["-hello"], 0),
        (["-"], 0),
        (["-jx", "info"], 1),
        (["-vv"], 1),
        (["-qq"], 1),
        (["-p0", "info"], 1),
        (["-p70000", "info"], 1),
        (["-pabc", "info"], 1),
        (["-D", "info"], 1),
        (["-T", "info"], 1),
        (["-H", "info"], 1),
        (["-Tx", "-p1", "info", "-h"], 0),
    ):
        assert call(*args) == Result(code, help_text, ""), args
    # -q is ignored; extra words overwrite the second argument.
    assert run("a", "-q", "get", NWID, "ip4", "name").out == "lab\n"
    # Unknown commands print the help on stderr, exit 0.
    assert run("a", "frobnicate") == Result(0, "", help_text)

    assert run("a") == Result(0, "", help_text)
    assert run("a", "bond", "list") == Result(1, "", "ztone does not implement bonding\n")
    assert run("a", "listbonds") == Result(1, "", "ztone does not implement bonding\n")


def test_peers_relay_and_tunneled() -> None:
    peer = {
        "address": "89e92ceee5",
        "versionMajor": 1,
        "versionMinor": 12,
        "versionRev": 0,
        "latency": 123456,
        "role": "MOON",
        "tunneled": True,
        "paths": [
            {"address": "10.1.1.1/9993", "preferred": False, "lastSend": 5, "lastReceive": 0},
            {"address": "10.2.2.2/9993", "preferred": True, "lastSend": 900, "lastReceive": 0},
        ],
    }
    body = json.dumps([peer])

    class One(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), One)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        port = server.server_address[1]
        out = io.StringIO()
        code = cli.main([f"-p{port}", "-Tx", "peers"], now_ms=lambda: 1000, stdout=out)
        assert code == 0
        assert out.getvalue() == (
            "200 peers\n<ztaddr>   <ver>  <role> <lat> <link>   <lastTX> <lastRX> <path>\n"
            "89e92ceee5 1.12.0 MOON   123456 RELAY 100      -1       10.2.2.2/9993\n"
            "NOTE: Currently tunneling through a TCP relay. Ensure that UDP is not blocked.\n"
        )
        out = io.StringIO()
        cli.main([f"-p{port}", "-Tx", "listpeers"], now_ms=lambda: 1000, stdout=out)
        assert out.getvalue().splitlines()[1] == (
            "200 listpeers 89e92ceee5 10.2.2.2/9993;100;-1 123456 1.12.0 MOON"
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- version, help and the shared home lookup (issue 12) ---------------------------------


@pytest.mark.parametrize("program", ["ztone", "ztone-cli", "ztone-idtool"])
def test_version_and_help_of_every_program(program: str) -> None:
    from ztone import PROTOCOL_VERSION, __version__  # noqa: PLC0415
    from ztone.cli import daemon, idtool  # noqa: PLC0415

    mains = {"ztone": daemon.main, "ztone-cli": cli.main, "ztone-idtool": idtool.main}
    name = "ztone" if program == "ztone" else f"{program} (ztone)"
    for args, expected in (
        (["--version"], f"{name} {__version__}, speaks ZeroTier One 1.14.1\n"),
        (["-v"], f"{PROTOCOL_VERSION}\n"),
    ):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = mains[program](args) if program != "ztone-cli" else cli.main(args, stdout=out)
        assert (code, out.getvalue()) == (0, expected), (program, args)
    for args in (["-h"], ["--help"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = mains[program](args) if program != "ztone-cli" else cli.main(args, stdout=out)
        assert code == 0 and "Usage: " in out.getvalue(), (program, args)


def test_home_lookup(tmp_path: Path) -> None:
    from ztone.cli.homedir import cli_home, daemon_home  # noqa: PLC0415

    env = {"HOME": str(tmp_path / "u")}
    mine = str(tmp_path / "u" / ".local" / "share" / "ztone")
    assert daemon_home(env, euid=0) == "/var/lib/zerotier-one"
    assert daemon_home(env, euid=1000) == mine
    assert daemon_home({**env, "XDG_DATA_HOME": str(tmp_path / "x")}, euid=1000) == str(
        tmp_path / "x" / "ztone"
    )
    # The CLI of a user takes the user's daemon only once it runs (its port file).
    assert cli_home(env, euid=1000) == "/var/lib/zerotier-one"
    Path(mine).mkdir(parents=True)
    Path(mine, "zerotier-one.port").write_text("9993")
    assert cli_home(env, euid=1000) == mine
    assert cli_home(env, euid=0) == "/var/lib/zerotier-one"
    # $ZTONE_HOME, then $ZEROTIER_HOME (empty: none), for both programs.
    for lookup in (cli_home, daemon_home):
        assert lookup({**env, "ZTONE_HOME": "/z", "ZEROTIER_HOME": "/q"}, euid=0) == "/z"
        assert lookup({**env, "ZEROTIER_HOME": "/q"}, euid=1000) == "/q"
    assert cli_home({**env, "ZEROTIER_HOME": ""}, euid=1000) == ""


def test_dump(run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zerotier-cli's dump: the API's /status, /network and /peer bodies, local.conf and
    the interfaces, written to ./zerotier_dump.txt."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    report = work / "zerotier_dump.txt"
    report.write_text("x" * 100_000)  # an older, longer dump is replaced whole
    result = run("a", f"-D{home}", "dump")
    assert result == Result(0, f"Writing dump to: {report}\n", "")
    text = report.read_text()
    bodies = [compact(api("a")[p][1]) for p in ("/status", "/network", "/peer")]
    assert text.startswith(
        "platform: Linux\nzerotier version: 1.14.1\n\n"
        f"status\n------\n{bodies[0]}\n\nnetworks\n--------\n{bodies[1]}\n"
        f"\npeers\n-----\n{bodies[2]}\n\nlocal.conf\n----------\nNone Present\n"
        "\nNetwork Interfaces\n------------------\n\n"
    )
    assert "x" not in text.rsplit("------------------", 1)[1]
    for block in text.split("Interface ")[1:]:
        lines = block.splitlines()
        assert lines[1] == "-----------" and lines[2].startswith("Name: ")
        assert "Addresses: " in lines
    (home / "local.conf").write_text('{"settings": {}}')
    assert run("a", f"-D{home}", "dump").code == 0
    assert '\nlocal.conf\n----------\n{"settings": {}}\n' in report.read_text()
    # The daemon unreachable: zerotier-cli's connection error, exit 1.
    out = io.StringIO()
    code = cli.main([f"-p{unused_port()}", "-Tx", f"-D{home}", "dump"], stdout=out)
    assert code == 1 and out.getvalue().startswith("Error connecting to the ZeroTier service: ")
