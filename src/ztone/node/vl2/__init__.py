"""VL2, the virtual Ethernet layer (PROTOCOL-NETWORK-SERVICE A.2-A.5): joined networks
(network: config, credentials, filtering), frames, multicast (and the multicaster's
tables), credentials from peers, and both sides of the controller conversation
(controller_link: the member's; controller_side: this node's controller's).
"""
