"""ztone: a ZeroTier One 1.14 compatible node in Python."""

__version__ = "0.1.0"

PROTOCOL_VERSION = "1.14.1"  # the ZeroTier One release whose protocol and interfaces ztone follows


def version_line(program: str) -> str:
    """What ``--version`` prints: ztone's own version beside the protocol version."""
    name = program if program == "ztone" else f"{program} (ztone)"
    return f"{name} {__version__}, speaks ZeroTier One {PROTOCOL_VERSION}\n"
