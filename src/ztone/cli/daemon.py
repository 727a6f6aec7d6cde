"""``ztone``: the node daemon, with zerotier-one's switches (PROTOCOL-NETWORK-SERVICE C.3.1).

    ztone [-switches] [home directory]

Without a home directory: ``$ZTONE_HOME``, else ``$ZEROTIER_HOME``, else
``/var/lib/zerotier-one`` as root and ``~/.local/share/ztone`` otherwise
(:mod:`ztone.cli.homedir`).

    -h, -?   help            -v   version (1.14.1, as zerotier-one)
    --version   ztone's own version and the protocol version
    -U       do not require root
    -p<port> primary port (0 = random)
    -d       fork into the background
    -i ...   ztone-idtool     -q ...  ztone-cli

``ZTONE_PURE=1`` forces the pure-Python crypto path (the native one is otherwise
used when it was built). ``ZTONE_FASTPATH=0`` turns the per-peer fast path off (on
when the native accelerator has its hop functions), and with it the native receive
data plane; ``ZTONE_DATAPLANE=0`` turns only the latter off (service/dataplane.py).
"""

from __future__ import annotations

import sys

if "asyncio" not in sys.modules:
    # asyncio imports ssl for TLS transports, which the daemon never uses: the ssl
    # module and the system's libssl/libcrypto would stay resident (+4.7 MB RSS). With
    # ssl hidden while asyncio loads, asyncio records "no TLS" (its own fallback when
    # Python lacks ssl); ssl is importable again at once for anything that asks for it
    # later.
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import asyncio
    finally:
        del sys.modules["ssl"]

import asyncio
import contextlib
import functools
import logging
import os
import select
from collections.abc import Callable
from typing import TextIO

from ztone import PROTOCOL_VERSION, __version__, version_line
from ztone.cli.homedir import daemon_home
from ztone.crypto.backend import DEFAULT, PURE, Backend
from ztone.service.home import HomeError
from ztone.service.runner import NodeService, StartupError

PROGRAM = "ztone"
READY_TIMEOUT = 60.0


def _help(out: TextIO) -> None:
    out.write(
        f"ztone version {__version__} (compatible with ZeroTier One 1.14.1)\n"
        "Licensed under the MIT license\n"
        "\n"
        f"Usage: {PROGRAM} [-switches] [home directory]\n"
        "\n"
        "Home directory: the argument, else $ZTONE_HOME, else $ZEROTIER_HOME, else\n"
        "/var/lib/zerotier-one as root and $XDG_DATA_HOME/ztone (~/.local/share/ztone)\n"
        "for other users (with -U). ztone-cli finds the same directory.\n"
        "\n"
        "Available switches:\n"
        "  -h                - Display this help\n"
        "  -v                - Show version (of ZeroTier One that ztone follows)\n"
        "  --version         - Show ztone's version and the protocol version\n"
        "  -U                - Skip privilege check and do not attempt to drop privileges\n"
        "  -p<port>          - Port for UDP and TCP/HTTP (default: 9993, 0 for random)\n"
        "  -d                - Fork and run as daemon (returns once the API answers)\n"
        "  -i                - Generate and manage identities (ztone-idtool)\n"
        "  -q                - Query API (ztone-cli)\n"
        "\n"
        "Environment: ZTONE_LOG_LEVEL (DEBUG, INFO, WARNING...; default INFO),\n"
        "ZTONE_PURE=1 (pure-Python crypto), ZTONE_FASTPATH=0 (no fast path),\n"
        "ZTONE_DATAPLANE=0 (no native receive data plane),\n"
        "ZTONE_TAP_BACKEND (linux or illumos).\n"
        "Settings: <home>/local.conf, as zerotier-one's. Signals: SIGTERM/SIGINT stop.\n"
    )


def main(argv: list[str]) -> int:
    # ztone-idtool and ztone-cli (HTTP client, controller migration) are loaded only
    # for -i and -q: the daemon never needs them resident.
    if argv and argv[0] == "-i":
        from ztone.cli import idtool  # noqa: PLC0415

        return idtool.main(argv[1:])
    if argv and argv[0] == "-q":
        from ztone.cli import cli  # noqa: PLC0415

        return cli.main(argv[1:])
    port: int | None = None
    home: str | None = None
    skip_root = False
    fork = False
    for arg in argv:
        if arg == "--version":
            sys.stdout.write(version_line(PROGRAM))
            return 0
        if arg.startswith("-") and len(arg) > 1:
            flag, rest = arg[1], arg[2:]
            if flag == "p":
                if not rest.isdigit() or int(rest) > 65535:
                    _help(sys.stdout)
                    return 1
                port = int(rest)
            elif flag == "v" and not rest:
                print(PROTOCOL_VERSION)
                return 0
            elif flag == "U" and not rest:
                skip_root = True
            elif flag == "d" and not rest:
                fork = True
            else:
                _help(sys.stdout)
                return 0
        elif home is None:
            home = arg
        else:
            _help(sys.stdout)
            return 0
    home = home or daemon_home()
    if not skip_root and os.geteuid() != 0:
        sys.stderr.write(f"{PROGRAM}: must be run as root (uid 0)\n")
        return 1
    crypto = PURE if os.environ.get("ZTONE_PURE") == "1" else DEFAULT
    logging.basicConfig(
        level=os.environ.get("ZTONE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s ztone %(levelname)s %(name)s: %(message)s",
    )
    if fork:
        read_end, write_end = os.pipe()
        child = os.fork()
        if child > 0:
            os.close(write_end)
            return _wait_until_ready(read_end, child)
        os.close(read_end)
        os.setsid()
        return _run(os.path.abspath(home), port, crypto, functools.partial(_detach, write_end))
    return _run(os.path.abspath(home), port, crypto)


def _wait_until_ready(read_end: int, child: int) -> int:
    """``-d``: the parent returns once the daemon's API answers (so a ``ztone-cli``
    command right after works), or with the daemon's failure (its message is already
    on stderr)."""
    try:
        ready, _, _ = select.select([read_end], [], [], READY_TIMEOUT)
        answer = os.read(read_end, 1) if ready else b""
    finally:
        os.close(read_end)
    if answer == b"1":
        return 0
    if not ready:
        sys.stderr.write(
            f"{PROGRAM}: still starting after {READY_TIMEOUT:g} s (pid {child}); "
            "run it without -d to see its log\n"
        )
        return 1
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) or 1


def _detach(write_end: int) -> None:
    """In the ``-d`` child, once started: tell the parent, leave the terminal (the log
    goes with it: run without -d, or under systemd, to keep it)."""
    with contextlib.suppress(OSError):
        os.write(write_end, b"1")
    with contextlib.suppress(OSError):
        os.close(write_end)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


async def _serve(service: NodeService, ready: Callable[[], None] | None) -> None:
    task = asyncio.create_task(service.run(ready))
    await asyncio.sleep(0)
    try:
        service.install_signal_handlers()
    except (AttributeError, RuntimeError):
        pass  # no signal support here: Ctrl-C still raises KeyboardInterrupt
    await task


def _run(
    home: str, port: int | None, crypto: Backend, ready: Callable[[], None] | None = None
) -> int:
    while True:
        # ZTONE_FASTPATH=0: every frame through the general path (for A/B comparisons)
        fast_path = False if os.environ.get("ZTONE_FASTPATH") == "0" else None
        service = NodeService(home, port, crypto, fast_path=fast_path)

        pid_written = False
        try:
            service.home.ensure()
            service.home.write_pid(os.getpid())
            pid_written = True
            asyncio.run(_serve(service, ready))
            ready = None  # a restart after an identity collision is not a new start
        except (StartupError, HomeError) as e:
            sys.stderr.write(f"{PROGRAM}: fatal error: {e}\n")
            return 1
        except KeyboardInterrupt:
            return 0
        except OSError as e:
            sys.stderr.write(f"{PROGRAM}: fatal error: {e}\n")
            return 1
        finally:
            if pid_written:
                service.home.remove_pid()
        if service.identity_collision and service.home.set_aside_identity():
            continue  # start again with a fresh identity, as zerotier-one does
        if service.fenced:
            ready = None
            continue  # the controller lease was lost: stand by again for it
        return 0


def console_main() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    console_main()
