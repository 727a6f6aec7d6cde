"""What we hold about one peer on one network (PROTOCOL-NETWORK-SERVICE A.3.7).

Its latest certificate of membership, its tags, capabilities and certificates of
ownership by id, revocation thresholds, and when we last pushed our credentials
to it or announced our multicast groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, TypeVar

from ztone.node.wire.capability import Capability
from ztone.node.wire.com import CertificateOfMembership
from ztone.node.wire.coo import CertificateOfOwnership
from ztone.node.wire.identity import Identity
from ztone.node.wire.tag import Tag

CREDENTIAL_TYPE_COM = 1
CREDENTIAL_TYPE_CAPABILITY = 2
CREDENTIAL_TYPE_TAG = 3
CREDENTIAL_TYPE_COO = 4


Credential = CertificateOfMembership | Capability | Tag | CertificateOfOwnership
"""What has a timestamp and an id (a COM's is always 0)."""
Agreement = tuple[CertificateOfMembership, CertificateOfMembership, Identity, int, bool]


class AddResult(Enum):
    ACCEPTED_NEW = "new"
    ACCEPTED_REDUNDANT = "redundant"
    REJECTED = "rejected"
    NEEDS_WHOIS = "whois"
    NOTED = "noted"  # a root's proof of membership (root_members), not a credential we use


class KeyedCredential(Protocol):
    """A tag, capability or certificate of ownership: held by id, newest wins."""

    @property
    def id(self) -> int: ...

    @property
    def timestamp(self) -> int: ...


K = TypeVar("K", bound=KeyedCredential)


@dataclass(slots=True)
class Membership:
    com: CertificateOfMembership | None = None
    com_revocation_threshold: int = 0
    revocations: dict[tuple[int, int], int] = field(default_factory=dict)
    tags: dict[int, Tag] = field(default_factory=dict)
    capabilities: dict[int, Capability] = field(default_factory=dict)
    coos: dict[int, CertificateOfOwnership] = field(default_factory=dict)
    last_pushed_credentials: int = 0
    last_updated_multicast: int = 0
    last_credential_request: int = 0
    agreement: Agreement | None = field(default=None, compare=False, repr=False)
    """(my COM, this member's COM, its identity, its COM's timestamp, agreement)."""

    def com_allows(self, mine: CertificateOfMembership, identity: Identity) -> bool:
        """Its COM is not revoked and ``mine.agrees_with(self.com, identity)``.

        COMs and identities are immutable, so timestamp and agreement of one triple
        never change; they are remembered instead of recomputed (a SHA-384 of the
        identity) for every frame.
        """
        theirs = self.com
        if theirs is None:
            return False
        memo = self.agreement
        if memo is None or memo[0] is not mine or memo[1] is not theirs or memo[2] is not identity:
            memo = (
                mine,
                theirs,
                identity,
                theirs.timestamp,
                bool(mine.agrees_with(theirs, identity)),
            )
            self.agreement = memo
        return memo[3] > self.com_revocation_threshold and memo[4]

    def credential_timestamp_valid(
        self, cred_type: int, cred: KeyedCredential, my_ts: int, my_ctmd: int
    ) -> bool:
        """``_isCredentialTimestampValid``: within the window and not revoked."""
        if abs(cred.timestamp - my_ts) > my_ctmd:
            return False
        threshold = self.revocations.get((cred_type, cred.id))
        return threshold is None or cred.timestamp > threshold

    def add_com(self, com: CertificateOfMembership, verify: Callable[[], bool]) -> AddResult:
        """Membership::addCredential: the signature is checked only for a COM not held
        already (a peer re-pushes its COM every few seconds while it talks)."""
        if com.timestamp <= self.com_revocation_threshold:
            return AddResult.REJECTED
        if self.com is not None:
            if com.timestamp < self.com.timestamp:
                return AddResult.REJECTED
            if com == self.com:
                return AddResult.ACCEPTED_REDUNDANT
        if not verify():
            return AddResult.REJECTED
        self.com = com
        return AddResult.ACCEPTED_NEW

    def add_keyed(
        self, cred_type: int, table: dict[int, K], cred: K, verify: Callable[[], bool]
    ) -> AddResult:
        current = table.get(cred.id)
        if current is not None:
            if current.timestamp > cred.timestamp:
                return AddResult.REJECTED
            if current == cred:
                return AddResult.ACCEPTED_REDUNDANT
        threshold = self.revocations.get((cred_type, cred.id))
        if threshold is not None and threshold >= cred.timestamp:
            return AddResult.REJECTED
        if not verify():
            return AddResult.REJECTED
        table[cred.id] = cred
        return AddResult.ACCEPTED_NEW

    def add_revocation(self, cred_type: int, cred_id: int, threshold: int) -> AddResult:
        if cred_type == CREDENTIAL_TYPE_COM:
            if threshold > self.com_revocation_threshold:
                self.com_revocation_threshold = threshold
                return AddResult.ACCEPTED_NEW
            return AddResult.ACCEPTED_REDUNDANT
        if cred_type in (CREDENTIAL_TYPE_CAPABILITY, CREDENTIAL_TYPE_TAG, CREDENTIAL_TYPE_COO):
            key = (cred_type, cred_id)
            if threshold > self.revocations.get(key, -1):
                self.revocations[key] = threshold
                # Upstream quirk (A.3.7): any such revocation also revokes the current COM.
                self.com_revocation_threshold = threshold
                return AddResult.ACCEPTED_NEW
            return AddResult.ACCEPTED_REDUNDANT
        return AddResult.REJECTED
