"""``ztone-cli``: zerotier-cli 1.14.1 over the local JSON API (PROTOCOL-NETWORK-SERVICE C.3.2).

Switches: ``-h``/``-?`` (help), ``-v`` (version), ``-j`` (raw JSON), ``-p<port>``,
``-D<home>``, ``-T<token>``, ``-H<ip>``, ``-q`` (ignored). Commands: ``info``
(``status``), ``listpeers``, ``peers``, ``listnetworks``, ``join``, ``leave``, ``set``,
``get``, ``listmoons``, ``orbit``, ``deorbit`` and ``/<path>`` (a raw GET). Output
text and exit codes are the reference's, with ``ztone-cli`` where it prints its
``argv[0]``; its help header names ztone. ``bond`` and ``listbonds`` say that ztone
has no bonding (exit 1); ``dump`` writes zerotier-cli's report (:mod:`.dump`).
``--version`` prints ztone's own version beside the protocol version.

``doctor`` is ztone's own: it runs locally, without the daemon, the preflight checks
of the virtual network backend (:mod:`ztone.osdep.preflight`; the backend as
``ZTONE_TAP_BACKEND`` or the platform selects it). It prints ``ok <check>: ...`` for
each check and exits 0, or each problem as ``FAIL <check>: <message>`` with a
``fix:`` line under it and exits 1. Run it as the user the daemon runs as.
``doctor --selftest`` (illumos backend, root) also builds a throwaway port and passes
frames through it both ways (:mod:`ztone.osdep.illumos.selftest`).

Without ``-p`` or ``-T`` the port and token are read from the home directory (``-D``,
else as :func:`ztone.cli.homedir.cli_home` finds it: ``$ZTONE_HOME``, ``$ZEROTIER_HOME``,
the non-root daemon's ``~/.local/share/ztone`` when it runs, ``/var/lib/zerotier-one``):
``zerotier-one.port`` and ``authtoken.secret`` (else ``$HOME/.zeroTierOneAuthToken``).
The token is sent as read, in the ``X-ZT1-Auth`` header.

The response JSON is handled the way the reference's nlohmann::json accessors do
(e.g. numbers printed by ``get`` as unsigned 64-bit decimals).
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ztone import __version__, version_line
from ztone.cli.homedir import cli_home
from ztone.controller.migrate import migrate
from ztone.controller.store import StoreError
from ztone.util.ctext import U64_MAX, strtoull
from ztone.util.jsontext import json_string
from ztone.util.store_location import describe

PROGRAM = "ztone-cli"
VERSION = "1.14.1"
DEFAULT_HOST = "127.0.0.1"
HTTP_TIMEOUT = 60.0
MAX_RESPONSE_SIZE = 16 * 1024 * 1024
MAX_ASSIGNED_ADDRESSES = 32  # ZT_MAX_ZT_ASSIGNED_ADDRESSES

# The reference prints its product name, copyright and licence in these three lines.
HELP_HEADER = (
    f"ztone version {__version__} (compatible with ZeroTier One {VERSION})\n"
    "Copyright (c) the ztone authors\n"
    "Licensed under the MIT license\n"
)

CONNECT_ERROR = (
    "Error connecting to the ZeroTier service: {}\n\n"
    "Please check that the service is running and that TCP port 9993 can be contacted "
    "via 127.0.0.1.\n"
)

_U32_MAX = (1 << 32) - 1


def help_text(prog: str) -> str:
    return (
        HELP_HEADER
        + f"Usage: {prog} [-switches] <command/path> [<args>]\n\n"
        + "Available switches:\n"
        "  -h                      - Display this help\n"
        "  -v                      - Show version\n"
        "  --version               - Show ztone's version and the protocol version\n"
        "  -j                      - Display full raw JSON output\n"
        "  -D<path>                - ZeroTier home path for parameter auto-detect\n"
        "  -p<port>                - HTTP port (default: auto)\n"
        "  -T<token>               - Authentication token (default: auto)\n"
        "\nAvailable commands:\n"
        "  info                    - Display status info\n"
        "  listpeers               - List all peers\n"
        "  peers                   - List all peers (prettier)\n"
        "  listnetworks            - List all networks\n"
        "  join <network ID>          - Join a network\n"
        "  leave <network ID>         - Leave a network\n"
        "  set <network ID> <setting> - Set a network setting\n"
        "  get <network ID> <setting> - Get a network setting\n"
        "  listmoons               - List moons (federated root sets)\n"
        "  orbit <world ID> <seed> - Join a moon via any member root\n"
        "  deorbit <world ID>      - Leave a moon\n"
        "  doctor                  - Check this machine for virtual networks\n"
        "  doctor --selftest       - illumos: test a throwaway port (root)\n"
        "  dump                    - Debug settings dump for support\n"
        "  ui                      - Print a one-time login link to the web UI\n"
        "  controller migrate --from <controller.d dir|SQLite file> --to <store>\n"
        "                          - Copy a controller's networks and members into\n"
        "                            another store (e.g. postgresql://...) and check it\n"
        "\nAvailable settings:\n"
        "  Settings to use with [get/set] may include property names from \n"
        f'  the JSON output of "{prog} -j listnetworks". Additionally, \n'
        "  (ip, ip4, ip6, ip6plane, and ip6prefix can be used). For instance:\n"
        f"  {prog} get <network ID> ip6plane will return the 6PLANE address\n"
        "  assigned to this node.\n"
        "\nHome directory (for the port and token, without -D): $ZTONE_HOME, else\n"
        "  $ZEROTIER_HOME, else (not root) ~/.local/share/ztone when a daemon runs there,\n"
        "  else /var/lib/zerotier-one.\n"
    )


# --- C and nlohmann::json behaviours ------------------------------------------------------


def _strtoul(text: str, base: int, limit: int = U64_MAX) -> int:
    """C ``strtoul``/``strtoull`` (64-bit ``unsigned long``), base 10 or 16."""
    return strtoull(text, base) & limit


def _str_to_uint(text: str) -> int:
    """``Utils::strToUInt``: ``(unsigned int)strtoul(s, NULL, 10)``."""
    return _strtoul(text, 10, _U32_MAX)


def _hex_to_u64(text: str) -> int:
    """``Utils::hexStrToU64``."""
    return _strtoul(text, 16)


def _to_int64(value: int) -> int:
    value &= U64_MAX
    return value - (1 << 64) if value >> 63 else value


def _to_int32(value: int) -> int:
    value &= _U32_MAX
    return value - (1 << 32) if value >> 31 else value


def _number(value: object) -> int | None:
    """A JSON number or boolean converted to an integer as a C++ cast would."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def json_int(value: object, default: int) -> int:
    """``OSUtils::jsonInt`` (an unsigned 64-bit value)."""
    if isinstance(value, str):
        return _strtoul(value, 10)
    number = _number(value)
    return number & U64_MAX if number is not None else default


def json_bool(value: object, default: bool) -> bool:
    """``OSUtils::jsonBool``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value[:1] in ("t", "T", "1")
    number = _number(value)
    return (number & U64_MAX) > 0 if number is not None else default


def _truthy(value: object) -> bool:
    """``if (j[...])`` on a JSON value: only a ``true`` boolean counts."""
    return value is True


def _get(obj: object, key: str) -> object:
    return obj.get(key) if isinstance(obj, dict) else None


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid literal {name}")


def parse_json(text: str) -> object:
    """Parse as nlohmann::json does (strict: no NaN/Infinity); ``ValueError`` with a
    nlohmann-like message otherwise."""
    if not text.strip():
        raise ValueError(
            "[json.exception.parse_error.101] parse error at line 1, column 1: syntax error "
            "while parsing value - unexpected end of input; expected '[', '{', or a literal"
        )
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"[json.exception.parse_error.101] parse error at line {e.lineno}, column {e.colno}: "
            f"syntax error while parsing value - {e.msg}"
        ) from e
    except (ValueError, RecursionError) as e:
        raise ValueError(f"[json.exception.parse_error.101] parse error: {e}") from e


def dump_pretty(value: object) -> str:
    """nlohmann ``dump(1)``."""
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False)


# --- the command line ------------------------------------------------------------------------


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Cli:
    def __init__(self, out: TextIO, err: TextIO, now_ms: Callable[[], int], prog: str) -> None:
        self.out = out
        self.err = err
        self.now_ms = now_ms
        self.prog = prog
        self.json = False
        self.host = DEFAULT_HOST
        self.port = 0
        self.token = ""
        self.command = ""
        self.arg1 = ""
        self.arg2 = ""

    # --- arguments ---------------------------------------------------------------------

    def help(self, to_stderr: bool = False) -> None:
        (self.err if to_stderr else self.out).write(help_text(self.prog))

    def parse(self, argv: list[str]) -> str:
        """Apply the switches, collect the words; return the home directory."""
        home = ""
        for arg in argv:
            if arg == "--version":
                self.out.write(version_line(self.prog))
                raise _Exit(0)
            if arg.startswith("-"):
                flag, rest = arg[1:2], arg[2:]
                if flag in ("q", "j"):
                    if rest:
                        self.help()
                        raise _Exit(1)
                    if flag == "j":
                        self.json = True
                elif flag == "p":
                    self.port = _str_to_uint(rest)
                    if self.port == 0 or self.port > 0xFFFF:
                        self.help()
                        raise _Exit(1)
                elif flag in ("D", "H", "T"):
                    if not rest:
                        self.help()
                        raise _Exit(1)
                    if flag == "D":
                        home = rest
                    elif flag == "H":
                        self.host = rest
                    else:
                        self.token = rest
                elif flag == "v":
                    if rest:
                        self.help()
                        raise _Exit(1)
                    self.out.write(f"{VERSION}\n")
                    raise _Exit(0)
                else:  # -h, -? and anything unknown
                    self.help()
                    raise _Exit(0)
            elif self.arg1:
                self.arg2 = arg
            elif self.command:
                self.arg1 = arg
            else:
                self.command = arg
        if not home:
            home = cli_home()
        return home

    def discover(self, home: str) -> None:
        """Port and token from the home directory, when not given as switches."""
        if self.port and self.token:
            return
        if not home:
            self.err.write(
                f"{self.prog}: missing port or authentication token and no home directory "
                "specified to auto-detect\n"
            )
            raise _Exit(2)
        if not self.port:
            self.port = _str_to_uint(_read_text(Path(home, "zerotier-one.port")))
            if self.port == 0 or self.port > 0xFFFF:
                self.err.write(
                    f"{self.prog}: missing port and zerotier-one.port not found in {home}\n"
                )
                raise _Exit(2)
        if not self.token:
            self.token = _read_text(Path(home, "authtoken.secret"))
            if not self.token:
                user_home = os.environ.get("HOME")
                if user_home is not None:
                    self.token = _read_text(Path(user_home, ".zeroTierOneAuthToken"))
            if not self.token:
                self.err.write(
                    f"{self.prog}: authtoken.secret not found or readable in {home} "
                    "(try again as root)\n"
                )
                raise _Exit(2)

    # --- HTTP ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        """One request; (status, body), status 0 with an error text if it failed."""
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return 0, "connection failed (2)"
        conn = http.client.HTTPConnection(str(ip), self.port, timeout=HTTP_TIMEOUT)
        try:
            try:
                conn.connect()
            except TimeoutError:
                return 0, "timed out"
            except OSError:
                return 0, "connection failed"
            headers = {}
            # A token with a line break (e.g. a token file ending in a newline) breaks
            # the reference's header line, which its server then ignores: send none.
            if "\n" not in self.token and "\r" not in self.token:
                headers["X-ZT1-Auth"] = self.token
            payload = None
            if body is not None:
                payload = body.encode("utf-8")
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE_SIZE + 1)
            if len(data) > MAX_RESPONSE_SIZE:
                return 0, "response too large"
            return response.status, data.decode("utf-8", errors="replace")
        except TimeoutError:
            return 0, "timed out"
        except (OSError, http.client.HTTPException, ValueError) as e:
            return 0, str(e) or type(e).__name__
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[int, str, object]:
        """GET with the reference's shared error handling (connection, JSON)."""
        status, body = self.request("GET", path)
        if status == 0:
            self.out.write(CONNECT_ERROR.format(body))
            raise _Exit(1)
        try:
            value = parse_json(body)
        except ValueError as e:
            self.out.write(f"{status} {self.command} invalid JSON response ({e})\n")
            raise _Exit(1) from e
        return status, body, value

    def fail(self, status: int, body: str) -> int:
        self.out.write(f"{status} {self.command} {body}\n")
        return 1

    # --- commands ---------------------------------------------------------------------

    def run(self, home: str = "") -> int:
        command = self.command
        if command.startswith("/"):
            return self.raw_get()
        if command == "dump":
            return self.dump(home)
        handlers: dict[str, Callable[[], int]] = {
            "info": self.info,
            "status": self.info,
            "listpeers": self.listpeers,
            "peers": self.peers,
            "listnetworks": self.listnetworks,
            "join": self.join,
            "leave": self.leave,
            "listmoons": self.listmoons,
            "orbit": self.orbit,
            "deorbit": self.deorbit,
            "set": self.set,
            "get": self.get,
            "bond": self.bonding,
            "listbonds": self.bonding,
            "ui": self.ui,
        }
        handler = handlers.get(command)
        if handler is None:
            self.help(to_stderr=True)
            return 0
        return handler()

    def raw_get(self) -> int:
        status, body = self.request("GET", self.command)
        if status == 200:
            self.out.write(body)
            return 0
        return self.fail(status, body)

    def info(self) -> int:
        status, body, j = self.get_json("/status")
        if status != 200:
            return self.fail(status, body)
        if self.json:
            self.out.write(dump_pretty(j) + "\n")
        elif isinstance(j, dict):
            if _truthy(j.get("tcpFallbackActive")):
                state = "TUNNELED"
            elif _truthy(j.get("online")):
                state = "ONLINE"
            else:
                state = "OFFLINE"
            address = json_string(j.get("address"), "-")
            version = json_string(j.get("version"), "-")
            self.out.write(f"200 info {address} {version} {state}\n")
        return 0

    def _preferred_path(self, peer: object) -> tuple[str, int, int] | None:
        """(address, ms since last send, ms since last receive) of the preferred path."""
        paths = _get(peer, "paths")
        if not isinstance(paths, list):
            return None
        for path in paths:
            if _truthy(_get(path, "preferred")):
                now = self.now_ms()
                ages = []
                for key in ("lastSend", "lastReceive"):
                    stamp = json_int(_get(path, key), 0)
                    ages.append(_to_int64(now - stamp) if stamp else -1)
                return json_string(_get(path, "address"), ""), ages[0], ages[1]
        return None

    @staticmethod
    def _version(peer: object) -> str:
        parts = []
        for key in ("versionMajor", "versionMinor", "versionRev"):
            number = _number(_get(peer, key))
            parts.append(_to_int64(number) if number is not None else -1)
        return "-" if parts[0] < 0 else f"{parts[0]}.{parts[1]}.{parts[2]}"

    def listpeers(self) -> int:
        status, body, j = self.get_json("/peer")
        if status != 200:
            return self.fail(status, body)
        if self.json:
            self.out.write(dump_pretty(j) + "\n")
            return 0
        self.out.write("200 listpeers <ztaddr> <path> <latency> <version> <role>\n")
        for peer in j if isinstance(j, list) else []:
            best = self._preferred_path(peer)
            path = f"{best[0]};{best[1]};{best[2]}" if best is not None else "-"
            self.out.write(
                f"200 listpeers {json_string(_get(peer, 'address'), '-')} {path} "
                f"{_to_int32(json_int(_get(peer, 'latency'), 0))} {self._version(peer)} "
                f"{json_string(_get(peer, 'role'), '-')}\n"
            )
        return 0

    def peers(self) -> int:
        status, body, j = self.get_json("/peer")
        if status != 200:
            return self.fail(status, body)
        if self.json:
            self.out.write(dump_pretty(j) + "\n")
            return 0
        any_tunneled = False
        self.out.write(
            "200 peers\n<ztaddr>   <ver>  <role> <lat> <link>   <lastTX> <lastRX> <path>\n"
        )
        for peer in j if isinstance(j, list) else []:
            tunneled = _truthy(_get(peer, "tunneled"))
            any_tunneled = any_tunneled or tunneled
            best = self._preferred_path(peer)
            if best is None:
                link = "RELAY"
            else:
                link = ("RELAY " if tunneled else "DIRECT   ") + (
                    f"{best[1]:<8} {best[2]:<8} {best[0]}"
                )
            address = json_string(_get(peer, "address"), "-")
            role = json_string(_get(peer, "role"), "-")
            latency = _to_int32(json_int(_get(peer, "latency"), 0))
            self.out.write(f"{address} {self._version(peer):<6} {role:<6} {latency:>5} {link}\n")
        if any_tunneled:
            self.out.write(
                "NOTE: Currently tunneling through a TCP relay. Ensure that UDP is not blocked.\n"
            )
        return 0

    def listnetworks(self) -> int:
        status, body, j = self.get_json("/network")
        if status != 200:
            return self.fail(status, body)
        if self.json:
            self.out.write(dump_pretty(j) + "\n")
            return 0
        self.out.write(
            "200 listnetworks <nwid> <name> <mac> <status> <type> <dev> <ZT assigned ips>\n"
        )
        for network in j if isinstance(j, list) else []:
            if not isinstance(network, dict):
                continue
            assigned = network.get("assignedAddresses")
            ips = [a for a in assigned if isinstance(a, str)] if isinstance(assigned, list) else []
            state = json_string(network.get("status"), "-")
            fields = [json_string(network.get(key), "-") for key in ("nwid", "name", "mac")]
            fields += [
                state,
                json_string(network.get("type"), "-"),
                json_string(network.get("portDeviceName"), "-"),
                ",".join(ips) or "-",
            ]
            self.out.write("200 listnetworks " + " ".join(fields) + "\n")
            if json_bool(network.get("ssoEnabled"), False):
                expiry = json_int(network.get("authenticationExpiryTime"), 0)
                if state == "AUTHENTICATION_REQUIRED":
                    url = json_string(network.get("authenticationURL"), "(null)")
                    self.out.write(f"    AUTH EXPIRED, URL: {url}\n")
                elif state == "OK":
                    delta = _to_int64(expiry - self.now_ms())
                    expires_in = abs(delta) // 1000 * (-1 if delta < 0 else 1)
                    if expires_in >= 0:
                        self.out.write(f"    AUTH OK, expires in: {expires_in} seconds\n")
        return 0

    def _post_or_delete(self, method: str, path: str, ok_text: str, body: str | None) -> int:
        status, response = self.request(method, path, body)
        if status == 200:
            self.out.write(response if self.json else ok_text)
            return 0
        return self.fail(status, response)

    def ui(self) -> int:
        """A one-time login link to the web UI (the code is in the fragment, which the
        browser never sends; the UI trades it for a session cookie at once)."""
        status, body = self.request("POST", "/ui/login-code", "{}")
        if status == 0:
            self.out.write(CONNECT_ERROR.format(body))
            return 1
        try:
            j = parse_json(body)
        except ValueError:
            j = None
        code = _get(j, "code") if status == 200 else None
        if not isinstance(code, str) or not code:
            return self.fail(status, body)
        host = self.host if ":" not in self.host else f"[{self.host}]"
        expires = json_int(_get(j, "expiresIn"), 0)
        self.out.write(
            f"Open this link in a browser on this machine (it works once, for {expires} s):\n"
            f"  http://{host}:{self.port}/app/#login={code}\n"
        )
        return 0

    def join(self) -> int:
        if len(self.arg1) != 16:
            self.out.write("invalid network id\n")
            return 2
        return self._post_or_delete("POST", f"/network/{self.arg1}", "200 join OK\n", "{}")

    def leave(self) -> int:
        if len(self.arg1) != 16:
            self.out.write("invalid network id\n")
            return 2
        return self._post_or_delete("DELETE", f"/network/{self.arg1}", "200 leave OK\n", None)

    def listmoons(self) -> int:
        status, body, j = self.get_json("/moon")
        if status != 200:
            return self.fail(status, body)
        self.out.write(dump_pretty(j) + "\n")
        return 0

    def orbit(self) -> int:
        world_id = _hex_to_u64(self.arg1)
        seed = _hex_to_u64(self.arg2)
        if not world_id or not seed:
            return 0
        body = ('{"seed":"' + self.arg2 + '"}')[:1023]
        status, response = self.request("POST", f"/moon/{self.arg1}", body)
        if status == 200:
            self.out.write("200 orbit OK\n")
            return 0
        return self.fail(status, response)

    def deorbit(self) -> int:
        return self._post_or_delete("DELETE", f"/moon/{self.arg1}", "200 deorbit OK\n", None)

    def _check_network_args(self, verb: str) -> None:
        if len(self.arg1) != 16:
            self.err.write("invalid format: must be a 16-digit (network) ID\n")
            raise _Exit(2)
        if not self.arg2:
            self.err.write(f"invalid format: include a property name to {verb}\n")
            raise _Exit(2)

    def set(self) -> int:
        self._check_network_args("set")
        name, eq, value = self.arg2.partition("=")
        if not eq:
            self.help(to_stderr=True)
            return 2
        if name not in ("allowManaged", "allowGlobal", "allowDefault", "allowDNS"):
            return 0
        flag = "true" if value[:1] in ("t", "1") else "false"
        status, response = self.request("POST", f"/network/{self.arg1}", f'{{"{name}":{flag}}}')
        if status == 200:
            self.out.write(response)
            return 0
        return self.fail(status, response)

    def get(self) -> int:
        self._check_network_args("get")
        status, body, j = self.get_json("/network")
        name = self.arg2
        found = False
        for network in j if isinstance(j, list) else []:
            if not isinstance(network, dict) or network.get("id") != self.arg1:
                continue
            found = True
            if name not in ("ip", "ip4", "ip6", "ip6plane", "ip6prefix"):
                text = json_string(network.get(name), "-")
                if text == "-":
                    self.out.write("error, unknown property name\n")
                else:
                    self.out.write(f"{text}\n")
                break
            self.out.write(self._addresses(network.get("assignedAddresses"), name) + "\n")
        if not found:
            self.err.write("unknown network ID, check that you are a member of the network\n")
        if status == 200:
            return 0
        return self.fail(status, body)

    @staticmethod
    def _addresses(assigned: object, name: str) -> str:
        """The reference's ``get <nwid> ip*`` text (before its final newline)."""
        if not isinstance(assigned, list):
            return ""

        def matches(addr: object) -> bool:
            text = addr if isinstance(addr, str) else ""
            return (
                (name == "ip4" and "." in text)
                or (name.startswith("ip6") and ":" in text)
                or name == "ip"
            )

        chosen = [a for a in assigned[:MAX_ASSIGNED_ADDRESSES] if matches(a)]
        out = ""
        for k, addr in enumerate(chosen):
            if not isinstance(addr, str):
                continue
            ip = addr.split("/", 1)[0]
            if name.startswith("ip6p"):
                if not addr.startswith("fc"):
                    continue
                out += ip if name == "ip6plane" else ip[:24]
            else:
                out += ip
            if k < len(chosen) - 1:
                out += "\n"
        return out

    def dump(self, home: str) -> int:
        """zerotier-cli's ``dump`` (:mod:`ztone.cli.dump`)."""
        from ztone.cli import dump  # noqa: PLC0415 (only this command needs it)

        bodies = []
        for path in ("/status", "/network", "/peer"):
            status, body = self.request("GET", path)
            if status != 200:
                self.out.write(CONNECT_ERROR.format(body))
                return 1
            bodies.append(body)
        local_conf = _read_text(Path(home, "local.conf")) if home else ""
        head = dump.report_head(VERSION, bodies, local_conf)
        return dump.write_report(head, self.out, self.err)

    def bonding(self) -> int:
        self.err.write("ztone does not implement bonding\n")
        return 1

    def doctor(self, home: str, selftest: bool = False) -> int:
        """Local preflight checks of the virtual network backend (no daemon needed).

        ``selftest``: on the illumos backend, build a throwaway port and pass frames
        through it both ways (:mod:`ztone.osdep.illumos.selftest`).
        """
        from ztone.osdep.base import TapError  # noqa: PLC0415 (keep the CLI light)
        from ztone.osdep.factory import ILLUMOS, selected_backend  # noqa: PLC0415
        from ztone.osdep.preflight import preflight  # noqa: PLC0415

        if selftest:
            if selected_backend() != ILLUMOS:
                self.out.write(
                    "FAIL selftest: --selftest exercises the illumos backend only "
                    f"(this is {selected_backend()})\n"
                )
                return 1
            from ztone.osdep.illumos.selftest import run_selftest  # noqa: PLC0415

            return run_selftest(self.out)

        try:
            report = preflight(home if home and os.path.isdir(home) else None)
        except TapError as e:
            self.out.write(f"FAIL backend: {e}\n")
            return 1
        self.out.write(f"virtual network backend: {report.backend}\n")
        if report.ok:
            for name, passed in report.checks:
                self.out.write(f"ok   {name}: {passed}\n")
            return 0
        for problem in report.problems:
            self.out.write(f"FAIL {problem.check}: {problem.message}\n")
            self.out.write(f"     fix: {problem.fix}\n")
        count = len(report.problems)
        self.out.write(f"{count} problem{'s' if count != 1 else ''} found\n")
        return 1


def controller_migrate(argv: list[str], out: TextIO, err: TextIO) -> int:
    """``controller migrate --from SOURCE --to TARGET``: runs here, not in the daemon
    (the daemon using the target should be stopped or be a standby meanwhile)."""
    parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} controller migrate",
        description="Copy networks and members exactly into another controller store.",
        exit_on_error=False,
    )
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        help="a zerotier-one controller.d directory or a ztone SQLite file",
    )
    parser.add_argument(
        "--to",
        dest="target",
        required=True,
        help="postgresql://... (or postgres:<libpq string>) or a SQLite file",
    )
    try:
        args = parser.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as e:
        if isinstance(e, argparse.ArgumentError):
            err.write(f"{parser.prog}: {e}\n")
        return 2
    try:
        report = migrate(args.source, args.target)
    except (StoreError, OSError) as e:
        err.write(f"{parser.prog}: {e}\n")
        return 1
    for line in report.skipped:
        err.write(f"skipped {line}\n")
    out.write(
        f"copied {report.networks} networks and {report.members} members "
        f"to {describe(args.target)}\n"
    )
    if not report.ok:
        for line in report.mismatches:
            out.write(f"check FAILED: {line} differs in the target\n")
        return 1
    out.write("check OK: every record reads back identical\n")
    return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _default_now_ms() -> int:
    return time.time_ns() // 1_000_000


def main(
    argv: list[str],
    *,
    now_ms: Callable[[], int] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one ztone-cli command; ``argv`` excludes the program name. Returns the exit code."""
    cli = _Cli(
        stdout if stdout is not None else sys.stdout,
        stderr if stderr is not None else sys.stderr,
        now_ms if now_ms is not None else _default_now_ms,
        PROGRAM,
    )
    if argv[:2] == ["controller", "migrate"]:
        return controller_migrate(argv[2:], cli.out, cli.err)
    selftest = False
    if "doctor" in argv:
        # "--selftest" is doctor's own option; the zerotier-cli switch parser would
        # take it for -h.
        at = argv.index("doctor")
        selftest = "--selftest" in argv[at + 1 :]
        argv = argv[: at + 1] + [a for a in argv[at + 1 :] if a != "--selftest"]
    try:
        home = cli.parse(argv)
        if cli.command == "doctor":
            return cli.doctor(home, selftest)
        cli.discover(home)
        return cli.run(home)
    except _Exit as e:
        return e.code


def console_main() -> None:
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.exit(code)


__all__ = ["PROGRAM", "console_main", "main"]


if __name__ == "__main__":
    console_main()
