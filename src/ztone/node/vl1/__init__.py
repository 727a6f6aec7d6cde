"""VL1, the peer-to-peer layer (PROTOCOL-CORE §5-§8): the switch (paths, datagrams in
and out, queues, WHOIS, relaying, rendezvous), the peer table, topology (planet,
moons, upstreams), self-awareness, keepalive and online state, the handling of
authenticated packets by verb (incoming), and what a root keeps about its members.
"""
