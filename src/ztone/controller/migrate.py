"""Copying a controller's networks and members into another store (issue 16).

:func:`migrate` reads every record of a source, a zerotier-one ``controller.d`` tree
(a directory, read as FileDB reads it: B.5) or a ztone SQLite database (a file), and
writes each one as it is (every field, its revision) into the target store, replacing
records with the same ids. Running it again writes the same records, so it is
idempotent. At the end it reads every record back from the target and compares it
with the source: the report's ``mismatches`` names any that differ.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from ztone.controller.objects import address_hex, network_id_hex
from ztone.controller.store import (
    ControllerDTree,
    ControllerStore,
    SqliteStore,
    StoreError,
    read_controller_d,
)
from ztone.controller.stores import open_store


@dataclass
class MigrationReport:
    networks: int = 0
    members: int = 0
    skipped: list[str] = field(default_factory=list)  # source files not loaded, and why
    mismatches: list[str] = field(default_factory=list)  # records the check found different

    @property
    def ok(self) -> bool:
        return not self.mismatches


def read_store(store: ControllerStore) -> ControllerDTree:
    """Every record of ``store``, as a tree."""
    networks = {}
    members = {}
    for nwid in store.list_networks():
        network = store.get_network(nwid)
        if network is None:
            continue  # deleted meanwhile
        networks[nwid] = network
        members[nwid] = {int(m["id"], 16): m for m in store.list_members(nwid)}
    return ControllerDTree(networks, members, [])


def read_source(source: str) -> ControllerDTree:
    """A ``controller.d`` directory or an existing SQLite database file."""
    path = Path(source)
    if path.is_dir():
        return read_controller_d(path)
    if not path.is_file():
        raise StoreError(f"{source}: no such controller.d directory or SQLite database")
    with contextlib.closing(SqliteStore(path)) as store:
        return read_store(store)


def check(target: ControllerStore, tree: ControllerDTree) -> list[str]:
    """The records of ``tree`` that ``target`` does not hold exactly."""
    problems = []
    for nwid, network in tree.networks.items():
        if target.get_network(nwid) != network:
            problems.append(f"network {network_id_hex(nwid)}")
        for address, member in tree.members.get(nwid, {}).items():
            if target.get_member(nwid, address) != member:
                problems.append(f"member {network_id_hex(nwid)}/{address_hex(address)}")
    return problems


def migrate(source: str, target_location: str) -> MigrationReport:
    """Copy ``source`` into the store at ``target_location`` and check the copy."""
    tree = read_source(source)
    report = MigrationReport(
        networks=len(tree.networks),
        members=sum(len(tree.members.get(n, {})) for n in tree.networks),
        skipped=list(tree.skipped),
    )
    with contextlib.closing(open_store(target_location, listen=False)) as target:
        target.import_tree(tree)
        report.mismatches = check(target, tree)
    return report
