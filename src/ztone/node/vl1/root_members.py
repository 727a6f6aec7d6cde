"""What a root knows of its peers' network memberships (its own rule, not upstream's).

A root answers MULTICAST_GATHER for networks it is not in, so it keeps the LIKEs
of their members. zerotier-one 1.14.1 keeps every LIKE from any peer for any
network id (``_doMULTICAST_LIKE``'s ``amUpstream`` clause), which lets one peer fill
the root's memory with made-up networks. ztone keeps a LIKE on a root only from a
peer that has shown the root a certificate of membership (COM) of that network,
signed by the network's controller (a peer of the root; its address is the top 40
bits of the network id) and issued to that peer. Members already send their COM
with every MULTICAST_GATHER to the root (A.5.12.5); a member whose LIKE arrives
unproven is asked for it with ``ERROR NEED_MEMBERSHIP_CERTIFICATE`` (in re
MULTICAST_LIKE, payload the network id), which both ztone and zerotier-one answer by
pushing NETWORK_CREDENTIALS (PROTOCOL-CORE §6.3, whatever the in-re verb; A.3.7).
Its next LIKE (they come every 60 s) is kept.

Proofs: ``nwid << 40 | address`` -> time proven, least recently proven first,
at most ``ROOT_PROOFS_MAX`` (the oldest goes), valid ``ROOT_PROOF_LIFETIME``;
re-asked for after half of it. COM requests: per peer at most
``ROOT_COM_REQUESTS_PER_PEER`` networks per ``ROOT_COM_REQUEST_INTERVAL``.
"""

from __future__ import annotations

from collections.abc import Container

from ztone.node.bounds import (
    ROOT_COM_REQUEST_INTERVAL,
    ROOT_COM_REQUESTS_PER_PEER,
    ROOT_PROOF_LIFETIME,
    ROOT_PROOFS_MAX,
)


class RootMemberships:
    def __init__(self, max_proofs: int = ROOT_PROOFS_MAX) -> None:
        self.max_proofs = max_proofs
        self._proofs: dict[int, int] = {}
        self._asked: dict[int, dict[int, int]] = {}  # peer -> {nwid: time asked}

    def __len__(self) -> int:
        return len(self._proofs)

    def asked_peers(self) -> int:
        return len(self._asked)

    def prove(self, now: int, nwid: int, address: int) -> None:
        key = (nwid << 40) | address
        self._proofs.pop(key, None)
        while len(self._proofs) >= self.max_proofs:
            del self._proofs[next(iter(self._proofs))]
        self._proofs[key] = now

    def proven(self, now: int, nwid: int, address: int) -> bool:
        t = self._proofs.get((nwid << 40) | address)
        return t is not None and now - t < ROOT_PROOF_LIFETIME

    def should_ask(self, now: int, nwid: int, address: int) -> bool:
        """Ask ``address`` for its COM of ``nwid`` now? (rate-limited; records the ask)."""
        t = self._proofs.get((nwid << 40) | address)
        if t is not None and now - t < ROOT_PROOF_LIFETIME // 2:
            return False
        asked = self._asked.get(address)
        if asked is None:
            asked = self._asked[address] = {}
        else:
            for n in [n for n, a in asked.items() if now - a >= ROOT_COM_REQUEST_INTERVAL]:
                del asked[n]
            if nwid in asked or len(asked) >= ROOT_COM_REQUESTS_PER_PEER:
                return False
        asked[nwid] = now
        return True

    def forget_peer(self, address: int) -> None:
        self._asked.pop(address, None)

    def clean(self, now: int, peers: Container[int]) -> None:
        """Drop expired proofs and the ask records of peers no longer known."""
        while self._proofs:
            key = next(iter(self._proofs))
            if now - self._proofs[key] < ROOT_PROOF_LIFETIME:
                break
            del self._proofs[key]
        for address in [a for a in self._asked if a not in peers]:
            del self._asked[address]
