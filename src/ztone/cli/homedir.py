"""Where the daemon's home directory is, for ``ztone`` and ``ztone-cli`` alike.

An explicit directory (``ztone <home>``, ``ztone-cli -D<home>``) always wins. Otherwise,
in this order:

1. ``$ZTONE_HOME`` when set and not empty;
2. ``$ZEROTIER_HOME`` when set, as zerotier-one's ``OSUtils::platformDefaultHomePath``
   reads it (set but empty means "no home directory");
3. as root: ``/var/lib/zerotier-one`` (zerotier-one's Linux default);
4. as another user: ``$XDG_DATA_HOME/ztone`` (``~/.local/share/ztone`` when
   ``XDG_DATA_HOME`` is unset), where ``ztone -U`` keeps its state without root. The
   CLI takes this directory only when a daemon has written its ``zerotier-one.port``
   there; else ``/var/lib/zerotier-one``, so that a user can still reach the system
   daemon (with the token in ``~/.zeroTierOneAuthToken``, as zerotier-cli does).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ZTONE_HOME_ENV = "ZTONE_HOME"
ZEROTIER_HOME_ENV = "ZEROTIER_HOME"
SYSTEM_HOME = "/var/lib/zerotier-one"
PORT_FILE = "zerotier-one.port"


def user_home(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_DATA_HOME/ztone``, else ``$HOME/.local/share/ztone`` (XDG base directories)."""
    env = os.environ if environ is None else environ
    data = env.get("XDG_DATA_HOME", "")
    if not data or not os.path.isabs(data):
        data = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "ztone")


def _from_environment(env: Mapping[str, str]) -> str | None:
    ztone = env.get(ZTONE_HOME_ENV, "")
    if ztone:
        return ztone
    return env.get(ZEROTIER_HOME_ENV)


def daemon_home(environ: Mapping[str, str] | None = None, euid: int | None = None) -> str:
    """The home ``ztone`` uses when none is given on its command line."""
    env = os.environ if environ is None else environ
    chosen = _from_environment(env)
    if chosen:
        return chosen
    uid = os.geteuid() if euid is None else euid
    return SYSTEM_HOME if uid == 0 else user_home(env)


def cli_home(environ: Mapping[str, str] | None = None, euid: int | None = None) -> str:
    """The home ``ztone-cli`` reads the port and token from when ``-D`` is not given
    (an empty string: none, which makes discovery fail as zerotier-cli's does)."""
    env = os.environ if environ is None else environ
    chosen = _from_environment(env)
    if chosen is not None:
        return chosen
    uid = os.geteuid() if euid is None else euid
    if uid != 0:
        mine = user_home(env)
        if Path(mine, PORT_FILE).is_file():
            return mine
    return SYSTEM_HOME
