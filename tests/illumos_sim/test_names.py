"""Link names illumos accepts, for every network id (ILLUMOS.md §2.1)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ztone.osdep.illumos.names import (
    MAX_LIF_NAME,
    MAX_LINK_NAME,
    is_own_link,
    link_names,
    logical_name,
    stem,
    valid_lif_name,
    valid_link_name,
)

from .simtools import valid_linkname as sim_valid_linkname

NWIDS = st.integers(min_value=0, max_value=(1 << 64) - 1)


def seed_name(prefix: str, nwid: int) -> str:
    """The seed port's name: prefix + 13 characters of base-32 "hex"."""
    alphabet = "0123456789abcdefghijklmnopqrstuv"
    return prefix + "".join(alphabet[(nwid >> s) & 0x1F] for s in range(60, -5, -5))


@given(NWIDS, st.integers(min_value=0, max_value=63))
def test_every_network_id_gives_valid_distinct_names(nwid: int, trial: int) -> None:
    names = link_names(nwid, trial)
    assert len(set(names.all())) == 3
    for name in names.all():
        assert valid_link_name(name), name
        assert sim_valid_linkname(name), name
        assert len(name) <= 15  # fits Linux too (the simulation)
        assert is_own_link(name)
        digits = len(name) - len(name.rstrip("0123456789"))
        assert digits >= 1 and not (digits > 1 and name[-digits] == "0")
        assert not name[0].isdigit() and len(name) <= MAX_LINK_NAME
    assert link_names(nwid, trial) == names  # deterministic


@given(NWIDS, st.integers(min_value=0, max_value=10**19 - 1))
def test_logical_interface_names_fit(nwid: int, unit: int) -> None:
    lif = logical_name(link_names(nwid).visible, unit)
    assert valid_lif_name(lif) and len(lif) <= MAX_LIF_NAME


@given(NWIDS)
def test_seed_names_break_whenever_they_end_in_a_letter(nwid: int) -> None:
    name = seed_name("zt", nwid)
    assert len(name) == 15
    if not name[-1].isdigit():
        assert not valid_link_name(name)


def test_matches_upstream_linux_stem() -> None:
    assert stem(0x8056C2E21C000001) == "ztmjfmfyq5"  # PROTOCOL-NETWORK-SERVICE C.5.2
    assert link_names(0x8056C2E21C000001).visible == "ztmjfmfyq50"


def test_validity_rule_examples() -> None:
    for good in ("net0", "net10", "e1000g0", "zt_a.b9", "a" * 30 + "1"):
        assert valid_link_name(good), good
    for bad in ("net", "net01", "net00", "0net1", "net-1", "", "a" * 31 + "1", "zt:1", "zt0a"):
        assert not valid_link_name(bad), bad
    assert valid_lif_name("net0:1") and valid_lif_name("net0")
    assert not valid_lif_name("net0:01") and not valid_lif_name("net0:x")


def test_own_names_only() -> None:
    assert is_own_link("ztmjfmfyq50") and is_own_link("ztmjfmfyq52")
    for other in ("ztmjfmfyq53", "zt80lm2s8e00001", "net0", "ztmjfmfyq5", "ztMJFMFYQ50"):
        assert not is_own_link(other), other
