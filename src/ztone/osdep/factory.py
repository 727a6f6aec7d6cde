"""The virtual port backend: the one place that picks it.

The backend follows the platform (``sys.platform``): ``linux`` ->
:class:`ztone.osdep.linux.LinuxTapFactory` (TAP from ``/dev/net/tun``, netlink through
pyroute2), ``sunos`` (illumos, OmniOS) -> :class:`ztone.osdep.illumos.IllumosTapFactory`
(etherstub + two VNICs + libdlpi).

The environment variable ``ZTONE_TAP_BACKEND`` overrides the platform's choice:

* ``linux`` - the Linux TAP backend;
* ``illumos`` - the illumos backend, whatever the platform. On Linux this is what the
  OmniOS simulation in ``tests/illumos_sim`` sets, together with ``ZTONE_ILLUMOS_SBIN``
  (where dladm, ifconfig, route... are) and ``ZTONE_LIBDLPI`` (the shim
  ``libdlpi.so.1``), so the daemon runs the illumos code unchanged on Linux;
* ``userspace`` - no virtual port at all: every network gets a user-space network
  stack (:mod:`ztone.osdep.userspace`, no root needed; issue 15);
* unset or empty - by platform.

:class:`ChoosingTapFactory` puts the choice per network together: a network's
``portBackend`` setting (``auto``, ``tap``, ``userspace``) and, for ``auto``, a
user-space port whenever the platform's port cannot be made (not root, no
``/dev/net/tun``...), said once in the log.

Any other value is an error (:class:`TapError`), so a typo never silently selects the
platform's backend. The daemon (``ztone.service.runner``) and ``ztone-cli doctor`` ask
:func:`selected_backend` which backend is in use; nothing else looks at the platform or
the variable.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ztone.crypto.backend import DEFAULT, Backend
from ztone.osdep.base import Tap, TapError, TapFactory

if TYPE_CHECKING:
    from ztone.osdep.userspace import UserspaceTapFactory

log = logging.getLogger(__name__)

BACKEND_ENV = "ZTONE_TAP_BACKEND"
LINUX = "linux"
ILLUMOS = "illumos"
USERSPACE = "userspace"
BACKENDS = (LINUX, ILLUMOS, USERSPACE)


def selected_backend(environ: Mapping[str, str] | None = None) -> str | None:
    """``"linux"``, ``"illumos"``, ``"userspace"`` or None (no backend for this platform).

    ``ZTONE_TAP_BACKEND`` when set (:class:`TapError` for an unknown value), else
    ``sys.platform``.
    """
    env = os.environ if environ is None else environ
    wanted = env.get(BACKEND_ENV, "").strip()
    if wanted:
        if wanted not in BACKENDS:
            raise TapError(
                f"{BACKEND_ENV}={wanted!r} is not a virtual network backend "
                f"(choose one of: {', '.join(BACKENDS)})"
            )
        return wanted
    platform = sys.platform
    if platform.startswith("linux"):
        return LINUX
    if platform.startswith("sunos"):
        return ILLUMOS
    return None


def default_tap_factory(
    home: str | os.PathLike[str] | None = None, crypto: Backend = DEFAULT
) -> TapFactory:
    """The selected backend's :class:`TapFactory`; :class:`TapError` if there is none.

    ``home`` is the daemon's home directory (Linux reads ``devicemap`` there; the
    illumos backend keeps nothing in it). ``crypto`` is the daemon's crypto backend
    (the Linux TAP's segment merging computes checksums with it).
    """
    backend = selected_backend()
    if backend == LINUX:
        try:
            from ztone.osdep.linux import LinuxTapFactory  # noqa: PLC0415 (needs pyroute2)
        except ImportError as e:
            raise TapError(f"Linux virtual network backend unavailable: {e}") from None
        return LinuxTapFactory(home, crypto)
    if backend == ILLUMOS:
        try:
            from ztone.osdep.illumos import IllumosTapFactory  # noqa: PLC0415
        except ImportError as e:
            raise TapError(f"illumos virtual network backend unavailable: {e}") from None
        # Commands and libdlpi come from the environment (ZTONE_ILLUMOS_SBIN,
        # ZTONE_LIBDLPI); libdlpi is loaded on the first port.
        return IllumosTapFactory()
    if backend == USERSPACE:
        from ztone.osdep.userspace import UserspaceTapFactory  # noqa: PLC0415 (lazy)

        return UserspaceTapFactory()
    raise TapError(f"no virtual network backend for {sys.platform}")


class ChoosingTapFactory:
    """Per network, the platform's port or a user-space stack (see the module).

    ``choose(nwid)`` is the network's ``portBackend`` setting; ``platform`` is None
    when the platform has no usable backend (``platform_problem`` says why).
    ``make_userspace`` builds the user-space factory the first time a network needs it
    (or :attr:`userspace` is asked for): a daemon whose ports are all TAPs never loads
    the network stack (about 2 MB resident, bench/memory.py).
    """

    def __init__(
        self,
        platform: TapFactory | None,
        make_userspace: Callable[[], UserspaceTapFactory],
        choose: Callable[[int], str],
        platform_problem: str = "",
    ) -> None:
        self.platform = platform
        self._make_userspace = make_userspace
        self._userspace: UserspaceTapFactory | None = None
        self.choose = choose
        self.platform_problem = platform_problem or "no virtual network backend"
        self.backends: dict[int, str] = {}
        self._told = False

    @property
    def userspace(self) -> UserspaceTapFactory:
        """The user-space factory, built on first use."""
        if self._userspace is None:
            self._userspace = self._make_userspace()
        return self._userspace

    @property
    def userspace_loaded(self) -> bool:
        """Whether :attr:`userspace` has been built (a user-space port or front-end)."""
        return self._userspace is not None

    def _fall_back(self, nwid: int, mac: int, mtu: int, name: str, why: str) -> Tap:
        if not self._told:
            self._told = True
            log.warning(
                "cannot make virtual ports (%s): networks get a user-space network stack "
                "instead (no-root mode: reach them through SOCKS5 and port forwards)",
                why,
            )
        return self.userspace.create(nwid, mac, mtu, name)

    def create(self, nwid: int, mac: int, mtu: int, friendly_name: str) -> Tap:
        choice = self.choose(nwid)
        tap: Tap
        if choice == USERSPACE:
            tap = self.userspace.create(nwid, mac, mtu, friendly_name)
            self.backends[nwid] = USERSPACE
            return tap
        if self.platform is None:
            if choice == "tap":
                raise TapError(self.platform_problem)
            tap = self._fall_back(nwid, mac, mtu, friendly_name, self.platform_problem)
            self.backends[nwid] = USERSPACE
            return tap
        try:
            tap = self.platform.create(nwid, mac, mtu, friendly_name)
        except TapError as e:
            if choice == "tap":
                raise
            tap = self._fall_back(nwid, mac, mtu, friendly_name, str(e))
            self.backends[nwid] = USERSPACE
            return tap
        self.backends[nwid] = "tap"
        return tap

    def cleanup_stale(self) -> list[str]:
        return self.platform.cleanup_stale() if self.platform is not None else []

    def backend_of(self, nwid: int) -> str:
        """``"tap"`` (the platform's port) or ``"userspace"`` for a network's last port."""
        return self.backends.get(nwid, "")


__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "ILLUMOS",
    "LINUX",
    "USERSPACE",
    "ChoosingTapFactory",
    "default_tap_factory",
    "selected_backend",
]
