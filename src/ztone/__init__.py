"""ztone: a ZeroTier One 1.14 compatible node in Python."""

__version__ = "0.1.0"
