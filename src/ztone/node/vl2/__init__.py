"""VL2, the virtual Ethernet layer: joined networks, members' credentials, frames,
multicast, and the member side of the controller conversation
(PROTOCOL-NETWORK-SERVICE A.2-A.5).
"""
