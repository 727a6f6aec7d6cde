"""ztone's user-space IPv4/IPv6 network stack: sans-IO, Ethernet frames in and out."""
