"""NetworkConfig (A.2): the recorded lab configs, writer byte-exactness, reader rules."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VECTORS
from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.capability import Capability
from ztone.node.wire.com import CertificateOfMembership, identity_hash_words
from ztone.node.wire.coo import CertificateOfOwnership
from ztone.node.wire.credential_base import CooThing
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import (
    SPECIALIST_ACTIVE_BRIDGE,
    SPECIALIST_ANCHOR,
    SPECIALIST_MULTICAST_REPLICATOR,
    DnsConfig,
    NetworkConfig,
    NetworkType,
    Route,
    Status,
    request_metadata,
)
from ztone.node.wire.tag import Tag

NETCONF = VECTORS / "netconf"
LAB1 = VECTORS / "lab1"
NWID = 0x1FAD486CAFE468E2
CTRL_PUBLIC = Identity.from_string((NETCONF / "ctrl.identity.public").read_text())
CTRL = Identity.from_string((LAB1 / "ctrl" / "identity.secret").read_text())
MEMBERS = {n: Identity.from_string((LAB1 / n / "identity.secret").read_text()) for n in "ab"}
SCENARIO = json.loads((NETCONF / "scenario.json").read_text())
CONTROLLER_NETWORK = json.loads((NETCONF / "ctrl.network.1fad486cafe468e2.json").read_text())


def _ip(text: str) -> InetAddress:
    return InetAddress.parse(text)


def recorded(node: str) -> bytes:
    return (NETCONF / f"{node}.1fad486cafe468e2.conf").read_bytes()


# --- the recorded configs ------------------------------------------------------------------


@pytest.mark.parametrize("node", ["a", "b"])
def test_recorded_config_fields(node: str) -> None:
    raw = recorded(node)
    config = NetworkConfig.parse(raw)
    member = MEMBERS[node]
    assert SCENARIO["nwid"] == f"{config.network_id:016x}" == "1fad486cafe468e2"
    assert config.issued_to == member.address
    assert config.revision == 1 == CONTROLLER_NETWORK["revision"]
    assert config.credential_time_max_delta == 1_800_000
    assert config.remote_trace_target == 0 and config.remote_trace_level == 0
    assert config.flags == 0x02 and config.enable_broadcast and not config.ndp_emulation
    assert config.multicast_limit == 32 == CONTROLLER_NETWORK["multicastLimit"]
    assert config.type == NetworkType.PRIVATE and config.is_private and not config.is_public
    assert config.name == "lab" == CONTROLLER_NETWORK["name"]
    assert config.mtu == 2800 == CONTROLLER_NETWORK["mtu"]
    assert config.capabilities == () and config.tags == () and config.specialists == ()
    assert config.routes == (Route(_ip("198.19.0.0/24"), None, 0, 0),)
    assert config.static_ips == (InetAddress(ipaddress.ip_address(SCENARIO["ips"][node]), 24),)
    assert (config.rules_raw, config.rule_count) == (b"\x01\x00", 1)  # one ACTION_ACCEPT
    assert config.dns == DnsConfig("", ())
    assert (config.sso_version, config.sso_enabled, config.sso_provider) == (0, False, "default")
    assert config.authentication_url == "" and config.authentication_expiry_time == 0
    assert config.active_bridges() == [] and config.always_contact_addresses() == []

    # The COM: issued by the controller at the config's timestamp, bound to the member.
    com = config.com
    assert com is not None
    assert com.signed_by == CTRL_PUBLIC.address == NWID >> 24 and com.verify(CTRL_PUBLIC)
    assert (com.timestamp, com.network_id, com.issued_to) == (
        config.timestamp,
        NWID,
        member.address,
    )
    # Signing is deterministic: re-issuing the COM with ctrl's key gives the same bytes.
    assert com == CertificateOfMembership.make(config.timestamp, 1_800_000, NWID, member).sign(CTRL)
    assert tuple(q.value for q in com.qualifiers[3:]) == identity_hash_words(member)

    # One COO, id 1, owning exactly the member's static IP (thing type 2 = IPv4).
    (coo,) = config.coos
    assert (coo.id, coo.network_id, coo.timestamp, coo.flags) == (1, NWID, config.timestamp, 0)
    assert coo.issued_to == member.address and coo.signed_by == CTRL_PUBLIC.address
    assert coo.verify(CTRL_PUBLIC)
    assert coo.things == ((CooThing.IPV4, config.static_ips[0].ip.packed + bytes(12)),)
    assert coo.owns_ip(config.static_ips[0])

    # Writing it back reproduces the stored file byte for byte (no trailing newline).
    assert not raw.endswith(b"\n") and b"\x00" not in raw
    assert config.to_dictionary().serialize() == raw
    assert config.serialize() == raw


def test_recorded_configs_agree() -> None:
    ca, cb = (NetworkConfig.parse(recorded(n)) for n in "ab")
    assert ca.com is not None and cb.com is not None
    assert cb.timestamp - ca.timestamp == 19  # issued 19 ms apart
    assert ca.com.agrees_with(cb.com, MEMBERS["b"]) and cb.com.agrees_with(ca.com, MEMBERS["a"])
    assert not ca.com.agrees_with(cb.com, MEMBERS["a"])  # b's COM is bound to b


def test_recorded_config_prefixes() -> None:
    """Cutting the file anywhere gives a config or MalformedPacket, never anything else."""
    raw = recorded("a")
    d = Dictionary.parse(raw)
    binary_cut = 0
    for n in range(len(raw)):
        try:
            NetworkConfig.parse(raw[:n])
        except MalformedPacket:
            binary_cut += 1
    # Every cut inside the C, COO or DNS values (or before nwid/id) is rejected.
    assert binary_cut >= len(d.get("C") or b"") + len(d.get("COO") or b"")


# --- writer byte-exactness ------------------------------------------------------------------


def test_dictionary_example_a16() -> None:
    d = Dictionary()
    d.add("C", bytes.fromhex("01003D0AFF"))
    assert d.serialize() == bytes.fromhex("433D015C305C655C6EFF")
    assert Dictionary.parse(d.serialize()).get("C") == bytes.fromhex("01003D0AFF")


REQUEST_METADATA_A27 = (
    b"v=0000000000000007\nvend=0000000000000001\npv=000000000000000c\n"
    b"majv=0000000000000001\nminv=000000000000000e\nrevv=0000000000000001\n"
    b"mr=0000000000000400\nmc=0000000000000080\nmcr=0000000000000040\n"
    b"mt=0000000000000080\nf=0000000000000000\nrevr=0000000000000001\no=linux/x86_64"
)


def test_request_metadata_a27_z1() -> None:
    blob = request_metadata((1, 14, 1), "linux/x86_64").serialize()
    assert blob == REQUEST_METADATA_A27
    assert len(blob).to_bytes(2, "big") == b"\x01\x07"  # Z.1: meta-data length 263
    with_token = request_metadata((1, 14, 1), "linux/x86_64", auth_token="token:x").serialize()
    assert with_token == REQUEST_METADATA_A27 + b"\na=token:x"


def test_example_a29() -> None:
    """A.2.9's illustrative config, minus its COM and COO."""
    config = NetworkConfig(
        network_id=0x8056C2E21C123456,
        timestamp=0x18C3F2A9B10,
        issued_to=Address(0x89E92CEEE5),
        revision=5,
        flags=0x02,
        multicast_limit=32,
        name="my-network",
        routes=(Route(_ip("10.147.17.0/24")),),
        static_ips=(_ip("10.147.17.5/24"),),
        rules_raw=b"\x01\x00",
        rule_count=1,
    )
    expected = (
        b"v=0000000000000007\nnwid=8056c2e21c123456\nts=0000018c3f2a9b10\n"
        b"ctmd=00000000001b7740\nr=0000000000000005\nid=89e92ceee5\ntt=0000000000\n"
        b"tl=0000000000000000\nf=0000000000000002\nml=0000000000000020\n"
        b"t=0000000000000000\nn=my-network\nmtu=0000000000000af0\n"
        b"RT=\x04\n\x93\x11\\0\\0\x18\\0\\0\\0\\0\\0\n"
        b"I=\x04\n\x93\x11\x05\\0\x18\n"
        b"R=\x01\\0\n"
        b"DNS=" + b"\\0" * 132 + b"\nssov=0000000000000000\nssoe=0"
    ).replace(b"\x04\n\x93", b"\x04\\n\x93")
    assert config.serialize() == expected
    assert NetworkConfig.parse(expected) == config


def test_negative_and_odd_integers_round_trip() -> None:
    config = NetworkConfig(NWID, -2, Address(1), credential_time_max_delta=-1)
    d = config.to_dictionary()
    assert d.get("ts") == b"-0000000000000002" and d.get("ctmd") == b"-0000000000000001"
    assert NetworkConfig.from_dictionary(d) == config


def test_sso_fields() -> None:
    base = NetworkConfig(NWID, 1, Address(1))
    v0 = replace(
        base, sso_enabled=True, authentication_url="https://x/", authentication_expiry_time=9
    )
    d0 = v0.to_dictionary()
    assert d0.keys()[-4:] == ["ssov", "ssoe", "aurl", "aexpt"]
    assert NetworkConfig.from_dictionary(d0) == v0
    v0_no_url = replace(v0, authentication_url="")
    assert "aurl" not in v0_no_url.to_dictionary()
    v1 = replace(
        base,
        sso_version=1,
        sso_enabled=True,
        authentication_url="ignored on write",
        issuer_url="https://issuer/",
        central_auth_url="https://central/",
        sso_nonce="n",
        sso_state="s",
        sso_client_id="c",
        sso_provider="keycloak",
    )
    d1 = v1.to_dictionary()
    assert d1.keys()[-8:] == ["ssov", "ssoe", "iurl", "ssoce", "sson", "ssos", "ssocid", "ssop"]
    assert NetworkConfig.from_dictionary(d1) == replace(v1, authentication_url="")
    d1.remove("ssop")
    d1.add("aurl", "https://auth/")  # read for v1 though never written
    back = NetworkConfig.from_dictionary(d1)
    assert back.sso_provider == "default" and back.authentication_url == "https://auth/"
    disabled = NetworkConfig.from_dictionary(replace(v1, sso_enabled=False).to_dictionary())
    assert (disabled.sso_provider, disabled.issuer_url, disabled.sso_nonce) == ("", "", "")
    v2 = replace(base, sso_version=2, sso_enabled=True)
    assert "ssov" not in v2.to_dictionary() and "ssoe" not in v2.to_dictionary()


# --- reader rules ------------------------------------------------------------------------


def _dict(**values: bytes | str | int) -> Dictionary:
    d = Dictionary()
    for key, value in {"v": 7, "nwid": NWID, "id": "4b3bacddb4", **values}.items():
        d.add(key, value)
    return d


def test_reader_rejects() -> None:
    for key in ("nwid", "id", "v"):
        d = _dict()
        d.remove(key)
        with pytest.raises(MalformedPacket):
            NetworkConfig.from_dictionary(d)
    for bad in ({"nwid": 0}, {"id": "0000000000"}, {"v": 5}, {"id": "10000000000"}):
        with pytest.raises(MalformedPacket):
            NetworkConfig.from_dictionary(_dict(**bad))
    for key in ("C", "COO", "DNS"):
        with pytest.raises(MalformedPacket):
            NetworkConfig.from_dictionary(_dict(**{key: b"\x01\x02"}))
    with pytest.raises(MalformedPacket):
        NetworkConfig.from_dictionary(_dict(C=b""))  # present but empty: rejected upstream too
    with pytest.raises(MalformedPacket):
        NetworkConfig.from_dictionary(_dict(DNS=bytes(128)))  # no server entries
    with pytest.raises(MalformedPacket):
        NetworkConfig.from_dictionary(_dict(RT=b"\x04\x0a\x00\x00\x00\x00\x18\x00\x00"))
    with pytest.raises(MalformedPacket):
        NetworkConfig.from_dictionary(_dict(I=b"\x04\x0a\x00"))
    with pytest.raises(MalformedPacket):
        NetworkConfig.from_dictionary(_dict(R=b"\x01\x05\x00"))


def test_reader_defaults_and_clamps() -> None:
    minimal = NetworkConfig.from_dictionary(Dictionary.parse(b"v=6\nnwid=1fad486cafe468e2\nid=42"))
    assert minimal == NetworkConfig(NWID, 0, Address(0x42), credential_time_max_delta=0)
    assert minimal.mtu == 2800 and minimal.type == NetworkType.PRIVATE and minimal.com is None
    assert NetworkConfig.from_dictionary(_dict(mtu=100)).mtu == 1280
    assert NetworkConfig.from_dictionary(_dict(mtu=20000)).mtu == 10000
    assert NetworkConfig.from_dictionary(_dict(mtu=0x1_0000_0600)).mtu == 1536  # (unsigned int)
    assert NetworkConfig.from_dictionary(_dict(t=1)).is_public
    assert NetworkConfig.from_dictionary(_dict(n="x" * 200)).name == "x" * 127
    assert NetworkConfig.from_dictionary(_dict(id="ff4b3bacddb4")).issued_to == 0x4B3BACDDB4
    # An empty COM (no qualifiers) counts as none, as upstream's operator bool.
    assert NetworkConfig.from_dictionary(_dict(C=b"\x01\x00\x00" + bytes(5))).com is None


def test_reader_blob_lists() -> None:
    cap_a = Capability(NWID, 1, 9, b"\x01\x00", 1).sign(CTRL, 0x4B3BACDDB4)
    cap_b = Capability(NWID, 1, 3, b"", 0).sign(CTRL, 0x4B3BACDDB4)
    tag_a = Tag(NWID, 1, 5, 1, Address(0x4B3BACDDB4)).sign(CTRL)
    tag_b = Tag(NWID, 1, 2, 1, Address(0x4B3BACDDB4)).sign(CTRL)
    d = _dict(
        CAP=cap_a.serialize() + cap_b.serialize() + b"\x00garbage",
        TAG=tag_a.serialize() + tag_b.serialize() + b"\x01",
    )
    config = NetworkConfig.from_dictionary(d)
    assert config.capabilities == (cap_b, cap_a)  # a bad entry ends the list; sorted by id
    assert config.tags == (tag_b, tag_a)
    assert config.capability(9) == cap_a and config.tag(5) == tag_a and config.tag(6) is None
    coos = [CertificateOfOwnership(NWID, 1, i, Address(1)).sign(CTRL) for i in range(6)]
    config = NetworkConfig.from_dictionary(_dict(COO=b"".join(c.serialize() for c in coos)))
    assert config.coos == tuple(coos[:4])  # beyond four: parsed and dropped
    words = b"".join(i.to_bytes(8, "big") for i in range(300))
    assert NetworkConfig.from_dictionary(_dict(S=words + b"\x01\x02")).specialists == tuple(
        range(256)
    )
    route = b"\x04\x0a\x00\x00\x00\x00\x18" + b"\x04\x0a\x00\x00\x01\x00\x00" + b"\x00\x01\x00\x02"
    config = NetworkConfig.from_dictionary(_dict(RT=route * 130))
    assert len(config.routes) == 128
    assert config.routes[0] == Route(_ip("10.0.0.0/24"), _ip("10.0.0.1/0"), 1, 2)
    ips = b"\x04\x0a\x00\x00\x05\x00\x18" * 40
    assert NetworkConfig.from_dictionary(_dict(I=ips)).static_ips == (_ip("10.0.0.5/24"),) * 32
    # Null entries are dropped (they count toward the limits).
    assert NetworkConfig.from_dictionary(_dict(I=b"\x00" + ips[:7])).static_ips == (
        _ip("10.0.0.5/24"),
    )
    rules = b"\x01\x00" * 1030
    config = NetworkConfig.from_dictionary(_dict(R=rules))
    assert config.rule_count == 1024 and config.rules_raw == b"\x01\x00" * 1024
    dns = b"zt.example".ljust(128, b"\x00") + b"\x04\x0a\x00\x00\x01\x00\x35" + b"\x00" * 3
    assert NetworkConfig.from_dictionary(_dict(DNS=dns)).dns == DnsConfig(
        "zt.example", (_ip("10.0.0.1/53"),)
    )
    long_domain = b"d" * 128 + b"\x00" * 4
    assert NetworkConfig.from_dictionary(_dict(DNS=long_domain)).dns.domain == "d" * 127


def test_specialists_and_status() -> None:
    config = NetworkConfig(NWID, 1, Address(1))
    config = config.with_specialist(0x1111111111, SPECIALIST_ACTIVE_BRIDGE)
    config = config.with_specialist(0x2222222222, SPECIALIST_ANCHOR)
    config = config.with_specialist(0x2222222222, SPECIALIST_MULTICAST_REPLICATOR)
    config = config.with_specialist(0x3333333333, SPECIALIST_MULTICAST_REPLICATOR)
    assert config.specialists == (
        SPECIALIST_ACTIVE_BRIDGE | 0x1111111111,
        SPECIALIST_ANCHOR | SPECIALIST_MULTICAST_REPLICATOR | 0x2222222222,
        SPECIALIST_MULTICAST_REPLICATOR | 0x3333333333,
    )
    assert config.active_bridges() == [0x1111111111]
    assert config.anchors() == [0x2222222222]
    assert config.multicast_replicators() == [0x2222222222, 0x3333333333]
    assert config.always_contact_addresses() == [0x2222222222, 0x3333333333]
    assert config.permits_bridging(0x1111111111) and not config.permits_bridging(0x2222222222)
    assert config.is_multicast_replicator(0x3333333333)
    assert NetworkConfig.parse(config.serialize()).specialists == config.specialists
    assert [(s.value, s.api_string) for s in Status] == [
        (0, "REQUESTING_CONFIGURATION"),
        (1, "OK"),
        (2, "ACCESS_DENIED"),
        (3, "NOT_FOUND"),
        (4, "PORT_ERROR"),
        (5, "CLIENT_TOO_OLD"),
        (6, "AUTHENTICATION_REQUIRED"),
    ]


# --- properties --------------------------------------------------------------------------

_inets = st.builds(
    InetAddress,
    st.one_of(
        st.integers(0, (1 << 32) - 1).map(ipaddress.IPv4Address),
        st.integers(0, (1 << 128) - 1).map(ipaddress.IPv6Address),
    ),
    st.integers(0, 0xFFFF),
)
_text = st.text(st.characters(min_codepoint=1, max_codepoint=0x7E), max_size=40)


@settings(max_examples=60)
@given(
    st.integers(1, (1 << 64) - 1),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.integers(1, (1 << 40) - 1),
    st.integers(0, (1 << 64) - 1),
    _text,
    st.lists(st.builds(Route, _inets, st.one_of(st.none(), _inets)), max_size=4),
    st.lists(_inets, max_size=4),
    st.lists(st.integers(0, (1 << 64) - 1), max_size=4),
    st.builds(DnsConfig, _text, st.lists(_inets, max_size=4).map(tuple)),
    st.integers(0, 1),
    st.booleans(),
)
def test_roundtrip_property(
    nwid: int,
    ts: int,
    issued_to: int,
    flags: int,
    name: str,
    routes: list[Route],
    ips: list[InetAddress],
    specialists: list[int],
    dns: DnsConfig,
    sso_version: int,
    sso_enabled: bool,
) -> None:
    config = NetworkConfig(
        nwid,
        ts,
        Address(issued_to),
        flags=flags,
        name=name,
        routes=tuple(routes),
        static_ips=tuple(ips),
        specialists=tuple(specialists),
        dns=dns,
        rules_raw=b"\x01\x00\x00\x00",
        rule_count=2,
        sso_version=sso_version,
        sso_enabled=sso_enabled,
        issuer_url="https://i/" if sso_enabled and sso_version == 1 else "",
        sso_provider="" if sso_version == 1 and not sso_enabled else "default",
    )
    assert NetworkConfig.parse(config.serialize()) == config


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_dictionaries_raise_only_malformed(data: bytes) -> None:
    for blob in (data, b"v=7\nnwid=1\nid=1\n" + data):
        try:
            NetworkConfig.parse(blob)
        except MalformedPacket:
            pass


@settings(max_examples=200)
@given(st.sampled_from(["C", "CAP", "TAG", "COO", "S", "RT", "I", "R", "DNS"]), st.binary())
def test_random_blobs_raise_only_malformed(key: str, blob: bytes) -> None:
    try:
        NetworkConfig.from_dictionary(_dict(**{key: blob}))
    except MalformedPacket:
        pass
