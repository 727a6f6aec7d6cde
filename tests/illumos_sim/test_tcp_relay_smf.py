"""smf/ztone-relay.xml: DTD order (as smf/ztone.xml is checked), content, xmllint,
and that the command line it builds is one ``ztone-relay`` accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from ztone.relay.main import parser

from .test_smf import SMF, _check

MANIFEST = SMF / "ztone-relay.xml"


def test_tcp_relay_manifest_in_dtd_order() -> None:
    text = MANIFEST.read_text()
    assert '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">' in text
    _check(ET.fromstring(text))


def test_tcp_relay_manifest_content_and_command_line() -> None:
    service = ET.parse(MANIFEST).getroot().find("service")
    assert service is not None and service.attrib["name"] == "network/ztone-relay"
    credential = service.find("method_context/method_credential")
    assert credential is not None and credential.attrib["user"] != "root"
    assert credential.attrib["privileges"] == "basic,net_privaddr"
    groups = {g.attrib["name"]: g for g in service.findall("property_group")}
    assert groups["startd"].find("propval").attrib["value"] == "child"  # type: ignore[union-attr]
    config = {p.attrib["name"]: p.attrib["value"] for p in groups["config"].findall("propval")}
    start = next(m for m in service.findall("exec_method") if m.attrib["name"] == "start")
    # what svc.startd runs once it has put the properties in
    command = re.sub(r"%\{config/(\w+)\}", lambda m: config[m.group(1)], start.attrib["exec"])
    program, *args = command.split()
    assert program == "/opt/ztone/bin/ztone-relay"
    parsed = parser().parse_args(args)
    assert (parsed.listen, parsed.port, parsed.rate) == (["0.0.0.0"], 443, 8_000_000)


def test_tcp_relay_manifest_with_xmllint() -> None:
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint not installed (apt-get install libxml2-utils)")
    done = subprocess.run(["xmllint", "--noout", str(MANIFEST)], check=False,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
