"""local.conf and networks.d/<nwid>.local.conf (PROTOCOL-NETWORK-SERVICE C.1.3, C.1.4)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.node.wire.inetaddress import InetAddress
from ztone.service.config import (
    ConfigError,
    LocalConf,
    NetworkLocalSettings,
    Settings,
    dump_local_conf,
    format_network_local_conf,
    load_local_conf,
    parse_local_conf,
    parse_network_local_conf,
    read_network_local_conf,
    update_settings,
    write_network_local_conf,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
HOME_A = VECTORS / "homes" / "a"
SHARED_LAB1 = Path("/work/shared/vectors/lab1")

ip = ipaddress.ip_address
net = ipaddress.ip_network


def conf_error(data: Any, file: str = "local.conf") -> str:
    with pytest.raises(ConfigError) as info:
        LocalConf.from_json(data, file)
    return str(info.value)


# --- loading ------------------------------------------------------------------------------


def test_recorded_local_conf_loads() -> None:
    conf = load_local_conf(HOME_A / "local.conf")
    s = conf.settings
    assert s.port_mapping_enabled is False
    assert s.allow_tcp_fallback_relay is False
    assert s.allow_secondary_port is False
    assert s.primary_port is None
    assert conf.primary_port(9993) == 9993
    assert conf.warnings == []
    assert conf.raw == json.loads((HOME_A / "local.conf").read_text())


@pytest.mark.skipif(not SHARED_LAB1.is_dir(), reason="shared vectors not on this machine")
def test_all_shared_recorded_local_confs_load() -> None:
    paths = sorted(SHARED_LAB1.glob("*/home/local.conf"))
    assert paths
    for path in paths:
        assert load_local_conf(path).warnings == []


def test_missing_and_empty_files_give_defaults(tmp_path: Path) -> None:
    conf = load_local_conf(tmp_path / "local.conf")
    assert conf.raw == {}
    assert conf.warnings == []
    (tmp_path / "local.conf").write_text(" \n")
    assert load_local_conf(tmp_path / "local.conf").raw == {}


def test_defaults() -> None:
    s = LocalConf().settings
    assert s.primary_port is None
    assert (s.secondary_port, s.tertiary_port) == (0, 0)
    assert s.allow_secondary_port and s.port_mapping_enabled and s.allow_tcp_fallback_relay
    assert not s.force_tcp_relay
    assert s.tcp_fallback_relay == InetAddress.parse("204.80.128.1/443")
    assert s.bind == [] and s.interface_prefix_blacklist == [] and s.allow_management_from == []
    assert not (s.low_bandwidth_mode or s.multicore_enabled or s.cpu_pinning_enabled)
    assert s.concurrency == 1
    assert not s.enable_web_server
    assert s.software_update == "disable"
    assert s.software_update_channel == "release"
    assert not s.software_update_dist
    assert s.controller_db_path is None and s.sso_redirect_url is None
    assert s.controller_db is None and s.redis is None and s.vault is None
    assert s.default_bonding_policy is None
    assert s.policies == {} and s.peer_specific_bonds == {}
    assert LocalConf().physical == {} and LocalConf().virtual == {}


FULL = {
    "physical": {
        "10.0.0.0/24": {"blacklist": True, "trustedPathId": 12345, "mtu": 1400},
        "10.0.0.0/16": {"mtu": 9000},
        "0.0.0.0/0": {"blacklist": True},
        "fd00::1/64": {"trustedPathId": (1 << 64) - 1},
    },
    "virtual": {
        "89e92ceee5": {"try": ["203.0.113.5/9993"], "blacklist": ["192.168.0.0/16"]},
        "0123456789": {"try": ["2001:db8::1/9993"]},
    },
    "settings": {
        "primaryPort": 9994,
        "secondaryPort": 0,
        "tertiaryPort": 65535,
        "allowSecondaryPort": False,
        "portMappingEnabled": False,
        "allowTcpFallbackRelay": True,
        "forceTcpRelay": False,
        "tcpFallbackRelay": "198.18.0.1/443",
        "bind": ["198.18.0.5", "::", "0.0.0.0"],
        "interfacePrefixBlacklist": ["docker", "veth"],
        "allowManagementFrom": ["198.18.0.0/15", "fd00::/8", "10.1.2.3/8"],
        "lowBandwidthMode": True,
        "multicoreEnabled": True,
        "concurrency": 4,
        "cpuPinningEnabled": True,
        "enableWebServer": True,
        "softwareUpdate": "apply",
        "softwareUpdateChannel": "beta",
        "softwareUpdateDist": True,
        "controllerDbPath": "/var/lib/ctl",
        "ssoRedirectURL": "https://example.invalid/sso",
        "controllerDb": {"type": "lf", "host": "x", "port": 9999},
        "redis": {"hostname": "h", "port": 6379, "password": "p", "clusterMode": False},
        "vault": {"vaultURL": "u", "vaultToken": "t", "vaultPath": "p"},
        "defaultBondingPolicy": "custom",
        "policies": {"custom": {"basePolicy": "active-backup", "failoverInterval": 5000}},
        "peerSpecificBonds": {"89e92ceee5": "custom"},
    },
}


def test_every_setting_parses() -> None:
    conf = LocalConf.from_json(json.loads(json.dumps(FULL)))
    assert conf.warnings == []
    s = conf.settings
    assert s.primary_port == 9994 and conf.primary_port(1) == 9994
    assert s.tertiary_port == 65535
    assert s.tcp_fallback_relay == InetAddress.parse("198.18.0.1/443")
    assert s.bind == [ip("198.18.0.5"), ip("::"), ip("0.0.0.0")]
    assert s.interface_prefix_blacklist == ["docker", "veth"]
    assert s.allow_management_from == [net("198.18.0.0/15"), net("fd00::/8"), net("10.0.0.0/8")]
    assert conf.management_networks() == s.allow_management_from
    assert s.concurrency == 4 and s.multicore_enabled and s.cpu_pinning_enabled
    assert s.software_update == "apply" and s.software_update_channel == "beta"
    assert s.controller_db == {"type": "lf", "host": "x", "port": 9999}
    assert s.redis is not None and s.redis["port"] == 6379
    assert s.vault is not None and s.vault["vaultPath"] == "p"
    assert s.default_bonding_policy == "custom"
    assert s.policies["custom"]["basePolicy"] == "active-backup"
    assert s.peer_specific_bonds == {0x89E92CEEE5: "custom"}
    assert conf.raw == FULL


def test_physical_helpers() -> None:
    conf = LocalConf.from_json(FULL)
    assert conf.trusted_paths() == [
        (net("10.0.0.0/24"), 12345),
        (net("fd00::/64"), (1 << 64) - 1),
    ]
    assert conf.physical_mtu(ip("10.0.0.7")) == 1400  # the most specific network
    assert conf.physical_mtu(InetAddress.parse("10.0.5.7/9993")) == 9000
    assert conf.physical_mtu(ip("10.1.0.1")) is None
    assert conf.physical_mtu(ip("fd00::5")) is None  # mtu 0 = default
    assert conf.is_blacklisted(ip("10.0.0.200"))
    assert conf.is_blacklisted(InetAddress.parse("10.0.0.1/9993"))
    assert not conf.is_blacklisted(ip("10.0.1.1"))  # 10.0.0.0/16 is not blacklisted
    assert not conf.is_blacklisted(ip("8.8.8.8"))  # 0.0.0.0/0 is ignored (bits must be > 0)
    assert conf.blacklisted_networks() == [net("10.0.0.0/24")]
    configs = conf.physical_path_configs()
    assert (net("10.0.0.0/16"), 0, 9000) in configs
    assert len(configs) == 4


def test_virtual_helpers() -> None:
    conf = LocalConf.from_json(FULL)
    assert conf.peer_try_addresses(0x89E92CEEE5) == [InetAddress.parse("203.0.113.5/9993")]
    assert conf.peer_try_addresses(0x0123456789) == [InetAddress.parse("2001:db8::1/9993")]
    assert conf.peer_try_addresses(0x1111111111) == []
    assert conf.peer_blacklisted(0x89E92CEEE5, ip("192.168.3.4"))
    assert conf.peer_blacklisted(0x89E92CEEE5, InetAddress.parse("192.168.3.4/9993"))
    assert not conf.peer_blacklisted(0x89E92CEEE5, ip("192.169.0.1"))
    assert not conf.peer_blacklisted(0x0123456789, ip("192.168.3.4"))
    assert not conf.peer_blacklisted(0x1111111111, ip("192.168.3.4"))


def test_upper_case_virtual_key() -> None:
    conf = LocalConf.from_json({"virtual": {"89E92CEEE5": {"try": ["1.2.3.4/5"]}}})
    assert conf.peer_try_addresses(0x89E92CEEE5) == [InetAddress.parse("1.2.3.4/5")]


def test_unknown_keys_are_kept_and_reported() -> None:
    data = {
        "comment": "hi",
        "settings": {"primaryPort": 1, "someFutureKey": [1, 2], "primary_port": 5},
        "physical": {"10.0.0.0/8": {"mtu": 1400, "extra": 1}},
        "virtual": {"89e92ceee5": {"hint": 1}},
    }
    conf = LocalConf.from_json(data, "/h/local.conf")
    assert sorted(conf.warnings) == sorted(
        [
            "/h/local.conf: comment: unknown key (ignored)",
            "/h/local.conf: settings.someFutureKey: unknown key (ignored)",
            "/h/local.conf: settings.primary_port: unknown key (ignored)",
            '/h/local.conf: physical["10.0.0.0/8"].extra: unknown key (ignored)',
            "/h/local.conf: virtual.89e92ceee5.hint: unknown key (ignored)",
        ]
    )
    assert conf.settings.primary_port == 1  # the snake_case spelling is not an alias
    assert conf.raw["settings"]["someFutureKey"] == [1, 2]  # kept for GET /config
    assert conf.raw is data


# --- bad values ---------------------------------------------------------------------------

NOT_INT: list[Any] = ["abc", "9993", 1.5, True, None, [], {}]
NOT_BOOL: list[Any] = [1, 0, "true", "1", None, [], {}]
NOT_STR: list[Any] = [1, True, None, [], {}]
NOT_OBJECT: list[Any] = ["x", 1, True, [], None]

BAD_SETTINGS: list[tuple[str, Any]] = [
    *[
        (k, v)
        for k in ("primaryPort", "secondaryPort", "tertiaryPort")
        for v in [*NOT_INT, -1, 65536]
        if not (k == "primaryPort" and v is None)
    ],
    *[
        (k, v)
        for k in (
            "allowSecondaryPort",
            "portMappingEnabled",
            "allowTcpFallbackRelay",
            "forceTcpRelay",
            "lowBandwidthMode",
            "multicoreEnabled",
            "cpuPinningEnabled",
            "enableWebServer",
            "softwareUpdateDist",
            "allowLoopbackPaths",
            "tcpFallbackRelayAnyScope",
        )
        for v in NOT_BOOL
    ],
    *[("concurrency", v) for v in [*NOT_INT, -1, 1 << 32]],
    *[("tcpFallbackAfter", v) for v in [*NOT_INT, 0, 999, 86_400_001]],
    *[("tcpFallbackRelay", v) for v in [*NOT_STR, "nonsense", "1.2.3.4", "1.2.3.4/70000", "x/1"]],
    *[("bind", v) for v in ["1.2.3.4", {}, 1, [1], ["nope"], [None], ["1.2.3.4", "1.2.3"]]],
    *[("interfacePrefixBlacklist", v) for v in ["eth", 1, [1], [None], [["eth"]]]],
    *[
        ("allowManagementFrom", v)
        for v in ["10.0.0.0/8", ["10.0.0.1"], ["10.0.0.0/33"], ["::/129"], ["x/8"], [8], [[]]]
    ],
    *[("softwareUpdate", v) for v in ["never", "Apply", 1, None]],
    *[("softwareUpdateChannel", v) for v in NOT_STR],
    *[
        (k, v)
        for k in (
            "controllerDbPath",
            "controllerDbUrlFile",
            "controllerDbUrlEnv",
            "ssoRedirectURL",
            "defaultBondingPolicy",
        )
        for v in NOT_STR
        if v is not None
    ],
    *[(k, v) for k in ("controllerDb", "redis", "vault") for v in NOT_OBJECT if v is not None],
    *[("policies", v) for v in [*NOT_OBJECT, {"p": 1}, {"p": []}]],
    *[
        ("peerSpecificBonds", v)
        for v in [*NOT_OBJECT, {"xyz": "p"}, {"89e92ceee5": 1}, {"0000000000": "p"}]
    ],
]


@pytest.mark.parametrize(("key", "value"), BAD_SETTINGS)
def test_bad_setting_names_key(key: str, value: Any) -> None:
    message = conf_error({"settings": {key: value}}, "/home/zt/local.conf")
    assert message.startswith(f"/home/zt/local.conf: settings.{key}"), message
    assert "expected" in message
    assert message.count("\n") == 0


OPTIONAL_SETTINGS = [
    "primaryPort",
    "controllerDbPath",
    "controllerDbUrlFile",
    "controllerDbUrlEnv",
    "ssoRedirectURL",
    "defaultBondingPolicy",
    "controllerDb",
    "redis",
    "vault",
]


@pytest.mark.parametrize("key", OPTIONAL_SETTINGS)
def test_null_means_not_set_for_optional_settings(key: str) -> None:
    conf = LocalConf.from_json({"settings": {key: None}})
    name = next(f.name for f in msgspec.structs.fields(Settings) if f.encode_name == key)
    assert getattr(conf.settings, name) is None


def test_every_settings_key_is_covered_by_bad_values() -> None:
    aliases = {f.encode_name for f in msgspec.structs.fields(Settings)}
    assert {k for k, _ in BAD_SETTINGS} == aliases


def test_example_message() -> None:
    assert (
        conf_error({"settings": {"primaryPort": "abc"}})
        == 'local.conf: settings.primaryPort: expected an integer from 0 to 65535, got "abc"'
    )


def test_list_element_path() -> None:
    message = conf_error({"settings": {"bind": ["1.2.3.4", "nope"]}})
    assert message == 'local.conf: settings.bind[1]: expected an IP address, got "nope"'


def test_several_problems_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        LocalConf.from_json({"settings": {"primaryPort": "a", "forceTcpRelay": 1}})
    keys = sorted(k for k, _ in info.value.problems)
    assert keys == ["settings.forceTcpRelay", "settings.primaryPort"]
    assert info.value.file == "local.conf"


def test_every_problem_of_every_section_reported_in_file_order() -> None:
    """msgspec stops at the first error; the schema walk goes on and names them all."""
    data = {
        "physical": {
            "10.0.0.0/33": {"mtu": 1400},
            "10.0.0.0/8": {"blacklist": 1, "trustedPathId": -1, "mtu": "9000"},
        },
        "virtual": {"zz": {}, "89e92ceee5": {"try": ["1.2.3.4/1", "nope"], "blacklist": "x"}},
        "settings": {
            "primaryPort": "a",
            "bind": ["1.2.3.4", "1.2.3"],
            "softwareUpdate": "never",
            "peerSpecificBonds": {"xyz": 5},
            "policies": {"p": []},
            "tcpFallbackRelay": None,
            "redis": [],
        },
    }
    with pytest.raises(ConfigError) as info:
        LocalConf.from_json(data, "/h/local.conf")
    assert info.value.problems == [
        ('physical["10.0.0.0/33"]', 'invalid key: expected an IP network "ip/bits", got '
         '"10.0.0.0/33"'),
        ('physical["10.0.0.0/8"].blacklist', "expected true or false, got 1"),
        ('physical["10.0.0.0/8"].trustedPathId',
         "expected an integer from 0 to 18446744073709551615, got -1"),
        ('physical["10.0.0.0/8"].mtu', 'expected an integer from 0 to 65535, got "9000"'),
        ("virtual.zz", 'invalid key: expected a ZeroTier address (10 hex digits), got "zz"'),
        ("virtual.89e92ceee5.try[1]", 'expected an address "ip/port", got "nope"'),
        ("virtual.89e92ceee5.blacklist", 'expected a JSON array, got "x"'),
        ("settings.primaryPort", 'expected an integer from 0 to 65535, got "a"'),
        ("settings.tcpFallbackRelay", 'expected an address "ip/port", got null'),
        ("settings.bind[1]", 'expected an IP address, got "1.2.3"'),
        ("settings.softwareUpdate",
         'expected one of "apply", "download", "disable", got "never"'),
        ("settings.redis", "expected a JSON object, got []"),
        ("settings.policies", 'policy "p": expected a JSON object, got []'),
        ("settings.peerSpecificBonds.xyz",
         'invalid key: expected a ZeroTier address (10 hex digits), got "xyz"'),
        ("settings.peerSpecificBonds.xyz", "expected a string, got 5"),
    ]  # fmt: skip
    lines = str(info.value).splitlines()
    assert len(lines) == 15
    assert lines[9] == '/h/local.conf: settings.bind[1]: expected an IP address, got "1.2.3"'


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(max_size=12) | st.sampled_from(
        ["10.0.0.0/8", "1.2.3.4/9993", "89e92ceee5", "::1", "apply", "tcp", "in"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) |
        st.sampled_from(["10.0.0.0/8", "0123456789", "try", "mtu", "blacklist"]), inner,
        max_size=4),
    max_leaves=20,
)  # fmt: skip
SETTINGS_KEYS = st.sampled_from(
    [f.encode_name for f in msgspec.structs.fields(Settings)] + ["socks5", "networks", "x"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["physical", "virtual", "settings", "other"]),
        JSON_VALUES | st.dictionaries(SETTINGS_KEYS, JSON_VALUES, max_size=6),
        max_size=4,
    )
)
def test_any_json_object_loads_or_is_refused_with_named_problems(data: dict[str, Any]) -> None:
    """Whatever the JSON, reading it gives a LocalConf or a ConfigError whose every
    problem has a reason; nothing else escapes (a bug in the schema walk would)."""
    try:
        conf = LocalConf.from_json(data)
    except ConfigError as e:
        assert e.problems and all(reason for _, reason in e.problems)
        return
    assert conf.raw is data
    assert isinstance(conf.settings, Settings)


@pytest.mark.parametrize("key", ["10.0.0.0", "bogus", "10.0.0.0/33", "", "10.0.0.0/x", "::/200"])
def test_bad_physical_key_named(key: str) -> None:
    message = conf_error({"physical": {key: {"blacklist": True}}})
    assert message.startswith(f"local.conf: physical[{json.dumps(key)}]: invalid key") or (
        message.startswith(f"local.conf: physical.{key}: invalid key")
    ), message
    assert "ip/bits" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("blacklist", 1),
        ("blacklist", "yes"),
        ("trustedPathId", -1),
        ("trustedPathId", "1"),
        ("trustedPathId", 1 << 64),
        ("trustedPathId", 1.0),
        ("mtu", "1400"),
        ("mtu", -1),
        ("mtu", 70000),
    ],
)
def test_bad_physical_value_named(field: str, value: Any) -> None:
    message = conf_error({"physical": {"10.0.0.0/8": {field: value}}})
    assert message.startswith(f'local.conf: physical["10.0.0.0/8"].{field}: '), message


@pytest.mark.parametrize("entry", [1, [], "x", None])
def test_bad_physical_entry(entry: Any) -> None:
    message = conf_error({"physical": {"10.0.0.0/8": entry}})
    assert message.startswith('local.conf: physical["10.0.0.0/8"]: expected a JSON object')


@pytest.mark.parametrize("key", ["89e92ceee", "89e92ceee5a", "zzzzzzzzzz", "0000000000", ""])
def test_bad_virtual_key_named(key: str) -> None:
    message = conf_error({"virtual": {key: {}}})
    assert "invalid key" in message and "ZeroTier address" in message, message
    assert message.startswith("local.conf: virtual"), message
    assert json.dumps(key) in message


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("try", ["1.2.3.4"], "try[0]"),
        ("try", "1.2.3.4/1", "try"),
        ("try", [1], "try[0]"),
        ("try", ["1.2.3.4/1", "nope/1"], "try[1]"),
        ("try", ["1.2.3.4/"], "try[0]"),
        ("try", ["1.2.3.4/+5"], "try[0]"),
        ("blacklist", ["1.2.3.4"], "blacklist[0]"),
        ("blacklist", ["foo/8"], "blacklist[0]"),
        ("blacklist", {}, "blacklist"),
    ],
)
def test_bad_virtual_value_named(field: str, value: Any, path: str) -> None:
    message = conf_error({"virtual": {"89e92ceee5": {field: value}}})
    assert message.startswith(f"local.conf: virtual.89e92ceee5.{path}: "), message


@pytest.mark.parametrize("section", ["physical", "virtual", "settings"])
@pytest.mark.parametrize("value", [[], "x", 1, None])
def test_bad_section_type(section: str, value: Any) -> None:
    message = conf_error({section: value})
    assert message.startswith(f"local.conf: {section}: expected a JSON object"), message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"{", "invalid JSON"),
        (b"{'a': 1}", "invalid JSON"),
        (b'{"settings": {"primaryPort": NaN}}', "invalid JSON"),
        (b'{"a": 1} x', "invalid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[]", "top level"),
        (b'"settings"', "top level"),
        (b"5", "top level"),
        (b"null", "top level"),
    ],
)
def test_invalid_file_names_the_file(tmp_path: Path, text: bytes, reason: str) -> None:
    path = tmp_path / "local.conf"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_local_conf(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert reason in message
    with pytest.raises(ConfigError):
        parse_local_conf(text)


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "local.conf").mkdir()
    with pytest.raises(ConfigError, match=r"local\.conf: cannot read"):
        load_local_conf(tmp_path / "local.conf")


def test_parse_local_conf_text() -> None:
    conf = parse_local_conf('{"settings": {"primaryPort": 1234}}', "body")
    assert conf.settings.primary_port == 1234
    assert parse_local_conf(b"").raw == {}
    with pytest.raises(ConfigError, match=r"^body: settings\.primaryPort"):
        parse_local_conf('{"settings": {"primaryPort": "1"}}', "body")


# --- update_settings ----------------------------------------------------------------------


def test_update_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "local.conf"
    original = (HOME_A / "local.conf").read_bytes()
    path.write_bytes(original)
    conf = update_settings(path, {"primaryPort": 9994, "allowTcpFallbackRelay": True})
    assert conf.settings.primary_port == 9994
    expected = json.loads(original)
    expected["settings"]["primaryPort"] = 9994
    expected["settings"]["allowTcpFallbackRelay"] = True
    assert json.loads(path.read_bytes()) == expected
    assert path.read_bytes() == json.dumps(expected, indent=4, sort_keys=True).encode()
    assert path.read_bytes() == dump_local_conf(expected)
    assert not path.read_bytes().endswith(b"\n")
    reloaded = load_local_conf(path)
    assert reloaded.settings.primary_port == 9994
    assert reloaded.settings.allow_tcp_fallback_relay is True
    assert reloaded.settings.port_mapping_enabled is False
    assert reloaded.raw == expected
    assert [p.name for p in tmp_path.iterdir()] == ["local.conf"]


def test_update_settings_keeps_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "local.conf"
    path.write_text(json.dumps({"physical": {"10.0.0.0/8": {"mtu": 1400}}, "x": 1}))
    update_settings(path, {"bind": ["10.0.0.1"]})
    data = json.loads(path.read_text())
    assert data == {
        "physical": {"10.0.0.0/8": {"mtu": 1400}},
        "x": 1,
        "settings": {"bind": ["10.0.0.1"]},
    }


def test_update_settings_creates_file(tmp_path: Path) -> None:
    path = tmp_path / "local.conf"
    update_settings(path, {"lowBandwidthMode": True})
    assert json.loads(path.read_text()) == {"settings": {"lowBandwidthMode": True}}
    assert path.read_text() == '{\n    "settings": {\n        "lowBandwidthMode": true\n    }\n}'


@pytest.mark.parametrize(
    "changes",
    [
        {"primaryPort": "x"},
        {"bind": "1.2.3.4"},
        {"softwareUpdate": "never"},
        {"ok": 1, "mtu": 1, "concurrency": -5},
    ],
)
def test_update_settings_refuses_invalid(tmp_path: Path, changes: dict[str, Any]) -> None:
    path = tmp_path / "local.conf"
    original = (HOME_A / "local.conf").read_bytes()
    path.write_bytes(original)
    with pytest.raises(ConfigError) as info:
        update_settings(path, changes)
    assert str(info.value).startswith(f"{path}: settings.")
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["local.conf"]


def test_update_settings_refuses_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "local.conf"
    path.write_bytes(b"{broken")
    with pytest.raises(ConfigError, match="invalid JSON"):
        update_settings(path, {"primaryPort": 1})
    assert path.read_bytes() == b"{broken"


def test_update_settings_missing_file_refused_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        update_settings(tmp_path / "local.conf", {"primaryPort": -1})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"mtu": 1}, "settings.mtu"),
        ({"authorized": True, "lowBandwidthMode": True}, "settings.authorized"),
        ({"lowBandwidthMode": True, "name": "n", "routes": []}, "settings.name"),
        ({"controllerDb": {"x": float("inf")}}, "settings"),
        ({"softwareUpdateChannel": "\ud800"}, "settings"),
        ({"controllerDb": {"x": {1, 2}}}, "settings"),
    ],
)
def test_update_settings_refuses_what_it_could_not_read_back(
    tmp_path: Path, changes: dict[str, Any], key: str
) -> None:
    path = tmp_path / "local.conf"
    original = b'{"settings": {"primaryPort": 9993, "foo": 1}}'
    path.write_bytes(original)
    with pytest.raises(ConfigError) as info:
        update_settings(path, changes)
    assert f"{path}: {key}" in str(info.value)
    assert path.read_bytes() == original


def test_update_settings_output_is_what_a_read_accepts(tmp_path: Path) -> None:
    path = tmp_path / "local.conf"
    path.write_bytes(b'{"settings": {"foo": [1, 2.5]}, "x": {"y": "\\u00e9"}}')
    conf = update_settings(path, {"softwareUpdateChannel": "b\u00e9ta\U0001f600"})
    assert load_local_conf(path).raw == conf.raw
    assert conf.warnings == [
        f"{path}: x: unknown key (ignored)",
        f"{path}: settings.foo: unknown key (ignored)",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"settings": {"foo": 1e999}}', "number out of range at settings.foo"),
        (b'{"settings": {"softwareUpdateChannel": "\\udc00"}}', "surrogate"),
        (b'{"settings": {"foo": Infinity}}', "Infinity"),
        (b'{"settings": ' * 100 + b"1" + b"}" * 100, "levels"),
    ],
)
def test_local_conf_text_that_would_not_write_back_is_refused(
    tmp_path: Path, text: bytes, reason: str
) -> None:
    path = tmp_path / "local.conf"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match="invalid JSON") as info:
        load_local_conf(path)
    assert reason in str(info.value)


# --- networks.d/<nwid>.local.conf ---------------------------------------------------------

EXACT = b"allowManaged=1\nallowGlobal=0\nallowDefault=0\nallowDNS=0\n"


def test_network_local_conf_round_trips() -> None:
    """What ``POST /network/<nwid>`` writes reads back as the same settings."""
    for bits in range(16):
        s = NetworkLocalSettings(bool(bits & 1), [], bool(bits & 2), bool(bits & 4), bool(bits & 8))
        assert parse_network_local_conf(format_network_local_conf(s)) == s


def test_recorded_network_local_conf() -> None:
    path = HOME_A / "networks.d" / "1fad486cafe468e2.local.conf"
    assert path.read_bytes() == EXACT
    s = read_network_local_conf(path)
    assert s == NetworkLocalSettings(True, [], False, False, False)
    assert format_network_local_conf(s) == EXACT


def test_network_local_conf_defaults(tmp_path: Path) -> None:
    assert read_network_local_conf(tmp_path / "missing.local.conf") == NetworkLocalSettings()
    d = NetworkLocalSettings()
    assert (d.allow_managed, d.managed_whitelist, d.allow_global, d.allow_default, d.allow_dns) == (
        True,
        [],
        False,
        False,
        False,
    )
    assert parse_network_local_conf(b"") == d


@pytest.mark.parametrize(
    "settings",
    [
        NetworkLocalSettings(),
        NetworkLocalSettings(False, [], True, True, True),
        NetworkLocalSettings(True, [], False, True, False),
        NetworkLocalSettings(False, [], False, False, True),
    ],
)
def test_network_local_conf_round_trip(tmp_path: Path, settings: NetworkLocalSettings) -> None:
    path = tmp_path / "networks.d" / "1fad486cafe468e2.local.conf"
    assert write_network_local_conf(path, settings)
    data = path.read_bytes()
    assert (
        data
        == (
            f"allowManaged={int(settings.allow_managed)}\nallowGlobal={int(settings.allow_global)}\n"
            f"allowDefault={int(settings.allow_default)}\nallowDNS={int(settings.allow_dns)}\n"
        ).encode()
    )
    assert read_network_local_conf(path) == settings
    assert not write_network_local_conf(path, settings)  # identical: skipped
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_network_local_conf_whitelist(tmp_path: Path) -> None:
    path = tmp_path / "x.local.conf"
    path.write_bytes(b"allowManaged=10.0.0.0/8,192.168.1.0/24\nallowGlobal=1\n")
    s = read_network_local_conf(path)
    assert s.allow_managed is True
    assert s.managed_whitelist == [net("10.0.0.0/8"), net("192.168.1.0/24")]
    assert s.allow_global is True
    assert (s.allow_default, s.allow_dns) == (False, False)
    # Re-writing stores allowManaged=1, losing the whitelist (as zerotier-one does).
    write_network_local_conf(path, s)
    assert path.read_bytes() == b"allowManaged=1\nallowGlobal=1\nallowDefault=0\nallowDNS=0\n"
    assert read_network_local_conf(path).managed_whitelist == []


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        (b"1", True),
        (b"0", False),
        (b"true", True),
        (b"false", False),
        (b"T", True),
        (b"yes", False),
        (b"", True),  # empty value: as missing
    ],
)
def test_network_local_conf_allow_managed_bool(value: bytes, allowed: bool) -> None:
    s = parse_network_local_conf(b"allowManaged=" + value + b"\r\nallowDNS=t\r\n")
    assert s.allow_managed is allowed
    assert s.managed_whitelist == []
    assert s.allow_dns is True


def test_network_local_conf_whitelist_quirks() -> None:
    # An entry without /bits is read with 0 bits (InetAddress("ip") has port 0).
    s = parse_network_local_conf(b"allowManaged=10.1.2.3,fd00::/8")
    assert s.managed_whitelist == [net("0.0.0.0/0"), net("fd00::/8")]
    # Invalid entries are dropped; if none is valid nothing may be managed.
    s = parse_network_local_conf(b"allowManaged=foo,bar/8")
    assert s.allow_managed is False
    assert s.managed_whitelist == []
    s = parse_network_local_conf(b"allowManaged=foo,10.0.0.0/8")
    assert s.allow_managed is True
    assert s.managed_whitelist == [net("10.0.0.0/8")]


# --- the model's declared types say what they want ----------------------------------------


EXACT_MESSAGES: list[tuple[str, Any, str]] = [
    ("secondaryPort", True, "expected an integer from 0 to 65535, got true"),
    ("concurrency", 1 << 32, "expected an integer from 0 to 4294967295, got 4294967296"),
    ("tcpFallbackAfter", 999, "expected an integer from 1000 to 86400000, got 999"),
    ("forceTcpRelay", "true", 'expected true or false, got "true"'),
    ("softwareUpdateChannel", 1, "expected a string, got 1"),
    ("vault", [], "expected a JSON object, got []"),
    ("softwareUpdate", "Apply", 'expected one of "apply", "download", "disable", got "Apply"'),
    ("bind", "1.2.3.4", 'expected a JSON array, got "1.2.3.4"'),
    ("interfacePrefixBlacklist", [["eth"]], '[0]: expected a string, got ["eth"]'),
    ("policies", {"p": 1}, 'policy "p": expected a JSON object, got 1'),
    ("peerSpecificBonds", {"xyz": "p"}, ".xyz: invalid key: expected a ZeroTier address (10 hex "
     'digits), got "xyz"'),
]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "tail"), EXACT_MESSAGES)
def test_exact_messages(key: str, value: Any, tail: str) -> None:
    """Each kind of declared type (msgspec's strict int/bool/str/dict/Literal with
    constraints, lists, the address parsers) names the key, the value and what it wanted."""
    sep = "" if tail[0] in "[." else ": "
    assert conf_error({"settings": {key: value}}) == f"local.conf: settings.{key}{sep}{tail}"


@pytest.mark.parametrize(
    "changes",
    [
        {"allow_managed": "1"},
        {"allow_dns": 1},
        {"managed_whitelist": ["10.0.0.0/8"]},
        {"managed_whitelist": "10.0.0.0/8"},
    ],
)
def test_network_local_settings_check_their_types(changes: dict[str, Any]) -> None:
    """Construction and ``dataclasses.replace`` refuse wrong types."""
    with pytest.raises(TypeError):
        NetworkLocalSettings(**changes)
    with pytest.raises(TypeError):
        dataclasses.replace(NetworkLocalSettings(), **changes)
    ok = dataclasses.replace(NetworkLocalSettings(), managed_whitelist=[net("10.0.0.0/8")])
    assert ok.managed_whitelist == [net("10.0.0.0/8")] and ok.allow_managed
