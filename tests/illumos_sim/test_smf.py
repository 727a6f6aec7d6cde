"""smf/ztone.xml against the service_bundle DTD's element order; the method script."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SMF = Path(__file__).resolve().parents[2] / "smf"
MANIFEST = SMF / "ztone.xml"
METHOD = SMF / "ztone-method.sh"

# Content models of /usr/share/lib/xml/dtd/service_bundle.dtd.1 (illumos) for the
# elements a manifest like ours uses, as regular expressions over child names.
CONTENT = {
    "service_bundle": r"(service_bundle )*|(service )*|(xi:include )*",
    "service": (
        r"(create_default_instance )?(single_instance )?(restarter )?(dependency )*"
        r"(dependent )*(method_context )?(exec_method )*(property_group )*(instance )*"
        r"(stability )?(template )?"
    ),
    "instance": (
        r"(restarter )?(dependency )*(dependent )*(method_context )?(exec_method )*"
        r"(property_group )*(template )?"
    ),
    "dependency": r"(service_fmri )*(stability )?((propval|property) )*",
    "method_context": r"((method_profile|method_credential) )?(method_environment )?",
    "method_environment": r"(envvar )+",
    "exec_method": r"(method_context )?(stability )?((propval|property) )*",
    "property_group": r"(stability )?((propval|property) )*",
    "template": r"common_name (description )?(documentation )?(pg_pattern )*",
    "common_name": r"(loctext )+",
    "description": r"(loctext )+",
    "create_default_instance": "",
    "single_instance": "",
    "service_fmri": "",
    "method_credential": "",
    "envvar": "",
    "propval": "",
    "stability": "",
    "loctext": "",
}
REQUIRED_ATTRS = {
    "service_bundle": {"type", "name"},
    "service": {"name", "version", "type"},
    "dependency": {"name", "grouping", "restart_on", "type"},
    "exec_method": {"type", "name", "exec", "timeout_seconds"},
    "method_credential": {"user"},
    "property_group": {"name", "type"},
    "propval": {"name", "type", "value"},
    "service_fmri": {"value"},
    "envvar": {"name", "value"},
    "create_default_instance": {"enabled"},
    "stability": {"value"},
}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _check(element: ET.Element) -> None:
    tag = element.tag
    assert tag in CONTENT, f"element {tag} not expected in a manifest"
    children = "".join(child.tag + " " for child in element)
    assert re.fullmatch(CONTENT[tag], children), f"<{tag}> children out of DTD order: {children}"
    missing = REQUIRED_ATTRS.get(tag, set()) - set(element.attrib)
    assert not missing, f"<{tag}> lacks {missing}"
    if tag == "loctext":
        assert XML_LANG in element.attrib
    for child in element:
        _check(child)


def test_manifest_is_well_formed_and_in_dtd_order() -> None:
    text = MANIFEST.read_text()
    assert text.startswith('<?xml version="1.0"?>')
    assert '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">' in text
    root = ET.fromstring(text)
    assert root.tag == "service_bundle" and root.attrib["type"] == "manifest"
    _check(root)


def test_manifest_content() -> None:
    service = ET.parse(MANIFEST).getroot().find("service")
    assert service is not None and service.attrib["name"] == "network/ztone"
    fmris = {f.attrib["value"] for f in service.iter("service_fmri")}
    assert fmris == {
        "svc:/system/filesystem/local",
        "svc:/network/physical",
        "svc:/network/datalink-management",
        "svc:/network/ip-interface-management",
    }
    duration = [
        p.attrib["value"]
        for g in service.findall("property_group")
        if g.attrib["name"] == "startd"
        for p in g.findall("propval")
        if p.attrib["name"] == "duration"
    ]
    assert duration == ["contract"]
    credential = service.find("method_context/method_credential")
    assert credential is not None
    privileges = set(credential.attrib["privileges"].split(","))
    assert {"basic", "net_rawaccess", "sys_dl_config", "sys_ip_config"} <= privileges
    methods = {m.attrib["name"]: m.attrib["exec"] for m in service.findall("exec_method")}
    assert methods["start"].endswith(" start") and methods["stop"].endswith(" stop")


def test_manifest_with_xmllint() -> None:
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint not installed (apt-get install libxml2-utils)")
    proc = subprocess.run(
        ["xmllint", "--noout", str(MANIFEST)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_method_script_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", str(METHOD)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_method_script_usage() -> None:
    proc = subprocess.run(
        ["sh", str(METHOD), "bogus"], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 96 and "usage" in proc.stderr
