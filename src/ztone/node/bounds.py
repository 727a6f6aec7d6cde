"""Every table a remote party can grow, its bound and its eviction rule, in one place.

A remote party here is anything that reaches us over the wire (a peer, or just a
UDP source address) or through the controller's request path. Each table below has
an explicit bound; when a new entry would cross it, the eviction rule says what
goes. ``tests/sim/test_bounds.py`` floods each table and checks the bound holds and that
legitimate entries still work; ``tests/sim/test_hostile_sim.py`` checks every bound
after a run of mutated, correctly encrypted packets
(:func:`ztone.node.bound_check.node_bound_violations`).

=========================== ========================== ====================================
table (where enforced)      bound                      eviction when full
=========================== ========================== ====================================
peers                       MAX_PEERS (a root of its   the least recently heard 1/16 (never
(peers._make_room)          planet or a moon:          a root); one that returns says HELLO
                            MAX_ROOT_PEERS)
physical paths              MAX_PATHS (a root:         paths no peer uses, oldest first,
(switch.path, _prune_paths) MAX_ROOT_PATHS)            down to 7/8
paths per peer              MAX_PEER_PATHS (64)        the slot of the oldest path
(peer.learn_path)
tried paths per peer        MAX_PEER_TRIED_PATHS       older than 1 s; all when still full
(switch.received)
ECHO gate per peer          MAX_PEER_ECHO_GATES        cleared
(incoming._do_echo)
multicast, per peer         MULTICAST_MAX_PER_PEER     none: the peer's new group is refused
(multicaster.add)
multicast, per network      MULTICAST_MAX_PER_NETWORK  none: a new group is refused (on a
(multicaster.add)                                      root only proven members add any)
multicast, all              MULTICAST_MAX_TOTAL        the least recently liked group
(multicaster.add)
multicast send state        MULTICAST_MAX_TX_GROUPS    oldest group
(multicaster._tx_state)
root membership proofs      ROOT_PROOFS_MAX            least recently proven
(root_members.prove)
root COM requests           ROOT_COM_REQUESTS_PER_PEER none: no request until one is 60 s
(root_members.should_ask)   per peer                   old; peers gone are forgotten
WHOIS queue                 MAX_PENDING_WHOIS          none: a new address is not asked for
(switch.request_whois)                                 until the table drains (500 ms)
receive queue (deferred)    RX_QUEUE_SIZE (32)         oldest
(switch._defer_rx)
send queue (wait WHOIS)     TX_QUEUE_SIZE (32)         oldest
(switch.send)
fragment reassembly         REASSEMBLY_SLOTS (32)      ring: the slot next in turn
(fragment.Reassembler)
reply expectations          256 buckets x 32 ids       oldest in the bucket
(switch.expect_reply)
rendezvous times            MAX_UNITE_ENTRIES          oldest
(switch.unite)
self-awareness reports      MAX_SURFACE_ENTRIES        oldest
(selfaware.iam)
per-IP HELLO rate           IDENTITY_GATE_BUCKETS      none needed: fixed hash buckets of
(node.identity_validation_                             the source /24 (v4) or /48 (v6)
allowed)
bridge routes (MAC ->       MAX_BRIDGE_ROUTES          all routes of the bridge holding the
bridge) per network                                    most (upstream's rule; its bound is
(network.learn_bridge_route)                           64 M, far past any bridged LAN)
network memberships         MAX_MEMBERSHIPS            none: only a verifying credential
(network.add_credential)    per network                creates one, refused when full
peers.d files               MAX_PEER_FILES             older than 30 days, then the least
(service.home.prune_peers)                             recently written (every few minutes)
UDP send caches             4096 each                  cleared when full
(service.udp.UdpSockets)
fast path header templates  FAST_PATH_TEMPLATES        cleared when full
(fastpath.FastPath)         (one per network and peer
                            we send frames to)
receive grants (network,    FAST_GRANTS                none: no new grant (the general path
peer, path)                                            carries the frame); the host's native
(fast_grants.GrantTable)                               table holds the same entries
native reassembly slots     FAST_REASSEMBLY_SLOTS      ring: the slot next in turn, or one
(service's Dataplane)       (256)                      older than FAST_REASSEMBLY_TIMEOUT
native reactor's ring       DATAPLANE_RING_ITEMS       none: the reactor thread stops
(service's Dataplane, its   (4096) items,              reading sockets and ports until
datagrams and port reads    DATAPLANE_RING_BYTES       Python took the ring (the backlog
for Python)                 (4 MiB)                    waits in the kernel's buffers)
counters keyed by wire      32 verbs x 10 ERROR codes  none needed: an unknown ERROR code
values (node.counters,      + 1; 32 unhandled verbs    counts under one key (verbs are 5
incoming._do_error)                                    bits)
UDP datagrams read, not     RX_SOURCES (256) sources,  the newest datagram of the source
yet handed to the core      RX_PER_SOURCE (1024) each, with the most waiting (a new
(service.udp.UdpSockets)    RX_BYTES (4 MiB) in all    source beyond 256: refused)
TCP fallback scope cache    TCP_FALLBACK_SCOPE_CACHE   cleared when full
(service.tcp_fallback)
TCP fallback tunnel queue   TCP_FALLBACK_QUEUE_BYTES   none: a datagram that would cross
(service.tcp_fallback)      (upstream's 64 KiB)        it is dropped
ztone-relay clients         RelayLimits.max_clients    none: a new connection is refused
(relay.server)              (--max-clients, 1024)
ztone-relay per client      128 KiB queued to the      the datagram that would cross it;
(relay.server)              client, 1 partial record,  rate-limited datagrams are dropped;
                            --rate bytes/s             idle --idle-timeout: closed
controller request gate,    CONTROLLER_MAX_PENDING     expired entries, then the oldest
online and authorized       each
members (service.controller)
=========================== ========================== ====================================

Sizes: a stored multicast subscription costs 137-189 bytes (bench/multicast_memory.py),
so MULTICAST_MAX_TOTAL subscriptions stay under 25 MB; a peer costs a few kB.
"""

from __future__ import annotations

MAX_PEERS = 32_768
MAX_PATHS = 65_536
MAX_ROOT_PEERS = 65_536
MAX_ROOT_PATHS = 131_072
# A root answers every node of its world, so it carries far more peers than a leaf
# ever meets (issue 17 asks for 50,000). bench/root.py measured 7-8 kB of daemon RSS
# per peer (2.1 kB in the core, bench/root_core.py): a full root table is ~0.5 GB, a
# full leaf table ~0.25 GB. Paths: two per peer (IPv4 and IPv6).


def max_peers(am_upstream: bool) -> int:
    """The peer table's bound for a root (``am_upstream``) or a leaf."""
    return MAX_ROOT_PEERS if am_upstream else MAX_PEERS


def max_paths(am_upstream: bool) -> int:
    """The physical path table's bound for a root (``am_upstream``) or a leaf."""
    return MAX_ROOT_PATHS if am_upstream else MAX_PATHS


MAX_PEER_PATHS = 64
MAX_PEER_TRIED_PATHS = 64
MAX_PEER_ECHO_GATES = 64

MULTICAST_MAX_PER_PEER = 1_024
MULTICAST_MAX_PER_NETWORK = 65_536
MULTICAST_MAX_TOTAL = 131_072
MULTICAST_MAX_TX_GROUPS = 4_096

ROOT_PROOFS_MAX = 65_536
ROOT_PROOF_LIFETIME = 600_000
ROOT_COM_REQUESTS_PER_PEER = 16
ROOT_COM_REQUEST_INTERVAL = 60_000

MAX_PENDING_WHOIS = 1_024
RX_QUEUE_SIZE = 32
TX_QUEUE_SIZE = 32
REASSEMBLY_SLOTS = 32
MAX_UNITE_ENTRIES = 65_536
MAX_SURFACE_ENTRIES = 4_096
IDENTITY_GATE_BUCKETS = 0x4000
MAX_MEMBERSHIPS = 65_536
MAX_BRIDGE_ROUTES = 65_536

CONTROLLER_MAX_PENDING = 65_536
MAX_PEER_FILES = 65_536
TCP_FALLBACK_SCOPE_CACHE = 4_096
TCP_FALLBACK_QUEUE_BYTES = 65_536
FAST_PATH_TEMPLATES = 4_096
FAST_GRANTS = 1_024
FAST_REASSEMBLY_SLOTS = 256
DATAPLANE_RING_ITEMS = 4_096
DATAPLANE_RING_BYTES = 4 << 20
FAST_REASSEMBLY_TIMEOUT = 500
"""ms; upstream's ZT_FRAGMENTED_PACKET_RECEIVE_TIMEOUT (the general path's ring has no
clock: a set older than this in the native ring is dropped and counted)."""
