"""Both sides of the controller conversation on a fake port: the member side
(``controller_link``: join, requests, answers, the controller's ERRORs) and the
controller side (``controller_side``: a request becomes a ConfigRequested action, the
host's answer becomes the reply)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from node.fakeport import IDS, NOW, FakePort
from ztone.node.actions import (
    ConfigRequested,
    ControllerAnswer,
    NetworkConfigChanged,
    PutState,
    StateKind,
)
from ztone.node.port import Outcome
from ztone.node.vl1.path import Path
from ztone.node.vl2 import controller_link, controller_side
from ztone.node.vl2.view import ConfigOp
from ztone.node.wire.address import Address
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import NetworkConfig, request_metadata
from ztone.node.wire.packet import ErrorCode, Verb, build_packet
from ztone.node.wire.verbs import in_re_payload
from ztone.node.wire.vl2_verbs import serialize_config_request

ME = IDS[2]
CONTROLLER = IDS[1]
NWID = (int(CONTROLLER.address) << 24) | 0x42
OWN_NWID = (int(ME.address) << 24) | 0x07
PATH = Path(1, InetAddress(ipaddress.ip_address("198.18.0.30"), 9993))


@dataclass
class Gate:
    """A controller's in-memory gates (the LocalController protocol)."""

    open: bool = True
    authorized: list[tuple[int, int]] = field(default_factory=list)

    def rate_gate(self, nwid: int, member: int, now: int) -> bool:
        return self.open

    def recently_authorized(self, nwid: int, member: int, now: int) -> bool:
        return (nwid, member) in self.authorized

    def note_authorized(self, nwid: int, member: int, now: int) -> None:
        self.authorized.append((nwid, member))


def _config(nwid: int = NWID, issued_to: int = int(ME.address)) -> NetworkConfig:
    return NetworkConfig(network_id=nwid, timestamp=NOW, issued_to=Address(issued_to),
                         name="unit")  # fmt: skip


def test_join_announces_the_port_and_asks_at_once() -> None:
    port = FakePort()
    net = controller_link.join(port, NOW, NWID)
    assert port.networks[NWID] is net and port.pinged
    assert port.actions[0] == PutState(StateKind.NETWORK_CONFIG, NWID, b"\n")
    changed = port.actions[1]
    assert isinstance(changed, NetworkConfigChanged) and changed.op is ConfigOp.UP
    assert changed.view.status == "REQUESTING_CONFIGURATION"
    port.actions.clear()
    assert controller_link.join(port, NOW, NWID) is net and port.actions == []


def test_join_restores_a_stored_config_and_still_asks_for_a_fresh_one() -> None:
    port = FakePort()
    stored = _config().to_dictionary().serialize()
    port.state[(StateKind.NETWORK_CONFIG, NWID)] = stored
    net = controller_link.join(port, NOW, NWID)
    assert net.config is not None and net.config.name == "unit"
    assert net.needs_config_request(NOW)
    assert [type(a) for a in port.actions] == [NetworkConfigChanged]  # nothing re-saved


def test_a_config_for_someone_else_is_refused() -> None:
    port = FakePort()
    net = controller_link.join(port, NOW, NWID)
    assert not net.set_configuration(port, NOW, _config(issued_to=int(IDS[3].address)), True)
    assert port.counters["config_not_for_us"] == 1 and net.config is None


def test_the_request_goes_to_the_controller_compressed() -> None:
    port = FakePort()
    net = controller_link.join(port, NOW, NWID)
    controller_link.request_configuration(port, NOW, net)
    meta = request_metadata(port.version, port.os_arch).serialize()
    [sent] = port.sent
    assert sent.destination == int(CONTROLLER.address) and sent.verb == Verb.NETWORK_CONFIG_REQUEST
    assert sent.payload == serialize_config_request(NWID, meta, 0, 0) and sent.compress
    assert net.last_request_sent == NOW


def test_asking_ourselves_is_an_action_and_the_answer_configures() -> None:
    port = FakePort()
    port.controller = Gate()
    net = controller_link.join(port, NOW, OWN_NWID)
    port.actions.clear()
    controller_link.request_configuration(port, NOW, net)
    [request] = port.actions
    assert isinstance(request, ConfigRequested)
    assert (request.nwid, request.packet_id, request.remote) == (OWN_NWID, 0, None)
    assert request.requester == ME.public_only() and port.sent == []
    port.actions.clear()
    controller_link.own_answer(port, NOW + 1, OWN_NWID, ControllerAnswer(_config(OWN_NWID)))
    assert net.status == "OK" and net.last_config_update == NOW + 1
    assert any(isinstance(a, PutState) and a.data for a in port.actions)
    controller_link.own_answer(port, NOW + 2, OWN_NWID,
                               ControllerAnswer(error=ErrorCode.NETWORK_ACCESS_DENIED))
    assert net.status == "ACCESS_DENIED"


def test_asking_ourselves_without_a_controller_is_not_found() -> None:
    port = FakePort()
    net = controller_link.join(port, NOW, OWN_NWID)
    controller_link.request_configuration(port, NOW, net)
    assert net.status == "NOT_FOUND" and not any(
        isinstance(a, ConfigRequested) for a in port.actions)  # fmt: skip


def _error(port: FakePort, code: int, in_re: int = Verb.NETWORK_CONFIG_REQUEST) -> bytearray:
    body = in_re_payload(in_re, 5) + bytes((code,)) + NWID.to_bytes(8, "big")
    return build_packet(bytes(8), port.address, CONTROLLER.address, Verb.ERROR, body)


def test_only_the_controller_can_deny_access() -> None:
    port = FakePort()
    controller = port.add_known_peer(CONTROLLER)
    stranger = port.add_known_peer(IDS[3])
    net = controller_link.join(port, NOW, NWID)
    port.actions.clear()
    packet = _error(port, ErrorCode.NETWORK_ACCESS_DENIED)
    controller_link.error_for_network(port, NOW, stranger, Verb.NETWORK_CONFIG_REQUEST,
                                      ErrorCode.NETWORK_ACCESS_DENIED, packet)  # fmt: skip
    assert net.status == "REQUESTING_CONFIGURATION" and port.actions == []
    controller_link.error_for_network(port, NOW, controller, Verb.NETWORK_CONFIG_REQUEST,
                                      ErrorCode.NETWORK_ACCESS_DENIED, packet)  # fmt: skip
    [changed] = port.actions
    assert isinstance(changed, NetworkConfigChanged) and changed.view.status == "ACCESS_DENIED"


def test_leave_destroys_the_port_and_forgets_the_stored_config() -> None:
    port = FakePort()
    net = controller_link.join(port, NOW, NWID)
    port.actions.clear()
    assert controller_link.leave(port, NOW, NWID) and net.destroyed
    assert isinstance(port.actions[0], NetworkConfigChanged)
    assert port.actions[0].op is ConfigOp.DESTROY
    assert port.actions[1] == PutState(StateKind.NETWORK_CONFIG, NWID, None)
    assert not controller_link.leave(port, NOW, NWID)


# ---------------------------------------------------------------- controller side


def _request(port: FakePort, nwid: int, packet_id: bytes = b"\x11" * 8) -> bytearray:
    meta = request_metadata((1, 14, 1), "linux/x86_64").serialize()
    return build_packet(packet_id, port.address, IDS[3].address, Verb.NETWORK_CONFIG_REQUEST,
                        serialize_config_request(nwid, meta, 0, 0))  # fmt: skip


def test_a_member_request_becomes_a_config_requested_action() -> None:
    port = FakePort()
    port.controller = Gate()
    member = port.add_known_peer(IDS[3])
    verdict = controller_side.do_network_config_request(port, NOW, PATH, member,
                                                        _request(port, OWN_NWID))  # fmt: skip
    assert verdict is Outcome.DONE and port.replies == []
    [request] = port.actions
    assert isinstance(request, ConfigRequested)
    assert request.packet_id == int.from_bytes(b"\x11" * 8, "big")
    assert (request.local_socket, request.remote) == (PATH.local_socket, PATH.address)
    assert request.requester == member.identity
    assert [r.verb for r in port.received_log] == [Verb.NETWORK_CONFIG_REQUEST]


def test_a_request_inside_the_rate_gate_or_for_another_controller_is_ignored() -> None:
    port = FakePort()
    port.controller = Gate(open=False)
    member = port.add_known_peer(IDS[3])
    controller_side.do_network_config_request(port, NOW, PATH, member, _request(port, OWN_NWID))
    port.controller = Gate()
    controller_side.do_network_config_request(port, NOW, PATH, member, _request(port, NWID))
    assert port.actions == [] and port.replies == []


def test_without_a_controller_the_request_is_unsupported() -> None:
    port = FakePort()
    member = port.add_known_peer(IDS[3])
    controller_side.do_network_config_request(port, NOW, PATH, member, _request(port, OWN_NWID))
    [reply] = port.replies
    assert reply.verb == Verb.ERROR and reply.path is PATH
    assert reply.payload == (in_re_payload(Verb.NETWORK_CONFIG_REQUEST,
                                           int.from_bytes(b"\x11" * 8, "big"))
                             + bytes((ErrorCode.UNSUPPORTED_OPERATION,))
                             + OWN_NWID.to_bytes(8, "big"))  # fmt: skip


def test_the_answer_is_sent_as_the_request_s_reply() -> None:
    port = FakePort()
    gate = Gate()
    port.controller = gate
    member = port.add_known_peer(IDS[3])
    controller_side.do_network_config_request(port, NOW, PATH, member, _request(port, OWN_NWID))
    [request] = port.actions
    assert isinstance(request, ConfigRequested)
    denied = ControllerAnswer(error=ErrorCode.NETWORK_ACCESS_DENIED, error_info=b"why")
    controller_side.answer(port, NOW, request, denied, PATH)
    [reply] = port.replies
    assert reply.verb == Verb.ERROR and reply.payload == (
        in_re_payload(Verb.NETWORK_CONFIG_REQUEST, request.packet_id)
        + bytes((ErrorCode.NETWORK_ACCESS_DENIED,)) + OWN_NWID.to_bytes(8, "big")
        + (3).to_bytes(2, "big") + b"why")  # fmt: skip
    port.replies.clear()
    config = _config(OWN_NWID, int(IDS[3].address))
    controller_side.answer(port, NOW, request, ControllerAnswer(config), PATH)
    assert port.replies and all(r.verb == Verb.OK for r in port.replies)
    assert port.replies[0].payload.startswith(
        in_re_payload(Verb.NETWORK_CONFIG_REQUEST, request.packet_id))
    assert gate.authorized == [(OWN_NWID, int(IDS[3].address))]


def test_an_answer_for_a_peer_gone_meanwhile_is_dropped() -> None:
    port = FakePort()
    port.controller = Gate()
    member = port.add_known_peer(IDS[3])
    controller_side.do_network_config_request(port, NOW, PATH, member, _request(port, OWN_NWID))
    [request] = port.actions
    assert isinstance(request, ConfigRequested)
    del port.peers[int(IDS[3].address)]
    controller_side.answer(port, NOW, request, ControllerAnswer(error=1), PATH)
    assert port.replies == [] and port.counters["config_answer_no_peer"] == 1
