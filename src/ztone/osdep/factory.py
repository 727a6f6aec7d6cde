"""The virtual port backend for this platform (the one place that looks at ``sys.platform``)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import cast

from .base import TapError, TapFactory


def default_tap_factory(home: str | os.PathLike[str] | None = None) -> TapFactory:
    """The platform's :class:`TapFactory`; :class:`TapError` if there is none.

    ``home`` is the daemon's home directory (Linux reads ``devicemap`` there).
    Linux: :class:`ztone.osdep.linux.LinuxTapFactory`. illumos (``sunos``):
    ``ztone.osdep.illumos.IllumosTapFactory``, imported only here and only if present.
    """
    platform = sys.platform
    if platform.startswith("linux"):
        try:
            from .linux import LinuxTapFactory  # noqa: PLC0415 (needs pyroute2)
        except ImportError as e:
            raise TapError(f"Linux virtual network backend unavailable: {e}") from None
        return LinuxTapFactory(home)
    if platform.startswith("sunos"):
        try:
            module = importlib.import_module("ztone.osdep.illumos")
        except ImportError as e:
            raise TapError(f"no virtual network backend for {platform}: {e}") from None
        factory_type = getattr(module, "IllumosTapFactory", None)
        if factory_type is None:
            raise TapError(f"no virtual network backend for {platform}")
        return cast(TapFactory, factory_type(home))
    raise TapError(f"no virtual network backend for {platform}")
