"""Linux backend: TAP devices and netlink (needs pyroute2)."""

from ztone.osdep.linux.tap import LinuxTap, LinuxTapFactory

__all__ = ["LinuxTap", "LinuxTapFactory"]
