"""ztone's user-space IPv4/IPv6 network stack: sans-IO, Ethernet frames in and out.

The port backend of no-root mode (issue 15) runs one :class:`~.stack.Stack` per joined
network. Modules: :mod:`.ethernet` (the frame tuple, multicast MACs), :mod:`.arp`,
:mod:`.ndp` and :mod:`.neighbours` (address resolution), :mod:`.ipv4`, :mod:`.ipv6`,
:mod:`.icmp`, :mod:`.udp` (codecs; :mod:`.checksum` over ``ztone.util.inet_checksum``),
:mod:`.tcp_segment` and :mod:`.tcp` (the TCP engine), :mod:`.udp_socket` and
:mod:`.tcp_socket` (what applications hold), :mod:`.routing` (addresses, routes,
next hops), :mod:`.stack` (demultiplexing, timers, bounds). Nothing here does I/O,
reads a clock or draws randomness of its own.

Why pure Python rather than binding lwIP (BSD; Debian's liblwip-dev 2.1.3): the pure
stack moves one TCP connection at several hundred Mbit/s against the Linux kernel
through a TAP on this project's reference VM (``bench/netstack_throughput.py``), well
above the no-root mode's 100 Mbit/s target, runs wherever ztone runs (OmniOS has no
lwIP package, and Debian's is built for the Hurd with fixed options, a 1460-byte MSS),
needs no C toolchain, and is tested and fuzzed like the rest of the core.
"""
