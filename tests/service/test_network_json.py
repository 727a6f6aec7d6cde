"""The /network object ztone renders equals zerotier-one's for the same config (C.2.5).

The recorded member ``a`` of lab1: its networks.d config (tests/vectors/netconf) and
the /network answer of its real zerotier-one 1.14.1 (tests/vectors/lab1_api/a).
"""

from __future__ import annotations

import json
from pathlib import Path

from ztone.node.vl2.network import Network
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.mac import MAC
from ztone.node.wire.network_config import NetworkConfig
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.service.api.network_routes import network_json
from ztone.service.config import NetworkLocalSettings

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
NWID = 0x1FAD486CAFE468E2


def test_network_object_matches_recorded() -> None:
    recorded = json.loads((VECTORS / "lab1_api" / "a" / "api.json").read_text())["/network"][1][0]
    conf = VECTORS / "netconf" / f"a.{NWID:016x}.conf"
    config = NetworkConfig.from_dictionary(Dictionary.parse(conf.read_bytes()))
    net = Network(NWID, int(config.issued_to))
    net.config = config
    for sub in recorded["multicastSubscriptions"]:
        net.subscriptions.add(MulticastGroup(int(MAC.parse(sub["mac"])), sub["adi"]))
    view = net.view()
    assert str(MAC(view.mac)) == recorded["mac"]
    ours = network_json(view, NetworkLocalSettings(), recorded["portDeviceName"], 0)
    assert ours == recorded
