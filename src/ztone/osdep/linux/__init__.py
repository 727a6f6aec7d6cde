"""Linux backend (needs pyroute2): :mod:`.tun` (TAP descriptor, frame device),
:mod:`.netlink` (link configuration), :mod:`.stale` (leftover devices), :mod:`.tap`
(the port and its factory)."""

from ztone.osdep.linux.tap import LinuxTap, LinuxTapFactory

__all__ = ["LinuxTap", "LinuxTapFactory"]
