"""VL1, the peer-to-peer layer: peers and their paths, roots and moons (topology), the
handling of authenticated packets by verb, and what a root keeps about its members
(PROTOCOL-CORE §6-§8).
"""
