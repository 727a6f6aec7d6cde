"""Worlds (planet and moons), upstreams and roles (PROTOCOL-CORE §7.3, §7.4).

Upstreams are the roots of the planet and of every moon, this node excluded. A
root's physical paths are pinned to the IPs of its stable endpoints (any port).
"""

from __future__ import annotations

from ztone.node.status import Role
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import World, WorldType


class Topology:
    def __init__(self, my_address: int, planet: World) -> None:
        self.my_address = my_address
        self.planet = planet
        self.moons: dict[int, World] = {}
        self.moon_seeds: dict[int, int] = {}  # world id -> seed address, while waiting
        self._upstreams: dict[int, tuple[InetAddress, ...]] = {}
        self._roles: dict[int, Role] = {}
        self.am_upstream = False
        self.generation = 0  # bumped whenever the set of upstreams may have changed
        self._memoize()

    def _memoize(self) -> None:
        upstreams: dict[int, list[InetAddress]] = {}
        roles: dict[int, Role] = {}
        am_upstream = False
        for world, role in [(self.planet, Role.PLANET)] + [
            (m, Role.MOON) for m in self.moons.values()
        ]:
            for root in world.roots:
                addr = int(root.identity.address)
                if addr == self.my_address:
                    am_upstream = True
                    continue
                upstreams.setdefault(addr, []).extend(root.stable_endpoints)
                if roles.get(addr) is not Role.PLANET:
                    roles[addr] = role
        self._upstreams = {a: tuple(e) for a, e in upstreams.items()}
        self._roles = roles
        self.am_upstream = am_upstream
        self.generation += 1

    # --- queries ---------------------------------------------------------------

    def upstream_addresses(self) -> list[int]:
        return sorted(self._upstreams)

    def stable_endpoints(self, address: int) -> tuple[InetAddress, ...]:
        return self._upstreams.get(address, ())

    def is_upstream(self, address: int) -> bool:
        return address in self._upstreams

    def role(self, address: int) -> Role:
        return self._roles.get(address, Role.LEAF)

    def is_prohibited_endpoint(self, address: int, endpoint: InetAddress) -> bool:
        """A root may only be reached at the IPs of its stable endpoints (if it lists any)."""
        endpoints = self._upstreams.get(address)
        if not endpoints:
            return False
        return all(e.ip != endpoint.ip for e in endpoints)

    def root_identities(self) -> dict[int, World]:
        """Map of upstream address -> a world listing it (for identities of roots)."""
        out: dict[int, World] = {}
        for world in [self.planet, *self.moons.values()]:
            for root in world.roots:
                out.setdefault(int(root.identity.address), world)
        return out

    def should_accept_world_update_from(self, address: int) -> bool:
        if address in self._upstreams:
            return True
        return address in self.moon_seeds.values()

    # --- updates ---------------------------------------------------------------

    def add_world(self, world: World, always_accept_new: bool) -> bool:
        """Apply the acceptance rule of §7.3; True if ``world`` was taken."""
        if world.type == WorldType.PLANET:
            if not self.planet.is_null and not self.planet.should_be_replaced_by(world):
                return False
            self.planet = world
        elif world.type == WorldType.MOON:
            current = self.moons.get(world.id)
            if current is not None:
                if not current.should_be_replaced_by(world):
                    return False
            elif not always_accept_new:
                seed = self.moon_seeds.get(world.id)
                if seed is None or all(int(r.identity.address) != seed for r in world.roots):
                    return False
            self.moon_seeds.pop(world.id, None)
            self.moons[world.id] = world
        else:
            return False
        self._memoize()
        return True

    def remove_moon(self, world_id: int) -> bool:
        found = self.moons.pop(world_id, None) is not None
        found = self.moon_seeds.pop(world_id, None) is not None or found
        self._memoize()
        return found
