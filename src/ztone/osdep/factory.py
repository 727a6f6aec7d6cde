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
* unset or empty - by platform.

Any other value is an error (:class:`TapError`), so a typo never silently selects the
platform's backend. The daemon (``ztone.service.runner``) and ``ztone-cli doctor`` ask
:func:`selected_backend` which backend is in use; nothing else looks at the platform or
the variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ztone.crypto.backend import DEFAULT, Backend
from ztone.osdep.base import TapError, TapFactory

BACKEND_ENV = "ZTONE_TAP_BACKEND"
LINUX = "linux"
ILLUMOS = "illumos"
BACKENDS = (LINUX, ILLUMOS)


def selected_backend(environ: Mapping[str, str] | None = None) -> str | None:
    """``"linux"``, ``"illumos"`` or None (no backend for this platform).

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
    raise TapError(f"no virtual network backend for {sys.platform}")


__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "ILLUMOS",
    "LINUX",
    "default_tap_factory",
    "selected_backend",
]
